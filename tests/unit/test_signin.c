/* Unit tests for the server's sign-in waits (agent/signin.c): a return is taken once and only for
 * the state announced, a refusal and a cancel end the wait with why, a stop ends every wait and
 * refuses new ones; the local user's grants are kept by user and server. A waiter runs on a
 * thread of its own, as on a sign-in worker. The flow end to end: tests/api/mcp_oauth_server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/signin.h"

typedef struct {
    signins *s;
    const char *state;
    gd_err e;
    char *code, *iss;
    char err[300];
} waiting;

static void *wait_thread(void *ud)
{
    waiting *w = ud;
    w->e = signin_wait(w->s, w->state, &w->code, &w->iss, w->err, sizeof w->err);
    return NULL;
}

/* Announces state, then starts its waiter. */
static pthread_t start(waiting *w, signins *s, const char *state)
{
    *w = (waiting){.s = s, .state = state, .e = GD_EINVAL};
    assert_int_equal(signin_add(s, state, ""), GD_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_thread, w), 0);
    return t;
}

static void test_code_taken_once(void **state)
{
    (void)state;
    signins *s = signins_new();
    waiting w;
    pthread_t t = start(&w, s, "state-1");
    assert_int_equal(signin_add(s, "state-1", ""), GD_ECONFLICT); /* a state is used once */
    assert_int_equal(signin_deliver(s, "another", "code-x", NULL, NULL, NULL), GD_ENOTFOUND);
    assert_int_equal(signin_deliver(s, NULL, "code-x", NULL, NULL, NULL), GD_ENOTFOUND);
    /* a browser whose user is known (a proxy names them) and is not the owner: refused, kept */
    assert_int_equal(signin_deliver(s, "state-1", "stolen", NULL, NULL, "someone-else"),
                     GD_EDENIED);
    assert_int_equal(signin_deliver(s, "state-1", "the-code", "https://as.example", NULL, ""),
                     GD_OK);
    assert_int_equal(signin_deliver(s, "state-1", "again", NULL, NULL, NULL),
                     GD_ENOTFOUND); /* replayed */
    pthread_join(t, NULL);
    assert_int_equal(w.e, GD_OK);
    assert_string_equal(w.code, "the-code");
    assert_string_equal(w.iss, "https://as.example"); /* the issuer the redirect named */
    free(w.code);
    free(w.iss);
    /* gone once taken */
    assert_int_equal(signin_deliver(s, "state-1", "later", NULL, NULL, NULL), GD_ENOTFOUND);
    signins_free(s);
}

static void test_refused_and_cancelled(void **state)
{
    (void)state;
    signins *s = signins_new();
    waiting w;
    pthread_t t = start(&w, s, "state-2");
    assert_int_equal(signin_deliver(s, "state-2", NULL, NULL, "access_denied: no\nthanks", NULL),
                     GD_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.e, GD_EDENIED);
    assert_null(w.code);
    /* the authorization server's words, kept to printable ASCII */
    assert_string_equal(w.err,
                        "the authorization server refused the sign-in: access_denied: no?thanks");

    t = start(&w, s, "state-3");
    signin_cancel(s, "state-3", GD_EDENIED, "the user declined to sign in");
    signin_cancel(s, "unknown", GD_EDENIED, "nothing waits"); /* no effect */
    pthread_join(t, NULL);
    assert_int_equal(w.e, GD_EDENIED);
    assert_string_equal(w.err, "the user declined to sign in");
    signins_free(s);
}

static void test_cancel_before_announced(void **state)
{
    (void)state;
    signins *s = signins_new();
    /* the extension closed just as its flow began: the announcement that follows is refused */
    signin_cancel(s, "early", GD_ECANCELLED, "the extension was closed");
    assert_int_equal(signin_add(s, "early", ""), GD_ECANCELLED);
    assert_int_equal(signin_add(s, "early", ""), GD_OK); /* once */
    /* another reason for a state nobody waits for leaves nothing behind */
    signin_cancel(s, "declined", GD_EDENIED, "the user declined to sign in");
    assert_int_equal(signin_add(s, "declined", ""), GD_OK);
    signins_shutdown(s);
    signins_free(s);
}

static void test_shutdown(void **state)
{
    (void)state;
    signins *s = signins_new();
    waiting a, b;
    pthread_t ta = start(&a, s, "state-a");
    pthread_t tb = start(&b, s, "state-b");
    signins_shutdown(s);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.e, GD_ESHUTDOWN);
    assert_int_equal(b.e, GD_ESHUTDOWN);
    assert_string_equal(a.err, "the server is stopping");
    assert_int_equal(signin_add(s, "state-c", ""), GD_ESHUTDOWN);
    assert_int_equal(signin_add(s, "", ""), GD_EINVAL);
    signins_free(s);
}

static void test_per_user_bound(void **state)
{
    (void)state;
    signins *s = signins_new();
    char st[SIGNIN_PER_USER + 1][16];
    for (int i = 0; i < SIGNIN_PER_USER; i++) {
        snprintf(st[i], sizeof st[i], "ann-%d", i);
        assert_int_equal(signin_add(s, st[i], "ann"), GD_OK);
    }
    assert_int_equal(signin_add(s, "ann-more", "ann"), GD_EBUSY); /* hers are all taken */
    assert_int_equal(signin_add(s, "bob-1", "bob"), GD_OK);       /* another user's are not */
    assert_int_equal(signin_deliver(s, st[0], "code", NULL, NULL, NULL), GD_OK);
    assert_int_equal(signin_add(s, "ann-more", "ann"), GD_OK); /* one of hers has ended */
    signins_shutdown(s);
    signins_free(s); /* frees the waits nobody took */
}

static void test_grants_by_user_and_server(void **state)
{
    (void)state;
    signins *s = signins_new();
    assert_null(signin_grant_get(s, "", "http://a.example/mcp"));
    signin_grant_put(s, "", "http://a.example/mcp", "{\"v\":1}");
    signin_grant_put(s, "", "http://b.example/mcp", "{\"v\":2}");
    signin_grant_put(s, "", "http://a.example/mcp", "{\"v\":3}"); /* replaces */
    char *g = signin_grant_get(s, "", "http://a.example/mcp");
    assert_string_equal(g, "{\"v\":3}");
    free(g);
    g = signin_grant_get(s, "", "http://b.example/mcp");
    assert_string_equal(g, "{\"v\":2}");
    free(g);
    assert_null(signin_grant_get(s, "", "http://a.example/mcp/other"));
    signins_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_taken_once), cmocka_unit_test(test_refused_and_cancelled),
        cmocka_unit_test(test_shutdown),        cmocka_unit_test(test_cancel_before_announced),
        cmocka_unit_test(test_per_user_bound),  cmocka_unit_test(test_grants_by_user_and_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
