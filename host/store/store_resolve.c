/* store_resolve.c - an operator settles a payment that requires review. */
#include "store_resolve.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "log.h"
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
    return store_transition_run(s, "payment resolve", store_sql_transition, 8, params, arena, out);
}
