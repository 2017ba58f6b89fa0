/* Fuzzes what an MCP server writes on a stdio transport, read the way goosed reads it: the bytes
 * go through pipes into src/extensions/mcp/stdio.c's read path (read_out: newline-delimited
 * JSON-RPC, the line cap, the end of the output once the process "exited"; on_err: stderr lines
 * logged escaped and rate-limited), and every message it accepts into the JSON-RPC client
 * (src/extensions/mcp/client.c: responses matched to three pending requests, the server's
 * requests ping, roots/list, elicitation/create and sampling/createMessage (the latter two
 * through host ops that answer some and leave others open), notifications, cancellations,
 * batches). stdio.c is included to build its transport without a process (the client's factory
 * hook, mcp_rpc_transport_new, hands it over); replies go to /dev/null. */
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "extensions/mcp/stdio.c"
#include "fuzz_loop.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

#define FUZZ_MAX_INPUT (256u << 10)

static const uint8_t *in_data;
static size_t in_size;
static stdio_t *T;

/* A pipe holding data, its write end closed: the read end (non-blocking), or -1. */
static int pipe_with(const uint8_t *data, size_t size)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    fcntl(p[1], F_SETPIPE_SZ, (int)(FUZZ_MAX_INPUT + 4096));
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(p[1], data + off, size - off);
        if (w <= 0) abort(); /* the pipe is big enough for FUZZ_MAX_INPUT */
        off += (size_t)w;
    }
    close(p[1]);
    return p[0];
}

/* mcp_stdio_new without the process: the server "ran", wrote data on stdout and on stderr, and
 * exited with status 0. */
static mcp_transport *factory(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                              char *err, size_t errlen)
{
    stdio_t *t = calloc(1, sizeof *t);
    reaper *rp = calloc(1, sizeof *rp);
    CHECK(t && rp && (t->chunk = malloc(STDIO_READ_CHUNK)));
    t->base.ops = &stdio_ops;
    t->cb = *cb;
    t->l = host->l;
    snprintf(t->name, sizeof t->name, "mcp:fuzz");
    buf_init(&t->rx, MCP_LINE_MAX + 1);
    buf_init(&t->tx, STDIO_TX_CAP);
    buf_init(&t->erx, STDIO_ERR_LINE + 1);
    t->err_limit.win = loop_now_ms(host->l);
    t->in = open("/dev/null", O_WRONLY | O_CLOEXEC);
    t->out = pipe_with(in_data, in_size);
    t->err = pipe_with(in_data, in_size);
    CHECK(t->in >= 0 && t->out >= 0 && t->err >= 0);
    rp->l = host->l;
    rp->pid = -1;
    rp->exited = true;
    rp->owner = t;
    mcp_linger(+1);
    t->rp = rp;
    T = t;
    return &t->base;
}

/* ---- the host's side of server requests ---- */

typedef struct {
    ext_reply_fn fn;
    void *rud;
    bool open;
} hreq;

static hreq reqs[64];
static int nreqs;

static void *host_request(void *ud, extension *x, const char *method, json_t *params,
                          ext_reply_fn fn, void *rud)
{
    if (nreqs == (int)(sizeof reqs / sizeof *reqs)) {
        fn(rud, NULL, -1, "declined"); /* at once: against the contract, which the client bears */
        return NULL;
    }
    reqs[nreqs] = (hreq){fn, rud, true};
    return &reqs[nreqs++];
}

static void host_cancel(void *ud, void *handle)
{
    hreq *h = handle;
    CHECK(h && h->open);
    h->open = false;
}

static const ext_host_ops host_ops = {.request = host_request, .request_cancel = host_cancel};

/* ---- the client's side ---- */

static int replies, notifies, closes;

static void on_reply(void *ud, json_t *result, int code, const char *msg)
{
    CHECK(result || msg);
    replies++;
}

static void on_notify(void *ud, const char *method, json_t *params)
{
    CHECK(method);
    notifies++;
}

static void on_closed(void *ud, gd_err e, const char *why)
{
    CHECK(why && e != GD_OK);
    closes++;
}

static ext_host H;
static extension X = {.name = "fuzz"};
static mcp_rpc *R;

static void run(void *arg)
{
    json_t *cfg = json_pack("{s:s, s:s, s:s}", "name", "fuzz", "type", "stdio", "cmd", "x");
    char err[256];
    mcp_rpc_cb cb = {.notify = on_notify, .closed = on_closed};
    nreqs = 0;
    R = mcp_rpc_new(cfg, &H, &X, &cb, err, sizeof err);
    CHECK(R);
    json_decref(cfg);
    for (int i = 0; i < 3; i++)
        CHECK(mcp_rpc_request(R, i == 2 ? "tools/call" : "tools/list", json_object(), 0, on_reply,
                              NULL) > 0);
    stdio_t *t = T;
    t->depth++;
    read_out(t, true);
    on_err(NULL, t->err, 0, t);
    t->depth--;
}

static void finish(void *arg)
{
    for (int i = 0; i < nreqs; i++) /* answer every other open request, leave the rest */
        if (reqs[i].open && i % 2 == 0) {
            reqs[i].open = false;
            reqs[i].fn(reqs[i].rud, i % 4 ? json_pack("{s:s}", "action", "decline") : NULL, -1,
                       "declined");
        }
    mcp_rpc_close(R);
    R = NULL;
}

static void settle(void *arg) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        char err[64];
        log_configure("off", err, sizeof err);
        mcp_rpc_transport_new = factory;
        H = (ext_host){.l = fuzz_loop(), .cwd = "/tmp/a dir", .ops = &host_ops};
        init = true;
    }
    in_data = data;
    in_size = size < FUZZ_MAX_INPUT ? size : FUZZ_MAX_INPUT;
    fuzz_on_loop(run, NULL);
    fuzz_on_loop(finish, NULL);
    fuzz_on_loop(settle, NULL); /* what close posted (the reap) has run */
    return 0;
}
