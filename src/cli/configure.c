/* cli/configure: `goose configure list|get|set|unset`, the effective configuration and where
 * each setting came from. */
#include <stdio.h>

#include "cli/cli.h"

int cli_configure(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "goose configure: not built yet\n");
    return 1;
}
