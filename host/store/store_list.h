/* store_list.h - a merchant's payments and refunds, page by page (issue 14).
 *
 * Newest first by (created_at, id), with a keyset cursor: a page after (or
 * before) a given object is read from the index (merchant_id, created_at
 * DESC, id DESC) without counting or skipping rows, however deep it is.
 */
#ifndef PAGOFLEX_STORE_LIST_H
#define PAGOFLEX_STORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"
#include "store_flows.h"

#define STORE_LIST_MAX 100

/* What a list asks for. Every string is NULL when not asked for. */
typedef struct store_list_query {
    const char *merchant_id;    /* required: a list never shows another merchant's rows */
    int limit;                  /* 1 .. STORE_LIST_MAX */
    const char *starting_after; /* an id: the page of older objects after it */
    const char *ending_before;  /* an id: the page of newer objects before it (not with starting_after) */
    const char *states;         /* PostgreSQL text[] literal of states, e.g. "{succeeded}" */
    const char *connector;
    const char *reference;  /* payments: the merchant's reference */
    const char *payment_id; /* refunds: of this payment */
    /* created_at bounds, as timestamptz text */
    const char *created_gt, *created_gte, *created_lt, *created_lte;
} store_list_query;

/* One page of payments, newest first, in the arena: *rows (NULL when
 * empty), *count, and *has_more (more rows past the page in the direction
 * read: older for starting_after or no cursor, newer for ending_before).
 * STORE_NOT_FOUND when the cursor names no object of the merchant.
 * Outputs written only on STORE_OK. */
store_result store_list_payments(store *s, const store_list_query *q, pagoflex_arena *arena,
                                 store_payment **rows, size_t *count, bool *has_more);

/* The same for refunds. */
store_result store_list_refunds(store *s, const store_list_query *q, pagoflex_arena *arena,
                                store_refund **rows, size_t *count, bool *has_more);

#endif
