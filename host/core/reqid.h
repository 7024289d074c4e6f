/* reqid.h - request ids (X-Request-Id) and W3C trace context (traceparent).
 *
 * Each HTTP request has an id: the client's X-Request-Id when it is safe
 * to repeat (1-128 visible ASCII characters, no quote or backslash), else
 * one made here (32 hex digits). While a thread works on a request, the id
 * and the request's traceparent are that thread's "current" ones: every
 * log line it writes carries the id, and every bank call it starts carries
 * X-Request-Id and a child traceparent (executor.c).
 */
#ifndef PAGOFLEX_REQID_H
#define PAGOFLEX_REQID_H

#include <stdbool.h>

#define REQID_MAX 128        /* longest id accepted from a client */
#define REQID_TRACEPARENT 55 /* "00-<32 hex>-<16 hex>-<2 hex>" */

/* The id of a request that sent `incoming` (NULL: no header) into out:
 * `incoming` itself when it is 1..REQID_MAX visible ASCII characters with
 * no '"' or '\\', else 32 random hex digits. Returns true when the
 * client's id was kept. Never fails (a RAND failure falls back to the
 * clock and a counter). */
bool reqid_accept(const char *incoming, char out[REQID_MAX + 1]);

/* True when `tp` is a W3C traceparent of version 00 with a non-zero trace
 * id and parent id, in lower-case hex. */
bool reqid_traceparent_valid(const char *tp);

/* A traceparent for a call made on behalf of `tp` (valid): the same trace
 * id and flags, a new random parent (span) id. */
void reqid_traceparent_child(const char *tp, char out[REQID_TRACEPARENT + 1]);

/* Make `id` and `traceparent` (either may be NULL) the calling thread's
 * current ones until the next call; NULL, NULL clears them. The strings
 * are not copied: they must outlive the time they are current. */
void reqid_set_current(const char *id, const char *traceparent);

/* The calling thread's current request id / traceparent, or NULL. */
const char *reqid_current(void);
const char *reqid_current_traceparent(void);

#endif
