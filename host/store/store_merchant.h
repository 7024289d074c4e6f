/* store_merchant.h - merchant accounts (issue 13, migration 10).
 *
 * A merchant owns its API keys, payments and refunds. Its id is "mer_" and
 * 26 random [0-9a-z], like a payment's; mer_default owns what existed
 * before merchants and acts for the config's api_key_sha256 keys. A
 * disabled merchant's keys are refused by apikey_verify, whose statement
 * joins merchants on every request: disabling applies at once on every
 * host. Merchants are made with their first key (apikey_create_merchant)
 * and never deleted: their payments keep pointing at them.
 */
#ifndef PAGOFLEX_STORE_MERCHANT_H
#define PAGOFLEX_STORE_MERCHANT_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#define STORE_MERCHANT_ID_CHARS 26
#define STORE_MERCHANT_ID_LEN (4 + STORE_MERCHANT_ID_CHARS) /* "mer_" + 26 */
#define STORE_MERCHANT_NAME_MAX 100
#define STORE_MERCHANT_DEFAULT "mer_default"

/* One merchant (strings in the caller's arena; disabled_at NULL while active). */
typedef struct store_merchant {
    const char *id;
    const char *name;
    const char *created_at;  /* RFC 3339, UTC */
    const char *disabled_at; /* RFC 3339, UTC, or NULL */
} store_merchant;

/* Draw a new merchant id into out ("mer_" + 26 of [0-9a-z], NUL-ended).
 * 0, or -1 when the OpenSSL random generator fails (out is then ""). */
int store_merchant_new_id(char out[STORE_MERCHANT_ID_LEN + 1]);

/* Is `name` a merchant name: 1 to 100 bytes, no control characters? */
bool store_merchant_name_ok(const char *name);

/* Every merchant, oldest first: *out (arena array, NULL when none) and
 * *count, written on STORE_OK only. */
store_result store_merchant_list(store *s, pagoflex_arena *arena, store_merchant **out, size_t *count);

/* Merchant `id`: STORE_OK with *out, STORE_NOT_FOUND, or the store's error. */
store_result store_merchant_get(store *s, const char *id, pagoflex_arena *arena, store_merchant *out);

/* Disable merchant `id` now: from the next request on, on every host, its
 * API keys are refused. STORE_OK with *disabled_at (arena); STORE_CONFLICT
 * when it was already disabled (*disabled_at the earlier time);
 * STORE_NOT_FOUND; STORE_ERROR for mer_default, which acts for the
 * config's keys (remove those from the config instead). */
store_result store_merchant_disable(store *s, const char *id, pagoflex_arena *arena,
                                    const char **disabled_at);

#endif
