/* Unit tests for agent/bus: sequence numbers, replay, gaps, and how streamed text chunks merge
 * for a reader that has fallen behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/bus.h"

static int wakes;
static void on_wake(void *ud)
{
    (void)ud;
    wakes++;
}

/* The next event: asserts its name and data; returns its sequence number. */
static uint64_t expect(bus_sub *s, const char *event, const char *data)
{
    uint64_t seq;
    char *ev, *d;
    assert_int_equal(bus_poll(s, &seq, &ev, &d), BUS_EVENT);
    assert_string_equal(ev, event);
    assert_string_equal(d, data);
    free(ev);
    free(d);
    return seq;
}

static void expect_none(bus_sub *s)
{
    uint64_t seq;
    char *ev, *d;
    assert_int_equal(bus_poll(s, &seq, &ev, &d), BUS_NONE);
}

/* A subscriber that has read everything and waits: the next publish wakes it (on_wake). */
static bus_sub *armed_subscriber(bus *b)
{
    bus_sub *s = bus_subscribe(b, 0, on_wake, NULL);
    uint64_t seq;
    char *ev, *d;
    assert_int_equal(bus_next(s, &seq, &ev, &d, NULL, NULL), BUS_NONE);
    return s;
}

static void test_sequence_and_replay(void **state)
{
    (void)state;
    bus *b = bus_new();
    uint64_t first = bus_next_seq(b);
    assert_true(first > 1000000000000000ull); /* microseconds since 1970 */
    assert_int_equal(bus_publish(b, "a", "{}"), first);
    assert_int_equal(bus_publish(b, "b", "{\"x\":1}"), first + 1);
    bus_sub *late = bus_subscribe(b, first, NULL, NULL); /* Last-Event-ID replay */
    assert_int_equal(expect(late, "a", "{}"), first);
    assert_int_equal(expect(late, "b", "{\"x\":1}"), first + 1);
    expect_none(late);
    bus_sub *now = bus_subscribe(b, 0, NULL, NULL); /* from the next event */
    expect_none(now);
    bus_unsubscribe(late);
    bus_unsubscribe(now);
    bus_free(b);
}

static void test_gap(void **state)
{
    (void)state;
    bus *b = bus_new();
    bus_sub *s = bus_subscribe(b, 0, NULL, NULL);
    for (int i = 0; i < BUS_RING + 5; i++)
        bus_publish(b, "e", "{}");
    uint64_t seq;
    char *ev, *d;
    assert_int_equal(bus_poll(s, &seq, &ev, &d), BUS_GAP);
    expect_none(s); /* the cursor moved to the newest */
    bus_unsubscribe(s);
    bus_free(b);
}

static void test_chunks_merge_until_read(void **state)
{
    (void)state;
    bus *b = bus_new();
    wakes = 0;
    bus_sub *s = armed_subscriber(b);

    uint64_t a = bus_publish_chunk(b, "message_chunk", "text", "Hel", 3);
    uint64_t a2 = bus_publish_chunk(b, "message_chunk", "text", "lo \"w\"", 6);
    assert_int_equal(a, a2); /* not read yet: merged */
    assert_int_equal(wakes, 1);
    assert_int_equal(expect(s, "message_chunk", "{\"type\":\"text\",\"text\":\"Hello \\\"w\\\"\"}"),
                     a);

    /* Read: the next piece is a new event, and what was read does not change. */
    uint64_t c = bus_publish_chunk(b, "message_chunk", "text", "!", 1);
    assert_int_equal(c, a + 1);
    /* Another kind, or another event in between, starts a new event. */
    uint64_t t = bus_publish_chunk(b, "message_chunk", "thinking", "hmm", 3);
    assert_int_equal(t, c + 1);
    bus_publish(b, "tool_call", "{\"id\":\"1\"}");
    uint64_t after = bus_publish_chunk(b, "message_chunk", "thinking", "more", 4);
    assert_int_equal(after, t + 2);
    expect(s, "message_chunk", "{\"type\":\"text\",\"text\":\"!\"}");
    expect(s, "message_chunk", "{\"type\":\"thinking\",\"text\":\"hmm\"}");
    expect(s, "tool_call", "{\"id\":\"1\"}");
    expect(s, "message_chunk", "{\"type\":\"thinking\",\"text\":\"more\"}");
    expect_none(s);

    /* A replay from the start sees the merged chunk whole. */
    bus_sub *r = bus_subscribe(b, a, NULL, NULL);
    expect(r, "message_chunk", "{\"type\":\"text\",\"text\":\"Hello \\\"w\\\"\"}");
    bus_unsubscribe(r);
    bus_unsubscribe(s);
    bus_free(b);
}

static void test_hold_wakes_once(void **state)
{
    (void)state;
    bus *b = bus_new();
    wakes = 0;
    bus_sub *s = armed_subscriber(b);
    bus_hold(b);
    bus_publish_chunk(b, "message_chunk", "text", "a", 1);
    bus_publish(b, "tool_call", "{}");
    bus_publish_chunk(b, "message_chunk", "text", "b", 1);
    assert_int_equal(wakes, 0);
    bus_release(b);
    assert_int_equal(wakes, 1);
    expect(s, "message_chunk", "{\"type\":\"text\",\"text\":\"a\"}");
    expect(s, "tool_call", "{}");
    expect(s, "message_chunk", "{\"type\":\"text\",\"text\":\"b\"}");
    bus_hold(b);
    bus_release(b); /* nothing published: nobody woken */
    assert_int_equal(wakes, 1);
    bus_unsubscribe(s);
    bus_free(b);
}

/* A chunk a reader saw stays as it was, even once that reader has gone. */
static void test_read_chunk_is_final(void **state)
{
    (void)state;
    bus *b = bus_new();
    bus_sub *s = bus_subscribe(b, 0, NULL, NULL);
    uint64_t a = bus_publish_chunk(b, "message_chunk", "text", "one", 3);
    expect(s, "message_chunk", "{\"type\":\"text\",\"text\":\"one\"}");
    bus_unsubscribe(s);
    assert_int_equal(bus_publish_chunk(b, "message_chunk", "text", " two", 4), a + 1);
    bus_sub *r = bus_subscribe(b, a, NULL, NULL);
    expect(r, "message_chunk", "{\"type\":\"text\",\"text\":\"one\"}");
    expect(r, "message_chunk", "{\"type\":\"text\",\"text\":\" two\"}");
    bus_unsubscribe(r);
    bus_free(b);
}

static void test_merge_stops_at_64k(void **state)
{
    (void)state;
    bus *b = bus_new();
    char piece[1024];
    memset(piece, 'x', sizeof piece);
    uint64_t first = bus_publish_chunk(b, "message_chunk", "text", piece, sizeof piece);
    uint64_t last = first;
    for (int i = 1; i < 200; i++) /* 200 KiB with no reader */
        last = bus_publish_chunk(b, "message_chunk", "text", piece, sizeof piece);
    assert_int_equal(last, first + 3); /* 64 + 64 + 64 + 8 pieces */
    bus_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence_and_replay),     cmocka_unit_test(test_gap),
        cmocka_unit_test(test_chunks_merge_until_read), cmocka_unit_test(test_read_chunk_is_final),
        cmocka_unit_test(test_hold_wakes_once),         cmocka_unit_test(test_merge_stops_at_64k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
