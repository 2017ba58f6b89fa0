/* Unit tests for http/conns: connection counts per address and in total, and the header
 * deadline's sweeper (on socket pairs: the sweeper's shutdown() shows as end of file on the
 * other end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/conns.c"

#define WAIT_MS 10000 /* generous: a sweep is due after 1 s */

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_per_client(void **state)
{
    char err[256];
    conns *cs = conns_new(100, 2, 3600, err, sizeof err);
    assert_non_null(cs);
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2");
    struct sockaddr_storage a6 = v6("::ffff:10.0.0.1"); /* the same client as a */
    conn *c1 = conns_open(cs, -1, SA(a));
    conn *c2 = conns_open(cs, -1, SA(a6));
    conn *c3 = conns_open(cs, -1, SA(a));
    conn *d1 = conns_open(cs, -1, SA(b));
    assert_int_equal(conns_refusal(c1), CONN_OK);
    assert_int_equal(conns_refusal(c2), CONN_OK);
    assert_int_equal(conns_refusal(c3), CONN_OVER_CLIENT);
    assert_int_equal(conns_refusal(d1), CONN_OK);
    assert_int_equal(conns_open_total(cs), 4);
    /* A closed connection makes room; a refused one stays refused. */
    conns_close(cs, c1);
    conn *c4 = conns_open(cs, -1, SA(a));
    assert_int_equal(conns_refusal(c4), CONN_OVER_CLIENT); /* c2 and c3 are still open */
    conns_close(cs, c3);
    conns_close(cs, c4);
    conn *c5 = conns_open(cs, -1, SA(a));
    assert_int_equal(conns_refusal(c5), CONN_OK);
    assert_int_equal(conns_refusal(c3 = conns_open(cs, -1, SA(a))), CONN_OVER_CLIENT);
    conns_close(cs, c2);
    conns_close(cs, c3);
    conns_close(cs, c5);
    conns_close(cs, d1);
    conns_close(cs, NULL);
    assert_int_equal(conns_open_total(cs), 0);
    for (size_t i = 0; i < NBUCKETS; i++)
        assert_null(cs->buckets[i]); /* every address's count was freed */
    conns_free(cs);
}

static void test_total(void **state)
{
    char err[256];
    conns *cs = conns_new(3, 100, 3600, err, sizeof err);
    assert_non_null(cs);
    conn *c[5];
    for (int i = 0; i < 5; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.0.1.%d", i);
        struct sockaddr_storage a = v4(ip);
        c[i] = conns_open(cs, -1, SA(a));
    }
    assert_int_equal(conns_refusal(c[2]), CONN_OK);
    assert_int_equal(conns_refusal(c[3]), CONN_OVER_TOTAL);
    assert_int_equal(conns_refusal(c[4]), CONN_OVER_TOTAL);
    for (int i = 0; i < 5; i++)
        conns_close(cs, c[i]);
    assert_int_equal(conns_open_total(cs), 0);
    conns_free(cs);
}

/* Whether the peer of a socket the sweeper shut down sees end of file within WAIT_MS. */
static bool peer_sees_eof(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, WAIT_MS) != 1) return false;
    char b;
    return read(fd, &b, 1) == 0;
}

static void test_header_deadline(void **state)
{
    char err[256];
    conns *cs = conns_new(100, 100, 1, err, sizeof err);
    assert_non_null(cs);
    int slow[2], fast[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, slow), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fast), 0);
    struct sockaddr_storage a = v4("10.0.2.1");
    conn *cslow = conns_open(cs, slow[0], SA(a));
    conn *cfast = conns_open(cs, fast[0], SA(a));
    conns_headers_done(cs, cfast); /* its headers arrived in time: no deadline */
    /* The slow one is shut down at its deadline, however long we would have waited. */
    assert_true(peer_sees_eof(slow[1]));
    /* By then the fast one's deadline has passed too, and it is still open. */
    struct pollfd p = {fast[1], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0);
    /* A retired connection has no deadline either; closing removes it from the queues. */
    conns_retire(cs, cfast);
    conns_close(cs, cslow);
    conns_close(cs, cfast);
    conns_free(cs);
    close(slow[0]);
    close(slow[1]);
    close(fast[0]);
    close(fast[1]);
}

static void test_body_deadline(void **state)
{
    /* A body that stops (a chunk size no client fills) is held to header_timeout between its
     * pieces; a finished body has no deadline. */
    char err[256];
    conns *cs = conns_new(100, 100, 1, err, sizeof err);
    assert_non_null(cs);
    int stalled[2], done[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, stalled), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, done), 0);
    struct sockaddr_storage a = v4("10.0.4.1");
    conn *cst = conns_open(cs, stalled[0], SA(a));
    conn *cdn = conns_open(cs, done[0], SA(a));
    conns_body_wait(cs, cst); /* headers in, a body expected */
    conns_body_wait(cs, cdn);
    conns_body_wait(cs, cdn);    /* a piece came */
    conns_headers_done(cs, cdn); /* and the last */
    assert_true(peer_sees_eof(stalled[1]));
    struct pollfd p = {done[1], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0);
    conns_close(cs, cst);
    conns_close(cs, cdn);
    conns_free(cs);
    close(stalled[0]);
    close(stalled[1]);
    close(done[0]);
    close(done[1]);
}

static void test_no_deadline_when_idle_unknown(void **state)
{
    /* An idle kept-alive connection whose received bytes cannot be read (not TCP) has no
     * deadline: only the idle timeout applies to it. */
    char err[256];
    conns *cs = conns_new(100, 100, 1, err, sizeof err);
    assert_non_null(cs);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct sockaddr_storage a = v4("10.0.3.1");
    conn *c = conns_open(cs, sp[0], SA(a));
    conns_headers_done(cs, c);
    conns_request_done(cs, c);
    assert_int_equal(c->queue, Q_NONE);
    conns_close(cs, c);
    conns_free(cs);
    close(sp[0]);
    close(sp[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_client),
        cmocka_unit_test(test_total),
        cmocka_unit_test(test_header_deadline),
        cmocka_unit_test(test_body_deadline),
        cmocka_unit_test(test_no_deadline_when_idle_unknown),
    };
    return cmocka_run_group_tests_name("conns", tests, NULL, NULL);
}
