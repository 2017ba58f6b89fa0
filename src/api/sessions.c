/* Sessions: create, list, get, delete, and their message history. */
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/user_settings.h"
#include "core/pool.h"
#include "core/clock.h"
#include "core/utf8.h"
#include "core/ids.h"
#include "core/log.h"

#define NAME_MAX_CHARS 256
#define DEFAULT_NAME   "New session"
/* a page of up to 1,000 sessions of at most a 1 KB name and a PATH_MAX directory each, escaped */
#define SESSION_TEXT_CAP (64u << 20)

/* One string member: ,"key":"value" (first: no comma). */
static gd_err member_string(buf *b, const char *key, const char *v)
{
    size_t n = strlen(v);
    if (!utf8_valid(v, n)) return GD_EINVAL;
    gd_err e = buf_puts(b, key);
    if (!e) e = buf_json_string(b, v, n);
    return e;
}

gd_err api_session_text(buf *b, const store_session *s)
{
    char created[RFC3339_LEN], updated[RFC3339_LEN];
    clock_rfc3339(s->created_at, created);
    clock_rfc3339(s->updated_at, updated);
    size_t mark = b->len;
    gd_err e = member_string(b, "{\"id\":", s->id);
    if (!e) e = member_string(b, ",\"name\":", s->name);
    if (!e) e = member_string(b, ",\"working_dir\":", s->working_dir);
    if (!e) e = member_string(b, ",\"working_directory\":", s->working_dir);
    long long total; /* the counts saturate in the store: so does their sum */
    if (__builtin_add_overflow((long long)s->input_tokens, (long long)s->output_tokens, &total))
        total = s->input_tokens < 0 ? LLONG_MIN : LLONG_MAX;
    if (!e)
        e = buf_printf(b,
                       ",\"created_at\":\"%s\",\"updated_at\":\"%s\",\"message_count\":%ld,"
                       "\"input_tokens\":%ld,\"output_tokens\":%ld,\"total_tokens\":%lld}",
                       created, updated, s->message_count, s->input_tokens, s->output_tokens,
                       total);
    if (e) b->len = mark;
    return e;
}

json_t *api_session_json(const store_session *s)
{
    buf b;
    buf_init(&b, SESSION_TEXT_CAP);
    json_t *v = api_session_text(&b, s) ? NULL : json_loadb(b.data, b.len, 0, NULL);
    buf_free(&b);
    return v;
}

/* The text built in b (e: how building it went), handed over; NULL once a 500 naming why has
 * been sent. b is left empty. */
static char *text_or_500(http_req *r, buf *b, gd_err e, const char *what, size_t *len)
{
    *len = b->len;
    char *text = e ? NULL : buf_detach(b);
    buf_free(b);
    if (!text)
        http_reply_error(r, 500, "internal", "could not encode the %s (%s)", what,
                         e == GD_EINVAL ? "not UTF-8" : "out of memory");
    return text;
}

/* Replies with the session as api_session_text writes it (500 when it cannot be written). */
static void reply_session(http_req *r, int status, const store_session *s)
{
    buf b;
    buf_init(&b, SESSION_TEXT_CAP);
    size_t len;
    char *text = text_or_500(r, &b, api_session_text(&b, s), "session", &len);
    if (text) http_reply_json_text(r, status, text, len);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Reads an optional string field. false (and a 400 sent) when it is of another type, null
 * included: the OpenAPI document says string. */
static bool opt_string(http_req *r, json_t *body, const char *field, const char **out)
{
    json_t *v = body ? json_object_get(body, field) : NULL;
    *out = NULL;
    if (!v) return true;
    if (!json_is_string(v)) {
        http_reply_error(r, 400, "bad_request", "%s: must be a string", field);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* The caller's workspace, made when missing, into out, when they are kept to it (a user who is
 * not an admin); "" for the others. false when it cannot be made: a 500 has been sent. */
static bool own_workspace(http_req *r, char out[PATH_MAX])
{
    const config *c = ((app *)http_app(r))->cfg;
    const auth_user *u = http_user(r);
    char err[PATH_MAX + 256];
    out[0] = '\0';
    if (!config_user_confined(u->id, u->admin)) return true;
    if (config_user_workspace(c, u->id, out, err, sizeof err) == GD_OK) return true;
    http_reply_error(r, 500, "internal", "%s", err);
    return false;
}

int api_dir_check(http_req *r, const char *field, const char *val, char out[PATH_MAX], char *err,
                  size_t errlen)
{
    const config *c = ((app *)http_app(r))->cfg;
    const auth_user *u = http_user(r);
    char ws[PATH_MAX];
    if (config_user_confined(u->id, u->admin) &&
        config_user_workspace(c, u->id, ws, err, errlen) != GD_OK)
        return 500; /* made on demand: its own path may be the one given */
    if (!*val) {
        snprintf(err, errlen, "%s: must not be empty", field);
        return 400;
    }
    if (strlen(val) >= PATH_MAX) {
        snprintf(err, errlen, "%s: longer than %d bytes", field, PATH_MAX - 1);
        return 400;
    }
    struct stat st;
    if (!realpath(val, out) || stat(out, &st) != 0) {
        snprintf(err, errlen, "%s: %s: %s", field, val,
                 errno == ENOENT ? "no such directory" : strerror(errno));
        return 400;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: %s is not a directory", field, val);
        return 400;
    }
    if (!utf8_valid(out, strlen(out))) { /* a session's directory goes out in JSON */
        snprintf(err, errlen, "%s: %s: its real path is not UTF-8", field, val);
        return 400;
    }
    return config_session_dir_check(c, u->id, u->admin, field, out, err, errlen);
}

/* The working directory, under any of its three names; resolved to an absolute real path. None
 * given: the caller's workspace for a user who is not an admin, else the server's own. */
static bool working_dir(http_req *r, json_t *body, char out[PATH_MAX])
{
    static const char *const names[] = {"working_directory", "working_dir", "cwd"};
    const config *c = ((app *)http_app(r))->cfg;
    const auth_user *u = http_user(r);
    const char *val = NULL, *field = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v;
        if (!opt_string(r, body, names[i], &v)) return false;
        if (v && val && strcmp(v, val) != 0) {
            http_reply_error(r, 400, "bad_request",
                             "%s and %s disagree: give the working directory once", field,
                             names[i]);
            return false;
        }
        if (v && !val) {
            val = v;
            field = names[i];
        }
    }
    char err[PATH_MAX * 2 + 2560], ws[PATH_MAX];
    int status;
    if (!val && !own_workspace(r, ws)) return false;
    if (!val && ws[0]) {
        memcpy(out, ws, PATH_MAX);
        return true;
    }
    if (!val) {
        if (!getcwd(out, PATH_MAX)) {
            http_reply_error(r, 500, "internal", "cannot read the server's working directory: %s",
                             strerror(errno));
            return false;
        }
        status = config_session_dir_check(c, u->id, u->admin,
                                          "working_dir (the server's own, none was given)", out,
                                          err, sizeof err);
    } else {
        status = api_dir_check(r, field, val, out, err, sizeof err);
    }
    if (status) http_reply_error(r, status, status == 500 ? "internal" : "bad_request", "%s", err);
    return !status;
}

/* A create waits for its durable commit without holding a server thread: the request is
 * suspended, and the store's writer resumes it once the row is on disk. */
struct create_state {
    http_req *r;
    store_session s;
    json_t *settings; /* the session's own settings, stored once it exists; or NULL */
    gd_err e;
    char err[256];
};

static void create_done(void *ud, gd_err e, const char *msg)
{
    struct create_state *cs = ud;
    cs->e = e;
    if (msg) snprintf(cs->err, sizeof cs->err, "%s", msg);
    http_resume(cs->r);
}

static void create_finish(http_req *r)
{
    struct create_state *cs = http_state(r, sizeof *cs);
    app *a = http_app(r);
    json_t *settings = cs->settings;
    cs->settings = NULL;
    if (!cs->e && settings) cs->e = a->st->ops->session_settings_set(a->st, cs->s.id, settings);
    json_decref(settings);
    if (cs->e) {
        api_store_error(r, cs->e, cs->s.id, cs->err[0] ? cs->err : NULL);
        return;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/api/sessions/%s", cs->s.id);
    http_add_header(r, "Location", loc);
    reply_session(r, 201, &cs->s);
}

void api_session_create(http_req *r)
{
    app *a = http_app(r);
    json_t *body = http_body(r);
    struct create_state *cs = http_state(r, sizeof *cs);
    if (!cs) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    store_session *s = &cs->s;
    cs->r = r;
    const char *name;
    if (!opt_string(r, body, "name", &name)) return;
    if (name && (!*name || utf8_chars(name) > NAME_MAX_CHARS)) {
        http_reply_error(r, 400, "bad_request", "name: must be 1 to %d characters", NAME_MAX_CHARS);
        return;
    }
    if (!working_dir(r, body, s->working_dir)) return;
    if (!auth_session_quota(r)) return;
    if (api_session_settings_from_body(r, body, &cs->settings) < 0) return;
    /* the headers, envs and oauth of its own extensions kept sealed for the caller, its owner,
     * as when they are added later (api/session_ext.c) */
    char err[PATH_MAX + 512] = "";
    gd_err se = cs->settings
                    ? user_settings_seal_session(cs->settings, http_user(r)->id, err, sizeof err)
                    : GD_OK;
    if (se) {
        json_decref(cs->settings);
        cs->settings = NULL;
        http_reply_error(r, 500, "internal", "%s", err[0] ? err : "out of memory");
        return;
    }
    snprintf(s->name, sizeof s->name, "%s", name ? name : DEFAULT_NAME);
    ids_uuid7(s->id);
    snprintf(s->user_id, sizeof s->user_id, "%s", http_user(r)->id); /* the owner */
    http_suspend(r, create_finish);
    a->st->ops->session_create_async(a->st, s, create_done, cs);
}

/* A whole decimal number in [min, max] from the query string; def when absent. */
static bool query_long(http_req *r, const char *name, long min, long max, long def, long *out)
{
    const char *v = http_query(r, name);
    *out = def;
    if (!v) return true;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max || *v == '+' || *v == ' ') {
        http_reply_error(r, 400, "bad_request", "%s: must be a whole number from %ld to %ld", name,
                         min, max);
        return false;
    }
    *out = n;
    return true;
}

/* GET /api/sessions: newest first, a page at a time. With ?cursor= (empty for the first page)
 * the body is {"sessions": [...], "next_cursor": ...} and every page costs the same at any depth;
 * with ?offset= (or neither) it is the array of before. Both send X-Total-Count (a count the
 * store keeps) and, when there is a next page, a Link to it by cursor. */
void api_session_list(http_req *r)
{
    app *a = http_app(r);
    const char *uid = http_user(r)->id;
    long limit, offset, total = 0;
    const char *cursor = http_query(r, "cursor");
    if (!query_long(r, "limit", 1, 1000, 100, &limit) ||
        !query_long(r, "offset", 0, LONG_MAX / 2, 0, &offset))
        return;
    if (cursor && http_query(r, "offset")) {
        http_reply_error(r, 400, "bad_request",
                         "cursor and offset: give one of them (cursor pages cost the same at "
                         "any depth)");
        return;
    }
    store_session *list;
    size_t n;
    char next[STORE_CURSOR_LEN] = "";
    gd_err e;
    if (cursor) {
        e = a->st->ops->session_page(a->st, uid, limit, cursor, &list, &n, next);
        if (e == GD_EINVAL) {
            http_reply_error(r, 400, "bad_request", "cursor: %s", store_errmsg());
            return;
        }
        if (!e) e = a->st->ops->session_count(a->st, uid, &total);
    } else {
        e = a->st->ops->session_list_owned(a->st, uid, limit, offset, &list, &n, &total);
        if (!e && n == (size_t)limit && offset + (long)n < total)
            snprintf(next, sizeof next, "%lld_%s", list[n - 1].created_us, list[n - 1].id);
    }
    if (e) {
        free(list);
        api_store_error(r, e, NULL, NULL);
        return;
    }
    /* The page written as text: the sessions, then (by cursor) the next one. */
    buf b;
    buf_init(&b, SESSION_TEXT_CAP);
    e = buf_puts(&b, cursor ? "{\"sessions\":[" : "[");
    for (size_t i = 0; !e && i < n; i++) {
        if (i) e = buf_puts(&b, ",");
        if (!e) e = api_session_text(&b, &list[i]);
    }
    free(list);
    if (!e) e = buf_puts(&b, "]");
    if (!e && cursor) {
        e = buf_puts(&b, ",\"next_cursor\":");
        if (!e) e = next[0] ? buf_json_string(&b, next, strlen(next)) : buf_puts(&b, "null");
        if (!e) e = buf_puts(&b, "}");
    }
    size_t len;
    char *text = text_or_500(r, &b, e, "sessions", &len);
    if (!text) return;
    char tc[24];
    snprintf(tc, sizeof tc, "%ld", total);
    http_add_header(r, "X-Total-Count", tc);
    if (next[0]) {
        char link[STORE_CURSOR_LEN + 128];
        snprintf(link, sizeof link, "<%s?limit=%ld&cursor=%s>; rel=\"next\"", http_path(r), limit,
                 next);
        http_add_header(r, "Link", link);
    }
    http_reply_json_text(r, 200, text, len);
}

void api_session_get(http_req *r)
{
    app *a = http_app(r);
    const char *id = http_param(r, 0);
    store_session s;
    gd_err e = a->st->ops->session_get(a->st, id, &s);
    if (e) {
        api_store_error(r, e, id, NULL);
        return;
    }
    reply_session(r, 200, &s);
}

void api_session_delete(http_req *r)
{
    app *a = http_app(r);
    const char *id = http_param(r, 0);
    gd_err e = a->st->ops->session_delete(a->st, id);
    if (e) {
        api_store_error(r, e, id, NULL);
        return;
    }
    /* A reply still running there stops now, instead of running its tools for nothing and
     * failing when it stores their results. */
    agent_session_deleted(a->agent, id);
    http_reply_empty(r, 204);
}

/* A history read on a worker of the pool, sent while it is read: a long history must not hold
 * an HTTP thread (and the other connections it serves) while it is read, nor wait whole in
 * memory before its first byte goes. The store writes the JSON text itself, each message's
 * content as it was stored, and hands it over in pieces of HISTORY_PIECE bytes; the HTTP thread
 * sends each as soon as it is there, so that reading, sending and the client's receiving
 * overlap. The head waits for the first piece (or the end, or an error): what is known before
 * it (404, 400 for a cursor, 503, 413) is still answered with its status.
 *
 * 256 KiB: producing one takes the reader about 0.2 ms. Handing one over is a lock and at most
 * one wake-up of the HTTP thread, which is what costs: the reader spends about 12 us in the
 * eventfd write that wakes an idle core (2-CPU VM, perf), a fifth of the time it took to write a
 * 64 KiB piece (a sixth less CPU per 700 KB history with 256 KiB than with 64 KiB). The HTTP
 * thread writes each piece from where it is (http_reply_pieces), so their size costs no copy.
 * The reader never waits for the client: what it has handed over and the client has not taken
 * yet is bounded by BUF_CAP_HISTORY, past which the answer is cut short. */
#define HISTORY_PIECE (256u << 10)
/* An answer all read before its head goes, up to this size (a page), is sent as one buffer. */
#define HISTORY_WHOLE_MAX HISTORY_PIECE

typedef struct history_piece {
    struct history_piece *next;
    char *text;
    size_t len;
} history_piece;

/* Shared by the request and the job; freed by whichever lets go of it last (refs). */
typedef struct {
    pthread_mutex_t mu;
    int refs;
    http_req *r; /* NULL once the request is finished with: nothing may resume it then */
    app *a;
    char id[UUID_STR_LEN];
    long limit;                  /* 0: all */
    char *cursor;                /* NULL: the array of before; else the paged object */
    char next[STORE_CURSOR_LEN]; /* set by the store before its first piece */
    /* under mu */
    history_piece *head, *tail; /* handed over, not yet taken by the HTTP thread */
    size_t held;                /* bytes in those and in cur */
    bool started;               /* the request has been resumed for its head */
    bool waiting;               /* the stream waits for a piece */
    bool done;                  /* the job is over; e says how */
    gd_err e;
    char err[256];
    /* the HTTP thread's own */
    history_piece *cur; /* being sent, from off */
    size_t counted;     /* the pieces' bytes counted in what answers hold (api_answer_hold) */
    size_t off;
} history_read;

/* api_answer_hold's: the bytes held and how many answers hold them. */
static pthread_mutex_t answers_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t answers_bytes, answers_holding;

bool api_answer_hold(const config *cfg, size_t *mine, size_t n)
{
    pthread_mutex_lock(&answers_mu);
    bool ok =
        answers_bytes + n <= (size_t)cfg->max_answer_memory || answers_holding == (*mine ? 1u : 0u);
    if (ok) {
        answers_holding += !*mine;
        *mine += n;
        answers_bytes += n;
    }
    pthread_mutex_unlock(&answers_mu);
    return ok;
}

void api_answer_release(size_t *mine, size_t n)
{
    pthread_mutex_lock(&answers_mu);
    *mine -= n;
    answers_bytes -= n;
    answers_holding -= !*mine;
    pthread_mutex_unlock(&answers_mu);
}

void api_answers_busy(http_req *r)
{
    http_add_header(r, "Retry-After", "5");
    http_reply_error(r, 503, "busy",
                     "busy: the answers clients have not read yet hold all goosed keeps for them "
                     "(max_answer_memory, %ld bytes); try again",
                     ((app *)http_app(r))->cfg->max_answer_memory);
}

/* Frees a list of pieces, each counted in what answers hold (history_take) as *held. */
static void pieces_free(history_piece *p, size_t *held)
{
    while (p) {
        history_piece *next = p->next;
        if (p->text) api_answer_release(held, p->len);
        free(p->text);
        free(p);
        p = next;
    }
}

static void history_release(history_read *h)
{
    pthread_mutex_lock(&h->mu);
    bool last = --h->refs == 0;
    pthread_mutex_unlock(&h->mu);
    if (!last) return;
    pieces_free(h->head, &h->counted);
    pieces_free(h->cur, &h->counted);
    free(h->cursor);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* The request is finished with (answered, or the client went away). */
static void history_request_done(void *arg)
{
    history_read *h = arg;
    pthread_mutex_lock(&h->mu);
    h->r = NULL;
    pthread_mutex_unlock(&h->mu);
    history_release(h);
}

/* Under mu: resumes the request when it waits for its head or for a piece. The head of the
 * whole history goes with its first piece; a page's waits for its end up to HISTORY_WHOLE_MAX
 * (most pages: then sent as one buffer, whichever thread is quicker). */
static void history_wake(history_read *h)
{
    if (!h->r) return;
    if (!h->started) {
        if (!h->done && h->limit && h->held <= HISTORY_WHOLE_MAX) return;
        h->started = true;
        http_resume(h->r);
    } else if (h->waiting) {
        h->waiting = false;
        http_resume(h->r);
    }
}

/* store_piece_fn: queues a piece of the text for the HTTP thread (the job's side). */
static gd_err history_take(void *ud, char *text, size_t len)
{
    history_read *h = ud;
    history_piece *p = malloc(sizeof *p);
    pthread_mutex_lock(&h->mu);
    gd_err e = !h->r                                           ? GD_ECANCELLED
               : !p                                            ? GD_ENOMEM
               : h->held > BUF_CAP_HISTORY - len               ? GD_ETOOBIG
               : !api_answer_hold(h->a->cfg, &h->counted, len) ? GD_AGAIN
                                                               : GD_OK;
    if (!e) {
        *p = (history_piece){NULL, text, len};
        if (h->tail)
            h->tail->next = p;
        else
            h->head = p;
        h->tail = p;
        h->held += len;
        history_wake(h);
    }
    pthread_mutex_unlock(&h->mu);
    if (e) {
        free(p);
        free(text);
    }
    return e;
}

static void history_job(void *arg)
{
    history_read *h = arg;
    buf out;
    buf_init(&out, BUF_CAP_HISTORY);
    store_pieces pieces = {HISTORY_PIECE, history_take, h};
    gd_err e = h->cursor ? buf_puts(&out, "{\"messages\":") : GD_OK;
    if (!e)
        e = h->a->st->ops->messages_text(h->a->st, h->id, h->limit, h->cursor, &out, h->next,
                                         &pieces);
    char err[sizeof h->err] = "";
    if (e && e != GD_ENOMEM && e != GD_ETOOBIG && e != GD_ECANCELLED)
        snprintf(err, sizeof err, "%s", store_errmsg());
    if (!e && h->cursor) {
        e = buf_puts(&out, ",\"next_cursor\":");
        if (!e)
            e = h->next[0] ? buf_json_string(&out, h->next, strlen(h->next))
                           : buf_puts(&out, "null");
        if (!e) e = buf_puts(&out, "}");
    }
    if (!e && out.len) { /* the rest, less than a piece */
        size_t len = out.len;
        char *text = buf_detach(&out);
        e = text ? history_take(h, text, len) : GD_ENOMEM;
    }
    buf_free(&out);
    pthread_mutex_lock(&h->mu);
    h->done = true;
    h->e = e;
    memcpy(h->err, err, sizeof err);
    history_wake(h);
    pthread_mutex_unlock(&h->mu);
    history_release(h);
}

/* http_piece_fn: the pieces as they come, each written from where it is, then the end (the HTTP
 * thread's side). A piece is freed at the call after it, once the socket has taken it. */
static long history_stream(void *cls, const char **data)
{
    history_read *h = cls;
    if (!h->cur || h->off == h->cur->len) {
        history_piece *sent = h->cur;
        pthread_mutex_lock(&h->mu);
        if (sent) h->held -= sent->len;
        h->cur = h->head;
        h->off = 0;
        if (h->cur) {
            if (!(h->head = h->cur->next)) h->tail = NULL;
            h->cur->next = NULL;
        }
        bool done = h->done;
        gd_err e = h->e;
        if (!h->cur && (!done || e)) {
            h->waiting = !done;
            http_stream_wait(h->r);
        }
        pthread_mutex_unlock(&h->mu);
        pieces_free(sent, &h->counted);
        if (!h->cur) {
            if (!done) return 0;
            if (!e) return HTTP_STREAM_END;
            /* The head has gone: the answer cannot say it failed any more. The connection is
             * closed without the last chunk: the client sees a body cut short, never a
             * complete-looking one. */
            log_error("api", "the history of session %s was cut short after its head went: %s",
                      h->id,
                      e == GD_ETOOBIG ? "the client reads too slowly (too much waits for it)"
                      : e == GD_AGAIN ? "the answers clients have not read hold all goosed keeps"
                      : h->err[0]     ? h->err
                                      : gd_strerror(e));
            return HTTP_STREAM_ABORT;
        }
    }
    size_t n = h->cur->len - h->off;
    *data = h->cur->text + h->off;
    h->off += n;
    return (long)n;
}

/* The job's first word: the head of a stream, or the error it met before anything was read. */
static void messages_answer(http_req *r)
{
    history_read *h = *(history_read **)http_state(r, sizeof(history_read *));
    pthread_mutex_lock(&h->mu);
    bool some = h->head != NULL;
    gd_err e = h->e;
    history_piece *all = NULL; /* the whole answer, when it is all read already */
    size_t len = h->held;
    if (h->done && !e && len <= HISTORY_WHOLE_MAX) {
        all = h->head;
        h->head = h->tail = NULL;
        h->held = 0;
    }
    pthread_mutex_unlock(&h->mu);
    if (some) e = GD_OK; /* an error after the first piece is the stream's to tell */
    if (e == GD_AGAIN) {
        api_answers_busy(r);
    } else if (e == GD_EBUSY) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: too many history reads and tool calls are waiting; "
                         "try again");
    } else if (e == GD_ESHUTDOWN) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: the server is shutting down");
    } else if (e == GD_EINVAL) {
        http_reply_error(r, 400, "bad_request", "cursor: %s", h->err);
    } else if (e == GD_ETOOBIG) {
        http_reply_error(r, 413, "too_large",
                         "the history is too large for one answer: read it a page at a time "
                         "(?limit=1000&cursor=)");
    } else if (e == GD_ENOMEM) {
        http_reply_error(r, 500, "internal", "out of memory");
    } else if (e) {
        api_store_error(r, e, h->id, h->err);
    } else {
        if (h->next[0]) {
            char link[STORE_CURSOR_LEN + 160];
            snprintf(link, sizeof link, "<%s?limit=%ld&cursor=%s>; rel=\"next\"", http_path(r),
                     h->limit, h->next);
            http_add_header(r, "Link", link);
        }
        if (!all) {
            http_reply_pieces(r, 200, "application/json; charset=utf-8", history_stream, h, NULL);
            return;
        }
        /* short, and all read before its head went: one buffer (HISTORY_WHOLE_MAX) */
        char *text = all->next ? malloc(len + 1) : all->text;
        if (text == all->text) {
            api_answer_release(&h->counted, all->len);
            all->text = NULL;
        } else if (text) {
            size_t at = 0;
            for (history_piece *p = all; p; p = p->next) {
                memcpy(text + at, p->text, p->len);
                at += p->len;
            }
            text[at] = '\0';
        }
        pieces_free(all, &h->counted);
        if (text)
            http_reply_json_text(r, 200, text, len);
        else
            http_reply_error(r, 500, "internal", "out of memory");
    }
}

/* GET /api/sessions/{id}/messages: the whole history, oldest first, as an array; or a page at a
 * time with ?limit= (the first page, still an array) and ?cursor= (the object
 * {"messages": [...], "next_cursor": ...}), a Link header naming the next page either way. */
void api_messages_list(http_req *r)
{
    app *a = http_app(r);
    long limit;
    if (!query_long(r, "limit", 1, 100000, 0, &limit)) return;
    const char *cursor = http_query(r, "cursor");
    history_read **slot = http_state(r, sizeof(history_read *));
    history_read *h = slot ? calloc(1, sizeof *h) : NULL;
    if (h && cursor && !(h->cursor = strdup(cursor))) {
        free(h);
        h = NULL;
    }
    if (!h) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->refs = 2; /* the request's and the job's */
    *slot = h;
    h->r = r;
    h->a = a;
    h->limit = cursor && !limit ? 100 : limit;
    snprintf(h->id, sizeof h->id, "%s", http_param(r, 0));
    http_on_done(r, history_request_done, h);
    http_suspend(r, messages_answer);
    gd_err e = pool_submit(agent_pool(a->agent), history_job, h);
    if (e) {
        pthread_mutex_lock(&h->mu);
        h->done = true;
        h->e = e == GD_AGAIN ? GD_EBUSY : e == GD_EINVAL ? GD_ESHUTDOWN : e;
        history_wake(h);
        pthread_mutex_unlock(&h->mu);
        history_release(h); /* the job's: it will not run */
    }
}
