/* store_flows.h - the rows of issue 11's flows: a payment's one capture or
 * void in flight, and refunds with their history (migration 8).
 *
 * The invariants live in the database, so they hold under any concurrency
 * on any number of hosts: a refund reserves its amount on the payment row
 * with a conditional UPDATE in the statement that inserts it (the sum of
 * refunds not failed never exceeds amount_received: a CHECK), a failed
 * refund gives its amount back in the statement that fails it; a capture or
 * a void is claimed with a conditional UPDATE (pending_operation IS NULL),
 * so one of two racing operations wins and the loser is refused before
 * anything is sent to the bank.
 */
#ifndef PAGOFLEX_STORE_FLOWS_H
#define PAGOFLEX_STORE_FLOWS_H

#include "store.h"
#include "store_recon.h"

/* Refund states reuse pagoflex_state numbers: CREATED (row written, not
 * sent), PROCESSING (sent, outcome unknown), PENDING (accepted), SUCCEEDED,
 * FAILED (a definite no; its amount is released), REQUIRES_REVIEW. */
typedef struct store_refund {
    const char *id;
    const char *payment_id;
    const char *connector;
    int64_t amount;
    const char *currency;
    pagoflex_state state;
    const char *provider_reference_id;
    const char *reason;
    const char *metadata; /* JSON text, or NULL */
    const char *error_code;
    const char *error_message;
    const char *created_at;
    const char *updated_at;
    const char *connector_account; /* its payment's (migration 11) */
} store_refund;

/* True if a refund in `from` may move to `to`. */
bool store_refund_transition_allowed(pagoflex_state from, pagoflex_state to);

/* Reserve `amount` (0: all that is left, amount_received - amount_refunded)
 * of payment `payment_id` of merchant `merchant_id` and insert refund
 * `refund_id` (the payment's merchant's) in state created, with its first
 * history row, in one statement. metadata_json is a JSON object's text or
 * NULL. STORE_OK: *out is the refund, *payment the payment after the
 * reservation. STORE_CONFLICT: nothing written; *payment is the payment as
 * it is (not succeeded: wrong state; succeeded: the amount is more than is
 * left). STORE_NOT_FOUND: no such payment, or another merchant's (the
 * merchant is in the WHERE: the same answer by the same path).
 * STORE_DUPLICATE: refund_id exists. STORE_ERROR (logged) when merchant_id
 * is NULL or "". Outputs written only on the results named. */
store_result store_refund_create(store *s, const char *merchant_id, const char *refund_id,
                                 const char *payment_id, int64_t amount, const char *reason,
                                 const char *metadata_json, pagoflex_arena *arena, store_refund *out,
                                 store_payment *payment);

/* Fetch refund `id`, whoever owns it (the host's own work). STORE_NOT_FOUND
 * if absent. A merchant route uses store_refund_get_of. */
store_result store_refund_get(store *s, const char *id, pagoflex_arena *arena, store_refund *out);

/* Fetch refund `id` if merchant `merchant_id` owns it; another merchant's
 * is STORE_NOT_FOUND, as an unknown id. STORE_ERROR (logged) when
 * merchant_id is NULL or "". */
store_result store_refund_get_of(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                 store_refund *out);

/* The refunds of merchant `merchant_id` of payment `payment_id` (at most
 * 100, oldest first), *out in the arena (NULL when none): another
 * merchant's payment lists none, as an unknown one. STORE_ERROR (logged)
 * when merchant_id is NULL or "". */
store_result store_refund_list(store *s, const char *merchant_id, const char *payment_id,
                               pagoflex_arena *arena, store_refund **out, size_t *count);

/* Move refund `id` to `to` if store_refund_transition_allowed(); keep
 * provider_ref when none is stored; error fields stored when error_code is
 * not NULL. Moving to failed gives the refund's amount back to the payment
 * in the same statement. `source`/`detail` as for payments. STORE_OK (moved)
 * or STORE_CONFLICT (refused), both with *out the refund as it is now;
 * STORE_NOT_FOUND. */
store_result store_refund_transition(store *s, const char *id, pagoflex_state to,
                                     const char *source, const char *detail,
                                     const char *provider_ref, const char *error_code,
                                     const char *error_message, pagoflex_arena *arena,
                                     store_refund *out);

/* The refund's history, oldest first (entries in the arena). STORE_NOT_FOUND
 * if there is no such refund. */
store_result store_refund_history(store *s, const char *id, pagoflex_arena *arena,
                                  store_history_entry **entries, size_t *count);

/* Claim the capture (op "capture", amount 0 = all of amount_capturable) or
 * the void (op "void") of payment `id` of merchant `merchant_id` (another
 * merchant's is STORE_NOT_FOUND, as an unknown id; NULL or "" is
 * STORE_ERROR): one conditional UPDATE that sets
 * pending_operation (and capture_amount) only if none is in flight and the
 * payment is requires_capture (a void: or requires_action), and, for a
 * capture, 1 <= amount <= amount_capturable. STORE_OK: claimed, *out the
 * row after. STORE_CONFLICT: refused, *out the row as it is. STORE_NOT_FOUND. */
store_result store_payment_claim_operation(store *s, const char *merchant_id, const char *id, const char *op,
                                           int64_t amount, pagoflex_arena *arena, store_payment *out);

/* The bank refused the claimed operation `op`: clear pending_operation (and
 * the capture amount) so the payment is as before. STORE_OK with *out, or
 * STORE_CONFLICT (no such operation in flight) with *out, STORE_NOT_FOUND. */
/* The first call of claimed operation `op` of payment `id` gave no final
 * answer: the reconciler looks at it in `delay_ms`, re-sending it (same
 * operation id) unless `accepted` (the bank said PENDING: a sync settles
 * it), with `error` (or NULL) kept as last_attempt_error. Only while `op`
 * is in flight and no reconciler has scheduled it. STORE_OK, or
 * STORE_UNAVAILABLE / STORE_ERROR. */
store_result store_payment_schedule_operation(store *s, const char *id, const char *op, long delay_ms,
                                              bool accepted, const char *error);

store_result store_payment_release_operation(store *s, const char *id, const char *op,
                                             pagoflex_arena *arena, store_payment *out);

/* Store and apply refund event `ev` (by ev->refund_id, else the bank's
 * ev->refund_provider_reference_id) of `connector`, received for connector
 * account `account` (only its refunds are found), in one statement, deduped
 * on (connector, account, ev->event_id); `body` kept as text. STORE_OK with *out the
 * refund as it is now and *applied whether it moved (a refused transition
 * is stored, not applied); STORE_DUPLICATE: seen before, nothing done;
 * STORE_NOT_FOUND: no such refund, nothing stored. */
store_result store_refund_webhook_apply(store *s, const char *connector, const char *account,
                                        const pagoflex_event *ev, const unsigned char *body, size_t body_len,
                                        pagoflex_arena *arena, store_refund *out, bool *applied);

/* Store event `ev` of `connector` that changes nothing (kind 'ignored': a
 * type the plugin does not handle, or a look-up the host answers with a
 * sync), deduped on (connector, account, event_id). STORE_OK, STORE_DUPLICATE. */
store_result store_webhook_keep(store *s, const char *connector, const char *account,
                                const pagoflex_event *ev, const unsigned char *body, size_t body_len,
                                pagoflex_arena *arena);

/* Store redirect_url on payment `id` while it is requires_action. */
store_result store_payment_set_redirect(store *s, const char *id, const char *url);

/* ---- the reconciler's claims on refunds (migration 9) ----------------------
 * As for payments (store_recon.h): a refund in created, processing or
 * pending is due at next_attempt_at, or, never scheduled, a state's grace
 * after its last change (created: recover_created_ms, processing:
 * first_retry_ms, pending: webhook_grace_ms). A claim locks due rows (SKIP
 * LOCKED), moves next_attempt_at on by the lease and sets a new claim_token
 * in one statement; every later write carries that token and the state it
 * was decided from, so a claimer whose lease lapsed writes nothing. */

/* A claimed refund. */
typedef struct store_refund_item {
    store_refund refund;
    int64_t claim;      /* the claim's fencing token (refunds.claim_token) */
    int attempts;       /* reconciler attempts, this one included */
    bool past_deadline; /* created more than deadline_s ago */
} store_refund_item;

/* Claim up to `limit` due refunds, earliest due first. On STORE_OK *items
 * (in the arena, NULL when none) and *count; else untouched. */
store_result store_refund_claim(store *s, const store_recon_timing *t, int limit, pagoflex_arena *arena,
                                store_refund_item **items, size_t *count);

/* Extend the lease of claimed refund *it, if the claim still holds and the
 * refund is still open; STORE_OK refreshes *it from the row, STORE_CONFLICT
 * (claim lost or settled) leaves it untouched. */
store_result store_refund_renew(store *s, const store_recon_timing *t, pagoflex_arena *arena,
                                store_refund_item *it);

/* Move claimed refund it->refund to `to` (as store_refund_transition: a
 * failed refund gives its amount back in the same statement), only while
 * it is in it->refund.state, that state may be left for `to`, and the
 * claim holds. STORE_OK moved; STORE_CONFLICT refused (*lost_claim: the
 * state is unchanged, another claim took it). *out the row on both. */
store_result store_refund_recon_transition(store *s, const store_refund_item *it, pagoflex_state to,
                                           const char *source, const char *detail,
                                           const char *provider_ref, const char *error_code,
                                           const char *error_message, pagoflex_arena *arena,
                                           store_refund *out, bool *lost_claim);

/* Look at claimed refund *it again in `delay_ms`, keeping `error` as
 * last_attempt_error; only while the claim holds and the refund is still in
 * it->refund.state (*applied, if not NULL, tells). */
store_result store_refund_reschedule(store *s, const store_refund_item *it, long delay_ms, const char *error,
                                     bool *applied);

/* A look-up event: make the open refund of `connector` and connector
 * account `account` named by
 * `refund_id` (ours) or, when that is NULL, `bank_refund_id` due now.
 * STORE_OK with *found (its id, in the arena); STORE_NOT_FOUND when no open
 * refund has that id. */
store_result store_refund_make_due(store *s, const char *connector, const char *account,
                                   const char *refund_id, const char *bank_refund_id, pagoflex_arena *arena,
                                   const char **found);

/* The claim ($1 recover created ms, $2 first retry ms, $3 webhook grace
 * ms, $4 limit, $5 lease ms, $6 deadline s) and renewal ($1 id, $2 claim,
 * $3 lease ms, $4 deadline s), for the tests of their plans. */
extern const char store_refund_sql_claim[];
extern const char store_refund_sql_renew[];

#endif
