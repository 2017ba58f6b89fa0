/* goose: the command of seed 000's deployment guide. `goose server` is goosed itself (the image's
 * CMD); `goose configure` shows and changes the configuration; session, run and extension talk
 * to a running server over its HTTP API; user and mcp are goosed's local subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: goose COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  server      runs the server (goosed; the same options: goose server --help)\n"
    "  configure   shows and changes the configuration: list, get, set, unset\n"
    "  session     the sessions of a running server: list, show, rm, export, import;\n"
    "              alone, an interactive chat in the terminal\n"
    "  run         sends one message and streams the reply: goose run -t \"text\"\n"
    "  extension   the extensions of a running server: list, add, enable, disable, remove\n"
    "  user        the users of the server and their tokens (on the local store)\n"
    "  mcp         an MCP client: the tools, resources and prompts of an MCP server\n"
    "\n"
    "Each command takes --help. The commands that talk to a running server find it at\n"
    "GOOSE_SERVER_URL (default http://127.0.0.1:3000).\n"
    "\n"
    "Exit status: 0 done, 1 a failure (said on stderr), 2 a usage error.\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"server", cli_server}, {"configure", cli_configure}, {"session", cli_session},
    {"run", cli_run},       {"extension", cli_extension}, {"user", cli_user},
    {"mcp", cli_mcp},
};

/* A command's exit status, unless what it wrote to stdout did not all get there (a full disk, a
 * closed pipe): then 1, said in one line. An export that wrote nothing must not say 0. */
static int finish(int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    if (errno != EPIPE) /* the reader left: nothing to say to it */
        fprintf(stderr, "goose: cannot write the output: %s\n",
                errno ? strerror(errno) : "a write failed");
    return rc ? rc : 1;
}

int main(int argc, char **argv)
{
    /* Not dumpable: tokens and API keys are in this process's memory too (see cli_server). */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) perror("goose: prctl(PR_SET_DUMPABLE)");
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("goose %s\n", GOOSED_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return finish(commands[i].run(argc - 1, argv + 1));
    fprintf(stderr, "goose: unknown command \"%s\"\n\n%s", cmd, usage);
    return 2;
}
