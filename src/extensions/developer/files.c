/* files: the developer extension's list_files tool, run on a pool worker: a sorted,
 * depth-limited listing of a directory tree that does not follow symbolic links and does not
 * enter goosed's protected directories. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

typedef struct {
    const ext_host *host;    /* its protected directories are not entered */
    char root[DEV_PATH_MAX]; /* the real path of the directory listed */
    buf *out;
    const char *pattern; /* NULL: everything */
    bool pattern_path;   /* match against the relative path, not the name */
    int max_depth;
    const atomic_bool *cancel;
    char rel[DEV_PATH_MAX]; /* the entry's path relative to the root, built as we descend */
    size_t count, examined, unreadable, protected_dirs;
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

/* Whether the directory at L->rel may be entered: it is not one of goosed's own. */
static bool entry_allowed(const lister *L)
{
    char abs[DEV_PATH_MAX * 2 + 2];
    int w = snprintf(abs, sizeof abs, "%s/%s", strcmp(L->root, "/") ? L->root : "", L->rel);
    return w > 0 && (size_t)w < sizeof abs && sandbox_real_path_allowed(L->host, abs);
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
        if (ents[i].dir && depth < L->max_depth && !entry_allowed(L)) {
            L->protected_dirs++;
        } else if (ents[i].dir && depth < L->max_depth) {
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

static gd_err list_files(dev_call *c, json_t *args, dev_out *out)
{
    char eb[128];
    json_t *jp = json_object_get(args, "path"), *jd = json_object_get(args, "max_depth"),
           *jg = json_object_get(args, "pattern");
    const char *p = ".";
    if (jp && !json_is_null(jp)) {
        if (!json_is_string(jp) || strlen(json_string_value(jp)) != json_string_length(jp))
            return dev_fail(out, GD_EINVAL, "developer__list_files: \"path\" must be a string");
        if (json_string_value(jp)[0]) p = json_string_value(jp);
    }
    long long depth = DEV_LIST_DEPTH;
    if (jd && !json_is_null(jd)) {
        if (!dev_json_to_ll(jd, &depth) || depth < 1)
            return dev_fail(
                out, GD_EINVAL,
                "developer__list_files: \"max_depth\" must be an integer of at least 1");
        if (depth > DEV_LIST_DEPTH_MAX) depth = DEV_LIST_DEPTH_MAX;
    }
    const char *pattern = NULL;
    if (jg && !json_is_null(jg)) {
        if (!json_is_string(jg) || strlen(json_string_value(jg)) != json_string_length(jg))
            return dev_fail(out, GD_EINVAL, "developer__list_files: \"pattern\" must be a string");
        if (json_string_value(jg)[0]) pattern = json_string_value(jg);
    }
    char path[DEV_PATH_MAX];
    if (!dev_resolve_path(c->cwd, p, path, sizeof path))
        return dev_fail(out, GD_EINVAL, "developer__list_files: bad path '%s': %s", p, path);
    if (!dev_path_ok(c, "developer__list_files", path, out)) return GD_EINVAL;
    dev_fs fs;
    if (!dev_fs_open(c, path, &fs))
        return dev_fs_fail(out, "developer__list_files", &fs, "list", fs.err);
    int fd = dev_fs_openat(&fs, fs.rel, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
    dev_fs_close(&fs);
    if (fd == -EXDEV || fd == -DEV_EPROTECTED)
        return dev_fs_fail(out, "developer__list_files", &fs, "list", -fd);
    if (fd < 0) {
        int e = -fd;
        return dev_fail(out,
                        e == ENOENT    ? GD_ENOTFOUND
                        : e == ENOTDIR ? GD_EINVAL
                                       : GD_EIO,
                        "developer__list_files: cannot list '%s': %s", path,
                        e == ENOTDIR ? "it is not a directory" : dev_errstr(e, eb, sizeof eb));
    }
    buf body, b;
    buf_init(&body, DEV_TEXT_CAP);
    lister *L = calloc(1, sizeof *L);
    if (!L) {
        close(fd);
        return dev_fail(out, GD_ENOMEM, "out of memory");
    }
    L->out = &body;
    L->pattern = pattern;
    L->pattern_path = pattern && strchr(pattern, '/');
    L->max_depth = (int)depth;
    L->cancel = &c->cancel;
    L->host = &c->d->host;
    if (!realpath(path, L->root)) snprintf(L->root, sizeof L->root, "%s", path);
    list_dir(L, fd, 0, 1);

    buf_init(&b, DEV_TEXT_CAP);
    gd_err e = buf_printf(&b, "%s/ (%zu %s, depth %d%s%s%s)\n", strcmp(path, "/") ? path : "",
                          L->count, L->count == 1 ? "entry" : "entries", L->max_depth,
                          pattern ? ", pattern '" : "", pattern ? pattern : "", pattern ? "'" : "");
    if (!e)
        e = body.len ? buf_append(&b, body.data, body.len)
                     : buf_puts(&b, pattern ? "(no entries match the pattern)\n"
                                            : "(empty directory)\n");
    buf_free(&body);
    /* The count: the cut may also come from the size of the text. */
    if (!e && L->capped)
        e = buf_printf(&b,
                       "[listing cut at %zu entries: narrow it with path, max_depth or pattern]\n",
                       L->count);
    if (!e && L->partial)
        e = buf_printf(&b,
                       "[some directories have more than %d entries: only part of them was "
                       "read]\n",
                       DEV_DIR_READ_MAX);
    if (!e && L->unreadable)
        e = buf_printf(&b, "[%zu director%s could not be read]\n", L->unreadable,
                       L->unreadable == 1 ? "y" : "ies");
    if (!e && L->protected_dirs)
        e = buf_printf(&b, "[%zu director%s of goosed's own configuration or data not entered]\n",
                       L->protected_dirs, L->protected_dirs == 1 ? "y" : "ies");
    if (!e && L->stopped)
        e = buf_printf(&b, "[%s: narrow the listing with path, max_depth or pattern]\n",
                       L->cancelled ? "cancelled" : "stopped after examining too many entries");
    bool was_cancelled = L->cancelled;
    free(L);
    return dev_finish(out, &b, e, was_cancelled, GD_OK);
}

void dev_files_run(dev_call *c, dev_out *out)
{
    list_files(c, c->args, out);
}
