#include "config/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config/yamldoc.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/utf8.h"
#include "core/log.h"

#define MAX_SECRETS 64

static struct {
    pthread_mutex_t wmu; /* one writer of the file at a time; taken before mu */
    pthread_mutex_t mu;  /* the values: never held across file I/O */
    char path[PATH_MAX];
    int n;
    struct {
        char name[128];
        char *value;
    } items[MAX_SECRETS];
} sec = {.wmu = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER};

/* GD_ETOOBIG when MAX_SECRETS are kept already, GD_ENOMEM. */
static gd_err put_locked(const char *name, const char *value)
{
    char *v = strdup(value);
    if (!v) return GD_ENOMEM;
    for (int i = 0; i < sec.n; i++) {
        if (!strcmp(sec.items[i].name, name)) {
            free(sec.items[i].value);
            sec.items[i].value = v;
            return GD_OK;
        }
    }
    if (sec.n == MAX_SECRETS) {
        free(v);
        return GD_ETOOBIG;
    }
    snprintf(sec.items[sec.n].name, sizeof sec.items[sec.n].name, "%s", name);
    sec.items[sec.n++].value = v;
    return GD_OK;
}

gd_err secrets_load(const char *dir, char *err, size_t errlen)
{
    pthread_mutex_lock(&sec.mu);
    snprintf(sec.path, sizeof sec.path, "%s/secrets.yaml", dir);
    FILE *f = fopen(sec.path, "rb");
    if (!f) {
        pthread_mutex_unlock(&sec.mu);
        if (errno == ENOENT) return GD_OK;
        snprintf(err, errlen, "%s: cannot open: %s", sec.path, strerror(errno));
        return GD_EINVAL;
    }
    yaml_document_t doc;
    gd_err rc = GD_OK;
    if (!yamldoc_file(&doc, f, sec.path, err, errlen)) {
        rc = GD_EINVAL;
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root && root->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
                 pr < root->data.mapping.pairs.top; pr++) {
                yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
                yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
                if (k && v && k->type == YAML_SCALAR_NODE && v->type == YAML_SCALAR_NODE &&
                    put_locked((const char *)k->data.scalar.value,
                               (const char *)v->data.scalar.value) != GD_OK)
                    log_warn("config", "%s: %s not loaded: more than %d secrets, or out of memory",
                             sec.path, (const char *)k->data.scalar.value, MAX_SECRETS);
            }
        }
        yaml_document_delete(&doc);
    }
    fclose(f);
    pthread_mutex_unlock(&sec.mu);
    return rc;
}

int secrets_get(const char *name, char *out, size_t outlen)
{
    int found = 0;
    pthread_mutex_lock(&sec.mu);
    for (int i = 0; i < sec.n; i++) {
        if (!strcmp(sec.items[i].name, name) && sec.items[i].value && *sec.items[i].value) {
            snprintf(out, outlen, "%s", sec.items[i].value);
            found = 1;
        }
    }
    pthread_mutex_unlock(&sec.mu);
    return found;
}

gd_err config_yaml_quote(buf *b, const char *s)
{
    gd_err e = buf_puts(b, "\"");
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n && !e; i += k) {
        const unsigned char *p = (const unsigned char *)s + i;
        if (!(k = utf8_seq_len(p, n - i))) { /* not UTF-8: as it is (YAML cannot hold it) */
            k = 1;
            e = buf_append(b, s + i, 1);
            continue;
        }
        unsigned cp = k == 1   ? p[0]
                      : k == 2 ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu)
                      : k == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu)
                               : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 |
                                     (p[3] & 0x3fu);
        /* What YAML would not read back as it is: the quote and the backslash; what it does not
         * allow in a document (C0 and C1 controls, DEL, U+FFFE/U+FFFF); and the line breaks it
         * folds in a quoted scalar: U+0085 (NEL, escaped among C1), U+2028, U+2029. */
        if (cp == '"' || cp == '\\')
            e = buf_printf(b, "\\%c", (char)cp);
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            e = buf_printf(b, "\\x%02x", cp);
        else if (cp == 0x2028 || cp == 0x2029)
            e = buf_puts(b, cp == 0x2028 ? "\\L" : "\\P");
        else if (cp == 0xfffe || cp == 0xffff)
            e = buf_printf(b, "\\u%04x", cp);
        else
            e = buf_append(b, s + i, k);
    }
    return e ? e : buf_puts(b, "\"");
}

/* A line `key: "value"`. */
static gd_err yaml_entry(buf *b, const char *key, const char *value)
{
    gd_err e = buf_printf(b, "%s: ", key);
    if (!e) e = config_yaml_quote(b, value);
    return e ? e : buf_puts(b, "\n");
}

/* mkdir -p of path's directory, 0700 (a failure shows when the file is opened). */
static void make_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = '\0';
    (void)fs_mkdirs(dir, 0700, NULL, 0);
}

gd_err config_write_atomic(const char *path, const char *data, size_t len, unsigned mode, char *err,
                           size_t errlen)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    make_parent(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return GD_EIO;
    }
    fchmod(fd, mode);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return GD_EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return GD_EIO;
    }
    return GD_OK;
}

gd_err secrets_set(const char *name, const char *value, char *err, size_t errlen)
{
    /* The file is rendered with the new value under mu and written under wmu only, so
     * secrets_get (a reply starting) never waits for the fsync; the value is kept in memory only
     * once the file holds it, so a refused value is not used either. */
    pthread_mutex_lock(&sec.wmu);
    pthread_mutex_lock(&sec.mu);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", sec.path);
    bool found = false;
    for (int i = 0; i < sec.n && !found; i++)
        found = !strcmp(sec.items[i].name, name);
    gd_err e = !found && sec.n == MAX_SECRETS ? GD_ETOOBIG : GD_OK;
    bool full = e != GD_OK;
    buf b;
    buf_init(&b, BUF_CAP_SECRETS_FILE);
    if (!e)
        e = buf_puts(&b, "# goosed secrets: API keys set through the API. Keep this file private "
                         "(0600).\n");
    for (int i = 0; i < sec.n && !e; i++) {
        bool me = !strcmp(sec.items[i].name, name);
        e = yaml_entry(&b, sec.items[i].name,
                       me                   ? value
                       : sec.items[i].value ? sec.items[i].value
                                            : "");
    }
    if (!e && !found) e = yaml_entry(&b, name, value);
    pthread_mutex_unlock(&sec.mu);
    if (full)
        snprintf(err, errlen, "%s holds %d secrets, the most goosed keeps: remove one first", path,
                 MAX_SECRETS);
    else if (e == GD_ETOOBIG)
        snprintf(err, errlen,
                 "cannot store the secret %s: %s would be larger than %u bytes; remove a secret "
                 "or use a shorter value",
                 name, path, BUF_CAP_SECRETS_FILE);
    else if (e)
        snprintf(err, errlen, "cannot store the secret %s: %s", name, gd_strerror(e));
    else
        e = config_write_atomic(path, b.data, b.len, 0600, err, errlen);
    buf_free(&b);
    if (!e) {
        pthread_mutex_lock(&sec.mu);
        e = put_locked(name, value);
        pthread_mutex_unlock(&sec.mu);
        if (e) snprintf(err, errlen, "cannot keep the secret %s: %s", name, gd_strerror(e));
    }
    pthread_mutex_unlock(&sec.wmu);
    if (!e)
        log_info("config", "stored secret %s in %s", name, path); /* the name, never the value */
    return e;
}

/* config.yaml's writers (config_file_set, config_file_edit) take turns. */
static pthread_mutex_t cfg_file_mu = PTHREAD_MUTEX_INITIALIZER;

gd_err config_file_edit(const char *path, config_file_edit_fn edit, void *ctx, char *err,
                        size_t errlen)
{
    pthread_mutex_lock(&cfg_file_mu);
    buf old, out;
    buf_init(&old, BUF_CAP_CONFIG_FILE);
    buf_init(&out, BUF_CAP_CONFIG_FILE);
    gd_err e = GD_OK; /* the first failed append: the file is then left as it is */
    FILE *f = fopen(path, "rb");
    if (f) {
        char chunk[4096];
        size_t r;
        while (!e && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
            e = buf_append(&old, chunk, r);
        fclose(f);
    }
    err[0] = '\0';
    if (!e) e = edit(old.data ? old.data : "", old.len, &out, ctx, err, errlen);
    if (e == GD_ETOOBIG)
        snprintf(err, errlen, "cannot update %s: it is, or would become, larger than %u bytes",
                 path, BUF_CAP_CONFIG_FILE);
    else if (e && !err[0])
        snprintf(err, errlen, "cannot update %s: %s", path, gd_strerror(e));
    else if (!e)
        e = config_write_atomic(path, out.data ? out.data : "", out.len, 0600, err, errlen);
    buf_free(&old);
    buf_free(&out);
    pthread_mutex_unlock(&cfg_file_mu);
    return e;
}

struct set_ctx {
    const char *const *keys;
    const char *const *values;
    int n;
};

/* config_file_set's edit: each `key:` line replaced, the keys not found appended. */
static gd_err set_edit(const char *old, size_t oldlen, buf *out, void *ctx, char *err,
                       size_t errlen)
{
    const struct set_ctx *c = ctx;
    gd_err e = GD_OK;
    bool done[16] = {false};
    const char *p = old, *end = old + oldlen;
    while (p < end && !e) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        int hit = -1;
        for (int i = 0; i < c->n && i < 16; i++) {
            size_t kl = strlen(c->keys[i]);
            if (len > kl && !strncmp(p, c->keys[i], kl) && p[kl] == ':') hit = i;
        }
        if (hit >= 0) {
            if (!done[hit]) {
                e = yaml_entry(out, c->keys[hit], c->values[hit]);
                done[hit] = true;
            }
        } else {
            e = buf_append(out, p, len);
            if (!e && !nl) e = buf_puts(out, "\n");
        }
        p += len;
    }
    for (int i = 0; i < c->n && i < 16 && !e; i++)
        if (!done[i]) e = yaml_entry(out, c->keys[i], c->values[i]);
    return e;
}

gd_err config_file_set(const char *path, const char *const *keys, const char *const *values, int n,
                       char *err, size_t errlen)
{
    struct set_ctx c = {keys, values, n};
    return config_file_edit(path, set_edit, &c, err, errlen);
}
