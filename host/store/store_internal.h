/* store_internal.h - the pool and row helpers of store.c, for the store's
 * other modules (store_idem.c, store_recon.c). Not for the rest of the host:
 * everything else goes through store.h.
 */
#ifndef PAGOFLEX_STORE_INTERNAL_H
#define PAGOFLEX_STORE_INTERNAL_H

#include <stdbool.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "store.h"
#include "store_flows.h"
#include "store_recon.h"

/* One call's hold on a pooled connection. */
typedef struct store_call {
    store *s;
    int slot;
    PGconn *conn;
    bool broken;     /* close the connection when it is given back */
    char error[256]; /* primary message of the last failed statement */
} store_call;

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The columns read into a store_payment, from table or CTE alias `t`. */
#define PAYMENT_COLS(t)                                                                 \
    t ".id, " t ".connector, " t ".amount, " t ".currency, " t ".state, " t             \
    ".provider_reference_id, " t ".reference, " t ".description, " t ".error_code, " t \
    ".error_message, " TS(t ".created_at") ", " TS(t ".updated_at") ", " t                 \
    ".capture_method, " t ".amount_capturable, " t ".amount_received, " t                  \
    ".amount_refunded, " t ".return_url, " t ".redirect_url, " t ".payment_method_type, " t \
    ".payment_method_token, " t ".capture_amount, " t ".pending_operation, " t ".merchant_id, " t \
    ".connector_account, " t ".metadata::text"
#define PAYMENT_NCOLS 25

/* Error fields: a given error_code is stored (with its message) in any
 * state; `succeeded` clears them; otherwise they are kept. E = the state
 * entered, C/M = code/message (SQL text expressions); the row updated is
 * aliased p. */
#define ERROR_FIELDS(E, C, M)                                                          \
    "error_code = CASE WHEN " C "::text IS NOT NULL THEN " C "::text WHEN " E          \
    "::text = 'succeeded' THEN NULL ELSE p.error_code END, "                           \
    "error_message = CASE WHEN " C "::text IS NOT NULL THEN " M "::text WHEN " E       \
    "::text = 'succeeded' THEN NULL ELSE p.error_message END"

/* The connector account merchant M uses for connector C (SQL text
 * expressions): its connector_accounts row, else "default" for
 * mer_default, else NULL (migration 11). The one definition of the rule,
 * used by the payment inserts and store_account_resolve. */
#define STORE_ACCOUNT_OF(M, C)                                                             \
    "COALESCE((SELECT ca.account FROM connector_accounts ca WHERE ca.merchant_id = " M     \
    " AND ca.connector = " C "), CASE WHEN " M " = 'mer_default' THEN 'default' END)"

#define REFUND_COLS(t)                                                                  \
    t ".id, " t ".payment_id, " t ".connector, " t ".amount, " t ".currency, " t        \
    ".state, " t ".provider_reference_id, " t ".reason, " t ".metadata::text, " t       \
    ".error_code, " t ".error_message, " TS(t ".created_at") ", " TS(t ".updated_at") ", " t \
    ".connector_account"
#define REFUND_NCOLS 14

/* Read REFUND_NCOLS columns from `col` on into *out (written on STORE_OK
 * only; store_flows.c). */
store_result store_refund_from_row(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                   store_refund *out);

/* store_refund_create()'s statement (store_flows.c): $1 refund id, $2
 * payment id, $3 amount (0 = the rest), $4 reason, $5 metadata, $6 the
 * caller's merchant, $7 NULL or the text[] of "connector/account" pairs
 * whose payments may be refunded (another pair's is refused, with its row).
 * Read its result with store_refund_create_read. */
extern const char store_sql_refund_create[];

/* Read row `row` of a result of store_sql_refund_create (or of its
 * multi-row form), its columns from `col` on, as store_refund_create
 * returns it: STORE_OK with *out and *payment, STORE_CONFLICT with
 * *payment, STORE_NOT_FOUND (no such row), or STORE_ERROR (logged) when the
 * row cannot be read. */
store_result store_refund_create_read(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                      store_refund *out, store_payment *payment);

/* store_refund_transition()'s statement: $1 id, $2 to, $3 allowed from
 * (store_refund_allowed_from), $4 provider ref, $5 error code, $6 error
 * message, $7 source, $8 detail. Read its result with
 * store_refund_transition_read. */
extern const char store_sql_refund_transition[];

/* Read row `row` of a result of a refund transition statement, its
 * columns from `col` on, as store_refund_transition returns it: STORE_OK
 * (moved) or STORE_CONFLICT (refused) with *out, STORE_NOT_FOUND (no such
 * row), or STORE_ERROR (logged). */
store_result store_refund_transition_read(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                          store_refund *out);

/* "{created,processing}": the states a refund may enter `to` from
 * (store_refund_transition_allowed), as a PostgreSQL text[] literal. */
void store_refund_allowed_from(pagoflex_state to, char *buf, size_t len);

/* The conditional transition of store_payment_transition_from(), for use
 * inside a caller's transaction: $1 id, $2 to, $3 allowed from (text[]), $4
 * provider ref, $5 error code, $6 error message, $7 source, $8 detail.
 * One row when the payment exists: first column true if it moved, then
 * PAYMENT_COLS. */
extern const char store_sql_transition[];

/* store_payment_insert()'s statement: $1..$12 as its params (store.c); one
 * row, PAYMENT_COLS, when written. */
extern const char store_sql_insert[];

/* One row when orphan events of ($1 connector, $2 tx id, $3 account) wait
 * for their payment's bank id (store_orphan.c). */
extern const char store_sql_orphan_waiting[];

/* store_sql_transition that moves the row only while $9 (bigint) is its
 * claim_token: the reconciler's fenced write (store_recon.c). */
extern const char store_sql_transition_fenced[];

/* store_webhook_apply()'s statement when the event names our payment id
 * ($3), and when it names only the bank's id ($4, with $3 NULL). Exported
 * for the tests that check their plans. */
extern const char store_sql_webhook_by_id[];
extern const char store_sql_webhook_by_ref[];

/* Hold a live connection for one call. STORE_UNAVAILABLE if none can be made. */
store_result store_call_begin(store *s, store_call *c);

/* Give the connection back; one that is broken or left inside a
 * transaction is closed instead. */
void store_call_end(store_call *c);

/* Run one statement (several when `n` is 0). On STORE_OK *res holds the
 * result (caller PQclear()s it); STORE_UNAVAILABLE on a lost connection,
 * STORE_DUPLICATE on a unique violation when dup_ok, else STORE_ERROR
 * (logged as `what`). */
store_result store_call_exec(store_call *c, const char *what, const char *sql, int n,
                             const char *const *params, bool dup_ok, PGresult **res);

/* Take a connection, run one statement, give the connection back. */
store_result store_run(store *s, const char *what, const char *sql, int n,
                       const char *const *params, bool dup_ok, PGresult **res);

/* Copy a field into the arena; NULL for SQL NULL. *oom set on failure. */
const char *store_row_text(const PGresult *r, int row, int col, pagoflex_arena *arena, bool *oom);

/* Read PAYMENT_NCOLS columns from `col` on into *out (written on STORE_OK only). */
store_result store_payment_from_row(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                    store_payment *out);

/* Read row `row` of `r` into *out, a caller's struct (written on STORE_OK
 * only). */
typedef store_result (*store_row_fn)(const PGresult *r, int row, pagoflex_arena *arena, void *out);

/* Run one statement and read each row of its result with `read` into an
 * array of `item_size`-byte items in the arena: *items (NULL when there are
 * none) and *count, written only on STORE_OK. Errors as store_run. */
store_result store_run_rows(store *s, const char *what, const char *sql, int n,
                            const char *const *params, pagoflex_arena *arena, size_t item_size,
                            store_row_fn read, void **items, size_t *count);

/* store_run (dup_ok false) with the plan held to the statement's indexes,
 * for statements run every few milliseconds on a queue table that starts
 * empty and grows (the notifier's and the reconciler's). PostgreSQL keeps a
 * generic plan it made on the empty table (sequential scans, the right plan
 * for no rows) until the table is next analyzed, and each call then reads
 * the whole table (25-58 ms a claim in the bench with 100,000 deliveries,
 * against 0.5 ms by index). With the generic plan forced and sequential
 * scans off while it is made (set around the statement, put back after),
 * the plan is the index plan however few rows the statistics say, and is
 * never made again. The group-commit writers' connections have sequential
 * scans off for their whole session (store_batch_session_settings). */
store_result store_run_indexed(store *s, const char *what, const char *sql, int n, const char *const *params,
                               PGresult **res);

/* store_run_rows through store_run_indexed. */
store_result store_run_rows_indexed(store *s, const char *what, const char *sql, int n,
                                    const char *const *params, pagoflex_arena *arena, size_t item_size,
                                    store_row_fn read, void **items, size_t *count);

/* The claim statements of the reconciler (payments, refunds) take the same
 * parameters: $1 recover created ms, $2 first retry ms, $3 webhook grace
 * ms, $4 limit, $5 lease ms, $6 deadline s. Run `sql` with those and read
 * its rows as store_run_rows_indexed does: the claims are run every few
 * seconds on tables that start empty and grow, and PostgreSQL kept their
 * generic plans made on the small tables (a sequential scan of 70,000
 * payments, 169 ms a claim, in the bench). */
store_result store_recon_claim_rows(store *s, const char *what, const char *sql,
                                    const store_recon_timing *t, int limit, pagoflex_arena *arena,
                                    size_t item_size, store_row_fn read, void **items,
                                    size_t *count);

/* The renewal statements take $1 id, $2 claim token, $3 lease ms, $4
 * deadline s and return the renewed row: read it into *out with `read`;
 * STORE_CONFLICT when the claim is no longer ours (no row). */
store_result store_recon_renew_row(store *s, const char *what, const char *sql, const char *id,
                                   int64_t claim, const store_recon_timing *t,
                                   pagoflex_arena *arena, store_row_fn read, void *out);

/* Run `sql` with its `n_params` parameters ($1 = id, and $2 = the
 * merchant for a merchant route's read; columns from_state, to_state,
 * source, detail, at of an object LEFT JOINed to its history) and read its
 * history rows, oldest first, into *entries (in the arena; NULL when empty)
 * and *count. STORE_NOT_FOUND when the object does not exist (or is not
 * the merchant's); outputs written only on STORE_OK. `what` names the
 * statement in log lines. */
store_result store_history_read(store *s, const char *what, const char *sql, int n_params,
                                const char *const *params, pagoflex_arena *arena,
                                store_history_entry **entries, size_t *count);

/* The 13 parameters of store_sql_insert for payment `p` into params, the
 * amount written into amount. False (logged) when p lacks an id, connector,
 * currency, merchant or account; then nothing is to be sent. */
bool store_payment_insert_params(const store_payment *p, char amount[24], const char *params[13]);

/* "{created,processing}": the states `to` may be entered from, as a
 * PostgreSQL text[] literal. */
void store_allowed_from(pagoflex_state to, char *buf, size_t len);

/* Run `sql`, a conditional payment update answering (moved, PAYMENT_COLS):
 * store_sql_transition, store_sql_transition_fenced, or the claim or release
 * of an operation (store_flows.c), with its `n` parameters, and count its
 * commit. STORE_OK when the payment moved,
 * STORE_CONFLICT when the statement refused it, with *out the payment as it
 * is now in both cases; STORE_NOT_FOUND when there is no such payment; else
 * as store_run, *out untouched (store_transition.c). */
store_result store_transition_run(store *s, const char *what, const char *sql, int n,
                                  const char *const *params, pagoflex_arena *arena, store_payment *out);

/* A multi-row statement's parameter, a JSON array of one object per row
 * (read with json_to_recordset): store_json_push appends o to *all; when o
 * is NULL or cannot be appended, *all is released and set to NULL, and
 * later pushes only release theirs. store_json_text releases all and
 * returns its compact text (the caller frees it); NULL if all is NULL, on
 * no memory, or when the text is not UTF-8. */
void store_json_push(json_t **all, json_t *o);
char *store_json_text(json_t *all);

/* The notifier's claim of due deliveries and its give-back of unsent ones
 * (store_notify.c; store_notify_claim, store_notify_give_back). */
extern const char store_sql_notify_claim[];
extern const char store_sql_notify_give_back[];

#endif
