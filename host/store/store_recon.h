/* store_recon.h - the reconciler's claims on payments in PostgreSQL.
 *
 * A payment in created, processing or pending is due when its
 * next_attempt_at has passed, or, when none is set yet, when it has not
 * changed for a state-dependent grace (created: the crash-recovery bound;
 * processing: the first retry delay; pending: the webhook grace). A claim
 * locks due rows with FOR UPDATE SKIP LOCKED and, in the same statement
 * (its own transaction), moves next_attempt_at forward by a lease and sets
 * a new claim_token (a fencing token), so other workers and hosts skip
 * them; no transaction stays open across a bank call.
 *
 * A claim is exclusive for as long as it is worked: the claimer renews the
 * lease before working each payment of its batch (store_recon_renew), and
 * every reconciler write (transition, schedule) carries the claim's token.
 * A claimer whose lease lapsed and whose payment another reconciler claimed
 * since finds its renewal and its writes refused, never applied. Every
 * transition is also conditional on the state the decision was made from.
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
    int64_t claim;      /* the claim's fencing token (payments.claim_token) */
    int attempts;       /* reconciler attempts, this one included */
    bool maybe_at_bank; /* false only if every create call failed to connect */
    bool past_deadline; /* created more than deadline_s ago */
    bool operation_accepted; /* held claims: the bank accepted pending_operation */
} store_recon_item;

/* Claim up to `limit` due payments, earliest due first. On STORE_OK,
 * *items (an array in the arena, NULL when none) and *count are written;
 * otherwise they are untouched. STORE_UNAVAILABLE or STORE_ERROR. */
store_result store_recon_claim(store *s, const store_recon_timing *t, int limit,
                               pagoflex_arena *arena, store_recon_item **items, size_t *count);

/* Before working claimed payment *it: extend its lease to t->lease_ms from
 * now, if the claim still holds (no other reconciler claimed the payment
 * since) and the payment is still created, processing or pending. On
 * STORE_OK *it is refreshed from the row (payment, maybe_at_bank,
 * past_deadline: decide from these, not from the claim-time copy; strings
 * in the arena). STORE_CONFLICT: the claim is lost or the payment settled;
 * leave it alone (*it untouched). STORE_UNAVAILABLE or STORE_ERROR. */
store_result store_recon_renew(store *s, const store_recon_timing *t, pagoflex_arena *arena,
                               store_recon_item *it);

/* Move claimed payment it->payment to `to`, as store_payment_transition_from()
 * does, but only if it is still in it->payment.state (the state the caller
 * decided from), that state may be left for `to`, and the claim still
 * holds. STORE_OK: moved. STORE_CONFLICT: refused; *lost_claim tells
 * whether because another reconciler claimed it (the state is unchanged)
 * rather than because its state changed. On both, *out holds the row as
 * it is now. STORE_NOT_FOUND, STORE_UNAVAILABLE or STORE_ERROR: *out and
 * *lost_claim untouched. */
store_result store_recon_transition(store *s, const store_recon_item *it, pagoflex_state to,
                                    const char *source, const char *detail,
                                    const char *provider_ref, const char *error_code,
                                    const char *error_message, pagoflex_arena *arena,
                                    store_payment *out, bool *lost_claim);

/* Record an attempt that did not settle claimed payment *it: look again in
 * `delay_ms`, keep `error` (or NULL) as last_attempt_error, and remember
 * that it may be at the bank when `reached` (maybe_at_bank ORed). Only
 * while the claim holds and the payment is open; otherwise nothing changes
 * and *applied (if not NULL) is false. STORE_OK, STORE_UNAVAILABLE or
 * STORE_ERROR. */
store_result store_recon_reschedule(store *s, const store_recon_item *it, long delay_ms,
                                    const char *error, bool reached, bool *applied);

/* The API's own call: after the first create call left payment `id`
 * processing, look again in `delay_ms` with `error` (or NULL) as
 * last_attempt_error. `first`: maybe_at_bank := reached (false only when
 * the call failed to connect) rather than ORed with it. Only for a payment
 * no reconciler has claimed yet (a claimer owns its schedule) and still
 * created/processing/pending. STORE_OK, STORE_UNAVAILABLE or STORE_ERROR. */
store_result store_recon_schedule(store *s, const char *id, long delay_ms, const char *error,
                                  bool reached, bool first);

/* The claim statement ($1 recover created ms, $2 first retry ms, $3
 * webhook grace ms, $4 limit, $5 lease ms, $6 deadline s) and the renewal
 * ($1 id, $2 claim, $3 lease ms, $4 deadline s), for the tests that check
 * their plans. */
extern const char store_recon_sql_claim[];
extern const char store_recon_sql_renew[];

/* ---- held payments (migration 9) -------------------------------------------
 * A payment in requires_capture or requires_action is "held": the create
 * reconciler leaves it alone. It is due at hold_due_at when a capture or
 * void is in flight (scheduled by the API after an answer that was not
 * final, or recover_created_ms after its claim when the host died first)
 * or when a look-up event asked for it. Claims, renewals and writes are
 * fenced by claim_token as above, and conditional on the state decided from. */

/* Claim up to `limit` due held payments (lease t->lease_ms); each item's
 * operation_accepted tells whether the bank accepted its pending_operation
 * (maybe_at_bank is always true). As store_recon_claim otherwise. */
store_result store_recon_claim_held(store *s, const store_recon_timing *t, int limit,
                                    pagoflex_arena *arena, store_recon_item **items, size_t *count);

/* store_recon_renew for a held claim: STORE_CONFLICT once the claim is lost
 * or the payment is no longer held. */
store_result store_recon_renew_held(store *s, const store_recon_timing *t, pagoflex_arena *arena,
                                    store_recon_item *it);

/* Look at held claim *it again in `delay_ms` (negative: only when asked
 * again), keeping `error`; `accepted` marks its operation accepted by the
 * bank. Only while the claim holds and the payment is in it->payment.state
 * (*applied, if not NULL, tells). */
store_result store_recon_reschedule_held(store *s, const store_recon_item *it, long delay_ms,
                                         const char *error, bool accepted, bool *applied);

/* The bank definitely did not do it->payment.pending_operation: clear it
 * (and a capture's amount) so the payment may be captured or canceled
 * again; only while the claim holds, the same operation is in flight and
 * the payment is in it->payment.state. *applied tells. */
store_result store_recon_release_held(store *s, const store_recon_item *it, bool *applied);

/* A look-up event: make the payment of `connector` and connector account
 * `account` named by `payment_id`
 * or, when that is NULL, by the bank's `bank_id` due now (open or held).
 * STORE_OK with *found (its id, in the arena), STORE_NOT_FOUND when no
 * such payment is open or held. */
store_result store_recon_look_up(store *s, const char *connector, const char *account, const char *payment_id,
                                 const char *bank_id, pagoflex_arena *arena, const char **found);

/* The held claim ($1 recover created ms, $2 lease ms, $3 limit, $4
 * deadline s), for the test of its plan. */
extern const char store_recon_sql_claim_held[];

#endif
