/* apikey.h - API keys kept in PostgreSQL as SHA-256 hashes only.
 *
 * A key is "pfk_" + 12 characters [a-z0-9] (the prefix: public, unique, what
 * a request is looked up by) + "_" + 64 hex digits (32 bytes from
 * RAND_bytes: the secret). The table api_keys (migration 3) holds the prefix
 * and SHA-256 of the whole key. A fast hash is enough here: the key carries
 * 256 bits of entropy, so nothing can be guessed from its hash; slow hashes
 * (bcrypt, Argon2) exist for low-entropy passwords and would only cost CPU on
 * every request.
 *
 * A request is checked against the database each time (one indexed SELECT,
 * no cache), so a revoked key stops working at once on every host.
 */
#ifndef PAGOFLEX_APIKEY_H
#define PAGOFLEX_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#include <pagoflex/connector.h>

#include "store.h"
#include "store_merchant.h"

#define APIKEY_TAG "pfk_"
#define APIKEY_ID_CHARS 12
#define APIKEY_PREFIX_LEN (4 + APIKEY_ID_CHARS)          /* "pfk_" + 12 */
#define APIKEY_SECRET_HEX 64
#define APIKEY_LEN (APIKEY_PREFIX_LEN + 1 + APIKEY_SECRET_HEX)
#define APIKEY_NAME_MAX 100
/* A merchant id: "mer_" + up to 40 of [0-9a-z_] (migration 10's CHECK). */
#define APIKEY_MERCHANT_MAX 44
/* The merchant of rows made before merchants existed, and of the config's
 * api_key_sha256 keys (migration 10). */
#define APIKEY_DEFAULT_MERCHANT "mer_default"

/* A key just made: the only moment its clear text exists. */
typedef struct apikey_created {
    char key[APIKEY_LEN + 1];
    char prefix[APIKEY_PREFIX_LEN + 1];
    long long id;
} apikey_created;

/* One row of `pagoflex apikey list` (strings in the arena; revoked_at NULL
 * while active). Never the hash. */
typedef struct apikey_info {
    long long id;
    const char *name;
    const char *prefix;
    const char *created_at;
    const char *revoked_at;
    const char *merchant_id; /* the merchant the key acts for */
} apikey_info;

/* The prefix of a well-formed key into prefix_out; -1 (nothing written) if
 * `key` does not have the shape of an API key. */
int apikey_prefix_of(const char *key, char prefix_out[APIKEY_PREFIX_LEN + 1]);

/* Make a key named `name` (1..100 printable characters) for merchant
 * `merchant_id` (NULL: the default merchant) and store its prefix and
 * hash. STORE_OK with *out filled (the caller shows out->key once and
 * wipes it); STORE_NOT_FOUND when there is no such merchant or it is
 * disabled; STORE_ERROR for a bad name or RNG failure; STORE_UNAVAILABLE;
 * err says what on every failure. The schema must be migrated. */
store_result apikey_create(store *s, const char *merchant_id, const char *name, apikey_created *out,
                           char *err, size_t errlen);

/* Make merchant `merchant_name` (1..100 bytes, no control characters) and
 * its first key `key_name` in one statement: both or neither exist. On
 * STORE_OK merchant_id_out is its new id ("mer_" + 26 of [0-9a-z]) and *out
 * the key, as for apikey_create; otherwise nothing is stored and err says
 * why. */
store_result apikey_create_merchant(store *s, const char *merchant_name, const char *key_name,
                                    char merchant_id_out[STORE_MERCHANT_ID_LEN + 1], apikey_created *out,
                                    char *err, size_t errlen);

/* Is `key` an active key (not revoked, its merchant not disabled)? Looks
 * the row up by the prefix and compares SHA-256 of `key` with the stored
 * hash with CRYPTO_memcmp. STORE_OK with *valid set and, when valid, the
 * key's merchant id in merchant_out; or STORE_UNAVAILABLE / STORE_ERROR
 * (then *valid is false). merchant_out is "" unless valid. */
store_result apikey_verify(store *s, const char *key, bool *valid,
                           char merchant_out[APIKEY_MERCHANT_MAX + 1]);

/* Every key, oldest first: *out (arena array) and *count, on STORE_OK only. */
store_result apikey_list(store *s, pagoflex_arena *arena, apikey_info **out, size_t *count);

/* Revoke the key whose id (digits) or prefix is `which`. STORE_OK (revoked
 * now, *revoked_at set in the arena), STORE_CONFLICT (was already revoked),
 * STORE_NOT_FOUND, STORE_UNAVAILABLE, STORE_ERROR. */
store_result apikey_revoke(store *s, const char *which, pagoflex_arena *arena,
                           const char **revoked_at);

#endif
