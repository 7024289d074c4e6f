/* store_resolve.c - an operator settles a payment that requires review. */
#include "store_resolve.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_internal.h"

store_result store_payment_resolve(store *s, const char *id, pagoflex_state to, const char *who,
                                   const char *reason, pagoflex_arena *arena, store_payment *out)
{
    if (!id || !who || !reason || (to != PAGOFLEX_STATE_SUCCEEDED && to != PAGOFLEX_STATE_FAILED)) {
        log_error("store: resolve of payment %s without who or reason, or to %d", id ? id : "(null)",
                  (int)to);
        return STORE_ERROR;
    }
    char *detail = arena_printf(arena, "%s: %s", who, reason);
    if (!detail)
        return STORE_ERROR;
    bool failed = to == PAGOFLEX_STATE_FAILED;
    const char *const params[] = {id,
                                  payment_state_name(to),
                                  "{requires_review}",
                                  NULL,
                                  failed ? "resolved_by_operator" : NULL,
                                  failed ? reason : NULL,
                                  STORE_SOURCE_OPERATOR,
                                  detail};
    PGresult *r = NULL;
    store_payment row;
    store_result rc = store_run(s, "payment resolve", store_sql_transition, 8, params, false, &r);
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
