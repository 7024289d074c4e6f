/* keyset.h - one account's webhook key set (a JWKS as the bank served it),
 * shared by the worker's threads.
 *
 * The first webhook fetches it; a webhook signed with a key id the set
 * lacks (PAGOFLEX_ERR_KEY_UNKNOWN) refetches it, at most once per
 * KEYSET_MIN_REFETCH_S (the first fetch aside) whatever the number of such webhooks (a storm of
 * unknown key ids cannot make the host hammer the bank), one fetch at a
 * time: a caller that finds a fetch running waits for it and uses its
 * result. Webhooks are served on an HTTP thread that already waits for the
 * database, so the wait is a blocking one, bounded by the bank timeout.
 */
#ifndef PAGOFLEX_KEYSET_H
#define PAGOFLEX_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pagoflex/connector.h>

#define KEYSET_MIN_REFETCH_S 60

typedef struct keyset keyset;

/* An empty set; NULL on allocation failure. */
keyset *keyset_new(void);

/* Copy the current set into `arena` (*keys NULL, *len 0 when there is
 * none yet); *gen is its generation (0: none). 0, or -1 on OOM. */
int keyset_get(keyset *k, pagoflex_arena *arena, unsigned char **keys, size_t *len, uint64_t *gen);

/* May the caller fetch now (after waiting for a running fetch to end)?
 * `seen` is the generation the caller verified with. The first fetch is
 * always allowed; every later one (a refetch) only KEYSET_MIN_REFETCH_S
 * after the previous refetch. false: not now, or another caller fetched a
 * newer set since (read it again). true: the caller fetches and must call
 * keyset_end. */
bool keyset_begin(keyset *k, int64_t now, uint64_t seen);

/* End the caller's fetch: keep body (copied) when not NULL, else keep the
 * old set. */
void keyset_end(keyset *k, const unsigned char *body, size_t len);

/* Fetches made (for tests). */
long keyset_fetches(const keyset *k);

/* Free. NULL is a no-op. */
void keyset_free(keyset *k);

#endif
