/* store_janitor.c - purging what the store no longer needs (retention). */
#include "store_janitor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_internal.h"

/* Each DELETE picks its rows with FOR UPDATE SKIP LOCKED, so a row another
 * statement holds (an expired key being taken over, say) is left for a
 * later round instead of waited for; ctid = ANY (ARRAY(...)) makes it a TID
 * scan. ORDER BY the age column walks its index (migration 6) from the
 * oldest row, which stays cheap when the old rows are a sliver of a big
 * table; without it the planner may walk the whole payment_id index. The
 * outer WHERE repeats the condition, in case a row changed between the
 * pick and the delete. */

/* $1 limit. */
static const char sql_purge_keys[] =
    "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM idempotency_keys WHERE expires_at <= now()"
    " ORDER BY expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED))"
    " AND expires_at <= now()";

/* $1 limit, $2 retention days, $3 terminal states. Orphans (payment_id
 * NULL) never join, so they are never picked. */
const char store_janitor_sql_purge_events[] =
    "DELETE FROM webhook_events WHERE ctid = ANY (ARRAY("
    " SELECT e.ctid FROM webhook_events e JOIN payments p ON p.id = e.payment_id"
    " WHERE e.received_at < now() - $2::int * interval '1 day'"
    " AND p.updated_at < now() - $2::int * interval '1 day' AND p.state = ANY ($3::text[])"
    " ORDER BY e.received_at LIMIT $1::int FOR UPDATE OF e SKIP LOCKED))"
    " AND received_at < now() - $2::int * interval '1 day'";

/* $1 limit, $2 retention days, $3 terminal states. */
const char store_janitor_sql_purge_history[] =
    "DELETE FROM payment_history WHERE ctid = ANY (ARRAY("
    " SELECT h.ctid FROM payment_history h JOIN payments p ON p.id = h.payment_id"
    " WHERE h.at < now() - $2::int * interval '1 day'"
    " AND p.updated_at < now() - $2::int * interval '1 day' AND p.state = ANY ($3::text[])"
    " ORDER BY h.at LIMIT $1::int FOR UPDATE OF h SKIP LOCKED))";

/* $1 limit, $2 retention days. An event with a delivery still pending
 * stays, whatever its age. Its deliveries go with it (notify_purge): by
 * the janitor since migration 19, which dropped the foreign keys. */
static const char sql_purge_notify[] =
    "WITH gone AS (DELETE FROM notify_events WHERE ctid = ANY (ARRAY("
    " SELECT e.ctid FROM notify_events e WHERE e.created_at < now() - $2::int * interval '1 day'"
    " AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')"
    " ORDER BY e.created_at LIMIT $1::int FOR UPDATE OF e SKIP LOCKED)) RETURNING id)"
    " SELECT count(*), COALESCE(array_agg(id), '{}')::text FROM gone";

/* $1 the ids of the events just purged. */
static const char sql_purge_notify_deliveries[] =
    "DELETE FROM notify_deliveries WHERE event_id = ANY ($1::text[])";

/* $1 limit. The deliveries of endpoints that are gone: a state change
 * that read the endpoint before its DELETE committed wrote them after the
 * DELETE had taken the endpoint's deliveries (store_notify.c). No claim,
 * list or resend reaches them (each joins webhook_endpoints; endpoint ids
 * are never reused), and they are never claimed, so they are all pending:
 * the endpoints with pending deliveries are walked on
 * notify_deliveries_endpoint_due, one index probe per endpoint (the
 * recursive CTE), and only the gone ones' rows are read, on the same
 * index (LATERAL ... LIMIT: never a scan of all deliveries). */
static const char sql_purge_notify_orphans[] =
    "DELETE FROM notify_deliveries WHERE ctid = ANY (ARRAY("
    " WITH RECURSIVE ep AS ("
    "   (SELECT d.endpoint_id AS id FROM notify_deliveries d WHERE d.status = 'pending'"
    "    ORDER BY d.endpoint_id LIMIT 1)"
    "   UNION ALL SELECT (SELECT d.endpoint_id FROM notify_deliveries d WHERE d.status = 'pending'"
    "    AND d.endpoint_id > ep.id ORDER BY d.endpoint_id LIMIT 1) FROM ep WHERE ep.id IS NOT NULL)"
    " SELECT g.ctid FROM ep CROSS JOIN LATERAL (SELECT d.ctid FROM notify_deliveries d"
    "   WHERE d.endpoint_id = ep.id AND d.status = 'pending' LIMIT $1::int FOR UPDATE OF d SKIP LOCKED) g"
    " WHERE ep.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = ep.id)"
    " LIMIT $1::int))"
    " AND status = 'pending'";

/* "{succeeded,failed,canceled}": the terminal states, from payment.c. */
static void janitor_terminal_states(char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "{");
    for (int st = 0; st < PAYMENT_STATE_COUNT && n < len; st++)
        if (payment_state_terminal((pagoflex_state)st))
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 1 ? "," : "",
                                  payment_state_name((pagoflex_state)st));
    if (n < len)
        snprintf(buf + n, len - n, "}");
}

/* One batch: sets *n to the rows it removed. */
typedef store_result (*janitor_batch_fn)(store_call *c, void *arg, long *n);

/* `batch` again while it comes back full (lim->batch rows), at most
 * max_batches times; *more when it stopped at that cap. */
static store_result janitor_batches(store_call *c, const store_janitor_limits *lim, janitor_batch_fn batch,
                                    void *arg, long *removed, bool *more)
{
    long total = 0;
    for (int b = 0; b < lim->max_batches; b++) {
        long n = 0;
        store_result rc = batch(c, arg, &n);
        if (rc != STORE_OK)
            return rc;
        if (n > 0)
            metrics_db_commit();
        total += n;
        if (n < lim->batch) {
            *removed = total;
            return STORE_OK;
        }
    }
    *removed = total;
    *more = true;
    return STORE_OK;
}

typedef struct purge_statement {
    const char *what, *sql;
    int nparams;
    const char *params[3]; /* the limit, then the other parameters */
} purge_statement;

static store_result purge_statement_batch(store_call *c, void *arg, long *n)
{
    const purge_statement *p = arg;
    PGresult *r = NULL;
    store_result rc = store_call_exec(c, p->what, p->sql, p->nparams, p->params, false, &r);
    if (rc == STORE_OK)
        *n = atol(PQcmdTuples(r));
    PQclear(r);
    return rc;
}

/* Delete batch after batch of `sql` (limit, then the other parameters). */
static store_result janitor_purge(store_call *c, const char *what, const char *sql, int nparams,
                                  const char *const *rest, const store_janitor_limits *lim,
                                  long *removed, bool *more)
{
    char limit[16];
    purge_statement p = {.what = what, .sql = sql, .nparams = nparams, .params = {limit, NULL, NULL}};
    snprintf(limit, sizeof limit, "%d", lim->batch);
    for (int i = 1; i < nparams; i++)
        p.params[i] = rest[i - 1];
    return janitor_batches(c, lim, purge_statement_batch, &p, removed, more);
}

/* One batch of old notification events and their deliveries, in one
 * transaction of two statements: the second one's snapshot sees every
 * delivery committed before the first locked the events, so none is left
 * without its event (a resend waiting on the lock finds no event). Sets
 * *n to the events removed. */
static store_result notify_purge_batch(store_call *c, void *arg, long *n)
{
    const char *const *params = arg;
    PGresult *r = NULL;
    store_result rc = store_call_exec(c, "janitor: begin", "BEGIN", 0, NULL, false, &r);
    PQclear(r);
    r = NULL;
    if (rc != STORE_OK)
        return rc;
    rc = store_call_exec(c, "janitor: old notification events", sql_purge_notify, 2, params, false, &r);
    if (rc == STORE_OK) {
        *n = atol(PQgetvalue(r, 0, 0));
        const char *const ids[] = {PQgetvalue(r, 0, 1)};
        PGresult *d = NULL;
        if (*n > 0)
            rc = store_call_exec(c, "janitor: old notification deliveries", sql_purge_notify_deliveries, 1,
                                 ids, false, &d);
        PQclear(d);
    }
    PQclear(r);
    r = NULL;
    if (rc == STORE_OK)
        rc = store_call_exec(c, "janitor: commit", "COMMIT", 0, NULL, false, &r);
    else if (!c->broken &&
             store_call_exec(c, "janitor: rollback", "ROLLBACK", 0, NULL, false, &r) != STORE_OK)
        c->broken = true;
    PQclear(r);
    return rc;
}

/* notify_purge_batch batch after batch, as janitor_purge. */
static store_result notify_purge(store_call *c, const store_janitor_limits *lim, const char *days,
                                 long *removed, bool *more)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", lim->batch);
    const char *params[] = {limit, days};
    return janitor_batches(c, lim, notify_purge_batch, (void *)params, removed, more);
}

store_result store_janitor_round(store *s, const store_janitor_limits *lim,
                                 store_janitor_counts *out)
{
    store_call c;
    PGresult *r = NULL;
    store_janitor_counts n = {0};
    const char *const lock[] = {STORE_JANITOR_LOCK};
    char events_days[24], history_days[24], notify_days[24], terminal[128];
    bool locked = false;
    if (!lim || lim->batch <= 0 || lim->max_batches <= 0) {
        log_error("store: janitor round without a batch size");
        return STORE_ERROR;
    }
    store_result rc = store_call_begin(s, &c);
    if (rc != STORE_OK)
        return rc;
    rc = store_call_exec(&c, "janitor lock", "SELECT pg_try_advisory_lock($1::bigint)", 1, lock,
                         false, &r);
    if (rc != STORE_OK)
        goto done;
    locked = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    r = NULL;
    if (!locked)
        goto done; /* another janitor is at it */
    n.ran = true;
    janitor_terminal_states(terminal, sizeof terminal);
    snprintf(events_days, sizeof events_days, "%ld", lim->webhook_event_retention_days);
    snprintf(history_days, sizeof history_days, "%ld", lim->payment_history_retention_days);
    const char *const events[] = {events_days, terminal};
    const char *const history[] = {history_days, terminal};
    snprintf(notify_days, sizeof notify_days, "%ld", lim->notify_event_retention_days);
    rc = janitor_purge(&c, "janitor: expired idempotency keys", sql_purge_keys, 1, NULL, lim,
                       &n.idempotency_keys, &n.more);
    if (rc == STORE_OK && lim->webhook_event_retention_days > 0)
        rc = janitor_purge(&c, "janitor: old webhook events", store_janitor_sql_purge_events, 3, events,
                           lim, &n.webhook_events, &n.more);
    if (rc == STORE_OK && lim->payment_history_retention_days > 0)
        rc = janitor_purge(&c, "janitor: old payment history", store_janitor_sql_purge_history, 3,
                           history, lim, &n.payment_history, &n.more);
    if (rc == STORE_OK)
        rc = janitor_purge(&c, "janitor: deliveries of deleted endpoints", sql_purge_notify_orphans, 1, NULL,
                           lim, &n.notify_orphan_deliveries, &n.more);
    if (rc == STORE_OK && lim->notify_event_retention_days > 0)
        rc = notify_purge(&c, lim, notify_days, &n.notify_events, &n.more);

done:
    if (locked && !c.broken) {
        /* A session lock outlives the call: give it back, or close the
         * connection (which gives it back) rather than pool it held. */
        store_result ur = store_call_exec(&c, "janitor unlock", "SELECT pg_advisory_unlock($1::bigint)",
                                          1, lock, false, &r);
        if (ur != STORE_OK || PQgetvalue(r, 0, 0)[0] != 't')
            c.broken = true;
        PQclear(r);
    }
    store_call_end(&c);
    if (rc == STORE_OK)
        *out = n;
    return rc;
}
