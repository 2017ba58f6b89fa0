/* cli/client: what `goose session`, `goose run` and `goose extension` share: their common options,
 * an HTTP client of a running server (libcurl) that sends the credentials and turns every failure
 * into one line on stderr, and the server's event stream (SSE) read as it arrives.
 *
 * The server is GOOSE_SERVER_URL (default http://127.0.0.1:3000) or --url; the credentials are
 * GOOSE_SERVER_TOKEN (sent as Authorization: Bearer) or GOOSE_SERVER__SECRET_KEY (X-Secret-Key).
 * Neither is ever printed, not in errors and not with --verbose. */
#ifndef GD_CLI_CLIENT_H
#define GD_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"

/* The options every client command takes. */
typedef struct {
    const char *url;    /* --url, else GOOSE_SERVER_URL, else the default */
    const char *cacert; /* --cacert, else GOOSE_SERVER_CACERT */
    const char *cert;   /* --cert, else GOOSE_SERVER_CLIENT_CERT: a client certificate (PEM) */
    const char *key;    /* --key, else GOOSE_SERVER_CLIENT_KEY: its key (default: in cert) */
    bool json;          /* --json: the server's JSON instead of text */
    bool verbose;       /* --verbose/-v: each request and its status on stderr */
    bool help;          /* --help/-h */
} cl_common;

/* The help text of the common options, for each command's --help. */
extern const char cl_common_help[];

/* If argv[*i] is a common option, takes it (and its value: *i moves past it) and returns 1; 0
 * when it is not one; -1 when its value is missing (said on stderr, prefixed with prog). */
int cl_common_opt(cl_common *c, const char *prog, int argc, char **argv, int *i);
/* If argv[*i] is the option name (or alias, may be NULL) as `NAME VALUE` or `NAME=VALUE`, sets
 * *val (pointing into argv) and moves *i to the value; 1 taken, 0 not this option, -1 the value
 * is missing (said). */
int cl_opt_value(const char *prog, const char *name, const char *alias, int argc, char **argv,
                 int *i, const char **val);

typedef struct cl_client cl_client;

/* A client of the server c names; prog ("goose session") prefixes its messages. NULL after a
 * message on stderr (libcurl missing, a bad URL). Free with cl_close. */
cl_client *cl_open(const cl_common *c, const char *prog);
void cl_close(cl_client *cl);
/* The prefix of messages ("goose run"): owned by cl. */
const char *cl_prog(const cl_client *cl);

/* Percent-encodes s for one path segment; the caller frees the result (NULL: out of memory). */
char *cl_escape(const char *s);

/* Sends method to path (starting with '/', relative to the server's URL) with body (JSON text, or
 * NULL for none). Answers the parsed JSON of a 2xx answer (json_null() for an empty one) with
 * *status set when status is not NULL; the caller decrefs. NULL on any failure, said in one line
 * on stderr: the server unreachable (with its URL), an answer that is not JSON, or its error
 * status and message (a 401 also says which variables give credentials). */
json_t *cl_call(cl_client *cl, const char *method, const char *path, const char *body,
                long *status);
/* cl_call that gives up, saying nothing, as soon as stop() answers true (checked as the transfer
 * goes, and at least every 100 ms inside cl_stream's ticks): a request made from a stream's tick
 * that the user can abandon (a second Ctrl-C). */
json_t *cl_call_until(cl_client *cl, const char *method, const char *path, const char *body,
                      int (*stop)(void));
/* The same with body a JSON value (borrowed; NULL for none). */
json_t *cl_call_json(cl_client *cl, const char *method, const char *path, json_t *body,
                     long *status);

/* Makes a new session whose working directory is the current directory, named name (NULL: the
 * server's default). Answers the server's Session (the caller decrefs), NULL after a message. */
json_t *cl_session_create(cl_client *cl, const char *name);

/* Called for each event of a stream: event name (never NULL; "message" when unnamed), its id
 * ("" when none) and data. Return 0 to go on, nonzero to stop reading (the stream is closed). */
typedef int (*cl_event_fn)(void *ud, const char *event, const char *id, const char *data);
/* Called at least every 100 ms while a stream is open (even when nothing arrives): spinners,
 * Ctrl-C. Nonzero stops reading. */
typedef int (*cl_tick_fn)(void *ud);

/* POSTs body (JSON text) to path asking for text/event-stream and hands each event to fn as it
 * arrives, tick meanwhile. Returns 0 when the server ended the stream, 1 on a failure (said on
 * stderr: unreachable, a broken stream), 2 when the server answered an error status (said on
 * stderr with the server's message: it refused the request), 3 when fn or tick stopped it. While it
 * runs SIGALRM ticks every 100 ms (the handler does nothing). */
int cl_stream(cl_client *cl, const char *path, const char *body, cl_event_fn fn, cl_tick_fn tick,
              void *ud);
/* The same for a GET of the stream at path from after the event last_id (sent as
 * Last-Event-ID): a stream taken up again where it broke. */
int cl_stream_from(cl_client *cl, const char *path, const char *last_id, cl_event_fn fn,
                   cl_tick_fn tick, void *ud);

/* Reads all of path ("-": standard input) into out (initialised here with cap), as text (NUL
 * after the bytes). false after a message on stderr prefixed with prog (cannot open or read it,
 * larger than cap); out is then freed. */
bool cl_read_file(const char *prog, const char *path, size_t cap, buf *out);

/* Writes a JSON value to stdout as one indented document and a newline. */
void cl_print_json(json_t *v);
/* Writes n bytes of text that came from the server, a model or a tool to f, so that it cannot
 * drive the terminal: control characters but the newline and the tab (ESC, CR, DEL, C1) and
 * bytes that are not UTF-8 are written as \xHH. */
void cl_put_text(FILE *f, const char *s, size_t n);
/* The same for a NUL-terminated string. */
void cl_puts_text(FILE *f, const char *s);
/* ok, or (saying so in one line: the server's answer is not WHAT) false: for an answer of the
 * wrong shape, which a list must not show as empty. */
bool cl_shape(cl_client *cl, bool ok, const char *what);
/* The string member key of o, or dflt when absent or not a string. */
const char *cl_str(json_t *o, const char *key, const char *dflt);

#endif
