/* store_idem.h - Idempotency-Key records of POST /v1/payments in PostgreSQL.
 *
 * A key lives in a scope (one per API key), holds the hash of the first
 * request's body, the payment it created and, once made, the first answer.
 * The key row and its payment are inserted by ONE statement (INSERT ... ON
 * CONFLICT), so any number of threads and hosts agree on who owns a key
 * and a key never exists without its payment.
 */
#ifndef PAGOFLEX_STORE_IDEM_H
#define PAGOFLEX_STORE_IDEM_H

#include "store.h"

/* A stored key. Strings live in the arena of the call. */
typedef struct store_idem_key {
    const char *request_hash;
    int status;           /* HTTP status of the first answer; 0 while it is being made */
    const char *response; /* body of the first answer; NULL while it is being made */
    const char *payment_id;
    bool stale;           /* being made for longer than the caller's stale bound */
} store_idem_key;

/* Claim (scope, key) for `ttl_s` seconds and insert payment `p` (state
 * created, history source "api") in one statement. An expired key is taken
 * over. STORE_OK: claimed, *out holds the payment. STORE_DUPLICATE: a live
 * row holds the key (read it with store_idem_get); nothing was written.
 * STORE_CONFLICT: p->connector_account is not (any more) the account the
 * merchant uses for p->connector; nothing was written, the key included.
 * STORE_UNAVAILABLE / STORE_ERROR: nothing was written. */
store_result store_idem_create_payment(store *s, const char *scope, const char *key,
                                       const char *request_hash, long ttl_s,
                                       const store_payment *p, pagoflex_arena *arena,
                                       store_payment *out);

/* Read the live row of (scope, key); `stale_ms` sets out->stale. STORE_OK
 * (*out written), STORE_NOT_FOUND (absent or expired), STORE_UNAVAILABLE,
 * STORE_ERROR. */
store_result store_idem_get(store *s, const char *scope, const char *key, long stale_ms,
                            pagoflex_arena *arena, store_idem_key *out);

/* Record the first answer of (scope, key) unless one is recorded already
 * (the first writer wins). STORE_OK, STORE_CONFLICT (already answered or
 * gone), STORE_UNAVAILABLE, STORE_ERROR. */
store_result store_idem_complete(store *s, const char *scope, const char *key, int status,
                                 const char *response);

/* Claim (scope, key) for `ttl_s` seconds for an operation on `object_id`
 * (a payment's capture or cancel, a refund) without inserting anything
 * else; an expired key is taken over. STORE_OK: claimed. STORE_DUPLICATE: a
 * live row holds the key (read it with store_idem_get). Else nothing
 * was written. */
store_result store_idem_claim(store *s, const char *scope, const char *key,
                              const char *request_hash, long ttl_s, const char *object_id);

/* Take over (scope, key) held under request_hash or other_hash (the same
 * request's hash in its pre-upgrade form, or NULL) when it is unanswered
 * and older than `stale_ms` (its request died before making its object):
 * one caller of many wins. STORE_OK: taken (its object id is unchanged),
 * STORE_CONFLICT: not taken, else a store error. */
store_result store_idem_takeover(store *s, const char *scope, const char *key, const char *request_hash,
                                 const char *other_hash, long stale_ms);

/* Expired keys are purged by store_janitor_round (store_janitor.h). */

#endif
