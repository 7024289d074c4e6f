/* reconciler.h - settles payments whose outcome is not known yet.
 *
 * Threads of the serving process (no extra daemon) claim due payments from
 * PostgreSQL (store_recon_claim: FOR UPDATE SKIP LOCKED, a lease and a
 * fencing token set in the same statement) and work them one at a time,
 * outside any transaction:
 *  - created/processing (no answer from the bank yet, or the host died
 *    before it stored one): re-send the SAME create request; the payment
 *    id is the bank's idempotency key, so the bank charges at most once.
 *    A re-send answered with a refusal that is not a 2xx verdict (401 during
 *    an API-key rotation, 400, 404, 422) keeps the payment open when an
 *    earlier call may have reached the bank: it proves nothing about the
 *    payment that call may have made;
 *  - pending past webhook_grace_s: ask the bank (ABI 1.1 sync);
 *  - still unsettled: look again after retry_base_ms doubling up to
 *    retry_max_ms, with jitter;
 *  - past payment_deadline_s: `failed` with error "expired" when the bank
 *    never got it (every call failed to connect) or says, in its own words,
 *    that it does not know it; otherwise `requires_review` (error
 *    "outcome_unknown"), since the bank may have it.
 * A claim is exclusive while it is worked: the lease of each payment is
 * renewed just before its bank calls (the lease outlasts them: config.c),
 * and every write carries the claim's token and the state the decision was
 * made from, so a claimer whose lease lapsed cannot overwrite what another
 * one did (store_recon.h). Any number of threads and hosts may run it at
 * once. Nothing depends on memory: after a crash, a restarted host resumes
 * every open payment.
 */
#ifndef PAGOFLEX_RECONCILER_H
#define PAGOFLEX_RECONCILER_H

#include "api.h"

/* Start ctx->cfg->reconcile_workers threads (none when 0) working on
 * ctx's store and registry, which must outlive reconciler_stop(). One
 * reconciler per process. 0 on success; -1 (logged, nothing started) on
 * failure or when one is running already. */
int reconciler_start(api_context *ctx);

/* Ask the threads to stop, wait for the payment each is working on, and
 * join them. A no-op when none runs. */
void reconciler_stop(void);

#endif
