/* Unit tests for extensions/ext_config (check and normalize, names, YAML load, write-back
 * keeping every other byte) and the allowlist's matching rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extensions/ext_config.c"

static char err[1024];

static json_t *check(const char *name, const char *json)
{
    json_t *in = json_loads(json, JSON_ALLOW_NUL, NULL);
    assert_non_null(in);
    json_t *c = ext_config_check(name, in, err, sizeof err);
    json_decref(in);
    return c;
}

static void test_names(void **state)
{
    char key[EXT_KEY_MAX + 1];
    assert_int_equal(ext_name_key("GitHub Tools", key, sizeof key, err, sizeof err), GD_OK);
    assert_string_equal(key, "githubtools");
    assert_int_equal(ext_name_key("a.b/c-d_e", key, sizeof key, err, sizeof err), GD_OK);
    assert_string_equal(key, "a_b_c-d_e");
    assert_int_equal(ext_name_key("caf\xc3\xa9", key, sizeof key, err, sizeof err), GD_OK);
    assert_string_equal(key, "caf_");
    assert_int_equal(ext_name_key("  ", key, sizeof key, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "name"));
    assert_int_equal(ext_name_key("a__b", key, sizeof key, err, sizeof err), GD_EINVAL);
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = '\0';
    assert_int_equal(ext_name_key(longname, key, sizeof key, err, sizeof err), GD_EINVAL);
    longname[63] = '\0';
    assert_int_equal(ext_name_key(longname, key, sizeof key, err, sizeof err), GD_OK);
}

static void test_check_normalizes(void **state)
{
    json_t *c = check("everything", "{\"type\":\"stdio\",\"cmd\":\"npx\",\"args\":[\"-y\"],"
                                    "\"envs\":{\"PORT\":8080},\"x_custom\":[1]}");
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "everything");
    assert_true(json_is_true(json_object_get(c, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(c, "timeout")), EXT_DEFAULT_TIMEOUT_S);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "envs"), "PORT")),
                        "8080");
    assert_true(json_is_array(json_object_get(c, "env_keys")));
    assert_true(json_is_object(json_object_get(c, "headers")));
    assert_true(json_is_array(json_object_get(c, "available_tools")));
    assert_string_equal(json_string_value(json_object_get(c, "uri")), "");
    assert_non_null(json_object_get(c, "x_custom"));
    assert_true(ext_config_supported(c));
    json_decref(c);

    c = check("developer", "{\"allow_shell\":true}");
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "type")), "builtin");
    assert_true(ext_config_supported(c));
    json_decref(c);

    c = check("GitHub", "{\"type\":\"sse\",\"uri\":\"https://h/x\",\"name\":\"GitHub\"}");
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "github");
    assert_string_equal(json_string_value(json_object_get(c, "display_name")), "GitHub");
    json_decref(c);

    /* unknown types and other builtins: kept, unsupported */
    c = check("cc", "{\"type\":\"builtin\"}");
    assert_false(ext_config_supported(c));
    json_decref(c);
    c = check("fe", "{\"type\":\"frontend\",\"tools\":[]}");
    assert_false(ext_config_supported(c));
    json_decref(c);
}

static void test_check_errors(void **state)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{}", "x: type: required"},
        {"{\"type\":\"stdio\"}", "x: cmd:"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\\nb\"}", "x: cmd: must not hold"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\\u0000b\"}", "x: cmd: must not hold a NUL"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"args\":\"b\"}", "x: args: must be a list"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"args\":[\"\\r\"]}", "x: args[0]"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"timeout\":0}", "x: timeout"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"timeout\":86401}", "x: timeout"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"enabled\":\"yes\"}", "x: enabled"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"env_keys\":[\"1A\"]}", "x: env_keys[0]"},
        {"{\"type\":\"stdio\",\"cmd\":\"a\",\"envs\":{\"A\":[1]}}", "x: envs.A"},
        {"{\"type\":\"streamable_http\"}", "x: uri: a URL is required"},
        {"{\"type\":\"sse\",\"uri\":\"file:///x\"}", "x: uri: 'file:///x'"},
        {"{\"type\":\"sse\",\"uri\":\"http://a b\"}", "x: uri: must not hold"},
        {"{\"type\":\"sse\",\"uri\":\"http://a\",\"headers\":{\"A:\":\"b\"}}", "x: headers: 'A:'"},
        {"{\"type\":\"sse\",\"uri\":\"http://a\",\"headers\":{\"A\":\"b\\nc\"}}", "x: headers.A"},
        {"{\"type\":7}", "x: type: must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        json_t *c = check("x", bad[i].json);
        if (c || !strstr(err, bad[i].want))
            fail_msg("%s: expected an error with \"%s\", got \"%s\"", bad[i].json, bad[i].want,
                     c ? "(accepted)" : err);
    }
    json_t *in = json_string("x");
    assert_null(ext_config_check("x", in, err, sizeof err));
    json_decref(in);
}

/* ---- load and write-back ---- */

static char dir[64], path[PATH_MAX];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(void)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static ext_set *load(void)
{
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.config_file, sizeof cfg.config_file, "%s", path);
    snprintf(cfg.config_path, sizeof cfg.config_path, "%s", path);
    ext_set *s = ext_set_load(&cfg);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/goosed-extcfg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    unsetenv("GOOSE_ALLOWLIST");
    return 0;
}

static int teardown(void **state)
{
    unlink(path);
    rmdir(dir);
    return 0;
}

static const char goose_yaml[] =
    "# top comment\n"
    "GOOSE_PROVIDER: anthropic\n"
    "extensions:\n"
    "  developer:\n"
    "    bundled: true\n"
    "    display_name: Developer\n"
    "    enabled: true # on\n"
    "    name: developer\n"
    "    timeout: 300\n"
    "    type: builtin\n"
    "  # between\n"
    "  memory: {bundled: true, enabled: false, name: memory, timeout: 300, type: builtin}\n"
    "  fs:\n"
    "    cmd: npx\n"
    "    args:\n"
    "    - -y\n"
    "    - \"@modelcontextprotocol/server-filesystem\"\n"
    "    description: |\n"
    "      files\n"
    "\n"
    "      more\n"
    "    enabled: true\n"
    "    type: stdio\n"
    "GOOSE_MODEL: claude # trailing\n";

static void test_load(void **state)
{
    write_file(goose_yaml);
    ext_set *s = load();
    unsigned gen;
    json_t *m = ext_set_snapshot(s, &gen);
    assert_int_equal(json_object_size(m), 3);
    json_t *fs = json_object_get(m, "fs");
    assert_string_equal(json_string_value(json_object_get(fs, "description")), "files\n\nmore\n");
    assert_string_equal(json_string_value(json_array_get(json_object_get(fs, "args"), 1)),
                        "@modelcontextprotocol/server-filesystem");
    assert_false(ext_config_supported(json_object_get(m, "memory")));
    assert_true(json_is_true(json_object_get(json_object_get(m, "developer"), "bundled")));
    json_decref(m);
    ext_set_free(s);

    /* no map, or a missing file: the developer alone */
    write_file("GOOSE_PROVIDER: x\nextensions:\n");
    s = load();
    m = ext_set_snapshot(s, NULL);
    assert_int_equal(json_object_size(m), 1);
    assert_non_null(json_object_get(m, "developer"));
    json_decref(m);
    ext_set_free(s);
}

/* After a change, every line of the original but those of the entry changed is still there in
 * order. */
static void assert_kept(const char *before, const char *after, const char *except)
{
    const char *p = before;
    const char *q = after;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        char ln[256];
        snprintf(ln, sizeof ln, "%.*s", (int)len, p);
        if (!except || !strstr(except, ln)) {
            const char *hit = strstr(q, ln);
            if (!hit) fail_msg("line \"%s\" lost:\n%s", ln, after);
            q = hit + len;
        }
        p += len;
    }
}

static void test_write_back(void **state)
{
    write_file(goose_yaml);
    ext_set *s = load();
    unsigned g0, g1;
    json_decref(ext_set_snapshot(s, &g0));

    /* toggle: one value changes, nothing else */
    assert_int_equal(ext_set_enable(s, "developer", false, err, sizeof err), GD_OK);
    char *t = read_file();
    char want[sizeof goose_yaml + 8];
    snprintf(want, sizeof want, "%s", goose_yaml);
    char *on = strstr(want, "enabled: true # on");
    memmove(on + 14, on + 13, strlen(on + 13) + 1);
    memcpy(on, "enabled: false", 14);
    assert_string_equal(t, want);
    json_decref(ext_set_snapshot(s, &g1));
    assert_int_not_equal(g0, g1);

    /* put a new one: appended to the block, everything else kept */
    json_t *cfg = json_pack("{s:s, s:s, s:[s]}", "type", "stdio", "cmd", "uvx", "args", "mcp x");
    assert_int_equal(ext_set_put(s, "Slack", cfg, err, sizeof err), GD_OK);
    json_decref(cfg);
    t = read_file();
    assert_kept(want, t, NULL);
    assert_non_null(strstr(t, "  slack:\n    enabled: true\n    type: stdio\n    name: slack\n"));
    assert_non_null(strstr(t, "    args:\n      - \"mcp x\"\n"));
    assert_true(strstr(t, "  slack:") < strstr(t, "GOOSE_MODEL"));

    /* replace the flow-style one */
    cfg = json_pack("{s:s, s:s}", "type", "sse", "uri", "http://127.0.0.1:1/sse");
    assert_int_equal(ext_set_put(s, "memory", cfg, err, sizeof err), GD_OK);
    json_decref(cfg);
    t = read_file();
    assert_null(strstr(t, "memory: {"));
    assert_non_null(strstr(t, "  # between\n  memory:\n    enabled: true\n    type: sse\n"));

    /* remove: its lines go, the comment before the next stays */
    assert_int_equal(ext_set_remove(s, "fs", err, sizeof err), GD_OK);
    t = read_file();
    assert_null(strstr(t, "server-filesystem"));
    assert_null(strstr(t, "more"));
    assert_non_null(strstr(t, "# top comment\nGOOSE_PROVIDER: anthropic\nextensions:\n"));
    assert_non_null(strstr(t, "GOOSE_MODEL: claude # trailing\n"));
    assert_int_equal(ext_set_remove(s, "fs", err, sizeof err), GD_ENOTFOUND);
    assert_int_equal(ext_set_enable(s, "nope", true, err, sizeof err), GD_ENOTFOUND);
    ext_set_free(s);

    /* what was written reads back the same */
    s = load();
    json_t *m = ext_set_snapshot(s, NULL);
    assert_int_equal(json_object_size(m), 3);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(json_object_get(m, "slack"), "args"), 0)),
        "mcp x");
    assert_true(json_is_false(json_object_get(json_object_get(m, "developer"), "enabled")));
    json_decref(m);
    ext_set_free(s);
}

static void test_write_back_no_block(void **state)
{
    write_file("# c\nGOOSE_MODEL: m"); /* no newline at the end */
    ext_set *s = load();
    json_t *cfg = json_pack("{s:s, s:s, s:{s:s}}", "type", "streamable_http", "uri",
                            "https://x/mcp", "headers", "Authorization", "Bearer \"q\"");
    assert_int_equal(ext_set_put(s, "remote", cfg, err, sizeof err), GD_OK);
    json_decref(cfg);
    char *t = read_file();
    assert_true(!strncmp(t, "# c\nGOOSE_MODEL: m\nextensions:\n  developer:\n", 42));
    ext_set_free(s);
    s = load();
    json_t *m = ext_set_snapshot(s, NULL);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(m, "remote"), "headers"),
                                          "Authorization")),
        "Bearer \"q\"");
    json_decref(m);
    /* a file that cannot be written: GD_ESTORE, nothing changes */
    snprintf(s->path, sizeof s->path, "%s/no/such/dir/\x01/config.yaml", "/proc/self");
    cfg = json_pack("{s:s, s:s}", "type", "stdio", "cmd", "a");
    assert_int_equal(ext_set_put(s, "other", cfg, err, sizeof err), GD_ESTORE);
    json_decref(cfg);
    m = ext_set_snapshot(s, NULL);
    assert_null(json_object_get(m, "other"));
    json_decref(m);
    ext_set_free(s);
}

/* ---- the allowlist's rules ---- */

static void test_allowlist_match(void **state)
{
    const char *const list[] = {"uvx mcp_slack", "npx -y @mic/mcp_mic", "npx mcp_github",
                                "minecraft", "npx @mic/mcp_mic4@latest"};
    size_t n = sizeof list / sizeof *list;
    char why[512];
    static const char *const ok[] = {"uvx mcp_slack",           "minecraft",
                                     "npx -y mcp_github",       "npx mcp_github@latest",
                                     "uvx mcp_slack@1.0.13",    "npx @mic/mcp_mic",
                                     "npx -y @mic/mcp_mic",     "uvx.exe mcp_slack",
                                     "npx @mic/mcp_mic4@latest"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (allowlist_match(ok[i], list, n, why, sizeof why) != GD_OK)
            fail_msg("%s refused: %s", ok[i], why);
    assert_int_equal(allowlist_match("uvx mcp_slack --verbose", list, n, why, sizeof why),
                     GD_EDENIED);
    assert_non_null(strstr(why, "adds arguments to 'uvx mcp_slack'"));
    static const char *const no[] = {"uvx other",  "prefix_npx mcp_github",
                                     "/bin/bash",  "/home/u/uvx mcp_slack",
                                     "minecraft2", ""};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        if (allowlist_match(no[i], list, n, why, sizeof why) != GD_EDENIED)
            fail_msg("%s allowed", no[i]);
        assert_non_null(strstr(why, "not in the allowlist"));
    }
    /* an empty list restricts nothing (the real Goose's rule) */
    assert_int_equal(allowlist_match("anything at all", list, 0, why, sizeof why), GD_OK);
}

int main(void)
{
    log_configure("error", NULL, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_check_normalizes),
        cmocka_unit_test(test_check_errors),
        cmocka_unit_test_setup_teardown(test_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_back_no_block, setup, teardown),
        cmocka_unit_test(test_allowlist_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
