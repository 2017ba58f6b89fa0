/* permissions: see permissions.h. */
#include "config/permissions.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include <jansson.h>

#include "config/secrets.h"
#include "config/yamldoc.h"
#include "core/buf.h"
#include "core/log.h"

#define MAX_RULES 4096

static const char *const SECTION[] = {[PERM_ALWAYS_ALLOW] = "always_allow",
                                      [PERM_NEVER_ALLOW] = "never_allow",
                                      [PERM_ASK_BEFORE] = "ask_before"};

typedef struct {
    char *tool;
    perm_rule rule;
} rule;

static struct {
    pthread_mutex_t mu;  /* guards the rules */
    pthread_mutex_t wmu; /* one writer of the file at a time */
    rule *items;
    size_t n;
    char path[PATH_MAX];
} perms = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, NULL, 0, ""};

static rule *find_locked(const char *tool)
{
    for (size_t i = 0; i < perms.n; i++)
        if (!strcmp(perms.items[i].tool, tool)) return &perms.items[i];
    return NULL;
}

static gd_err put_locked(const char *tool, perm_rule r)
{
    rule *x = find_locked(tool);
    if (x) {
        if (r != PERM_NONE) {
            x->rule = r;
            return GD_OK;
        }
        free(x->tool);
        *x = perms.items[--perms.n];
        return GD_OK;
    }
    if (r == PERM_NONE) return GD_OK;
    if (perms.n == MAX_RULES) return GD_ETOOBIG;
    rule *p = realloc(perms.items, (perms.n + 1) * sizeof *p);
    if (!p) return GD_ENOMEM;
    perms.items = p;
    if (!(p[perms.n].tool = strdup(tool))) return GD_ENOMEM;
    p[perms.n++].rule = r;
    return GD_OK;
}

void permissions_reset(void)
{
    pthread_mutex_lock(&perms.mu);
    for (size_t i = 0; i < perms.n; i++)
        free(perms.items[i].tool);
    free(perms.items);
    perms.items = NULL;
    perms.n = 0;
    pthread_mutex_unlock(&perms.mu);
}

static perm_rule section_rule(const char *name)
{
    for (int r = PERM_ALWAYS_ALLOW; r <= PERM_ASK_BEFORE; r++)
        if (!strcmp(name, SECTION[r])) return (perm_rule)r;
    return PERM_NONE;
}

/* Reads the `user:` mapping of the document; other keys (the real Goose's smart_approve cache)
 * are left alone. */
static gd_err load_doc(yaml_document_t *doc, char *err, size_t errlen)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || (root->type == YAML_SCALAR_NODE && !root->data.scalar.length)) return GD_OK;
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s: not a mapping", perms.path);
        return GD_EINVAL;
    }
    yaml_node_t *v = yamldoc_get(doc, root, "user");
    if (!v || v->type != YAML_MAPPING_NODE) return GD_OK;
    for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
        yaml_node_t *sk = yaml_document_get_node(doc, q->key);
        yaml_node_t *sv = yaml_document_get_node(doc, q->value);
        perm_rule r = sk && sk->type == YAML_SCALAR_NODE
                          ? section_rule((char *)sk->data.scalar.value)
                          : PERM_NONE;
        if (r == PERM_NONE || !sv || sv->type != YAML_SEQUENCE_NODE) continue;
        for (yaml_node_item_t *it = sv->data.sequence.items.start; it < sv->data.sequence.items.top;
             it++) {
            yaml_node_t *n = yaml_document_get_node(doc, *it);
            if (!n || n->type != YAML_SCALAR_NODE) continue;
            gd_err e = put_locked((char *)n->data.scalar.value, r);
            if (e) {
                snprintf(err, errlen, "%s: %s", perms.path, gd_strerror(e));
                return e;
            }
        }
    }
    return GD_OK;
}

gd_err permissions_load(const char *dir, char *err, size_t errlen)
{
    permissions_reset();
    pthread_mutex_lock(&perms.mu);
    snprintf(perms.path, sizeof perms.path, "%s/permission.yaml", dir);
    FILE *f = fopen(perms.path, "rb");
    if (!f) {
        pthread_mutex_unlock(&perms.mu);
        return GD_OK;
    }
    yaml_document_t doc;
    gd_err e = GD_OK;
    if (!yamldoc_file(&doc, f, perms.path, err, errlen)) {
        e = GD_EINVAL;
    } else {
        e = load_doc(&doc, err, errlen);
        yaml_document_delete(&doc);
    }
    fclose(f);
    pthread_mutex_unlock(&perms.mu);
    if (e) permissions_reset();
    return e;
}

perm_rule permissions_get(const char *tool)
{
    pthread_mutex_lock(&perms.mu);
    rule *r = find_locked(tool);
    perm_rule out = r ? r->rule : PERM_NONE;
    pthread_mutex_unlock(&perms.mu);
    return out;
}

/* The file for the rules in memory (under mu). */
static gd_err render_locked(buf *b)
{
    gd_err e = buf_puts(b, "# goosed: tool permissions (the answers \"always allow\" and "
                           "\"always deny\").\nuser:\n");
    for (int r = PERM_ALWAYS_ALLOW; r <= PERM_ASK_BEFORE && !e; r++) {
        bool any = false;
        e = buf_printf(b, "  %s:", SECTION[r]);
        for (size_t i = 0; i < perms.n && !e; i++) {
            if (perms.items[i].rule != (perm_rule)r) continue;
            /* a JSON string is a YAML double-quoted scalar */
            json_t *s = json_string(perms.items[i].tool);
            char *txt = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            json_decref(s);
            e = txt ? buf_printf(b, "\n  - %s", txt) : GD_ENOMEM;
            free(txt);
            any = true;
        }
        if (!e) e = buf_puts(b, any ? "\n" : " []\n");
    }
    return e;
}

gd_err permissions_put(const char *tool, perm_rule r)
{
    pthread_mutex_lock(&perms.mu);
    gd_err e = put_locked(tool, r);
    pthread_mutex_unlock(&perms.mu);
    if (!e) log_info("config", "tool %s: %s", tool, r == PERM_NONE ? "asks again" : SECTION[r]);
    return e;
}

gd_err permissions_save(char *err, size_t errlen)
{
    pthread_mutex_lock(&perms.wmu);
    pthread_mutex_lock(&perms.mu);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", perms.path);
    buf b;
    buf_init(&b, BUF_CAP_CONFIG_FILE);
    gd_err e = render_locked(&b);
    pthread_mutex_unlock(&perms.mu);
    if (e)
        snprintf(err, errlen, "cannot write the tool permissions: %s", gd_strerror(e));
    else if (path[0])
        e = config_write_atomic(path, b.data, b.len, 0600, err, errlen);
    buf_free(&b);
    pthread_mutex_unlock(&perms.wmu);
    return e;
}

gd_err permissions_set(const char *tool, perm_rule r, char *err, size_t errlen)
{
    gd_err e = permissions_put(tool, r);
    if (e) {
        snprintf(err, errlen, "cannot keep the permission of %s: %s", tool, gd_strerror(e));
        return e;
    }
    return permissions_save(err, errlen);
}
