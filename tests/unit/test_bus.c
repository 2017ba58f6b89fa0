/* Unit tests for agent/bus: sequence numbers, replay, gaps, and how streamed text chunks merge
 * for a reader that has fallen behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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

/* Large events: the ring keeps at most BUS_RING_BYTES of them, the oldest dropped (a reader
 * replaying from there meets a gap), the newest always kept. */
static void test_byte_bound(void **state)
{
    (void)state;
    bus *b = bus_new();
    size_t big = 1u << 20;
    char *data = malloc(big + 3);
    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'x', big);
    data[big + 1] = '"';
    data[big + 2] = '\0';
    uint64_t first = bus_next_seq(b);
    int n = (int)(3 * BUS_RING_BYTES / big);
    for (int i = 0; i < n; i++)
        bus_publish(b, "tool_progress", data);
    uint64_t seq;
    char *ev, *d;
    bus_sub *from_start = bus_subscribe(b, first, NULL, NULL);
    assert_int_equal(bus_poll(from_start, &seq, &ev, &d), BUS_GAP);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        bus_sub *s = bus_subscribe(b, first + (uint64_t)i, NULL, NULL);
        bus_read r = bus_poll(s, &seq, &ev, &d);
        if (r == BUS_EVENT) {
            kept++;
            assert_int_equal(seq, first + (uint64_t)i);
            free(ev);
            free(d);
        }
        bus_unsubscribe(s);
    }
    assert_true(kept >= 1 && (size_t)kept * big <= BUS_RING_BYTES);
    assert_true((size_t)(kept + 1) * big > BUS_RING_BYTES / 2); /* not all dropped either */
    bus_sub *last = bus_subscribe(b, first + (uint64_t)n - 1, NULL, NULL);
    assert_int_equal(bus_poll(last, &seq, &ev, &d), BUS_EVENT);
    free(ev);
    free(d);
    bus_unsubscribe(last);
    bus_unsubscribe(from_start);
    free(data);
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

/* An SSE writer's read: each event appended as its SSE text, under the lock, the name handed
 * back; merged chunks rendered; an event past the buffer's cap appends nothing and is still
 * read (the writer then says events were lost). */
static void test_next_sse(void **state)
{
    (void)state;
    bus *b = bus_new();
    bus_sub *s = bus_subscribe(b, 0, on_wake, NULL);
    uint64_t first = bus_publish(b, "message", "{\"a\":1}");
    bus_publish_chunk(b, "message_chunk", "text", "he", 2);
    bus_publish_chunk(b, "message_chunk", "text", "llo\n", 4);
    buf out;
    buf_init(&out, 1u << 20);
    char name[BUS_NAME_MAX];
    gd_err e = GD_EINVAL;
    assert_int_equal(bus_next_sse(s, &out, name, &e, false, NULL, NULL), BUS_EVENT);
    assert_int_equal(e, GD_OK);
    assert_string_equal(name, "message");
    char want[256];
    snprintf(want, sizeof want, "id: %llu\nevent: message\ndata: {\"a\":1}\n\n",
             (unsigned long long)first);
    assert_string_equal(out.data, want);
    buf_reset(&out);
    assert_int_equal(bus_next_sse(s, &out, name, &e, false, NULL, NULL), BUS_EVENT);
    assert_string_equal(name, "message_chunk");
    snprintf(want, sizeof want,
             "id: %llu\nevent: message_chunk\ndata: {\"type\":\"text\",\"text\":\"hello\\n\"}\n\n",
             (unsigned long long)(first + 1));
    assert_string_equal(out.data, want);
    /* nothing more: armed, woken by the next publish */
    wakes = 0;
    assert_int_equal(bus_next_sse(s, &out, name, &e, true, NULL, NULL), BUS_NONE);
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bus_publish(b, "large", big);
    bus_publish(b, "after", "{}");
    assert_int_equal(wakes, 1);
    buf small;
    buf_init(&small, 64);
    assert_int_equal(bus_next_sse(s, &small, name, &e, false, NULL, NULL), BUS_EVENT);
    assert_int_equal(e, GD_ETOOBIG);
    assert_string_equal(name, "large");
    assert_int_equal(small.len, 0); /* all or nothing */
    assert_int_equal(bus_next_sse(s, &small, name, &e, false, NULL, NULL), BUS_EVENT);
    assert_int_equal(e, GD_OK);
    assert_string_equal(name, "after");
    assert_non_null(strstr(small.data, "event: after\ndata: {}\n\n"));
    buf_free(&small);
    buf_free(&out);
    bus_unsubscribe(s);
    bus_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_sse),
        cmocka_unit_test(test_sequence_and_replay),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_chunks_merge_until_read),
        cmocka_unit_test(test_read_chunk_is_final),
        cmocka_unit_test(test_hold_wakes_once),
        cmocka_unit_test(test_merge_stops_at_64k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
