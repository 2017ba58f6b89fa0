/* netaddr: IP addresses as goosed judges them: parsed from text, compared, and sorted into the
 * ones on the public internet and the ones of this host or a private network; and the list of
 * names and networks an admin lets users' extensions reach anyway (user_extension_hosts).
 *
 * An outbound connection made for a user who is not an admin (their own remote extension, or
 * their session's) may go only to a public address, unless the list names its host or address:
 * otherwise a user could make goosed reach services that trust it because of where it stands
 * (other services on its host, a cloud's metadata address, an internal network). */
#ifndef GD_NETADDR_H
#define GD_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"

/* Parses an address (IPv4 or IPv6, no port, no brackets) into ss; an IPv4-mapped IPv6 address
 * becomes the IPv4 one. false when s is not an address. */
bool net_addr_parse(const char *s, struct sockaddr_storage *ss);
bool net_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* 127.0.0.0/8, ::1, or an IPv4-mapped loopback address. */
bool net_addr_loopback(const struct sockaddr *sa);
/* NULL for an address on the public internet; else what it is ("a loopback address", "an
 * address of a private network", ...). Looks through IPv4-mapped and NAT64 (64:ff9b::/96)
 * addresses to the IPv4 one inside. Any family other than IPv4 and IPv6 is not public. */
const char *net_addr_internal(const struct sockaddr *sa);
/* "an address of this host" when sa is one of this machine's own interfaces' addresses (its
 * public ones too: a connection to them stays on this host), else NULL. Reads the interfaces
 * (getifaddrs) on each call. */
const char *net_addr_local(const struct sockaddr *sa);
/* The address as text into out (at least 46 bytes), "?" when it is neither family. */
void net_addr_text(const struct sockaddr *sa, char *out, size_t outlen);

/* The host of an http(s) URL, as libcurl reads it, into out (an IPv6 address with its
 * brackets): false when the URL is not of the plain form scheme://host[:port][/?#...] (user
 * info, percent-encoding, a backslash, a port that is not digits...), whose host no parser can
 * read otherwise. Only such a host's name may lift a reach check. */
bool net_url_host(const char *url, char *out, size_t outlen);

/* A list of what may be reached although it is not public: host names (matched against a URL's
 * host, case-insensitively), addresses and networks in CIDR notation (10.0.0.0/8, fd00::/8),
 * or "*" alone: anything. */
typedef struct net_allow net_allow;

/* Parses a comma-separated list (spaces around items are ignored; "" is the empty list).
 * GD_EINVAL with the item that is wrong in err; GD_ENOMEM. */
gd_err net_allow_parse(const char *list, net_allow **out, char *err, size_t errlen);
void net_allow_free(net_allow *a);
/* Whether the list is "*". */
bool net_allow_any(const net_allow *a);
/* Whether host (a URL's host: a name, an IPv4 address, or an IPv6 one with or without its
 * brackets) is named by the list, or is an address inside one of its networks. */
bool net_allow_host(const net_allow *a, const char *host);
/* Whether sa is inside one of the list's addresses or networks. */
bool net_allow_addr(const net_allow *a, const struct sockaddr *sa);

/* An IPv4 network: its address in host order, and its prefix length. */
typedef struct {
    uint32_t net;
    int bits;
} net_v4;

/* The IPv4 networks a command run for a user who is not an admin is kept from (as unreachable
 * routes of its network namespace): the private networks (10.0.0.0/8, 100.64.0.0/10,
 * 172.16.0.0/12, 192.168.0.0/16), link-local addresses, and this host's own addresses
 * (getifaddrs; 127.0.0.0/8 is the namespace's own), less the addresses and networks the list a
 * names (its host names are not looked up: a route is by address). Not the reserved ranges that
 * net_addr_internal also refuses (documentation, benchmarking, multicast): no network's
 * services live there, and some networks route them as if public. Into out, at most max; the
 * count, or -1 when they do not fit. */
int net_v4_unreachable(const net_allow *a, net_v4 *out, int max);

#endif
