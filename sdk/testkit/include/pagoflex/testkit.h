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

#ifdef __cplusplus
}
#endif

#endif /* PAGOFLEX_TESTKIT_H */
