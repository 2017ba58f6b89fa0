/* cli/lineedit: the chat's line reader: libedit on a terminal, getline elsewhere. libedit reads
 * through le_getc, so that Ctrl-C (SIGINT, whose handler interrupts reads: reply_signals) ends
 * the line being typed instead of being read again, and UTF-8 is decoded here. */
#include "cli/lineedit.h"

#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#define HISTORY_SIZE 1000

struct line_editor {
    FILE *out;
    EditLine *el; /* NULL: plain lines */
    History *h;
    char *history; /* the file, or NULL */
    const char *prompt;
    bool interrupted;
    char *line; /* the last line read */
    size_t cap;
};

static char *le_prompt(EditLine *el)
{
    line_editor *e = NULL;
    el_get(el, EL_CLIENTDATA, &e);
    return (char *)(e && e->prompt ? e->prompt : "");
}

/* libedit's EL_GETCFN: one character from stdin (1), the end of input (0), or -1 for an error or
 * an interrupt (Ctrl-C: the only signal whose handler interrupts a read here). */
static int le_getc(EditLine *el, wchar_t *wc)
{
    line_editor *e = NULL;
    el_get(el, EL_CLIENTDATA, &e);
    char b[MB_LEN_MAX];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, b + n, 1);
        if (r < 0 && errno == EINTR) {
            if (e) e->interrupted = true;
            return -1;
        }
        if (r <= 0) return r == 0 && n == 0 ? 0 : -1;
        n++;
        mbstate_t st;
        memset(&st, 0, sizeof st);
        size_t k = mbrtowc(wc, b, n, &st);
        if (k == (size_t)-2 && n < sizeof b) continue; /* more of the character to come */
        if (k == (size_t)-1 || k == (size_t)-2) *wc = (wchar_t)(unsigned char)b[0];
        return 1;
    }
}

bool le_history_path(char *out, size_t outlen)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n = state && state[0] == '/' ? snprintf(out, outlen, "%s/goose/chat_history", state)
            : home && home[0] ? snprintf(out, outlen, "%s/.local/state/goose/chat_history", home)
                              : -1;
    return n > 0 && (size_t)n < outlen;
}

/* Makes the directories above path (0700 for the ones it makes). */
static void make_parents(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
}

line_editor *le_open(FILE *out, const char *path)
{
    line_editor *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->out = out;
    if (!isatty(STDIN_FILENO) || !isatty(fileno(out))) return e;
    setlocale(LC_CTYPE, ""); /* the terminal's characters, UTF-8 included */
    if (path && !(e->history = strdup(path))) {
        free(e);
        return NULL;
    }
    e->el = el_init("goose", stdin, out, stderr);
    e->h = e->el ? history_init() : NULL;
    if (!e->h) { /* no editor: plain lines */
        if (e->el) el_end(e->el);
        e->el = NULL;
        return e;
    }
    HistEvent ev;
    history(e->h, &ev, H_SETSIZE, HISTORY_SIZE);
    history(e->h, &ev, H_SETUNIQUE, 1);
    if (e->history) history(e->h, &ev, H_LOAD, e->history); /* none yet is fine */
    el_set(e->el, EL_CLIENTDATA, e);
    el_set(e->el, EL_EDITOR, "emacs");
    el_set(e->el, EL_PROMPT, le_prompt);
    el_set(e->el, EL_GETCFN, le_getc);
    el_set(e->el, EL_HIST, history, e->h);
    el_set(e->el, EL_BIND, "^R", "em-inc-search-prev", NULL);
    el_source(e->el, NULL); /* the user's ~/.editrc, as other libedit programs read it */
    return e;
}

const char *le_read(line_editor *e, const char *prompt, bool *interrupted)
{
    *interrupted = false;
    if (!e->el) {
        fputs(prompt, e->out);
        fflush(e->out);
        errno = 0;
        ssize_t n = getline(&e->line, &e->cap, stdin);
        if (n < 0) {
            *interrupted = !feof(stdin) && errno == EINTR;
            clearerr(stdin);
            return NULL;
        }
        while (n > 0 && (e->line[n - 1] == '\n' || e->line[n - 1] == '\r'))
            e->line[--n] = '\0';
        return e->line;
    }
    e->prompt = prompt;
    e->interrupted = false;
    el_resize(e->el); /* the terminal may have changed size since the last line */
    int n = 0;
    const char *got = el_gets(e->el, &n);
    if (!got || n <= 0) {
        *interrupted = e->interrupted;
        /* the line typed so far stays on the screen; the next prompt starts below it */
        if (e->interrupted) fputc('\n', e->out);
        return NULL;
    }
    size_t len = (size_t)n;
    while (len > 0 && (got[len - 1] == '\n' || got[len - 1] == '\r'))
        len--;
    if (len + 1 > e->cap) {
        char *grown = realloc(e->line, len + 1);
        if (!grown) return NULL;
        e->line = grown;
        e->cap = len + 1;
    }
    memcpy(e->line, got, len);
    e->line[len] = '\0';
    return e->line;
}

/* Writes the history to its file through a new file of mode 0600 renamed over it (what the user
 * typed is theirs alone; an interrupted save leaves the earlier history whole). */
static void save(line_editor *e)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.%ld", e->history, (long)getpid()) >= (int)sizeof tmp) return;
    make_parents(e->history);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        unlink(tmp);
        return;
    }
    HistEvent ev;
    bool ok = history(e->h, &ev, H_SAVE_FP, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, e->history) < 0) unlink(tmp);
}

void le_remember(line_editor *e, const char *message)
{
    if (!e->el || !message[0] || message[0] == ' ') return;
    HistEvent ev;
    for (const char *p = message; *p;) {
        size_t n = strcspn(p, "\n");
        if (n) {
            char *one = strndup(p, n);
            if (one) history(e->h, &ev, H_ENTER, one);
            free(one);
        }
        p += n + (p[n] == '\n');
    }
    if (e->history) save(e);
}

void le_close(line_editor *e)
{
    if (!e) return;
    if (e->h) history_end(e->h);
    if (e->el) el_end(e->el);
    free(e->history);
    free(e->line);
    free(e);
}
