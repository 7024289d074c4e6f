/* store_stats.h - database-wide gauges for GET /metrics. */
#ifndef PAGOFLEX_STORE_STATS_H
#define PAGOFLEX_STORE_STATS_H

#include "store.h"

/* Grace periods after which an open payment the reconciler never scheduled
 * is due (as in store_recon_timing). */
typedef struct store_stats_timing {
    long created_ms, processing_ms, pending_ms;
} store_stats_timing;

/* Count, in one statement (index scans only), the open payments whose next
 * reconciler attempt is due now (*backlog) and the payments in
 * requires_review (*review). STORE_OK with both written; STORE_UNAVAILABLE
 * or STORE_ERROR and nothing written. */
store_result store_stats_read(store *s, const store_stats_timing *t, long long *backlog, long long *review);

/* The statement (for the plan tests): $1..$3 the grace of created,
 * processing and pending payments in milliseconds. */
extern const char store_stats_sql[];

#endif
