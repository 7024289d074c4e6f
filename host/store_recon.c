/* store_recon.c - the reconciler's claims on payments in PostgreSQL. */
#include "store_recon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "store_internal.h"

#define MS(p) "(" p "::bigint * interval '1 millisecond')"

/* $1 recover created ms, $2 first retry ms, $3 webhook grace ms, $4
 * limit, $5 lease ms, $6 deadline s. */
static const char sql_claim[] =
    "WITH due AS ("
    " SELECT id FROM payments"
    " WHERE state IN ('created', 'processing', 'pending')"
    " AND COALESCE(next_attempt_at, updated_at + CASE state"
    " WHEN 'created' THEN " MS("$1") " WHEN 'processing' THEN " MS("$2")
    " ELSE " MS("$3") " END) <= now()"
    " ORDER BY updated_at LIMIT $4::int FOR UPDATE SKIP LOCKED"
    ") UPDATE payments p SET next_attempt_at = now() + " MS("$5") ", attempts = p.attempts + 1"
    " FROM due WHERE p.id = due.id"
    " RETURNING " PAYMENT_COLS("p") ", p.attempts, p.maybe_at_bank,"
    " p.created_at + $6::bigint * interval '1 second' <= now()";

/* $1 id, $2 delay ms, $3 error, $4 reached, $5 first. */
static const char sql_schedule[] =
    "UPDATE payments SET next_attempt_at = now() + " MS("$2") ","
    " last_attempt_error = $3::text,"
    " maybe_at_bank = CASE WHEN $5::boolean THEN $4::boolean ELSE maybe_at_bank OR $4::boolean END"
    " WHERE id = $1::text AND state IN ('created', 'processing', 'pending')";

store_result store_recon_claim(store *s, const store_recon_timing *t, int limit,
                               pagoflex_arena *arena, store_recon_item **items, size_t *count)
{
    PGresult *r = NULL;
    store_recon_item *list = NULL;
    char a[24], b[24], c[24], d[16], e[24], f[24];
    snprintf(a, sizeof a, "%ld", t->recover_created_ms);
    snprintf(b, sizeof b, "%ld", t->first_retry_ms);
    snprintf(c, sizeof c, "%ld", t->webhook_grace_ms);
    snprintf(d, sizeof d, "%d", limit);
    snprintf(e, sizeof e, "%ld", t->lease_ms);
    snprintf(f, sizeof f, "%ld", t->deadline_s);
    const char *const params[] = {a, b, c, d, e, f};
    store_result rc = store_run(s, "reconciler claim", sql_claim, 6, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    size_t n = (size_t)PQntuples(r);
    if (n > 0 && !(list = arena_alloc(arena, n * sizeof *list))) {
        rc = STORE_ERROR;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rc = store_payment_from_row(r, (int)i, 0, arena, &list[i].payment);
        if (rc != STORE_OK)
            goto fail;
        list[i].attempts = atoi(PQgetvalue(r, (int)i, PAYMENT_NCOLS));
        list[i].maybe_at_bank = PQgetvalue(r, (int)i, PAYMENT_NCOLS + 1)[0] == 't';
        list[i].past_deadline = PQgetvalue(r, (int)i, PAYMENT_NCOLS + 2)[0] == 't';
    }
    *items = list;
    *count = n;

fail:
    PQclear(r);
    return rc;
}

store_result store_recon_schedule(store *s, const char *id, long delay_ms, const char *error,
                                  bool reached, bool first)
{
    PGresult *r = NULL;
    char delay[24];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    const char *const params[] = {id, delay, error, reached ? "true" : "false",
                                  first ? "true" : "false"};
    store_result rc = store_run(s, "reconciler schedule", sql_schedule, 5, params, false, &r);
    PQclear(r);
    return rc;
}
