/*
 * pagoflex/testkit.h - unit-test a connector without the Pagoflex host.
 *
 * The test kit is a small static library (libpagoflex_testkit.a, links
 * OpenSSL's libcrypto) that stands in for the host: a host-services table
 * with real implementations (HMAC-SHA256, hex, base64, constant-time compare,
 * an arena), a credential set, a settable clock, and helpers that build
 * sample payments, bank answers and signed webhooks. Typical use:
 *
 *   pagoflex_testkit *tk = pagoflex_testkit_new();
 *   pagoflex_credentials *creds = pagoflex_testkit_credentials(tk);
 *   pagoflex_testkit_credential_set(tk, "BANCOX_SECRET", "whsec_test");
 *   void *state = NULL;
 *   desc->init(pagoflex_testkit_host(tk), creds, &state);
 *   pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "ARS");
 *   desc->build_request(state, &p, pagoflex_testkit_arena(tk), &req);
 *   ...
 *   desc->fini(state);
 *   pagoflex_testkit_free(tk);
 *
 * Ownership: everything a helper returns lives in the kit's arena (the same
 * arena the plugin is handed) and stays valid until pagoflex_testkit_reset()
 * or pagoflex_testkit_free(). Helpers return NULL (or a zeroed struct with
 * a NULL field) only when memory runs out. Not thread-safe: one kit per
 * thread; the clock is process-wide, like the host's.
 */
#ifndef PAGOFLEX_TESTKIT_H
#define PAGOFLEX_TESTKIT_H

#include <stddef.h>
#include <stdint.h>

#include <pagoflex/connector.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pagoflex_testkit pagoflex_testkit;

/* A webhook delivery as the host would hand it to verify_webhook. */
typedef struct pagoflex_testkit_webhook {
    pagoflex_header headers[8];
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
} pagoflex_testkit_webhook;

/* A new kit: host table, empty arena, empty credential set, real clock.
 * Log lines of the plugin go to stderr unless silenced. NULL on OOM. */
pagoflex_testkit *pagoflex_testkit_new(void);

/* Free the kit, its arena and its credentials (values wiped). NULL: no-op. */
void pagoflex_testkit_free(pagoflex_testkit *tk);

/* The host-services table to pass to init (owned by the kit). */
const pagoflex_host_services *pagoflex_testkit_host(pagoflex_testkit *tk);

/* The arena to pass to entry points (owned by the kit). */
pagoflex_arena *pagoflex_testkit_arena(pagoflex_testkit *tk);

/* Free everything allocated in the arena so far; the arena stays usable. */
void pagoflex_testkit_reset(pagoflex_testkit *tk);

/* The kit's credential set, to pass to init (owned by the kit). */
pagoflex_credentials *pagoflex_testkit_credentials(pagoflex_testkit *tk);

/* Add or replace a credential (both strings copied). 0, or -1 on OOM. */
int pagoflex_testkit_credential_set(pagoflex_testkit *tk, const char *name, const char *value);

/* Fix the clock host->now() returns (Unix seconds); 0 restores the real
 * clock. Process-wide. */
void pagoflex_testkit_set_now(int64_t unix_seconds);

/* 0 (default): plugin log lines go to stderr; 1: they are only counted. */
void pagoflex_testkit_quiet(pagoflex_testkit *tk, int quiet);

/* How many lines the plugin logged at `level` or above, and the last one
 * (in a kit buffer, "" if none). */
size_t pagoflex_testkit_log_count(const pagoflex_testkit *tk, pagoflex_log_level level);
const char *pagoflex_testkit_last_log(const pagoflex_testkit *tk);

/* A sample payment: id "pay_test_<n>" (n counts up per kit), the amount and
 * currency given, reference "order-<n>", webhook_url
 * "https://pagoflex.test/webhooks/test". Strings in the arena. */
pagoflex_payment pagoflex_testkit_payment(pagoflex_testkit *tk, int64_t amount,
                                          const char *currency);

/* A bank answer with HTTP `status` and `body` (NUL-terminated, copied; may
 * be NULL for an empty body), transport OK. */
pagoflex_http_response pagoflex_testkit_response(pagoflex_testkit *tk, int status,
                                                 const char *body);

/* The same with a body of `len` raw bytes. */
pagoflex_http_response pagoflex_testkit_response_bytes(pagoflex_testkit *tk, int status,
                                                       const void *body, size_t len);

/* A request that got no HTTP answer (timeout, connect error, ...). */
pagoflex_http_response pagoflex_testkit_transport_failure(pagoflex_transport transport);

/* A webhook with `body` (copied) and no headers yet. */
pagoflex_testkit_webhook pagoflex_testkit_webhook_new(pagoflex_testkit *tk, const char *body);

/* Append a header (copied). 0, or -1 when full (8 headers) or on OOM. */
int pagoflex_testkit_webhook_header(pagoflex_testkit *tk, pagoflex_testkit_webhook *wh,
                                    const char *name, const char *value);

/* Lower-case hex HMAC-SHA256 of data under secret, in the arena. */
char *pagoflex_testkit_hmac_hex(pagoflex_testkit *tk, const char *secret, const void *data,
                                size_t len);

/* Set (or replace) the non-secret setting name=value that host->setting
 * gives the plugin's init (ABI 1.2). 0, or -1 on a bad argument or when
 * the table is full. */
int pagoflex_testkit_setting_set(pagoflex_testkit *tk, const char *name, const char *value);

/* A Banco-X-style signature header value "t=<t>,v1=<hex>" where hex is the
 * HMAC-SHA256 of "<t>.<body>" under secret, in the arena. */
char *pagoflex_testkit_sign_bancox(pagoflex_testkit *tk, const char *secret, int64_t t,
                                   const void *body, size_t len);

/* ---- ABI 1.2: flows and whole-request webhooks ------------------------ */

/* A realistic input for `flow` on a copy of *payment (the copy lives in the
 * arena; in.payment points to it), as the host would build it:
 *  - AUTHORIZE: operation_id = payment id, capture = 1, return_url
 *    "https://merchant.test/return", payment method card_token
 *    "tok_test_visa";
 *  - CAPTURE: operation_id "cap_test_<n>", amount = the payment's amount;
 *  - VOID: operation_id "void_test_<n>";
 *  - REFUND: operation_id = refund_id = "ref_test_<n>", amount = the
 *    payment's amount, amount_captured likewise, reason
 *    "requested_by_customer";
 *  - PAYMENT_SYNC: operation_id = payment id, amount_captured = 0;
 *  - REFUND_SYNC: as REFUND, amount 0, refund_provider_reference_id
 *    "rf_test_<n>".
 * For every flow but AUTHORIZE a payment without provider_reference_id gets
 * "tx_test_<n>" (the bank knows it by then); request_id is "req_test_<n>".
 * Change any field afterwards (e.g. capture = 0, a partial amount, or
 * refund_provider_reference_id = NULL for "no bank id yet"); to drop the
 * payment's bank id, point in.payment at your own copy. On OOM the result
 * has payment NULL. */
pagoflex_flow_input pagoflex_testkit_flow_input(pagoflex_testkit *tk, pagoflex_flow flow,
                                                const pagoflex_payment *payment);

/* Run one flow as the host does: c->flow_request(in), then, when it
 * succeeds, c->flow_response(in, resp) into *result (zeroed, its size set
 * first, as the host does). *request (may be NULL) receives the described
 * request. Returns flow_request's status when it is not PAGOFLEX_OK, else
 * flow_response's; PAGOFLEX_ERR_UNSUPPORTED without calling anything when
 * the plugin lacks flow entry points or does not declare in->flow in
 * c->flows. Everything the plugin returns lives in the kit's arena. */
int pagoflex_testkit_run_flow(pagoflex_testkit *tk, const pagoflex_connector *c, void *state,
                              const pagoflex_flow_input *in, const pagoflex_http_response *resp,
                              pagoflex_http_request *request, pagoflex_flow_result *result);

/* Sign a delivery of *event the plugin's own way (c->webhook_sample at the
 * kit's clock, host->now()), then run c->webhook_verify and
 * c->webhook_parse on it, as the host does with a real delivery. *request
 * (may be NULL) receives the signed request, e.g. to tamper with it;
 * *parsed (zeroed, size set) the events. Returns the first status that is
 * not PAGOFLEX_OK (webhook_sample's, then verify's, then parse's);
 * PAGOFLEX_ERR_UNSUPPORTED when the plugin lacks one of the three. */
int pagoflex_testkit_webhook_roundtrip(pagoflex_testkit *tk, const pagoflex_connector *c,
                                       void *state, const pagoflex_event *event,
                                       pagoflex_webhook_request *request,
                                       pagoflex_webhook_parsed *parsed);

/* A copy of *req (body and header values copied into the arena) with one
 * change: body byte `body_byte` altered when header is NULL, else the last
 * byte of header `header`'s value altered. Feed it to webhook_verify: a
 * plugin that compares its signature must refuse it. On OOM, or when the
 * byte or header does not exist, the copy is unchanged (check with
 * memcmp if it matters). */
pagoflex_webhook_request pagoflex_testkit_webhook_tampered(pagoflex_testkit *tk,
                                                           const pagoflex_webhook_request *req,
                                                           size_t body_byte, const char *header);

#ifdef __cplusplus
}
#endif

#endif /* PAGOFLEX_TESTKIT_H */
