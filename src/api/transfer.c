/* Moving sessions between instances: a session's export (GET /api/sessions/{id}/export), the
 * import of one (POST /api/sessions/import) and a fork (POST /api/sessions/{id}/fork).
 *
 * The export is one JSON document of a format of goosed's own:
 *
 *   {"format": "goosed-session", "version": 1, "exported_at": RFC 3339,
 *    "session": {"name", "working_dir", "created_at", "updated_at", "message_count",
 *                "input_tokens", "output_tokens", "settings": {"execution_mode"?, "extensions"?}},
 *    "messages": [{"role", "content": [items], "created_at"}]}
 *
 * It holds no secret: no owner, no token, no key, and the values of every "headers", "envs" and
 * "oauth" of the session's own extension configs are masked ("***"), as GET /api/extensions
 * shows them.
 *
 * An import takes that document, or what the real Goose's `goose session export` writes (its
 * Session with "conversation"), and makes a new session of the caller's, with the messages in
 * their order, in one transaction of the store. Everything is checked before anything is
 * stored: the document's size (max_body_size), the number of messages (IMPORT_MAX_MESSAGES),
 * each message as content_message_check wants it, and the working directory as a new session's
 * (allowed_roots; a user who is not an admin, their workspace: config_session_dir_check);
 * "working_directory" in the body (or the query) puts the session elsewhere.
 * Of the settings only the execution mode is taken: an extension config came without its
 * secrets, so the session's own extensions are not re-added.
 *
 * A fork copies a session of the caller's up to and including the message {"message_id"} (all of
 * them without one) into a new session of theirs, with the same working directory and settings;
 * a directory the caller may no longer work in (config_session_dir_check) is a 400.
 *
 * The store work runs on a worker of the pool, the request suspended meanwhile. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "api/api.h"
#include "auth/auth.h"
#include "auth/user_settings.h"
#include "core/clock.h"
#include "core/content.h"
#include "core/ids.h"
#include "core/jtext.h"
#include "core/pool.h"
#include "extensions/ext_config.h"

#define FORMAT_NAME    "goosed-session"
#define FORMAT_VERSION 1

/* The most tokens an imported session may say it used (a thousand times a year of a busy team):
 * more is a mistake or an attack, and the counts are added to and summed later. */
#define MAX_TOKENS 1000000000000000LL

/* A count of a Goose export, which goosed takes as it is: in 0..MAX_TOKENS. */
static long tokens_clamped(json_int_t v)
{
    return v < 0 ? 0 : v > MAX_TOKENS ? (long)MAX_TOKENS : (long)v;
}
/* The first microsecond after 9999-12-31T23:59:59.999999Z: RFC 3339 has four-digit years. */
#define LAST_TIME_US        (253402300800LL * 1000000)
#define IMPORT_MAX_MESSAGES 10000
#define NAME_MAX_CHARS      256
#define IMPORTED_NAME       "Imported session"

typedef enum { JOB_EXPORT, JOB_IMPORT, JOB_FORK } job_kind;

typedef struct {
    http_req *r;
    app *a;
    job_kind kind;
    char id[UUID_STR_LEN];         /* the session exported or forked */
    char message_id[UUID_STR_LEN]; /* a fork's last message ("" all) */
    bool name_given;               /* a fork's name came in the body */
    bool admin;                    /* a fork's caller is an admin (where it may work) */
    store_session s;               /* the new session (import, fork) */
    json_t *settings;              /* its settings (import) */
    json_t *messages;              /* its messages (import) */
    json_t *extra;                 /* fields added to an import's answer */
    char *out;                     /* the export's text */
    size_t out_len;
    size_t out_held; /* out_len once counted in what answers hold (api_answer_hold) */
    bool busy;       /* refused: answers hold too much already */
    gd_err e;
    int status; /* a 4xx the job found, with err */
    char err[PATH_MAX * 2 + 3072];
} job;

static void job_free(void *arg)
{
    job *j = arg;
    json_decref(j->settings);
    json_decref(j->messages);
    json_decref(j->extra);
    free(j->out);
    if (j->out_held) api_answer_release(&j->out_held, j->out_held);
    free(j);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- the store work, on a worker ---- */

static gd_err read_source(job *j, store_session *src, json_t **settings, json_t **msgs)
{
    store *st = j->a->st;
    return st->ops->session_read(st, j->id, src, settings, NULL, msgs);
}

static void export_job(job *j)
{
    store_session src;
    json_t *settings = NULL, *msgs = NULL;
    j->e = read_source(j, &src, &settings, &msgs);
    if (j->e) {
        snprintf(j->err, sizeof j->err, "%s", store_errmsg());
    } else {
        char created[RFC3339_LEN], updated[RFC3339_LEN], now[RFC3339_LEN];
        clock_rfc3339(src.created_at, created);
        clock_rfc3339(src.updated_at, updated);
        clock_rfc3339(time(NULL), now);
        json_t *list = json_array(), *m;
        size_t i;
        json_array_foreach(msgs, i, m)
        {
            json_array_append_new(list,
                                  json_pack("{s:O, s:O, s:O}", "role", json_object_get(m, "role"),
                                            "content", json_object_get(m, "content"), "created_at",
                                            json_object_get(m, "created_at")));
        }
        json_t *out =
            json_pack("{s:s, s:i, s:s, s:{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o}, s:o}", "format",
                      FORMAT_NAME, "version", FORMAT_VERSION, "exported_at", now, "session", "name",
                      src.name, "working_dir", src.working_dir, "created_at", created, "updated_at",
                      updated, "message_count", (json_int_t)json_array_size(list), "input_tokens",
                      (json_int_t)src.input_tokens, "output_tokens", (json_int_t)src.output_tokens,
                      "settings", ext_config_masked(settings), "messages", list);
        /* its text, made here (not on an HTTP thread), counted while the client reads it */
        j->out = out ? jtext(out, &j->out_len) : NULL;
        json_decref(out);
        if (!j->out) {
            j->e = GD_ENOMEM;
        } else if (!api_answer_hold(j->a->cfg, &j->out_held, j->out_len)) {
            j->busy = true;
            free(j->out);
            j->out = NULL;
        }
    }
    json_decref(settings);
    json_decref(msgs);
}

/* msgs (consumed) as a conversation the providers take, as it is stored: every tool call
 * answered (a copy cut while a tool ran, or at a message asking for tools, gets the answer a
 * crash would leave: the call did not finish), no answer to a call it does not hold, no user
 * message left empty by that. An empty reply (the model said nothing) is kept as it was stored:
 * the dialects leave it out of what they send. NULL when out of memory. */
static json_t *well_formed(json_t *msgs)
{
    json_t *fixed = msgs ? content_answer_tool_calls(msgs) : NULL;
    json_decref(msgs);
    if (!fixed) return NULL;
    json_t *out = json_array(), *m;
    size_t i;
    json_array_foreach(fixed, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (json_array_size(json_object_get(m, "content")) || (role && !strcmp(role, "assistant")))
            json_array_append(out, m);
    }
    json_decref(fixed);
    return out;
}

/* The new session's settings as every write of a session's keeps them: the headers, envs and
 * oauth of its own extensions sealed for its owner (a fork's source may be a session an earlier
 * goosed kept otherwise). false with the error in j when they cannot be. */
static bool sealed_settings(job *j)
{
    char err[PATH_MAX + 512] = "";
    gd_err e = j->settings ? user_settings_seal_session(j->settings, j->s.user_id, err, sizeof err)
                           : GD_OK;
    if (e) {
        j->e = e;
        snprintf(j->err, sizeof j->err, "%s", err[0] ? err : "out of memory");
    }
    return !e;
}

static void fork_job(job *j)
{
    store_session src;
    json_t *msgs = NULL;
    j->e = read_source(j, &src, &j->settings, &msgs);
    if (j->e) {
        snprintf(j->err, sizeof j->err, "%s", store_errmsg());
        json_decref(msgs);
        return;
    }
    json_t *copy = json_array(), *m;
    size_t i;
    bool found = !j->message_id[0];
    json_array_foreach(msgs, i, m)
    {
        json_t *c = json_pack("{s:O, s:O}", "role", json_object_get(m, "role"), "content",
                              json_object_get(m, "content"));
        const char *at = json_string_value(json_object_get(m, "created_at"));
        int64_t us;
        if (c && at && clock_parse_rfc3339(at, &us)) /* when it was said */
            json_object_set_new(c, "created_us", json_integer(us));
        json_array_append_new(copy, c);
        const char *mid = json_string_value(json_object_get(m, "id"));
        if (j->message_id[0] && mid && !strcmp(mid, j->message_id)) {
            found = true;
            break;
        }
    }
    json_decref(msgs);
    if (!found) {
        json_decref(copy);
        j->status = 404;
        snprintf(j->err, sizeof j->err, "message_id: message '%s' not found in session '%s'",
                 j->message_id, j->id);
        return;
    }
    /* the fork works where the source does: only where its caller may now (as it resolves now) */
    char real[PATH_MAX];
    const char *dir = realpath(src.working_dir, real) ? real : src.working_dir;
    int status = config_session_dir_check(j->a->cfg, j->s.user_id, j->admin, "working_dir", dir,
                                          j->err, sizeof j->err - 200);
    if (status) {
        json_decref(copy);
        j->status = status;
        size_t n = strlen(j->err);
        snprintf(j->err + n, sizeof j->err - n,
                 "; export the session and import it with \"working_directory\" to go on with "
                 "it elsewhere");
        return;
    }
    snprintf(j->s.working_dir, sizeof j->s.working_dir, "%s", src.working_dir);
    if (!j->name_given) snprintf(j->s.name, sizeof j->s.name, "%s", src.name);
    if (!(copy = well_formed(copy))) {
        j->e = GD_ENOMEM;
        snprintf(j->err, sizeof j->err, "out of memory");
        return;
    }
    if (!sealed_settings(j)) {
        json_decref(copy);
        return;
    }
    j->e = j->a->st->ops->session_import(j->a->st, &j->s, j->settings, copy);
    if (j->e) snprintf(j->err, sizeof j->err, "%s", store_errmsg());
    json_decref(copy);
}

static void run_job(void *arg)
{
    job *j = arg;
    switch (j->kind) {
    case JOB_EXPORT:
        export_job(j);
        break;
    case JOB_FORK:
        fork_job(j);
        break;
    case JOB_IMPORT:
        if (!sealed_settings(j)) break;
        j->e = j->a->st->ops->session_import(j->a->st, &j->s, j->settings, j->messages);
        if (j->e) snprintf(j->err, sizeof j->err, "%s", store_errmsg());
        break;
    }
    http_resume(j->r);
}

static void job_answer(http_req *r)
{
    job *j = *(job **)http_state(r, sizeof(job *));
    if (j->status) {
        http_reply_error(r, j->status, j->status == 404 ? "not_found" : "bad_request", "%s",
                         j->err);
    } else if (j->e == GD_EBUSY) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: too many store reads and tool calls are waiting; "
                         "try again");
    } else if (j->e == GD_ESHUTDOWN || j->e == GD_EINVAL) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: the server is shutting down");
    } else if (j->e) {
        api_store_error(r, j->e, j->kind == JOB_IMPORT ? j->s.id : j->id, j->err);
    } else if (j->busy) {
        api_answers_busy(r);
    } else if (j->kind == JOB_EXPORT) {
        http_reply_json_text(r, 200, j->out, j->out_len);
        j->out = NULL; /* the answer's now; counted until the request is done (job_free) */
    } else {
        json_t *res = api_session_json(&j->s);
        if (j->extra) json_object_update(res, j->extra);
        char loc[64];
        snprintf(loc, sizeof loc, "/api/sessions/%s", j->s.id);
        http_add_header(r, "Location", loc);
        http_reply_json(r, 201, res);
    }
}

/* A job for r, freed with the request; NULL (and a 500 sent) when out of memory. */
static job *job_new(http_req *r, job_kind kind)
{
    job **slot = http_state(r, sizeof(job *));
    job *j = slot ? calloc(1, sizeof *j) : NULL;
    if (!j) {
        http_reply_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    *slot = j;
    j->r = r;
    j->a = http_app(r);
    j->kind = kind;
    http_on_done(r, job_free, j);
    return j;
}

static void job_start(job *j)
{
    http_suspend(j->r, job_answer);
    gd_err e = pool_submit(agent_pool(j->a->agent), run_job, j);
    if (e) {
        j->e = e == GD_AGAIN ? GD_EBUSY : e;
        http_resume(j->r);
    }
}

/* The new session's owner and id. */
static void new_session(http_req *r, job *j)
{
    ids_uuid7(j->s.id);
    snprintf(j->s.user_id, sizeof j->s.user_id, "%s", http_user(r)->id);
}

void api_session_export(http_req *r)
{
    job *j = job_new(r, JOB_EXPORT);
    if (!j) return;
    snprintf(j->id, sizeof j->id, "%s", http_param(r, 0));
    job_start(j);
}

/* A name from v (field names it): 1 to NAME_MAX_CHARS characters. false and a 400 when not. */
static bool take_name(http_req *r, json_t *v, const char *field, char out[STORE_NAME_MAX + 1])
{
    const char *name = json_string_value(v);
    if (!name || !*name || utf8_chars(name) > NAME_MAX_CHARS || strlen(name) > STORE_NAME_MAX) {
        http_reply_error(r, 400, "bad_request", "%s: must be a string of 1 to %d characters", field,
                         NAME_MAX_CHARS);
        return false;
    }
    snprintf(out, STORE_NAME_MAX + 1, "%s", name);
    return true;
}

void api_session_fork(http_req *r)
{
    json_t *body = http_body(r);
    json_t *mid = json_object_get(body, "message_id"), *name = json_object_get(body, "name");
    if (mid && !json_is_null(mid) &&
        (!json_is_string(mid) || !ids_is_uuid(json_string_value(mid)))) {
        http_reply_error(r, 400, "bad_request",
                         "message_id: must be the id of a message of the session (a UUID), as "
                         "GET /api/sessions/{id}/messages gives it");
        return;
    }
    job *j = job_new(r, JOB_FORK);
    if (!j) return;
    if (name && !take_name(r, name, "name", j->s.name)) return;
    j->name_given = name != NULL;
    j->admin = http_user(r)->admin;
    if (!auth_session_quota(r)) return;
    snprintf(j->id, sizeof j->id, "%s", http_param(r, 0));
    if (json_is_string(mid))
        snprintf(j->message_id, sizeof j->message_id, "%s", json_string_value(mid));
    new_session(r, j);
    job_start(j);
}

/* ---- import ---- */

/* The reason a document could not be imported: the status (400, 413) and message. */
typedef struct {
    int status;
    char msg[1024];
} refusal;

static json_t *refuse(refusal *why, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *refuse(refusal *why, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof why->msg, fmt, ap);
    va_end(ap);
    why->status = status;
    return NULL;
}

/* Checks the messages of a document (field names them in messages): a new array of
 * {"role", "content"}, or NULL and why. */
static json_t *checked_messages(json_t *list, const char *field, refusal *why)
{
    if (!json_is_array(list))
        return refuse(why, 400, "%s: must be an array of messages {\"role\", \"content\"}", field);
    if (json_array_size(list) > IMPORT_MAX_MESSAGES)
        return refuse(why, 413, "%s: %zu messages, more than the %d one import takes", field,
                      json_array_size(list), IMPORT_MAX_MESSAGES);
    json_t *out = json_array(), *m;
    size_t i;
    json_array_foreach(list, i, m)
    {
        char err[512];
        if (!content_message_check(m, err, sizeof err)) {
            json_decref(out);
            return refuse(why, 400, "%s[%zu]%s%s", field, i, strncmp(err, "must", 4) ? "." : ": ",
                          err);
        }
        json_t *c = json_pack("{s:O, s:O}", "role", json_object_get(m, "role"), "content",
                              json_object_get(m, "content"));
        json_t *at = json_object_get(m, "created_at");
        int64_t us;
        if (at && (!json_is_string(at) || !clock_parse_rfc3339(json_string_value(at), &us))) {
            json_decref(c);
            json_decref(out);
            return refuse(why, 400,
                          "%s[%zu].created_at: must be an RFC 3339 time such as "
                          "2026-03-04T12:00:00Z",
                          field, i);
        }
        /* Only a time that is shown again as it came: in UTC, from the epoch to year 9999. */
        if (at && (us < 0 || us >= LAST_TIME_US)) {
            json_decref(c);
            json_decref(out);
            return refuse(why, 400,
                          "%s[%zu].created_at: \"%.40s\" is out of range: must be from "
                          "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z in UTC",
                          field, i, json_string_value(at));
        }
        if (at) json_object_set_new(c, "created_us", json_integer(us)); /* kept as exported */
        json_array_append_new(out, c);
    }
    return out;
}

/* ---- what the real Goose exports: its Session, "conversation" the messages ---- */

/* The name of the tool call id in the messages converted so far (for a tool response), or "". */
static const char *call_name(json_t *done, const char *id)
{
    for (size_t i = json_array_size(done); i-- > 0;) {
        json_t *it;
        size_t k;
        json_array_foreach(json_object_get(json_array_get(done, i), "content"), k, it)
        {
            const char *iid = json_string_value(json_object_get(it, "id"));
            if (iid && !strcmp(iid, id) && !strcmp(content_type(it), "tool_request"))
                return json_string_value(json_object_get(it, "name")) ?: "";
        }
    }
    return "";
}

/* One content item of a Goose message as goosed's (a new reference), or NULL when it has no
 * counterpart that a provider is sent (confirmations, notifications, redacted thinking). */
static json_t *goose_item(json_t *it, bool assistant, json_t *done)
{
    const char *type = content_type(it);
    const char *id = json_string_value(json_object_get(it, "id"));
    if (!strcmp(type, "text") && json_is_string(json_object_get(it, "text")))
        return json_pack("{s:s, s:O}", "type", "text", "text", json_object_get(it, "text"));
    if (!strcmp(type, "thinking") && assistant && json_is_string(json_object_get(it, "thinking"))) {
        json_t *sig = json_object_get(it, "signature");
        return json_pack("{s:s, s:O, s:O*}", "type", "thinking", "thinking",
                         json_object_get(it, "thinking"), "signature",
                         json_is_string(sig) ? sig : NULL);
    }
    if (!strcmp(type, "image")) {
        return json_pack("{s:s, s:s}", "type", "text", "text",
                         "[an image was left out of the import]");
    }
    if (!strcmp(type, "toolRequest") && assistant && id) {
        json_t *call = json_object_get(it, "toolCall");
        json_t *value = json_object_get(call, "value");
        const char *status = json_string_value(json_object_get(call, "status"));
        const char *name = json_string_value(json_object_get(value, "name"));
        json_t *args = json_object_get(value, "arguments");
        if (status && !strcmp(status, "success") && name)
            return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_request", "id", id, "name", name,
                             "arguments", json_is_object(args) ? json_incref(args) : json_object());
        return json_pack("{s:s, s:s}", "type", "text", "text",
                         "[a tool call that could not be read was left out of the import]");
    }
    if (!strcmp(type, "toolResponse") && !assistant && id) {
        json_t *res = json_object_get(it, "toolResult");
        json_t *value = json_object_get(res, "value");
        const char *status = json_string_value(json_object_get(res, "status"));
        bool ok = status && !strcmp(status, "success");
        json_t *content = NULL;
        bool is_error = !ok;
        if (ok && json_is_array(value)) {
            content = json_incref(value);
        } else if (ok && json_is_object(value) &&
                   json_is_array(json_object_get(value, "content"))) {
            content = json_incref(json_object_get(value, "content"));
            is_error = json_is_true(json_object_get(value, "isError"));
        } else {
            const char *msg = json_string_value(json_object_get(res, "error"));
            content = json_pack("[{s:s, s:s}]", "type", "text", "text",
                                msg ? msg : "the tool call failed");
        }
        return json_pack("{s:s, s:s, s:s, s:o, s:b}", "type", "tool_response", "id", id, "name",
                         call_name(done, id), "content", content, "is_error", is_error);
    }
    return NULL;
}

/* Goose's conversation as goosed's messages (a new array; a message no item of which could be
 * taken is left out, and the messages hidden from the agent); *left_out counts the items left
 * out. NULL and why when it is not a conversation. */
static json_t *goose_messages(json_t *conv, long *left_out, refusal *why)
{
    if (json_is_object(conv) && json_is_array(json_object_get(conv, "messages")))
        conv = json_object_get(conv, "messages");
    if (!json_is_array(conv))
        return refuse(why, 400,
                      "conversation: must be an array of messages (export the session with its "
                      "messages)");
    if (json_array_size(conv) > IMPORT_MAX_MESSAGES)
        return refuse(why, 413, "conversation: %zu messages, more than the %d one import takes",
                      json_array_size(conv), IMPORT_MAX_MESSAGES);
    json_t *out = json_array(), *m;
    size_t i;
    *left_out = 0;
    json_array_foreach(conv, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || !role || (strcmp(role, "user") && strcmp(role, "assistant"))) {
            json_decref(out);
            return refuse(why, 400, "conversation[%zu].role: must be \"user\" or \"assistant\"", i);
        }
        if (!json_is_array(content)) {
            json_decref(out);
            return refuse(why, 400, "conversation[%zu].content: must be an array", i);
        }
        json_t *meta = json_object_get(m, "metadata");
        if (json_is_false(json_object_get(meta, "agentVisible"))) {
            *left_out += (long)json_array_size(content);
            continue;
        }
        json_t *items = json_array(), *it;
        size_t k;
        json_array_foreach(content, k, it)
        {
            json_t *conv_it = goose_item(it, !strcmp(role, "assistant"), out);
            if (conv_it)
                json_array_append_new(items, conv_it);
            else
                (*left_out)++;
        }
        if (!json_array_size(items)) {
            json_decref(items);
            continue;
        }
        json_t *c = json_pack("{s:s, s:o}", "role", role, "content", items);
        json_t *when = json_object_get(m, "created"); /* Goose's: seconds since the epoch */
        if (c && json_is_integer(when) && json_integer_value(when) >= 0 &&
            json_integer_value(when) < ((json_int_t)1 << 37)) {
            char at[RFC3339_LEN]; /* checked_messages takes it as goosed's own */
            clock_rfc3339((time_t)json_integer_value(when), at);
            json_object_set_new(c, "created_at", json_string(at));
        }
        json_array_append_new(out, c);
    }
    return out;
}

/* The import's working directory: the body's (or the query's) "working_directory", else the
 * exported one; false and the answer sent when it cannot be used. */
static bool import_dir(http_req *r, json_t *body, const char *exported, char out[PATH_MAX])
{
    json_t *given = json_object_get(body, "working_directory");
    const char *val = json_string_value(given), *field = "working_directory";
    char err[PATH_MAX * 2 + 2560];
    if (given && !val) {
        http_reply_error(r, 400, "bad_request", "working_directory: must be a string");
        return false;
    }
    if (!val) val = http_query(r, "working_directory");
    if (!val) {
        if (!exported) {
            http_reply_error(r, 400, "bad_request",
                             "session.working_dir: missing; give \"working_directory\" in the "
                             "body");
            return false;
        }
        val = exported;
        field = "session.working_dir";
    }
    int status = api_dir_check(r, field, val, out, err, sizeof err);
    if (!status) return true;
    if (status == 500)
        http_reply_error(r, status, "internal", "%s", err);
    else if (val == exported)
        http_reply_error(r, status, "bad_request",
                         "%s; give \"working_directory\" in the body (or the query) to import the "
                         "session into another directory",
                         err);
    else
        http_reply_error(r, status, "bad_request", "%s", err);
    return false;
}

void api_session_import(http_req *r)
{
    json_t *doc = http_body(r);
    if (!json_is_object(doc)) {
        http_reply_error(r, 400, "bad_request",
                         "body: a session document is required (what GET "
                         "/api/sessions/{id}/export or goose session export writes)");
        return;
    }
    job *j = job_new(r, JOB_IMPORT);
    if (!j) return;
    refusal why = {0};
    json_t *format = json_object_get(doc, "format");
    const char *exported_dir = NULL, *source = FORMAT_NAME;
    json_t *name = NULL, *session = NULL;
    long left_out = 0;
    if (!format && json_object_get(doc, "conversation")) { /* the real Goose's export */
        source = "goose";
        session = doc;
        exported_dir = json_string_value(json_object_get(doc, "working_dir"));
        name = json_object_get(doc, "name");
        if (!json_is_string(name) || !json_string_length(name))
            name = json_object_get(doc, "description");
        j->messages = goose_messages(json_object_get(doc, "conversation"), &left_out, &why);
        if (j->messages) {
            json_t *ck = checked_messages(j->messages, "conversation", &why);
            json_decref(j->messages);
            j->messages = ck;
        }
        json_t *in = json_object_get(doc, "accumulated_input_tokens");
        json_t *out = json_object_get(doc, "accumulated_output_tokens");
        if (!json_is_integer(in)) in = json_object_get(doc, "input_tokens");
        if (!json_is_integer(out)) out = json_object_get(doc, "output_tokens");
        j->s.input_tokens = json_is_integer(in) ? tokens_clamped(json_integer_value(in)) : 0;
        j->s.output_tokens = json_is_integer(out) ? tokens_clamped(json_integer_value(out)) : 0;
    } else {
        json_t *version = json_object_get(doc, "version");
        session = json_object_get(doc, "session");
        if (!json_is_string(format) || strcmp(json_string_value(format), FORMAT_NAME)) {
            http_reply_error(r, 400, "bad_request",
                             "format: expected \"%s\" (an export of goosed's) or a Goose session "
                             "export (with \"conversation\")",
                             FORMAT_NAME);
            return;
        }
        if (!json_is_integer(version) || json_integer_value(version) != FORMAT_VERSION) {
            http_reply_error(r, 400, "bad_request",
                             "version: this goosed reads version %d of the %s format",
                             FORMAT_VERSION, FORMAT_NAME);
            return;
        }
        if (!json_is_object(session)) {
            http_reply_error(r, 400, "bad_request",
                             "session: must be an object {\"name\", \"working_dir\", ...}");
            return;
        }
        exported_dir = json_string_value(json_object_get(session, "working_dir"));
        name = json_object_get(session, "name");
        j->messages = checked_messages(json_object_get(doc, "messages"), "messages", &why);
        json_t *in = json_object_get(session, "input_tokens");
        json_t *out = json_object_get(session, "output_tokens");
        json_int_t iv = json_is_integer(in) ? json_integer_value(in) : 0;
        json_int_t ov = json_is_integer(out) ? json_integer_value(out) : 0;
        if (iv < 0 || ov < 0 || iv > MAX_TOKENS || ov > MAX_TOKENS) {
            http_reply_error(r, 400, "bad_request",
                             "session.input_tokens, session.output_tokens: must be 0..%lld",
                             (long long)MAX_TOKENS);
            return;
        }
        j->s.input_tokens = (long)iv;
        j->s.output_tokens = (long)ov;
        /* of the settings, the execution mode (extension configs came without their secrets) */
        json_t *mode = json_object_get(json_object_get(session, "settings"), "execution_mode");
        if (mode) {
            if (!json_is_string(mode) || exec_mode_parse(json_string_value(mode)) < 0) {
                http_reply_error(r, 400, "bad_request",
                                 "session.settings.execution_mode: expected auto, approve, "
                                 "smart_approve or chat");
                return;
            }
            j->settings =
                json_pack("{s:s}", "execution_mode",
                          exec_mode_name((exec_mode)exec_mode_parse(json_string_value(mode))));
        }
    }
    if (!j->messages) {
        http_reply_error(r, why.status, why.status == 413 ? "payload_too_large" : "bad_request",
                         "%s", why.msg);
        return;
    }
    if (!(j->messages = well_formed(j->messages))) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    json_t *override = json_object_get(doc, "name");
    if (override && session != doc) name = override;
    if (name && !json_is_null(name) && !(json_is_string(name) && !json_string_length(name))) {
        if (!take_name(r, name, override && session != doc ? "name" : "session.name", j->s.name))
            return;
    } else {
        snprintf(j->s.name, sizeof j->s.name, "%s", IMPORTED_NAME);
    }
    if (!import_dir(r, doc, exported_dir, j->s.working_dir)) return;
    if (!auth_session_quota(r)) return;
    j->extra =
        json_pack("{s:s, s:I}", "imported_from", source, "items_left_out", (json_int_t)left_out);
    new_session(r, j);
    job_start(j);
}
