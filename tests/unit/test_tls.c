/* Unit tests for http/tls: the fingerprint's format, a made pair passing the checks with the
 * names it should have, and the checks' refusals (a key of another pair, swapped, not PEM). The
 * black-box side (files, the served certificate, restarts) is tests/api/tls.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/tls.c"

static const struct file_ref CERT = {"tls_cert", "/c.pem"}, KEY = {"tls_key", "/k.pem"};

static void test_fingerprint_format(void **st)
{
    unsigned char raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)(i * 8 + 10);
    char out[TLS_FINGERPRINT_LEN];
    hex_fingerprint(raw, sizeof raw, out);
    assert_int_equal(strlen(out), 32 * 3 - 1);
    assert_true(!strncmp(out, "0A:12:1A:", 9));
    assert_true(!strcmp(out + strlen(out) - 3, ":02")); /* 31*8+10 = 258 -> 0x02 */
}

static void test_made_pair_checks(void **st)
{
    char *cert = NULL, *key = NULL, err[512] = "";
    assert_int_equal(make_pair("goose.example.com", &cert, &key, err, sizeof err), GD_OK);
    struct cert_info info = {0};
    assert_int_equal(check_pair(cert, key, CERT, KEY, "goose.example.com", &info, err, sizeof err),
                     GD_OK);
    assert_true(info.names_host);
    assert_int_equal(strlen(info.fingerprint), 32 * 3 - 1);
    assert_true(info.not_after - info.not_before > 800L * 86400);
    /* the loopback names are always there; another host is not */
    assert_int_equal(check_pair(cert, key, CERT, KEY, "localhost", &info, err, sizeof err), GD_OK);
    assert_true(info.names_host);
    assert_int_equal(check_pair(cert, key, CERT, KEY, "127.0.0.1", &info, err, sizeof err), GD_OK);
    assert_true(info.names_host);
    assert_int_equal(check_pair(cert, key, CERT, KEY, "other.example", &info, err, sizeof err),
                     GD_OK);
    assert_false(info.names_host);

    /* a key of another pair */
    char *cert2 = NULL, *key2 = NULL;
    assert_int_equal(make_pair("0.0.0.0", &cert2, &key2, err, sizeof err), GD_OK);
    assert_int_equal(check_pair(cert, key2, CERT, KEY, "localhost", &info, err, sizeof err),
                     GD_EINVAL);
    assert_non_null(strstr(err, "tls_key /k.pem does not match the certificate in tls_cert"));
    /* swapped */
    assert_int_equal(check_pair(key, cert, CERT, KEY, "localhost", &info, err, sizeof err),
                     GD_EINVAL);
    assert_non_null(strstr(err, "swapped"));
    /* not PEM */
    assert_int_equal(check_pair("garbage", key, CERT, KEY, "localhost", &info, err, sizeof err),
                     GD_EINVAL);
    assert_non_null(strstr(err, "tls_cert /c.pem: not a PEM certificate"));
    free(cert);
    free(key);
    free(cert2);
    free(key2);
}

static void test_conflicting_settings(void **st)
{
    static config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512];
    tls_creds c;
    assert_false(tls_wanted(&cfg));
    snprintf(cfg.tls_cert, sizeof cfg.tls_cert, "/c.pem");
    assert_true(tls_wanted(&cfg));
    assert_int_equal(tls_load(&cfg, &c, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "tls_cert is set but tls_key is not"));
    snprintf(cfg.tls_key, sizeof cfg.tls_key, "/k.pem");
    cfg.tls_self_signed = true;
    assert_int_equal(tls_load(&cfg, &c, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "tls_self_signed is true and tls_cert or tls_key is set too"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint_format),
        cmocka_unit_test(test_made_pair_checks),
        cmocka_unit_test(test_conflicting_settings),
    };
    return cmocka_run_group_tests_name("tls", tests, NULL, NULL);
}
