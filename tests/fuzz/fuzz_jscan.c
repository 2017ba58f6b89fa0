/* Fuzzes jscan (src/core/jscan.c) against jansson: both must accept and refuse the same texts
 * (json_loadb with JSON_DECODE_ANY), and on what they accept, jscan's reading must agree with
 * jansson's tree: every member found by js_get, every element by js_at, every string decoded by
 * js_string and every integer by js_int. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jscan.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

static void same(const js_doc *d, int i, json_t *j, buf *scratch)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        CHECK(js_typeof(d, i) == JS_OBJECT);
        CHECK(js_size(d, i) >= json_object_size(j)); /* a key given twice counts once there */
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            int m = js_get(d, i, k);
            CHECK(m >= 0);
            same(d, m, v, scratch);
        }
        break;
    }
    case JSON_ARRAY: {
        CHECK(js_typeof(d, i) == JS_ARRAY);
        CHECK(js_size(d, i) == json_array_size(j));
        size_t x;
        json_t *v;
        json_array_foreach(j, x, v) same(d, js_at(d, i, x), v, scratch);
        CHECK(js_at(d, i, json_array_size(j)) < 0);
        break;
    }
    case JSON_STRING: {
        const char *s;
        size_t n;
        CHECK(js_string(d, i, scratch, &s, &n));
        CHECK(n == json_string_length(j) && !memcmp(s, json_string_value(j), n));
        CHECK(js_string_eq(d, i, json_string_value(j)));
        break;
    }
    case JSON_INTEGER: {
        long long v;
        CHECK(js_int(d, i, &v) && v == json_integer_value(j));
        break;
    }
    case JSON_REAL:
        CHECK(js_typeof(d, i) == JS_NUMBER);
        break;
    case JSON_TRUE:
        CHECK(js_typeof(d, i) == JS_TRUE);
        break;
    case JSON_FALSE:
        CHECK(js_typeof(d, i) == JS_FALSE);
        break;
    case JSON_NULL:
        CHECK(js_typeof(d, i) == JS_NULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    js_doc d;
    js_init(&d);
    char err[128];
    gd_err e = js_parse(&d, (const char *)data, size, err, sizeof err);
    /* jscan reads C strings' texts (a stream's data lines): a NUL byte is refused, where
     * jansson's json_loadb takes "8\0" as 8; such inputs are only checked for crashes */
    if (memchr(data, 0, size)) {
        CHECK(e != GD_OK);
        js_free(&d);
        return 0;
    }
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    CHECK((e == GD_OK) == (j != NULL));
    if (j) {
        buf scratch;
        buf_init(&scratch, 1 << 20);
        same(&d, 0, j, &scratch);
        buf_free(&scratch);
    }
    json_decref(j);
    js_free(&d);
    return 0;
}
