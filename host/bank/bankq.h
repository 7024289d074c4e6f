/* bankq.h - bank calls without a thread each: libcurl's multi interface.
 *
 * One thread drives every bank request of the process through one curl
 * multi handle, so connections to each bank are kept alive and reused, and
 * thousands of slow calls wait together at the cost of a socket each. A
 * caller submits a request and is called back (on the bank thread) once the
 * answer, or the transport failure, is in. Used by the HTTP layer with
 * libmicrohttpd's suspend/resume: the connection waits, no thread does.
 */
#ifndef PAGOFLEX_BANKQ_H
#define PAGOFLEX_BANKQ_H

#include <pagoflex/connector.h>

#include "tlscreds.h"

typedef struct bankq bankq;

/* Called on the bank thread when `out` is filled. Must be quick (resume a
 * connection, signal a condition): it runs between transfers. */
typedef void (*bankq_done_fn)(void *arg);

/* Start the bank thread. `max_per_host` bounds the connections to one bank
 * (0: no bound; requests beyond it wait for a free connection). NULL on
 * failure. */
bankq *bankq_start(long max_per_host);

/* Perform `req` (timeout: req->timeout_ms, else default_timeout_ms). The
 * answer's body is copied into `arena`, then `out` is filled and done(arg)
 * called; until then the caller must not touch `arena` or `out`. `req` and
 * the memory it points to must stay valid until done is called (the arena
 * holding them belongs to the waiting request). Never fails to call done:
 * a request that cannot be started is answered as a transport error.
 * `tls`: the plugin's client certificate (NULL: none), which must outlive
 * the call. */
void bankq_submit(bankq *q, const pagoflex_http_request *req, long default_timeout_ms,
                  const tlscreds *tls, pagoflex_arena *arena, pagoflex_http_response *out, bankq_done_fn done, void *arg);

/* Requests submitted and not yet answered (for metrics and tests). */
long bankq_in_flight(bankq *q);

/* Stop the bank thread: requests still in flight are aborted and answered
 * as transport errors, and later submissions are answered at once the same
 * way. Idempotent; NULL is a no-op. */
void bankq_stop(bankq *q);

/* Stop (if not yet) and free everything. NULL is a no-op. */
void bankq_free(bankq *q);

#endif
