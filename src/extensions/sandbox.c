/* sandbox: the tools' environment, privileges and forbidden directories (see sandbox.h). */
#include "extensions/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"

#define LOG_MOD "sandbox"

extern char **environ;

#define SB_PATH_MAX  4096
#define SB_LINKS_MAX 40 /* symbolic links followed in one path, as the kernel's ELOOP */

/* ---- the environment ---- */

static const char *const ENV_ALLOWED[] = {"PATH", "HOME",     "USER", "LOGNAME", "SHELL",
                                          "LANG", "LANGUAGE", "TERM", "TZ",      "TMPDIR"};

static bool env_allowed(const char *entry)
{
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry) return false;
    size_t n = (size_t)(eq - entry);
    if (n > 3 && !strncmp(entry, "LC_", 3)) return true;
    for (size_t i = 0; i < sizeof ENV_ALLOWED / sizeof *ENV_ALLOWED; i++)
        if (strlen(ENV_ALLOWED[i]) == n && !strncmp(entry, ENV_ALLOWED[i], n)) return true;
    return false;
}

/* A copy of the entries of env for which keep() is true (all when keep is NULL), in one
 * allocation: the pointer array, then the strings. */
static char **env_copy(char *const *env, bool (*keep)(const char *))
{
    size_t n = 0, bytes = 0;
    for (size_t i = 0; env && env[i]; i++)
        if (!keep || keep(env[i])) {
            n++;
            bytes += strlen(env[i]) + 1;
        }
    char **out = malloc((n + 1) * sizeof *out + bytes);
    if (!out) return NULL;
    char *p = (char *)(out + n + 1);
    size_t j = 0;
    for (size_t i = 0; env && env[i]; i++)
        if (!keep || keep(env[i])) {
            size_t l = strlen(env[i]) + 1;
            memcpy(p, env[i], l);
            out[j++] = p;
            p += l;
        }
    out[j] = NULL;
    return out;
}

char **sandbox_env_new(void)
{
    return env_copy(environ, env_allowed);
}

char **sandbox_env_dup(char *const *env)
{
    return env_copy(env, NULL);
}

void sandbox_env_free(char **env)
{
    free(env);
}

/* ---- protected directories ---- */

/* path (absolute) with every symbolic link resolved, as far as the path exists: the real path
 * of its longest existing prefix, then the rest as written. `.` and `..` are resolved too, after
 * the links before them, as the kernel does. false when the path is too long or has too many
 * links. */
static bool resolve_real(const char *path, char *out, size_t n)
{
    char rest[SB_PATH_MAX * 2], tmp[SB_PATH_MAX * 2];
    if (path[0] != '/' || strlen(path) >= sizeof rest || n < 2) return false;
    strcpy(rest, path);
    size_t len = 0; /* out[0..len) is the resolved part, "" standing for "/" */
    int links = 0;
    bool missing = false; /* past the existing prefix: the rest is taken as written */
    const char *p = rest;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 1 && p[0] == '.') {
            p += cl;
            continue;
        }
        if (cl == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0) len--;
            p += cl;
            continue;
        }
        if (len + 1 + cl + 1 > n) return false;
        size_t at = len;
        out[len++] = '/';
        memcpy(out + len, p, cl);
        len += cl;
        out[len] = '\0';
        p += cl;
        if (missing) continue;
        struct stat st;
        if (lstat(out, &st) < 0) {
            missing = true;
            continue;
        }
        if (!S_ISLNK(st.st_mode)) continue;
        if (++links > SB_LINKS_MAX) return false;
        char target[SB_PATH_MAX];
        ssize_t tl = readlink(out, target, sizeof target - 1);
        if (tl <= 0) return false;
        target[tl] = '\0';
        int w = snprintf(tmp, sizeof tmp, "%s/%s", target, p);
        if (w < 0 || (size_t)w >= sizeof tmp) return false;
        memcpy(rest, tmp, (size_t)w + 1);
        p = rest;
        len = target[0] == '/' ? 0 : at; /* an absolute target starts again from the root */
    }
    if (len == 0) out[len++] = '/';
    out[len] = '\0';
    return true;
}

/* What sandbox_init made (set once at start, before any tool runs). */
static sandbox_cfg g_sb;
static bool g_sb_set;

bool sandbox_real_path_allowed(const ext_host *h, const char *real_path)
{
    for (size_t i = 0; g_sb_set && i < sizeof g_sb.secret_files / sizeof *g_sb.secret_files; i++)
        if (g_sb.secret_files[i][0] && !strcmp(real_path, g_sb.secret_files[i])) return false;
    if (!h || !h->protected_dirs) return true;
    for (const char *const *d = h->protected_dirs; *d; d++) {
        if (!(*d)[0]) continue;
        if (fs_inside(real_path, *d)) return false;
        char real_dir[SB_PATH_MAX];
        if ((*d)[0] == '/' && resolve_real(*d, real_dir, sizeof real_dir) &&
            fs_inside(real_path, real_dir))
            return false;
    }
    return true;
}

bool sandbox_path_allowed(const ext_host *h, const char *resolved_path)
{
    if (!h || !h->protected_dirs || !h->protected_dirs[0]) return true;
    char real[SB_PATH_MAX];
    if (!resolve_real(resolved_path, real, sizeof real)) return false; /* fail closed */
    return sandbox_real_path_allowed(h, resolved_path) && sandbox_real_path_allowed(h, real);
}

/* ---- privileges and limits of a child process ---- */

void sandbox_child_prepare(sandbox_child *sc, const sandbox_cfg *sb)
{
    sc->root = geteuid() == 0;
    sc->bwrap = sb && !sb->open;
    sc->nlimits = 0;
    sc->cgroup_procs[0] = '\0';
    sc->slirp = sb && !sb->open && sb->net == SANDBOX_NET_OUTSIDE ? sb->slirp : NULL;
    sc->resolv = sc->slirp ? sb->resolv : NULL;
    sc->unreach[0] = (net_v4){0xa9fe0000u, 16}; /* 169.254.0.0/16: the metadata services */
    sc->nunreach = 1;
    sc->cap_last = 63; /* unknown: try them all (the kernel says EINVAL past its last) */
    if (sb) {
        const struct {
            int res;
            long v;
        } l[] = {{RLIMIT_AS, sb->max_memory},
                 {RLIMIT_CPU, sb->max_cpu_seconds},
                 {RLIMIT_FSIZE, sb->max_file_size},
                 {RLIMIT_NPROC, sb->max_processes}};
        for (size_t i = 0; i < sizeof l / sizeof *l; i++)
            if (l[i].v > 0) {
                sc->limits[sc->nlimits].resource = l[i].res;
                sc->limits[sc->nlimits++].value = (unsigned long)l[i].v;
            }
    }
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char b[16];
        ssize_t r = read(fd, b, sizeof b - 1);
        close(fd);
        if (r > 0) {
            b[r] = '\0';
            int v = atoi(b);
            if (v > 0 && v < 64) sc->cap_last = v;
        }
    }
}

void sandbox_child_reach(sandbox_child *sc, const net_allow *reach)
{
    if (!reach || !sc->slirp) return;
    sc->nunreach = net_v4_unreachable(reach, sc->unreach, SANDBOX_UNREACH_MAX);
    if (sc->nunreach < 0)
        log_error(LOG_MOD,
                  "a command of a user who is not an admin gets no network: user_extension_hosts "
                  "cuts the private networks into more than %d pieces (name fewer, larger ones)",
                  SANDBOX_UNREACH_MAX);
}

void sandbox_child_cgroup(sandbox_child *sc, const char *dir)
{
    sc->cgroup_procs[0] = '\0';
    if (dir && dir[0]) snprintf(sc->cgroup_procs, sizeof sc->cgroup_procs, "%s/cgroup.procs", dir);
}

int sandbox_child_cgroup_enter(const sandbox_child *sc)
{
    if (!sc->cgroup_procs[0]) return 0;
    int fd = open(sc->cgroup_procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    if (write(fd, "0", 1) != 1) {
        int e = errno ? errno : EIO;
        close(fd);
        return e;
    }
    if (close(fd) < 0) return errno;
    return 0;
}

int sandbox_child_enter(const sandbox_child *sc)
{
    /* A root goosed's bubblewrap needs its capabilities to make the namespaces (mapping uid 0 in
     * a user namespace needs them too); it drops them all for the command (--cap-drop ALL) and
     * sets no_new_privs itself. */
    if (sc->bwrap && sc->root) return 0;
    if (sc->root)
        for (int c = 0; c <= sc->cap_last; c++)
            if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0UL, 0UL, 0UL) < 0 && errno != EINVAL)
                return errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 && errno != EINVAL)
        return errno;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0) return errno;
    if (sc->root && prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0) return errno;
    return 0;
}

int sandbox_child_limits(const sandbox_child *sc)
{
    for (int i = 0; i < sc->nlimits; i++) {
        struct rlimit rl = {.rlim_cur = sc->limits[i].value, .rlim_max = sc->limits[i].value};
        /* CPU: SIGXCPU at the limit (the process can tell), SIGKILL a second later */
        if (sc->limits[i].resource == RLIMIT_CPU) rl.rlim_max++;
        struct rlimit old;
        if (getrlimit(sc->limits[i].resource, &old) == 0 && old.rlim_max != RLIM_INFINITY) {
            if (old.rlim_max < rl.rlim_max) rl.rlim_max = old.rlim_max; /* never above it */
            if (rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
        }
        if (setrlimit(sc->limits[i].resource, &rl) < 0) return errno;
    }
    return 0;
}

/* ---- a network of the command's own: slirp4netns ---- */

/* The fds sandbox_child_net leaves in the child, as bwrap's argv names them. */
enum { NET_FD_INFO = 4, NET_FD_BLOCK = 5, NET_FD_RESOLV = 6, NET_FD_HOLD = 7 };
#define NET_FD_INFO_S   "4"
#define NET_FD_BLOCK_S  "5"
#define NET_FD_RESOLV_S "6"

/* Moves the n fds of from to the numbers of to (through copies above them, so that none is
 * overwritten before it is moved), without FD_CLOEXEC. Async-signal-safe. */
static int move_fds(const int *from, const int *to, int n)
{
    int hi[4];
    for (int i = 0; i < n; i++) {
        if ((hi[i] = fcntl(from[i], F_DUPFD, 16)) < 0) return errno;
        close(from[i]);
    }
    for (int i = 0; i < n; i++) {
        if (dup2(hi[i], to[i]) < 0) return errno;
        close(hi[i]);
    }
    return 0;
}

static void close_above(int lo)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0) == 0) return;
#endif
    for (int fd = lo; fd < 1024; fd++)
        close(fd);
}

/* In the network namespace nfd (joining first its owner, the user namespace ufd, when that is not
 * ours): a route that makes each network of sc->unreach unreachable from the command (link-local
 * addresses, 169.254.0.0/16, where the cloud metadata services answer with the machine's
 * credentials; for a user who is not an admin, the private networks and the host's addresses
 * too). A more specific route wins: slirp4netns's own network (10.0.2.0/24, its gateway and
 * name server), made later, stays reachable inside 10.0.0.0/8. In a process of its own (it
 * changes namespaces). 0 when all are in place. Async-signal-safe. */
static int net_block(const sandbox_child *sc, int ufd, bool own_userns, int nfd)
{
    if (sc->nunreach < 0) return 1;
    if (!own_userns && setns(ufd, CLONE_NEWUSER) < 0) return 1;
    if (setns(nfd, CLONE_NEWNET) < 0) return 1;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) return 1;
    for (int i = 0; i < sc->nunreach; i++) {
        struct {
            struct nlmsghdr n;
            struct rtmsg r;
            struct rtattr a;
            unsigned char dst[4];
        } req;
        memset(&req, 0, sizeof req);
        req.n.nlmsg_len = sizeof req;
        req.n.nlmsg_type = RTM_NEWROUTE;
        req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
        req.n.nlmsg_seq = (unsigned)i + 1;
        req.r.rtm_family = AF_INET;
        req.r.rtm_dst_len = (unsigned char)sc->unreach[i].bits;
        req.r.rtm_table = RT_TABLE_MAIN;
        req.r.rtm_protocol = RTPROT_BOOT;
        req.r.rtm_scope = RT_SCOPE_UNIVERSE;
        req.r.rtm_type = RTN_UNREACHABLE;
        req.a.rta_len = RTA_LENGTH(4);
        req.a.rta_type = RTA_DST;
        uint32_t net = sc->unreach[i].net;
        for (int k = 0; k < 4; k++)
            req.dst[k] = (unsigned char)(net >> (24 - 8 * k));
        if (send(s, &req, sizeof req, 0) != (ssize_t)sizeof req) return 1;
        char b[512];
        ssize_t r = recv(s, b, sizeof b, 0);
        const struct nlmsghdr *h = (const struct nlmsghdr *)b;
        if (r < (ssize_t)(sizeof *h + sizeof(struct nlmsgerr)) || h->nlmsg_type != NLMSG_ERROR ||
            ((const struct nlmsgerr *)NLMSG_DATA(h))->error != 0)
            return 1;
    }
    return 0;
}

/* The helper: reads bwrap's {"child-pid": N} from info, waits for bwrap's loopback, makes
 * sc->unreach unreachable, then becomes slirp4netns for that process's network
 * namespace (joining the user namespace that owns it), with ready (bwrap's --block-fd) as its
 * --ready-fd and hold as its --exit-fd. Any step that fails ends it: the command then runs with
 * its loopback alone. */
__attribute__((noreturn)) static void net_helper(const sandbox_child *sc, pid_t parent, int info,
                                                 int ready, int hold)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int nul = open("/dev/null", O_RDWR);
    if (nul < 0) _exit(1);
    for (int i = 0; i < 3; i++)
        if (dup2(nul, i) < 0) _exit(1);
    char b[512];
    size_t got = 0;
    while (got < sizeof b - 1) {
        ssize_t r = read(info, b + got, sizeof b - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        if (memchr(b, '}', got)) break;
    }
    b[got] = '\0';
    const char *k = strstr(b, "\"child-pid\"");
    if (!k) _exit(1); /* bwrap failed before making its namespaces: it says why itself */
    k += sizeof "\"child-pid\"" - 1;
    while (*k == ' ' || *k == ':')
        k++;
    char pid[16];
    size_t n = 0;
    while (*k >= '0' && *k <= '9' && n < sizeof pid - 1)
        pid[n++] = *k++;
    pid[n] = '\0';
    if (!n) _exit(1);
    /* bwrap gives the namespace's loopback its 127.0.0.1 itself, and dies when the address is
     * there already: slirp4netns, which sets the loopback up (and the kernel then adds the
     * address), must start after that. Nothing tells when; the namespace's routes show it. */
    char fib[48] = "/proc/";
    memcpy(fib + 6, pid, n);
    memcpy(fib + 6 + n, "/net/fib_trie", sizeof "/net/fib_trie");
    for (int i = 0;; i++) {
        int fd = open(fib, O_RDONLY | O_CLOEXEC);
        if (fd < 0) _exit(1); /* bwrap's child is gone */
        ssize_t r = read(fd, b, sizeof b - 1);
        close(fd);
        b[r > 0 ? r : 0] = '\0';
        if (strstr(b, "127.0.0.1")) break;
        if (i == 10000) _exit(1); /* 10 s: something else is wrong; no network */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    /* The user namespace that owns the network namespace: slirp4netns must join it to reach the
     * network namespace. Not /proc/PID/ns/user: unprivileged, bwrap's child moves on into a
     * user namespace nested in it (to map the user back after mounting /dev), which holds no
     * rights over the network namespace. */
    memcpy(fib + 6 + n, "/ns/net", sizeof "/ns/net");
    int nfd = open(fib, O_RDONLY | O_CLOEXEC);
    int ufd = nfd < 0 ? -1 : ioctl(nfd, NS_GET_USERNS);
    struct stat mine, owner;
    if (ufd < 0 || stat("/proc/self/ns/user", &mine) < 0 || fstat(ufd, &owner) < 0) _exit(1);
    bool own = mine.st_ino == owner.st_ino && mine.st_dev == owner.st_dev;
    /* Before slirp4netns lets the command go: the metadata services (and, for a user who is
     * not an admin, the private networks) out of its reach. */
    pid_t g = fork();
    if (g < 0) _exit(1);
    if (g == 0) _exit(net_block(sc, ufd, own, nfd));
    int st = 0;
    while (waitpid(g, &st, 0) < 0)
        if (errno != EINTR) _exit(1);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) _exit(1); /* no network rather than that */
    const int from[3] = {ready, hold, ufd}, to[3] = {3, 4, 5};
    if (move_fds(from, to, 3)) _exit(1);
    close_above(6);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* --disable-host-loopback: the gateway (10.0.2.2) does not lead to the host's 127.0.0.1;
     * the namespace's own 127.0.0.1 is its own. --enable-seccomp (and, as root,
     * --enable-sandbox): what parses the command's packets runs with as little as it needs.
     * Without root, --enable-sandbox would join /proc/PID/ns/user, the nested namespace where
     * uid 0 is not mapped, and fail. */
    char *const argv[] = {(char *)sc->slirp,
                          "--configure",
                          "--mtu=65520",
                          "--disable-host-loopback",
                          "--enable-seccomp",
                          own ? "--enable-sandbox" : "--userns-path=/proc/self/fd/5",
                          "--ready-fd=3",
                          "--exit-fd=4",
                          pid,
                          "tap0",
                          NULL};
    char *const envp[] = {NULL};
    execve(sc->slirp, argv, envp);
    _exit(127);
}

int sandbox_child_net(const sandbox_child *sc, pid_t *helper)
{
    if (helper) *helper = 0;
    if (!sc->slirp) return 0;
    int info[2], block[2], hold[2], resolv[2];
    if (pipe(info) < 0) return errno;
    if (pipe(block) < 0 || pipe(hold) < 0 || pipe(resolv) < 0) return errno;
    size_t len = strlen(sc->resolv); /* at most 1 KiB: the pipe takes it whole */
    if (write(resolv[1], sc->resolv, len) != (ssize_t)len) return errno ? errno : EIO;
    close(resolv[1]);
    pid_t self = getpid();
    pid_t h = fork();
    if (h < 0) return errno;
    if (h == 0) {
        close(info[1]);
        close(block[0]);
        close(hold[1]);
        close(resolv[0]);
        net_helper(sc, self, info[0], block[1], hold[0]);
    }
    if (helper) *helper = h;
    close(info[0]);
    close(block[1]);
    close(hold[0]);
    const int from[4] = {info[1], block[0], resolv[0], hold[1]};
    const int to[4] = {NET_FD_INFO, NET_FD_BLOCK, NET_FD_RESOLV, NET_FD_HOLD};
    return move_fds(from, to, 4);
}

void sandbox_child_net_close(const sandbox_child *sc)
{
    if (!sc->slirp) return;
    for (int fd = NET_FD_INFO; fd <= NET_FD_HOLD; fd++)
        close(fd);
}

/* The file /etc/resolv.conf names: itself, or where its symbolic links lead (also when that
 * does not exist: systemd-resolved's is under /run, which the sandbox does not have); "" when
 * there is none. */
static void resolv_dest(char *out, size_t n)
{
    struct stat st;
    out[0] = '\0';
    if (lstat("/etc/resolv.conf", &st) < 0) return;
    if (!S_ISLNK(st.st_mode)) {
        snprintf(out, n, "/etc/resolv.conf");
        return;
    }
    char real[SB_PATH_MAX];
    if (realpath("/etc/resolv.conf", real)) {
        snprintf(out, n, "%s", real);
        return;
    }
    char t[SB_PATH_MAX];
    ssize_t l = readlink("/etc/resolv.conf", t, sizeof t - 1);
    if (l <= 0) return;
    t[l] = '\0';
    if (t[0] == '/')
        snprintf(out, n, "%s", t);
    else if (snprintf(out, n, "/etc/%s", t) >= (int)n)
        out[0] = '\0';
}

/* The sandbox's /etc/resolv.conf: the host's search domains and options, with slirp4netns's
 * name server (10.0.2.3, which forwards to the host's: a host's 127.0.0.53 cannot be reached
 * from the namespace), and where it goes: /etc/resolv.conf, or the file it links to (bound over
 * it; a systemd-resolved host's /run/systemd/resolve/stub-resolv.conf is made in the sandbox). */
static void resolv_make(sandbox_cfg *sb)
{
    size_t n = 0;
    FILE *f = fopen("/etc/resolv.conf", "re");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            const char *p = line + strspn(line, " \t");
            if ((strncmp(p, "search", 6) && strncmp(p, "domain", 6) && strncmp(p, "options", 7)) ||
                !strchr(line, '\n') || n + strlen(line) + 32 >= sizeof sb->resolv)
                continue;
            memcpy(sb->resolv + n, line, strlen(line));
            n += strlen(line);
        }
        fclose(f);
    }
    snprintf(sb->resolv + n, sizeof sb->resolv - n, "nameserver 10.0.2.3\n");
    resolv_dest(sb->resolv_dest, sizeof sb->resolv_dest);
}

/* ---- a cgroup per command, as root ---- */

#define CG_V1_PIDS     "/sys/fs/cgroup/pids"
#define CG_PENDING_MAX 64
#define CG_KILL_ROUNDS 20 /* of 1 ms: SIGKILLed processes are gone by then */

static char g_cg[64]; /* "" (no cgroups), or the directory of goosed's cgroups */
static long g_cg_max;
static pthread_mutex_t g_cg_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long g_cg_seq;
static char g_cg_pending[CG_PENDING_MAX][SANDBOX_CGROUP_MAX];
static size_t g_cg_npending;

/* SIGKILLs every process in the cgroup dir and removes it, trying up to `rounds` times. true
 * once it is gone. */
static bool cg_kill_rmdir(const char *dir, int rounds)
{
    char procs[SANDBOX_CGROUP_MAX + 16];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    for (int i = 0; i < rounds; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT) return true;
        if (errno != EBUSY) {
            log_warn(LOG_MOD, "cannot remove the cgroup %s: %s", dir, strerror(errno));
            return false;
        }
        FILE *f = fopen(procs, "re");
        if (f) {
            long pid;
            while (fscanf(f, "%ld", &pid) == 1)
                if (pid > 0) kill((pid_t)pid, SIGKILL);
            fclose(f);
        }
        if (i + 1 < rounds) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return false;
}

static bool write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t n = strlen(s);
    bool ok = write(fd, s, n) == (ssize_t)n;
    int e = errno;
    if (close(fd) < 0 && ok) {
        ok = false;
        e = errno;
    }
    errno = e;
    return ok;
}

bool sandbox_cgroup_make(char *dir, size_t n, char *why, size_t whylen)
{
    dir[0] = '\0';
    if (!g_cg[0]) return true;
    pthread_mutex_lock(&g_cg_mu);
    unsigned long seq = ++g_cg_seq;
    size_t kept = 0;
    for (size_t i = 0; i < g_cg_npending; i++)
        if (!cg_kill_rmdir(g_cg_pending[i], 1) && kept++ != i)
            memcpy(g_cg_pending[kept - 1], g_cg_pending[i], sizeof g_cg_pending[i]);
    g_cg_npending = kept;
    pthread_mutex_unlock(&g_cg_mu);
    char max[32];
    snprintf(max, sizeof max, "%ld", g_cg_max);
    if ((size_t)snprintf(dir, n, "%s/%ld-%lu", g_cg, (long)getpid(), seq) >= n) {
        dir[0] = '\0';
        snprintf(why, whylen, "the cgroup path is too long");
        return false;
    }
    /* The parent again, should someone have removed it meanwhile. */
    if ((mkdir(g_cg, 0755) < 0 && errno != EEXIST) || mkdir(dir, 0755) < 0) {
        snprintf(why, whylen, "cannot make the cgroup %s that limits its processes: %s", dir,
                 strerror(errno));
        dir[0] = '\0';
        return false;
    }
    char path[SANDBOX_CGROUP_MAX + 16];
    snprintf(path, sizeof path, "%s/pids.max", dir);
    if (!write_file(path, max)) {
        snprintf(why, whylen, "cannot limit the processes of the cgroup %s: %s", dir,
                 strerror(errno));
        rmdir(dir);
        dir[0] = '\0';
        return false;
    }
    return true;
}

void sandbox_cgroup_remove(char *dir)
{
    if (!dir || !dir[0]) return;
    if (!cg_kill_rmdir(dir, CG_KILL_ROUNDS)) {
        pthread_mutex_lock(&g_cg_mu);
        if (g_cg_npending < CG_PENDING_MAX)
            snprintf(g_cg_pending[g_cg_npending++], SANDBOX_CGROUP_MAX, "%s", dir);
        else
            log_warn(LOG_MOD, "the cgroup %s is left behind (too many to retry)", dir);
        pthread_mutex_unlock(&g_cg_mu);
    }
    dir[0] = '\0';
}

/* As root with a process limit: whether the cgroup v1 `pids` hierarchy can be used, and the
 * directories of goosed processes that no longer run removed. */
static void cgroup_init(long max_processes)
{
    g_cg[0] = '\0';
    if (geteuid() != 0 || max_processes <= 0) return;
    char why[256] = "";
    const char *base = CG_V1_PIDS "/goosed";
    if (access(CG_V1_PIDS "/cgroup.procs", W_OK) < 0)
        snprintf(why, sizeof why, "there is no writable cgroup v1 `pids` hierarchy at %s (%s)",
                 CG_V1_PIDS, strerror(errno));
    else if (mkdir(base, 0755) < 0 && errno != EEXIST)
        snprintf(why, sizeof why, "%s cannot be made: %s", base, strerror(errno));
    if (why[0]) {
        log_warn(LOG_MOD,
                 "goosed runs as root, where RLIMIT_NPROC does not bind, and %s (cgroup v2 is "
                 "not used): the limit on tool processes (tool_max_user_processes) is not "
                 "enforced",
                 why);
        return;
    }
    snprintf(g_cg, sizeof g_cg, "%s", base);
    g_cg_max = max_processes;
    DIR *d = opendir(base);
    for (struct dirent *e; d && (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end != '-') continue;
        /* Ours from an earlier goosed with the same pid, or of a goosed that is gone. */
        if (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char dir[SANDBOX_CGROUP_MAX + 256];
        snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
        if (cg_kill_rmdir(dir, CG_KILL_ROUNDS))
            log_info(LOG_MOD, "removed the stale cgroup %s", dir);
    }
    if (d) closedir(d);
    log_info(LOG_MOD, "tool commands run in a cgroup of at most %ld processes each (%s)",
             max_processes, base);
}

/* ---- bubblewrap ---- */

const sandbox_cfg *sandbox_current(void)
{
    return g_sb_set ? &g_sb : NULL;
}

/* A growing argv of malloc'd strings. */
typedef struct {
    char **v;
    size_t n, cap;
    bool oom;
} sb_argv;

static void av_add(sb_argv *a, const char *s)
{
    if (a->oom) return;
    if (a->n + 2 > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        char **p = realloc(a->v, nc * sizeof *p);
        if (!p) {
            a->oom = true;
            return;
        }
        a->v = p;
        a->cap = nc;
    }
    if (!(a->v[a->n] = strdup(s))) {
        a->oom = true;
        return;
    }
    a->v[++a->n] = NULL;
}

static void av_add2(sb_argv *a, const char *x, const char *y)
{
    av_add(a, x);
    av_add(a, y);
}

static void av_add3(sb_argv *a, const char *x, const char *y, const char *z)
{
    av_add(a, x);
    av_add(a, y);
    av_add(a, z);
}

void sandbox_argv_free(char **argv)
{
    for (char **p = argv; p && *p; p++)
        free(*p);
    free(argv);
}

/* The system, read-only: symbolic links (merged /usr: /bin -> usr/bin) stay links. */
static const char *const SYSTEM_DIRS[] = {"/usr",   "/bin",    "/sbin", "/lib", "/lib32",
                                          "/lib64", "/libx32", "/etc",  "/opt"};
/* Files of /etc that hold secrets: replaced by an empty file. */
static const char *const ETC_SECRET_FILES[] = {"/etc/shadow", "/etc/shadow-", "/etc/gshadow",
                                               "/etc/gshadow-", "/etc/sudoers"};
/* Directories of /etc that hold secrets: replaced by an empty tmpfs. */
static const char *const ETC_SECRET_DIRS[] = {"/etc/ssl/private", "/etc/sudoers.d",
                                              "/etc/ssh/ssh_host_keys"};

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* What of the host's /proc a command must not change or read, also as root: its own procfs is
 * mounted, but uid 0 may write the kernel's settings (/proc/sys: kernel.core_pattern names a
 * program the kernel runs as the host's root) and trigger actions (sysrq) by their file modes
 * alone, capabilities or not. Made read-only as container runtimes do (bwrap covers irq and bus
 * alone, and only where it can write them itself). */
static const char *const PROC_READONLY[] = {
    "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", "/proc/scsi"};
/* ... and those that tell about the host's kernel and other processes: an empty file (or
 * directory). */
static const char *const PROC_MASKED[] = {
    "/proc/kcore",         "/proc/keys", "/proc/key-users", "/proc/timer_list", "/proc/sched_debug",
    "/proc/latency_stats", "/proc/acpi", "/proc/kallsyms",  "/proc/kmsg"};

/* At most this many entries of /etc are looked at, and hidden, as root. */
#define ROOT_ONLY_SCAN 20000
#define ROOT_ONLY_MAX  1024

/* Adds what of dir only root may read to sb->root_only (goosed runs as root): a file without
 * read permission for others, a directory others may not enter (not looked into). */
static void root_only_scan(sandbox_cfg *sb, const char *dir, int depth, size_t *seen)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) && *seen < ROOT_ONLY_SCAN && sb->nroot_only < ROOT_ONLY_MAX) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        (*seen)++;
        char p[SB_PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) < 0) continue;
        bool isdir = S_ISDIR(st.st_mode);
        if (!isdir && !S_ISREG(st.st_mode)) continue; /* links: what they point at is checked */
        bool hide = !(st.st_mode & (isdir ? S_IXOTH : S_IROTH));
        if (hide) {
            char *c = strdup(p);
            if (!c) break;
            sb->root_only[sb->nroot_only] = c;
            sb->root_only_dir[sb->nroot_only++] = isdir;
        } else if (isdir && depth < 8) {
            root_only_scan(sb, p, depth + 1, seen);
        }
    }
    closedir(d);
}

/* Whether path is visible in the sandbox through one of the binds so far (roots). */
static bool under_any(const char *path, const char *const *roots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fs_inside(path, roots[i])) return true;
    return false;
}

/* Whether a component of path (absolute, as configured) is a symbolic link in a directory
 * inside root. true when that cannot be told (fail closed). */
static bool link_inside(const char *path, const char *root)
{
    char pre[SB_PATH_MAX], dir[SB_PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof pre) return true;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/') continue;
        memcpy(pre, path, i);
        pre[i] = '\0';
        struct stat st;
        if (lstat(pre, &st) != 0) return false; /* missing from here on: goosed makes the rest */
        if (!S_ISLNK(st.st_mode)) continue;
        size_t dl = (size_t)(strrchr(pre, '/') - pre);
        memcpy(dir, pre, dl ? dl : 1);
        dir[dl ? dl : 1] = '\0';
        char rdir[SB_PATH_MAX];
        if (!resolve_real(dir, rdir, sizeof rdir) || fs_inside(rdir, root)) return true;
    }
    return false;
}

/* goosed's own directory d (real: its real path) inside the writable bind w. A command could
 * make it while it is missing (a config.yaml planted for goosed's next start), rename a
 * directory above it and make a new one in its place, or point a symbolic link on its way
 * elsewhere. So: a link on its way inside w refuses the command; a missing d is made (0700, as
 * goosed makes it) to be hidden like one that exists; and every directory between w and it is
 * bound onto itself, since a mount point cannot be renamed or removed (EBUSY). false with why. */
static bool guard_protected(sb_argv *a, const char *d, const char *real, const char *w, char *why,
                            size_t whylen)
{
    if (link_inside(d, w)) {
        snprintf(why, whylen,
                 "goosed's own directory %s is reached through a symbolic link inside the "
                 "session's working directory %s, which a command could change; create the "
                 "session in a project directory",
                 d, w);
        return false;
    }
    if (!is_dir(real)) {
        int rc = fs_mkdirs(real, 0700, NULL, 0);
        if (rc != 0 || !is_dir(real)) {
            snprintf(why, whylen,
                     "goosed's own directory %s, inside the session's working directory, is not "
                     "a directory and cannot be made one: %s",
                     real, rc ? strerror(errno) : "something else is there");
            return false;
        }
    }
    char up[SB_PATH_MAX];
    size_t wl = strlen(w);
    for (const char *s = real + wl + 1; (s = strchr(s, '/')); s++) {
        size_t ul = (size_t)(s - real);
        memcpy(up, real, ul);
        up[ul] = '\0';
        av_add3(a, "--bind", up, up);
    }
    return true;
}

#define SB_MAX_BINDS 32

/* The read-only directories a stdio server's executable and absolute path arguments need:
 * an executable outside the system is bound with its directory (its prefix when that is a bin/
 * directory, as /opt/node/bin/node needs /opt/node/lib); a path argument inside a node_modules
 * tree with the directory above node_modules (the package's dependencies), else its directory. */
static size_t server_paths(char *const *cmd, char binds[][SB_PATH_MAX], size_t max)
{
    size_t n = 0;
    for (size_t i = 0; cmd[i] && n < max; i++) {
        if (cmd[i][0] != '/') continue;
        char real[SB_PATH_MAX];
        if (!realpath(cmd[i], real)) continue;
        bool sys = false;
        for (size_t k = 0; k < sizeof SYSTEM_DIRS / sizeof *SYSTEM_DIRS; k++)
            if (fs_inside(real, SYSTEM_DIRS[k])) sys = true;
        if (sys) continue;
        char *nm = strstr(real, "/node_modules/");
        if (nm) {
            *nm = '\0';
        } else if (!is_dir(real)) {
            char *sl = strrchr(real, '/');
            if (sl) *sl = '\0';
            sl = strrchr(real, '/');
            if (i == 0 && sl && !strcmp(sl, "/bin")) *sl = '\0';
        }
        if (!real[0] || !strcmp(real, "/")) continue;
        snprintf(binds[n++], SB_PATH_MAX, "%s", real);
    }
    return n;
}

char **sandbox_argv_new(const sandbox_cfg *sb, const ext_host *h, sandbox_kind kind,
                        const char *cwd, char *const *cmd, char *why, size_t whylen)
{
    char rcwd[SB_PATH_MAX] = "";
    if (cwd) {
        if (!resolve_real(cwd, rcwd, sizeof rcwd)) {
            snprintf(why, whylen, "the working directory '%s' cannot be resolved", cwd);
            return NULL;
        }
        char now[SB_PATH_MAX] = "";
        if (h && h->cwd_exact && h->cwd &&
            (!resolve_real(h->cwd, now, sizeof now) || strcmp(now, h->cwd))) {
            snprintf(why, whylen,
                     "the session's working directory %s is reached through a link now (to %s); "
                     "nothing of a user who is not an admin runs there",
                     h->cwd, now);
            return NULL;
        }
        if (!strcmp(rcwd, "/")) {
            snprintf(why, whylen,
                     "the session's working directory is /: the sandbox does not make the whole "
                     "file system writable; create the session in a project directory");
            return NULL;
        }
        if (!sandbox_real_path_allowed(h, rcwd)) {
            snprintf(why, whylen,
                     "the session's working directory '%s' is inside goosed's own configuration "
                     "or data directory",
                     rcwd);
            return NULL;
        }
    }
    sb_argv a = {0};
    const char *roots[SB_MAX_BINDS + 16], *wroots[2]; /* wroots: the writable binds */
    size_t nroots = 0, nwroots = 0;
    av_add(&a, sb->bwrap);
    av_add(&a, "--die-with-parent");
    av_add(&a, "--new-session");
    av_add(&a, "--unshare-pid");
    av_add(&a, "--unshare-ipc");
    av_add(&a, "--unshare-uts");
    av_add(&a, "--unshare-cgroup-try");
    if (!sb->root) av_add(&a, "--unshare-user");
    if (sb->net != SANDBOX_NET_HOST) av_add(&a, "--unshare-net");
    if (sb->net == SANDBOX_NET_OUTSIDE) { /* sandbox_child_net's fds */
        av_add2(&a, "--info-fd", NET_FD_INFO_S);
        av_add2(&a, "--block-fd", NET_FD_BLOCK_S);
    }
    av_add2(&a, "--cap-drop", "ALL");
    for (size_t i = 0; i < sizeof SYSTEM_DIRS / sizeof *SYSTEM_DIRS; i++) {
        const char *d = SYSTEM_DIRS[i];
        struct stat st;
        if (lstat(d, &st) < 0) continue;
        if (S_ISLNK(st.st_mode)) {
            char t[SB_PATH_MAX];
            ssize_t tl = readlink(d, t, sizeof t - 1);
            if (tl <= 0) continue;
            t[tl] = '\0';
            av_add3(&a, "--symlink", t, d);
        } else if (S_ISDIR(st.st_mode)) {
            av_add3(&a, "--ro-bind", d, d);
            roots[nroots++] = d;
        }
    }
    for (size_t i = 0; i < sizeof ETC_SECRET_FILES / sizeof *ETC_SECRET_FILES; i++) {
        struct stat st;
        if (lstat(ETC_SECRET_FILES[i], &st) == 0 && S_ISREG(st.st_mode))
            av_add3(&a, "--ro-bind", "/dev/null", ETC_SECRET_FILES[i]);
    }
    for (size_t i = 0; i < sizeof ETC_SECRET_DIRS / sizeof *ETC_SECRET_DIRS; i++) {
        struct stat st;
        if (lstat(ETC_SECRET_DIRS[i], &st) == 0 && S_ISDIR(st.st_mode))
            av_add2(&a, "--tmpfs", ETC_SECRET_DIRS[i]);
    }
    DIR *sshd = opendir("/etc/ssh"); /* the host's private keys */
    if (sshd) {
        struct dirent *de;
        char p[SB_PATH_MAX];
        while ((de = readdir(sshd)))
            if (!strncmp(de->d_name, "ssh_host_", 9) && strlen(de->d_name) > 4 &&
                !strcmp(de->d_name + strlen(de->d_name) - 4, "_key") &&
                snprintf(p, sizeof p, "/etc/ssh/%s", de->d_name) < (int)sizeof p)
                av_add3(&a, "--ro-bind", "/dev/null", p);
        closedir(sshd);
    }
    for (size_t i = 0; i < sb->nroot_only; i++)
        if (sb->root_only_dir[i])
            av_add2(&a, "--tmpfs", sb->root_only[i]);
        else
            av_add3(&a, "--ro-bind", "/dev/null", sb->root_only[i]);
    av_add2(&a, "--proc", "/proc");
    /* The host's files, where the command's own procfs has them (the same kernel): bound over
     * their namesakes, read-only. Those under /proc/sys/net show the command's own network. */
    for (size_t i = 0; i < sizeof PROC_READONLY / sizeof *PROC_READONLY; i++)
        if (access(PROC_READONLY[i], F_OK) == 0)
            av_add3(&a, "--ro-bind", PROC_READONLY[i], PROC_READONLY[i]);
    for (size_t i = 0; i < sizeof PROC_MASKED / sizeof *PROC_MASKED; i++)
        if (access(PROC_MASKED[i], F_OK) == 0) {
            if (is_dir(PROC_MASKED[i]))
                av_add2(&a, "--tmpfs", PROC_MASKED[i]);
            else
                av_add3(&a, "--ro-bind", "/dev/null", PROC_MASKED[i]);
        }
    av_add2(&a, "--dev", "/dev");
    /* In memory, and counted by no limit of the command's: as large as tool_max_tmp_size. */
    char tmpsize[24];
    snprintf(tmpsize, sizeof tmpsize, "%ld", sb->max_tmp_size);
    if (sb->max_tmp_size) av_add2(&a, "--size", tmpsize);
    av_add2(&a, "--tmpfs", "/tmp");
    av_add3(&a, "--setenv", "TMPDIR", "/tmp");
    /* The home directory: an empty one, thrown away at the end (dotfiles, caches). */
    const char *home = getenv("HOME");
    if (home && home[0] == '/' && strcmp(home, "/") && !under_any(home, roots, nroots)) {
        if (sb->max_tmp_size) av_add2(&a, "--size", tmpsize);
        av_add2(&a, "--tmpfs", home);
    }
    char(*binds)[SB_PATH_MAX] = NULL;
    char npm[SB_PATH_MAX]; /* here: roots and wroots point at it until the end */
    if (kind == SANDBOX_SERVER && !(binds = malloc(SB_MAX_BINDS * sizeof *binds))) a.oom = true;
    if (binds && h && h->confined) {
        /* A user's server: what it names must already be in its sandbox (the system, read-only;
         * the working directory): another user's directory, the host's keys, goosed's user's
         * files stay out. Not goosed's ~/.npm (a package planted there would run in other
         * users' sessions) but the user's own, as ~/.npm, for npx and npm. */
        const char *base = strrchr(cmd[0], '/');
        base = base ? base + 1 : cmd[0];
        if ((!strcmp(base, "npx") || !strcmp(base, "npm")) && h->npm_cache && home &&
            home[0] == '/' && snprintf(npm, sizeof npm, "%s/.npm", home) < (int)sizeof npm &&
            fs_mkdirs(h->npm_cache, 0700, NULL, 0) == 0)
            av_add3(&a, "--bind", h->npm_cache, npm);
        for (size_t i = 0; cmd[i]; i++) {
            char real[SB_PATH_MAX];
            if (cmd[i][0] != '/' || !realpath(cmd[i], real)) continue;
            bool ok = rcwd[0] && fs_inside(real, rcwd);
            for (size_t k = 0; k < sizeof SYSTEM_DIRS / sizeof *SYSTEM_DIRS; k++)
                if (fs_inside(real, SYSTEM_DIRS[k])) ok = true;
            if (!ok) {
                snprintf(why, whylen,
                         "'%s' is outside the system's directories and the session's working "
                         "directory: a stdio extension of a user who is not an admin may name "
                         "nothing else of the machine",
                         cmd[i]);
                free(binds);
                sandbox_argv_free(a.v);
                return NULL;
            }
        }
    } else if (binds) {
        size_t nb = server_paths(cmd, binds, SB_MAX_BINDS);
        for (size_t i = 0; i < nb; i++)
            if (sandbox_real_path_allowed(h, binds[i])) {
                av_add3(&a, "--ro-bind", binds[i], binds[i]);
                roots[nroots++] = binds[i];
            }
        /* npx keeps the packages it runs in ~/.npm/_npx: a server started with it needs the
         * cache, writable. The shell never gets it (a command could plant a package there that
         * a server would run later). */
        const char *base = strrchr(cmd[0], '/');
        base = base ? base + 1 : cmd[0];
        if ((!strcmp(base, "npx") || !strcmp(base, "npm")) && home && home[0] == '/' &&
            snprintf(npm, sizeof npm, "%s/.npm", home) < (int)sizeof npm && is_dir(npm)) {
            av_add3(&a, "--bind", npm, npm);
            roots[nroots++] = npm;
            wroots[nwroots++] = npm;
        }
    }
    if (rcwd[0]) {
        av_add3(&a, "--bind", rcwd, rcwd);
        av_add2(&a, "--chdir", rcwd);
        roots[nroots++] = rcwd;
        wroots[nwroots++] = rcwd;
    } else {
        av_add2(&a, "--chdir", "/");
    }
    /* goosed's own directories, where something bound above shows them: an empty tmpfs. */
    for (const char *const *d = h ? h->protected_dirs : NULL; d && *d; d++) {
        char real[SB_PATH_MAX];
        if ((*d)[0] != '/' || !resolve_real(*d, real, sizeof real)) continue;
        const char *w = NULL;
        for (size_t i = 0; i < nwroots; i++)
            if (fs_inside(real, wroots[i]) && (!w || strlen(wroots[i]) > strlen(w))) w = wroots[i];
        if (w && !guard_protected(&a, *d, real, w, why, whylen)) {
            free(binds);
            sandbox_argv_free(a.v);
            return NULL;
        }
        if (is_dir(real) && under_any(real, roots, nroots)) av_add2(&a, "--tmpfs", real);
    }
    /* goosed's secret files, where a bind shows them (a session in the directory of one): an
     * empty file in their place, which the command can neither read nor move. */
    for (size_t i = 0; i < sizeof sb->secret_files / sizeof *sb->secret_files; i++)
        if (sb->secret_files[i][0] && under_any(sb->secret_files[i], roots, nroots))
            av_add3(&a, "--ro-bind", "/dev/null", sb->secret_files[i]);
    /* Last, so that nothing above covers it: the name servers slirp4netns answers for; with the
     * host's network, the host's file where it lies outside what is bound (systemd-resolved's
     * link to /run). */
    if (sb->net == SANDBOX_NET_OUTSIDE && sb->resolv_dest[0])
        av_add3(&a, "--ro-bind-data", NET_FD_RESOLV_S, sb->resolv_dest);
    if (sb->net == SANDBOX_NET_HOST && sb->resolv_dest[0] &&
        !under_any(sb->resolv_dest, SYSTEM_DIRS, sizeof SYSTEM_DIRS / sizeof *SYSTEM_DIRS) &&
        access(sb->resolv_dest, R_OK) == 0)
        av_add3(&a, "--ro-bind", sb->resolv_dest, sb->resolv_dest);
    av_add(&a, "--");
    for (size_t i = 0; cmd[i]; i++)
        av_add(&a, cmd[i]);
    free(binds);
    if (a.oom || !a.v) {
        sandbox_argv_free(a.v);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    return a.v;
}

bool sandbox_path_inside(const char *root, const char *path)
{
    char rr[SB_PATH_MAX], rp[SB_PATH_MAX];
    if (!root || root[0] != '/' || !resolve_real(root, rr, sizeof rr)) return false;
    if (!resolve_real(path, rp, sizeof rp)) return false; /* fail closed */
    return fs_inside(rp, rr);
}

/* name in PATH (goosed's). */
static bool find_in_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *c = strchr(path, ':');
        size_t len = c ? (size_t)(c - path) : strlen(path);
        struct stat st;
        if (len && snprintf(out, n, "%.*s/%s", (int)len, path, name) < (int)n &&
            stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return true;
        path += len + (c ? 1 : 0);
    }
    return false;
}

/* bwrap in PATH (goosed's), or the configured path. */
static bool find_bwrap(const char *configured, char *out, size_t n, char *why, size_t whylen)
{
    if (configured && configured[0]) {
        snprintf(out, n, "%s", configured);
        if (access(out, X_OK) == 0) return true;
        snprintf(why, whylen, "bwrap_path %s: %s", configured, strerror(errno));
        return false;
    }
    if (find_in_path("bwrap", out, n)) return true;
    snprintf(why, whylen, "bubblewrap (bwrap) is not installed: it is not in PATH");
    return false;
}

/* Runs cmd under bwrap once, as a tool would: whether it exits with 0. When not, why holds what
 * bwrap said on stderr, or how it ended. */
static bool probe(const sandbox_cfg *sb, char *const *cmd, char *why, size_t whylen)
{
    char **argv = sandbox_argv_new(sb, NULL, SANDBOX_SHELL, NULL, cmd, why, whylen);
    char **env = sandbox_env_new();
    int pe[2];
    if (!argv || !env || pipe2(pe, O_CLOEXEC) < 0) {
        if (argv) snprintf(why, whylen, "%s", strerror(errno));
        sandbox_argv_free(argv);
        sandbox_env_free(env);
        return false;
    }
    sandbox_child sc;
    sandbox_child_prepare(&sc, sb);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        dup2(pe[1], 2);
        close_above(3);
        if (sandbox_child_net(&sc, NULL) == 0 && sandbox_child_enter(&sc) == 0)
            execve(argv[0], argv, env);
        _exit(127);
    }
    close(pe[1]);
    if (nul >= 0) close(nul);
    char msg[256];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(pe[0], msg + got, sizeof msg - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        if (got == sizeof msg - 1) break;
    }
    msg[got] = '\0';
    close(pe[0]);
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    sandbox_argv_free(argv);
    sandbox_env_free(env);
    if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
    while (got && (msg[got - 1] == '\n' || msg[got - 1] == '\r'))
        msg[--got] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n') *p = ' ';
    snprintf(why, whylen, "%s",
             pid < 0         ? "fork failed"
             : got           ? msg
             : WIFEXITED(st) ? "it exited with an error"
                             : "it was killed");
    return false;
}

#define NET_FIX                                                                                    \
    "Install slirp4netns (and give goosed /dev/net/tun), or set `tool_network: host` to give "     \
    "them goosed's own network, loopback included"

/* For SANDBOX_NET_OUTSIDE: slirp4netns, and the sandbox's resolv.conf. Without slirp4netns, the
 * commands get no network at all (never goosed's): false with why. */
static bool net_init(sandbox_cfg *sb, char *why, size_t whylen)
{
    if (!find_in_path("slirp4netns", sb->slirp, sizeof sb->slirp)) {
        snprintf(why, whylen, "slirp4netns is not installed: it is not in PATH");
        return false;
    }
    resolv_make(sb);
    return true;
}

/* The check of slirp4netns, running beside the start; sandbox_settle waits for it. */
static pthread_t g_check;
static bool g_check_on;

/* Runs a command as a tool would and logs when it saw no network interface but its loopback:
 * slirp4netns cannot run here (no /dev/net/tun, a seccomp policy...), and every command will then
 * run with its loopback alone. In a thread of its own, so that goosed's start does not wait for
 * it (30-40 ms); it only logs, and changes nothing another thread reads. */
static void *net_check(void *arg)
{
    const sandbox_cfg *sb = arg;
    char *const cmd[] = {"/bin/sh", "-c",
                         "while read -r l; do case $l in tap0:*) exit 0;; esac; done "
                         "</proc/net/dev; exit 1",
                         NULL};
    char pwhy[256];
    if (!probe(sb, cmd, pwhy, sizeof pwhy))
        log_error(
            LOG_MOD, "tools get no network: %s did not give a command its network%s. " NET_FIX,
            sb->slirp,
            access("/dev/net/tun", R_OK | W_OK) < 0 ? " (/dev/net/tun cannot be opened here)" : "");
    return NULL;
}

void sandbox_init(const config *cfg)
{
    sandbox_cfg *sb = &g_sb;
    memset(sb, 0, sizeof *sb);
    sb->open = !strcmp(cfg->sandbox, "off");
    sb->net = !strcmp(cfg->tool_network, "false")  ? SANDBOX_NET_NONE
              : !strcmp(cfg->tool_network, "host") ? SANDBOX_NET_HOST
                                                   : SANDBOX_NET_OUTSIDE;
    sb->root = geteuid() == 0;
    sb->max_memory = cfg->tool_max_memory;
    sb->max_cpu_seconds = cfg->tool_max_cpu_seconds;
    sb->max_file_size = cfg->tool_max_file_size;
    sb->max_processes = cfg->tool_max_user_processes;
    sb->max_tmp_size = cfg->tool_max_tmp_size;
    const char *secrets[] = {cfg->secret_key_file, cfg->tls_key};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (secrets[i][0] && !realpath(secrets[i], sb->secret_files[i]))
            sb->secret_files[i][0] = '\0';
    if (sb->root && !sb->open) {
        /* As root, bubblewrap's commands are root too (no user namespace): what only root may
         * read in /etc would be theirs, beyond the few files hidden by name. */
        size_t seen = 0;
        sb->root_only = calloc(ROOT_ONLY_MAX, sizeof *sb->root_only);
        sb->root_only_dir = calloc(ROOT_ONLY_MAX, sizeof *sb->root_only_dir);
        if (sb->root_only && sb->root_only_dir) root_only_scan(sb, "/etc", 0, &seen);
        if (seen >= ROOT_ONLY_SCAN || sb->nroot_only >= ROOT_ONLY_MAX)
            log_warn(LOG_MOD,
                     "sandbox: /etc holds more than %d entries or %d only root may read: the "
                     "rest are in reach of commands (goosed runs as root)",
                     ROOT_ONLY_SCAN, ROOT_ONLY_MAX);
    }
    g_sb_set = true;
    cgroup_init(sb->max_processes);
    if (sb->open) {
        log_warn(LOG_MOD, "sandbox: off: shell commands and stdio extensions run without a "
                          "sandbox, with every file of goosed's user in reach");
        return;
    }
    sandbox_net want = sb->net;
    if (find_bwrap(cfg->bwrap_path, sb->bwrap, sizeof sb->bwrap, sb->why, sizeof sb->why)) {
        /* bubblewrap alone first, with no network: whether tools can run at all */
        const char *t = access("/usr/bin/true", X_OK) == 0 ? "/usr/bin/true" : "/bin/true";
        char *const cmd[] = {(char *)t, NULL};
        char why[256];
        sb->net = want == SANDBOX_NET_HOST ? SANDBOX_NET_HOST : SANDBOX_NET_NONE;
        sb->ready = probe(sb, cmd, why, sizeof why);
        if (!sb->ready)
            snprintf(sb->why, sizeof sb->why, "%s does not work here (%s)", sb->bwrap, why);
        sb->net = want;
    }
    char nwhy[512] = "";
    if (sb->ready && sb->net == SANDBOX_NET_OUTSIDE && !net_init(sb, nwhy, sizeof nwhy)) {
        sb->net = SANDBOX_NET_NONE;
        log_error(LOG_MOD, "tools get no network: %s. " NET_FIX, nwhy);
    }
    if (sb->net == SANDBOX_NET_HOST) resolv_dest(sb->resolv_dest, sizeof sb->resolv_dest);
    if (sb->ready)
        log_info(
            LOG_MOD, "tools run in a sandbox: %s, network %s", sb->bwrap,
            sb->net == SANDBOX_NET_OUTSIDE ? "on, the host's loopback out of reach (slirp4netns)"
            : sb->net == SANDBOX_NET_HOST  ? "goosed's own, loopback included (tool_network: host)"
            : want == SANDBOX_NET_NONE     ? "off (tool_network: false)"
                                           : "off (slirp4netns is not installed)");
    else
        log_error(LOG_MOD,
                  "tools cannot run: %s. Shell commands and stdio extensions are refused; install "
                  "bubblewrap, or set `sandbox: off` (GOOSE_SANDBOX=off) to run them without a "
                  "sandbox",
                  sb->why);
    g_check_on = sb->ready && sb->net == SANDBOX_NET_OUTSIDE &&
                 pthread_create(&g_check, NULL, net_check, sb) == 0;
}

void sandbox_settle(void)
{
    if (!g_check_on) return;
    g_check_on = false;
    struct timespec dl = clock_deadline(5000);
    if (pthread_timedjoin_np(g_check, NULL, &dl) != 0) pthread_detach(g_check);
}
