/* idempotency.h - Idempotency-Key of POST /v1/payments.
 *
 * The first request with a key (per scope: one API key) creates the
 * payment and its answer is remembered for idempotency_ttl_s; the same key
 * with the same body gets that answer again without calling the bank; with
 * another body it is refused. A request that finds the key still being
 * answered waits up to idempotency_wait_ms, then is told to retry (409).
 */
#ifndef PAGOFLEX_IDEMPOTENCY_H
#define PAGOFLEX_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>

#include <pagoflex/connector.h>

#include "store.h"

#define IDEMPOTENCY_KEY_MAX 255

/* True if `key` is 1..255 printable ASCII characters (0x20..0x7e). */
bool idempotency_key_valid(const char *key);

/* Lower-case hex SHA-256 of the request body, into out[65]. 0, or -1. */
int idempotency_request_hash(const char *body, size_t len, char out[65]);

/* What a request finds under a key someone else claimed. */
typedef enum idempotency_verdict {
    IDEMPOTENCY_REPLAY,      /* answered: *status and *response are the first answer */
    IDEMPOTENCY_MISMATCH,    /* the key was used with another body */
    IDEMPOTENCY_BUSY,        /* still being answered after the wait: ask to retry */
    IDEMPOTENCY_STALE,       /* never answered (its host died): *payment_id to answer from */
    IDEMPOTENCY_GONE,        /* expired meanwhile: claim it again */
    IDEMPOTENCY_UNAVAILABLE  /* PostgreSQL unreachable */
} idempotency_verdict;

/* Read (scope, key), polling while it is being answered, for at most
 * wait_ms. Outputs (strings in the arena) are written for REPLAY
 * (status, response) and STALE (payment_id). */
idempotency_verdict idempotency_await(store *st, const char *scope, const char *key,
                                      const char *request_hash, long wait_ms, long stale_ms,
                                      pagoflex_arena *arena, int *status, const char **response,
                                      const char **payment_id);

#endif
