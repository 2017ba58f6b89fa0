/* conns: what clients may hold at the HTTP edge. Counts open connections in total and per
 * client address (a connection over either bound is marked at accept, and the server refuses its
 * request with 503), and enforces the header deadline: a connection must deliver a request's
 * complete headers within header_timeout seconds, however slowly it trickles bytes (slowloris).
 *
 * The deadline runs from the accept, and on a kept-alive connection from the first byte of the
 * next request (an idle connection between requests is left to the server's idle timeout). One
 * sweeper thread keeps it for every connection: at the deadline it shuts the socket down, which
 * wakes the server's own thread for that connection, which then reads end-of-file and closes
 * it. The sweeper never closes or frees anything it does not own. */
#ifndef GD_HTTP_CONNS_H
#define GD_HTTP_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct conns conns;
typedef struct conn conn;

typedef enum {
    CONN_OK = 0,
    CONN_OVER_TOTAL,  /* accepted while max_connections were already open */
    CONN_OVER_CLIENT, /* accepted while max_connections_per_client were open from its address */
} conn_refusal;

/* Starts the sweeper. header_timeout_s > 0. Returns NULL with a message in err. Free with
 * conns_free, after the server has stopped (every conn closed). */
conns *conns_new(long max_total, long max_per_client, long header_timeout_s, char *err,
                 size_t errlen);
void conns_free(conns *cs);

/* A connection was accepted on fd from sa: counts it, marks it when over a bound, and starts its
 * header deadline. Returns the connection's record (NULL when out of memory: the connection is
 * then neither counted nor bounded), freed by conns_close. fd stays the caller's; the sweeper
 * only ever calls shutdown() on it, and only until conns_close. */
conn *conns_open(conns *cs, int fd, const struct sockaddr *sa);
/* The connection is closing (call before its fd is closed): uncounts it and frees c. NULL is
 * ignored. */
void conns_close(conns *cs, conn *c);
/* A request's headers are complete: its deadline is met. */
void conns_headers_done(conns *cs, conn *c);
/* A request is finished and the connection is kept alive: it is idle until the next request's
 * first byte, which starts a new header deadline. */
void conns_request_done(conns *cs, conn *c);
/* The request's headers are in and a body is expected, or a piece of it just came: the next
 * piece is due within header_timeout, or the connection is shut down (a body that stops, or a
 * chunk size no client will fill). conns_headers_done ends the wait. */
void conns_body_wait(conns *cs, conn *c);
/* The connection will carry no more requests (it was upgraded, or is being closed): no deadline
 * applies any more. */
void conns_retire(conns *cs, conn *c);
/* Whether the connection's requests are to be refused, and why. */
conn_refusal conns_refusal(const conn *c);

/* How many connections are open now. */
long conns_open_total(conns *cs);

#endif
