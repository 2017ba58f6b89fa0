/* GET /oauth/callback: where an authorization server sends the user's browser back after an
 * extension's sign-in (agent/signin.h). Public: a browser's redirect carries no goosed token;
 * the state names the one sign-in that waits for it. The page says only whether it worked:
 * nothing of the request is written back into it. */
#include "api/api.h"
#include "auth/auth.h"

#include <string.h>

static const char page_ok[] = "<!doctype html><meta charset=utf-8><title>goosed</title>"
                              "<p>Signed in. You can close this page and go back to goose.</p>\n";
static const char page_refused[] = "<!doctype html><meta charset=utf-8><title>goosed</title>"
                                   "<p>The sign-in was refused. goose shows why.</p>\n";
static const char page_theirs[] =
    "<!doctype html><meta charset=utf-8><title>goosed</title>"
    "<p>This sign-in was started by another user: it is theirs to finish.</p>\n";
static const char page_unknown[] =
    "<!doctype html><meta charset=utf-8><title>goosed</title>"
    "<p>No sign-in waits for this page: it was used already, has expired, or was never "
    "started here.</p>\n";

void api_oauth_callback(http_req *r)
{
    const char *state = http_query(r, "state");
    const char *code = http_query(r, "code");
    const char *error = http_query(r, "error");
    const char *desc = http_query(r, "error_description");
    char why[300];
    if (error) snprintf(why, sizeof why, "%s%s%s", error, desc ? ": " : "", desc ? desc : "");
    /* behind a proxy that names the browser's user, only that sign-in's owner may finish it */
    const auth_user *u = http_user(r);
    gd_err e = state && *state ? signin_deliver(agent_signins(((app *)http_app(r))->agent), state,
                                                code, http_query(r, "iss"), error ? why : NULL,
                                                u->id[0] ? u->id : NULL)
                               : GD_ENOTFOUND;
    http_add_header(r, "Cache-Control", "no-store");
    http_add_header(r, "Content-Security-Policy", "default-src 'none'");
    http_add_header(r, "Referrer-Policy", "no-referrer");
    const char *page = e == GD_EDENIED  ? page_theirs
                       : e              ? page_unknown
                       : error || !code ? page_refused
                                        : page_ok;
    http_reply_static(r, e ? 400 : 200, "text/html; charset=utf-8", page, strlen(page));
}
