/* bankcall.h - calling a bank through a connector: create and status sync.
 *
 * Shared by the API (the first create call) and the reconciler (retries and
 * syncs), so both map answers the same way: an answer the connector cannot
 * read is an unknown outcome (processing), never a failure.
 *
 * `default_timeout_ms` (bank_timeout_ms) is a request's timeout when the
 * connector sets none, and the longest any call may take: a connector's
 * larger req->timeout_ms is cut to it (logged once), because the
 * reconciler's lease and recover_after_ms are sized by it.
 */
#ifndef PAGOFLEX_BANKCALL_H
#define PAGOFLEX_BANKCALL_H

#include <stdbool.h>

#include <pagoflex/connector.h>

#include "bankq.h"
#include "registry.h"
#include "store.h"
#include "workpool.h"

/* Count a call into plugin code on the worker's crash board (pl->busy), so
 * a worker that dies inside a plugin can be blamed on it. Pair every
 * bankcall_enter with a bankcall_leave. */
void bankcall_enter(const registry_plugin *pl);
void bankcall_leave(const registry_plugin *pl);

/* The pagoflex_payment a connector sees for stored row `row` (its webhook
 * URL is <public_url>/webhooks/<path>). Strings in the arena. 0, or -1 on OOM. */
int bankcall_payment(const char *public_url, const registry_plugin *pl, const store_payment *row,
                     pagoflex_arena *arena, pagoflex_payment *out);

/* Perform `req` for `pay` and map the answer with handle_response into
 * *res (strings in the arena). Never fails: an unreadable answer is
 * PROCESSING with error_code "connector_error". *transport (if not NULL)
 * gets how the request ended, *http_status (if not NULL) the bank's HTTP
 * status (0 without an answer). */
void bankcall_create(const registry_plugin *pl, const pagoflex_payment *pay,
                     const pagoflex_http_request *req, long default_timeout_ms,
                     pagoflex_arena *arena, pagoflex_payment_result *res,
                     pagoflex_transport *transport, int *http_status);

/* Map the bank's answer `resp` to a create call with handle_response into
 * *res, exactly as bankcall_create does. */
void bankcall_map_create(const registry_plugin *pl, const pagoflex_payment *pay,
                         const pagoflex_http_response *resp, pagoflex_arena *arena,
                         pagoflex_payment_result *res);

/* Start performing `req` without a thread waiting for it: on the bank queue
 * `q` (libcurl multi), or, for a connector with its own blocking
 * execute_request, on the small pool `pool`. When *resp is filled, done(arg)
 * is called from that other thread. Until then the caller leaves `arena`
 * and `resp` alone. Never fails to call done. */
void bankcall_start(const registry_plugin *pl, const pagoflex_http_request *req, long default_timeout_ms,
                    pagoflex_arena *arena, pagoflex_http_response *resp, bankq *q, workpool *pool,
                    bankq_done_fn done, void *arg);

/* True if the connector implements ABI 1.1 status sync. */
bool bankcall_has_sync(const registry_plugin *pl);

/* Ask the bank for the status of `pay`. PAGOFLEX_OK with *res (PENDING,
 * SUCCEEDED, FAILED, or PROCESSING = the answer says nothing);
 * PAGOFLEX_ERR_NOT_FOUND (the bank has no such payment, or there is no bank
 * id to ask by); PAGOFLEX_ERR_UNSUPPORTED (no sync in this connector);
 * another error if the connector could not build the request. */
int bankcall_sync(const registry_plugin *pl, const pagoflex_payment *pay,
                  long default_timeout_ms, pagoflex_arena *arena, pagoflex_payment_result *res);

#endif
