/* cli/remote: the commands that talk to a running server over its HTTP API: `goose session`,
 * `goose run`, `goose extension`. */
#include <stdio.h>

#include "cli/cli.h"

int cli_session(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "goose session: not built yet\n");
    return 1;
}

int cli_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "goose run: not built yet\n");
    return 1;
}

int cli_extension(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "goose extension: not built yet\n");
    return 1;
}
