/* Unit tests for auth (tokens, the constant-time compare, names, the loopback test, the session
 * parameter of a route) and for the users and ownership parts of the SQLite store (migration 3:
 * a version-2 database's sessions become the local user's). auth.c is included to reach its
 * static functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.c"
#include "store/sqlite.c"
#include "core/ids.h"
#include "core/log.h"

static char root[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    char err[128];
    log_configure("off", err, sizeof err);
    return ids_init();
}

static int setup(void **state)
{
    snprintf(root, sizeof root, "/tmp/test_auth_XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_tokens(void **state)
{
    char a[AUTH_TOKEN_LEN], b[AUTH_TOKEN_LEN];
    unsigned char ha[STORE_TOKEN_HASH_LEN], hb[STORE_TOKEN_HASH_LEN], again[STORE_TOKEN_HASH_LEN];
    auth_token_new(a, ha);
    auth_token_new(b, hb);
    assert_int_equal(strlen(a), AUTH_TOKEN_LEN - 1);
    assert_memory_equal(a, "gd_", 3);
    for (const char *p = a + 3; *p; p++)
        assert_true((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_');
    assert_string_not_equal(a, b);
    auth_token_hash(a, strlen(a), again);
    assert_memory_equal(ha, again, sizeof ha);
    assert_memory_not_equal(ha, hb, sizeof ha);
}

static void test_secret_equal(void **state)
{
    assert_true(auth_secret_equal("s3cret", "s3cret"));
    assert_false(auth_secret_equal("s3cre", "s3cret"));
    assert_false(auth_secret_equal("s3cret!", "s3cret"));
    assert_false(auth_secret_equal("", "s3cret"));
    assert_false(auth_secret_equal("S3cret", "s3cret"));
}

static void test_names(void **state)
{
    assert_true(auth_name_valid("alice"));
    assert_true(auth_name_valid("a.b-c_d@example.com"));
    assert_false(auth_name_valid(""));
    assert_false(auth_name_valid("a b"));
    assert_false(auth_name_valid("a\nb"));
    assert_false(auth_name_valid("caf\xc3\xa9"));
    char longname[STORE_USER_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(auth_name_valid(longname));
    longname[STORE_USER_NAME_MAX] = '\0';
    assert_true(auth_name_valid(longname));
}

static void test_loopback_and_addresses(void **state)
{
    assert_true(host_is_loopback("127.0.0.1"));
    assert_true(host_is_loopback("127.8.9.10"));
    assert_true(host_is_loopback("::1"));
    assert_true(host_is_loopback("localhost"));
    assert_false(host_is_loopback("0.0.0.0"));
    assert_false(host_is_loopback("::"));
    assert_false(host_is_loopback("10.1.2.3"));
}

static void test_session_param(void **state)
{
    http_route r1 = {"GET", "/api/sessions/{id}/messages", NULL, 0};
    http_route r2 = {"DELETE", "/api/sessions/{id}/extensions/{name}", NULL, 0};
    http_route r3 = {"GET", "/sessions/{id}", NULL, 0};
    http_route r4 = {"PATCH", "/api/extensions/{name}/toggle", NULL, 0};
    http_route r5 = {"GET", "/api/sessions", NULL, 0};
    assert_int_equal(session_param(&r1), 0);
    assert_int_equal(session_param(&r2), 0);
    assert_int_equal(session_param(&r3), 0);
    assert_int_equal(session_param(&r4), -1);
    assert_int_equal(session_param(&r5), -1);
}

static void test_setup_refuses_open_network(void **state)
{
    static config c;
    memset(&c, 0, sizeof c);
    char err[512];
    snprintf(c.host, sizeof c.host, "0.0.0.0");
    assert_int_equal(auth_setup(&c, NULL, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "--insecure-no-auth"));
    c.insecure_no_auth = true;
    assert_int_equal(auth_setup(&c, NULL, err, sizeof err), GD_OK);
    c.insecure_no_auth = false;
    snprintf(c.secret_key, sizeof c.secret_key, "k");
    assert_int_equal(auth_setup(&c, NULL, err, sizeof err), GD_OK);
    assert_true(auth_enabled());
    c.secret_key[0] = '\0';
    snprintf(c.host, sizeof c.host, "127.0.0.1");
    snprintf(c.trusted_proxies, sizeof c.trusted_proxies, "127.0.0.2, nginx.local");
    assert_int_equal(auth_setup(&c, NULL, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "nginx.local"));
    snprintf(c.trusted_proxies, sizeof c.trusted_proxies, "127.0.0.2,::1");
    snprintf(c.trusted_proxy_header, sizeof c.trusted_proxy_header, "X-Remote-User");
    assert_int_equal(auth_setup(&c, NULL, err, sizeof err), GD_OK);
    assert_true(auth_enabled());
    assert_true(peer_trusted("127.0.0.2"));
    assert_true(peer_trusted("::1"));
    assert_false(peer_trusted("127.0.0.1"));
    memset(&c, 0, sizeof c);
    snprintf(c.host, sizeof c.host, "127.0.0.1");
    assert_int_equal(auth_setup(&c, NULL, err, sizeof err), GD_OK);
    assert_false(auth_enabled());
}

static void test_store_users(void **state)
{
    store *st = store_sqlite_open(root, 0);
    assert_non_null(st);
    long n = -1;
    assert_int_equal(st->ops->user_count(st, &n), GD_OK);
    assert_int_equal(n, 0);
    char tok[AUTH_TOKEN_LEN];
    unsigned char h1[STORE_TOKEN_HASH_LEN], h2[STORE_TOKEN_HASH_LEN];
    auth_token_new(tok, h1);
    store_user u = {.admin = true};
    snprintf(u.name, sizeof u.name, "alice");
    assert_int_equal(st->ops->user_add(st, &u, h1), GD_OK);
    assert_true(ids_is_uuid(u.id));
    store_user dup = {0};
    snprintf(dup.name, sizeof dup.name, "alice");
    assert_int_equal(st->ops->user_add(st, &dup, NULL), GD_ECONFLICT);
    store_user p = {0};
    snprintf(p.name, sizeof p.name, "proxied");
    assert_int_equal(st->ops->user_add(st, &p, NULL), GD_OK);

    store_user got;
    assert_int_equal(st->ops->user_get_by_token_hash(st, h1, &got), GD_OK);
    assert_string_equal(got.id, u.id);
    assert_string_equal(got.name, "alice");
    assert_true(got.admin && got.has_token);
    assert_int_equal(st->ops->user_get_by_name(st, "proxied", &got), GD_OK);
    assert_false(got.admin || got.has_token);
    assert_int_equal(st->ops->user_get_by_name(st, "nobody", &got), GD_ENOTFOUND);

    auth_token_new(tok, h2);
    assert_int_equal(st->ops->user_set_token(st, "alice", h2), GD_OK);
    assert_int_equal(st->ops->user_get_by_token_hash(st, h1, &got), GD_ENOTFOUND);
    assert_int_equal(st->ops->user_get_by_token_hash(st, h2, &got), GD_OK);
    assert_int_equal(st->ops->user_set_token(st, "nobody", h2), GD_ENOTFOUND);

    store_user *list;
    size_t cnt;
    assert_int_equal(st->ops->user_list(st, &list, &cnt), GD_OK);
    assert_int_equal(cnt, 2);
    assert_string_equal(list[0].name, "alice");
    assert_string_equal(list[1].name, "proxied");
    free(list);
    assert_int_equal(st->ops->user_remove(st, "proxied"), GD_OK);
    assert_int_equal(st->ops->user_remove(st, "proxied"), GD_ENOTFOUND);
    assert_int_equal(st->ops->user_count(st, &n), GD_OK);
    assert_int_equal(n, 1);

    /* Sessions belong to their owner. */
    store_session s1 = {0}, s2 = {0}, s3 = {0};
    ids_uuid4(s1.id);
    ids_uuid4(s2.id);
    ids_uuid4(s3.id);
    snprintf(s1.user_id, sizeof s1.user_id, "%s", u.id);
    snprintf(s2.user_id, sizeof s2.user_id, "%s", u.id);
    assert_int_equal(st->ops->session_create(st, &s1), GD_OK);
    assert_int_equal(st->ops->session_create(st, &s2), GD_OK);
    assert_int_equal(st->ops->session_create(st, &s3), GD_OK); /* the local user's */
    store_session *ss;
    long total;
    assert_int_equal(st->ops->session_list_owned(st, u.id, 10, 0, &ss, &cnt, &total), GD_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(total, 2);
    assert_string_equal(ss[0].user_id, u.id);
    free(ss);
    assert_int_equal(st->ops->session_list_owned(st, "", 10, 0, &ss, &cnt, &total), GD_OK);
    assert_int_equal(cnt, 1);
    assert_string_equal(ss[0].id, s3.id);
    free(ss);
    assert_int_equal(st->ops->session_list(st, 10, 0, &ss, &cnt, &total), GD_OK);
    assert_int_equal(cnt, 3);
    free(ss);
    store_session back;
    assert_int_equal(st->ops->session_get(st, s1.id, &back), GD_OK);
    assert_string_equal(back.user_id, u.id);
    store_close(st);
}

/* A version-2 database (before users): migrated to 3, its sessions the local user's. */
static void test_migration_from_v2(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/goosed.db", root);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char sql[4096];
    snprintf(sql, sizeof sql,
             "%s%s CREATE TABLE schema_version (version INTEGER NOT NULL);"
             "INSERT INTO schema_version VALUES (2);"
             "INSERT INTO sessions(id, name, working_dir, created_us, updated_us) VALUES "
             "('11111111-1111-4111-8111-111111111111', 'old', '/tmp', 1, 1);",
             migrations[0], migrations[1]);
    char *msg = NULL;
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK);
    sqlite3_close(db);
    store *st = store_sqlite_open(root, 0);
    store_session s;
    assert_int_equal(st->ops->session_get(st, "11111111-1111-4111-8111-111111111111", &s), GD_OK);
    assert_string_equal(s.user_id, "");
    long n = -1;
    assert_int_equal(st->ops->user_count(st, &n), GD_OK);
    assert_int_equal(n, 0);
    store_close(st);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_loopback_and_addresses),
        cmocka_unit_test(test_session_param),
        cmocka_unit_test(test_setup_refuses_open_network),
        T(test_store_users),
        T(test_migration_from_v2),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
