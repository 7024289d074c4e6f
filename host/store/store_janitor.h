/* store_janitor.h - purging what the store no longer needs (retention).
 *
 * Some kinds of rows grow with traffic and are only needed for a while:
 *  - idempotency keys, once expired (expires_at, set from idempotency_ttl_s);
 *  - webhook events (whole bodies) received more than
 *    webhook_event_retention_days ago, of terminal payments (succeeded,
 *    failed, canceled) unchanged for as long. Events
 *    of open payments (requires_review included: a late webhook may still
 *    settle it) and orphan events (no payment yet: still waiting for their
 *    bank id) are never removed;
 *  - payment history of terminal payments last changed more than
 *    payment_history_retention_days ago, when that is set (by default it is
 *    kept forever, for audit). The payment row itself is never removed;
 *  - notification events (store_notify.h) made more than
 *    notify_event_retention_days ago with no delivery still pending, with
 *    their deliveries (the delivery log shows what is left);
 *  - deliveries of deleted endpoints that a state change wrote while the
 *    endpoint was being deleted (never claimed; store_notify.c).
 * Rows go in batches (one DELETE of at most `batch` rows each, committed on
 * its own: no long transaction, no long lock), the next batch only while a
 * batch came back full, at most `max_batches` per table and round. A round
 * runs under a PostgreSQL advisory lock taken with pg_try_advisory_lock, so
 * of all the workers and hosts sharing the database one purges at a time
 * and the others skip that round instead of fighting over the same rows.
 */
#ifndef PAGOFLEX_STORE_JANITOR_H
#define PAGOFLEX_STORE_JANITOR_H

#include "store.h"

/* The advisory lock a round holds (pg_try_advisory_lock): "pfjanit" in ASCII. */
#define STORE_JANITOR_LOCK "31637804478785908"

typedef struct store_janitor_limits {
    int batch;                           /* rows per DELETE (> 0) */
    int max_batches;                     /* per table and round (> 0) */
    long webhook_event_retention_days;   /* 0: keep every event */
    long payment_history_retention_days; /* 0: keep all history */
    long notify_event_retention_days;    /* 0: keep every notification event */
} store_janitor_limits;

typedef struct store_janitor_counts {
    long idempotency_keys; /* rows removed this round, per table */
    long webhook_events;
    long payment_history;
    long notify_events;
    long notify_orphan_deliveries; /* of deleted endpoints */
    bool ran;  /* false: another janitor held the lock; nothing was done */
    bool more; /* a table still returned a full batch at max_batches */
} store_janitor_counts;

/* One purge round as described above. STORE_OK with *out written (also
 * when another janitor holds the lock: out->ran false), STORE_UNAVAILABLE
 * or STORE_ERROR (logged). Rows removed before an error stay removed;
 * *out is then untouched. */
store_result store_janitor_round(store *s, const store_janitor_limits *lim,
                                 store_janitor_counts *out);

/* The purges of old webhook events and payment history (for the plan
 * tests): $1 batch, $2 retention days, $3 the terminal states. */
extern const char store_janitor_sql_purge_events[];
extern const char store_janitor_sql_purge_history[];

#endif
