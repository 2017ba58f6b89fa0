/* curl_loop: a libcurl multi handle driven by a core/loop (the socket interface: the loop
 * watches the sockets libcurl names and hands it only the ready ones, and runs libcurl's one
 * timer). The MCP HTTP transports run their transfers on one (the providers have a client of
 * their own, src/providers/h1client.c). libcurl itself is loaded on the first curl_loop_new
 * (src/core/curl_lazy.c).
 *
 * Threads: everything here runs on the loop's thread, as do the done callbacks. */
#ifndef GD_CURL_LOOP_H
#define GD_CURL_LOOP_H

#include <curl/curl.h>
#include <stddef.h>

#include "core/err.h"
#include "core/loop.h"

typedef struct curl_loop curl_loop;

/* A transfer added with curl_loop_add has ended with code (CURLE_OK or why not): called on the
 * loop, from inside libcurl's socket handling. easy is still in the multi handle: the callback
 * removes it (curl_loop_remove) and may clean it up, add new transfers or free other ones. */
typedef void (*curl_loop_done)(CURL *easy, CURLcode code, void *ud);

/* A multi handle on l (borrowed, must outlive it). NULL with a message in err when libcurl
 * cannot be loaded or initialised, or when out of memory. tag names the user in logs. */
curl_loop *curl_loop_new(loop *l, const char *tag, char *err, size_t errlen);
/* Frees the multi handle. Transfers still added are removed first, without their done being
 * called; their easy handles stay the caller's. NULL is ignored. */
void curl_loop_free(curl_loop *cl);
/* Starts easy (whose CURLOPT_PRIVATE the caller must not set: it is curl_loop's) on cl; done(easy,
 * code, ud) once when it ends. GD_ENOMEM when libcurl refuses it (done is then not called). */
gd_err curl_loop_add(curl_loop *cl, CURL *easy, curl_loop_done done, void *ud);
/* Stops a transfer (added and not yet removed) without calling its done; easy stays the
 * caller's. Safe from any callback, easy's own included. */
void curl_loop_remove(curl_loop *cl, CURL *easy);

#endif
