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

/* Where the bank sends the webhooks of account pl->account:
 * <public_url>/webhooks/<path> for "default", else
 * <public_url>/webhooks/<path>/<account>. In the arena; NULL on OOM. */
const char *bankcall_webhook_url(const char *public_url, const registry_plugin *pl, pagoflex_arena *arena);

/* The pagoflex_payment a connector sees for stored row `row` (its webhook
 * URL is bankcall_webhook_url). Strings in the arena. 0, or -1 on OOM. */
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

/* ---- ABI 1.2: one call path for every flow ------------------------------
 *
 * A 1.2 plugin with flows is called through flow_request/flow_response; a
 * 1.0/1.1 plugin through the host's adapter: AUTHORIZE (automatic capture
 * only) is build_request/handle_response, PAYMENT_SYNC is
 * sync_request/sync_response; every other flow is PAGOFLEX_ERR_UNSUPPORTED.
 * A caller that must not block builds the request with bankcall_flow_request,
 * performs it with bankcall_start and maps it with bankcall_flow_map; one
 * that may block (the reconciler's threads) calls bankcall_flow. */

/* Describe the bank call of in->flow into *req (strings in the arena).
 * PAGOFLEX_OK; PAGOFLEX_ERR_UNSUPPORTED (the plugin lacks the flow, or an
 * old plugin asked for a manual capture) or PAGOFLEX_ERR_INVALID: nothing
 * may be sent; PAGOFLEX_ERR_NOT_FOUND (syncs): nothing to ask the bank by
 * yet; another error: the plugin could not build it. *req written only on
 * PAGOFLEX_OK. */
int bankcall_flow_request(const registry_plugin *pl, const pagoflex_flow_input *in,
                          pagoflex_arena *arena, pagoflex_http_request *req);

/* Map the bank's answer `resp` to in->flow's request into *res (zeroed,
 * size set, strings in the arena). PAGOFLEX_OK, always with a state the
 * flow may report: an answer the plugin cannot read, or a state the flow
 * may not have, is PROCESSING with error_code "connector_error" (outcome
 * unknown, never failed); PAGOFLEX_ERR_NOT_FOUND (syncs only) when the
 * plugin says the bank has no such object. */
int bankcall_flow_map(const registry_plugin *pl, const pagoflex_flow_input *in,
                      const pagoflex_http_response *resp, pagoflex_arena *arena,
                      pagoflex_flow_result *res);

/* Build, perform (blocking, timeout cut to default_timeout_ms) and map one
 * flow. With access tokens: as bankcall_flow_start, blocking while another
 * thread fetches the token; no token to be had is PROCESSING with
 * error_code "token_unavailable" and a CONNECT transport (nothing sent). Returns bankcall_flow_request's error when nothing was sent, else
 * bankcall_flow_map's result; *transport and *http_status (if not NULL)
 * how the request ended. *res written whenever a request was sent. */
int bankcall_flow(const registry_plugin *pl, const pagoflex_flow_input *in,
                  long default_timeout_ms, pagoflex_arena *arena, pagoflex_flow_result *res,
                  pagoflex_transport *transport, int *http_status);

/* Fill *in for the AUTHORIZE flow of `pay` (which the caller keeps for as
 * long as *in is used): capture at once unless manual_capture; the other
 * arguments may be NULL. */
void bankcall_authorize_input(pagoflex_flow_input *in, const pagoflex_payment *pay, bool manual_capture,
                              const char *return_url, const char *payment_method_type,
                              const char *payment_method_token);

/* Start flow `in` without a waiting thread, as bankcall_start does with
 * `req` (built by bankcall_flow_request). For a plugin with access tokens
 * (token_request): get the account's token first (the cached one; or fetch
 * it, one fetch at a time: a flow arriving during a fetch is parked until
 * it ends, no thread waits), set in->access_token (so in must stay valid,
 * like resp, until done) and build the request again with it; when
 * flow_response answers PAGOFLEX_ERR_TOKEN, fetch a new token once and send
 * the flow once more. No token to be had: *resp is a CONNECT transport
 * failure (nothing was sent). Then done(arg), once, from whichever thread
 * ended the last call. */
void bankcall_flow_start(const registry_plugin *pl, pagoflex_flow_input *in, const pagoflex_http_request *req,
                         long default_timeout_ms, pagoflex_arena *arena, pagoflex_http_response *resp,
                         bankq *q, workpool *pool, bankq_done_fn done, void *arg);

/* Run the plugin's webhook_verify on `req`. For a plugin with keys_request:
 * req->keys is the account's cached key set (fetched first, blocking, if
 * there is none yet); on PAGOFLEX_ERR_KEY_UNKNOWN the set is fetched again
 * (at most once a minute per account, keyset.h) and the request verified
 * once more. Returns webhook_verify's status (PAGOFLEX_ERR_NOMEM on OOM). */
int bankcall_webhook_verify(const registry_plugin *pl, pagoflex_webhook_request *req,
                            long default_timeout_ms, pagoflex_arena *arena);

/* True if `state` is a verdict flow `flow` may return. */
bool bankcall_flow_state_ok(pagoflex_flow flow, pagoflex_state state);

#endif
