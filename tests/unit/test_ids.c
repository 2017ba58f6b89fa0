/* Unit tests for core/ids: UUIDs and tokens from libsodium. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ids.h"

static int init(void **state)
{
    return ids_init() == 0 ? 0 : -1;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_uuid4(const char *u)
{
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u[i], '-');
        else if (!is_lower_hex(u[i]))
            fail_msg("uuid %s: character %d is not lowercase hex", u, i);
    }
    assert_int_equal(u[14], '4'); /* version 4 */
    if (!strchr("89ab", u[19]))   /* RFC 4122 variant 10xx */
        fail_msg("uuid %s: variant nibble %c", u, u[19]);
    assert_true(ids_is_uuid(u));
}

static void test_uuid4_format(void **state)
{
    for (int i = 0; i < 1000; i++) {
        char u[UUID_STR_LEN];
        memset(u, 'Z', sizeof u);
        ids_uuid4(u);
        check_uuid4(u);
    }
}

static void test_uuid4_variant_nibbles_all_seen(void **state)
{
    /* Over many draws every allowed variant nibble shows up (and nothing else). */
    bool seen[4] = {false};
    for (int i = 0; i < 2000; i++) {
        char u[UUID_STR_LEN];
        ids_uuid4(u);
        seen[strchr("89ab", u[19]) - "89ab"] = true;
    }
    for (int i = 0; i < 4; i++)
        assert_true(seen[i]);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid4_unique(void **state)
{
    enum { N = 10000 };
    char(*u)[UUID_STR_LEN] = malloc(N * sizeof *u);
    assert_non_null(u);
    for (int i = 0; i < N; i++)
        ids_uuid4(u[i]);
    qsort(u, N, sizeof *u, cmp);
    for (int i = 1; i < N; i++)
        if (!strcmp(u[i - 1], u[i])) fail_msg("duplicate uuid %s", u[i]);
    free(u);
}

static void test_is_uuid(void **state)
{
    assert_true(ids_is_uuid("123e4567-e89b-42d3-a456-426614174000"));
    assert_true(ids_is_uuid("00000000-0000-0000-0000-000000000000"));
    assert_true(ids_is_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"));

    assert_false(ids_is_uuid(""));
    assert_false(ids_is_uuid("not-a-uuid"));
    assert_false(ids_is_uuid("123E4567-E89B-42D3-A456-426614174000"));  /* uppercase */
    assert_false(ids_is_uuid("123e4567-e89b-42d3-a456-42661417400"));   /* 35 chars */
    assert_false(ids_is_uuid("123e4567-e89b-42d3-a456-4266141740000")); /* 37 chars */
    assert_false(ids_is_uuid("123e4567e89b-42d3-a456-4266141740000"));  /* dash missing */
    assert_false(ids_is_uuid("123e4567-e89b-42d3-a456_426614174000"));  /* wrong separator */
    assert_false(ids_is_uuid("123e4567-e89b-42d3-a456-42661417400g"));  /* not hex */
    assert_false(ids_is_uuid("123e4567-e89b-42d3-a4566-42661417400"));  /* dash misplaced */
    assert_false(ids_is_uuid("{23e4567-e89b-42d3-a456-42661417400}"));
    assert_false(ids_is_uuid("../../../../../../../../etc/passwd.txt"));
}

static void test_token(void **state)
{
    static const char alphabet[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
    bool seen[256] = {false};
    for (int round = 0; round < 200; round++) {
        char t[33];
        memset(t, '#', sizeof t);
        ids_token(t, sizeof t);
        assert_int_equal(strlen(t), 32);
        for (int i = 0; i < 32; i++) {
            if (!strchr(alphabet, t[i]))
                fail_msg("token %s has a character outside the URL-safe alphabet", t);
            seen[(unsigned char)t[i]] = true;
        }
    }
    /* 6400 draws from a 62+ letter alphabet: digits, both cases all appear. */
    assert_true(seen['0'] && seen['9'] && seen['a'] && seen['z'] && seen['A'] && seen['Z']);

    char a[17], b[17];
    ids_token(a, sizeof a);
    ids_token(b, sizeof b);
    assert_string_not_equal(a, b);
}

static void test_token_small_sizes(void **state)
{
    char t[4] = "xyz";
    ids_token(t, 0); /* writes nothing */
    assert_string_equal(t, "xyz");
    ids_token(t, 1);
    assert_int_equal(t[0], '\0');
    assert_int_equal(t[1], 'y');
    ids_token(t, 2);
    assert_int_equal(strlen(t), 1);
    assert_int_equal(t[2], 'z');
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_request_id(void **state)
{
    enum { N = 20000 };
    static char ids[N][REQUEST_ID_LEN];
    for (int i = 0; i < N; i++) {
        ids_request_id(ids[i]);
        assert_int_equal(strlen(ids[i]), REQUEST_ID_LEN - 1);
        for (int j = 0; j < REQUEST_ID_LEN - 1; j++)
            if (!strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                        ids[i][j]))
                fail_msg("request id %s has a character outside [0-9a-zA-Z]", ids[i]);
    }
    qsort(ids, N, sizeof ids[0], cmp_str);
    for (int i = 1; i < N; i++)
        if (!strcmp(ids[i - 1], ids[i])) fail_msg("request id %s drawn twice", ids[i]);
}

/* Version 7: the format, the time it carries, and ids that only increase, across threads too. */
static void test_uuid7_format_and_time(void **state)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long before = (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char u[UUID_STR_LEN];
    ids_uuid7(u);
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long after = (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true(ids_is_uuid(u));
    assert_int_equal(u[14], '7');
    if (!strchr("89ab", u[19])) fail_msg("uuid %s: variant nibble %c", u, u[19]);
    char hex[13];
    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    unsigned long long ms = strtoull(hex, NULL, 16);
    /* the counter may borrow a millisecond or two ahead, never more in this test */
    if (ms < before || ms > after + 2)
        fail_msg("uuid %s: time %llu not in [%llu, %llu]", u, ms, before, after);
}

#define U7_PER_THREAD 20000
static void *make_uuid7s(void *arg)
{
    char(*out)[UUID_STR_LEN] = arg;
    for (int i = 0; i < U7_PER_THREAD; i++)
        ids_uuid7(out[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid7_increasing_and_unique(void **state)
{
    enum { T = 4 };
    char(*ids)[UUID_STR_LEN] = malloc((size_t)T * U7_PER_THREAD * UUID_STR_LEN);
    assert_non_null(ids);
    pthread_t th[T];
    for (int t = 0; t < T; t++)
        assert_int_equal(pthread_create(&th[t], NULL, make_uuid7s, ids + t * U7_PER_THREAD), 0);
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++)
        for (int i = 1; i < U7_PER_THREAD; i++)
            if (strcmp(ids[t * U7_PER_THREAD + i - 1], ids[t * U7_PER_THREAD + i]) >= 0)
                fail_msg("thread %d: %s then %s", t, ids[t * U7_PER_THREAD + i - 1],
                         ids[t * U7_PER_THREAD + i]);
    qsort(ids, (size_t)T * U7_PER_THREAD, UUID_STR_LEN, cmp_id);
    for (int i = 1; i < T * U7_PER_THREAD; i++)
        if (!strcmp(ids[i - 1], ids[i])) fail_msg("the same id twice: %s", ids[i]);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid4_format),
        cmocka_unit_test(test_uuid4_variant_nibbles_all_seen),
        cmocka_unit_test(test_uuid4_unique),
        cmocka_unit_test(test_is_uuid),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_token_small_sizes),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_uuid7_format_and_time),
        cmocka_unit_test(test_uuid7_increasing_and_unique),
    };
    return cmocka_run_group_tests_name("ids", tests, init, NULL);
}
