/* janitor.h - retention: one thread per worker purges what is no longer needed.
 *
 * Every janitor_interval_ms (with jitter) it runs one store_janitor_round
 * (expired idempotency keys, old webhook events and history of terminal
 * payments; see store_janitor.h: one janitor of all workers and hosts
 * purges at a time, under an advisory lock) and removes the private plugin
 * copies nothing uses any more (registry_clean_private). It runs whatever
 * reconcile_workers says, and logs what it removed at most once a minute.
 */
#ifndef PAGOFLEX_JANITOR_H
#define PAGOFLEX_JANITOR_H

#include "api.h"

/* Rows per DELETE, and batches per table and round: at the default
 * janitor_interval_ms of 5 s, up to 20,000 rows/s per table, well above
 * what a host writes at full speed (README "Retention"). */
#define JANITOR_BATCH 5000
#define JANITOR_MAX_BATCHES 20

/* Start the janitor thread on ctx's store and registry, which must outlive
 * janitor_stop(). One per process. 0 on success; -1 (logged, nothing
 * started) on failure or when one runs already. */
int janitor_start(api_context *ctx);

/* Wake the thread, let it finish the statement it is running, join it. A
 * no-op when none runs. */
void janitor_stop(void);

#endif
