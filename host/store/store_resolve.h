/* store_resolve.h - an operator settles a payment the host gave up on
 * (`pagoflex payment resolve`, issue 14). */
#ifndef PAGOFLEX_STORE_RESOLVE_H
#define PAGOFLEX_STORE_RESOLVE_H

#include "store.h"

#define STORE_SOURCE_OPERATOR "operator"

/* Move payment `id` from requires_review (only from there: a conditional
 * UPDATE) to `to` (succeeded or failed), with a history row of source
 * "operator" whose detail is "<who>: <reason>". A failed payment gets error
 * code "resolved_by_operator" with `reason` as its message. STORE_OK: moved,
 * *out the payment now; STORE_CONFLICT: not in requires_review, nothing
 * changed, *out the payment as it is; STORE_NOT_FOUND; STORE_ERROR for a
 * `to` other than succeeded or failed. */
store_result store_payment_resolve(store *s, const char *id, pagoflex_state to, const char *who,
                                   const char *reason, pagoflex_arena *arena, store_payment *out);

#endif
