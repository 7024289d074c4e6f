/* store_list.c - a merchant's payments and refunds, page by page (issue 14).
 *
 * Six statements per table: the first page, the page after a cursor and
 * the one before it, each without and with the reference (payment id for
 * refunds) driving the plan. $1 merchant, $2 rows to read (the limit + 1, to know has_more), $3 states
 * (text[]), $4 connector, $5 reference or payment id, $6..$9 created gt,
 * gte, lt, lte, and $10 the cursor's id.
 */
#include "store_list.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "store_internal.h"

/* `ref` is the condition on $5: a filter (absent: NULL) or, when given, the
 * condition the plan is driven by (the reference or payment index). */
#define LIST_FILTERS(t, ref)                                                                                 \
    " WHERE " t ".merchant_id = $1::text"                                                                    \
    " AND ($3::text[] IS NULL OR " t ".state = ANY ($3::text[]))"                                            \
    " AND ($4::text IS NULL OR " t ".connector = $4::text)"                                                  \
    " AND " ref
#define LIST_MAYBE(t, col) "($5::text IS NULL OR " t "." col " = $5::text)"
#define LIST_BY(t, col) t "." col " = $5::text"

/* The created range and the cursor are row comparisons on the index's own
 * columns, one lower and one upper bound, so that even the generic plan of
 * a prepared statement walks the index in order from the right place and
 * stops at the limit. (created_at, id) > (L, '') is created_at >= L, as
 * every id is longer than ''; > t is >= t + 1 microsecond (the resolution
 * of timestamptz): $6 gt, $7 gte, $8 lt, $9 lte (NULL when absent). With a
 * cursor ($10), the bound on its side is the tighter of the range's and
 * the cursor row's (no row when the merchant has no such object). */
#define LIST_LOW "GREATEST($6::timestamptz + interval '1 microsecond', $7::timestamptz, '-infinity')"
#define LIST_HIGH "LEAST($8::timestamptz, $9::timestamptz + interval '1 microsecond', 'infinity')"
#define LIST_ABOVE(t) " AND (" t ".created_at, " t ".id) > (" LIST_LOW ", '')"
#define LIST_BELOW(t) " AND (" t ".created_at, " t ".id) < (" LIST_HIGH ", '')"
#define LIST_CURSOR_BOUND(t, table, op, edge)                                                                \
    " AND (" t ".created_at, " t ".id) " op " (SELECT CASE WHEN (c.created_at, c.id) " op " (" edge          \
    ", '') THEN c.created_at ELSE " edge " END, CASE WHEN (c.created_at, c.id) " op " (" edge                \
    ", '') THEN c.id ELSE '' END FROM " table " c WHERE c.id = $10::text AND c.merchant_id = $1::text)"

#define LIST_NEWEST " ORDER BY created_at DESC, id DESC LIMIT $2::int"
#define LIST_OLDEST " ORDER BY created_at, id LIMIT $2::int"

/* The three pages (first; after a cursor: older; before one: newer) of one filter. */
#define LIST_SQL3(cols, from, t, table, ref)                                                                 \
    {                                                                                                        \
        "SELECT " cols from LIST_FILTERS(t, ref) LIST_ABOVE(t) LIST_BELOW(t) LIST_NEWEST,                    \
            "SELECT " cols from LIST_FILTERS(t, ref) LIST_ABOVE(t)                                           \
                LIST_CURSOR_BOUND(t, table, "<", LIST_HIGH) LIST_NEWEST,                                     \
            "SELECT " cols from LIST_FILTERS(t, ref) LIST_BELOW(t)                                           \
                LIST_CURSOR_BOUND(t, table, ">", LIST_LOW) LIST_OLDEST                                       \
    }

static const char *const sql_payments[2][3] = {
    LIST_SQL3(PAYMENT_COLS("p"), " FROM payments p", "p", "payments", LIST_MAYBE("p", "reference")),
    LIST_SQL3(PAYMENT_COLS("p"), " FROM payments p", "p", "payments", LIST_BY("p", "reference")),
};
static const char sql_payment_cursor[] =
    "SELECT 1 FROM payments WHERE id = $1::text AND merchant_id = $2::text";

static const char *const sql_refunds[2][3] = {
    LIST_SQL3(REFUND_COLS("f"), " FROM refunds f", "f", "refunds", LIST_MAYBE("f", "payment_id")),
    LIST_SQL3(REFUND_COLS("f"), " FROM refunds f", "f", "refunds", LIST_BY("f", "payment_id")),
};
static const char sql_refund_cursor[] =
    "SELECT 1 FROM refunds WHERE id = $1::text AND merchant_id = $2::text";

static store_result list_payment_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    return store_payment_from_row(r, row, 0, arena, out);
}

static store_result list_refund_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    return store_refund_from_row(r, row, 0, arena, out);
}

/* Reverse `count` items of `size` bytes (a page read oldest first). */
static void list_reverse(void *items, size_t count, size_t size)
{
    unsigned char *a = items, tmp[512];
    if (size > sizeof tmp)
        return;
    for (size_t i = 0, j = count ? count - 1 : 0; i < j; i++, j--) {
        memcpy(tmp, a + i * size, size);
        memcpy(a + i * size, a + j * size, size);
        memcpy(a + j * size, tmp, size);
    }
}

/* Run the page statement of `q` (one of the three), then trim the extra
 * row and find out whether an empty page's cursor exists. */
static store_result list_run(store *s, const char *what, const char *const sql[2][3], const char *cursor_sql,
                             const store_list_query *q, pagoflex_arena *arena, size_t item_size,
                             store_row_fn read, void **items, size_t *count, bool *has_more)
{
    if (!q->merchant_id || q->limit < 1 || q->limit > STORE_LIST_MAX ||
        (q->starting_after && q->ending_before)) {
        log_error("store: %s without a merchant, with limit %d or with two cursors", what, q->limit);
        return STORE_ERROR;
    }
    const char *cursor = q->starting_after ? q->starting_after : q->ending_before;
    int variant = q->starting_after ? 1 : q->ending_before ? 2 : 0;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", q->limit + 1);
    const char *const params[] = {q->merchant_id,
                                  limit,
                                  q->states,
                                  q->connector,
                                  q->reference ? q->reference : q->payment_id,
                                  q->created_gt,
                                  q->created_gte,
                                  q->created_lt,
                                  q->created_lte,
                                  cursor};
    void *rows = NULL;
    size_t n = 0;
    int by = q->reference || q->payment_id ? 1 : 0;
    store_result rc = store_run_rows(s, what, sql[by][variant], variant ? 10 : 9, params, arena, item_size,
                                     read, &rows, &n);
    if (rc != STORE_OK)
        return rc;
    if (n == 0 && cursor) {
        PGresult *r = NULL;
        const char *const cp[] = {cursor, q->merchant_id};
        rc = store_run(s, what, cursor_sql, 2, cp, false, &r);
        bool found = rc == STORE_OK && PQntuples(r) == 1;
        PQclear(r);
        if (rc != STORE_OK)
            return rc;
        if (!found)
            return STORE_NOT_FOUND;
    }
    /* The extra row is the last one read, in either order. */
    bool more = n > (size_t)q->limit;
    if (more)
        n = (size_t)q->limit;
    if (variant == 2)
        list_reverse(rows, n, item_size);
    *items = n ? rows : NULL;
    *count = n;
    *has_more = more;
    return STORE_OK;
}

store_result store_list_payments(store *s, const store_list_query *q, pagoflex_arena *arena,
                                 store_payment **rows, size_t *count, bool *has_more)
{
    void *items = NULL;
    store_result rc = list_run(s, "payment list", sql_payments, sql_payment_cursor, q, arena,
                               sizeof(store_payment), list_payment_row, &items, count, has_more);
    if (rc == STORE_OK)
        *rows = items;
    return rc;
}

store_result store_list_refunds(store *s, const store_list_query *q, pagoflex_arena *arena,
                                store_refund **rows, size_t *count, bool *has_more)
{
    void *items = NULL;
    store_result rc = list_run(s, "refund list", sql_refunds, sql_refund_cursor, q, arena,
                               sizeof(store_refund), list_refund_row, &items, count, has_more);
    if (rc == STORE_OK)
        *rows = items;
    return rc;
}
