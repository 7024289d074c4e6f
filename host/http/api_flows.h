/* api_flows.h - the routes of issue 11's flows: capture, cancel, refunds,
 * and the payment object with its amounts (api_flows.c), and the few hooks
 * into api.c's request plumbing they use.
 *
 *   POST /v1/payments/{id}/capture  {"amount_to_capture"?}
 *   POST /v1/payments/{id}/cancel
 *   POST /v1/refunds                {"payment_id", "amount"?, "reason"?, "metadata"?}
 *   GET  /v1/refunds/{id}
 *   GET  /v1/refunds?payment_id=    newest first
 *
 * Each POST claims its operation in the database before anything is sent
 * to the bank (a payment in the wrong state is 409 invalid_state with its
 * status, and nothing is sent), then calls the bank with the connection
 * suspended (no thread waits), then records the outcome. Idempotency-Key
 * works as on POST /v1/payments, scoped per route.
 */
#ifndef PAGOFLEX_API_FLOWS_H
#define PAGOFLEX_API_FLOWS_H

#include <stdbool.h>

#include <jansson.h>
#include <microhttpd.h>

#include <pagoflex/connector.h>

#include "api.h"
#include "store.h"
#include "store_flows.h"

typedef struct api_request api_request;
struct api_flow;

/* ---- provided by api.c: a request's parts and its replies --------------- */

api_context *api_req_ctx(api_request *r);
struct MHD_Connection *api_req_conn(api_request *r);
pagoflex_arena *api_req_arena(api_request *r);
/* The body read ("" when none); *len its length. */
const char *api_req_body(api_request *r, size_t *len);
/* The merchant the request's API key belongs to ("" before authorization). */
const char *api_req_merchant(api_request *r);
/* Count the request under connector `key` in the metrics. */
void api_req_set_connector(api_request *r, const char *key);
/* Queue a reply; `doc` is released. */
enum MHD_Result api_req_reply(api_request *r, unsigned status, json_t *doc);
enum MHD_Result api_req_reply_text(api_request *r, unsigned status, const char *text,
                                   const char *hname, const char *hvalue);
/* Queue `text` (copied) with `status` and Content-Type `content_type`. */
enum MHD_Result api_req_reply_raw(api_request *r, unsigned status, const char *text, const char *content_type);
/* {"error": {code, message, field}}. */
enum MHD_Result api_req_error(api_request *r, unsigned status, const char *code, const char *field,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
enum MHD_Result api_req_db_unavailable(api_request *r);
/* The object of an error body ({"code", "message", "field", "request_id",
 * "doc_url"}) for a route that adds members to it; `message` JSON-safe
 * text. New reference, NULL on OOM. */
/* The methods a path takes (a static string, or NULL), sent as Allow with
 * a 405 answer. */
void api_req_allow(api_request *r, const char *allowed);
json_t *api_req_error_object(api_request *r, const char *code, const char *field, const char *message);
/* True if the request carries a valid API key; otherwise the 401/503 is
 * queued and *ret is its result. */
bool api_req_authorized(api_request *r, enum MHD_Result *ret);
/* True if the body is empty or JSON (content type, depth); otherwise the
 * 415/400 is queued and *ret is its result. */
bool api_req_json_body(api_request *r, enum MHD_Result *ret);
/* The Idempotency-Key scope of this request's merchant on `route` (in the
 * arena), or NULL on OOM or before authorization: a key used on two routes
 * does not collide. */
const char *api_req_idempotency_scope(api_request *r, const char *route);
/* prefix_ + 26 random characters (arena), or NULL. */
char *api_req_new_id(api_request *r, const char *prefix);
/* Suspend the connection; api.c calls api_flows_resumed(r, f) once it is
 * resumed (with api_req_resume). */
void api_req_suspend(api_request *r, struct api_flow *f);
/* Resume a connection suspended with api_req_suspend (any thread). */
void api_req_resume(void *r);
/* What runs when a connection suspended with api_req_suspend_fn is resumed:
 * it answers the request, or suspends it again. */
typedef enum MHD_Result (*api_req_resumed_fn)(api_request *r, void *arg);
/* Suspend the connection until api_req_resume(r) (any thread); then
 * api.c calls fn(r, arg) on an HTTP thread. For routes outside api_flows.c
 * that wait on something else than a bank (the group commit of a webhook). */
void api_req_suspend_fn(api_request *r, api_req_resumed_fn fn, void *arg);
/* True when the client is gone and the request is finished for the record
 * only (its reply is dropped): it must not suspend again. */
bool api_req_gone(api_request *r);

/* ---- provided by api_flows.c --------------------------------------------- */

/* The payment object (a new reference; NULL on OOM). */
json_t *api_flows_payment_json(const store_payment *p);

/* The JSON object of refund `f` (new reference; NULL on OOM). */
json_t *api_flows_refund_json(const store_refund *f);

/* POST /v1/payments/{id}/capture (cancel false) or /cancel (true). */
enum MHD_Result api_flows_payment_operation(api_request *r, const char *id, bool cancel);
/* POST /v1/refunds. */
enum MHD_Result api_flows_refund_create(api_request *r);
/* GET /v1/refunds/{id}. */
enum MHD_Result api_flows_refund_get(api_request *r, const char *id);
/* GET /v1/refunds?payment_id=. */
/* A request suspended by this module runs again: its bank answer is
 * recorded (and under a key, made the key's answer), then replied. api.c
 * also calls it when the connection ended before the request ran again
 * (the reply is then dropped), so the answer is recorded either way. */
enum MHD_Result api_flows_resumed(api_request *r, struct api_flow *f);
/* True if `f` is suspended on a wait for another request's key, not on
 * the bank: nothing of its own to record. */
bool api_flows_waiting(const struct api_flow *f);

#endif
