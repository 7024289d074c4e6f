/* store_list.c - a merchant's payments and refunds, page by page (issue 14).
 *
 * One statement per table and direction. The filters are written so that
 * an absent one costs nothing and the created range bounds the index scan:
 * $1 merchant, $2 rows to read (the limit + 1, to know has_more), $3 states
 * (text[]), $4 connector, $5 reference or payment id, $6..$9 created gt,
 * gte, lt, lte, and $10 the cursor's id.
 */
#include "store_list.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "store_internal.h"

#define LIST_WHERE(t, ref)                                                                                   \
    " WHERE " t ".merchant_id = $1::text"                                                                    \
    " AND ($3::text[] IS NULL OR " t ".state = ANY ($3::text[]))"                                            \
    " AND ($4::text IS NULL OR " t ".connector = $4::text)"                                                  \
    " AND ($5::text IS NULL OR " t "." ref " = $5::text)"                                                    \
    " AND " t ".created_at > COALESCE($6::timestamptz, '-infinity')"                                         \
    " AND " t ".created_at >= COALESCE($7::timestamptz, '-infinity')"                                        \
    " AND " t ".created_at < COALESCE($8::timestamptz, 'infinity')"                                          \
    " AND " t ".created_at <= COALESCE($9::timestamptz, 'infinity')"

/* The cursor row, of the merchant: older than it (<) or newer (>). */
#define LIST_CURSOR(t, table, op)                                                                            \
    " AND (" t ".created_at, " t ".id) " op " (SELECT c.created_at, c.id FROM " table                        \
    " c WHERE c.id = $10::text AND c.merchant_id = $1::text)"

#define LIST_NEWEST " ORDER BY created_at DESC, id DESC LIMIT $2::int"
#define LIST_OLDEST " ORDER BY created_at, id LIMIT $2::int"

static const char sql_payments[] =
    "SELECT " PAYMENT_COLS("p") " FROM payments p" LIST_WHERE("p", "reference") LIST_NEWEST;
static const char sql_payments_after[] =
    "SELECT " PAYMENT_COLS("p") " FROM payments p" LIST_WHERE("p", "reference")
        LIST_CURSOR("p", "payments", "<") LIST_NEWEST;
static const char sql_payments_before[] =
    "SELECT " PAYMENT_COLS("p") " FROM payments p" LIST_WHERE("p", "reference")
        LIST_CURSOR("p", "payments", ">") LIST_OLDEST;
static const char sql_payment_cursor[] =
    "SELECT 1 FROM payments WHERE id = $1::text AND merchant_id = $2::text";

static const char sql_refunds[] =
    "SELECT " REFUND_COLS("f") " FROM refunds f" LIST_WHERE("f", "payment_id") LIST_NEWEST;
static const char sql_refunds_after[] =
    "SELECT " REFUND_COLS("f") " FROM refunds f" LIST_WHERE("f", "payment_id")
        LIST_CURSOR("f", "refunds", "<") LIST_NEWEST;
static const char sql_refunds_before[] =
    "SELECT " REFUND_COLS("f") " FROM refunds f" LIST_WHERE("f", "payment_id")
        LIST_CURSOR("f", "refunds", ">") LIST_OLDEST;
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
static store_result list_run(store *s, const char *what, const char *const sql[3], const char *cursor_sql,
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
    store_result rc =
        store_run_rows(s, what, sql[variant], variant ? 10 : 9, params, arena, item_size, read, &rows, &n);
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
    static const char *const sql[3] = {sql_payments, sql_payments_after, sql_payments_before};
    void *items = NULL;
    store_result rc = list_run(s, "payment list", sql, sql_payment_cursor, q, arena, sizeof(store_payment),
                               list_payment_row, &items, count, has_more);
    if (rc == STORE_OK)
        *rows = items;
    return rc;
}

store_result store_list_refunds(store *s, const store_list_query *q, pagoflex_arena *arena,
                                store_refund **rows, size_t *count, bool *has_more)
{
    static const char *const sql[3] = {sql_refunds, sql_refunds_after, sql_refunds_before};
    void *items = NULL;
    store_result rc = list_run(s, "refund list", sql, sql_refund_cursor, q, arena, sizeof(store_refund),
                               list_refund_row, &items, count, has_more);
    if (rc == STORE_OK)
        *rows = items;
    return rc;
}
