/* cli/server: the server itself (`goosed [options]`, `goose server [options]`): flags and config,
 * the store, the HTTP server, and a graceful stop on SIGTERM/SIGINT. */
#include <errno.h>
#include <execinfo.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "api/api.h"
#include "auth/auth.h"
#include "auth/user_settings.h"
#include "cli/cli.h"
#include "config/config.h"
#include "config/permissions.h"
#include "config/secrets.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "extensions/allowlist.h"
#include "extensions/ext_config.h"
#include "extensions/sandbox.h"
#include "http/http.h"
#include "http/tls.h"
#include "store/store.h"

#define SHUTDOWN_GRACE_MS 10000

/* SIGHUP: the certificate and key read again (a renewed certificate served without a restart),
 * as nginx does on a reload; the connections already open keep theirs. A pair that does not load
 * leaves the one served in place. */
static void reload_tls(http_server *srv, const config *cfg)
{
    if (!http_tls_fingerprint(srv)) {
        log_info("server", "SIGHUP received: nothing to reload (goosed serves plain HTTP; a "
                           "SIGHUP reloads only the TLS certificate)");
        return;
    }
    char fp[TLS_FINGERPRINT_LEN], err[PATH_MAX + 512];
    char was[TLS_FINGERPRINT_LEN];
    snprintf(was, sizeof was, "%s", http_tls_fingerprint(srv));
    if (http_tls_reload(srv, cfg, fp, sizeof fp, err, sizeof err) != GD_OK) {
        log_error("server",
                  "SIGHUP received: the TLS certificate was not reloaded, the one "
                  "served stays (SHA-256 fingerprint %s): %s",
                  was, err);
        return;
    }
    log_write(LOG_INFO, "server",
              "SIGHUP received: TLS certificate reloaded; new connections get SHA-256 "
              "fingerprint %s (was %s)",
              fp, was);
}

/* A crash report, as Redis writes one: goosed is not dumpable (no core file holds its keys), so
 * a crash that happens once in a while is told on stderr: the signal and the stack, addresses
 * included (addr2line -f -e goosed +OFFSET names the function and line); then the signal is
 * raised again, so the process ends as it would have. Only async-signal-safe calls (backtrace was
 * called once before, so that it loads nothing here). AddressSanitizer's own report does this in
 * its builds. */
#if defined(__SANITIZE_ADDRESS__)
#define CRASH_REPORT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRASH_REPORT 0
#endif
#endif
#ifndef CRASH_REPORT
#define CRASH_REPORT 1
#endif

static void put_err(const char *s)
{
    ssize_t ignored = write(STDERR_FILENO, s, strlen(s));
    (void)ignored;
}

static void on_fatal(int sig)
{
    char num[12] = "";
    size_t n = sizeof num - 1;
    for (int v = sig; n > 0; v /= 10) {
        num[--n] = (char)('0' + v % 10);
        if (v < 10) break;
    }
    put_err("goosed: fatal signal ");
    put_err(num + n);
    put_err(sig == SIGSEGV   ? " (SIGSEGV)"
            : sig == SIGBUS  ? " (SIGBUS)"
            : sig == SIGILL  ? " (SIGILL)"
            : sig == SIGFPE  ? " (SIGFPE)"
            : sig == SIGABRT ? " (SIGABRT)"
                             : "");
    put_err("; this is a bug of goosed: please report it with these lines. The stack:\n");
    void *frames[64];
    int nf = backtrace(frames, 64);
    backtrace_symbols_fd(frames, nf, STDERR_FILENO);
    put_err("goosed: (addr2line -f -e goosed +OFFSET names each function and line)\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void crash_report_setup(void)
{
    if (!CRASH_REPORT) return;
    static char alt[64 * 1024]; /* a stack overflow leaves the thread's own stack no room */
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    sigaltstack(&ss, NULL);
    void *one[1];
    backtrace(one, 1); /* loads what it needs now, not in the handler */
    struct sigaction sa = {.sa_handler = on_fatal, .sa_flags = SA_ONSTACK | SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
}

int cli_server(int argc, char **argv)
{
    /* Signals: SIGTERM/SIGINT (stop) and SIGHUP (read the TLS certificate again) are taken by
     * sigwait below, in this thread only (blocked before any thread starts, so every thread
     * inherits the mask). A peer closing a socket, or a file size limit, becomes an error return
     * instead of killing the server. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    crash_report_setup();

    /* Not dumpable: no core file with the API keys in it, and no process of the same user (a
     * tool's shell included, once its capabilities are dropped) can read our memory or
     * /proc/PID/environ. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) perror("goosed: prctl(PR_SET_DUMPABLE)");

    static config cfg;
    cfg_action action;
    char err[1024];
    /* `goose server`: its help and version say so (the options are goosed's). */
    bool as_goose = argc > 0 && !strcmp(argv[0], "server");
    const char *me = as_goose ? "goose server" : "goosed";
    if (config_load(&cfg, argc, argv, &action, err, sizeof err) != GD_OK) {
        fprintf(stderr, "%s: %s\n", me, err);
        return 2;
    }
    if (action == CFG_HELP) {
        const char *u = config_usage();
        if (as_goose)
            printf("Usage: goose server [options]\n\nRuns goosed, the server, with goosed's "
                   "options.\n%s",
                   strchr(u, '\n') + 1);
        else
            fputs(u, stdout);
        return 0;
    }
    if (action == CFG_VERSION) {
        printf("%s %s\n", as_goose ? "goose server (goosed)" : "goosed", GOOSED_VERSION);
        return 0;
    }
    /* batch_scheduling: SCHED_BATCH, set before any thread starts so that every thread (and
     * every child: tools, stdio servers) inherits it. Linux then lets no thread woken by another
     * of goosed's preempt the one that woke it: a provider's token wakes a server thread to send
     * it while the agent's thread goes on to the next token, instead of a context switch each
     * way per token (a fifth to a third less CPU per relayed token with 500 replies on 2 CPUs). A
     * woken thread still runs at once on an idle core; only preemption on wake-up is given up. */
    if (cfg.batch_scheduling) {
        struct sched_param sp = {0};
        if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
            log_warn("server", "cannot set batch_scheduling (SCHED_BATCH): %s", strerror(errno));
    }
    if (ids_init() != 0) {
        fprintf(stderr, "%s: cannot initialise the random number generator\n", me);
        return 1;
    }

    char cfgdir[PATH_MAX];
    snprintf(cfgdir, sizeof cfgdir, "%s", cfg.config_path);
    char *slash = strrchr(cfgdir, '/');
    if (slash) *slash = '\0';
    if (cfg.config_path[0] && secrets_load(cfgdir, err, sizeof err) != GD_OK)
        log_warn("config", "%s (ignored: API keys must come from the environment)", err);
    if (cfg.config_path[0] && permissions_load(cfgdir, err, sizeof err) != GD_OK)
        log_warn("config", "%s (ignored: tools whose answer was \"always\" will ask again)", err);

    sandbox_init(&cfg);                /* how tools run: says so in the log */
    trace_init(cfg.disable_telemetry); /* OTLP export, when an endpoint is configured */

    app a = {.cfg = &cfg, .started_ns = clock_mono_ns()};
    metrics_init(cfg.metrics);
    for (size_t i = 0; i < api_nroutes; i++)
        metrics_http_route(api_routes, i, api_routes[i].method, api_routes[i].pattern);
    allowlist_start();
    ext_config_reserve_header(cfg.trusted_proxy_header); /* before any config is checked */
    a.exts = ext_set_load(&cfg);
    a.st = a.exts ? store_sqlite_open(cfg.data_dir, (size_t)cfg.store_queue_max) : NULL;
    if (!a.st || !(a.agent = agent_new(&cfg, a.st))) {
        fprintf(stderr, "%s: cannot start (out of memory or threads)\n", me);
        sandbox_settle();
        return 1;
    }
    agent_use_extensions(a.agent, a.exts);
    /* Authentication, or the refusal to serve a network address without it (exit status 2). */
    bool refused = auth_setup(&cfg, a.st, err, sizeof err) != GD_OK ||
                   user_settings_init(cfg.data_dir, a.st, err, sizeof err) != GD_OK;
    if (refused) fprintf(stderr, "%s: %s\n", me, err);
    if (!refused) agent_repair(a.agent);
    if (!refused) signins_load(agent_signins(a.agent), cfg.data_dir); /* the local user's */
    char wwhy[PATH_MAX * 3];
    if (config_check_workspaces(&cfg, wwhy, sizeof wwhy)) /* users' sessions are refused */
        log_warn("server", "%s", wwhy);
    http_server *srv =
        refused ? NULL : http_start(&cfg, api_routes, api_nroutes, &a, auth_gate, err, sizeof err);
    http_server *msrv = srv ? api_metrics_listen(&cfg, &a, err, sizeof err) : NULL;
    if (srv && !msrv && err[0]) {
        http_stop(srv, 0);
        srv = NULL;
    }
    if (!srv) {
        if (!refused) log_error("server", "%s", err);
        agent_shutdown(a.agent, 0);
        agent_free(a.agent);
        user_settings_free(); /* its reader of the store stops before the store closes */
        store_close(a.st);
        ext_set_free(a.exts);
        allowlist_stop();
        trace_shutdown();
        sandbox_settle();
        return refused ? 2 : 1;
    }
    cfg.port = http_port(srv);
    const char *lb = strchr(cfg.host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    /* Always printed, whatever the filter: scripts and tests wait for the listening line; the
     * fingerprint comes before it, on stdout too as the real goosed prints it (Goose Desktop
     * pins the certificate with it). */
    const char *fp = http_tls_fingerprint(srv);
    if (fp) {
        log_write(LOG_INFO, "server", "TLS certificate SHA-256 fingerprint: %s", fp);
        printf("GOOSED_CERT_FINGERPRINT=%s\n", fp);
        fflush(stdout);
    }
    log_write(LOG_INFO, "server", "goosed %s listening on %s://%s%s%s:%ld", GOOSED_VERSION,
              http_scheme(srv), lb, cfg.host, rb, cfg.port);
    if (!cfg.provider[0])
        log_info(
            "server",
            "no provider configured yet (set GOOSE_PROVIDER in the environment or config.yaml)");

    int sig = 0;
    while (sigwait(&stop, &sig) == 0 && sig == SIGHUP)
        reload_tls(srv, &cfg);
    log_info("server", "%s received: finishing requests in flight, then stopping",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* Order: refuse new connections; let replies finish (then cancel them), which ends their
     * streams; finish the requests left; then the provider loop and the store. */
    http_refuse_new(srv);
    bool ended = agent_shutdown(a.agent, SHUTDOWN_GRACE_MS);
    bool closed = http_stop(msrv, SHUTDOWN_GRACE_MS) && http_stop(srv, SHUTDOWN_GRACE_MS);
    if (!ended || !closed) {
        /* A reply or a connection still holds the agent: freeing it would pull memory from
         * under them. Every stored message is durable already; the process ends here. */
        log_error("server", "exiting with %s still running", ended ? "a connection" : "a reply");
        sandbox_settle();
        return 1;
    }
    agent_free(a.agent);
    user_settings_free();
    store_close(a.st);
    ext_set_free(a.exts);
    allowlist_stop();
    trace_shutdown(); /* the spans of the last requests are sent (one short try) */
    log_flush();      /* the access lines of the last requests come before the last line */
    sandbox_settle();
    log_write(LOG_INFO, "server", "shutdown complete");
    return 0;
}
