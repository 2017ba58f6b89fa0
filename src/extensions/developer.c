/* developer: the built-in developer extension's tools (see developer.h). */
#include "extensions/developer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"

extern char **environ;

#define LOG_MOD "developer"

/* ---- limits ---- */
#define DEV_TIMEOUT_MS       300000L            /* shell: default timeout */
#define DEV_OUTPUT_CAP       (64 * 1024)        /* shell: default bytes kept per stream */
#define DEV_POLL_MS          50                 /* shell: how often the cancel flag is looked at */
#define DEV_KILL_GRACE_MS    1000               /* shell: SIGTERM, then SIGKILL this much later */
#define DEV_DRAIN_MS         250                /* shell: wait for EOF after the shell / the kill */
#define DEV_READ_CHUNK       (64 * 1024)        /* shell: one read() */
#define DEV_READS_PER_TURN   16                 /* shell: reads per stream per poll round */
#define DEV_VIEW_MAX         (400 * 1024)       /* text_editor view: largest file shown */
#define DEV_VIEW_LINES       2000               /* text_editor view: more lines need a view_range */
#define DEV_EDIT_MAX         (4 * 1024 * 1024)  /* text_editor edits: largest file edited */
#define DEV_DIR_VIEW_MAX     200                /* text_editor view of a directory: entries shown */
#define DEV_UNDO_STEPS       10                 /* undo_edit: steps kept per file */
#define DEV_UNDO_BYTES       (32 * 1024 * 1024) /* undo_edit: bytes kept for all files together */
#define DEV_SNIPPET_LINES    4                  /* context lines around an edit in its result */
#define DEV_LIST_MAX         1000               /* list_files: entries shown */
#define DEV_LIST_DEPTH       3                  /* list_files: default max_depth */
#define DEV_LIST_DEPTH_MAX   32                 /* list_files: largest max_depth */
#define DEV_LIST_EXAMINE_MAX 200000             /* list_files: entries looked at, shown or not */
#define DEV_DIR_READ_MAX     20000 /* list_files / view: entries read from one directory */
#define DEV_TEXT_CAP         (8 * 1024 * 1024) /* any result text */
#define DEV_PATH_MAX         4096

/* ---- the tool table ---- */

static const char SHELL_DESC[] =
    "Run a shell command with /bin/sh -c in the session's working directory and return its exit "
    "status, stdout and stderr (captured separately). Each call is a fresh shell: `cd`, variables "
    "and `source` do not persist between calls, so chain them (`cd sub && make`). stdin is "
    "/dev/null, so interactive prompts get end-of-file: pass flags such as `-y` instead. "
    "Limits: the command is killed (with everything it started) after 300 seconds by default; "
    "each of stdout and stderr keeps at most 64 KiB by default (the first and last halves, with a "
    "note saying how much was left out in between), so avoid commands that print a lot - filter "
    "them (grep, head, tail) or redirect output to a file and read the parts you need. The call "
    "returns when the command ends; background processes that still hold its output then get "
    "SIGHUP, so start a long-running process as `nohup server > server.log 2>&1 &` to keep it "
    "running. Prefer `rg` / "
    "`grep -rn` to search code and developer__list_files to explore directories.";

static const char EDITOR_DESC[] =
    "View and edit text files. Paths are absolute or relative to the session's working directory. "
    "Commands:\n"
    "- view: show a file with line numbers (`N: text`), or list a directory. view_range [start, "
    "end] shows lines start to end, 1-based and inclusive; end -1 means to the end of the file. "
    "Files over 400 KB and binary files are refused; files over 2000 lines need a view_range.\n"
    "- write: create or overwrite the file with file_text (parent directories are created; a "
    "final newline is added when missing). Use it for new files; prefer str_replace for edits.\n"
    "- str_replace: replace old_str with new_str (omit new_str to delete). old_str must match "
    "the file exactly, whitespace and indentation included, and occur exactly once: include "
    "enough surrounding lines to make it unique. View the file first.\n"
    "- insert: insert new_str as new lines after line insert_line (0 inserts at the top, -1 at "
    "the end).\n"
    "- undo_edit: restore the file as it was before the last write, str_replace or insert (up to "
    "10 steps per file).\n"
    "Edits are limited to files of 4 MB.";

static const char LIST_DESC[] =
    "List the files and directories under a path (default: the working directory), recursively "
    "up to max_depth levels (default 3; 1 lists only the path's own entries). Output is sorted, "
    "one entry per line, relative to the path, directories ending in `/`. `.git` and "
    "`node_modules` are skipped; symbolic links are listed but not followed. pattern is a shell "
    "glob (`*`, `?`, `[...]`) matched against each entry's name, or against its relative path "
    "when the pattern contains `/` (`*` then also matches `/`, e.g. `src/*.c`). At most 1000 "
    "entries are shown, with a note when the listing is cut: narrow it with path, max_depth or "
    "pattern.";

static const char INSTRUCTIONS[] =
    "The developer extension lets you work on the user's machine, in the session's working "
    "directory.\n"
    "- developer__shell runs shell commands (builds, tests, git, searches with rg or grep). Each "
    "call is a fresh /bin/sh with no terminal and stdin closed; state such as `cd` does not "
    "persist between calls. Keep output small: filter it or redirect it to a file.\n"
    "- developer__text_editor views and edits files. View a file before editing it; make edits "
    "with str_replace (old_str must occur exactly once), create files with write, and undo a "
    "mistake with undo_edit.\n"
    "- developer__list_files shows the layout of a directory tree.\n"
    "Relative paths are resolved against the working directory.";

/* The input schemas, as JSON text (plain JSON Schema: type, properties, required, enum, items
 * and descriptions only, which every provider accepts). */
static const char SHELL_SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"command\": {\"type\": \"string\","
    "   \"description\": \"The command line, run as /bin/sh -c <command>.\"}},"
    " \"required\": [\"command\"]}";

static const char EDITOR_SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"command\": {\"type\": \"string\","
    "   \"enum\": [\"view\", \"write\", \"str_replace\", \"insert\", \"undo_edit\"],"
    "   \"description\": \"The operation to perform.\"},"
    "  \"path\": {\"type\": \"string\","
    "   \"description\": \"The file or directory: absolute, or relative to the working "
    "directory.\"},"
    "  \"file_text\": {\"type\": \"string\","
    "   \"description\": \"write: the complete new content of the file.\"},"
    "  \"old_str\": {\"type\": \"string\","
    "   \"description\": \"str_replace: the exact text to replace; it must occur exactly once in "
    "the file.\"},"
    "  \"new_str\": {\"type\": \"string\","
    "   \"description\": \"str_replace: the replacement (default empty). insert: the lines to "
    "insert.\"},"
    "  \"insert_line\": {\"type\": \"integer\","
    "   \"description\": \"insert: the line after which new_str goes (0 = at the top, -1 = at the "
    "end).\"},"
    "  \"view_range\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"},"
    "   \"description\": \"view: [start, end], 1-based and inclusive; end -1 = to the end of the "
    "file.\"}},"
    " \"required\": [\"command\", \"path\"]}";

static const char LIST_SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"path\": {\"type\": \"string\","
    "   \"description\": \"The directory to list (default: the working directory).\"},"
    "  \"max_depth\": {\"type\": \"integer\","
    "   \"description\": \"How many levels to descend, at least 1 (default 3).\"},"
    "  \"pattern\": {\"type\": \"string\","
    "   \"description\": \"Show only entries matching this glob, e.g. `*.py` or `src/*test*`.\"}},"
    " \"required\": []}";

static const struct {
    const char *name, *description, *schema;
} TOOLS[] = {
    {"developer__shell", SHELL_DESC, SHELL_SCHEMA},
    {"developer__text_editor", EDITOR_DESC, EDITOR_SCHEMA},
    {"developer__list_files", LIST_DESC, LIST_SCHEMA},
};

json_t *developer_tools(void)
{
    json_t *tools = json_array();
    if (!tools) return NULL;
    for (size_t i = 0; i < sizeof TOOLS / sizeof *TOOLS; i++) {
        json_error_t je;
        json_t *schema = json_loads(TOOLS[i].schema, 0, &je);
        if (!schema) { /* a typo above: the unit test catches it */
            log_error(LOG_MOD, "%s: bad input schema: %s", TOOLS[i].name, je.text);
            json_decref(tools);
            return NULL;
        }
        if (json_array_append_new(tools,
                                  json_pack("{s:s, s:s, s:o}", "name", TOOLS[i].name, "description",
                                            TOOLS[i].description, "input_schema", schema))) {
            json_decref(tools);
            return NULL;
        }
    }
    return tools;
}

const char *developer_instructions(void)
{
    return INSTRUCTIONS;
}

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

/* The message for errno value e, thread-safely. */
static const char *errstr(int e, char *b, size_t n)
{
    return strerror_r(e, b, n); /* the GNU variant: returns the message */
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one (NUL bytes
 * count as invalid: the text must be a C string). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return c ? 1 : 0;
    if (c < 0xC2 || c > 0xF4) return 0;
    size_t need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n < need) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F; /* no surrogates */
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F; /* nothing past U+10FFFF */
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need;
}

/* A malloc'd copy of data[0..len) as valid UTF-8 without NUL bytes: every byte that does not
 * belong to a valid sequence becomes U+FFFD. NULL when out of memory. */
static char *utf8_sanitize(const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data;
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_len(s + i, len - i);
        if (l) {
            i += l;
        } else {
            bad++;
            i++;
        }
    }
    if (bad > (SIZE_MAX - len - 1) / 2) return NULL;
    char *out = malloc(len + bad * 2 + 1), *p = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_len(s + i, len - i);
        if (l) {
            memcpy(p, s + i, l);
            p += l;
            i += l;
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3);
            p += 3;
            i++;
        }
    }
    *p = '\0';
    return out;
}

/* Sets out from b (which is freed) and returns err. */
static gd_err finish(tool_output *out, buf *b, bool is_error, gd_err err)
{
    out->is_error = is_error;
    out->text = utf8_sanitize(b->data ? b->data : "", b->len);
    buf_free(b);
    if (!out->text) {
        out->text = strdup("out of memory");
        out->is_error = true;
        return GD_ENOMEM;
    }
    return err;
}

/* An error result: out->text from the format, is_error set; returns err. */
__attribute__((format(printf, 3, 4))) static gd_err fail(tool_output *out, gd_err err,
                                                         const char *fmt, ...)
{
    buf b;
    buf_init(&b, 64 * 1024);
    va_list ap;
    va_start(ap, fmt);
    gd_err e = buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (e == GD_ETOOBIG) buf_puts(&b, "(error message too long)");
    return finish(out, &b, true, err);
}

/* An integer argument: a JSON integer, a real with no fraction, or a string of digits (models
 * send all three). false when v is none of these. */
static bool json_to_ll(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != d || d < -1e15 || d > 1e15 || d != (double)(long long)d) return false;
        *out = (long long)d;
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (end == s || *end || errno) return false;
        *out = n;
        return true;
    }
    return false;
}

/* Resolves p against the working directory into out (an absolute path without `.`, `..` or
 * repeated slashes; `~` is the home directory). false when it cannot (message in out). */
static bool resolve_path(const tool_ctx *ctx, const char *p, char *out, size_t n)
{
    char joined[DEV_PATH_MAX * 2 + 2];
    char cwdbuf[DEV_PATH_MAX];
    int w;
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
        const char *home = getenv("HOME");
        if (!home || home[0] != '/') {
            snprintf(out, n, "cannot expand '~': HOME is not set");
            return false;
        }
        w = snprintf(joined, sizeof joined, "%s/%s", home, p + 1);
    } else if (p[0] == '/') {
        w = snprintf(joined, sizeof joined, "%s", p);
    } else {
        const char *cwd = ctx && ctx->cwd && ctx->cwd[0] ? ctx->cwd : NULL;
        if (!cwd) {
            if (!getcwd(cwdbuf, sizeof cwdbuf)) {
                snprintf(out, n, "cannot determine the working directory");
                return false;
            }
            cwd = cwdbuf;
        }
        if (cwd[0] != '/') {
            if (!getcwd(cwdbuf, sizeof cwdbuf)) {
                snprintf(out, n, "cannot determine the working directory");
                return false;
            }
            w = snprintf(joined, sizeof joined, "%s/%s/%s", cwdbuf, cwd, p);
        } else {
            w = snprintf(joined, sizeof joined, "%s/%s", cwd, p);
        }
    }
    if (w < 0 || (size_t)w >= sizeof joined) {
        snprintf(out, n, "path too long");
        return false;
    }
    /* Lexical normalisation, component by component. */
    size_t len = 0;
    const char *s = joined;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s) break;
        const char *e = strchr(s, '/');
        size_t cl = e ? (size_t)(e - s) : strlen(s);
        if (cl == 1 && s[0] == '.') {
            /* skip */
        } else if (cl == 2 && s[0] == '.' && s[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0) len--; /* the slash */
        } else {
            if (len + 1 + cl + 1 > n || len + 1 + cl + 1 > DEV_PATH_MAX) {
                snprintf(out, n, "path too long");
                return false;
            }
            out[len++] = '/';
            memcpy(out + len, s, cl);
            len += cl;
        }
        s += cl;
    }
    if (len == 0) out[len++] = '/';
    out[len] = '\0';
    return true;
}

/* Reads the regular file at path, at most max bytes, into a malloc'd, NUL-terminated *data
 * (caller frees). Returns 0, or an errno value: EFBIG when larger than max, EISDIR / EINVAL
 * when not a regular file. */
static int read_file(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return EFBIG;
    }
    size_t alloc = (size_t)st.st_size + 1, n = 0;
    char *p = malloc(alloc + 1);
    if (!p) {
        close(fd);
        return ENOMEM;
    }
    for (;;) {
        if (n == alloc) { /* the file grew while we read it */
            if (alloc > max) {
                free(p);
                close(fd);
                return EFBIG;
            }
            size_t na = alloc * 2 > max + 1 ? max + 1 : alloc * 2;
            char *q = realloc(p, na + 1);
            if (!q) {
                free(p);
                close(fd);
                return ENOMEM;
            }
            p = q;
            alloc = na;
        }
        ssize_t r = read(fd, p + n, alloc - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(p);
            close(fd);
            return e;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max) {
        free(p);
        return EFBIG;
    }
    p[n] = '\0';
    *data = p;
    *len = n;
    return 0;
}

/* Writes data to path (created or truncated). Returns 0 or an errno value. */
static int write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0) return errno;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            return e;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 && errno != EINTR) return errno;
    return 0;
}

/* Creates the directories leading to the file path (mkdir -p of its parent). 0 or errno. */
static int make_parents(const char *path)
{
    char tmp[DEV_PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof tmp) return ENAMETOOLONG;
    memcpy(tmp, path, len + 1);
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp) return 0;
    *slash = '\0';
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0777) < 0 && errno != EEXIST) return errno;
            if (c == '\0') break;
            *p = c;
        }
    }
    struct stat st;
    if (stat(tmp, &st) < 0) return errno;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    return 0;
}

/* Lines in data: each '\n' ends one; a last line without one still counts. */
static size_t count_lines(const char *data, size_t len)
{
    size_t n = 0;
    for (const char *p = data, *end = data + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        n++;
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}

/* Byte offset where 1-based line `line` starts (len when the file has fewer lines). */
static size_t line_offset(const char *data, size_t len, size_t line)
{
    size_t off = 0;
    for (size_t l = 1; l < line && off < len; l++) {
        const char *nl = memchr(data + off, '\n', len - off);
        if (!nl) return len;
        off = (size_t)(nl - data) + 1;
    }
    return off;
}

static size_t count_char(const char *data, size_t len, char c)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += data[i] == c;
    return n;
}

/* Appends lines first..last (1-based, inclusive) of data as "N: text\n". */
static gd_err append_numbered(buf *b, const char *data, size_t len, size_t first, size_t last)
{
    size_t off = line_offset(data, len, first);
    for (size_t l = first; l <= last && off < len; l++) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - (data + off)) : len - off;
        gd_err e = buf_printf(b, "%zu: ", l);
        if (!e) e = buf_append(b, data + off, ll);
        if (!e) e = buf_puts(b, "\n");
        if (e) return e;
        off += ll + 1;
    }
    return GD_OK;
}

/* ======================================================================================== */
/* developer__shell                                                                           */
/* ======================================================================================== */

/* One captured stream: the first head_cap bytes in head, the last tail_cap bytes past them in a
 * ring, and the total count. Memory never exceeds head_cap + tail_cap. */
typedef struct {
    int fd; /* -1 once at end of file */
    buf head;
    size_t head_cap;
    char *tail; /* allocated when the head is full */
    size_t tail_cap, tail_pos, tail_len;
    uint64_t total;
} capture;

static void capture_init(capture *c, int fd, size_t cap)
{
    c->fd = fd;
    c->head_cap = cap / 2;
    c->tail_cap = cap - c->head_cap;
    buf_init(&c->head, c->head_cap);
    c->tail = NULL;
    c->tail_pos = c->tail_len = 0;
    c->total = 0;
}

static void capture_free(capture *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    buf_free(&c->head);
    free(c->tail);
    c->tail = NULL;
}

static void capture_feed(capture *c, const char *p, size_t n)
{
    c->total += n;
    size_t room = c->head_cap - c->head.len;
    size_t take = n < room ? n : room;
    if (take && buf_append(&c->head, p, take) != GD_OK) take = 0; /* out of memory: dropped */
    p += take;
    n -= take;
    if (!n || !c->tail_cap) return;
    if (!c->tail && !(c->tail = malloc(c->tail_cap))) return;
    if (n >= c->tail_cap) {
        memcpy(c->tail, p + n - c->tail_cap, c->tail_cap);
        c->tail_pos = 0;
        c->tail_len = c->tail_cap;
        return;
    }
    size_t first = c->tail_cap - c->tail_pos;
    if (first > n) first = n;
    memcpy(c->tail + c->tail_pos, p, first);
    memcpy(c->tail, p + first, n - first);
    c->tail_pos = (c->tail_pos + n) % c->tail_cap;
    c->tail_len = c->tail_len + n > c->tail_cap ? c->tail_cap : c->tail_len + n;
}

/* Reads what is available (a bounded amount, so that timers are looked at even when the command
 * floods us). Closes the fd at end of file or on an error. */
static void capture_read(capture *c, char *chunk)
{
    for (int i = 0; i < DEV_READS_PER_TURN && c->fd >= 0; i++) {
        ssize_t r = read(c->fd, chunk, DEV_READ_CHUNK);
        if (r > 0) {
            capture_feed(c, chunk, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        close(c->fd); /* end of file, or an error we cannot do anything about */
        c->fd = -1;
    }
}

static gd_err capture_render(buf *b, const char *label, const capture *c)
{
    uint64_t kept = c->head.len + c->tail_len;
    gd_err e;
    if (c->total == 0) return buf_printf(b, "%s: (empty)\n", label);
    if ((e = buf_printf(b, "%s:\n", label))) return e;
    if (c->head.len && (e = buf_append(b, c->head.data, c->head.len))) return e;
    if (c->total > kept &&
        (e = buf_printf(b,
                        "%s[... %llu bytes of %s omitted: the first %zu and last %zu bytes are "
                        "shown ...]\n",
                        c->head.len && c->head.data[c->head.len - 1] != '\n' ? "\n" : "",
                        (unsigned long long)(c->total - kept), label, c->head.len, c->tail_len)))
        return e;
    if (c->tail_len) {
        size_t start = c->tail_len < c->tail_cap ? 0 : c->tail_pos;
        size_t first = c->tail_cap - start;
        if (first > c->tail_len) first = c->tail_len;
        if ((e = buf_append(b, c->tail + start, first))) return e;
        if ((e = buf_append(b, c->tail, c->tail_len - first))) return e;
    }
    if (b->len && b->data[b->len - 1] != '\n') return buf_puts(b, "\n");
    return GD_OK;
}

/* Why the command was stopped: timeout and cancel send SIGTERM, then SIGKILL after a grace;
 * leftover (the shell exited, its background children still hold the pipes) sends SIGHUP. */
enum stop_reason { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL, STOP_LEFTOVER };

static void kill_group(pid_t pid, int sig)
{
    /* The shell leads its own group (POSIX_SPAWN_SETPGROUP with 0); it stays unreaped (WNOWAIT)
     * until we are done, so the group id cannot be reused by an unrelated process. */
    if (killpg(pid, sig) < 0) kill(pid, sig);
}

static bool cancelled(const tool_ctx *ctx)
{
    return ctx && ctx->cancel && atomic_load(ctx->cancel);
}

static void wait_min(uint64_t *wait, uint64_t target, uint64_t now)
{
    uint64_t left = target > now ? target - now : 0;
    if (left < *wait) *wait = left;
}

static gd_err tool_shell(json_t *args, const tool_ctx *ctx, tool_output *out)
{
    json_t *jc = json_object_get(args, "command");
    if (!jc)
        return fail(out, GD_EINVAL, "developer__shell needs a \"command\" argument (a string)");
    if (!json_is_string(jc))
        return fail(out, GD_EINVAL, "developer__shell: \"command\" must be a string");
    const char *command = json_string_value(jc);
    if (!command[0]) return fail(out, GD_EINVAL, "developer__shell: \"command\" is empty");
    if (strlen(command) != json_string_length(jc))
        return fail(out, GD_EINVAL, "developer__shell: \"command\" contains a NUL character");

    long timeout_ms = ctx && ctx->timeout_ms > 0 ? ctx->timeout_ms : DEV_TIMEOUT_MS;
    size_t cap = ctx && ctx->output_cap > 0 ? ctx->output_cap : DEV_OUTPUT_CAP;
    if (cap > DEV_TEXT_CAP / 2 - 4096) cap = DEV_TEXT_CAP / 2 - 4096;
    const char *cwd = ctx && ctx->cwd && ctx->cwd[0] ? ctx->cwd : ".";
    char *const *env = ctx ? ctx->env : NULL;
    char eb[128];

    struct stat st;
    if (stat(cwd, &st) < 0)
        return fail(out, GD_ENOTFOUND,
                    "developer__shell: the working directory '%s' is not "
                    "accessible: %s",
                    cwd, errstr(errno, eb, sizeof eb));
    if (!S_ISDIR(st.st_mode))
        return fail(out, GD_ENOTFOUND,
                    "developer__shell: the working directory '%s' is not a directory", cwd);
    if (cancelled(ctx)) return fail(out, GD_OK, "cancelled: the command was not started");
    char *chunk = malloc(DEV_READ_CHUNK);
    if (!chunk) return fail(out, GD_ENOMEM, "developer__shell: out of memory");

    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        int e = errno;
        if (po[0] >= 0) {
            close(po[0]);
            close(po[1]);
        }
        free(chunk);
        return fail(out, GD_EIO, "developer__shell: cannot create pipes: %s",
                    errstr(e, eb, sizeof eb));
    }
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);

    /* posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) and exec, nothing unsafe in between):
     * its own process group, signals back to their defaults and unblocked (the server ignores
     * SIGPIPE and blocks SIGTERM/SIGINT; a child must not inherit that), stdin from /dev/null,
     * stdout/stderr to our pipes, the working directory. Every other fd we hold is O_CLOEXEC. */
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    int rc = posix_spawnattr_init(&attr);
    if (rc) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        free(chunk);
        return fail(out, GD_ENOMEM, "developer__shell: %s", errstr(rc, eb, sizeof eb));
    }
    rc = posix_spawn_file_actions_init(&fa);
    if (rc) {
        posix_spawnattr_destroy(&attr);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        free(chunk);
        return fail(out, GD_ENOMEM, "developer__shell: %s", errstr(rc, eb, sizeof eb));
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                             POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    if (!rc) rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    pid_t pid = -1;
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    if (!rc) rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env ? env : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(po[1]);
    close(pe[1]);
    if (rc) {
        close(po[0]);
        close(pe[0]);
        free(chunk);
        return fail(out, GD_EIO, "developer__shell: cannot start /bin/sh in '%s': %s", cwd,
                    errstr(rc, eb, sizeof eb));
    }
    log_debug(LOG_MOD, "shell pid %d: %.200s", (int)pid, command);

    /* A pidfd wakes the poll the moment the shell exits (Linux 5.3+); without one we look
     * every few milliseconds once the pipes are closed. */
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif

    capture co, ce;
    capture_init(&co, po[0], cap);
    capture_init(&ce, pe[0], cap);

    uint64_t start = now_ms(), deadline = start + (uint64_t)timeout_ms;
    uint64_t exit_at = 0, term_at = 0, kill_at = 0;
    bool exited = false;
    enum stop_reason reason = STOP_NONE;
    for (;;) {
        struct pollfd pfd[3];
        int n = 0, io = -1, ie = -1;
        if (co.fd >= 0) pfd[io = n++] = (struct pollfd){.fd = co.fd, .events = POLLIN};
        if (ce.fd >= 0) pfd[ie = n++] = (struct pollfd){.fd = ce.fd, .events = POLLIN};
        bool pipes_open = n > 0;
        if (exited && !pipes_open) break;
        if (!exited && pidfd >= 0) pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};

        uint64_t now = now_ms(), wait = DEV_POLL_MS;
        if (reason == STOP_NONE && !exited) wait_min(&wait, deadline, now);
        if (reason == STOP_NONE && exited) wait_min(&wait, exit_at + DEV_DRAIN_MS, now);
        if (reason == STOP_LEFTOVER)
            wait_min(&wait, term_at + DEV_DRAIN_MS, now);
        else if (reason != STOP_NONE && !kill_at)
            wait_min(&wait, term_at + DEV_KILL_GRACE_MS, now);
        if (kill_at) wait_min(&wait, kill_at + DEV_DRAIN_MS, now);
        if (!pipes_open && pidfd < 0 && wait > 5) wait = 5;
        int pr = poll(pfd, (nfds_t)n, (int)wait);
        if (pr > 0) {
            if (io >= 0 && pfd[io].revents) capture_read(&co, chunk);
            if (ie >= 0 && pfd[ie].revents) capture_read(&ce, chunk);
        }

        if (!exited) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
                if (si.si_pid == pid) exited = true;
            } else if (errno == ECHILD) {
                exited = true; /* reaped by someone else (SIGCHLD ignored?) */
            }
            if (exited) exit_at = now_ms();
        }

        now = now_ms();
        if (reason == STOP_NONE || reason == STOP_LEFTOVER) {
            enum stop_reason r = STOP_NONE;
            if (cancelled(ctx))
                r = STOP_CANCEL;
            else if (!exited && now >= deadline)
                r = STOP_TIMEOUT;
            if (r != STOP_NONE) {
                reason = r;
                kill_group(pid, SIGTERM);
                term_at = now;
            } else if (reason == STOP_NONE && exited && (co.fd >= 0 || ce.fd >= 0) &&
                       now >= exit_at + DEV_DRAIN_MS) {
                /* The shell is gone but something it started in the background still holds
                 * the output: hang up on it as a closed terminal would (nohup survives), wait
                 * a little more, then stop reading. */
                reason = STOP_LEFTOVER;
                kill_group(pid, SIGHUP);
                term_at = now;
            }
        }
        if (reason == STOP_LEFTOVER && now >= term_at + DEV_DRAIN_MS) break;
        if ((reason == STOP_TIMEOUT || reason == STOP_CANCEL) && !kill_at &&
            now >= term_at + DEV_KILL_GRACE_MS) {
            kill_group(pid, SIGKILL);
            kill_at = now;
        }
        /* Killed, and still not at end of file: something outside the group holds the pipes.
         * Give up on them (once the shell itself is gone). */
        if (kill_at && now >= kill_at + DEV_DRAIN_MS && exited) break;
    }
    if (pidfd >= 0) close(pidfd);
    free(chunk);

    int status = 0;
    bool have_status = false;
    for (;;) {
        pid_t w = waitpid(pid, &status, 0);
        if (w == pid) {
            have_status = true;
            break;
        }
        if (w < 0 && errno == EINTR) continue;
        break; /* ECHILD: reaped elsewhere */
    }
    uint64_t elapsed = now_ms() - start;
    log_debug(LOG_MOD, "shell pid %d done in %llu ms", (int)pid, (unsigned long long)elapsed);

    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    bool is_error = false;
    if (reason == STOP_TIMEOUT) {
        buf_printf(&b, "killed: timed out after %g s\n", (double)timeout_ms / 1000.0);
        is_error = true;
    } else if (reason == STOP_CANCEL) {
        buf_puts(&b, "cancelled\n");
        is_error = true;
    } else if (!have_status) {
        buf_puts(&b, "exit status: unknown\n");
    } else if (WIFEXITED(status)) {
        buf_printf(&b, "exit status: %d\n", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        buf_printf(&b, "killed by signal %d%s\n", WTERMSIG(status),
                   WCOREDUMP(status) ? " (core dumped)" : "");
    }
    if (reason == STOP_LEFTOVER)
        buf_puts(&b, "note: processes the command left in the background still held its output; "
                     "they were sent SIGHUP and anything more they print is lost. To keep a "
                     "process running, start it with `nohup cmd > cmd.log 2>&1 &`\n");
    capture_render(&b, "stdout", &co);
    capture_render(&b, "stderr", &ce);
    capture_free(&co);
    capture_free(&ce);
    return finish(out, &b, is_error, GD_OK);
}

/* ======================================================================================== */
/* developer__text_editor                                                                     */
/* ======================================================================================== */

/* Undo history: per absolute path, the contents before each of the last DEV_UNDO_STEPS edits
 * (oldest first). Bounded in bytes for all files together: past DEV_UNDO_BYTES the oldest steps
 * of any file go. One mutex guards it, and is held across every edit (read, change, history,
 * write) so that two sessions editing the same file do not interleave. */
typedef struct {
    char *data; /* NULL: the file did not exist */
    size_t len;
    uint64_t seq;
} undo_step;

typedef struct undo_file {
    struct undo_file *next;
    char *path;
    undo_step steps[DEV_UNDO_STEPS];
    int n;
} undo_file;

static pthread_mutex_t g_undo_mu = PTHREAD_MUTEX_INITIALIZER;
static undo_file *g_undo;
static size_t g_undo_bytes;
static uint64_t g_undo_seq;

static size_t step_cost(const undo_step *s)
{
    return s->len + sizeof *s;
}

static undo_file *undo_find(const char *path)
{
    for (undo_file *f = g_undo; f; f = f->next)
        if (!strcmp(f->path, path)) return f;
    return NULL;
}

static void undo_drop_oldest_step(undo_file *f)
{
    g_undo_bytes -= step_cost(&f->steps[0]);
    free(f->steps[0].data);
    memmove(f->steps, f->steps + 1, (size_t)(f->n - 1) * sizeof f->steps[0]);
    f->n--;
}

static void undo_unlink_file(undo_file *f)
{
    for (undo_file **pp = &g_undo; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    while (f->n)
        undo_drop_oldest_step(f);
    g_undo_bytes -= strlen(f->path) + sizeof *f;
    free(f->path);
    free(f);
}

/* Records the content before an edit (data NULL: the file did not exist); takes a copy.
 * Caller holds g_undo_mu. false when it could not be kept (too large, out of memory). */
static bool undo_push(const char *path, const char *data, size_t len)
{
    undo_step s = {.data = NULL, .len = data ? len : 0};
    if (step_cost(&s) + strlen(path) + sizeof(undo_file) > DEV_UNDO_BYTES) return false;
    if (data && !(s.data = malloc(len ? len : 1))) return false;
    if (data && len) memcpy(s.data, data, len);
    undo_file *f = undo_find(path);
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f || !(f->path = strdup(path))) {
            free(f);
            free(s.data);
            return false;
        }
        f->next = g_undo;
        g_undo = f;
        g_undo_bytes += strlen(path) + sizeof *f;
    }
    if (f->n == DEV_UNDO_STEPS) undo_drop_oldest_step(f);
    s.seq = ++g_undo_seq;
    f->steps[f->n++] = s;
    g_undo_bytes += step_cost(&s);
    /* Over budget: drop the oldest step of all, until within it. */
    while (g_undo_bytes > DEV_UNDO_BYTES) {
        undo_file *old = NULL;
        for (undo_file *it = g_undo; it; it = it->next)
            if (it->n && (!old || it->steps[0].seq < old->steps[0].seq)) old = it;
        if (!old || (old == f && f->n == 1)) break;
        undo_drop_oldest_step(old);
        if (!old->n) undo_unlink_file(old);
    }
    return true;
}

/* Removes the latest step of path into *s (caller frees s->data). Caller holds g_undo_mu. */
static bool undo_pop(const char *path, undo_step *s, int *left)
{
    undo_file *f = undo_find(path);
    if (!f || !f->n) return false;
    *s = f->steps[--f->n];
    g_undo_bytes -= step_cost(s);
    *left = f->n;
    if (!f->n) undo_unlink_file(f);
    return true;
}

/* Puts a step back after a failed undo. Caller holds g_undo_mu. */
static void undo_unpop(const char *path, undo_step *s)
{
    undo_push(path, s->data, s->len);
    free(s->data);
    s->data = NULL;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static gd_err editor_view_dir(const char *path, tool_output *out)
{
    char eb[128];
    DIR *d = opendir(path);
    if (!d)
        return fail(out, GD_EIO, "Cannot list the directory '%s': %s", path,
                    errstr(errno, eb, sizeof eb));
    size_t n = 0, alloc = 0, total = 0;
    char **names = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        total++;
        if (n >= DEV_DIR_READ_MAX) continue;
        bool dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
            struct stat st;
            dir = fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 64;
            char **p = realloc(names, na * sizeof *p);
            if (!p) break;
            names = p;
            alloc = na;
        }
        /* A leading 'd' or 'f' sorts directories first; dropped when printed. */
        size_t l = strlen(de->d_name);
        char *s = malloc(l + 3);
        if (!s) break;
        s[0] = dir ? 'd' : 'f';
        memcpy(s + 1, de->d_name, l);
        if (dir) s[++l] = '/';
        s[l + 1] = '\0';
        names[n++] = s;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, name_cmp);
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    buf_printf(&b, "'%s' is a directory with %zu entries:\n", path, total);
    size_t shown = n < DEV_DIR_VIEW_MAX ? n : DEV_DIR_VIEW_MAX;
    for (size_t i = 0; i < n; i++) {
        if (i < shown) buf_printf(&b, "%s\n", names[i] + 1);
        free(names[i]);
    }
    free(names);
    if (!total) buf_puts(&b, "(empty directory)\n");
    if (total > shown)
        buf_printf(&b,
                   "... and %zu more entries (showing %zu); use developer__list_files with "
                   "a pattern to find the rest\n",
                   total - shown, shown);
    return finish(out, &b, false, GD_OK);
}

/* The view_range argument into first/last (last 0: to the end). */
static bool parse_range(json_t *vr, long long *first, long long *last)
{
    if (!json_is_array(vr) || json_array_size(vr) != 2) return false;
    return json_to_ll(json_array_get(vr, 0), first) && json_to_ll(json_array_get(vr, 1), last);
}

static gd_err editor_view(const char *path, json_t *args, tool_output *out)
{
    char eb[128];
    struct stat st;
    if (stat(path, &st) < 0)
        return fail(out, errno == ENOENT ? GD_ENOTFOUND : GD_EIO,
                    "The path '%s' does not exist or is not accessible: %s", path,
                    errstr(errno, eb, sizeof eb));
    if (S_ISDIR(st.st_mode)) return editor_view_dir(path, out);
    if (!S_ISREG(st.st_mode))
        return fail(out, GD_EINVAL, "'%s' is not a regular file or a directory", path);

    json_t *vr = json_object_get(args, "view_range");
    long long first = 1, last = -1;
    bool ranged = vr && !json_is_null(vr);
    if (ranged && !parse_range(vr, &first, &last))
        return fail(out, GD_EINVAL,
                    "view_range must be an array of two integers [start, end] (1-based, "
                    "inclusive; end -1 = to the end of the file)");
    if (ranged && first < 1)
        return fail(out, GD_EINVAL, "view_range: start must be 1 or more (got %lld)", first);
    if (ranged && last != -1 && last < first)
        return fail(out, GD_EINVAL, "view_range: end (%lld) must be -1 or at least start (%lld)",
                    last, first);

    char *data;
    size_t len;
    int e = read_file(path, DEV_VIEW_MAX, &data, &len);
    if (e == EFBIG)
        return fail(out, GD_ETOOBIG,
                    "File '%s' is too large to view (%.1f KB; the limit is %d KB). Look at parts "
                    "of it with the shell instead, e.g. `sed -n '100,200p' FILE`, `head`, "
                    "`tail` or `grep -n`.",
                    path, (double)st.st_size / 1024.0, DEV_VIEW_MAX / 1024);
    if (e)
        return fail(out, e == ENOENT ? GD_ENOTFOUND : GD_EIO, "Cannot read '%s': %s", path,
                    errstr(e, eb, sizeof eb));
    if (memchr(data, '\0', len)) {
        free(data);
        return fail(out, GD_EINVAL,
                    "'%s' looks like a binary file (it contains NUL bytes); it cannot be viewed as "
                    "text. Inspect it with the shell (e.g. `file`, `xxd | head`).",
                    path);
    }
    size_t total = count_lines(data, len);
    if (!ranged && total > DEV_VIEW_LINES) {
        free(data);
        return fail(out, GD_EINVAL,
                    "'%s' has %zu lines, more than the %d shown at once. Use view_range to read "
                    "part of it, e.g. [1, 500], then [501, 1000]; or search it with "
                    "`grep -n` in the shell.",
                    path, total, DEV_VIEW_LINES);
    }
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    if (total == 0) {
        free(data);
        if (ranged) {
            buf_free(&b);
            return fail(out, GD_EINVAL, "'%s' is empty: there is no line %lld", path, first);
        }
        buf_printf(&b, "%s (empty file)\n", path);
        return finish(out, &b, false, GD_OK);
    }
    if ((unsigned long long)first > total) {
        free(data);
        buf_free(&b);
        return fail(out, GD_EINVAL,
                    "view_range: start line %lld is past the end of '%s' (%zu lines)", first, path,
                    total);
    }
    size_t lo = (size_t)first,
           hi = last == -1 || (unsigned long long)last > total ? total : (size_t)last;
    if (ranged)
        buf_printf(&b, "%s (lines %zu-%zu of %zu)\n", path, lo, hi, total);
    else
        buf_printf(&b, "%s (%zu lines)\n", path, total);
    gd_err ge = append_numbered(&b, data, len, lo, hi);
    free(data);
    if (ge) {
        buf_free(&b);
        return fail(out, ge, "Cannot show '%s': %s", path, gd_strerror(ge));
    }
    if (hi < total)
        buf_printf(&b, "[Showing lines %zu-%zu of %zu. Use view_range [%zu, %zu] to see more.]\n",
                   lo, hi, total, hi + 1, hi + 500 < total ? hi + 500 : total);
    return finish(out, &b, false, GD_OK);
}

/* The result of an edit: a message and the changed lines with some context. */
static gd_err edit_result(tool_output *out, const char *what, const char *path, const char *data,
                          size_t len, size_t from, size_t to)
{
    size_t total = count_lines(data, len);
    size_t lo = from > DEV_SNIPPET_LINES ? from - DEV_SNIPPET_LINES : 1;
    size_t hi = to + DEV_SNIPPET_LINES;
    if (hi > total) hi = total;
    if (to > total) to = total;
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    buf_printf(&b, "%s %s.", what, path);
    if (total && lo <= hi) {
        buf_printf(&b, " Lines %zu-%zu now read:\n", lo, hi);
        append_numbered(&b, data, len, lo, hi);
    } else {
        buf_printf(&b, " The file is now empty.\n");
    }
    buf_puts(&b, "Review the change; use undo_edit to revert it if it is wrong.\n");
    return finish(out, &b, false, GD_OK);
}

/* Reads a file for editing: must exist, be regular, under DEV_EDIT_MAX, text. */
static gd_err edit_read(const char *path, char **data, size_t *len, tool_output *out)
{
    char eb[128];
    int e = read_file(path, DEV_EDIT_MAX, data, len);
    if (e == ENOENT)
        return fail(out, GD_ENOTFOUND, "File '%s' does not exist; create it with the write command",
                    path);
    if (e == EFBIG)
        return fail(out, GD_ETOOBIG,
                    "File '%s' is larger than %d MB, the limit for edits; edit it with the shell "
                    "(e.g. sed) instead",
                    path, DEV_EDIT_MAX / (1024 * 1024));
    if (e == EISDIR) return fail(out, GD_EINVAL, "'%s' is a directory, not a file", path);
    if (e) return fail(out, GD_EIO, "Cannot read '%s': %s", path, errstr(e, eb, sizeof eb));
    if (memchr(*data, '\0', *len)) {
        free(*data);
        *data = NULL;
        return fail(out, GD_EINVAL,
                    "'%s' looks like a binary file (it contains NUL bytes); "
                    "the text editor does not edit binary files",
                    path);
    }
    return GD_OK;
}

static gd_err edit_write(const char *path, const char *data, size_t len, tool_output *out)
{
    char eb[128];
    int e = write_file(path, data, len);
    if (e)
        return fail(out, GD_EIO, "Cannot write '%s': %s (undo_edit restores the previous content)",
                    path, errstr(e, eb, sizeof eb));
    return GD_OK;
}

/* Caller holds g_undo_mu. */
static gd_err editor_write(const char *path, json_t *args, tool_output *out)
{
    char eb[128];
    json_t *jt = json_object_get(args, "file_text");
    if (!json_is_string(jt))
        return fail(out, GD_EINVAL, "write needs \"file_text\" (a string): the file's content");
    const char *text = json_string_value(jt);
    size_t tlen = json_string_length(jt);

    struct stat st;
    char *old = NULL;
    size_t olen = 0;
    bool existed = stat(path, &st) == 0;
    if (existed && S_ISDIR(st.st_mode))
        return fail(out, GD_EINVAL, "'%s' is a directory; give the path of a file", path);
    bool undoable = true;
    if (existed) {
        int e = read_file(path, DEV_EDIT_MAX, &old, &olen);
        if (e == EFBIG)
            undoable = false;
        else if (e)
            return fail(out, GD_EIO, "Cannot read the current '%s': %s", path,
                        errstr(e, eb, sizeof eb));
    } else {
        int e = make_parents(path);
        if (e)
            return fail(out, GD_EIO, "Cannot create the directories for '%s': %s", path,
                        errstr(e, eb, sizeof eb));
    }
    bool add_nl = tlen && text[tlen - 1] != '\n';
    char *content = malloc(tlen + 2);
    if (!content) {
        free(old);
        return fail(out, GD_ENOMEM, "out of memory");
    }
    memcpy(content, text, tlen);
    if (add_nl) content[tlen++] = '\n';
    if (undoable) undoable = undo_push(path, existed ? (old ? old : "") : NULL, olen);
    free(old);
    gd_err ge = edit_write(path, content, tlen, out);
    if (ge) {
        free(content);
        return ge;
    }
    size_t lines = count_lines(content, tlen);
    free(content);
    buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "%s %s (%zu lines, %zu bytes).%s\n", existed ? "Overwrote" : "Created", path,
               lines, tlen,
               undoable ? "" : " Note: the previous content was too large to keep for undo_edit.");
    return finish(out, &b, false, GD_OK);
}

/* Occurrences of needle in hay, overlapping ones included (any of them would be ambiguous);
 * *first gets the offset of the first. Stops counting at 1000. */
static size_t count_occurrences(const char *hay, size_t hlen, const char *needle, size_t nlen,
                                size_t *first)
{
    size_t n = 0;
    const char *p = hay, *end = hay + hlen;
    while (n < 1000 && p < end) {
        const char *m = memmem(p, (size_t)(end - p), needle, nlen);
        if (!m) break;
        if (!n) *first = (size_t)(m - hay);
        n++;
        p = m + 1;
    }
    return n;
}

/* s with every "\n" not preceded by "\r" turned into "\r\n" (malloc'd, NULL when out of memory). */
static char *to_crlf(const char *s, size_t len, size_t *olen)
{
    char *o = malloc(len * 2 + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) o[j++] = '\r';
        o[j++] = s[i];
    }
    o[j] = '\0';
    *olen = j;
    return o;
}

/* Caller holds g_undo_mu. */
static gd_err editor_replace(const char *path, json_t *args, tool_output *out)
{
    json_t *jo = json_object_get(args, "old_str"), *jn = json_object_get(args, "new_str");
    if (!json_is_string(jo))
        return fail(out, GD_EINVAL,
                    "str_replace needs \"old_str\" (a string): the exact text to "
                    "replace");
    if (jn && !json_is_null(jn) && !json_is_string(jn))
        return fail(out, GD_EINVAL, "str_replace: \"new_str\" must be a string");
    const char *os = json_string_value(jo),
               *ns = jn && json_is_string(jn) ? json_string_value(jn) : "";
    size_t ol = json_string_length(jo), nl = jn && json_is_string(jn) ? json_string_length(jn) : 0;
    if (!ol)
        return fail(out, GD_EINVAL, "str_replace: \"old_str\" is empty; use insert to add text");

    char *data;
    size_t len;
    gd_err ge = edit_read(path, &data, &len, out);
    if (ge) return ge;

    size_t at = 0, count = count_occurrences(data, len, os, ol, &at);
    char *crlf_o = NULL, *crlf_n = NULL;
    if (count == 0 && memmem(data, len, "\r\n", 2) && memchr(os, '\n', ol)) {
        /* The file has CRLF line ends and the model wrote LF: try again in CRLF. */
        size_t col, cnl;
        crlf_o = to_crlf(os, ol, &col);
        crlf_n = to_crlf(ns, nl, &cnl);
        if (crlf_o && crlf_n) {
            count = count_occurrences(data, len, crlf_o, col, &at);
            if (count) {
                os = crlf_o, ol = col;
                ns = crlf_n, nl = cnl;
            }
        }
    }
    if (count != 1) {
        free(data);
        free(crlf_o);
        free(crlf_n);
        if (count == 0)
            return fail(out, GD_EINVAL,
                        "No match for old_str in '%s'. It must match the file exactly, "
                        "whitespace, indentation and line ends included; view the file to check "
                        "the current text.",
                        path);
        return fail(out, GD_EINVAL,
                    "old_str occurs %s%zu times in '%s'; it must occur exactly once. Include "
                    "more of the surrounding lines to make it unique.",
                    count >= 1000 ? "at least " : "", count, path);
    }
    size_t newlen = len - ol + nl;
    char *nd = malloc(newlen + 1);
    if (!nd) {
        free(data);
        free(crlf_o);
        free(crlf_n);
        return fail(out, GD_ENOMEM, "out of memory");
    }
    memcpy(nd, data, at);
    memcpy(nd + at, ns, nl);
    memcpy(nd + at + nl, data + at + ol, len - at - ol);
    nd[newlen] = '\0';
    bool undoable = undo_push(path, data, len);
    free(data);
    size_t from = count_char(nd, at, '\n') + 1;
    size_t to = from + (nl ? count_char(ns, nl, '\n') - (ns[nl - 1] == '\n') : 0);
    free(crlf_o);
    free(crlf_n);
    ge = edit_write(path, nd, newlen, out);
    if (!ge)
        ge = edit_result(out, undoable ? "Edited" : "Edited (too large to keep for undo_edit)",
                         path, nd, newlen, from, to);
    free(nd);
    return ge;
}

/* Caller holds g_undo_mu. */
static gd_err editor_insert(const char *path, json_t *args, tool_output *out)
{
    json_t *jl = json_object_get(args, "insert_line"), *jn = json_object_get(args, "new_str");
    long long line;
    if (!jl || !json_to_ll(jl, &line))
        return fail(out, GD_EINVAL,
                    "insert needs \"insert_line\" (an integer: the line after "
                    "which to insert; 0 = at the top, -1 = at the end)");
    if (!json_is_string(jn))
        return fail(out, GD_EINVAL, "insert needs \"new_str\" (a string): the text to insert");
    const char *ns = json_string_value(jn);
    size_t nl = json_string_length(jn);

    char *data;
    size_t len;
    gd_err ge = edit_read(path, &data, &len, out);
    if (ge) return ge;
    size_t total = count_lines(data, len);
    if (line == -1) line = (long long)total;
    if (line < 0 || (unsigned long long)line > total) {
        free(data);
        return fail(out, GD_EINVAL,
                    "insert_line %lld is out of range: '%s' has %zu lines (use 0 to insert at "
                    "the top, %zu or -1 to insert at the end)",
                    line, path, total, total);
    }
    size_t off = line_offset(data, len, (size_t)line + 1);
    bool pre_nl = off == len && len && data[len - 1] != '\n'; /* last line lacks its newline */
    bool post_nl = nl && ns[nl - 1] != '\n';
    size_t newlen = len + pre_nl + nl + post_nl;
    char *nd = malloc(newlen + 1);
    if (!nd) {
        free(data);
        return fail(out, GD_ENOMEM, "out of memory");
    }
    size_t j = 0;
    memcpy(nd, data, off);
    j = off;
    if (pre_nl) nd[j++] = '\n';
    memcpy(nd + j, ns, nl);
    j += nl;
    if (post_nl) nd[j++] = '\n';
    memcpy(nd + j, data + off, len - off);
    nd[newlen] = '\0';
    bool undoable = undo_push(path, data, len);
    free(data);
    ge = edit_write(path, nd, newlen, out);
    if (!ge) {
        size_t added = nl ? count_char(ns, nl, '\n') + post_nl : 0;
        char what[64];
        snprintf(what, sizeof what, "Inserted %zu line%s after line %lld of", added,
                 added == 1 ? "" : "s", line);
        ge = edit_result(out, undoable ? what : "Inserted (too large to keep for undo_edit) into",
                         path, nd, newlen, (size_t)line + 1, (size_t)line + (added ? added : 1));
    }
    free(nd);
    return ge;
}

/* Caller holds g_undo_mu. */
static gd_err editor_undo(const char *path, tool_output *out)
{
    char eb[128];
    undo_step s;
    int left = 0;
    if (!undo_pop(path, &s, &left))
        return fail(out, GD_EINVAL, "No edit history for '%s': there is nothing to undo", path);
    buf b;
    buf_init(&b, 4096);
    if (!s.data) {
        if (unlink(path) < 0 && errno != ENOENT) {
            int e = errno;
            undo_unpop(path, &s);
            return fail(out, GD_EIO, "Cannot remove '%s': %s", path, errstr(e, eb, sizeof eb));
        }
        buf_printf(&b,
                   "Undid the last edit of %s: the file did not exist before it, so it was "
                   "removed.",
                   path);
    } else {
        int e = write_file(path, s.data, s.len);
        if (e) {
            undo_unpop(path, &s);
            return fail(out, GD_EIO, "Cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
        }
        buf_printf(&b, "Undid the last edit of %s; it is back to its previous %zu lines.", path,
                   count_lines(s.data, s.len));
        free(s.data);
    }
    buf_printf(&b, " %d more undo step%s available for this file.\n", left, left == 1 ? "" : "s");
    return finish(out, &b, false, GD_OK);
}

static gd_err tool_editor(json_t *args, const tool_ctx *ctx, tool_output *out)
{
    json_t *jc = json_object_get(args, "command"), *jp = json_object_get(args, "path");
    if (!json_is_string(jc))
        return fail(out, GD_EINVAL,
                    "developer__text_editor needs \"command\": one of view, "
                    "write, str_replace, insert, undo_edit");
    if (!json_is_string(jp) || !json_string_value(jp)[0])
        return fail(out, GD_EINVAL, "developer__text_editor needs \"path\" (a non-empty string)");
    const char *cmd = json_string_value(jc);
    char path[DEV_PATH_MAX];
    if (strlen(json_string_value(jp)) != json_string_length(jp))
        return fail(out, GD_EINVAL, "\"path\" contains a NUL character");
    if (!resolve_path(ctx, json_string_value(jp), path, sizeof path))
        return fail(out, GD_EINVAL, "Bad path '%s': %s", json_string_value(jp), path);

    if (!strcmp(cmd, "view")) return editor_view(path, args, out);
    gd_err (*fn)(const char *, json_t *, tool_output *) = NULL;
    if (!strcmp(cmd, "write"))
        fn = editor_write;
    else if (!strcmp(cmd, "str_replace"))
        fn = editor_replace;
    else if (!strcmp(cmd, "insert"))
        fn = editor_insert;
    else if (strcmp(cmd, "undo_edit"))
        return fail(out, GD_EINVAL,
                    "Unknown text_editor command '%s': use one of view, write, "
                    "str_replace, insert, undo_edit",
                    cmd);
    pthread_mutex_lock(&g_undo_mu);
    gd_err e = fn ? fn(path, args, out) : editor_undo(path, out);
    pthread_mutex_unlock(&g_undo_mu);
    return e;
}

/* ======================================================================================== */
/* developer__list_files                                                                      */
/* ======================================================================================== */

typedef struct {
    buf *out;
    const char *pattern; /* NULL: everything */
    bool pattern_path;   /* match against the relative path, not the name */
    int max_depth;
    const atomic_bool *cancel;
    char rel[DEV_PATH_MAX]; /* the entry's path relative to the root, built as we descend */
    size_t count, examined, unreadable;
    bool capped, partial, stopped, cancelled;
} lister;

typedef struct {
    char *name;
    bool dir;
} dentry;

static int dentry_cmp(const void *a, const void *b)
{
    return strcmp(((const dentry *)a)->name, ((const dentry *)b)->name);
}

/* Lists the directory at fd (taken: closed here) whose path relative to the root is
 * L->rel[0..rlen) (empty for the root), depth 1 being the root's own entries. */
static void list_dir(lister *L, int fd, size_t rlen, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        L->unreadable++;
        return;
    }
    dentry *ents = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, ".git") ||
            !strcmp(nm, "node_modules"))
            continue;
        if (n >= DEV_DIR_READ_MAX) {
            L->partial = true;
            break;
        }
        bool dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            dir = fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 32;
            dentry *p = realloc(ents, na * sizeof *p);
            if (!p) break;
            ents = p;
            alloc = na;
        }
        if (!(ents[n].name = strdup(nm))) break;
        ents[n++].dir = dir;
    }
    if (n) qsort(ents, n, sizeof *ents, dentry_cmp);
    for (size_t i = 0; i < n && !L->capped && !L->stopped; i++) {
        if (++L->examined > DEV_LIST_EXAMINE_MAX) {
            L->stopped = true;
            break;
        }
        if (L->cancel && (L->examined & 255) == 0 && atomic_load(L->cancel)) {
            L->stopped = L->cancelled = true;
            break;
        }
        size_t nl = strlen(ents[i].name);
        if (rlen + (rlen > 0) + nl + 1 > sizeof L->rel) continue;
        size_t len = rlen;
        if (len) L->rel[len++] = '/';
        memcpy(L->rel + len, ents[i].name, nl + 1);
        len += nl;
        bool show = true;
        if (L->pattern) show = fnmatch(L->pattern, L->pattern_path ? L->rel : ents[i].name, 0) == 0;
        if (show) {
            if (L->count == DEV_LIST_MAX ||
                buf_printf(L->out, "%s%s\n", L->rel, ents[i].dir ? "/" : "")) {
                L->capped = true;
                break;
            }
            L->count++;
        }
        if (ents[i].dir && depth < L->max_depth) {
            int cfd = openat(dirfd(d), ents[i].name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (cfd < 0)
                L->unreadable++;
            else
                list_dir(L, cfd, len, depth + 1);
        }
    }
    L->rel[rlen] = '\0';
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    closedir(d);
}

static gd_err tool_list(json_t *args, const tool_ctx *ctx, tool_output *out)
{
    char eb[128];
    json_t *jp = json_object_get(args, "path"), *jd = json_object_get(args, "max_depth"),
           *jg = json_object_get(args, "pattern");
    const char *p = ".";
    if (jp && !json_is_null(jp)) {
        if (!json_is_string(jp) || strlen(json_string_value(jp)) != json_string_length(jp))
            return fail(out, GD_EINVAL, "developer__list_files: \"path\" must be a string");
        if (json_string_value(jp)[0]) p = json_string_value(jp);
    }
    long long depth = DEV_LIST_DEPTH;
    if (jd && !json_is_null(jd)) {
        if (!json_to_ll(jd, &depth) || depth < 1)
            return fail(out, GD_EINVAL,
                        "developer__list_files: \"max_depth\" must be an integer of at least 1");
        if (depth > DEV_LIST_DEPTH_MAX) depth = DEV_LIST_DEPTH_MAX;
    }
    const char *pattern = NULL;
    if (jg && !json_is_null(jg)) {
        if (!json_is_string(jg) || strlen(json_string_value(jg)) != json_string_length(jg))
            return fail(out, GD_EINVAL, "developer__list_files: \"pattern\" must be a string");
        if (json_string_value(jg)[0]) pattern = json_string_value(jg);
    }
    char path[DEV_PATH_MAX];
    if (!resolve_path(ctx, p, path, sizeof path))
        return fail(out, GD_EINVAL, "developer__list_files: bad path '%s': %s", p, path);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return fail(out,
                    e == ENOENT    ? GD_ENOTFOUND
                    : e == ENOTDIR ? GD_EINVAL
                                   : GD_EIO,
                    "developer__list_files: cannot list '%s': %s", path,
                    e == ENOTDIR ? "it is not a directory" : errstr(e, eb, sizeof eb));
    }
    buf body, b;
    buf_init(&body, DEV_TEXT_CAP);
    lister *L = calloc(1, sizeof *L);
    if (!L) {
        close(fd);
        return fail(out, GD_ENOMEM, "out of memory");
    }
    L->out = &body;
    L->pattern = pattern;
    L->pattern_path = pattern && strchr(pattern, '/');
    L->max_depth = (int)depth;
    L->cancel = ctx ? ctx->cancel : NULL;
    list_dir(L, fd, 0, 1);

    buf_init(&b, DEV_TEXT_CAP);
    buf_printf(&b, "%s/ (%zu %s, depth %d%s%s%s)\n", strcmp(path, "/") ? path : "", L->count,
               L->count == 1 ? "entry" : "entries", L->max_depth, pattern ? ", pattern '" : "",
               pattern ? pattern : "", pattern ? "'" : "");
    if (body.len)
        buf_append(&b, body.data, body.len);
    else
        buf_puts(&b, pattern ? "(no entries match the pattern)\n" : "(empty directory)\n");
    buf_free(&body);
    if (L->capped)
        buf_printf(&b, "[listing cut at %d entries: narrow it with path, max_depth or pattern]\n",
                   DEV_LIST_MAX);
    if (L->partial)
        buf_printf(&b,
                   "[some directories have more than %d entries: only part of them was "
                   "read]\n",
                   DEV_DIR_READ_MAX);
    if (L->unreadable)
        buf_printf(&b, "[%zu director%s could not be read]\n", L->unreadable,
                   L->unreadable == 1 ? "y" : "ies");
    if (L->stopped)
        buf_printf(&b, "[%s: narrow the listing with path, max_depth or pattern]\n",
                   L->cancelled ? "cancelled" : "stopped after examining too many entries");
    bool was_cancelled = L->cancelled;
    free(L);
    return finish(out, &b, was_cancelled, GD_OK);
}

/* ======================================================================================== */

gd_err developer_call(const char *name, json_t *arguments, const tool_ctx *ctx, tool_output *out)
{
    out->text = NULL;
    out->is_error = false;
    if (arguments && json_is_null(arguments)) arguments = NULL;
    if (arguments && !json_is_object(arguments))
        return fail(out, GD_EINVAL, "%s: the arguments must be a JSON object",
                    name ? name : "(no name)");
    if (!name) return fail(out, GD_EINVAL, "no tool name given");
    if (!strcmp(name, "developer__shell")) return tool_shell(arguments, ctx, out);
    if (!strcmp(name, "developer__text_editor")) return tool_editor(arguments, ctx, out);
    if (!strcmp(name, "developer__list_files")) return tool_list(arguments, ctx, out);
    return fail(out, GD_EINVAL,
                "unknown tool '%s': the developer extension has developer__shell, "
                "developer__text_editor and developer__list_files",
                name);
}
