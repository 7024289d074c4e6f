/* executor.h - the host's libcurl executor for connector HTTP requests. */
#ifndef PAGOFLEX_EXECUTOR_H
#define PAGOFLEX_EXECUTOR_H

#include <pagoflex/connector.h>

#define EXECUTOR_MAX_RESPONSE (1u << 20) /* larger answers are a transport error */

/* Call once per process before any thread uses the executor. 0 on success. */
int executor_global_init(void);

/* Perform `req` (the caller's thread blocks; each thread reuses its own
 * connection cache, so bank connections stay alive). `default_timeout_ms`
 * applies when req->timeout_ms is 0. Never fails: a request that gets no
 * HTTP answer is reported through out->transport (TIMEOUT, CONNECT, ERROR).
 * The body and headers of the answer are allocated in `arena`. */
void executor_perform(const pagoflex_http_request *req, long default_timeout_ms,
                      pagoflex_arena *arena, pagoflex_http_response *out);

#endif
