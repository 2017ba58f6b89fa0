/* common: the helpers every tool of the developer extension uses (see dev.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/utf8.h"
#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

const char *dev_errstr(int e, char *b, size_t n)
{
    return strerror_r(e, b, n); /* the GNU variant: returns the message */
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one (NUL bytes
 * count as invalid: the text must be a C string). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    return n && s[0] ? utf8_seq_len(s, n) : 0;
}

/* A malloc'd copy of data[0..len) as valid UTF-8 without NUL bytes: every byte that does not
 * belong to a valid sequence becomes U+FFFD. NULL when out of memory. */
char *dev_utf8_sanitize(const char *data, size_t len)
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

gd_err dev_finish(dev_out *out, buf *b, gd_err built, bool is_error, gd_err err)
{
    out->is_error = is_error;
    out->text = NULL;
    if (!buf_mark_truncated(b, built,
                            built == GD_ETOOBIG
                                ? "\n[truncated: the result is longer than goosed keeps]\n"
                                : "\n[truncated: out of memory]\n"))
        out->text = dev_utf8_sanitize(b->data ? b->data : "", b->len);
    buf_free(b);
    if (!out->text) {
        out->text = strdup("out of memory");
        out->is_error = true;
        return GD_ENOMEM;
    }
    return err;
}

gd_err dev_fail(dev_out *out, gd_err err, const char *fmt, ...)
{
    buf b;
    buf_init(&b, BUF_CAP_MESSAGE);
    va_list ap;
    va_start(ap, fmt);
    gd_err e = buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (e == GD_ETOOBIG) e = buf_puts(&b, "(error message too long)");
    return dev_finish(out, &b, e, true, err);
}

gd_err dev_refuse(dev_out *out, const char *path)
{
    return dev_fail(out, GD_EINVAL,
                    "refused: %s is inside goosed's own configuration or data directory", path);
}

bool dev_path_ok(dev_call *c, const char *tool, const char *path, dev_out *out)
{
    if (!sandbox_path_allowed(&c->d->host, path)) {
        dev_refuse(out, path);
        return false;
    }
    if (c->cwd[0] == '/' && !sandbox_path_inside(c->cwd, path)) {
        dev_fail(out, GD_EINVAL,
                 "refused: %s: %s is outside the session's working directory %s (after "
                 "resolving symbolic links); the file tools work inside it only",
                 tool, path, c->cwd);
        return false;
    }
    return true;
}

/* An integer argument: a JSON integer, a real with no fraction, or a string of digits (models
 * send all three). false when v is none of these. */
bool dev_json_to_ll(json_t *v, long long *out)
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
bool dev_resolve_path(const char *cwd_in, const char *p, char *out, size_t n)
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
        const char *cwd = cwd_in && cwd_in[0] ? cwd_in : NULL;
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

int dev_read_fd(int fd, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) return errno;
    if (!S_ISREG(st.st_mode)) return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    if ((uint64_t)st.st_size > max) return EFBIG;
    size_t alloc = (size_t)st.st_size + 1, n = 0;
    char *p = malloc(alloc + 1);
    if (!p) return ENOMEM;
    for (;;) {
        if (n == alloc) { /* the file grew while we read it */
            if (alloc > max) {
                free(p);
                return EFBIG;
            }
            size_t na = alloc * 2 > max + 1 ? max + 1 : alloc * 2;
            char *q = realloc(p, na + 1);
            if (!q) {
                free(p);
                return ENOMEM;
            }
            p = q;
            alloc = na;
        }
        ssize_t r = pread(fd, p + n, alloc - n, (off_t)n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(p);
            return e;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n > max) {
        free(p);
        return EFBIG;
    }
    p[n] = '\0';
    *data = p;
    *len = n;
    return 0;
}

int dev_write_fd(int fd, const char *data, size_t len)
{
    if (ftruncate(fd, 0) < 0) return errno;
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(fd, data + off, len - off, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        off += (size_t)w;
    }
    return 0;
}
