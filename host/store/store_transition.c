/* store_transition.c - running a conditional payment update that answers
 * (moved, PAYMENT_COLS) and reading its answer: the transition
 * (store_sql_transition and its fenced variant) for the store's modules that
 * move a payment (store.c, store_resolve.c, store_recon.c), and the claim and
 * release of a capture or void (store_flows.c). */
#include <libpq-fe.h>

#include "metrics.h"
#include "store_internal.h"

store_result store_transition_run(store *s, const char *what, const char *sql, int n,
                                  const char *const *params, pagoflex_arena *arena, store_payment *out)
{
    PGresult *r = NULL;
    store_payment row;
    store_result rc = store_run(s, what, sql, n, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    metrics_db_commit();
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    bool moved = PQgetvalue(r, 0, 0)[0] == 't';
    if ((rc = store_payment_from_row(r, 0, 1, arena, &row)) != STORE_OK)
        goto fail;
    *out = row;
    rc = moved ? STORE_OK : STORE_CONFLICT;
fail:
    PQclear(r);
    return rc;
}
