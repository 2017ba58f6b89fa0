/* bench/startup: time from exec to the first answered request.
 *
 *   startup [-n N] [-v] BIN  runs BIN --host 127.0.0.1 --port P on a fresh HOME, N times (default
 *                            20). Each time: fork/exec, poll-connect until the port accepts, send
 *                            GET /status, read the whole answer, stop the clock, SIGTERM the
 *                            server and wait for it. Prints one line:
 *                            n=N median_ms=X min_ms=Y max_ms=Z bad_exits=K
 *                            (K: runs where the server did not exit 0 after SIGTERM; its log goes
 *                            to stderr, and the timing still counts)
 *   startup -H HOME ... BIN  the same on HOME, which is kept as it is (its data: a store already
 *                            filled), the server's log in HOME/goosed-startup.log
 *   startup --free-port      prints a free TCP port on 127.0.0.1
 *
 * The child gets only HOME (a new directory under $TMPDIR or /tmp, removed afterwards) and PATH, so
 * neither the caller's config nor its data is read. Exit 0 on success, 1 when a run fails (the
 * server did not start, or answered something other than 200 "ok"), 2 on usage errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 5000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

/* A port the kernel says is free right now on 127.0.0.1; 0 on error. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Waits up to ms for pid; returns its wait status, or -1 if it is still running. */
static int wait_for(pid_t pid, int ms)
{
    double end = now_ms() + ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r < 0) return -1;
        if (now_ms() > end) return -1;
        sleep_us(1000);
    }
}

/* Connects to 127.0.0.1:port, retrying while refused; -1 if the child died or time ran out. */
static int poll_connect(int port, pid_t child)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double end = now_ms() + TIMEOUT_MS;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
        int e = errno;
        close(fd);
        if (e != ECONNREFUSED && e != EAGAIN && e != EINTR) {
            fprintf(stderr, "startup: connect: %s\n", strerror(e));
            return -1;
        }
        int st;
        if (waitpid(child, &st, WNOHANG) == child) {
            fprintf(stderr, "startup: server exited before listening (status %d)\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            return -1;
        }
        if (now_ms() > end) {
            fprintf(stderr, "startup: port %d did not accept within %d ms\n", port, TIMEOUT_MS);
            return -1;
        }
        sleep_us(200);
    }
}

/* Sends GET /status, reads until the server closes; 0 when the answer is 200 with body "ok". */
static int get_status(int fd)
{
    static const char req[] =
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        perror("startup: write");
        return -1;
    }
    char buf[8192];
    size_t n = 0;
    double end = now_ms() + TIMEOUT_MS;
    for (;;) {
        int left = (int)(end - now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            fprintf(stderr, "startup: no complete answer within %d ms\n", TIMEOUT_MS);
            return -1;
        }
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            perror("startup: read");
            return -1;
        }
        if (r == 0 || n + (size_t)r == sizeof buf - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    const char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || !body || strcmp(body + 4, "ok") != 0) {
        fprintf(stderr, "startup: unexpected answer:\n%s\n", buf);
        return -1;
    }
    return 0;
}

/* One run; returns elapsed ms, or a negative value on failure. *bad_exit is set when the server
 * did not exit 0 after SIGTERM. */
static double run_once(const char *bin, const char *keep_home, int verbose, int *bad_exit)
{
    const char *tmp = getenv("TMPDIR");
    char home[256];
    if (keep_home) {
        snprintf(home, sizeof home, "%s", keep_home);
    } else {
        snprintf(home, sizeof home, "%s/goosed-startup.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(home)) {
            perror("startup: mkdtemp");
            return -1;
        }
    }
    int port = free_port();
    char portstr[16], homeenv[300], logpath[300];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(homeenv, sizeof homeenv, "HOME=%s", home);
    snprintf(logpath, sizeof logpath, "%s/goosed-startup.log", home);
    const char *path = getenv("PATH");
    char pathenv[4096];
    snprintf(pathenv, sizeof pathenv, "PATH=%s", path ? path : "/usr/bin:/bin");

    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("startup: fork");
        if (!keep_home) rm_tree(home);
        return -1;
    }
    if (pid == 0) {
        int log = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDWR);
        if (log >= 0) dup2(log, 2);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        char *argv[] = {(char *)bin, "--host", "127.0.0.1", "--port", portstr, NULL};
        char *envp[] = {homeenv, pathenv, NULL};
        execve(bin, argv, envp);
        _exit(127);
    }

    double ms = -1;
    *bad_exit = 0;
    int fd = poll_connect(port, pid);
    if (fd >= 0) {
        if (get_status(fd) == 0) ms = now_ms() - t0;
        close(fd);
    }

    kill(pid, SIGTERM);
    int st = wait_for(pid, 12000);
    if (st == -1) {
        fprintf(stderr, "startup: server did not exit within 12 s of SIGTERM; killing it\n");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        *bad_exit = 1;
    } else if (ms >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "startup: server exited with status %d after SIGTERM\n",
                WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        *bad_exit = 1;
    }
    if (ms < 0 || *bad_exit) {
        /* Show the server's own words before its HOME goes. */
        FILE *f = fopen(logpath, "r");
        if (f) {
            char line[512];
            fprintf(stderr, "startup: server log:\n");
            while (fgets(line, sizeof line, f))
                fprintf(stderr, "  %s", line);
            fclose(f);
        }
    }
    if (ms >= 0 && verbose) {
        printf("run: %.2f ms\n", ms);
    }
    if (!keep_home) rm_tree(home);
    return ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = 20, verbose = 0, bad_exits = 0;
    const char *bin = NULL, *keep_home = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--free-port") == 0) {
            int p = free_port();
            if (!p) {
                perror("startup: free port");
                return 1;
            }
            printf("%d\n", p);
            return 0;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) {
            keep_home = argv[++i];
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (argv[i][0] != '-' && !bin) {
            bin = argv[i];
        } else {
            fprintf(stderr, "usage: startup [-n N] [-H HOME] [-v] BIN | startup --free-port\n");
            return 2;
        }
    }
    if (!bin || n < 1 || n > 10000) {
        fprintf(stderr, "usage: startup [-n N] [-H HOME] [-v] BIN | startup --free-port\n");
        return 2;
    }
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "startup: %s: %s\n", bin, strerror(errno));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    double *ms = calloc((size_t)n, sizeof *ms);
    if (!ms) return 1;
    for (int i = 0; i < n; i++) {
        int bad = 0;
        ms[i] = run_once(bin, keep_home, verbose, &bad);
        bad_exits += bad;
        if (ms[i] < 0) {
            fprintf(stderr, "startup: run %d of %d failed\n", i + 1, n);
            free(ms);
            return 1;
        }
    }
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    double median = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
    printf("n=%d median_ms=%.2f min_ms=%.2f max_ms=%.2f bad_exits=%d\n", n, median, ms[0],
           ms[n - 1], bad_exits);
    free(ms);
    return 0;
}
