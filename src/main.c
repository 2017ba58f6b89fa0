/* goosed: the server (cli/server.c), and its two local subcommands `goosed mcp` and
 * `goosed user`. The `goose` command (goose.c) offers the same and the client commands. */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
    /* Not dumpable, whatever the command: see cli_server. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) perror("goosed: prctl(PR_SET_DUMPABLE)");
    /* `goosed mcp ...`: the command-line MCP client, not the server. */
    if (argc > 1 && !strcmp(argv[1], "mcp")) return cli_mcp(argc - 1, argv + 1);
    /* `goosed user ...`: the users and their tokens. */
    if (argc > 1 && !strcmp(argv[1], "user")) return cli_user(argc - 1, argv + 1);
    return cli_server(argc, argv);
}
