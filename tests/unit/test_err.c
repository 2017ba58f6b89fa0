/* Unit tests for core/err: every code has its own message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"

static void test_strerror(void **state)
{
    assert_string_equal(gd_strerror(GD_OK), "ok");
    assert_string_equal(gd_strerror(GD_ETOOBIG), "too large");
    assert_string_equal(gd_strerror(GD_ESTORE), "storage unavailable");
    /* Values are fixed: they are never renumbered. */
    assert_int_equal(GD_OK, 0);
    assert_int_equal(GD_AGAIN, 1);
    assert_int_equal(GD_ECONFLICT, 8);
    assert_int_equal(GD_ECANCELLED, 14);
    /* Every code has a distinct, non-empty message; anything else is "unknown error". */
    for (int i = GD_OK; i <= GD_ERR_LAST; i++) {
        const char *m = gd_strerror((gd_err)i);
        assert_non_null(m);
        assert_true(*m);
        assert_string_not_equal(m, "unknown error");
        for (int j = GD_OK; j < i; j++)
            assert_string_not_equal(m, gd_strerror((gd_err)j));
    }
    assert_string_equal(gd_strerror((gd_err)99), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
