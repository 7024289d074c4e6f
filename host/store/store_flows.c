/* store_flows.c - captures, voids and refunds in PostgreSQL (migration 8). */
#include "store_flows.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_internal.h"

#define S(x) (1u << PAGOFLEX_STATE_##x)

/* allowed_from[to] for refunds: failed only from states where the bank
 * answered, never forgetting a refund it may have. */
static const unsigned refund_allowed_from[PAYMENT_STATE_COUNT] = {
    [PAGOFLEX_STATE_PROCESSING] = S(CREATED),
    [PAGOFLEX_STATE_PENDING] = S(CREATED) | S(PROCESSING),
    [PAGOFLEX_STATE_SUCCEEDED] = S(CREATED) | S(PROCESSING) | S(PENDING) | S(REQUIRES_REVIEW),
    [PAGOFLEX_STATE_FAILED] = S(CREATED) | S(PROCESSING) | S(PENDING) | S(REQUIRES_REVIEW),
    [PAGOFLEX_STATE_REQUIRES_REVIEW] = S(CREATED) | S(PROCESSING) | S(PENDING),
};

#undef S

bool store_refund_transition_allowed(pagoflex_state from, pagoflex_state to)
{
    if ((int)from < 0 || (int)from >= PAYMENT_STATE_COUNT || (int)to < 0 ||
        (int)to >= PAYMENT_STATE_COUNT)
        return false;
    return (refund_allowed_from[to] >> from) & 1u;
}

void store_refund_allowed_from(pagoflex_state to, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "{");
    int n = 0;
    for (int f = 0; f < PAYMENT_STATE_COUNT && used < len; f++)
        if (store_refund_transition_allowed((pagoflex_state)f, to))
            used += (size_t)snprintf(buf + used, len - used, "%s%s", n++ ? "," : "",
                                     payment_state_name((pagoflex_state)f));
    if (used < len)
        snprintf(buf + used, len - used, "}");
}

store_result store_refund_from_row(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                   store_refund *out)
{
    store_refund f = {0};
    bool oom = false;
    f.id = store_row_text(r, row, col + 0, arena, &oom);
    f.payment_id = store_row_text(r, row, col + 1, arena, &oom);
    f.connector = store_row_text(r, row, col + 2, arena, &oom);
    f.amount = strtoll(PQgetvalue(r, row, col + 3), NULL, 10);
    f.currency = store_row_text(r, row, col + 4, arena, &oom);
    int state = payment_state_parse(PQgetvalue(r, row, col + 5));
    f.provider_reference_id = store_row_text(r, row, col + 6, arena, &oom);
    f.reason = store_row_text(r, row, col + 7, arena, &oom);
    f.metadata = store_row_text(r, row, col + 8, arena, &oom);
    f.error_code = store_row_text(r, row, col + 9, arena, &oom);
    f.error_message = store_row_text(r, row, col + 10, arena, &oom);
    f.created_at = store_row_text(r, row, col + 11, arena, &oom);
    f.updated_at = store_row_text(r, row, col + 12, arena, &oom);
    f.connector_account = store_row_text(r, row, col + 13, arena, &oom);
    if (oom || state < 0) {
        log_error("store: cannot read refund row (%s)", oom ? "out of memory" : "unknown state");
        return STORE_ERROR;
    }
    f.state = (pagoflex_state)state;
    *out = f;
    return STORE_OK;
}

/* $1 refund id, $2 payment id, $3 amount (0 = the rest), $4 reason, $5
 * metadata, $6 the caller's merchant, $7 NULL or the "connector/account"
 * pairs that may be refunded (store_refund_create passes NULL; the group
 * commit's refund create in store_batch.c may pass them: a payment of
 * another pair is then refused as any other, with its row). The payment
 * row is locked first
 * (cur), so concurrent refunds of one payment queue on it and each sees the
 * amount the previous reserved; another merchant's payment is no row, as
 * an unknown id. */
const char store_sql_refund_create[] =
    "WITH cur AS MATERIALIZED ("
    " SELECT p.*, CASE WHEN $3::bigint > 0 THEN $3::bigint"
    " ELSE p.amount_received - p.amount_refunded END AS n"
    " FROM payments p WHERE p.id = $2::text AND p.merchant_id = $6::text FOR UPDATE"
    "), pay AS ("
    " UPDATE payments p SET amount_refunded = p.amount_refunded + cur.n, updated_at = now()"
    " FROM cur WHERE p.id = cur.id AND p.state = 'succeeded' AND cur.n > 0"
    " AND p.amount_refunded + cur.n <= p.amount_received"
    " AND ($7::text[] IS NULL OR cur.connector || '/' || cur.connector_account = ANY ($7::text[]))"
    " RETURNING p.*, cur.n"
    "), r AS ("
    " INSERT INTO refunds (id, payment_id, connector, amount, currency, state, reason, metadata,"
    " merchant_id, connector_account)"
    " SELECT $1::text, pay.id, pay.connector, pay.n, pay.currency, 'created', $4::text,"
    " $5::jsonb, pay.merchant_id, pay.connector_account FROM pay RETURNING *"
    "), h AS ("
    " INSERT INTO refund_history (refund_id, from_state, to_state, source)"
    " SELECT id, NULL, 'created', 'api' FROM r"
    ") SELECT true, " PAYMENT_COLS("pay") ", " REFUND_COLS("r") " FROM pay, r"
    " UNION ALL"
    " SELECT false, " PAYMENT_COLS("cur") ", NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL FROM cur WHERE NOT EXISTS (SELECT 1 FROM pay)";

store_result store_refund_create(store *s, const char *merchant_id, const char *refund_id,
                                 const char *payment_id, int64_t amount, const char *reason,
                                 const char *metadata_json, pagoflex_arena *arena, store_refund *out,
                                 store_payment *payment)
{
    PGresult *r = NULL;
    char n[24];
    snprintf(n, sizeof n, "%" PRId64, amount > 0 ? amount : 0);
    const char *const params[] = {refund_id, payment_id, n, reason, metadata_json, merchant_id, NULL};
    store_result rc = STORE_ERROR;
    if (!merchant_id || !*merchant_id) {
        log_error("store: refund create without a merchant");
        goto fail;
    }
    rc = store_run(s, "refund create", store_sql_refund_create, 7, params, true, &r);
    if (rc != STORE_OK)
        goto fail;
    metrics_db_commit();
    rc = PQntuples(r) == 1 ? store_refund_create_read(r, 0, 0, arena, out, payment) : STORE_NOT_FOUND;

fail:
    PQclear(r);
    return rc;
}

store_result store_refund_create_read(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                      store_refund *out, store_payment *payment)
{
    store_payment pay;
    store_refund ref = {0};
    store_result rc;
    if (row < 0 || row >= PQntuples(r))
        return STORE_NOT_FOUND;
    bool made = PQgetvalue(r, row, col)[0] == 't';
    if ((rc = store_payment_from_row(r, row, col + 1, arena, &pay)) != STORE_OK)
        return rc;
    if (made && (rc = store_refund_from_row(r, row, col + 1 + PAYMENT_NCOLS, arena, &ref)) != STORE_OK)
        return rc;
    *payment = pay;
    if (made)
        *out = ref;
    return made ? STORE_OK : STORE_CONFLICT;
}

static const char sql_refund_get[] = "SELECT " REFUND_COLS("r") " FROM refunds r WHERE r.id = $1::text";

/* $1 id, $2 the caller's merchant. */
static const char sql_refund_get_of[] =
    "SELECT " REFUND_COLS("r") " FROM refunds r"
                               " WHERE r.id = $1::text AND r.merchant_id = $2::text";

store_result store_refund_get(store *s, const char *id, pagoflex_arena *arena, store_refund *out)
{
    PGresult *r = NULL;
    const char *const params[] = {id};
    store_result rc = store_run(s, "refund get", sql_refund_get, 1, params, false, &r);
    if (rc == STORE_OK)
        rc = PQntuples(r) == 1 ? store_refund_from_row(r, 0, 0, arena, out) : STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

store_result store_refund_get_of(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                 store_refund *out)
{
    PGresult *r = NULL;
    const char *const params[] = {id, merchant_id};
    if (!merchant_id || !*merchant_id) {
        log_error("store: merchant refund read without a merchant");
        return STORE_ERROR;
    }
    store_result rc = store_run(s, "merchant refund get", sql_refund_get_of, 2, params, false, &r);
    if (rc == STORE_OK)
        rc = PQntuples(r) == 1 ? store_refund_from_row(r, 0, 0, arena, out) : STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char sql_refund_list[] =
    "SELECT " REFUND_COLS("r") " FROM refunds r"
                               " WHERE r.payment_id = $1::text AND r.merchant_id = $2::text"
                               " ORDER BY r.created_at, r.id LIMIT 100";

store_result store_refund_list(store *s, const char *merchant_id, const char *payment_id,
                               pagoflex_arena *arena, store_refund **out, size_t *count)
{
    PGresult *r = NULL;
    store_refund *rows = NULL;
    const char *const params[] = {payment_id, merchant_id};
    if (!merchant_id || !*merchant_id) {
        log_error("store: refund list without a merchant");
        return STORE_ERROR;
    }
    store_result rc = store_run(s, "refund list", sql_refund_list, 2, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    int n = PQntuples(r);
    if (n > 0 && !(rows = arena_alloc(arena, (size_t)n * sizeof *rows))) {
        rc = STORE_ERROR;
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if ((rc = store_refund_from_row(r, i, 0, arena, &rows[i])) != STORE_OK)
            goto fail;
    *out = rows;
    *count = (size_t)n;

fail:
    PQclear(r);
    return rc;
}

/* $1 id, $2 to, $3 allowed from, $4 provider ref, $5 error code, $6 error
 * message, $7 source, $8 detail. The refund row is locked first; a move to
 * failed gives the amount back to the payment (rel) in the same statement. */
#define REFUND_TRANSITION_SQL(cond)                                                        \
    "WITH cur AS MATERIALIZED ("                                                           \
    " SELECT * FROM refunds WHERE id = $1::text FOR UPDATE"                                \
    "), upd AS ("                                                                          \
    " UPDATE refunds r SET state = $2::text,"                                              \
    " provider_reference_id = COALESCE(r.provider_reference_id, $4::text),"                \
    " error_code = CASE WHEN $5::text IS NOT NULL THEN $5::text ELSE r.error_code END,"    \
    " error_message = CASE WHEN $5::text IS NOT NULL THEN $6::text ELSE r.error_message END," \
    " updated_at = now()"                                                                  \
    " FROM cur WHERE r.id = cur.id AND r.state = ANY ($3::text[])" cond                    \
    " RETURNING r.*, cur.state AS from_state"                                              \
    "), rel AS ("                                                                          \
    " UPDATE payments p SET amount_refunded = p.amount_refunded - upd.amount, updated_at = now()" \
    " FROM upd WHERE p.id = upd.payment_id AND upd.state = 'failed'"                       \
    "), h AS ("                                                                            \
    " INSERT INTO refund_history (refund_id, from_state, to_state, source, detail)"        \
    " SELECT id, from_state, state, $7::text, $8::text FROM upd"                           \
    ") SELECT true, " REFUND_COLS("upd") " FROM upd"                                      \
    " UNION ALL"                                                                           \
    " SELECT false, " REFUND_COLS("cur") " FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)"

const char store_sql_refund_transition[] = REFUND_TRANSITION_SQL("");

/* The reconciler's: $9 the claim's fencing token. */
static const char sql_refund_transition_fenced[] =
    REFUND_TRANSITION_SQL(" AND r.claim_token = $9::bigint");

/* Run a refund transition statement (8 or 9 parameters); *out on
 * STORE_OK (moved) and STORE_CONFLICT (refused). */
static store_result refund_transition_run(store *s, const char *what, const char *sql, int n,
                                          const char *const *params, pagoflex_arena *arena,
                                          store_refund *out)
{
    PGresult *r = NULL;
    store_result rc = store_run(s, what, sql, n, params, false, &r);
    if (rc == STORE_OK) {
        metrics_db_commit();
        rc = PQntuples(r) == 1 ? store_refund_transition_read(r, 0, 0, arena, out) : STORE_NOT_FOUND;
    }
    PQclear(r);
    return rc;
}

store_result store_refund_transition_read(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                          store_refund *out)
{
    store_refund ref;
    if (row < 0 || row >= PQntuples(r))
        return STORE_NOT_FOUND;
    bool moved = PQgetvalue(r, row, col)[0] == 't';
    store_result rc = store_refund_from_row(r, row, col + 1, arena, &ref);
    if (rc != STORE_OK)
        return rc;
    *out = ref;
    return moved ? STORE_OK : STORE_CONFLICT;
}

store_result store_refund_transition(store *s, const char *id, pagoflex_state to,
                                     const char *source, const char *detail,
                                     const char *provider_ref, const char *error_code,
                                     const char *error_message, pagoflex_arena *arena,
                                     store_refund *out)
{
    char allowed[160];
    store_refund_allowed_from(to, allowed, sizeof allowed);
    const char *const params[] = {id,         payment_state_name(to), allowed, provider_ref,
                                  error_code, error_message,          source,  detail};
    return refund_transition_run(s, "refund transition", store_sql_refund_transition, 8, params, arena, out);
}

static const char sql_refund_history[] =
    "SELECT h.from_state, h.to_state, h.source, h.detail, " TS("h.at")
    " FROM refunds f LEFT JOIN refund_history h ON h.refund_id = f.id"
    " WHERE f.id = $1::text ORDER BY h.id";

store_result store_refund_history(store *s, const char *id, pagoflex_arena *arena,
                                  store_history_entry **entries, size_t *count)
{
    const char *const params[] = {id};
    return store_history_read(s, "refund history", sql_refund_history, 1, params, arena, entries, count);
}

/* $1 id, $2 op, $3 amount (0 = all capturable), $4 the caller's merchant
 * (another merchant's payment is no row). One UPDATE: the claim. */
static const char sql_claim_op[] =
    "WITH cur AS MATERIALIZED ("
    " SELECT * FROM payments WHERE id = $1::text AND merchant_id = $4::text FOR UPDATE"
    "), upd AS ("
    " UPDATE payments p SET pending_operation = $2::text,"
    " capture_amount = CASE WHEN $2::text = 'capture' THEN"
    " CASE WHEN $3::bigint > 0 THEN $3::bigint ELSE p.amount_capturable END"
    " ELSE p.capture_amount END, hold_due_at = NULL, operation_accepted = false, updated_at = now()"
    " FROM cur WHERE p.id = cur.id AND p.pending_operation IS NULL AND ("
    " ($2::text = 'capture' AND p.state = 'requires_capture' AND p.capture_amount IS NULL"
    " AND (CASE WHEN $3::bigint > 0 THEN $3::bigint ELSE p.amount_capturable END)"
    " BETWEEN 1 AND p.amount_capturable)"
    " OR ($2::text = 'void' AND p.state IN ('requires_capture', 'requires_action')))"
    " RETURNING p.*"
    ") SELECT true, " PAYMENT_COLS("upd") " FROM upd"
                                          " UNION ALL"
                                          " SELECT false, " PAYMENT_COLS(
                                              "cur") " FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)";

/* $1 id, $2 op. */
static const char sql_release_op[] =
    "WITH upd AS ("
    " UPDATE payments p SET pending_operation = NULL,"
    " capture_amount = CASE WHEN $2::text = 'capture' THEN NULL ELSE p.capture_amount END,"
    " hold_due_at = NULL, operation_accepted = false, updated_at = now()"
    " WHERE p.id = $1::text AND p.pending_operation = $2::text RETURNING p.*"
    ") SELECT true, " PAYMENT_COLS("upd") " FROM upd"
    " UNION ALL"
    " SELECT false, " PAYMENT_COLS("p") " FROM payments p"
    " WHERE p.id = $1::text AND NOT EXISTS (SELECT 1 FROM upd)";

store_result store_payment_claim_operation(store *s, const char *merchant_id, const char *id, const char *op,
                                           int64_t amount, pagoflex_arena *arena, store_payment *out)
{
    char n[24];
    snprintf(n, sizeof n, "%" PRId64, amount > 0 ? amount : 0);
    const char *const params[] = {id, op, n, merchant_id};
    if (!merchant_id || !*merchant_id) {
        log_error("store: operation claim without a merchant");
        return STORE_ERROR;
    }
    return store_transition_run(s, "payment claim operation", sql_claim_op, 4, params, arena, out);
}

store_result store_payment_release_operation(store *s, const char *id, const char *op,
                                             pagoflex_arena *arena, store_payment *out)
{
    const char *const params[] = {id, op};
    return store_transition_run(s, "payment release operation", sql_release_op, 2, params,
                                  arena, out);
}

/* $1 id, $2 op, $3 delay ms, $4 accepted, $5 error. */
static const char sql_schedule_op[] =
    "UPDATE payments SET hold_due_at = now() + ($3::bigint * interval '1 millisecond'),"
    " operation_accepted = $4::boolean, last_attempt_error = $5::text"
    " WHERE id = $1::text AND pending_operation = $2::text AND hold_due_at IS NULL";

store_result store_payment_schedule_operation(store *s, const char *id, const char *op, long delay_ms,
                                              bool accepted, const char *error)
{
    PGresult *r = NULL;
    char delay[24];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    const char *const params[] = {id, op, delay, accepted ? "true" : "false", error};
    store_result rc = store_run(s, "payment schedule operation", sql_schedule_op, 5, params, false, &r);
    PQclear(r);
    return rc;
}

store_result store_payment_set_redirect(store *s, const char *id, const char *url)
{
    PGresult *r = NULL;
    const char *const params[] = {id, url};
    store_result rc = store_run(s, "payment set redirect",
                                "UPDATE payments SET redirect_url = $2::text"
                                " WHERE id = $1::text AND state = 'requires_action'",
                                2, params, false, &r);
    PQclear(r);
    return rc;
}

/* $1 connector, $2 our refund id, $3 bank refund id, $4 event id, $5 to,
 * $6 body, $7 allowed from, $8 event type, $9 error code, $10 message, $11
 * connector account (only its refunds are found). The
 * event is stored (deduped on (connector, event_id)) and applied in one
 * statement: a delivery retried after a crash is either a duplicate or
 * applied, never stored without its effect. */
static const char sql_refund_webhook[] =
    "WITH cur AS MATERIALIZED ("
    " SELECT *, state AS from_state FROM refunds WHERE connector = $1::text"
    " AND connector_account = $11::text AND"
    " (id = $2::text OR ($2::text IS NULL AND provider_reference_id = $3::text)) FOR UPDATE"
    "), ev AS ("
    " INSERT INTO webhook_events (connector, event_id, payment_id, state, tx_id, body, applied, kind,"
    " refund_id, event_type, connector_account)"
    " SELECT $1::text, $4::text, cur.payment_id, NULL, NULL, $6::text, cur.state = ANY ($7::text[]),"
    " 'refund', cur.id, $8::text, $11::text FROM cur"
    " ON CONFLICT (connector, connector_account, event_id) DO NOTHING RETURNING id"
    "), upd AS ("
    " UPDATE refunds r SET state = $5::text,"
    " provider_reference_id = COALESCE(r.provider_reference_id, $3::text),"
    " error_code = CASE WHEN $9::text IS NOT NULL THEN $9::text ELSE r.error_code END,"
    " error_message = CASE WHEN $9::text IS NOT NULL THEN $10::text ELSE r.error_message END,"
    " updated_at = now()"
    " FROM cur WHERE r.id = cur.id AND r.state = ANY ($7::text[]) AND EXISTS (SELECT 1 FROM ev)"
    " RETURNING r.*, cur.state AS from_state"
    "), rel AS ("
    " UPDATE payments p SET amount_refunded = p.amount_refunded - upd.amount, updated_at = now()"
    " FROM upd WHERE p.id = upd.payment_id AND upd.state = 'failed'"
    "), h AS ("
    " INSERT INTO refund_history (refund_id, from_state, to_state, source, detail)"
    " SELECT id, from_state, state, 'webhook', $4::text FROM upd"
    ") SELECT CASE WHEN EXISTS (SELECT 1 FROM upd) THEN 'applied'"
    " WHEN EXISTS (SELECT 1 FROM ev) THEN 'ignored' ELSE 'duplicate' END, " REFUND_COLS("x")
    " FROM (SELECT * FROM upd UNION ALL SELECT * FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)) x";

store_result store_refund_webhook_apply(store *s, const char *connector, const char *account,
                                        const pagoflex_event *ev,
                                        const unsigned char *body, size_t body_len, pagoflex_arena *arena,
                                        store_refund *out, bool *applied)
{
    PGresult *r = NULL;
    char allowed[160];
    char *text = arena_strndup(arena, (const char *)body, body_len);
    if (!text)
        return STORE_ERROR;
    store_refund_allowed_from(ev->state, allowed, sizeof allowed);
    const char *const params[] = {connector,          ev->refund_id, ev->refund_provider_reference_id,
                                  ev->event_id,       payment_state_name(ev->state), text,
                                  allowed,            ev->type,      ev->error_code,
                                  ev->error_message,  account};
    store_refund ref;
    store_result rc = store_run(s, "refund webhook", sql_refund_webhook, 11, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    metrics_db_commit();
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    const char *outcome = PQgetvalue(r, 0, 0);
    if ((rc = store_refund_from_row(r, 0, 1, arena, &ref)) != STORE_OK)
        goto fail;
    *out = ref;
    *applied = strcmp(outcome, "applied") == 0;
    rc = strcmp(outcome, "duplicate") == 0 ? STORE_DUPLICATE : STORE_OK;

fail:
    PQclear(r);
    return rc;
}

store_result store_webhook_keep(store *s, const char *connector, const char *account,
                                const pagoflex_event *ev,
                                const unsigned char *body, size_t body_len, pagoflex_arena *arena)
{
    PGresult *r = NULL;
    char *text = arena_strndup(arena, (const char *)body, body_len);
    if (!text)
        return STORE_ERROR;
    const char *const params[] = {connector, ev->event_id, ev->type, text, account};
    store_result rc = store_run(s, "webhook keep",
                                "INSERT INTO webhook_events (connector, event_id, state, body, applied, kind,"
                                " event_type, connector_account) VALUES ($1::text, $2::text, NULL, $4::text,"
                                " false, 'ignored', $3::text, $5::text)"
                                " ON CONFLICT (connector, connector_account, event_id) DO NOTHING"
                                " RETURNING id",
                                5, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) != 1)
        rc = STORE_DUPLICATE;
    PQclear(r);
    return rc;
}

/* ---- the reconciler's claims on refunds ------------------------------------ */

#define MS(p) "(" p "::bigint * interval '1 millisecond')"
#define REFUND_OPEN "('created', 'processing', 'pending')"

/* When an open refund is due: next_attempt_at, or its state's grace after
 * updated_at while the reconciler never scheduled it. */
#define REFUND_DUE_AT(t)                                                             \
    "COALESCE(" t ".next_attempt_at, " t ".updated_at + CASE " t ".state"            \
    " WHEN 'created' THEN " MS("$1") " WHEN 'processing' THEN " MS("$2") " ELSE " MS("$3") " END)"

#define REFUND_UNSCHEDULED(state, grace)                                             \
    " UNION ALL (SELECT id FROM refunds WHERE state = '" state "'"                   \
    " AND next_attempt_at IS NULL AND updated_at <= now() - " MS(grace)               \
    " ORDER BY updated_at LIMIT $4::int)"

/* A claimed refund's columns; `deadline` the parameter of deadline_s. */
#define REFUND_ITEM_COLS(t, deadline)                                                \
    REFUND_COLS(t) ", " t ".attempts, " t ".created_at + " deadline                  \
    "::bigint * interval '1 second' <= now(), " t ".claim_token"

/* As store_recon_sql_claim: candidates from range scans of refunds_due and
 * refunds_unscheduled that stop at now, then locked and checked again. */
const char store_refund_sql_claim[] =
    "WITH cand AS ("
    " (SELECT id FROM refunds WHERE state IN " REFUND_OPEN " AND next_attempt_at <= now()"
    " ORDER BY next_attempt_at LIMIT $4::int)"
    REFUND_UNSCHEDULED("created", "$1") REFUND_UNSCHEDULED("processing", "$2")
    REFUND_UNSCHEDULED("pending", "$3")
    "), due AS ("
    " SELECT r.id FROM refunds r WHERE r.id IN (SELECT id FROM cand)"
    " AND r.state IN " REFUND_OPEN " AND " REFUND_DUE_AT("r") " <= now()"
    " ORDER BY " REFUND_DUE_AT("r") " LIMIT $4::int FOR UPDATE OF r SKIP LOCKED"
    ") UPDATE refunds r SET next_attempt_at = now() + " MS("$5") ", attempts = r.attempts + 1,"
    " claim_token = nextval('refunds_claim_token_seq')"
    " FROM due WHERE r.id = due.id RETURNING " REFUND_ITEM_COLS("r", "$6");

/* $1 id, $2 claim, $3 lease ms, $4 deadline s. */
const char store_refund_sql_renew[] =
    "UPDATE refunds r SET next_attempt_at = now() + " MS("$3")
    " WHERE r.id = $1::text AND r.claim_token = $2::bigint AND r.state IN " REFUND_OPEN
    " RETURNING " REFUND_ITEM_COLS("r", "$4");

/* $1 id, $2 delay ms, $3 error, $4 claim, $5 the state decided from. */
static const char sql_refund_reschedule[] =
    "UPDATE refunds SET next_attempt_at = now() + " MS("$2") ", last_attempt_error = $3::text"
    " WHERE id = $1::text AND claim_token = $4::bigint AND state = $5::text";

/* $1 connector, $2 our refund id, $3 the bank's refund id, $4 connector account. */
static const char sql_refund_make_due[] =
    "UPDATE refunds SET next_attempt_at = now()"
    " WHERE connector = $1::text AND connector_account = $4::text AND (id = $2::text OR ($2::text IS NULL AND"
    " provider_reference_id = $3::text)) AND state IN " REFUND_OPEN " RETURNING id";

static store_result refund_item_from_row(const PGresult *r, int i, pagoflex_arena *arena, void *out)
{
    store_refund_item it;
    store_result rc = store_refund_from_row(r, i, 0, arena, &it.refund);
    if (rc != STORE_OK)
        return rc;
    it.attempts = atoi(PQgetvalue(r, i, REFUND_NCOLS));
    it.past_deadline = PQgetvalue(r, i, REFUND_NCOLS + 1)[0] == 't';
    it.claim = strtoll(PQgetvalue(r, i, REFUND_NCOLS + 2), NULL, 10);
    *(store_refund_item *)out = it;
    return STORE_OK;
}

store_result store_refund_claim(store *s, const store_recon_timing *t, int limit, pagoflex_arena *arena,
                                store_refund_item **items, size_t *count)
{
    void *list = NULL;
    store_result rc = store_recon_claim_rows(s, "refund claim", store_refund_sql_claim, t, limit, arena,
                                             sizeof **items, refund_item_from_row, &list, count);
    if (rc == STORE_OK)
        *items = list;
    return rc;
}

store_result store_refund_renew(store *s, const store_recon_timing *t, pagoflex_arena *arena,
                                store_refund_item *it)
{
    return store_recon_renew_row(s, "refund renew", store_refund_sql_renew, it->refund.id, it->claim, t, arena,
                                 refund_item_from_row, it);
}

store_result store_refund_recon_transition(store *s, const store_refund_item *it, pagoflex_state to,
                                           const char *source, const char *detail,
                                           const char *provider_ref, const char *error_code,
                                           const char *error_message, pagoflex_arena *arena,
                                           store_refund *out, bool *lost_claim)
{
    pagoflex_state from = it->refund.state;
    char allowed[48], claim[24];
    if (!it->refund.id || payment_state_parse(payment_state_name(to)) < 0) {
        log_error("store: reconciler transition of refund %s to invalid state %d",
                  it->refund.id ? it->refund.id : "(null)", (int)to);
        return STORE_ERROR;
    }
    /* Only from the state decided from, and only where that state may be
     * left for `to`; otherwise nothing is allowed ('{}'), the row is read. */
    if (store_refund_transition_allowed(from, to))
        snprintf(allowed, sizeof allowed, "{%s}", payment_state_name(from));
    else
        snprintf(allowed, sizeof allowed, "{}");
    snprintf(claim, sizeof claim, "%" PRId64, it->claim);
    const char *const params[] = {it->refund.id, payment_state_name(to), allowed, provider_ref, error_code,
                                  error_message, source, detail, claim};
    store_refund row;
    store_result rc = refund_transition_run(s, "refund reconciler transition", sql_refund_transition_fenced,
                                            9, params, arena, &row);
    if (rc != STORE_OK && rc != STORE_CONFLICT)
        return rc;
    *lost_claim = rc == STORE_CONFLICT && row.state == from && store_refund_transition_allowed(from, to);
    *out = row;
    return rc;
}

store_result store_refund_reschedule(store *s, const store_refund_item *it, long delay_ms, const char *error,
                                     bool *applied)
{
    PGresult *r = NULL;
    char delay[24], claim[24];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    snprintf(claim, sizeof claim, "%" PRId64, it->claim);
    const char *const params[] = {it->refund.id, delay, error, claim, payment_state_name(it->refund.state)};
    store_result rc = store_run(s, "refund reschedule", sql_refund_reschedule, 5, params, false, &r);
    if (rc == STORE_OK && applied)
        *applied = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return rc;
}

store_result store_refund_make_due(store *s, const char *connector, const char *account,
                                   const char *refund_id,
                                   const char *bank_refund_id, pagoflex_arena *arena, const char **found)
{
    PGresult *r = NULL;
    const char *const params[] = {connector, refund_id, bank_refund_id, account};
    store_result rc = store_run(s, "refund make due", sql_refund_make_due, 4, params, false, &r);
    if (rc == STORE_OK) {
        const char *id = NULL;
        if (PQntuples(r) == 1 && !(id = arena_strdup(arena, PQgetvalue(r, 0, 0))))
            rc = STORE_ERROR;
        else if (PQntuples(r) != 1)
            rc = STORE_NOT_FOUND;
        if (rc == STORE_OK)
            *found = id;
    }
    PQclear(r);
    return rc;
}
