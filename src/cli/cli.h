/* cli: the commands of goosed and goose. Each takes argc/argv starting at its own name and returns
 * the exit status: 0 done, 1 a failure (message on stderr), 2 a usage error. */
#ifndef GD_CLI_H
#define GD_CLI_H

/* `goosed mcp ...` (argv[0] is "mcp"): an MCP client on the command line. Returns the exit
 * status: 0 done, 1 the tool or the server failed (message on stderr), 2 a usage error. */
int cli_mcp(int argc, char **argv);
/* `goosed user ...` (argv[0] is "user"): add, list, remove users, and make their tokens.
 * Returns the exit status: 0 done, 1 the store failed or no such user, 2 a usage error. */
int cli_user(int argc, char **argv);

/* The server (`goosed [options]`, `goose server [options]`); argv[0] is the program or "server".
 * Returns when stopped by SIGTERM/SIGINT: 0 after a clean stop, 1 a failure, 2 bad options. */
int cli_server(int argc, char **argv);
/* `goose configure list|get|set|unset` (argv[0] is "configure"). */
int cli_configure(int argc, char **argv);
/* `goose session ...`, `goose run ...`, `goose extension ...`: against a running server. */
int cli_session(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_extension(int argc, char **argv);

#endif
