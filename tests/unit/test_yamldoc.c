/* Unit tests for config/yamldoc: how a YAML document that does not parse is reported (the line,
 * the file's path), an empty document, and a key looked up in a mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/secrets.h"
#include "config/yamldoc.h"

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void test_text_parses(void **state)
{
    const char *t = "a: 1\nb:\n  - x\na: 2\n";
    yaml_document_t doc;
    char why[256] = "";
    assert_true(yamldoc_text(&doc, t, strlen(t), why, sizeof why));
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_string_equal(scalar(yamldoc_get(&doc, root, "a")), "2"); /* the last of two */
    yaml_node_t *b = yamldoc_get(&doc, root, "b");
    assert_non_null(b);
    assert_int_equal(b->type, YAML_SEQUENCE_NODE);
    assert_null(yamldoc_get(&doc, root, "c"));
    assert_null(yamldoc_get(&doc, b, "x")); /* not a mapping */
    assert_null(yamldoc_get(&doc, NULL, "a"));
    yaml_document_delete(&doc);
}

static void test_text_error_names_the_line(void **state)
{
    const char *t = "a: 1\nb: [1, 2\nc: 3\n";
    yaml_document_t doc;
    char why[256] = "";
    assert_false(yamldoc_text(&doc, t, strlen(t), why, sizeof why));
    assert_true(strncmp(why, "line ", 5) == 0);
    assert_non_null(strstr(why, "flow sequence")); /* libyaml's context */
}

static void test_file_error_names_the_path(void **state)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    fputs("ok: 1\n  bad: indent: here\n", f);
    rewind(f);
    yaml_document_t doc;
    char why[256] = "";
    assert_false(yamldoc_file(&doc, f, "/etc/goose/config.yaml", why, sizeof why));
    assert_true(strncmp(why, "/etc/goose/config.yaml:2: ", 26) == 0);
    fclose(f);
}

/* What goosed writes into config.yaml and secrets.yaml reads back as it was, whatever the text:
 * line breaks YAML folds (NEL, U+2028, U+2029), controls it refuses (C0, DEL, C1, U+FFFE). */
static void test_quoted_values_read_back(void **state)
{
    static const char *const values[] = {
        "plain",
        "a \"quote\" and a \\ backslash",
        "\x01\x09\x0a\x0d\x1f\x7f",
        "gpt\xc2\x85x",
        "sk-a\xc2\x85"
        "b",
        "\xc2\x80\xc2\x9f\xc2\xa0",
        "\xe2\x80\xa8\xe2\x80\xa9",
        "\xef\xbf\xbe\xef\xbf\xbf\xef\xbb\xbf",
        "\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80",
        "  spaces  ",
        "",
        "# not a comment: {[,]}",
    };
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        buf b;
        buf_init(&b, 4096);
        assert_int_equal(buf_puts(&b, "k: "), GD_OK);
        assert_int_equal(config_yaml_quote(&b, values[i]), GD_OK);
        assert_int_equal(buf_puts(&b, "\n"), GD_OK);
        yaml_document_t doc;
        char why[256] = "";
        bool ok = yamldoc_text(&doc, b.data, b.len, why, sizeof why);
        if (!ok) fail_msg("value %zu: %s: %s", i, b.data, why);
        const char *got = scalar(yamldoc_get(&doc, yaml_document_get_root_node(&doc), "k"));
        if (!got || strcmp(got, values[i]))
            fail_msg("value %zu: %s read back as %s", i, b.data, got);
        yaml_document_delete(&doc);
        buf_free(&b);
    }
}

static void test_empty_file_is_an_empty_document(void **state)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    yaml_document_t doc;
    char why[256] = "";
    assert_true(yamldoc_file(&doc, f, "empty.yaml", why, sizeof why));
    assert_null(yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_parses),
        cmocka_unit_test(test_text_error_names_the_line),
        cmocka_unit_test(test_file_error_names_the_path),
        cmocka_unit_test(test_quoted_values_read_back),
        cmocka_unit_test(test_empty_file_is_an_empty_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
