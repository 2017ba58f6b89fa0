#include "core/ids.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

int ids_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void ids_uuid4(char out[UUID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

void ids_token(char *out, size_t n)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (n == 0) return;
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    out[n - 1] = '\0';
}

/* splitmix64: a fast, well-mixed sequence; seeded per thread, so ids never repeat in practice. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void ids_request_id(char out[REQUEST_ID_LEN])
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static _Thread_local uint64_t state;
    static _Thread_local bool seeded;
    if (!seeded) {
        randombytes_buf(&state, sizeof state);
        seeded = true;
    }
    for (int half = 0; half < 2; half++) {
        uint64_t v = splitmix64(&state);
        for (int i = 0; i < 10; i++, v /= 62)
            out[half * 10 + i] = alphabet[v % 62];
    }
    out[REQUEST_ID_LEN - 1] = '\0';
}

bool ids_is_uuid(const char *s)
{
    if (strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}
