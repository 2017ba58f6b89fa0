/* Unit test for the reply's text cap (agent/turn.c, included): text past BUF_CAP_REPLY_TEXT is
 * neither kept nor streamed, and the reply ends with an error that says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/turn.c"

typedef struct {
    int chunks;      /* pieces streamed to clients */
    size_t streamed; /* their bytes */
    json_t *end_data;
} rec;

static void f_load(turn *t) {}
static void f_store(turn *t, turn_store_kind kind, const char *role, json_t *content, long in,
                    long out, char id[UUID_STR_LEN])
{
    snprintf(id, UUID_STR_LEN, "id-%d", (int)kind);
}
static bool f_stream(turn *t)
{
    return true;
}
static void f_cancel_stream(turn *t) {}
static bool f_call_tool(turn *t, const char *name, json_t *args)
{
    return true;
}
static void f_cancel_tool(turn *t) {}
static void f_chunk(turn *t, const char *kind, const char *s, size_t n)
{
    rec *r = t->owner;
    r->chunks++;
    r->streamed += n;
}
static void f_publish(turn *t, const char *event, json_t *data)
{
    json_decref(data);
}
static void f_end(turn *t, const char *event, json_t *data)
{
    rec *r = t->owner;
    json_decref(r->end_data);
    r->end_data = data;
}

static void f_update(turn *t, turn_store_kind kind, json_t *content, const char *id)
{
    (void)t, (void)kind, (void)content, (void)id;
}

static const turn_fx fx = {.load_history = f_load,
                           .store = f_store,
                           .update = f_update,
                           .stream = f_stream,
                           .cancel_stream = f_cancel_stream,
                           .call_tool = f_call_tool,
                           .cancel_tool = f_cancel_tool,
                           .chunk = f_chunk,
                           .publish = f_publish,
                           .end = f_end};

static void test_text_past_cap(void **state)
{
    rec r = {0};
    turn *t = turn_new(&fx, &r, "hello", 10, 100000);
    assert_non_null(t);
    turn_begin(t);
    turn_step(t, &(turn_ev){.kind = TURN_EV_HISTORY, .history = json_array()});
    turn_step(t, &(turn_ev){.kind = TURN_EV_STORED, .store = TURN_STORE_USER, .err = GD_OK});
    assert_int_equal(t->state, TURN_STREAMING);

    char *big = calloc(1, BUF_CAP_REPLY_TEXT);
    assert_non_null(big);
    turn_on_text(t, "Hi", 2);
    turn_on_text(t, big, BUF_CAP_REPLY_TEXT); /* 2 + cap: does not fit */
    turn_on_text(t, " there", 6);             /* would fit, but the reply is already cut */
    free(big);
    assert_int_equal(r.chunks, 1);
    assert_int_equal(r.streamed, 2);

    prov_result res = {0};
    snprintf(res.stop_reason, sizeof res.stop_reason, "end_turn");
    turn_step(t, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = &res});
    while (t->state == TURN_STORING_REPLY)
        turn_step(t, &(turn_ev){.kind = TURN_EV_STORED, .store = TURN_STORE_REPLY, .err = GD_OK});
    assert_int_equal(t->state, TURN_DONE);
    assert_non_null(r.end_data);
    const char *msg = json_string_value(json_object_get(r.end_data, "error"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "more than goosed keeps in one message"));
    turn_free(t);
    json_decref(r.end_data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_past_cap),
    };
    return cmocka_run_group_tests_name("turn_cap", tests, NULL, NULL);
}
