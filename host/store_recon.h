/* store_recon.h - the reconciler's claims on payments in PostgreSQL.
 *
 * A payment in created, processing or pending is due when its
 * next_attempt_at has passed, or, when none is set yet, when it has not
 * changed for a state-dependent grace (created: the crash-recovery bound;
 * processing: the first retry delay; pending: the webhook grace). A claim
 * locks due rows with FOR UPDATE SKIP LOCKED and moves next_attempt_at
 * forward by a lease in the same statement (its own transaction), so other
 * workers and hosts skip them; no transaction stays open across a bank
 * call.
 */
#ifndef PAGOFLEX_STORE_RECON_H
#define PAGOFLEX_STORE_RECON_H

#include "store.h"

/* Timings of a claim, from the configuration. */
typedef struct store_recon_timing {
    long recover_created_ms; /* a created row this old: the host that made it died */
    long first_retry_ms;     /* processing: first retry after the last change */
    long webhook_grace_ms;   /* pending: first sync after the last change */
    long lease_ms;           /* claimed rows are left alone this long */
    long deadline_s;         /* since creation: past it, give a final state */
} store_recon_timing;

/* A claimed payment. */
typedef struct store_recon_item {
    store_payment payment;
    int attempts;       /* reconciler attempts, this one included */
    bool maybe_at_bank; /* false only if every create call failed to connect */
    bool past_deadline; /* created more than deadline_s ago */
} store_recon_item;

/* Claim up to `limit` due payments. On STORE_OK, *items (an array in the
 * arena, NULL when none) and *count are written. */
store_result store_recon_claim(store *s, const store_recon_timing *t, int limit,
                               pagoflex_arena *arena, store_recon_item **items, size_t *count);

/* Record an attempt that did not settle payment `id`: look again in
 * `delay_ms`, keep `error` (or NULL) as last_attempt_error. `reached`: the
 * attempt may have reached the bank. `first`: this is the API's own call
 * (maybe_at_bank := reached) rather than a retry (maybe_at_bank ORed with
 * reached). A payment that has left created/processing/pending is not
 * touched. STORE_OK, STORE_UNAVAILABLE or STORE_ERROR. */
store_result store_recon_schedule(store *s, const char *id, long delay_ms, const char *error,
                                  bool reached, bool first);

#endif
