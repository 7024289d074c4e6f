/* idempotency.h - Idempotency-Key of POST /v1/payments.
 *
 * The first request with a key (per scope: one API key) creates the
 * payment and its answer is remembered for idempotency_ttl_s; the same key
 * with the same body gets that answer again without calling the bank; with
 * another body it is refused. A request that finds the key still being
 * answered waits up to idempotency_wait_ms (on the poller thread below; its
 * connection is suspended, no thread sleeps), then is told to retry (409).
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

/* What identifies a request under its key (issue 14): the SHA-256 (lower
 * case hex) of its parameters in canonical JSON (keys sorted, compact; an
 * empty body is {}), so key order and spacing do not matter. New keys
 * store `canonical`. Keys stored before the upgrade hold the SHA-256 of the
 * body's bytes: `bytes` keeps that, so a retry of the same bytes across
 * the upgrade still finds its first answer. A body that is not JSON (it is
 * refused later anyway) has both set to the bytes' hash. */
typedef struct idempotency_hash {
    char canonical[65];
    char bytes[65];
} idempotency_hash;

/* Fill *out for `body` of `len` bytes. 0, or -1 (out of memory). */
int idempotency_request_hash(const char *body, size_t len, idempotency_hash *out);

/* Is `stored` (a key's request_hash) the hash of this request? */
bool idempotency_hash_matches(const idempotency_hash *h, const char *stored);

/* What a request finds under a key someone else claimed. */
typedef enum idempotency_verdict {
    IDEMPOTENCY_REPLAY,      /* answered: *status and *response are the first answer */
    IDEMPOTENCY_MISMATCH,    /* the key was used with another body */
    IDEMPOTENCY_BUSY,        /* still being answered after the wait: ask to retry */
    IDEMPOTENCY_STALE,       /* never answered (its host died): *payment_id to answer from */
    IDEMPOTENCY_GONE,        /* expired meanwhile: claim it again */
    IDEMPOTENCY_UNAVAILABLE  /* PostgreSQL unreachable */
} idempotency_verdict;

/* Read (scope, key) once. Outputs (strings in the arena) are written for
 * REPLAY (status, response) and STALE (payment_id); BUSY means the first
 * request is still at work and not stale. */
idempotency_verdict idempotency_check(store *st, const char *scope, const char *key,
                                      const idempotency_hash *request_hash, long stale_ms,
                                      pagoflex_arena *arena, int *status, const char **response,
                                      const char **payment_id);

/* Waiting for another request's answer without a thread per waiter: one
 * poller thread re-reads every waiting key each poll period and calls a
 * waiter back once its key has a verdict other than BUSY, or its wait is
 * over (verdict BUSY). The HTTP layer suspends the connection meanwhile, as
 * it does for a bank call. */
typedef struct idempotency_waiter idempotency_waiter;

/* Called on the poller thread (or at once, on the caller's, when the
 * waiter is stopped). Must be quick: resume a connection. */
typedef void (*idempotency_done_fn)(void *arg);

/* One wait, owned by the caller (it lives in the waiting request's memory)
 * and left alone by the caller from idempotency_wait_start until done(arg)
 * is called. */
typedef struct idempotency_wait {
    /* set by the caller */
    const char *scope, *key;
    const idempotency_hash *request_hash;
    long stale_ms;
    long long until_ms;    /* idempotency_now_ms() at which the wait ends */
    pagoflex_arena *arena; /* where the outputs' strings go */
    idempotency_done_fn done;
    void *arg;
    /* written before done is called */
    idempotency_verdict verdict;
    int status;
    const char *response;
    const char *payment_id;
    struct idempotency_wait *next; /* the poller's list */
} idempotency_wait;

/* Monotonic milliseconds, the clock of idempotency_wait.until_ms. */
long long idempotency_now_ms(void);

/* Start the poller thread: it reads keys through `st` every `poll_ms`.
 * NULL on failure. */
idempotency_waiter *idempotency_waiter_start(store *st, long poll_ms);

/* Wait for w->key's verdict (see idempotency_wait). Never fails to call
 * done: on a stopped (or NULL) waiter it is called at once with BUSY. */
void idempotency_wait_start(idempotency_waiter *w, idempotency_wait *wait);

/* Stop the poller: every wait still running ends at once with BUSY (its
 * done is called), and later waits end at once the same way. Idempotent;
 * NULL is a no-op. */
void idempotency_waiter_stop(idempotency_waiter *w);

/* Stop (if not yet) and free. NULL is a no-op. */
void idempotency_waiter_free(idempotency_waiter *w);

#endif
