/* cli/user: `goosed user`, the users of a server with authentication (auth/auth.h). It works on
 * the store goosed uses (goosed.db in the data directory), also while goosed runs. A token is
 * printed once, when made; only its hash is stored. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/log.h"
#include "store/store.h"

static const char usage[] =
    "usage: goosed user add NAME [--admin]\n"
    "       goosed user list\n"
    "       goosed user remove NAME\n"
    "       goosed user token NAME\n"
    "\n"
    "The users of goosed, each with a token of their own. Clients send it as\n"
    "  Authorization: Bearer <token>\n"
    "Once a user exists, every route but /status needs authentication.\n"
    "\n"
    "  add NAME     makes a user and prints their token (once: only a hash is kept);\n"
    "               --admin lets them change the configuration, providers and extensions\n"
    "  list         prints each user: name, admin or not, whether they have a token, created\n"
    "  remove NAME  removes the user (their sessions stay, reachable by no one)\n"
    "  token NAME   makes a new token for the user and prints it; the old one stops working\n"
    "\n"
    "NAME: 1 to 64 printable ASCII characters, no spaces. The store is the one goosed uses\n"
    "($XDG_DATA_HOME/goose/sessions/goosed.db).\n"
    "\n"
    "Exit status: 0 done, 1 the store failed or no such user, 2 a usage error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "goosed user: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int store_failed(const char *what, gd_err e, const char *name)
{
    if (e == GD_ENOTFOUND)
        fprintf(stderr, "goosed user: no user named '%s'\n", name);
    else if (e == GD_ECONFLICT)
        fprintf(stderr, "goosed user: a user named '%s' exists already\n", name);
    else
        fprintf(stderr, "goosed user: cannot %s: %s\n", what, store_errmsg());
    return 1;
}

static int cmd_list(store *st)
{
    store_user *list;
    size_t n;
    gd_err e = st->ops->user_list(st, &list, &n);
    if (e) return store_failed("list the users", e, "");
    for (size_t i = 0; i < n; i++) {
        char when[RFC3339_LEN];
        clock_rfc3339(list[i].created_at, when);
        printf("%s\t%s\t%s\t%s\n", list[i].name, list[i].admin ? "admin" : "user",
               list[i].has_token ? "token" : "proxy", when);
    }
    free(list);
    return 0;
}

int cli_user(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    const char *name = NULL;
    bool admin = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--admin") && !strcmp(cmd, "add"))
            admin = true;
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return usage_error("unknown option \"%s\"", argv[i]);
        else if (!name)
            name = argv[i];
        else
            return usage_error("unexpected argument \"%s\"", argv[i]);
    }
    bool list = !strcmp(cmd, "list");
    if (!list && strcmp(cmd, "add") && strcmp(cmd, "remove") && strcmp(cmd, "token"))
        return usage_error("unknown command \"%s\"", cmd);
    if (list && name) return usage_error("unexpected argument \"%s\"", name);
    if (!list && !name) return usage_error("%s needs a NAME", cmd);
    if (name && !auth_name_valid(name))
        return usage_error("\"%s\" is not a user name: 1 to 64 printable ASCII characters, "
                           "no spaces",
                           name);

    static config cfg;
    cfg_action action;
    char err[1024];
    char *none[] = {argv[0], NULL};
    if (config_load(&cfg, 1, none, &action, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goosed user: %s\n", err);
        return 2;
    }
    log_configure("warn", err, sizeof err); /* the store's progress is not this command's output */
    if (ids_init() != 0) {
        fprintf(stderr, "goosed user: cannot initialise the random number generator\n");
        return 1;
    }
    store *st = store_sqlite_open(cfg.data_dir, 0);
    if (!st) {
        fprintf(stderr, "goosed user: out of memory\n");
        return 1;
    }
    int rc = 0;
    char token[AUTH_TOKEN_LEN];
    unsigned char hash[STORE_TOKEN_HASH_LEN];
    gd_err e = GD_OK;
    if (list) {
        rc = cmd_list(st);
    } else if (!strcmp(cmd, "remove")) {
        e = st->ops->user_remove(st, name);
        if (e)
            rc = store_failed("remove the user", e, name);
        else
            fprintf(stderr, "goosed user: removed %s\n", name);
    } else {
        auth_token_new(token, hash);
        if (!strcmp(cmd, "add")) {
            store_user u = {.admin = admin};
            snprintf(u.name, sizeof u.name, "%s", name);
            e = st->ops->user_add(st, &u, hash);
        } else {
            e = st->ops->user_set_token(st, name, hash);
        }
        if (e) {
            rc = store_failed(!strcmp(cmd, "add") ? "add the user" : "set the token", e, name);
        } else {
            /* The one time the token is shown: on stdout alone, for scripts. */
            printf("%s\n", token);
            fprintf(stderr,
                    "goosed user: %s %s%s; the token above is shown only now (clients send "
                    "Authorization: Bearer <token>)\n",
                    !strcmp(cmd, "add") ? "added" : "new token for", name, admin ? " (admin)" : "");
        }
        memset(token, 0, sizeof token);
    }
    store_close(st);
    return rc;
}
