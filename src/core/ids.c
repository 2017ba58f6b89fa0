#include "core/ids.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

int ids_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

/* Random bytes for ids, taken from a per-thread pool that the CSPRNG refills 256 bytes at a
 * time: one getrandom() per 32 session or message ids instead of one each. What was handed out
 * is wiped from the pool. Secrets (ids_token, keys) still come from the CSPRNG directly. */
static void id_random(unsigned char *out, size_t n)
{
    static _Thread_local unsigned char pool[256];
    static _Thread_local size_t left;
    if (left < n) {
        randombytes_buf(pool, sizeof pool);
        left = sizeof pool;
    }
    unsigned char *p = pool + sizeof pool - left;
    memcpy(out, p, n);
    sodium_memzero(p, n);
    left -= n;
}

static void uuid_format(const unsigned char b[16], char out[UUID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

void ids_uuid4(char out[UUID_STR_LEN])
{
    unsigned char b[16];
    id_random(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

void ids_uuid7(char out[UUID_STR_LEN])
{
    /* RFC 9562 section 6.2, method 1: the 12 bits after the version count within a
     * millisecond, so ids made by this process only ever increase (a counter that runs out
     * borrows the next millisecond). last holds (milliseconds << 12) | counter. */
    static _Atomic uint64_t last;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 12;
    uint64_t prev = atomic_load_explicit(&last, memory_order_relaxed), v;
    do
        v = now > prev ? now : prev + 1;
    while (!atomic_compare_exchange_weak_explicit(&last, &prev, v, memory_order_relaxed,
                                                  memory_order_relaxed));
    unsigned char b[16];
    id_random(b + 8, 8);
    uint64_t ms = v >> 12;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((v >> 8) & 0x0f));
    b[7] = (unsigned char)(v & 0xff);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
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
