/* executor.h - the host's libcurl executor for connector HTTP requests. */
#ifndef PAGOFLEX_EXECUTOR_H
#define PAGOFLEX_EXECUTOR_H

#include <curl/curl.h>

#include <pagoflex/connector.h>

#include "tlscreds.h"

#define EXECUTOR_MAX_RESPONSE (1u << 20) /* larger answers are a transport error */

/* Call once per process before any thread uses the executor. 0 on success. */
int executor_global_init(void);

/* Perform `req` (the caller's thread blocks; each thread reuses its own
 * connection cache, so bank connections stay alive). `default_timeout_ms`
 * applies when req->timeout_ms is 0. Never fails: a request that gets no
 * HTTP answer is reported through out->transport (TIMEOUT, CONNECT, ERROR).
 * The body and headers of the answer are allocated in `arena`. `tls` is
 * the plugin's client certificate (mutual TLS), or NULL. */
void executor_perform(const pagoflex_http_request *req, long default_timeout_ms,
                      const tlscreds *tls, pagoflex_arena *arena, pagoflex_http_response *out);

/* Where a transfer writes the answer's body (bounded by EXECUTOR_MAX_RESPONSE). */
typedef struct executor_body {
    char *data;
    size_t len;
    size_t cap;
    int overflow;
} executor_body;

/* Set easy handle `h` up to perform `req` (the shared part of the blocking
 * executor and of bankq): URL, method, headers, body, timeouts, protocols,
 * body sink, and the plugin's client certificate `tls` (NULL: none). On success *headers is the header list to free with
 * executor_headers_free once the transfer is over. -1 on allocation failure (nothing to free). */
int executor_prepare(CURL *h, const pagoflex_http_request *req, long default_timeout_ms,
                     const tlscreds *tls, pagoflex_arena *arena, executor_body *sink, struct curl_slist **headers);

/* Wipe every line of a header list made by executor_prepare (one holds
 * the bank's Authorization header), then free it. NULL is a no-op. */
void executor_headers_free(struct curl_slist *list);

/* Turn a finished transfer (result `rc`) into `out`, copying the body into
 * `arena`, and release the sink. Never fails: problems are transport errors. */
void executor_finish(CURL *h, CURLcode rc, const pagoflex_http_request *req, executor_body *sink,
                     pagoflex_arena *arena, pagoflex_http_response *out);

#endif
