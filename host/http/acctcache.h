/* acctcache.h - a worker's memory of the connector account each merchant uses.
 *
 * POST /v1/payments builds the bank request before it stores the payment,
 * so it must know the merchant's account for the connector first. The
 * database decides (the payment INSERT resolves the account itself and
 * writes nothing when it is not the one the request was built with,
 * store.h); this cache only spares the look-up before it: a stale entry
 * costs one refused INSERT and a fresh look-up, never a payment sent with
 * the wrong account. Bounded (a fixed table, an entry may push out another)
 * and safe from any thread.
 */
#ifndef PAGOFLEX_ACCTCACHE_H
#define PAGOFLEX_ACCTCACHE_H

#include <stdbool.h>
#include <stddef.h>

/* The account remembered for (merchant_id, connector), copied to out (cap
 * bytes); false when there is none. */
bool acctcache_get(const char *merchant_id, const char *connector, char *out, size_t cap);

/* Remember `account` for (merchant_id, connector); NULL forgets it. Names
 * too long to keep are not kept. */
void acctcache_put(const char *merchant_id, const char *connector, const char *account);

#endif
