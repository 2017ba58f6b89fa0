/* The server's sign-ins (signin.h): the waits by state, the grants by user and server. */
#include "agent/signin.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/user_settings.h"
#include "config/secrets.h"
#include "core/log.h"

typedef struct waiter {
    struct waiter *next;
    char state[SIGNIN_STATE_MAX];
    char user_id[64];
    bool done;
    gd_err e;
    char *code, *iss;
    char why[300];
} waiter;

/* A cancel that came before its sign-in was announced (an extension closed just as its flow
 * began): signin_add refuses that state. Forgotten after SIGNIN_WAIT_S. */
typedef struct tomb {
    struct tomb *next;
    char state[SIGNIN_STATE_MAX];
    time_t at;
} tomb;

typedef struct grant {
    struct grant *next;
    char *user_id, *url, *text;
} grant;

struct signins {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a waiter is done */
    bool stopping;
    waiter *waiting;
    tomb *tombs;
    grant *grants;
    /* the local user's grants, kept sealed in this file (signins_load): "" when not kept */
    pthread_mutex_t fmu; /* one write of the file at a time, in order */
    char file[PATH_MAX];
};

#define LOCAL_FILE     "signins" /* in the data directory, 0600 */
#define LOCAL_SEAL_AS  "oauth grants"
#define LOCAL_FILE_MAX (1u << 20)

static void wipe_free(char *s)
{
    if (!s) return;
    sodium_memzero(s, strlen(s));
    free(s);
}
static void grant_free(grant *g)
{
    free(g->user_id);
    free(g->url);
    wipe_free(g->text);
    free(g);
}

signins *signins_new(void)
{
    signins *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->fmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

void signins_free(signins *s)
{
    if (!s) return;
    while (s->waiting) {
        waiter *w = s->waiting;
        s->waiting = w->next;
        wipe_free(w->code);
        free(w->iss);
        free(w);
    }
    while (s->tombs) {
        tomb *t = s->tombs;
        s->tombs = t->next;
        free(t);
    }
    while (s->grants) {
        grant *g = s->grants;
        s->grants = g->next;
        grant_free(g);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->fmu);
    free(s);
}

/* Ends w's wait with e (the lock held). */
static void finish(signins *s, waiter *w, gd_err e, char *code, const char *why)
{
    if (w->done) {
        wipe_free(code);
        return;
    }
    w->done = true;
    w->e = e;
    w->code = code;
    snprintf(w->why, sizeof w->why, "%s", why ? why : "");
    for (char *c = w->why; *c; c++) /* an authorization server's words: printable ASCII */
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = '?';
    pthread_cond_broadcast(&s->cv);
}

void signins_shutdown(signins *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (waiter *w = s->waiting; w; w = w->next)
        finish(s, w, GD_ESHUTDOWN, NULL, "the server is stopping");
    pthread_mutex_unlock(&s->mu);
}

static waiter *find_locked(signins *s, const char *state)
{
    for (waiter *w = s->waiting; w; w = w->next)
        if (!strcmp(w->state, state)) return w;
    return NULL;
}

gd_err signin_add(signins *s, const char *state, const char *user_id)
{
    if (strlen(state) >= SIGNIN_STATE_MAX || !*state) return GD_EINVAL;
    waiter *w = calloc(1, sizeof *w);
    if (!w) return GD_ENOMEM;
    snprintf(w->state, sizeof w->state, "%s", state);
    snprintf(w->user_id, sizeof w->user_id, "%s", user_id);
    pthread_mutex_lock(&s->mu);
    bool cancelled = false;
    time_t now = time(NULL);
    for (tomb **pp = &s->tombs; *pp;) {
        tomb *t = *pp;
        bool match = !strcmp(t->state, state);
        if (match || now - t->at > SIGNIN_WAIT_S) {
            cancelled |= match;
            *pp = t->next;
            free(t);
        } else {
            pp = &t->next;
        }
    }
    int theirs = 0;
    for (waiter *o = s->waiting; o; o = o->next)
        theirs += !o->done && !strcmp(o->user_id, w->user_id);
    gd_err e = s->stopping                 ? GD_ESHUTDOWN
               : cancelled                 ? GD_ECANCELLED
               : find_locked(s, state)     ? GD_ECONFLICT
               : theirs >= SIGNIN_PER_USER ? GD_EBUSY
                                           : GD_OK;
    if (!e) {
        w->next = s->waiting;
        s->waiting = w;
    }
    pthread_mutex_unlock(&s->mu);
    if (e) free(w);
    return e;
}

gd_err signin_wait(signins *s, const char *state, char **code, char **iss, char *err, size_t errlen)
{
    *code = *iss = NULL;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SIGNIN_WAIT_S;
    pthread_mutex_lock(&s->mu);
    waiter *w = find_locked(s, state);
    while (w && !w->done)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT && !w->done)
            finish(s, w, GD_ETIMEOUT, NULL, NULL);
    gd_err e = GD_ENOTFOUND;
    if (w) {
        for (waiter **pp = &s->waiting; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        e = w->e;
        if (e == GD_ETIMEOUT)
            snprintf(err, errlen, "no sign-in came back within %d s", SIGNIN_WAIT_S);
        else if (e)
            snprintf(err, errlen, "%s", w->why);
        *code = w->code;
        *iss = w->iss;
        free(w);
    } else {
        snprintf(err, errlen, "the sign-in was never announced");
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

gd_err signin_deliver(signins *s, const char *state, const char *code, const char *iss,
                      const char *error, const char *user_id)
{
    char *c = code && !error ? strdup(code) : NULL;
    char *is = c && iss ? strdup(iss) : NULL;
    pthread_mutex_lock(&s->mu);
    waiter *w = state ? find_locked(s, state) : NULL;
    gd_err e = !w || w->done                            ? GD_ENOTFOUND
               : user_id && strcmp(user_id, w->user_id) ? GD_EDENIED
                                                        : GD_OK;
    if (e) {
        wipe_free(c);
        free(is);
    } else if (error || !code) {
        char why[300];
        snprintf(why, sizeof why, "the authorization server refused the sign-in: %s",
                 error ? error : "it sent no code");
        finish(s, w, GD_EDENIED, NULL, why);
    } else if (!c || (iss && !is)) {
        wipe_free(c);
        free(is);
        finish(s, w, GD_ENOMEM, NULL, "out of memory");
    } else {
        if (!w->done)
            w->iss = is;
        else
            free(is);
        finish(s, w, GD_OK, c, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

void signin_cancel(signins *s, const char *state, gd_err e, const char *why)
{
    pthread_mutex_lock(&s->mu);
    waiter *w = find_locked(s, state);
    if (w) {
        finish(s, w, e, NULL, why);
    } else if (e == GD_ECANCELLED && strlen(state) < SIGNIN_STATE_MAX) {
        /* its flow may be about to announce it: refused then (signin_add) */
        int n = 0;
        for (tomb *t = s->tombs; t; t = t->next)
            n++;
        tomb *t = n < 256 ? calloc(1, sizeof *t) : NULL;
        if (t) {
            snprintf(t->state, sizeof t->state, "%s", state);
            t->at = time(NULL);
            t->next = s->tombs;
            s->tombs = t;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static void save_local(signins *s);

/* ---- grants ---- */

static grant *grant_find_locked(signins *s, const char *user_id, const char *url)
{
    for (grant *g = s->grants; g; g = g->next)
        if (!strcmp(g->user_id, user_id) && !strcmp(g->url, url)) return g;
    return NULL;
}

char *signin_grant_get(signins *s, const char *user_id, const char *url)
{
    /* memory first: for a user with an id it holds only a grant the store could not take
     * (newer than the store's) */
    pthread_mutex_lock(&s->mu);
    grant *g = grant_find_locked(s, user_id, url);
    char *t = g ? strdup(g->text) : NULL;
    pthread_mutex_unlock(&s->mu);
    return t ? t : user_settings_grant(user_id, url); /* a user with an id: sealed in the store */
}

void signin_grant_put(signins *s, const char *user_id, const char *url, const char *text)
{
    char err[300];
    if (user_id[0]) {
        if (user_settings_put_grant(user_id, url, text, err, sizeof err) == GD_OK) {
            pthread_mutex_lock(&s->mu); /* a copy kept in memory before is older now */
            for (grant **pp = &s->grants; *pp; pp = &(*pp)->next)
                if (!strcmp((*pp)->user_id, user_id) && !strcmp((*pp)->url, url)) {
                    grant *g = *pp;
                    *pp = g->next;
                    grant_free(g);
                    break;
                }
            pthread_mutex_unlock(&s->mu);
            return;
        }
        log_warn("agent", "user %s: the sign-in to %s is kept in memory only: %s", user_id, url,
                 err);
    }
    char *t = strdup(text);
    if (!t) return;
    pthread_mutex_lock(&s->mu);
    grant *g = grant_find_locked(s, user_id, url);
    if (!g && (g = calloc(1, sizeof *g))) {
        g->user_id = strdup(user_id);
        g->url = strdup(url);
        if (!g->user_id || !g->url) {
            free(g->user_id);
            free(g->url);
            free(g);
            g = NULL;
        } else {
            g->next = s->grants;
            s->grants = g;
        }
    }
    if (g) {
        wipe_free(g->text);
        g->text = t;
        t = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    wipe_free(t);
    if (!user_id[0] && s->file[0]) save_local(s);
}

/* ---- the local user's grants in the data directory ---- */

/* Writes every grant of the local user, as one JSON object sealed under the server key, to the
 * file (a new file renamed over the old). Logged when it cannot: they stay in memory. */
static void save_local(signins *s)
{
    pthread_mutex_lock(&s->fmu);
    json_t *all = json_object();
    pthread_mutex_lock(&s->mu);
    for (grant *g = s->grants; g && all; g = g->next)
        if (!g->user_id[0] && json_object_set_new(all, g->url, json_string(g->text))) {
            json_decref(all);
            all = NULL;
        }
    pthread_mutex_unlock(&s->mu);
    char *text = all ? json_dumps(all, JSON_COMPACT) : NULL;
    json_decref(all);
    size_t len = text ? strlen(text) : 0, cap = len + 256;
    unsigned char *sealed = text && len < LOCAL_FILE_MAX ? malloc(cap) : NULL;
    size_t slen = sealed ? user_settings_seal_value("", LOCAL_SEAL_AS, text, len, sealed, cap) : 0;
    if (text) sodium_memzero(text, len);
    free(text);
    char why[PATH_MAX + 64] = "nothing to seal them with (no server key)";
    if (!slen || config_write_atomic(s->file, (const char *)sealed, slen, 0600, why, sizeof why))
        log_warn("agent", "the local user's sign-ins are kept in memory only: %s", why);
    free(sealed);
    pthread_mutex_unlock(&s->fmu);
}

void signins_load(signins *s, const char *data_dir)
{
    if (!data_dir || !data_dir[0]) return;
    snprintf(s->file, sizeof s->file, "%s/" LOCAL_FILE, data_dir);
    int fd = open(s->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return; /* none kept yet */
    unsigned char *sealed = malloc(LOCAL_FILE_MAX);
    size_t len = 0;
    while (sealed && len < LOCAL_FILE_MAX) {
        ssize_t r = read(fd, sealed + len, LOCAL_FILE_MAX - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    char *plain = sealed && len ? malloc(len) : NULL;
    json_t *all = plain && user_settings_open_value("", LOCAL_SEAL_AS, sealed, len, plain, len) == 0
                      ? json_loads(plain, 0, NULL)
                      : NULL;
    if (plain) sodium_memzero(plain, len);
    free(plain);
    free(sealed);
    if (!json_is_object(all)) {
        log_warn("agent",
                 "%s does not open (sealed under another server key?): the local user "
                 "signs in again",
                 s->file);
        json_decref(all);
        return;
    }
    const char *url;
    json_t *g;
    json_object_foreach(all, url, g)
    {
        if (!json_is_string(g)) continue;
        char *t = strdup(json_string_value(g)), *u = strdup(url), *id = strdup("");
        grant *n = calloc(1, sizeof *n);
        if (!t || !u || !id || !n) {
            wipe_free(t);
            free(u);
            free(id);
            free(n);
            break;
        }
        *n = (grant){.next = s->grants, .user_id = id, .url = u, .text = t};
        s->grants = n;
    }
    json_decref(all);
}
