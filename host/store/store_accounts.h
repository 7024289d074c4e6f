/* store_accounts.h - which connector account each merchant uses (migration 11).
 *
 * A connector account is (connector key, account name); its credentials are
 * <credentials_dir>/<plugin>/<account>.cfg.enc ("default": <plugin>.cfg.enc).
 * connector_accounts binds a merchant to one account per connector. The
 * default merchant, mer_default, uses account "default" of every connector
 * it has no row for; any other merchant without a row has no account for
 * that connector.
 */
#ifndef PAGOFLEX_STORE_ACCOUNTS_H
#define PAGOFLEX_STORE_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* One binding, as listed. Strings in the caller's arena. */
typedef struct store_account_binding {
    const char *merchant_id;
    const char *connector;
    const char *account;
    const char *created_at; /* RFC 3339, UTC */
} store_account_binding;

/* True if `account` is a valid account name, [a-z0-9_-]{1,32}. */
bool store_account_name_valid(const char *account);

/* The account merchant `merchant_id` uses for `connector`, by the rule
 * above: STORE_OK with *account (in the arena), STORE_NOT_FOUND when it has
 * none, STORE_UNAVAILABLE / STORE_ERROR (*account untouched). */
store_result store_account_resolve(store *s, const char *merchant_id, const char *connector,
                                   pagoflex_arena *arena, const char **account);

/* Bind merchant `merchant_id` to `account` of `connector`, replacing its
 * binding for that connector if any (payments made before keep theirs).
 * STORE_OK; STORE_NOT_FOUND when there is no such merchant; STORE_ERROR on
 * an invalid connector key or account name (nothing written). */
store_result store_account_bind(store *s, const char *merchant_id, const char *connector,
                                const char *account);

/* Remove the binding of (merchant_id, connector). STORE_OK, STORE_NOT_FOUND
 * (there was none). */
store_result store_account_unbind(store *s, const char *merchant_id, const char *connector);

/* The bindings of `merchant_id` (NULL: of every merchant), by merchant and
 * connector, into *items (arena; NULL when none) and *count, on STORE_OK. */
store_result store_account_list(store *s, const char *merchant_id, pagoflex_arena *arena,
                                store_account_binding **items, size_t *count);

#endif
