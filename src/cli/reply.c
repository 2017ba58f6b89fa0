/* cli/reply: one reply streamed to the terminal (see reply.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/utf8.h"
#include "cli/reply.h"

#define SPIN_AFTER_MS   200 /* the spinner shows after this long without an event */
#define RESULT_LINES    4   /* lines of a tool result shown */
#define RESULT_COLUMNS  120 /* bytes of each line shown */
#define ARG_VALUE_BYTES 60  /* bytes of each argument's value in a tool call's marker */

static volatile sig_atomic_t interrupts;

#define RESUME_TRIES 3 /* times a broken reply stream is taken up again */

static void on_sigint(int sig)
{
    (void)sig;
    interrupts++;
}

void reply_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

int reply_interrupts(void)
{
    return interrupts;
}

void reply_interrupts_clear(void)
{
    interrupts = 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- how tool calls and results look ---- */

/* Writes n bytes of s on f with control characters as spaces. */
/* s on one line: line breaks and tabs as spaces, every other control (C0, DEL, C1: a model's
 * or a tool's text must not drive the terminal) as \xHH, as cl_put_text writes them. */
static void put_flat(FILE *f, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        while (i + k < n && s[i + k] != '\n' && s[i + k] != '\t' && s[i + k] != '\r')
            k++;
        cl_put_text(f, s + i, k);
        i += k;
        if (i < n) {
            fputc(' ', f);
            i++;
        }
    }
}

void reply_print_tool_call(FILE *f, const char *tool, json_t *arguments)
{
    const char *sep = tool ? strstr(tool, "__") : NULL;
    const char *name = sep ? sep + 2 : (tool ? tool : "?");
    fputs("─── ", f);
    cl_puts_text(f, name);
    fputc('(', f);
    const char *key;
    json_t *v;
    bool first = true;
    json_object_foreach(arguments, key, v)
    {
        char *dumped = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *s = json_is_string(v) ? json_string_value(v) : (dumped ? dumped : "?");
        size_t len = json_is_string(v) ? json_string_length(v) : strlen(s);
        size_t n = utf8_prefix(s, len, ARG_VALUE_BYTES);
        fputs(first ? "" : ", ", f);
        cl_puts_text(f, key);
        fputs(": ", f);
        put_flat(f, s, n);
        if (n < len) fputs("…", f);
        free(dumped);
        first = false;
    }
    fputs(") ───\n", f);
}

void reply_print_tool_result(FILE *f, const char *text, bool is_error)
{
    if (!text) text = "";
    size_t lines = 0;
    const char *p = text;
    while (*p && lines < RESULT_LINES) {
        size_t len = strcspn(p, "\n");
        size_t n = utf8_prefix(p, len, RESULT_COLUMNS);
        fputs(lines == 0 && is_error ? "  error: " : "  ", f);
        put_flat(f, p, n);
        fputs(n < len ? "…\n" : "\n", f);
        lines++;
        p += len;
        if (*p == '\n') p++;
    }
    size_t more = 0;
    for (; *p; p++)
        if (*p == '\n' || !p[1]) more++;
    if (more) fprintf(f, "  … (%zu more line%s)\n", more, more == 1 ? "" : "s");
    if (!lines && is_error) fputs("  error\n", f);
}

/* ---- asking the user ---- */

const char *reply_ask_confirmation(const char *tool, json_t *arguments)
{
    /* No ticks while the user reads and answers: they would interrupt the read. */
    struct itimerval saved, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, &saved);
    const char *action = NULL;
    int before = interrupts;
    (void)arguments;
    while (!action) {
        fprintf(stderr,
                "Allow %s?  [y] allow once  [a] always allow  [n] deny  [d] always deny  "
                "[c] cancel the reply: ",
                tool ? tool : "this tool");
        fflush(stderr);
        char line[64];
        if (!fgets(line, sizeof line, stdin)) {
            bool eof = feof(stdin);
            clearerr(stdin);
            if (interrupts != before || eof) {
                fputc('\n', stderr);
                action = "cancel";
                break;
            }
            if (errno == EINTR) continue;
            action = "cancel";
            break;
        }
        if (!strchr(line, '\n')) { /* a long line: the rest goes */
            int c;
            while ((c = getchar()) != EOF && c != '\n')
                ;
        }
        char c = line[strspn(line, " \t")];
        switch (c) {
        case 'y':
        case 'Y':
            action = "allow_once";
            break;
        case 'a':
        case 'A':
            action = "always_allow";
            break;
        case 'n':
        case 'N':
            action = "deny_once";
            break;
        case 'd':
        case 'D':
            action = "always_deny";
            break;
        case 'c':
        case 'C':
            action = "cancel";
            break;
        default:
            fputs("Answer y, a, n, d or c.\n", stderr);
        }
    }
    setitimer(ITIMER_REAL, &saved, NULL);
    return action;
}

/* One line typed on the terminal into line (its newline dropped; a longer line's rest read
 * and dropped). false at the end of input or on Ctrl-C: the question is cancelled. */
static bool read_answer(char *line, size_t n, int before)
{
    for (;;) {
        if (fgets(line, (int)n, stdin)) break;
        bool eof = feof(stdin);
        clearerr(stdin);
        if (interrupts != before || eof || errno != EINTR) {
            fputc('\n', stderr);
            return false;
        }
    }
    size_t len = strlen(line);
    if (len && line[len - 1] == '\n') {
        line[--len] = '\0';
    } else {
        int c;
        while ((c = getchar()) != EOF && c != '\n')
            ;
    }
    return true;
}

/* The choices a field offers, as [{"value", "label"}]: enum (with the older enumNames), or
 * oneOf/anyOf of {"const", "title"}; of its items for an array. NULL: a free answer. */
static json_t *choices_of(json_t *prop)
{
    json_t *p = json_is_array(json_object_get(prop, "enum")) || json_object_get(prop, "oneOf") ||
                        json_object_get(prop, "anyOf")
                    ? prop
                    : json_object_get(prop, "items");
    json_t *out = json_array(), *it;
    size_t i;
    json_t *en = json_object_get(p, "enum"), *names = json_object_get(p, "enumNames");
    json_array_foreach(en, i, it)
    {
        json_t *label = json_array_get(names, i);
        json_array_append_new(
            out, json_pack("{s:O, s:O}", "value", it, "label", json_is_string(label) ? label : it));
    }
    json_t *alts =
        json_object_get(p, "oneOf") ? json_object_get(p, "oneOf") : json_object_get(p, "anyOf");
    json_array_foreach(alts, i, it)
    {
        json_t *v = json_object_get(it, "const"), *t = json_object_get(it, "title");
        if (v) json_array_append_new(out, json_pack("{s:O, s:O}", "value", v, "label", t ? t : v));
    }
    if (!json_array_size(out)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The choice word names (its number from 1, its value or its label, any case), or NULL. */
static json_t *pick_choice(json_t *choices, const char *word)
{
    char *end;
    long k = strtol(word, &end, 10);
    if (!*end && k >= 1 && (size_t)k <= json_array_size(choices))
        return json_object_get(json_array_get(choices, (size_t)k - 1), "value");
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c)
    {
        const char *v = json_string_value(json_object_get(c, "value"));
        const char *l = json_string_value(json_object_get(c, "label"));
        if ((v && !strcasecmp(v, word)) || (l && !strcasecmp(l, word)))
            return json_object_get(c, "value");
    }
    return NULL;
}

/* text as the field's type, or NULL with why said. */
static json_t *field_value(json_t *prop, json_t *choices, const char *text)
{
    const char *type = cl_str(prop, "type", "string");
    if (!strcmp(type, "array")) {
        json_t *out = json_array();
        char *copy = strdup(text), *save = NULL;
        for (char *w = copy ? strtok_r(copy, ",", &save) : NULL; w;
             w = strtok_r(NULL, ",", &save)) {
            w += strspn(w, " ");
            size_t n = strlen(w);
            while (n && w[n - 1] == ' ')
                w[--n] = '\0';
            json_t *v = choices ? pick_choice(choices, w) : json_string(w);
            if (!v) {
                fprintf(stderr, "  \"%s\" is not one of the choices\n", w);
                json_decref(out);
                out = NULL;
                break;
            }
            json_array_append(out, v);
            if (!choices) json_decref(v);
        }
        free(copy);
        return out;
    }
    if (choices) {
        json_t *v = pick_choice(choices, text);
        if (!v) fputs("  Answer with one of the choices (its number or its name).\n", stderr);
        return v ? json_incref(v) : NULL;
    }
    if (!strcmp(type, "boolean")) {
        if (strchr("yY", text[0]) || !strcasecmp(text, "true")) return json_true();
        if (strchr("nN", text[0]) || !strcasecmp(text, "false")) return json_false();
        fputs("  Answer y or n.\n", stderr);
        return NULL;
    }
    if (!strcmp(type, "integer") || !strcmp(type, "number")) {
        bool whole = !strcmp(type, "integer");
        char *end;
        errno = 0;
        long long i = whole ? strtoll(text, &end, 10) : 0;
        double d = whole ? (double)i : strtod(text, &end);
        json_t *min = json_object_get(prop, "minimum"), *max = json_object_get(prop, "maximum");
        if (*end || errno || d != d) {
            fprintf(stderr, "  Answer with %s.\n", whole ? "a whole number" : "a number");
            return NULL;
        }
        if ((min && d < json_number_value(min)) || (max && d > json_number_value(max))) {
            fprintf(stderr, "  Answer with a number from %g to %g.\n",
                    min ? json_number_value(min) : -1e308, max ? json_number_value(max) : 1e308);
            return NULL;
        }
        return whole ? json_integer((json_int_t)i) : json_real(d);
    }
    return json_string(text);
}

/* Asks each field of an elicitation's flat schema on the terminal, in its order: its title, the
 * choices, the default (taken by an empty answer). NULL when the user stopped (end of input or
 * Ctrl-C): the question is then cancelled. */
static json_t *ask_form(json_t *schema)
{
    json_t *content = json_object(), *required = json_object_get(schema, "required");
    const char *name;
    json_t *prop;
    int before = interrupts;
    json_object_foreach(json_object_get(schema, "properties"), name, prop)
    {
        bool must = false;
        size_t i;
        json_t *r;
        json_array_foreach(required, i, r) must |=
            json_is_string(r) && !strcmp(json_string_value(r), name);
        json_t *choices = choices_of(prop), *def = json_object_get(prop, "default");
        for (;;) {
            fprintf(stderr, "  %s", cl_str(prop, "title", name));
            if (json_object_get(prop, "description"))
                fprintf(stderr, " (%s)", cl_str(prop, "description", ""));
            if (choices) {
                fputs(!strcmp(cl_str(prop, "type", ""), "array") ? " — any of, with commas:"
                                                                 : " — one of:",
                      stderr);
                json_t *c;
                json_array_foreach(choices, i, c)
                {
                    fprintf(stderr, " %zu) ", i + 1);
                    cl_puts_text(stderr, cl_str(c, "label", "?"));
                }
            } else if (!strcmp(cl_str(prop, "type", ""), "boolean")) {
                fputs(" [y/n]", stderr);
            }
            if (def) {
                char *d = json_dumps(def, JSON_ENCODE_ANY | JSON_COMPACT);
                fprintf(stderr, " [%s]", d ? d : "");
                free(d);
            } else if (must) {
                fputs(" (required)", stderr);
            }
            fputs(": ", stderr);
            fflush(stderr);
            char line[4096];
            if (!read_answer(line, sizeof line, before)) {
                json_decref(choices);
                json_decref(content);
                return NULL;
            }
            if (!line[0]) {
                if (def) json_object_set(content, name, def);
                if (def || !must) break;
                fputs("  An answer is required.\n", stderr);
                continue;
            }
            json_t *v = field_value(prop, choices, line);
            if (v) {
                json_object_set_new(content, name, v);
                break;
            }
        }
        json_decref(choices);
    }
    return content;
}

/* ---- one reply ---- */

typedef struct {
    cl_client *cl;
    const char *sid;
    const reply_opts *o;
    bool line_start; /* stdout is at the start of a line */
    bool spinner;    /* a spinner may be drawn (stderr is a terminal, text output) */
    bool spinning;   /* a frame is on the screen */
    unsigned frame;
    long last_event_ms;
    int handled; /* Ctrl-C presses acted upon */
    bool cancel_sent;
    bool complete; /* message_complete arrived */
    bool abandoned;
    bool error_said; /* an error event was said */
    char stop[32];
    char last_id[32]; /* the id of the last event, where a broken stream is taken up */
} rstate;

static void spin_clear(rstate *s)
{
    if (!s->spinning) return;
    fputs(" \b", stderr);
    fflush(stderr);
    s->spinning = false;
}

static void out_text(rstate *s, const char *text, size_t n)
{
    if (!n) return;
    spin_clear(s);
    cl_put_text(stdout, text, n);
    fflush(stdout);
    s->line_start = text[n - 1] == '\n';
}

/* Starts a new line on stdout unless at one already. */
static void newline(rstate *s)
{
    if (!s->line_start) out_text(s, "\n", 1);
}

static int cancel_mark; /* interrupts when the cancel was sent: one more stops waiting for it */

static int interrupted_again(void)
{
    return interrupts > cancel_mark;
}

static void send_cancel(rstate *s)
{
    char *sid = cl_escape(s->sid);
    char path[600];
    snprintf(path, sizeof path, "/api/sessions/%s/cancel", sid ? sid : "");
    free(sid);
    /* the Ctrl-C this cancel answers: one that came after it (even before this line, as when
     * the user presses it twice quickly) stops waiting */
    cancel_mark = s->handled;
    json_decref(cl_call_until(s->cl, "POST", path, NULL, interrupted_again));
    s->cancel_sent = true;
}

static void answer_with(rstate *s, const char *route, const char *id, const char *action,
                        json_t *content)
{
    char *sid = cl_escape(s->sid);
    char path[600];
    snprintf(path, sizeof path, "/api/sessions/%s/%s", sid ? sid : "", route);
    free(sid);
    json_t *body = json_pack("{s:s, s:s}", "id", id, "action", action);
    if (body && content) json_object_set(body, "content", content);
    json_decref(cl_call_json(s->cl, "POST", path, body, NULL));
    json_decref(body);
}

static void answer(rstate *s, const char *route, const char *id, const char *action)
{
    answer_with(s, route, id, action, NULL);
}

static void on_confirmation(rstate *s, json_t *d)
{
    const char *id = cl_str(d, "id", "");
    const char *tool = cl_str(d, "tool", "?");
    const char *action;
    spin_clear(s);
    if (s->o->confirm == REPLY_APPROVE) {
        action = "allow_once";
    } else if (s->o->confirm == REPLY_ASK && isatty(STDIN_FILENO)) {
        if (!s->o->json) newline(s);
        fflush(stdout);
        int before = interrupts;
        action = reply_ask_confirmation(tool, json_object_get(d, "arguments"));
        /* A Ctrl-C while asking is the answer "cancel", not a second request to cancel. */
        s->handled += interrupts - before;
    } else {
        action = "deny_once";
        fprintf(stderr, "%s: denied %s: no terminal to ask on (--approve-all allows every tool)\n",
                cl_prog(s->cl), tool);
    }
    answer(s, "tool_confirmations", id, action);
    s->last_event_ms = now_ms();
}

/* An extension's question: asked on the terminal (the user may answer, decline or cancel);
 * declined without one, or with --json. */
static void on_elicitation(rstate *s, json_t *d)
{
    spin_clear(s);
    if (!s->o->json) newline(s);
    fflush(stdout);
    const char *id = cl_str(d, "id", "");
    fprintf(stderr, "%s: the extension ", cl_prog(s->cl));
    cl_puts_text(stderr, cl_str(d, "extension", "?"));
    fputs(" asks: ", stderr);
    cl_puts_text(stderr, cl_str(d, "message", ""));
    fputc('\n', stderr);
    const char *url = cl_str(d, "url", NULL);
    bool url_mode = url && !strcmp(cl_str(d, "mode", ""), "url");
    if (url_mode) { /* shown, never opened here: the user opens it, and says so */
        fprintf(stderr, "%s: the address to open: ", cl_prog(s->cl));
        cl_puts_text(stderr, url);
        fputc('\n', stderr);
    }
    if (s->o->json || !isatty(STDIN_FILENO)) {
        fprintf(stderr, "%s: declined (no terminal to ask on)\n", cl_prog(s->cl));
        answer(s, "elicitations", id, "decline");
        return;
    }
    struct itimerval saved, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, &saved); /* no ticks while the user answers */
    int before = interrupts;
    const char *action = NULL;
    json_t *content = NULL;
    while (!action) {
        fputs(url_mode ? "Open it in your browser, then:  [y] done  [n] decline  [c] cancel: "
                       : "Answer it?  [y] yes  [n] decline  [c] cancel: ",
              stderr);
        fflush(stderr);
        char line[64];
        if (!read_answer(line, sizeof line, before)) {
            action = "cancel";
        } else if (strchr("yY", line[0]) && line[0] && url_mode) {
            action = "accept";
        } else if (strchr("yY", line[0]) && line[0]) {
            content = ask_form(json_object_get(d, "requested_schema"));
            action = content ? "accept" : "cancel";
        } else if (strchr("nN", line[0]) && line[0]) {
            action = "decline";
        } else if (strchr("cC", line[0]) && line[0]) {
            action = "cancel";
        } else {
            fputs("Answer y, n or c.\n", stderr);
        }
    }
    setitimer(ITIMER_REAL, &saved, NULL);
    s->handled += interrupts - before; /* a Ctrl-C here answered the question */
    answer_with(s, "elicitations", id, action, content);
    json_decref(content);
    s->last_event_ms = now_ms();
}

static int on_event(void *ud, const char *event, const char *id, const char *data)
{
    rstate *s = ud;
    s->last_event_ms = now_ms();
    if (id && *id) snprintf(s->last_id, sizeof s->last_id, "%s", id);
    json_t *d = json_loads(data, JSON_ALLOW_NUL, NULL);
    if (s->o->json) {
        json_t *line = json_pack("{s:s, s:s, s:O?}", "event", event, "id", id, "data", d);
        if (!d) json_object_set_new(line, "data", json_string(data));
        char *text = json_dumps(line, JSON_COMPACT);
        if (text) printf("%s\n", text);
        fflush(stdout);
        free(text);
        json_decref(line);
    }
    if (!strcmp(event, "message_chunk")) {
        const char *kind = cl_str(d, "type", "text");
        json_t *t = json_object_get(d, "text");
        if (!s->o->json && !strcmp(kind, "text") && json_is_string(t))
            out_text(s, json_string_value(t), json_string_length(t));
    } else if (!strcmp(event, "tool_call") && !s->o->json) {
        newline(s);
        spin_clear(s);
        reply_print_tool_call(stdout, cl_str(d, "tool", "?"), json_object_get(d, "arguments"));
        fflush(stdout);
    } else if (!strcmp(event, "tool_result") && !s->o->json) {
        spin_clear(s);
        reply_print_tool_result(stdout, cl_str(d, "result", ""),
                                json_is_true(json_object_get(d, "is_error")));
        fflush(stdout);
        s->line_start = true;
    } else if (!strcmp(event, "context_compacted") && !s->o->json) {
        /* on stderr, as the session's line: stdout stays the reply */
        spin_clear(s);
        fprintf(stderr,
                "%s: the conversation so far (%lld messages) was summarized to fit the model's "
                "context\n",
                cl_prog(s->cl),
                (long long)json_integer_value(json_object_get(d, "summarized_messages")));
    } else if (!strcmp(event, "notification") && !s->o->json) {
        /* an extension the reply goes on without, and why: on stderr, as the session's line */
        spin_clear(s);
        if (!s->line_start) newline(s);
        fprintf(stderr, "%s: extension ", cl_prog(s->cl));
        cl_puts_text(stderr, cl_str(d, "extension", "?"));
        fputs(": ", stderr);
        cl_puts_text(stderr, cl_str(d, "message", ""));
        fputc('\n', stderr);
    } else if (!strcmp(event, "tool_confirmation")) {
        on_confirmation(s, d);
    } else if (!strcmp(event, "elicitation")) {
        on_elicitation(s, d);
    } else if (!strcmp(event, "error")) {
        spin_clear(s);
        if (!s->o->json) newline(s);
        fprintf(stderr, "%s: error: ", cl_prog(s->cl));
        cl_puts_text(stderr, cl_str(d, "error", data));
        fputc('\n', stderr);
        s->error_said = true;
    } else if (!strcmp(event, "message_complete")) {
        snprintf(s->stop, sizeof s->stop, "%s", cl_str(d, "stop_reason", "?"));
        s->complete = true;
    }
    json_decref(d);
    /* The server may keep the stream open after the reply (it does not): stop at its end. */
    return s->complete;
}

static int on_tick(void *ud)
{
    rstate *s = ud;
    int n = interrupts;
    if (n > s->handled) {
        s->handled = n;
        spin_clear(s);
        if (!s->cancel_sent) {
            /* After the terminal's "^C": a line of its own. */
            if (!s->o->json && !s->line_start)
                newline(s);
            else if (isatty(STDERR_FILENO))
                fputc('\n', stderr);
            fprintf(stderr, "%s: cancelling the reply (Ctrl-C again to stop waiting)\n",
                    cl_prog(s->cl));
            send_cancel(s);
        } else {
            s->abandoned = true;
            return 1;
        }
    }
    if (s->spinner && now_ms() - s->last_event_ms >= SPIN_AFTER_MS) {
        static const char *const frames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
        fprintf(stderr, "%s\b", frames[s->frame++ % (sizeof frames / sizeof *frames)]);
        fflush(stderr);
        s->spinning = true;
    }
    return 0;
}

reply_end reply_run(cl_client *cl, const char *sid, const char *text, const reply_opts *opts,
                    char *stop)
{
    rstate s = {.cl = cl, .sid = sid, .o = opts, .line_start = true};
    s.spinner = !opts->json && isatty(STDERR_FILENO);
    s.last_event_ms = now_ms();
    s.handled = interrupts;
    stop[0] = '\0';
    char *esc = cl_escape(sid);
    json_t *body = json_pack("{s:s, s:s}", "content", text, "role", "user");
    char *btext = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    char path[600];
    snprintf(path, sizeof path, "/api/sessions/%s/messages/stream", esc ? esc : "");
    free(esc);
    if (!btext) {
        fprintf(stderr, "%s: the message is not valid UTF-8 (or out of memory)\n", cl_prog(cl));
        return REPLY_FAILED;
    }
    int r = cl_stream(cl, path, btext, on_event, on_tick, &s);
    free(btext);
    /* A stream that broke before the reply ended (a proxy's timeout, a dropped connection) is
     * taken up where it broke, from the session's events after the last one seen: the reply goes
     * on on the server meanwhile. */
    for (int tries = 0; tries < RESUME_TRIES && (r == 0 || r == 1) && !s.complete &&
                        !s.error_said && !s.abandoned && s.last_id[0];
         tries++) {
        spin_clear(&s);
        fprintf(stderr, "%s: the connection dropped; taking the reply up again after event %s\n",
                cl_prog(cl), s.last_id);
        long until = now_ms() + (250L << (2 * tries)); /* 0.25 s, 1 s, 4 s */
        while (now_ms() < until && interrupts == s.handled)
            usleep(20000);
        if (interrupts != s.handled) break; /* Ctrl-C while waiting: the end below says so */
        esc = cl_escape(sid);
        snprintf(path, sizeof path, "/api/sessions/%s/events", esc ? esc : "");
        free(esc);
        r = cl_stream_from(cl, path, s.last_id, on_event, on_tick, &s);
    }
    spin_clear(&s);
    if (!opts->json) newline(&s);
    snprintf(stop, 32, "%s", s.stop);
    if (s.abandoned) {
        fprintf(stderr, "%s: stopped waiting for the reply\n", cl_prog(cl));
        return REPLY_ABANDONED;
    }
    if (r == 2) return REPLY_REFUSED;
    if (r == 1) return REPLY_FAILED;
    if (!s.complete) {
        if (!s.error_said)
            fprintf(stderr, "%s: the connection ended before the reply did\n", cl_prog(cl));
        return REPLY_FAILED;
    }
    if (!strcmp(s.stop, "end_turn")) return REPLY_END_TURN;
    if (!strcmp(s.stop, "cancelled"))
        fprintf(stderr, "%s: the reply was cancelled\n", cl_prog(cl));
    else if (!s.error_said || strcmp(s.stop, "error")) {
        fprintf(stderr, "%s: the reply stopped: ", cl_prog(cl));
        cl_puts_text(stderr, s.stop);
        fputc('\n', stderr);
    }
    return REPLY_STOPPED;
}
