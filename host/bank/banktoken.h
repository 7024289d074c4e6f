/* banktoken.h - one account's access token (OAuth2 client credentials),
 * shared by the worker's threads.
 *
 * The cache decides who fetches: at most one fetch at a time; the others
 * wait for it, either blocked (the reconciler's threads) or parked with a
 * callback (the non-blocking API path, whose HTTP connection is suspended:
 * no thread waits). A token is used until a little before its expiry
 * (a tenth of its lifetime, at most 30 s) or until a flow says the bank
 * refused it; it is then fetched again once, however many flows saw it
 * refused. A failed fetch answers every waiter with BANKTOKEN_FAILED and
 * no new fetch starts for BANKTOKEN_RETRY_S, so a token endpoint that is
 * down or rate limiting is not hammered. Values are wiped when replaced
 * and at free; they are never logged.
 */
#ifndef PAGOFLEX_BANKTOKEN_H
#define PAGOFLEX_BANKTOKEN_H

#include <stdint.h>

#include <pagoflex/connector.h>

#define BANKTOKEN_RETRY_S 1 /* after a failed fetch, no new one for this long */

typedef struct banktoken banktoken;

typedef enum banktoken_verdict {
    BANKTOKEN_READY,  /* *value is a valid token (arena copy), *gen its generation */
    BANKTOKEN_FETCH,  /* the caller must fetch now and then call banktoken_store
                         or banktoken_failed (others wait for it) */
    BANKTOKEN_PARKED, /* another fetch is running: w->ready will be called
                         once it ends; ask again then */
    BANKTOKEN_FAILED  /* the last fetch failed (or one failed while waiting):
                         the flow cannot start now */
} banktoken_verdict;

/* A parked caller (its memory is the caller's until ready is called). */
typedef struct banktoken_waiter {
    struct banktoken_waiter *next;
    void (*ready)(void *arg); /* called once, on the thread that ended the fetch,
                                 after the cache's lock is released */
    void *arg;
} banktoken_waiter;

/* An empty cache; NULL on allocation failure. */
banktoken *banktoken_new(void);

/* Ask for a token at time `now`. `refused` is the generation a flow saw
 * refused (0: none): that token counts as invalid. With `w` NULL the call
 * blocks while another fetch runs (never PARKED); with `w` it parks w
 * instead. READY copies the value into `arena` (NULL arena: READY only
 * says so). */
banktoken_verdict banktoken_acquire(banktoken *t, int64_t now, uint64_t refused, pagoflex_arena *arena,
                                    char **value, uint64_t *gen, banktoken_waiter *w);

/* End the fetch the caller was told to make: keep `value` (copied; the old
 * one is wiped) until expires_at (0: until refused), fetched at `now`, and
 * wake the waiters. 0, or -1 on allocation failure (then as banktoken_failed). */
int banktoken_store(banktoken *t, const char *value, int64_t expires_at, int64_t now);

/* End the fetch the caller was told to make without a token (at `now`);
 * wake the waiters, who get BANKTOKEN_FAILED. */
void banktoken_failed(banktoken *t, int64_t now);

/* Fetches that ended with a token (for metrics and tests). */
long banktoken_fetches(const banktoken *t);

/* Wipe the value and free. Only when no caller can use it. NULL is a no-op. */
void banktoken_free(banktoken *t);

#endif
