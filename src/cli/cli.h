/* cli: goosed's subcommands that are not the server. */
#ifndef GD_CLI_H
#define GD_CLI_H

/* `goosed mcp ...` (argv[0] is "mcp"): an MCP client on the command line. Returns the exit
 * status: 0 done, 1 the tool or the server failed (message on stderr), 2 a usage error. */
int cli_mcp(int argc, char **argv);
/* `goosed user ...` (argv[0] is "user"): add, list, remove users, and make their tokens.
 * Returns the exit status: 0 done, 1 the store failed or no such user, 2 a usage error. */
int cli_user(int argc, char **argv);

#endif
