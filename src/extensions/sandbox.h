/* sandbox: what keeps goosed's secrets out of the tools' reach: the child environment as an
 * allow-list; every capability dropped in a tool's process; shell commands and stdio MCP servers
 * run under bubblewrap (the session's working directory writable, the system read-only, goosed's
 * configuration and data and every home directory absent, their own PID namespace, limits on
 * memory, CPU time, file size and processes, a network of their own); and the paths the built-in
 * file tools accept (inside the session's working directory, never goosed's own directories). */
#ifndef GD_SANDBOX_H
#define GD_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "config/config.h"
#include "core/netaddr.h"
#include "extensions/extension.h"

/* What network a sandboxed command has (`tool_network`):
 * - SANDBOX_NET_OUTSIDE (true, the default): a network namespace of its own, its own loopback,
 *   and the outside through slirp4netns, a user-mode NAT, with the host's loopback out of reach
 *   (--disable-host-loopback): goosed's own API, and every service of the machine that listens
 *   on 127.0.0.1 only, cannot be reached, nor link-local addresses (the cloud metadata service:
 *   an unreachable route of the namespace's own, added before the command starts);
 * - SANDBOX_NET_NONE (false, or slirp4netns missing or failing): a loopback of its own only;
 * - SANDBOX_NET_HOST (host): goosed's network, its loopback included. */
typedef enum { SANDBOX_NET_OUTSIDE, SANDBOX_NET_NONE, SANDBOX_NET_HOST } sandbox_net;

/* How tools run, from the configuration, probed once at start (sandbox_init). */
typedef struct {
    bool open;  /* `sandbox: off`: tools run without bubblewrap */
    bool ready; /* bubblewrap runs here (probed) */
    bool root;  /* goosed runs as uid 0: bwrap sets up the namespaces with its privileges */
    sandbox_net net;
    char bwrap[PATH_MAX];
    char slirp[PATH_MAX];       /* SANDBOX_NET_OUTSIDE: the slirp4netns executable */
    char resolv[1024];          /* SANDBOX_NET_OUTSIDE: the sandbox's /etc/resolv.conf (the
                                 * host's, its name servers replaced by slirp4netns's) */
    char resolv_dest[PATH_MAX]; /* where it goes: /etc/resolv.conf, or the file it links to; ""
                                 * when the host has none */
    char why[512];              /* when not ready: why, for the tool result */
    long max_memory, max_cpu_seconds, max_file_size, max_processes; /* 0: no limit */
    long max_tmp_size; /* bytes of each of the sandbox's in-memory /tmp and home, 0: no limit */
    /* As root: what of /etc only root may read (no read permission for others), found at start:
     * hidden from commands as from any other user (an empty file, an empty directory). */
    char **root_only;
    bool *root_only_dir;
    size_t nroot_only;
    /* goosed's secret files the configuration names outside its own directories (the secret
     * key's, TLS's private key), real paths: empty wherever a command could see them, refused
     * by the file tools. "" when none. */
    char secret_files[2][PATH_MAX];
} sandbox_cfg;

/* Reads the sandbox settings of cfg, looks for bubblewrap and runs it once to see that it works
 * here, and logs one line saying how tools will run. Call once at start, before any tool runs
 * and before threads spawn tools. Until it is called (the command-line client `goosed mcp`, unit
 * tests), sandbox_current() is NULL and tools run open. */
void sandbox_init(const config *cfg);
/* Waits (at most 5 s) for what sandbox_init left running beside the start (the check that
 * slirp4netns works, a bwrap of its own): a goosed that stops at once (a start refused) must not
 * leave that bwrap between its processes (killed by its parent's death while it forks, it can
 * leave its sandbox's init waiting forever). Call before goosed exits. */
void sandbox_settle(void);
/* The settings sandbox_init made, or NULL before it. */
const sandbox_cfg *sandbox_current(void);

/* Who uses sandbox_argv_new: a shell command (nothing but the system and the working directory),
 * or a stdio MCP server (also the directories its executable and its absolute path arguments
 * need, read-only, and the npm cache ~/.npm writable, for servers started with npx). */
typedef enum { SANDBOX_SHELL, SANDBOX_SERVER } sandbox_kind;

/* The argv that runs cmd (a NULL-terminated argv whose cmd[0] is an absolute path) under
 * bubblewrap in cwd (absolute, real), hiding h->protected_dirs. Touches the disk: call it on a
 * worker, before fork. A NULL-terminated array of malloc'd strings the caller frees with
 * sandbox_argv_free; NULL with the reason in why (a working directory that is / or inside
 * goosed's own directories, out of memory). */
char **sandbox_argv_new(const sandbox_cfg *sb, const ext_host *h, sandbox_kind kind,
                        const char *cwd, char *const *cmd, char *why, size_t whylen);
/* Frees what sandbox_argv_new returned (NULL is fine). */
void sandbox_argv_free(char **argv);

/* Whether path (absolute, from dev_resolve_path) is inside root (the session's working
 * directory) once every symbolic link of both is resolved. Touches the disk. */
bool sandbox_path_inside(const char *root, const char *path);

/* The environment for tools' child processes: the variables of goosed's environment on an
 * allow-list (PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TERM, TZ, TMPDIR) and
 * nothing else: no API keys, no GOOSE_*, no PWD. A new NULL-terminated array of "NAME=value"
 * strings the caller frees with sandbox_env_free; NULL when out of memory. */
char **sandbox_env_new(void);
/* A copy of env (NULL-terminated; NULL gives an empty environment) in one allocation the caller
 * frees with free(). NULL when out of memory. */
char **sandbox_env_dup(char *const *env);
/* Frees what sandbox_env_new returned (NULL is fine). */
void sandbox_env_free(char **env);

/* Whether a tool may read or write path, an absolute path without `.` or `..` components: false
 * when it is, or once its symbolic links are resolved (the real path of its longest existing
 * prefix) turns out to be, one of h->protected_dirs or inside one. Touches the disk: call it on
 * a worker. */
bool sandbox_path_allowed(const ext_host *h, const char *resolved_path);
/* The same for a path already free of symbolic links (a directory walk that does not follow
 * them), without resolving it again. */
bool sandbox_real_path_allowed(const ext_host *h, const char *real_path);

/* The longest path of a tool's cgroup directory. */
#define SANDBOX_CGROUP_MAX 96

/* As root, RLIMIT_NPROC does not bind, so each shell command runs in its own cgroup (v1 `pids`
 * hierarchy, /sys/fs/cgroup/pids/goosed/<goosed's pid>-<n>) whose pids.max is
 * tool_max_user_processes. sandbox_init finds out whether that hierarchy is usable (and removes
 * the directories of goosed processes that no longer run).
 *
 * Makes a new cgroup for one command into dir (dir "" when none is needed: not root, no process
 * limit, or no usable hierarchy) and retries the removal of directories left by
 * sandbox_cgroup_remove. Touches the disk: call it on a worker, before fork. false with the
 * reason in why when the cgroup cannot be made (the tool must then not run). */
bool sandbox_cgroup_make(char *dir, size_t n, char *why, size_t whylen);
/* Kills every process left in the cgroup dir (made by sandbox_cgroup_make; "" is fine) and
 * removes it; one that cannot be removed yet is retried at the next sandbox_cgroup_make. Clears
 * dir. Thread-safe. */
void sandbox_cgroup_remove(char *dir);

/* The most networks a command is kept from (sandbox_child's unreach). */
#define SANDBOX_UNREACH_MAX 128
/* What a tool's child process needs to drop its privileges, read before fork (reading it
 * afterwards is not async-signal-safe). */
typedef struct {
    bool root;    /* euid 0: drop the bounding set and set no_new_privs */
    bool bwrap;   /* bubblewrap runs next: as root it keeps its privileges to set up the
                   * namespaces and drops every capability of the command itself */
    int cap_last; /* the highest capability number the kernel knows */
    int nlimits;
    struct {
        int resource;
        unsigned long value;
    } limits[4];
    char cgroup_procs[SANDBOX_CGROUP_MAX + 16]; /* "" or the cgroup.procs the child joins */
    const char *slirp;  /* NULL, or the slirp4netns that gives bwrap's namespace its network */
    const char *resolv; /* with it: the sandbox's /etc/resolv.conf */
    /* With it: the networks the command is kept from (unreachable routes of its namespace):
     * link-local addresses always; for a user who is not an admin, sandbox_child_reach's.
     * -1: more than fit, the command gets no network. */
    int nunreach;
    net_v4 unreach[SANDBOX_UNREACH_MAX];
} sandbox_child;

/* Fills sc for sandbox_child_enter and sandbox_child_limits: sb NULL means no bubblewrap and no
 * limits; `sandbox: off` keeps the limits, without bubblewrap. */
void sandbox_child_prepare(sandbox_child *sc, const sandbox_cfg *sb);
/* For a command run for a user who is not an admin (reach: user_extension_hosts; NULL, as "*",
 * changes nothing): with a network of its own, it reaches public addresses only (not a private
 * network, nor this host's own addresses), and those reach names by address or network
 * (net_v4_unreachable). Reads the host's interfaces: call it before fork. */
void sandbox_child_reach(sandbox_child *sc, const net_allow *reach);
/* Sets sc->cgroup_procs so that sandbox_child_cgroup_enter moves the child into the cgroup dir ("":
 * no cgroup). */
void sandbox_child_cgroup(sandbox_child *sc, const char *dir);
/* In a child after fork, before it forks anything (async-signal-safe): joins the cgroup of
 * sandbox_child_cgroup, if any. Returns 0, or the errno of the step that failed (the child must
 * then not run the tool). */
int sandbox_child_cgroup_enter(const sandbox_child *sc);
/* In a child after fork, before exec (async-signal-safe): drops every capability (bounding set,
 * ambient, effective, permitted, inheritable) and, as root, sets no_new_privs, so that exec
 * gives nothing back. Returns 0, or the errno of the step that failed (the child must then not
 * run the tool). */
int sandbox_child_enter(const sandbox_child *sc);
/* In a child after fork, with its fds 0..3 in place and none above them, before
 * sandbox_child_enter (async-signal-safe): when sc->slirp is set, starts the network of the bwrap
 * this child (or its child) executes next: fds 4..7 become what sandbox_argv_new's argv names
 * (bwrap's --info-fd, --block-fd, --ro-bind-data for /etc/resolv.conf, and a pipe bwrap holds),
 * and a helper process waits for bwrap's namespace, then becomes slirp4netns, which lets bwrap
 * go on once the network is up and exits when bwrap is gone (the pipe's end of file; it also
 * dies with this process). A helper that fails leaves the command without a network. Returns 0,
 * or the errno of the step that failed; *helper (when not NULL) is the helper's pid, 0 without
 * one. */
int sandbox_child_net(const sandbox_child *sc, pid_t *helper);
/* In a process that ran sandbox_child_net and forked the one that executes bwrap: closes fds
 * 4..7 (the pipe slirp4netns watches must be held by bwrap only). */
void sandbox_child_net_close(const sandbox_child *sc);
/* In a child, just before exec (async-signal-safe): sets the resource limits (RLIMIT_AS, CPU,
 * FSIZE, NPROC) of the sandbox. Returns 0 or the errno of the setrlimit that failed. */
int sandbox_child_limits(const sandbox_child *sc);

#endif
