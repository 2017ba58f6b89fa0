/* Fuzzes config.yaml and the allowlist: the same bytes are read as config.yaml by config_load
 * (src/config/config.c), as its `extensions:` map by ext_set_load (src/extensions/ext_config.c:
 * YAML to JSON, ext_config_check of every entry), as the text ext_config.c rewrites when an
 * extension is added, toggled or removed (edit_text), and as a GOOSE_ALLOWLIST file
 * (src/extensions/allowlist.c's parse_list, then allowlist_match of its commands). The file is a
 * memfd, read through /proc/self/fd, so nothing touches the disk. ext_config.c and allowlist.c are
 * included to reach their static parsers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"

#include "extensions/allowlist.c"
#include "extensions/ext_config.c"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[128];
    log_configure("off", err, sizeof err);
    setenv("HOME", "/nonexistent-fuzz-home", 1);
    unsetenv("GOOSE_CONFIG_DIR");
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("XDG_DATA_HOME");
    fd = memfd_create("config.yaml", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

/* edit_text on text for one change: the result must be a complete buffer. */
static void edit(const char *text, size_t len, edit_kind kind, const char *name,
                 const json_t *entry, const json_t *newmap, bool enabled)
{
    struct edit_ctx ec = {
        .kind = kind, .name = name, .entry = entry, .newmap = newmap, .enabled = enabled};
    buf out;
    buf_init(&out, 1u << 24);
    char err[256];
    gd_err e = edit_text(text, len, &out, &ec, err, sizeof err);
    CHECK(e == GD_OK || e == GD_ENOMEM || e == GD_ETOOBIG);
    if (!e) CHECK(out.len == 0 || memchr(out.data, '\0', out.len + 1));
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) LLVMFuzzerInitialize(NULL, NULL);
    const char *text = (const char *)data;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();

    /* config.yaml as the server reads it */
    config cfg;
    cfg_action act;
    char err[1024];
    char *argv[] = {"goosed", "--config", path, NULL};
    gd_err e = config_load(&cfg, 3, argv, &act, err, sizeof err);
    if (e)
        CHECK(e == GD_EINVAL && err[0] && memchr(err, '\0', sizeof err));
    else
        CHECK(cfg.ncors >= 0 && cfg.ncors <= CFG_MAX_ORIGINS);

    /* its extensions */
    config ecfg;
    memset(&ecfg, 0, sizeof ecfg);
    snprintf(ecfg.config_file, sizeof ecfg.config_file, "%s", path);
    ext_set *set = ext_set_load(&ecfg);
    CHECK(set);
    json_t *snap = ext_set_snapshot(set, NULL);
    CHECK(json_is_object(snap));
    const char *first = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(snap, k, v)
    {
        CHECK(json_is_object(v));
        CHECK(json_is_string(json_object_get(v, "name")));
        (void)ext_config_supported(v);
        if (!first) first = k;
    }

    /* the edits made when an extension is added, toggled, removed */
    json_t *raw = json_pack("{s:s, s:s, s:[s], s:b}", "type", "stdio", "cmd", "npx", "args", "-y",
                            "enabled", 1);
    json_t *entry = ext_config_check("fuzzed", raw, err, sizeof err);
    CHECK(entry);
    json_t *put = json_copy(snap);
    json_object_set(put, "fuzzed", entry);
    edit(text, size, EDIT_PUT, "fuzzed", entry, put, true);
    if (first) {
        json_t *rm = json_copy(snap);
        json_t *old = json_incref(json_object_get(snap, first));
        edit(text, size, EDIT_ENABLE, first, old, snap, false);
        json_object_del(rm, first);
        edit(text, size, EDIT_REMOVE, first, NULL, rm, false);
        json_decref(old);
        json_decref(rm);
    }
    json_decref(put);
    json_decref(entry);
    json_decref(raw);
    json_decref(snap);
    ext_set_free(set);

    /* the allowlist */
    char **cmds = NULL;
    size_t n = 0;
    char why[512];
    if (parse_list(text, size, &cmds, &n, why, sizeof why) == GD_OK) {
        for (size_t i = 0; i < n; i++) {
            CHECK(cmds[i]);
            allowlist_match(cmds[i], (const char *const *)cmds, n, why, sizeof why);
        }
        char cmdline[256];
        snprintf(cmdline, sizeof cmdline, "%.*s", (int)(size < 200 ? size : 200), text);
        allowlist_match(cmdline, (const char *const *)cmds, n, why, sizeof why);
        free_list(cmds, n);
    } else {
        CHECK(why[0]);
    }
    return 0;
}
