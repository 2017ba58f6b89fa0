/* dev: what the files of the developer extension share (private to src/extensions/developer/):
 * its limits, the extension and call structs, and the helpers every tool uses (UTF-8
 * sanitising, error results, integer arguments, path resolution, whole-file reads and writes).
 *
 * Layers: common.c and fsopen.c (helpers), call.c (a call's life), the tools (shell.c, editor.c,
 * files.c), developer.c (the extension: its tool table and ops).
 *
 * Threads: a call starts and ends on the host's loop thread. The text editor and list_files run
 * on a pool worker (dev_job); the shell forks on a worker and is then watched by the loop. */
#ifndef GD_DEV_H
#define GD_DEV_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/err.h"
#include "extensions/extension.h"

/* ---- limits ---- */
#define DEV_TIMEOUT_MS       300000L            /* shell: default timeout */
#define DEV_OUTPUT_CAP       (64 * 1024)        /* shell: default bytes kept per stream */
#define DEV_KILL_GRACE_MS    1000               /* shell: SIGTERM, then SIGKILL this much later */
#define DEV_DRAIN_MS         250                /* shell: wait for EOF after the shell / the kill */
#define DEV_READ_CHUNK       (64 * 1024)        /* shell: one read() */
#define DEV_READS_PER_TURN   16                 /* shell: reads per stream per wake-up */
#define DEV_VIEW_MAX         (400 * 1024)       /* text_editor view: largest file shown */
#define DEV_VIEW_LINES       2000               /* text_editor view: more lines need a view_range */
#define DEV_EDIT_MAX         (4 * 1024 * 1024)  /* text_editor edits: largest file edited */
#define DEV_DIR_VIEW_MAX     200                /* text_editor view of a directory: entries shown */
#define DEV_UNDO_STEPS       10                 /* undo_edit: steps kept per file */
#define DEV_UNDO_BYTES       (32 * 1024 * 1024) /* undo_edit: bytes kept per session, all files */
#define DEV_SNIPPET_LINES    4                  /* context lines around an edit in its result */
#define DEV_LIST_MAX         1000               /* list_files: entries shown */
#define DEV_LIST_DEPTH       3                  /* list_files: default max_depth */
#define DEV_LIST_DEPTH_MAX   32                 /* list_files: largest max_depth */
#define DEV_LIST_EXAMINE_MAX 200000             /* list_files: entries looked at, shown or not */
#define DEV_DIR_READ_MAX     20000 /* list_files / view: entries read from one directory */
#define DEV_TEXT_CAP         (8 * 1024 * 1024) /* any result text */
#define DEV_PATH_MAX         4096

/* ---- a tool's output ---- */

typedef struct {
    char *text; /* malloc'd, valid UTF-8 without NUL bytes; NULL only when out of memory */
    bool is_error;
} dev_out;

/* Sets out from b (which is freed: its bytes become valid UTF-8) and returns err. built is the
 * first failed append to b (GD_OK: none): the text then ends with a note that it is truncated,
 * or, when even that cannot be done, is "out of memory" (is_error, GD_ENOMEM returned). */
gd_err dev_finish(dev_out *out, buf *b, gd_err built, bool is_error, gd_err err);
/* An error result from the format; returns err. */
gd_err dev_fail(dev_out *out, gd_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A malloc'd copy of data[0..len) as valid UTF-8 without NUL bytes (other bytes become U+FFFD).
 * NULL when out of memory. */
char *dev_utf8_sanitize(const char *data, size_t len);
/* The message for errno value e, thread-safely, in b. */
const char *dev_errstr(int e, char *b, size_t n);
/* An integer argument: a JSON integer, a real without fraction, or a string of digits. */
bool dev_json_to_ll(json_t *v, long long *out);
/* Resolves p against cwd (absolute; "" or NULL: the process's own) into out: an absolute path
 * without `.`, `..` or repeated slashes; `~` is $HOME. false with a message in out. */
bool dev_resolve_path(const char *cwd, const char *p, char *out, size_t n);
/* Reads the regular file open at fd (left open) of at most max bytes into a malloc'd,
 * NUL-terminated *data the caller frees. 0 or an errno value: EFBIG when larger than max,
 * EISDIR / EINVAL when not a regular file. */
int dev_read_fd(int fd, size_t max, char **data, size_t *len);
/* Replaces the content of the file open for writing at fd (left open) with data. 0 or an errno
 * value. */
int dev_write_fd(int fd, const char *data, size_t len);

/* ---- opening inside the working directory (fsopen.c) ---- */

typedef struct dev_call dev_call;

/* Not an errno value: what was opened is one of goosed's own directories or inside one. */
#define DEV_EPROTECTED 100000

/* The target of a file tool's call: the session's working directory, open, and the path
 * relative to it. Every open, create, mkdir and unlink goes through it, so that a symbolic link
 * swapped in after dev_path_ok cannot lead out (EXDEV) or into goosed's directories
 * (DEV_EPROTECTED). */
typedef struct {
    const ext_host *host;
    const char *path;             /* the absolute path, as shown in messages (borrowed) */
    int root;                     /* O_PATH descriptor of the working directory; AT_FDCWD: none */
    char root_real[DEV_PATH_MAX]; /* its real path ("" when none) */
    char rel[DEV_PATH_MAX];       /* path relative to root ("." for itself); absolute if none */
    int err;                      /* why dev_fs_open failed */
} dev_fs;

/* Opens the working directory of c for path (absolute, from dev_resolve_path, already accepted
 * by dev_path_ok). false with an errno value in fs->err (EXDEV: path is not inside it); fs is
 * then closed. A call without a working directory is not confined. Release with dev_fs_close. */
bool dev_fs_open(dev_call *c, const char *path, dev_fs *fs);
void dev_fs_close(dev_fs *fs);
/* open(2) of rel (fs->rel or a path relative to the root) beneath the root: a descriptor the
 * caller closes, or minus an errno value (EXDEV: leads out; DEV_EPROTECTED). */
int dev_fs_openat(const dev_fs *fs, const char *rel, int flags, mode_t mode);
/* An O_PATH descriptor of the directory holding fs->rel (caller closes), made first with its
 * parents when make; *base is the last component of fs->rel, for the *at calls. Minus an
 * errno value on failure. */
int dev_fs_parent(const dev_fs *fs, bool make, const char **base);
/* The error result for a failed open (e: an errno value or DEV_EPROTECTED) of fs->path, while
 * trying to `what` it. Returns the gd_err set. */
gd_err dev_fs_fail(dev_out *out, const char *tool, const dev_fs *fs, const char *what, int e);

/* ---- the extension and its calls ---- */

typedef struct undo_file undo_file;

/* The text editor's undo history of one extension instance (one session): per absolute path,
 * the contents before each of the last DEV_UNDO_STEPS edits, DEV_UNDO_BYTES in all. */
typedef struct {
    pthread_mutex_t mu; /* workers of several calls of the session may edit at once */
    undo_file *files;
    size_t bytes;
    uint64_t seq;
} dev_undo;

typedef struct dev_call dev_call;
typedef struct dev_shell dev_shell;

typedef struct {
    extension base;
    /* A copy of the host (l, workers, session_id), whose env and protected_dirs point to the
     * copies below: workers may still read them after close, while a call holds a reference. */
    ext_host host;
    const ext_host *orig; /* the borrowed host, for the working directory at each call */
    char **env;           /* owned */
    char **protected_dirs;
    json_t *tools; /* built once */
    dev_undo undo;
    dev_call *calls; /* not yet ended (not orphaned) */
    int refs;        /* 1 while open, plus 1 per call not yet freed; loop thread only */
    bool closed;
} developer;

typedef void (*dev_job_fn)(dev_call *c, dev_out *out);

struct dev_call {
    ext_call base;
    developer *d;
    dev_call *prev, *next; /* d->calls */
    ext_done done;
    void *ud;
    bool orphan;        /* the extension was closed: ends without its done */
    atomic_bool cancel; /* read by workers */
    char cwd[DEV_PATH_MAX];
    json_t *args;   /* a reference, for the job */
    dev_job_fn job; /* the text editor or list_files, run on a worker */
    dev_out out;
    dev_shell *sh;                /* a shell call */
    void (*release)(dev_call *c); /* frees the tool's own state (sh), when set */
};

/* ---- a call's life (call.c) ---- */

/* Takes c out of its extension's list of running calls. */
void dev_call_unlink(dev_call *c);
/* Frees c (unlinking it unless orphaned, releasing its tool's state) and drops the reference it
 * holds on its extension. */
void dev_call_free(dev_call *c);
/* Drops a reference to d; the last one frees it. Loop thread only. */
void dev_unref(developer *d);

/* Ends c on the loop thread with c->out: done(ud, that result) unless c was orphaned, then
 * frees c. */
void dev_call_end(dev_call *c);
/* Ends c with c->out, posted (never inside the op that started it). GD_ENOMEM or GD_EINVAL when
 * it cannot be posted (the caller then frees c). */
gd_err dev_call_post(dev_call *c);
/* Runs fn(c) on a pool worker. A full pool ends c with an is_error result (posted) and still
 * returns GD_OK; GD_ENOMEM (or a failed post) when c is left to the caller. */
gd_err dev_submit(dev_call *c, pool_fn fn);

/* ---- the tools ---- */

/* text_editor and list_files: run on a worker, with the result in out; c->args, c->cwd,
 * c->cancel, c->d->host and c->d->undo (under its mutex) are theirs to read. */
void dev_editor_run(dev_call *c, dev_out *out);
void dev_files_run(dev_call *c, dev_out *out);
/* Forgets the undo history (at the extension's end). */
void dev_undo_free(dev_undo *u);

/* The shell: starts the command in args (validated here) and ends c through dev_call_end.
 * false when out of memory (c is left to the caller). */
bool dev_shell_start(dev_call *c, json_t *args, const ext_call_opts *o);
/* Asks a running shell call to stop. */
void dev_shell_cancel(dev_call *c);
/* At close: stops the shell at once (its process group is killed) and frees its state; true
 * when c may be freed now, false while its process is still being started on a worker (c then
 * ends, orphaned, when the worker is done). */
bool dev_shell_close(dev_call *c);

/* The message shown when a refused path is used. */
gd_err dev_refuse(dev_out *out, const char *path);
/* Whether a tool of call c may use path (absolute, from dev_resolve_path): not in goosed's own
 * directories, and inside the session's working directory once every symbolic link is resolved
 * (absolute paths elsewhere, `..` and links that lead out are refused). false with the error
 * result in out. Touches the disk: call it on a worker. */
bool dev_path_ok(dev_call *c, const char *tool, const char *path, dev_out *out);

#endif
