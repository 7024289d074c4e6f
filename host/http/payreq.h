/* payreq.h - parsing and validating the body of POST /v1/payments. */
#ifndef PAGOFLEX_PAYREQ_H
#define PAGOFLEX_PAYREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pagoflex/connector.h>

#include "currency.h" /* currency_is_iso4217 */

#define PAYREQ_REFERENCE_MAX 128
#define PAYREQ_DESCRIPTION_MAX 1024
#define PAYREQ_URL_MAX 2048
#define PAYREQ_TOKEN_MAX 128
#define PAYREQ_AMOUNT_MAX 1000000000000000LL /* 10^15 minor units */

typedef struct payreq {
    int64_t amount;
    char currency[4];
    const char *connector;   /* in the arena */
    const char *reference;   /* or NULL */
    const char *description; /* or NULL */
    bool manual_capture;              /* capture_method "manual" (default "automatic") */
    const char *return_url;           /* http(s) URL, or NULL */
    const char *payment_method_type;  /* "card_token", or NULL */
    const char *payment_method_token; /* the bank's card token, or NULL */
    const char *metadata;             /* compact JSON object text, or NULL (never sent to a bank) */
} payreq;

/* Why a body was refused: HTTP status 400 (not JSON, an unknown field) or
 * 422 (a field's value). */
typedef struct payreq_error {
    int status;
    const char *code;  /* "invalid_json", "unknown_parameter", "missing_field", "invalid_field" */
    const char *field; /* or NULL */
    char message[256];
} payreq_error;

/* Parse `body`; strings are copied into `arena`. 0 and *out filled on
 * success; -1 and *err filled otherwise (nothing else is touched). */
int payreq_parse(const char *body, size_t len, pagoflex_arena *arena, payreq *out,
                 payreq_error *err);


#endif
