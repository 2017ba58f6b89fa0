/* editor: the developer extension's text_editor tool (view, write, str_replace, insert,
 * undo_edit), run on a pool worker. The undo history belongs to the extension instance (one
 * session); edits of one path are serialised across every session by a lock striped by path. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

#define TOOL "developer__text_editor"

/* Opens fs->path for reading (a regular file or a directory). A descriptor, or minus an errno
 * value / DEV_EPROTECTED. */
static int open_read(const dev_fs *fs)
{
    return dev_fs_openat(fs, fs->rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
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

/* Undo history (dev_undo, one per extension instance): per absolute path, the contents before
 * each of the last DEV_UNDO_STEPS edits (oldest first). Bounded in bytes for all files of the
 * instance together: past DEV_UNDO_BYTES the oldest steps of any file go. u->mu guards it. */
typedef struct {
    char *data; /* NULL: the file did not exist */
    size_t len;
    uint64_t seq;
} undo_step;

struct undo_file {
    struct undo_file *next;
    char *path;
    undo_step steps[DEV_UNDO_STEPS];
    int n;
};

static size_t step_cost(const undo_step *s)
{
    return s->len + sizeof *s;
}

static undo_file *undo_find(dev_undo *u, const char *path)
{
    for (undo_file *f = u->files; f; f = f->next)
        if (!strcmp(f->path, path)) return f;
    return NULL;
}

static void undo_drop_oldest_step(dev_undo *u, undo_file *f)
{
    u->bytes -= step_cost(&f->steps[0]);
    free(f->steps[0].data);
    memmove(f->steps, f->steps + 1, (size_t)(f->n - 1) * sizeof f->steps[0]);
    f->n--;
}

static void undo_unlink_file(dev_undo *u, undo_file *f)
{
    for (undo_file **pp = &u->files; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    while (f->n)
        undo_drop_oldest_step(u, f);
    u->bytes -= strlen(f->path) + sizeof *f;
    free(f->path);
    free(f);
}

void dev_undo_free(dev_undo *u)
{
    while (u->files)
        undo_unlink_file(u, u->files);
}

/* Records the content before an edit (data NULL: the file did not exist); takes a copy.
 * false when it could not be kept (too large, out of memory). */
static bool undo_push(dev_undo *u, const char *path, const char *data, size_t len)
{
    undo_step s = {.data = NULL, .len = data ? len : 0};
    if (step_cost(&s) + strlen(path) + sizeof(undo_file) > DEV_UNDO_BYTES) return false;
    if (data && !(s.data = malloc(len ? len : 1))) return false;
    if (data && len) memcpy(s.data, data, len);
    pthread_mutex_lock(&u->mu);
    undo_file *f = undo_find(u, path);
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f || !(f->path = strdup(path))) {
            pthread_mutex_unlock(&u->mu);
            free(f);
            free(s.data);
            return false;
        }
        f->next = u->files;
        u->files = f;
        u->bytes += strlen(path) + sizeof *f;
    }
    if (f->n == DEV_UNDO_STEPS) undo_drop_oldest_step(u, f);
    s.seq = ++u->seq;
    f->steps[f->n++] = s;
    u->bytes += step_cost(&s);
    /* Over budget: drop the oldest step of all, until within it. */
    while (u->bytes > DEV_UNDO_BYTES) {
        undo_file *old = NULL;
        for (undo_file *it = u->files; it; it = it->next)
            if (it->n && (!old || it->steps[0].seq < old->steps[0].seq)) old = it;
        if (!old || (old == f && f->n == 1)) break;
        undo_drop_oldest_step(u, old);
        if (!old->n) undo_unlink_file(u, old);
    }
    pthread_mutex_unlock(&u->mu);
    return true;
}

/* Removes the latest step of path into *s (caller frees s->data). */
static bool undo_pop(dev_undo *u, const char *path, undo_step *s, int *left)
{
    pthread_mutex_lock(&u->mu);
    undo_file *f = undo_find(u, path);
    bool found = f && f->n;
    if (found) {
        *s = f->steps[--f->n];
        u->bytes -= step_cost(s);
        *left = f->n;
        if (!f->n) undo_unlink_file(u, f);
    }
    pthread_mutex_unlock(&u->mu);
    return found;
}

/* Puts a step back after a failed undo. */
static void undo_unpop(dev_undo *u, const char *path, undo_step *s)
{
    undo_push(u, path, s->data, s->len);
    free(s->data);
    s->data = NULL;
}

/* Edits of one path are serialised (read, change, history, write), also across sessions: a lock
 * per stripe of paths, so that edits of different files run in parallel. */
#define EDIT_LOCKS 64
static pthread_mutex_t g_edit_locks[EDIT_LOCKS];
static pthread_once_t g_edit_once = PTHREAD_ONCE_INIT;

static void edit_locks_init(void)
{
    for (int i = 0; i < EDIT_LOCKS; i++)
        pthread_mutex_init(&g_edit_locks[i], NULL);
}

static pthread_mutex_t *edit_lock(const char *path)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        h = (h ^ *p) * 16777619u;
    pthread_once(&g_edit_once, edit_locks_init);
    return &g_edit_locks[h % EDIT_LOCKS];
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the directory open at fd (taken: closed here). */
static gd_err editor_view_dir(const char *path, int fd, dev_out *out)
{
    char eb[128];
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return dev_fail(out, GD_EIO, "Cannot list the directory '%s': %s", path,
                        dev_errstr(e, eb, sizeof eb));
    }
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
    gd_err be = buf_printf(&b, "'%s' is a directory with %zu entries:\n", path, total);
    size_t shown = n < DEV_DIR_VIEW_MAX ? n : DEV_DIR_VIEW_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!be && i < shown) be = buf_printf(&b, "%s\n", names[i] + 1);
        free(names[i]);
    }
    free(names);
    if (!be && !total) be = buf_puts(&b, "(empty directory)\n");
    if (!be && total > shown)
        be = buf_printf(&b,
                        "... and %zu more entries (showing %zu); use developer__list_files with "
                        "a pattern to find the rest\n",
                        total - shown, shown);
    return dev_finish(out, &b, be, false, GD_OK);
}

/* The view_range argument into first/last (last 0: to the end). */
static bool parse_range(json_t *vr, long long *first, long long *last)
{
    if (!json_is_array(vr) || json_array_size(vr) != 2) return false;
    return dev_json_to_ll(json_array_get(vr, 0), first) &&
           dev_json_to_ll(json_array_get(vr, 1), last);
}

static gd_err editor_view(const dev_fs *fs, json_t *args, dev_out *out)
{
    char eb[128];
    const char *path = fs->path;
    struct stat st;
    int fd = open_read(fs);
    if (fd == -EXDEV || fd == -DEV_EPROTECTED) return dev_fs_fail(out, TOOL, fs, "view", -fd);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = fd < 0 ? -fd : errno;
        if (fd >= 0) close(fd);
        return dev_fail(out, e == ENOENT ? GD_ENOTFOUND : GD_EIO,
                        "The path '%s' does not exist or is not accessible: %s", path,
                        dev_errstr(e, eb, sizeof eb));
    }
    if (S_ISDIR(st.st_mode)) return editor_view_dir(path, fd, out);
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dev_fail(out, GD_EINVAL, "'%s' is not a regular file or a directory", path);
    }

    json_t *vr = json_object_get(args, "view_range");
    long long first = 1, last = -1;
    bool ranged = vr && !json_is_null(vr);
    if (ranged && !parse_range(vr, &first, &last))
        return dev_fail(out, GD_EINVAL,
                        "view_range must be an array of two integers [start, end] (1-based, "
                        "inclusive; end -1 = to the end of the file)");
    if (ranged && first < 1)
        return dev_fail(out, GD_EINVAL, "view_range: start must be 1 or more (got %lld)", first);
    if (ranged && last != -1 && last < first)
        return dev_fail(out, GD_EINVAL,
                        "view_range: end (%lld) must be -1 or at least start (%lld)", last, first);

    char *data;
    size_t len;
    int e = dev_read_fd(fd, DEV_VIEW_MAX, &data, &len);
    close(fd);
    if (e == EFBIG)
        return dev_fail(
            out, GD_ETOOBIG,
            "File '%s' is too large to view (%.1f KB; the limit is %d KB). Look at parts "
            "of it with the shell instead, e.g. `sed -n '100,200p' FILE`, `head`, "
            "`tail` or `grep -n`.",
            path, (double)st.st_size / 1024.0, DEV_VIEW_MAX / 1024);
    if (e)
        return dev_fail(out, e == ENOENT ? GD_ENOTFOUND : GD_EIO, "Cannot read '%s': %s", path,
                        dev_errstr(e, eb, sizeof eb));
    if (memchr(data, '\0', len)) {
        free(data);
        return dev_fail(
            out, GD_EINVAL,
            "'%s' looks like a binary file (it contains NUL bytes); it cannot be viewed as "
            "text. Inspect it with the shell (e.g. `file`, `xxd | head`).",
            path);
    }
    size_t total = count_lines(data, len);
    if (!ranged && total > DEV_VIEW_LINES) {
        free(data);
        return dev_fail(
            out, GD_EINVAL,
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
            return dev_fail(out, GD_EINVAL, "'%s' is empty: there is no line %lld", path, first);
        }
        gd_err be = buf_printf(&b, "%s (empty file)\n", path);
        return dev_finish(out, &b, be, false, GD_OK);
    }
    if ((unsigned long long)first > total) {
        free(data);
        buf_free(&b);
        return dev_fail(out, GD_EINVAL,
                        "view_range: start line %lld is past the end of '%s' (%zu lines)", first,
                        path, total);
    }
    size_t lo = (size_t)first,
           hi = last == -1 || (unsigned long long)last > total ? total : (size_t)last;
    gd_err ge = ranged ? buf_printf(&b, "%s (lines %zu-%zu of %zu)\n", path, lo, hi, total)
                       : buf_printf(&b, "%s (%zu lines)\n", path, total);
    if (!ge) ge = append_numbered(&b, data, len, lo, hi);
    free(data);
    if (ge) {
        buf_free(&b);
        return dev_fail(out, ge, "Cannot show '%s': %s", path, gd_strerror(ge));
    }
    if (hi < total)
        ge = buf_printf(&b,
                        "[Showing lines %zu-%zu of %zu. Use view_range [%zu, %zu] to see more.]\n",
                        lo, hi, total, hi + 1, hi + 500 < total ? hi + 500 : total);
    return dev_finish(out, &b, ge, false, GD_OK);
}

/* The result of an edit: a message and the changed lines with some context. */
static gd_err edit_result(dev_out *out, const char *what, const char *path, const char *data,
                          size_t len, size_t from, size_t to)
{
    size_t total = count_lines(data, len);
    size_t lo = from > DEV_SNIPPET_LINES ? from - DEV_SNIPPET_LINES : 1;
    size_t hi = to + DEV_SNIPPET_LINES;
    if (hi > total) hi = total;
    if (to > total) to = total;
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    gd_err be = buf_printf(&b, "%s %s.", what, path);
    if (total && lo <= hi) {
        if (!be) be = buf_printf(&b, " Lines %zu-%zu now read:\n", lo, hi);
        if (!be) be = append_numbered(&b, data, len, lo, hi);
    } else if (!be) {
        be = buf_puts(&b, " The file is now empty.\n");
    }
    if (!be) be = buf_puts(&b, "Review the change; use undo_edit to revert it if it is wrong.\n");
    return dev_finish(out, &b, be, false, GD_OK);
}

/* Reads a file for editing: must exist, be regular, under DEV_EDIT_MAX, text. */
static gd_err edit_read(const dev_fs *fs, char **data, size_t *len, dev_out *out)
{
    char eb[128];
    const char *path = fs->path;
    int fd = open_read(fs), e;
    if (fd == -EXDEV || fd == -DEV_EPROTECTED) return dev_fs_fail(out, TOOL, fs, "read", -fd);
    if (fd < 0) {
        e = -fd;
    } else {
        e = dev_read_fd(fd, DEV_EDIT_MAX, data, len);
        close(fd);
    }
    if (e == ENOENT)
        return dev_fail(out, GD_ENOTFOUND,
                        "File '%s' does not exist; create it with the write command", path);
    if (e == EFBIG)
        return dev_fail(
            out, GD_ETOOBIG,
            "File '%s' is larger than %d MB, the limit for edits; edit it with the shell "
            "(e.g. sed) instead",
            path, DEV_EDIT_MAX / (1024 * 1024));
    if (e == EISDIR) return dev_fail(out, GD_EINVAL, "'%s' is a directory, not a file", path);
    if (e) return dev_fail(out, GD_EIO, "Cannot read '%s': %s", path, dev_errstr(e, eb, sizeof eb));
    if (memchr(*data, '\0', *len)) {
        free(*data);
        *data = NULL;
        return dev_fail(out, GD_EINVAL,
                        "'%s' looks like a binary file (it contains NUL bytes); "
                        "the text editor does not edit binary files",
                        path);
    }
    return GD_OK;
}

/* Writes fs->path (created when missing), a regular file. 0 or an errno value /
 * DEV_EPROTECTED. */
static int write_file(const dev_fs *fs, const char *data, size_t len)
{
    int fd = dev_fs_openat(fs, fs->rel, O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK, 0666);
    if (fd < 0) return -fd;
    struct stat st;
    int e = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (!e) e = dev_write_fd(fd, data, len);
    if (close(fd) < 0 && !e && errno != EINTR) e = errno;
    return e;
}

static gd_err edit_write(const dev_fs *fs, const char *data, size_t len, dev_out *out)
{
    char eb[128];
    const char *path = fs->path;
    int e = write_file(fs, data, len);
    if (e == EXDEV || e == DEV_EPROTECTED) return dev_fs_fail(out, TOOL, fs, "write", e);
    if (e)
        return dev_fail(out, GD_EIO,
                        "Cannot write '%s': %s (undo_edit restores the previous content)", path,
                        dev_errstr(e, eb, sizeof eb));
    return GD_OK;
}

/* Caller holds the path's edit lock. */
static gd_err editor_write(dev_undo *u, const dev_fs *fs, json_t *args, dev_out *out)
{
    char eb[128];
    const char *path = fs->path;
    json_t *jt = json_object_get(args, "file_text");
    if (!json_is_string(jt))
        return dev_fail(out, GD_EINVAL, "write needs \"file_text\" (a string): the file's content");
    const char *text = json_string_value(jt);
    size_t tlen = json_string_length(jt);

    struct stat st;
    char *old = NULL;
    size_t olen = 0;
    int fd = open_read(fs);
    if (fd == -EXDEV || fd == -DEV_EPROTECTED) return dev_fs_fail(out, TOOL, fs, "write", -fd);
    bool existed = fd >= 0;
    if (existed && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return dev_fail(out, GD_EINVAL, "'%s' is a directory; give the path of a file", path);
    }
    bool undoable = true;
    if (existed) {
        int e = dev_read_fd(fd, DEV_EDIT_MAX, &old, &olen);
        close(fd);
        if (e == EFBIG)
            undoable = false;
        else if (e)
            return dev_fail(out, GD_EIO, "Cannot read the current '%s': %s", path,
                            dev_errstr(e, eb, sizeof eb));
    } else {
        const char *base;
        int pfd = dev_fs_parent(fs, true, &base);
        if (pfd == -EXDEV || pfd == -DEV_EPROTECTED)
            return dev_fs_fail(out, TOOL, fs, "write", -pfd);
        if (pfd < 0)
            return dev_fail(out, GD_EIO, "Cannot create the directories for '%s': %s", path,
                            dev_errstr(-pfd, eb, sizeof eb));
        close(pfd);
    }
    bool add_nl = tlen && text[tlen - 1] != '\n';
    char *content = malloc(tlen + 2);
    if (!content) {
        free(old);
        return dev_fail(out, GD_ENOMEM, "out of memory");
    }
    memcpy(content, text, tlen);
    if (add_nl) content[tlen++] = '\n';
    if (undoable) undoable = undo_push(u, path, existed ? (old ? old : "") : NULL, olen);
    free(old);
    gd_err ge = edit_write(fs, content, tlen, out);
    if (ge) {
        free(content);
        return ge;
    }
    size_t lines = count_lines(content, tlen);
    free(content);
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    gd_err be = buf_printf(
        &b, "%s %s (%zu lines, %zu bytes).%s\n", existed ? "Overwrote" : "Created", path, lines,
        tlen, undoable ? "" : " Note: the previous content was too large to keep for undo_edit.");
    return dev_finish(out, &b, be, false, GD_OK);
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

/* Caller holds the path's edit lock. */
static gd_err editor_replace(dev_undo *u, const dev_fs *fs, json_t *args, dev_out *out)
{
    const char *path = fs->path;
    json_t *jo = json_object_get(args, "old_str"), *jn = json_object_get(args, "new_str");
    if (!json_is_string(jo))
        return dev_fail(out, GD_EINVAL,
                        "str_replace needs \"old_str\" (a string): the exact text to "
                        "replace");
    if (jn && !json_is_null(jn) && !json_is_string(jn))
        return dev_fail(out, GD_EINVAL, "str_replace: \"new_str\" must be a string");
    const char *os = json_string_value(jo),
               *ns = jn && json_is_string(jn) ? json_string_value(jn) : "";
    size_t ol = json_string_length(jo), nl = jn && json_is_string(jn) ? json_string_length(jn) : 0;
    if (!ol)
        return dev_fail(out, GD_EINVAL,
                        "str_replace: \"old_str\" is empty; use insert to add text");

    char *data;
    size_t len;
    gd_err ge = edit_read(fs, &data, &len, out);
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
            return dev_fail(
                out, GD_EINVAL,
                "No match for old_str in '%s'. It must match the file exactly, "
                "whitespace, indentation and line ends included; view the file to check "
                "the current text.",
                path);
        return dev_fail(out, GD_EINVAL,
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
        return dev_fail(out, GD_ENOMEM, "out of memory");
    }
    memcpy(nd, data, at);
    memcpy(nd + at, ns, nl);
    memcpy(nd + at + nl, data + at + ol, len - at - ol);
    nd[newlen] = '\0';
    bool undoable = undo_push(u, path, data, len);
    free(data);
    size_t from = count_char(nd, at, '\n') + 1;
    size_t to = from + (nl ? count_char(ns, nl, '\n') - (ns[nl - 1] == '\n') : 0);
    free(crlf_o);
    free(crlf_n);
    ge = edit_write(fs, nd, newlen, out);
    if (!ge)
        ge = edit_result(out, undoable ? "Edited" : "Edited (too large to keep for undo_edit)",
                         path, nd, newlen, from, to);
    free(nd);
    return ge;
}

/* Caller holds the path's edit lock. */
static gd_err editor_insert(dev_undo *u, const dev_fs *fs, json_t *args, dev_out *out)
{
    const char *path = fs->path;
    json_t *jl = json_object_get(args, "insert_line"), *jn = json_object_get(args, "new_str");
    long long line;
    if (!jl || !dev_json_to_ll(jl, &line))
        return dev_fail(out, GD_EINVAL,
                        "insert needs \"insert_line\" (an integer: the line after "
                        "which to insert; 0 = at the top, -1 = at the end)");
    if (!json_is_string(jn))
        return dev_fail(out, GD_EINVAL, "insert needs \"new_str\" (a string): the text to insert");
    const char *ns = json_string_value(jn);
    size_t nl = json_string_length(jn);

    char *data;
    size_t len;
    gd_err ge = edit_read(fs, &data, &len, out);
    if (ge) return ge;
    size_t total = count_lines(data, len);
    if (line == -1) line = (long long)total;
    if (line < 0 || (unsigned long long)line > total) {
        free(data);
        return dev_fail(out, GD_EINVAL,
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
        return dev_fail(out, GD_ENOMEM, "out of memory");
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
    bool undoable = undo_push(u, path, data, len);
    free(data);
    ge = edit_write(fs, nd, newlen, out);
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

/* Caller holds the path's edit lock. */
static gd_err editor_undo(dev_undo *u, const dev_fs *fs, json_t *args, dev_out *out)
{
    char eb[128];
    const char *path = fs->path;
    undo_step s;
    int left = 0;
    if (!undo_pop(u, path, &s, &left))
        return dev_fail(out, GD_EINVAL, "No edit history for '%s': there is nothing to undo", path);
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    gd_err be;
    if (!s.data) {
        const char *base;
        int pfd = dev_fs_parent(fs, false, &base), e = pfd < 0 ? -pfd : 0;
        if (pfd >= 0) {
            if (unlinkat(pfd, base, 0) < 0) e = errno;
            close(pfd);
        }
        if (e == EXDEV || e == DEV_EPROTECTED) {
            undo_unpop(u, path, &s);
            return dev_fs_fail(out, TOOL, fs, "remove", e);
        }
        if (e && e != ENOENT) {
            undo_unpop(u, path, &s);
            return dev_fail(out, GD_EIO, "Cannot remove '%s': %s", path,
                            dev_errstr(e, eb, sizeof eb));
        }
        be = buf_printf(&b,
                        "Undid the last edit of %s: the file did not exist before it, so it was "
                        "removed.",
                        path);
    } else {
        int e = write_file(fs, s.data, s.len);
        if (e == EXDEV || e == DEV_EPROTECTED) {
            undo_unpop(u, path, &s);
            return dev_fs_fail(out, TOOL, fs, "write", e);
        }
        if (e) {
            undo_unpop(u, path, &s);
            return dev_fail(out, GD_EIO, "Cannot write '%s': %s", path,
                            dev_errstr(e, eb, sizeof eb));
        }
        be = buf_printf(&b, "Undid the last edit of %s; it is back to its previous %zu lines.",
                        path, count_lines(s.data, s.len));
        free(s.data);
    }
    if (!be)
        be = buf_printf(&b, " %d more undo step%s available for this file.\n", left,
                        left == 1 ? "" : "s");
    return dev_finish(out, &b, be, false, GD_OK);
}

void dev_editor_run(dev_call *c, dev_out *out)
{
    if (atomic_load(&c->cancel)) { /* before it started; an edit under way is not interrupted */
        dev_fail(out, GD_ECANCELLED, "cancelled: the edit was not made");
        return;
    }
    json_t *args = c->args;
    json_t *jc = json_object_get(args, "command"), *jp = json_object_get(args, "path");
    if (!json_is_string(jc)) {
        dev_fail(out, GD_EINVAL,
                 "developer__text_editor needs \"command\": one of view, "
                 "write, str_replace, insert, undo_edit");
        return;
    }
    if (!json_is_string(jp) || !json_string_value(jp)[0]) {
        dev_fail(out, GD_EINVAL, "developer__text_editor needs \"path\" (a non-empty string)");
        return;
    }
    const char *cmd = json_string_value(jc);
    char path[DEV_PATH_MAX];
    if (strlen(json_string_value(jp)) != json_string_length(jp)) {
        dev_fail(out, GD_EINVAL, "\"path\" contains a NUL character");
        return;
    }
    if (!dev_resolve_path(c->cwd, json_string_value(jp), path, sizeof path)) {
        dev_fail(out, GD_EINVAL, "Bad path '%s': %s", json_string_value(jp), path);
        return;
    }
    gd_err (*fn)(dev_undo *, const dev_fs *, json_t *, dev_out *) = NULL;
    if (!strcmp(cmd, "write"))
        fn = editor_write;
    else if (!strcmp(cmd, "str_replace"))
        fn = editor_replace;
    else if (!strcmp(cmd, "insert"))
        fn = editor_insert;
    else if (!strcmp(cmd, "undo_edit"))
        fn = editor_undo;
    else if (strcmp(cmd, "view")) {
        dev_fail(out, GD_EINVAL,
                 "Unknown text_editor command '%s': use one of view, write, "
                 "str_replace, insert, undo_edit",
                 cmd);
        return;
    }
    if (!dev_path_ok(c, TOOL, path, out)) return;
    dev_fs fs;
    if (!dev_fs_open(c, path, &fs)) {
        dev_fs_fail(out, TOOL, &fs, "open", fs.err);
        return;
    }
    if (!fn) {
        editor_view(&fs, args, out);
    } else {
        pthread_mutex_t *lock = edit_lock(path);
        pthread_mutex_lock(lock);
        fn(&c->d->undo, &fs, args, out);
        pthread_mutex_unlock(lock);
    }
    dev_fs_close(&fs);
}
