/* Unit tests for core/jtext: a jansson value's compact text, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes, and its size without writing it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/jtext.h"

/* jtext, jtext_append and jtext_size all agree with jansson on v. */
static void check_as_jansson(json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(want);
    size_t len = 0;
    char *got = jtext(v, &len);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(jtext_size(v), strlen(want));
    buf b;
    buf_init(&b, 1u << 20);
    assert_int_equal(buf_puts(&b, "x"), GD_OK);
    assert_int_equal(jtext_append(&b, v), GD_OK);
    assert_string_equal(b.data + 1, want);
    buf_free(&b);
    free(got);
    free(want);
}

static void test_scalars(void **state)
{
    (void)state;
    json_t *vs[] = {json_null(),
                    json_true(),
                    json_false(),
                    json_integer(0),
                    json_integer(-1),
                    json_integer(INT64_MAX),
                    json_integer(INT64_MIN),
                    json_string(""),
                    json_string("plain"),
                    json_string("quote \" backslash \\ slash / tab \t"),
                    json_string("\x01\x1f\n\r\b\f é ☃ 😀 \xe2\x80\xa8")};
    for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
        check_as_jansson(vs[i]);
        json_decref(vs[i]);
    }
    assert_null(jtext(NULL, NULL));
}

static void test_reals(void **state)
{
    (void)state;
    double ds[] = {0.0,
                   -0.0,
                   1.0,
                   -2.5,
                   0.1,
                   1e300,
                   1e-300,
                   123456789012345678.0,
                   1e21,
                   1e-7,
                   3.141592653589793,
                   5e-324,
                   1.7976931348623157e308,
                   100.0,
                   1e100};
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
        json_t *r = json_real(ds[i]);
        check_as_jansson(r);
        json_decref(r);
    }
}

static void test_containers_keep_insertion_order(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s, s:i, s:[i, s, {}, []], s:{s:n, s:b}, s:f}", "zeta", "z", "alpha",
                          1, "list", 2, "two", "nested", "b", "t", 1, "real", 0.5);
    assert_non_null(o);
    check_as_jansson(o);
    char *got = jtext(o, NULL);
    assert_string_equal(got, "{\"zeta\":\"z\",\"alpha\":1,\"list\":[2,\"two\",{},[]],"
                             "\"nested\":{\"b\":null,\"t\":true},\"real\":0.5}");
    free(got);
    json_decref(o);
    json_t *empty[] = {json_object(), json_array()};
    for (int i = 0; i < 2; i++) {
        check_as_jansson(empty[i]);
        json_decref(empty[i]);
    }
}

/* A random value of depth at most d: every type, keys and strings with escapes and UTF-8. */
static json_t *random_value(unsigned *seed, int d)
{
    static const char *pieces[] = {"a", "\"", "\\", "\n", "\x02", "é", "😀", " ", "/", "\t", "key"};
    int kind = rand_r(seed) % (d > 0 ? 8 : 6);
    char s[64] = "";
    for (int i = rand_r(seed) % 6; i > 0; i--)
        strcat(s, pieces[rand_r(seed) % (sizeof pieces / sizeof *pieces)]);
    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(rand_r(seed) % 2);
    case 2:
        return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) % 2 ? -1 : 1) * 977);
    case 3:
        return json_real((double)rand_r(seed) / ((rand_r(seed) % 1000) + 1) *
                         pow(10, rand_r(seed) % 40 - 20));
    case 4:
    case 5:
        return json_string(s);
    case 6: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 5; i > 0; i--)
            json_array_append_new(a, random_value(seed, d - 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = rand_r(seed) % 5; i > 0; i--) {
            char k[80];
            snprintf(k, sizeof k, "%s%d", s, i);
            json_object_set_new(o, k, random_value(seed, d - 1));
        }
        return o;
    }
    }
}

static void test_random_trees(void **state)
{
    (void)state;
    unsigned seed = 11;
    for (int i = 0; i < 2000; i++) {
        json_t *v = random_value(&seed, 5);
        assert_non_null(v);
        check_as_jansson(v);
        json_decref(v);
    }
}

/* A capped buf: the append fails with GD_ETOOBIG and leaves a prefix. */
static void test_cap(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s}", "k", "a long enough value");
    buf b;
    buf_init(&b, 10);
    assert_int_equal(jtext_append(&b, o), GD_ETOOBIG);
    assert_true(b.len <= 10);
    assert_memory_equal(b.data, "{\"k\":\"a long", b.len);
    buf_free(&b);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_reals),
        cmocka_unit_test(test_containers_keep_insertion_order),
        cmocka_unit_test(test_random_trees),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests_name("jtext", tests, NULL, NULL);
}
