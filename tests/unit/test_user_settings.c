/* Unit tests for user_settings: the server key (made, read, from GOOSE_SERVER_KEY), sealing (a
 * sealed key opens only for its user and name, and only under its server key), and the users'
 * settings kept in the SQLite store (migration 4) across a reload. user_settings.c is included to
 * reach its static functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/user_settings.c"
#include "core/ids.h"
#include "core/log.h"
#include "file_in_the_way.h"

static char root[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    char err[128];
    log_configure("off", err, sizeof err);
    unsetenv("GOOSE_SERVER_KEY");
    return ids_init();
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test_usettings_XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    user_settings_free();
    unsetenv("GOOSE_SERVER_KEY");
    return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_key_decode(void **state)
{
    (void)state;
    unsigned char k[KEY_LEN];
    assert_true(key_decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", k));
    assert_int_equal(k[31], 0x1f);
    assert_true(key_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", k));
    assert_int_equal(k[1], 1);
    assert_true(key_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", k));
    assert_false(key_decode("", k));
    assert_false(key_decode("not a key", k));
    assert_false(key_decode("000102", k));                                           /* short */
    assert_false(key_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", k)); /* 34 */
}

static void test_key_file_made_then_read(void **state)
{
    (void)state;
    char dir[128], path[160], err[256];
    snprintf(dir, sizeof dir, "%s/a/b", root);
    snprintf(path, sizeof path, "%s/server.key", dir);
    assert_int_equal(user_settings_init(dir, NULL, err, sizeof err), GD_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1); /* made on first need only */
    assert_false(U.have_key);
    unsigned char sealed[128];
    assert_int_not_equal(user_settings_seal("u", "n", "x", 1, sealed, sizeof sealed), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 32);
    assert_int_equal(sb.st_mode & 0777, 0600);
    unsigned char first[KEY_LEN];
    memcpy(first, U.key, KEY_LEN);
    assert_int_equal(user_settings_init(dir, NULL, err, sizeof err), GD_OK);
    assert_memory_equal(first, U.key, KEY_LEN); /* read back, not made again */

    /* a file that is not a key: no key, and the reason names it */
    FILE *f = fopen(path, "w");
    fputs("short", f);
    fclose(f);
    assert_int_equal(user_settings_init(dir, NULL, err, sizeof err), GD_OK);
    assert_false(U.have_key);
    assert_non_null(strstr(U.key_why, "is not a server key"));
    unsigned char out[128];
    assert_int_equal(user_settings_seal("u", "n", "x", 1, out, sizeof out), 0);
    char plain[8];
    assert_int_equal(
        user_settings_open("u", "n", sealed, 1 + NONCE_LEN + 1 + TAG_LEN, plain, sizeof plain), -1);
    /* a broken file is left as it is */
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 5);
}

static void test_env_key(void **state)
{
    (void)state;
    char err[256];
    setenv("GOOSE_SERVER_KEY", "zz", 1);
    assert_int_equal(user_settings_init(root, NULL, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "GOOSE_SERVER_KEY"));
    setenv("GOOSE_SERVER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
           1);
    assert_int_equal(user_settings_init(root, NULL, err, sizeof err), GD_OK);
    assert_true(U.have_key);
    assert_int_equal(U.key[2], 2);
    char path[160];
    snprintf(path, sizeof path, "%s/server.key", root);
    assert_int_equal(access(path, F_OK), -1); /* no file made */
}

static void test_seal_binds_user_and_name(void **state)
{
    (void)state;
    char err[256], out[64];
    assert_int_equal(user_settings_init(root, NULL, err, sizeof err), GD_OK);
    unsigned char s1[128], s2[128];
    /* the first seal makes the key */
    size_t n1 = user_settings_seal("alice", "key:K", "sk-secret", 9, s1, sizeof s1);
    size_t n2 = user_settings_seal("alice", "key:K", "sk-secret", 9, s2, sizeof s2);
    assert_int_equal(n1, 1 + NONCE_LEN + 9 + TAG_LEN);
    assert_int_equal(n1, n2);
    assert_memory_not_equal(s1, s2, n1); /* a random nonce per seal */
    assert_null(memmem(s1, n1, "sk-secret", 9));
    assert_int_equal(user_settings_open("alice", "key:K", s1, n1, out, sizeof out), 0);
    assert_string_equal(out, "sk-secret");
    assert_int_equal(user_settings_open("bob", "key:K", s1, n1, out, sizeof out), -1);
    assert_int_equal(user_settings_open("alice", "key:L", s1, n1, out, sizeof out), -1);
    s1[n1 - 1] ^= 1;
    assert_int_equal(user_settings_open("alice", "key:K", s1, n1, out, sizeof out), -1);
    /* too small for the plain text: refused, not overrun */
    assert_int_equal(user_settings_open("alice", "key:K", s2, n2, out, 9), -1);
    assert_int_equal(user_settings_seal("alice", "key:K", "sk-secret", 9, s2, 20), 0);
}

static void test_store_round_trip(void **state)
{
    (void)state;
    char err[256], key[64];
    store *st = store_sqlite_open(root, 0);
    assert_non_null(st);
    store_user a = {.name = "alice"}, b = {.name = "bob"};
    assert_int_equal(st->ops->user_add(st, &a, NULL), GD_OK);
    assert_int_equal(st->ops->user_add(st, &b, NULL), GD_OK);
    assert_int_equal(user_settings_init(root, st, err, sizeof err), GD_OK);

    assert_int_equal(user_settings_set_provider(a.id, "openai", "gpt-a", "OPENAI_API_KEY",
                                                "sk-alice", err, sizeof err),
                     GD_OK);
    assert_int_equal(user_settings_put_perm(a.id, "developer__shell", PERM_ALWAYS_ALLOW), GD_OK);
    assert_int_equal(
        user_settings_save_perm(a.id, "developer__shell", PERM_ALWAYS_ALLOW, err, sizeof err),
        GD_OK);
    /* a user that does not exist cannot keep anything */
    assert_int_equal(
        user_settings_set_provider("nobody", "openai", "m", NULL, NULL, err, sizeof err),
        GD_ENOTFOUND);

    /* everything comes back from the store */
    assert_int_equal(user_settings_init(root, st, err, sizeof err), GD_OK);
    assert_true(user_settings_known(a.id)); /* read at start: a store that answers */
    assert_int_equal(user_settings_ready(a.id, err, sizeof err), GD_OK);
    char name[32], model[32];
    assert_true(user_settings_provider(a.id, name, sizeof name, model, sizeof model));
    assert_string_equal(name, "openai");
    assert_string_equal(model, "gpt-a");
    assert_false(user_settings_provider(b.id, name, sizeof name, model, sizeof model));
    assert_false(user_settings_provider("", name, sizeof name, model, sizeof model));
    assert_int_equal(user_settings_key(a.id, "OPENAI_API_KEY", key, sizeof key, err, sizeof err),
                     1);
    assert_string_equal(key, "sk-alice");
    assert_int_equal(user_settings_key(b.id, "OPENAI_API_KEY", key, sizeof key, err, sizeof err),
                     0);
    assert_int_equal(user_settings_perm(a.id, "developer__shell"), PERM_ALWAYS_ALLOW);
    assert_int_equal(user_settings_perm(b.id, "developer__shell"), PERM_NONE);

    /* written by another goosed (straight into the store): read again within a poll or two */
    long v0, v1;
    assert_int_equal(st->ops->user_items_version(st, &v0), GD_OK);
    assert_int_equal(st->ops->user_item_set(st, b.id, "provider", "anthropic", 9), GD_OK);
    assert_int_equal(st->ops->user_items_version(st, &v1), GD_OK);
    assert_true(v1 > v0);
    bool seen = false;
    for (int i = 0; i < 500 && !seen; i++) { /* polling what a thread of its own reads */
        seen = user_settings_provider(b.id, name, sizeof name, model, sizeof model);
        if (!seen) nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    assert_true(seen);
    assert_string_equal(name, "anthropic");
    assert_int_equal(user_settings_perm(a.id, "developer__shell"), PERM_ALWAYS_ALLOW); /* kept */

    /* another server key: a clear error, without the key */
    char path[160];
    snprintf(path, sizeof path, "%s/server.key", root);
    unsigned char other[32];
    randombytes_buf(other, sizeof other);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(other, 1, sizeof other, f), sizeof other);
    fclose(f);
    assert_int_equal(user_settings_init(root, st, err, sizeof err), GD_OK);
    err[0] = '\0';
    assert_int_equal(user_settings_key(a.id, "OPENAI_API_KEY", key, sizeof key, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "cannot decrypt your API key OPENAI_API_KEY"));
    assert_non_null(strstr(err, "server.key changed?"));
    assert_null(strstr(err, "sk-alice"));
    /* a server.key gone altogether: said so */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(user_settings_init(root, st, err, sizeof err), GD_OK);
    assert_int_equal(user_settings_key(a.id, "OPENAI_API_KEY", key, sizeof key, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "does not exist"));

    /* a removed user's settings go with them, and the version moves on (the cascade) */
    assert_int_equal(st->ops->user_items_version(st, &v0), GD_OK);
    assert_int_equal(st->ops->user_remove(st, "alice"), GD_OK);
    assert_int_equal(st->ops->user_items_version(st, &v1), GD_OK);
    assert_true(v1 > v0);
    store_user_item *items = NULL;
    size_t n = 9;
    assert_int_equal(st->ops->user_items_list(st, &items, &n), GD_OK);
    assert_int_equal(n, 1); /* bob's provider alone */
    assert_string_equal(items[0].user_id, b.id);
    store_user_items_free(items, n);
    user_settings_free();
    store_close(st);
}

/* A store that cannot be read: a user's turn is refused, naming why, rather than run on the
 * server's provider without their tool permissions; the local user keeps none and goes on. */
static void test_unreadable_store_fails_closed(void **state)
{
    (void)state;
    char err[512] = "", dir[600];
    dir_under_file(root, "a-file", dir, sizeof dir);
    store *st = store_sqlite_open(dir, 0);
    assert_non_null(st);
    assert_int_equal(user_settings_init(root, st, err, sizeof err), GD_OK);
    assert_int_equal(user_settings_ready("0f0f0f0f-0000-4000-8000-000000000001", err, sizeof err),
                     GD_ESTORE);
    assert_non_null(strstr(err, "cannot read your own settings"));
    assert_non_null(strstr(err, "Not a directory"));
    assert_int_equal(user_settings_ready("", err, sizeof err), GD_OK);
    /* known: the same answer without a read (the agent's loop asks it) */
    assert_false(user_settings_known("0f0f0f0f-0000-4000-8000-000000000001"));
    assert_true(user_settings_known(""));
    user_settings_free();
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_decode),
        cmocka_unit_test_setup_teardown(test_key_file_made_then_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_binds_user_and_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_store_fails_closed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
