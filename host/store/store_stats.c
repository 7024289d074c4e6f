/* store_stats.c - database-wide gauges for GET /metrics. */
#include "store_stats.h"

#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "store_internal.h"

#define MS(p) "(" p "::bigint * interval '1 millisecond')"
#define UNSCHEDULED(state, grace)                                                                            \
    " + (SELECT count(*) FROM payments WHERE state = '" state "'"                                            \
    " AND next_attempt_at IS NULL AND updated_at <= now() - " MS(grace) ")"

/* The same due rule as the reconciler's claim (store_recon.c), over the
 * same indexes (payments_scheduled_due, payments_unscheduled), and
 * payments_review. */
const char store_stats_sql[] =
    "SELECT (SELECT count(*) FROM payments WHERE state IN ('created', 'processing', 'pending')"
    " AND next_attempt_at <= now())" UNSCHEDULED("created", "$1") UNSCHEDULED("processing", "$2")
        UNSCHEDULED("pending", "$3") ","
                                     " (SELECT count(*) FROM payments WHERE state = 'requires_review')";

store_result store_stats_read(store *s, const store_stats_timing *t, long long *backlog, long long *review)
{
    char a[24], b[24], c[24];
    snprintf(a, sizeof a, "%ld", t->created_ms);
    snprintf(b, sizeof b, "%ld", t->processing_ms);
    snprintf(c, sizeof c, "%ld", t->pending_ms);
    const char *const params[] = {a, b, c};
    PGresult *r = NULL;
    store_result rc = store_run(s, "metrics gauges", store_stats_sql, 3, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) == 1) {
        *backlog = atoll(PQgetvalue(r, 0, 0));
        *review = atoll(PQgetvalue(r, 0, 1));
    } else if (rc == STORE_OK) {
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}
