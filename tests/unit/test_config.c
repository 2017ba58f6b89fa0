/* Unit tests for config/config: flags > environment > config.yaml > defaults. Each test gets a
 * fresh temporary HOME and a clean environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"

static const char *const env_vars[] = {
    "GOOSE_HOST",          "GOOSE_PORT",         "GOOSE_PROVIDER",
    "GOOSE_MODEL",         "GOOSE_API_TIMEOUT",  "GOOSE_MAX_RETRIES",
    "GOOSE_MAX_BODY_SIZE", "GOOSE_CORS_ORIGINS", "GOOSE_ALLOWED_HOSTS",
    "GOOSE_CONFIG_DIR",    "RUST_LOG",           "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
};

static char home[64];
static char home_cfg[PATH_MAX]; /* $HOME/.config/goose/config.yaml */
static config c;
static cfg_action action;
static char err[1024];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    for (size_t i = 0; i < sizeof env_vars / sizeof *env_vars; i++)
        unsetenv(env_vars[i]);
    snprintf(home, sizeof home, "/tmp/test_config_XXXXXX");
    if (!mkdtemp(home)) return -1;
    setenv("HOME", home, 1);
    snprintf(home_cfg, sizeof home_cfg, "%s/.config/goose/config.yaml", home);
    char err0[128];
    log_configure("info", err0, sizeof err0);
    return 0;
}

static int teardown(void **state)
{
    rm_rf(home);
    return 0;
}

/* Creates dirs as needed and writes text to path. */
static void write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0700);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* config_load with argv = {"goosed", args..., NULL}. */
#define LOAD(...) load_argv((const char *[]){"goosed", __VA_ARGS__, NULL})
#define LOAD0()   load_argv((const char *[]){"goosed", NULL})

static gd_err load_argv(const char **args)
{
    int argc = 0;
    while (args[argc])
        argc++;
    memset(&c, 0x5a, sizeof c);
    err[0] = '\0';
    action = (cfg_action)-1;
    return config_load(&c, argc, (char **)args, &action, err, sizeof err);
}

static void load_ok(gd_err e)
{
    if (e != GD_OK) fail_msg("config_load failed: %s", err);
    assert_int_equal(action, CFG_RUN);
}

static void load_fails(gd_err e, const char *want)
{
    if (e == GD_OK) fail_msg("config_load succeeded; expected \"%s\"", want);
    assert_int_equal(e, GD_EINVAL);
    assert_string_equal(err, want);
}

static void load_fails_prefix(gd_err e, const char *prefix)
{
    if (e == GD_OK) fail_msg("config_load succeeded; expected \"%s...\"", prefix);
    assert_int_equal(e, GD_EINVAL);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error is \"%s\", expected it to start with \"%s\"", err, prefix);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    load_ok(LOAD0());
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 3000);
    assert_string_equal(c.provider, "");
    assert_string_equal(c.model, "");
    assert_int_equal(c.api_timeout, 600);
    assert_int_equal(c.max_retries, 3);
    assert_int_equal(c.max_body_size, 10 * 1024 * 1024);
    assert_string_equal(c.log_spec, "info");
    assert_int_equal(c.ncors, 0);
    assert_string_equal(c.config_file, ""); /* no config.yaml exists */
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/.local/share/goose/sessions", home);
    assert_string_equal(c.data_dir, want);
}

static void test_data_dir_xdg(void **state)
{
    char xdg[256], want[PATH_MAX];
    snprintf(xdg, sizeof xdg, "%s/xdgdata", home);
    setenv("XDG_DATA_HOME", xdg, 1);
    load_ok(LOAD0());
    snprintf(want, sizeof want, "%s/goose/sessions", xdg);
    assert_string_equal(c.data_dir, want);
}

/* ---- flags ---- */

static void test_flag_port(void **state)
{
    load_ok(LOAD("--port", "8080"));
    assert_int_equal(c.port, 8080);
    load_ok(LOAD("--port=8081"));
    assert_int_equal(c.port, 8081);
    load_ok(LOAD("--port", "0"));
    assert_int_equal(c.port, 0);
    load_ok(LOAD("--port", "65535"));
    assert_int_equal(c.port, 65535);
    load_ok(LOAD("--port", "1", "--port", "2")); /* the last one wins */
    assert_int_equal(c.port, 2);
}

static void test_flag_host(void **state)
{
    load_ok(LOAD("--host", "0.0.0.0"));
    assert_string_equal(c.host, "0.0.0.0");
    load_ok(LOAD("--host=::1"));
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 3000);
}

static void test_flag_log_level(void **state)
{
    load_ok(LOAD("--log-level", "debug"));
    assert_string_equal(c.log_spec, "debug");
    assert_string_equal(log_spec(), "debug"); /* the filter is put in force */
    assert_true(log_enabled(LOG_DEBUG, "store"));
    load_ok(LOAD("--log-level=info,goose=trace"));
    assert_string_equal(c.log_spec, "info,goose=trace");
    assert_true(log_enabled(LOG_TRACE, "http"));
}

static void test_flag_config(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/elsewhere/my.yaml", home);
    write_file(path, "GOOSE_MODEL: from-flag-file\n");
    write_file(home_cfg, "GOOSE_MODEL: from-home\n");
    load_ok(LOAD("--config", path));
    assert_string_equal(c.model, "from-flag-file");
    assert_string_equal(c.config_file, path);
    char arg[PATH_MAX + 16];
    snprintf(arg, sizeof arg, "--config=%s", path);
    load_ok(LOAD(arg));
    assert_string_equal(c.model, "from-flag-file");
    /* Without the flag, the default file is read. */
    load_ok(LOAD0());
    assert_string_equal(c.model, "from-home");
    assert_string_equal(c.config_file, home_cfg);
}

static void test_flag_config_missing_file(void **state)
{
    char path[PATH_MAX], want[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/nope.yaml", home);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    load_fails(LOAD("--config", path), want);
}

static void test_flag_errors(void **state)
{
    load_fails(LOAD("--bogus"), "unknown option \"--bogus\" (see --help)");
    load_fails(LOAD("--bogus=1"), "unknown option \"--bogus\" (see --help)");
    load_fails(LOAD("--por", "1"), "unknown option \"--por\" (see --help)");
    load_fails(LOAD("--portx", "1"), "unknown option \"--portx\" (see --help)");
    load_fails(LOAD("-p", "1"), "unexpected argument \"-p\" (see --help)");
    load_fails(LOAD("serve"), "unexpected argument \"serve\" (see --help)");
    load_fails(LOAD("--port"), "option \"--port\" needs a value");
    load_fails(LOAD("--host", "h", "--config"), "option \"--config\" needs a value");
    load_fails(LOAD("--port", "70000"), "--port: expected a port 0..65535, got \"70000\"");
    load_fails(LOAD("--port=-1"), "--port: expected a port 0..65535, got \"-1\"");
    load_fails(LOAD("--port", "abc"), "--port: expected a port 0..65535, got \"abc\"");
    load_fails(LOAD("--port", "80x"), "--port: expected a port 0..65535, got \"80x\"");
    load_fails(LOAD("--port="), "--port: expected a port 0..65535, got \"\"");
    load_fails(LOAD("--port", "99999999999999999999999"),
               "--port: expected a port 0..65535, got \"99999999999999999999999\"");
    load_fails(LOAD("--host="), "--host: expected a host name or address, got \"\"");
    load_fails_prefix(LOAD("--log-level", "loud"), "--log-level: unknown log level \"loud\"");
}

static void test_help_version(void **state)
{
    assert_int_equal(LOAD("--help"), GD_OK);
    assert_int_equal(action, CFG_HELP);
    assert_int_equal(LOAD("-h"), GD_OK);
    assert_int_equal(action, CFG_HELP);
    assert_int_equal(LOAD("--port", "1", "--help"), GD_OK);
    assert_int_equal(action, CFG_HELP);
    assert_int_equal(LOAD("--version"), GD_OK);
    assert_int_equal(action, CFG_VERSION);
    assert_int_equal(LOAD("-V"), GD_OK);
    assert_int_equal(action, CFG_VERSION);
    /* --help wins even over a config file that would fail. */
    write_file(home_cfg, "GOOSE_PORT: [\n");
    assert_int_equal(LOAD("--help"), GD_OK);
    assert_int_equal(action, CFG_HELP);

    const char *u = config_usage();
    assert_non_null(u);
    assert_non_null(strstr(u, "Usage: goosed"));
    assert_non_null(strstr(u, "--port"));
    assert_non_null(strstr(u, "--host"));
    assert_non_null(strstr(u, "--log-level"));
    assert_non_null(strstr(u, "--config"));
}

/* ---- environment ---- */

static void test_env(void **state)
{
    setenv("GOOSE_PORT", "4000", 1);
    setenv("GOOSE_HOST", "0.0.0.0", 1);
    setenv("GOOSE_PROVIDER", "openai", 1);
    setenv("GOOSE_MODEL", "gpt-4o", 1);
    setenv("GOOSE_API_TIMEOUT", "30", 1);
    setenv("GOOSE_MAX_RETRIES", "0", 1);
    setenv("RUST_LOG", "warn,store=trace", 1);
    setenv("GOOSE_MAX_BODY_SIZE", "2048", 1);
    setenv("GOOSE_CORS_ORIGINS", "https://a.example.com, https://b.example.com", 1);
    load_ok(LOAD0());
    assert_int_equal(c.port, 4000);
    assert_string_equal(c.host, "0.0.0.0");
    assert_string_equal(c.provider, "openai");
    assert_string_equal(c.model, "gpt-4o");
    assert_int_equal(c.api_timeout, 30);
    assert_int_equal(c.max_retries, 0);
    assert_string_equal(c.log_spec, "warn,store=trace");
    assert_string_equal(log_spec(), "warn,store=trace");
    assert_int_equal(c.max_body_size, 2048);
    assert_int_equal(c.ncors, 2);
    assert_string_equal(c.cors[0], "https://a.example.com");
    assert_string_equal(c.cors[1], "https://b.example.com");
}

static void test_env_cors_star(void **state)
{
    setenv("GOOSE_CORS_ORIGINS", "*", 1);
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 1);
    assert_string_equal(c.cors[0], "*");
    setenv("GOOSE_CORS_ORIGINS", ",,https://x.example,,", 1);
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 1);
    assert_string_equal(c.cors[0], "https://x.example");
}

static void test_allowed_hosts(void **state)
{
    /* A list of its own: cors_origins is left alone. */
    write_file(home_cfg, "allowed_hosts:\n  - goose.example\n  - other.example:8443\n"
                         "cors_origins: https://a.example\n");
    load_ok(LOAD0());
    assert_int_equal(c.nallowed_hosts, 2);
    assert_string_equal(c.allowed_hosts[0], "goose.example");
    assert_string_equal(c.allowed_hosts[1], "other.example:8443");
    assert_int_equal(c.ncors, 1);
    assert_string_equal(c.cors[0], "https://a.example");
    setenv("GOOSE_ALLOWED_HOSTS", "*", 1);
    load_ok(LOAD0());
    assert_int_equal(c.nallowed_hosts, 1);
    assert_string_equal(c.allowed_hosts[0], "*");
    assert_int_equal(c.ncors, 1);
}

static void test_env_empty_ignored(void **state)
{
    /* An empty numeric or list variable means "not set"; an empty string one clears. */
    write_file(home_cfg, "GOOSE_PORT: 1234\nGOOSE_MODEL: m\n");
    setenv("GOOSE_PORT", "", 1);
    setenv("GOOSE_MODEL", "", 1);
    setenv("RUST_LOG", "", 1);
    load_ok(LOAD0());
    assert_int_equal(c.port, 1234);
    assert_string_equal(c.model, "");
    assert_string_equal(c.log_spec, "info");
}

static void test_env_config_dir(void **state)
{
    char dir[256], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/cfgdir", home);
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    write_file(path, "GOOSE_PROVIDER: from-config-dir\n");
    write_file(home_cfg, "GOOSE_PROVIDER: from-home\n");
    setenv("GOOSE_CONFIG_DIR", dir, 1);
    load_ok(LOAD0());
    assert_string_equal(c.provider, "from-config-dir");
    assert_string_equal(c.config_file, path);
    /* --config beats GOOSE_CONFIG_DIR. */
    load_ok(LOAD("--config", home_cfg));
    assert_string_equal(c.provider, "from-home");
    /* A GOOSE_CONFIG_DIR with no config.yaml in it is fine. */
    snprintf(dir, sizeof dir, "%s/emptydir", home);
    setenv("GOOSE_CONFIG_DIR", dir, 1);
    load_ok(LOAD0());
    assert_string_equal(c.provider, "");
    assert_string_equal(c.config_file, "");
}

static void test_env_xdg_config_home(void **state)
{
    char xdg[256], path[PATH_MAX];
    snprintf(xdg, sizeof xdg, "%s/xdgcfg", home);
    snprintf(path, sizeof path, "%s/goose/config.yaml", xdg);
    write_file(path, "GOOSE_MODEL: xdg\n");
    setenv("XDG_CONFIG_HOME", xdg, 1);
    load_ok(LOAD0());
    assert_string_equal(c.model, "xdg");
}

static void test_env_errors(void **state)
{
    setenv("GOOSE_PORT", "http", 1);
    load_fails(LOAD0(), "GOOSE_PORT: expected a port 0..65535, got \"http\"");
    /* A flag does not hide a bad variable. */
    load_fails(LOAD("--port", "1"), "GOOSE_PORT: expected a port 0..65535, got \"http\"");
    unsetenv("GOOSE_PORT");

    setenv("GOOSE_MAX_BODY_SIZE", "512", 1);
    load_fails(LOAD0(),
               "GOOSE_MAX_BODY_SIZE: expected a number of bytes 1024..1073741824, got \"512\"");
    unsetenv("GOOSE_MAX_BODY_SIZE");

    setenv("GOOSE_HOST", "", 1);
    load_fails(LOAD0(), "GOOSE_HOST: expected a host name or address, got \"\"");
    unsetenv("GOOSE_HOST");

    setenv("RUST_LOG", "store=loud", 1);
    load_fails_prefix(LOAD0(), "RUST_LOG: unknown log level \"loud\" for module \"store\"");
    unsetenv("RUST_LOG");

    char many[64 * 40] = "";
    for (int i = 0; i < 40; i++)
        strcat(many, "https://x.example,");
    setenv("GOOSE_CORS_ORIGINS", many, 1);
    load_fails_prefix(LOAD0(), "GOOSE_CORS_ORIGINS: expected a list of origins");
}

/* ---- config.yaml ---- */

static void test_file_keys(void **state)
{
    write_file(home_cfg, "# Goose's own config.yaml\n"
                         "GOOSE_PROVIDER: anthropic\n"
                         "GOOSE_MODEL: \"claude-sonnet-4\"\n"
                         "GOOSE_HOST: 10.0.0.1\n"
                         "GOOSE_PORT: 5000\n"
                         "api_timeout: 120\n"
                         "max_retries: 7\n"
                         "max_body_size: 4096\n"
                         "log_level: debug\n"
                         "cors_origins:\n"
                         "  - https://a.example.com\n"
                         "  - https://b.example.com\n"
                         "extensions:\n"  /* unknown keys are ignored, */
                         "  developer:\n" /* whatever their shape */
                         "    enabled: true\n"
                         "    timeout: 300\n"
                         "GOOSE_MODE: auto\n"
                         "some_list: [1, 2, 3]\n");
    load_ok(LOAD0());
    assert_string_equal(c.provider, "anthropic");
    assert_string_equal(c.model, "claude-sonnet-4");
    assert_string_equal(c.host, "10.0.0.1");
    assert_int_equal(c.port, 5000);
    assert_int_equal(c.api_timeout, 120);
    assert_int_equal(c.max_retries, 7);
    assert_int_equal(c.max_body_size, 4096);
    assert_string_equal(c.log_spec, "debug");
    assert_int_equal(c.ncors, 2);
    assert_string_equal(c.cors[0], "https://a.example.com");
    assert_string_equal(c.cors[1], "https://b.example.com");
    assert_string_equal(c.config_file, home_cfg);
}

static void test_file_cors_forms(void **state)
{
    write_file(home_cfg, "cors_origins: \"https://a.example.com,https://b.example.com\"\n");
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 2);
    assert_string_equal(c.cors[1], "https://b.example.com");

    write_file(home_cfg, "cors_origins: \"*\"\n");
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 1);
    assert_string_equal(c.cors[0], "*");

    write_file(home_cfg, "cors_origins: [\"https://x.example\", \"*\"]\n");
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 2);
    assert_string_equal(c.cors[0], "https://x.example");
    assert_string_equal(c.cors[1], "*");

    write_file(home_cfg, "cors_origins: []\n");
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 0);

    /* The environment replaces the file's list. */
    write_file(home_cfg, "cors_origins:\n  - https://file.example\n  - https://file2.example\n");
    setenv("GOOSE_CORS_ORIGINS", "https://env.example", 1);
    load_ok(LOAD0());
    assert_int_equal(c.ncors, 1);
    assert_string_equal(c.cors[0], "https://env.example");
}

static void test_file_empty(void **state)
{
    static const char *const empties[] = {"", "\n\n", "# only a comment\n", "---\n", "---\n...\n"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        write_file(home_cfg, empties[i]);
        if (LOAD0() != GD_OK) fail_msg("empty config.yaml #%zu: %s", i, err);
        assert_int_equal(c.port, 3000);
        assert_string_equal(c.config_file, home_cfg);
    }
}

static void test_file_empty_string_values(void **state)
{
    write_file(home_cfg, "GOOSE_PROVIDER:\nGOOSE_MODEL: ''\n");
    load_ok(LOAD0());
    assert_string_equal(c.provider, "");
    assert_string_equal(c.model, "");
}

static void test_precedence(void **state)
{
    write_file(home_cfg, "GOOSE_PORT: 1111\nGOOSE_MODEL: file-model\nGOOSE_HOST: 1.1.1.1\n"
                         "log_level: warn\n");
    load_ok(LOAD0());
    assert_int_equal(c.port, 1111);
    assert_string_equal(c.log_spec, "warn");

    setenv("GOOSE_PORT", "2222", 1);
    setenv("GOOSE_HOST", "2.2.2.2", 1);
    setenv("RUST_LOG", "error", 1);
    load_ok(LOAD0());
    assert_int_equal(c.port, 2222);
    assert_string_equal(c.host, "2.2.2.2");
    assert_string_equal(c.model, "file-model"); /* not overridden: the file's value */
    assert_string_equal(c.log_spec, "error");

    load_ok(LOAD("--port", "3333", "--log-level", "trace"));
    assert_int_equal(c.port, 3333);
    assert_string_equal(c.host, "2.2.2.2");
    assert_string_equal(c.log_spec, "trace");
    assert_string_equal(log_spec(), "trace"); /* the winner's filter is the one in force */

    unsetenv("GOOSE_PORT");
    unsetenv("GOOSE_HOST");
    unsetenv("RUST_LOG");
    load_ok(LOAD("--host", "3.3.3.3"));
    assert_int_equal(c.port, 1111);
    assert_string_equal(c.host, "3.3.3.3");
    assert_string_equal(log_spec(), "warn");
}

static void file_fails(const char *yaml, const char *fmt_after_path)
{
    write_file(home_cfg, yaml);
    char want[PATH_MAX + 256];
    snprintf(want, sizeof want, "%s%s", home_cfg, fmt_after_path);
    load_fails(LOAD0(), want);
}

static void file_fails_prefix(const char *yaml, const char *after_path)
{
    write_file(home_cfg, yaml);
    char want[PATH_MAX + 256];
    snprintf(want, sizeof want, "%s%s", home_cfg, after_path);
    load_fails_prefix(LOAD0(), want);
}

static void test_file_bad_values(void **state)
{
    file_fails("GOOSE_MODEL: m\napi_timeout: 0\n",
               ":2: api_timeout: expected a number of seconds 1..86400, got \"0\"");
    file_fails("\n\nGOOSE_PORT: 99999\n",
               ":3: GOOSE_PORT: expected a port 0..65535, got \"99999\"");
    file_fails("max_retries: lots\n", ":1: max_retries: expected an integer 0..100, got \"lots\"");
    file_fails("api_timeout:\n",
               ":1: api_timeout: expected a number of seconds 1..86400, got \"\"");
    file_fails("GOOSE_HOST: ''\n", ":1: GOOSE_HOST: expected a host name or address, got \"\"");
    file_fails_prefix("log_level: loud\n", ":1: log_level: unknown log level \"loud\"");
    /* The value's own line is named when it is on a later line than its key. */
    file_fails("GOOSE_PORT:\n  abc\n", ":2: GOOSE_PORT: expected a port 0..65535, got \"abc\"");
    /* regression: strtol's leading blanks and plus sign are not numbers here */
    file_fails("GOOSE_PORT: \" 8080\"\n",
               ":1: GOOSE_PORT: expected a port 0..65535, got \" 8080\"");
    file_fails("GOOSE_PORT: \"+80\"\n", ":1: GOOSE_PORT: expected a port 0..65535, got \"+80\"");
}

/* tool_network: a boolean, or host (the host's own network); kept as one of three words */
static void test_tool_network(void **state)
{
    const char *cases[][2] = {{"true", "true"},   {"yes", "true"}, {"1", "true"},
                              {"false", "false"}, {"no", "false"}, {"0", "false"},
                              {"host", "host"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char yaml[64];
        snprintf(yaml, sizeof yaml, "tool_network: %s\n", cases[i][0]);
        write_file(home_cfg, yaml);
        load_ok(LOAD0());
        assert_string_equal(c.tool_network, cases[i][1]);
    }
    file_fails("tool_network: HOST\n",
               ":1: tool_network: expected true, false or host, got \"HOST\"");
    file_fails("tool_network: outside\n",
               ":1: tool_network: expected true, false or host, got \"outside\"");
}

/* regression: without HOME the data went to a shared /tmp directory */
static void test_no_home(void **state)
{
    unsetenv("HOME");
    load_fails(LOAD0(),
               "HOME is not set: set HOME or XDG_DATA_HOME to say where sessions are stored");
    setenv("HOME", "", 1);
    load_fails(LOAD0(),
               "HOME is not set: set HOME or XDG_DATA_HOME to say where sessions are stored");
    char data[PATH_MAX + 16];
    snprintf(data, sizeof data, "%s/data", home);
    setenv("XDG_DATA_HOME", data, 1);
    load_ok(LOAD0());
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/goose/sessions", data);
    assert_string_equal(c.data_dir, want);
    assert_string_equal(c.config_file, "");
    setenv("HOME", home, 1);
}

/* regression: a list item that did not fit the joined list was silently dropped */
static void test_file_cors_list_too_long(void **state)
{
    static char text[20000];
    int n = snprintf(text, sizeof text, "cors_origins:\n  - https://a.example\n  - https://");
    memset(text + n, 'x', 17000);
    snprintf(text + n + 17000, sizeof text - (size_t)n - 17000, "\n");
    file_fails_prefix(text, ":2: cors_origins: expected a list of origins");
}

static void test_file_wrong_shape(void **state)
{
    file_fails("GOOSE_MODEL:\n  name: x\n",
               ":2: GOOSE_MODEL: expected a model name, got a mapping");
    file_fails("GOOSE_PORT: {a: 1}\n", ":1: GOOSE_PORT: expected a port 0..65535, got a mapping");
    file_fails("GOOSE_PROVIDER: [a, b]\n",
               ":1: GOOSE_PROVIDER: expected a provider name, got a list");
    file_fails_prefix("cors_origins:\n  a: b\n", ":2: cors_origins: expected a list of origins");
    file_fails_prefix("cors_origins:\n  - [nested]\n",
                      ":2: cors_origins: expected a list of origins");
    file_fails("- a\n- b\n", ":1: expected a mapping of keys to values at the top level");
    file_fails("\n# c\nhello\n", ":3: expected a mapping of keys to values at the top level");
}

/* Asserts err starts with "<config.yaml>:<line>: " for one of the lines given (0 ends). */
static void assert_names_line(int line, int alt)
{
    char want[PATH_MAX + 16], want2[PATH_MAX + 16];
    snprintf(want, sizeof want, "%s:%d: ", home_cfg, line);
    snprintf(want2, sizeof want2, "%s:%d: ", home_cfg, alt);
    if (strncmp(err, want, strlen(want)) != 0 && strncmp(err, want2, strlen(want2)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, want);
    assert_true(strlen(err) > strlen(want)); /* and says something after it */
}

static void test_file_syntax_error(void **state)
{
    /* "<file>:<line>: <what libyaml says>" */
    write_file(home_cfg, "GOOSE_MODEL: a\n  bad: indent\n");
    assert_int_equal(LOAD0(), GD_EINVAL);
    assert_names_line(2, 2);

    write_file(home_cfg, "a: 1\nb: [1, 2\nc: 3\n");
    assert_int_equal(LOAD0(), GD_EINVAL);
    assert_names_line(3, 4); /* the parser notices at the next key or at the end */

    write_file(home_cfg, "a: 1\nb: 2\nc: \"unterminated\n");
    assert_int_equal(LOAD0(), GD_EINVAL);
    assert_names_line(3, 4);

    write_file(home_cfg, "a: 1\n\tb: 2\n"); /* a tab in indentation */
    assert_int_equal(LOAD0(), GD_EINVAL);
    assert_names_line(2, 2);

    write_file(home_cfg, "a: *nope\n"); /* an undefined alias */
    assert_int_equal(LOAD0(), GD_EINVAL);
    assert_names_line(1, 1);
}

static void test_file_unreadable(void **state)
{
    /* A directory where the file should be. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/dir.yaml", home);
    mkdir(dir, 0700);
    load_fails_prefix(LOAD("--config", dir), dir);
}

/* ---- the sources and the table (goose configure) ---- */

static cfg_source src_of(const char *name)
{
    int i = config_key_find(name);
    assert_true(i >= 0);
    return config_source(&c, (size_t)i);
}

static void test_sources(void **state)
{
    write_file(home_cfg, "GOOSE_PORT: 1111\nGOOSE_MODEL: file-model\ncors_origins:\n  - a\n");
    setenv("GOOSE_MODEL", "env-model", 1);
    setenv("GOOSE_API_TIMEOUT", "", 1); /* empty: not applied, so not its source */
    load_ok(LOAD("--port", "3333"));
    assert_int_equal(src_of("GOOSE_PORT"), CFG_SRC_FLAG);
    assert_int_equal(src_of("GOOSE_MODEL"), CFG_SRC_ENV);
    assert_int_equal(src_of("cors_origins"), CFG_SRC_FILE);
    assert_int_equal(src_of("GOOSE_CORS_ORIGINS"), CFG_SRC_FILE); /* by its variable too */
    assert_int_equal(src_of("api_timeout"), CFG_SRC_DEFAULT);
    assert_int_equal(src_of("GOOSE_HOST"), CFG_SRC_DEFAULT);
    assert_string_equal(config_source_name(CFG_SRC_FLAG), "flag");
    assert_int_equal(config_key_find("goose_port"), -1); /* the table's case only */
    unsetenv("GOOSE_MODEL");
    unsetenv("GOOSE_API_TIMEOUT");
}

static void test_table_values(void **state)
{
    write_file(home_cfg, "cors_origins: [https://a.example, https://b.example]\n"
                         "GOOSE_SERVER__SECRET_KEY: s3cret\n");
    load_ok(LOAD0());
    struct {
        const char *key, *want;
    } cases[] = {{"GOOSE_PORT", "3000"},
                 {"tool_network", "true"},
                 {"cors_origins", "https://a.example,https://b.example"},
                 {"GOOSE_HOST", "127.0.0.1"}};
    for (size_t j = 0; j < sizeof cases / sizeof *cases; j++) {
        buf b;
        buf_init(&b, 4096);
        assert_int_equal(config_value(&c, (size_t)config_key_find(cases[j].key), &b), GD_OK);
        assert_string_equal(b.data, cases[j].want);
        buf_free(&b);
    }
    size_t secrets = 0;
    for (size_t i = 0; i < config_nkeys(); i++)
        secrets += config_key_at(i).secret;
    assert_int_equal(secrets, 1);
    assert_true(config_key_at((size_t)config_key_find("GOOSE_SERVER__SECRET_KEY")).secret);
    assert_int_equal(config_key_at((size_t)config_key_find("cors_origins")).type, CFG_T_LIST);

    char e[256];
    assert_int_equal(config_check((size_t)config_key_find("GOOSE_PORT"), "80", e, sizeof e), GD_OK);
    assert_int_equal(config_check((size_t)config_key_find("GOOSE_PORT"), "x", e, sizeof e),
                     GD_EINVAL);
    assert_string_equal(e, "GOOSE_PORT: expected a port 0..65535, got \"x\"");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_data_dir_xdg),
        T(test_flag_port),
        T(test_flag_host),
        T(test_flag_log_level),
        T(test_flag_config),
        T(test_flag_config_missing_file),
        T(test_flag_errors),
        T(test_help_version),
        T(test_env),
        T(test_env_cors_star),
        T(test_allowed_hosts),
        T(test_env_empty_ignored),
        T(test_env_config_dir),
        T(test_env_xdg_config_home),
        T(test_env_errors),
        T(test_file_keys),
        T(test_file_cors_forms),
        T(test_file_empty),
        T(test_file_empty_string_values),
        T(test_precedence),
        T(test_file_bad_values),
        T(test_tool_network),
        T(test_file_cors_list_too_long),
        T(test_no_home),
        T(test_file_wrong_shape),
        T(test_file_syntax_error),
        T(test_file_unreadable),
        T(test_sources),
        T(test_table_values),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
