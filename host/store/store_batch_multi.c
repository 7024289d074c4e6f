/* store_batch_multi.c - multi-row statements of the group commit (see
 * store_batch_multi.h).
 *
 * Each statement below is the single-operation statement of store.c with
 * its parameters turned into columns of `i` (json_to_recordset($1)), and
 * with every value the operation needs carried in the CTE that locks the
 * payment (cur), so the update and the history rows take theirs from the
 * row they belong to. Locks are taken in payment id order (ORDER BY ... FOR
 * UPDATE), as the writer orders single statements.
 */
#include "store_batch_multi.h"

#include <string.h>

#include "store_internal.h"

/* Parameter names of each kind, in the order of store_batch_op.params (set
 * by the store_batch_*_init functions of store_batch.c). */
static const char *const insert_names[] = {"id",          "connector",  "amount",   "currency", "reference",
                                           "description", "capture",    "return_url", "pm_type", "pm_token",
                                           "merchant_id", "account",    "metadata"};
static const char *const transition_names[] = {"id",      "st",     "allowed", "ref",
                                               "code",    "message", "source", "detail"};
static const char *const refund_create_names[] = {"id",       "payment_id",  "amount",  "reason",
                                                  "metadata", "merchant_id", "accounts"};
static const char *const webhook_names[] = {"connector", "event_id", "payment_id", "tx_id",   "st",
                                            "body",      "allowed",  "code",       "message", "account"};

/* The payment rows of store_sql_insert, for many: a row is written only
 * while its account is still the one the merchant uses for the connector. */
static const char sql_insert_multi[] =
    "WITH i AS MATERIALIZED ("
    " SELECT t.*, " STORE_ACCOUNT_OF("t.merchant_id", "t.connector") " AS resolved"
    " FROM json_to_recordset($1::json) AS t(n int, id text, connector text, amount text, currency text,"
    " reference text, description text, capture text, return_url text, pm_type text, pm_token text,"
    " merchant_id text, account text, metadata text)"
    "), p AS ("
    " INSERT INTO payments (id, connector, amount, currency, state, reference, description,"
    " capture_method, return_url, payment_method_type, payment_method_token, merchant_id,"
    " connector_account, metadata)"
    " SELECT id, connector, amount::bigint, currency, 'created', reference, description, capture,"
    " return_url, pm_type, pm_token, merchant_id, resolved, metadata::jsonb FROM i"
    " WHERE resolved = account ORDER BY id"
    " RETURNING *"
    "), h AS ("
    " INSERT INTO payment_history (payment_id, from_state, to_state, source)"
    " SELECT id, NULL, state, 'api' FROM p"
    ") SELECT i.n, " PAYMENT_COLS("p") " FROM p JOIN i ON i.id = p.id";

/* store_sql_transition, for many: n, moved, the payment. */
static const char sql_transition_multi[] =
    "WITH i AS ("
    " SELECT * FROM json_to_recordset($1::json) AS t(n int, id text, st text, allowed text, ref text,"
    " code text, message text, source text, detail text)"
    "), cur AS MATERIALIZED ("
    " SELECT p.*, i.n AS i_n, i.st AS i_st, i.allowed::text[] AS i_allowed, i.ref AS i_ref,"
    " i.code AS i_code, i.message AS i_message, i.source AS i_source, i.detail AS i_detail"
    " FROM i JOIN payments p ON p.id = i.id ORDER BY p.id FOR UPDATE OF p"
    "), upd AS ("
    " UPDATE payments p SET state = cur.i_st,"
    " provider_reference_id = COALESCE(p.provider_reference_id, cur.i_ref), " ERROR_FIELDS(
        "cur.i_st", "cur.i_code", "cur.i_message") ", updated_at = now()"
    " FROM cur WHERE p.id = cur.id AND p.state = ANY (cur.i_allowed)"
    " RETURNING p.*, cur.state AS from_state, cur.i_n, cur.i_source, cur.i_detail"
    "), h AS ("
    " INSERT INTO payment_history (payment_id, from_state, to_state, source, detail)"
    " SELECT id, from_state, state, i_source, i_detail FROM upd"
    ") SELECT upd.i_n, true, " PAYMENT_COLS("upd") " FROM upd"
    " UNION ALL"
    " SELECT cur.i_n, false, " PAYMENT_COLS("cur") " FROM cur"
    " WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = cur.id)";

/* store_sql_webhook_by_id / _by_ref, for many: n, applied | refused |
 * duplicate, the payment, whether its bank id was unknown before. `lookup`
 * joins i to the payment p. */
#define WEBHOOK_MULTI_SQL(lookup)                                                                      \
    "WITH i AS ("                                                                                      \
    " SELECT * FROM json_to_recordset($1::json) AS t(n int, connector text, event_id text,"            \
    " payment_id text, tx_id text, st text, body text, allowed text, code text, message text,"         \
    " account text)"                                                                                   \
    "), cur AS MATERIALIZED ("                                                                         \
    " SELECT p.*, i.n AS i_n, i.event_id AS i_event, i.tx_id AS i_tx, i.st AS i_st, i.body AS i_body," \
    " i.allowed::text[] AS i_allowed, i.code AS i_code, i.message AS i_message"                        \
    " FROM i JOIN payments p ON p.connector = i.connector AND p.connector_account = i.account"         \
    " AND " lookup " ORDER BY p.id FOR UPDATE OF p"                                                    \
    "), ev AS ("                                                                                       \
    " INSERT INTO webhook_events (connector, event_id, payment_id, state, tx_id, body, applied,"       \
    " connector_account)"                                                                              \
    " SELECT connector, i_event, id, i_st, i_tx, i_body, state = ANY (i_allowed), connector_account"   \
    " FROM cur"                                                                                        \
    " ON CONFLICT (connector, connector_account, event_id) DO NOTHING RETURNING event_id"              \
    "), upd AS ("                                                                                      \
    " UPDATE payments p SET state = cur.i_st,"                                                         \
    " provider_reference_id = COALESCE(p.provider_reference_id, cur.i_tx), " ERROR_FIELDS(             \
        "cur.i_st", "cur.i_code", "cur.i_message") ", updated_at = now()"                              \
    " FROM cur WHERE p.id = cur.id AND p.state = ANY (cur.i_allowed)"                                  \
    " AND EXISTS (SELECT 1 FROM ev WHERE ev.event_id = cur.i_event)"                                   \
    " RETURNING p.*, cur.state AS from_state, cur.provider_reference_id IS NULL AS ref_was_null,"      \
    " cur.i_n, cur.i_event"                                                                            \
    "), h AS ("                                                                                        \
    " INSERT INTO payment_history (payment_id, from_state, to_state, source, detail)"                  \
    " SELECT id, from_state, state, 'webhook', i_event FROM upd"                                       \
    ") SELECT upd.i_n, 'applied', " PAYMENT_COLS("upd") ", upd.ref_was_null FROM upd"                  \
    " UNION ALL"                                                                                       \
    " SELECT cur.i_n, CASE WHEN EXISTS (SELECT 1 FROM ev WHERE ev.event_id = cur.i_event)"             \
    " THEN 'refused' ELSE 'duplicate' END, " PAYMENT_COLS("cur") ", cur.provider_reference_id IS NULL" \
    " FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = cur.id)"

static const char sql_webhook_by_id_multi[] = WEBHOOK_MULTI_SQL("p.id = i.payment_id");
static const char sql_webhook_by_ref_multi[] =
    WEBHOOK_MULTI_SQL("p.provider_reference_id = i.tx_id AND i.payment_id IS NULL");

/* store_sql_refund_create, for many: n, made, the payment, the refund (NULLs
 * when refused). */
static const char sql_refund_create_multi[] =
    "WITH i AS ("
    " SELECT * FROM json_to_recordset($1::json) AS t(n int, id text, payment_id text, amount text,"
    " reason text, metadata text, merchant_id text, accounts text)"
    "), cur AS MATERIALIZED ("
    " SELECT p.*, i.n AS i_n, i.id AS i_id, i.reason AS i_reason, i.metadata AS i_metadata,"
    " i.accounts::text[] AS i_accounts, CASE WHEN i.amount::bigint > 0 THEN i.amount::bigint"
    " ELSE p.amount_received - p.amount_refunded END AS i_amount"
    " FROM i JOIN payments p ON p.id = i.payment_id AND p.merchant_id = i.merchant_id"
    " ORDER BY p.id FOR UPDATE OF p"
    "), pay AS ("
    " UPDATE payments p SET amount_refunded = p.amount_refunded + cur.i_amount, updated_at = now()"
    " FROM cur WHERE p.id = cur.id AND p.state = 'succeeded' AND cur.i_amount > 0"
    " AND p.amount_refunded + cur.i_amount <= p.amount_received"
    " AND (cur.i_accounts IS NULL OR cur.connector || '/' || cur.connector_account = ANY (cur.i_accounts))"
    " RETURNING p.*, cur.i_n, cur.i_id, cur.i_amount, cur.i_reason, cur.i_metadata"
    "), r AS ("
    " INSERT INTO refunds (id, payment_id, connector, amount, currency, state, reason, metadata,"
    " merchant_id, connector_account)"
    " SELECT i_id, id, connector, i_amount, currency, 'created', i_reason, i_metadata::jsonb,"
    " merchant_id, connector_account FROM pay RETURNING *"
    "), h AS ("
    " INSERT INTO refund_history (refund_id, from_state, to_state, source)"
    " SELECT id, NULL, 'created', 'api' FROM r"
    ") SELECT pay.i_n, true, " PAYMENT_COLS("pay") ", " REFUND_COLS("r") " FROM pay JOIN r ON r.id = pay.i_id"
    " UNION ALL"
    " SELECT cur.i_n, false, " PAYMENT_COLS("cur") ", NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL FROM cur WHERE NOT EXISTS (SELECT 1 FROM pay WHERE pay.id = cur.id)";

/* store_sql_refund_transition, for many: n, moved, the refund. A refund
 * that fails gives its amount back to its payment (rel). */
static const char sql_refund_transition_multi[] =
    "WITH i AS ("
    " SELECT * FROM json_to_recordset($1::json) AS t(n int, id text, st text, allowed text, ref text,"
    " code text, message text, source text, detail text)"
    "), cur AS MATERIALIZED ("
    " SELECT r.*, i.n AS i_n, i.st AS i_st, i.allowed::text[] AS i_allowed, i.ref AS i_ref,"
    " i.code AS i_code, i.message AS i_message, i.source AS i_source, i.detail AS i_detail"
    " FROM i JOIN refunds r ON r.id = i.id ORDER BY r.id FOR UPDATE OF r"
    "), upd AS ("
    " UPDATE refunds r SET state = cur.i_st,"
    " provider_reference_id = COALESCE(r.provider_reference_id, cur.i_ref),"
    " error_code = CASE WHEN cur.i_code IS NOT NULL THEN cur.i_code ELSE r.error_code END,"
    " error_message = CASE WHEN cur.i_code IS NOT NULL THEN cur.i_message ELSE r.error_message END,"
    " updated_at = now()"
    " FROM cur WHERE r.id = cur.id AND r.state = ANY (cur.i_allowed)"
    " RETURNING r.*, cur.state AS from_state, cur.i_n, cur.i_source, cur.i_detail"
    "), rel AS ("
    " UPDATE payments p SET amount_refunded = p.amount_refunded - upd.amount, updated_at = now()"
    " FROM upd WHERE p.id = upd.payment_id AND upd.state = 'failed'"
    "), h AS ("
    " INSERT INTO refund_history (refund_id, from_state, to_state, source, detail)"
    " SELECT id, from_state, state, i_source, i_detail FROM upd"
    ") SELECT upd.i_n, true, " REFUND_COLS("upd") " FROM upd"
    " UNION ALL"
    " SELECT cur.i_n, false, " REFUND_COLS("cur") " FROM cur"
    " WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = cur.id)";

const char batch_sql_orphans_waiting_multi[] =
    "SELECT i.n FROM json_to_recordset($1::json) AS i(n int, id text, ref text)"
    " JOIN payments p ON p.id = i.id"
    " WHERE EXISTS (SELECT 1 FROM webhook_events e WHERE e.connector = p.connector AND e.tx_id = i.ref"
    " AND e.connector_account = p.connector_account AND e.payment_id IS NULL)";

const char *batch_multi_sql(const store_batch_op *op)
{
    switch (op->kind) {
    case BATCH_INSERT:
        return sql_insert_multi;
    case BATCH_TRANSITION:
        return sql_transition_multi;
    case BATCH_WEBHOOK:
        return op->params[2] ? sql_webhook_by_id_multi : sql_webhook_by_ref_multi;
    case BATCH_REFUND_CREATE:
        return sql_refund_create_multi;
    case BATCH_REFUND_TRANSITION:
        return sql_refund_transition_multi;
    default:
        return NULL;
    }
}

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

bool batch_multi_clash(const store_batch_op *a, const store_batch_op *b)
{
    switch (a->kind) {
    case BATCH_TRANSITION: /* the payment */
        return same(a->params[0], b->params[0]);
    case BATCH_WEBHOOK: /* the event, the payment by id or by bank id */
        return same(a->params[1], b->params[1]) || same(a->params[2], b->params[2]) ||
               same(a->params[3], b->params[3]);
    case BATCH_REFUND_CREATE: /* the payment whose refunded amount grows */
        return same(a->params[1], b->params[1]);
    case BATCH_REFUND_TRANSITION: /* the refund, and its payment (a failed one gives back) */
        return same(a->params[0], b->params[0]) || same(a->sort_key, b->sort_key);
    default: /* inserts: a repeated id fails the statement, as it fails the transaction */
        return false;
    }
}

json_t *batch_multi_object(const store_batch_op *op, int n)
{
    const char *const *names = NULL;
    size_t count = 0;
    switch (op->kind) {
    case BATCH_INSERT:
        names = insert_names;
        count = sizeof insert_names / sizeof *insert_names;
        break;
    case BATCH_TRANSITION:
    case BATCH_REFUND_TRANSITION:
        names = transition_names;
        count = sizeof transition_names / sizeof *transition_names;
        break;
    case BATCH_WEBHOOK:
        names = webhook_names;
        count = sizeof webhook_names / sizeof *webhook_names;
        break;
    case BATCH_REFUND_CREATE:
        names = refund_create_names;
        count = sizeof refund_create_names / sizeof *refund_create_names;
        break;
    default:
        return NULL;
    }
    if ((size_t)op->nparams != count)
        return NULL;
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "n", json_integer(n)) != 0)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        json_t *v = op->params[i] ? json_string(op->params[i]) : json_null();
        if (!v || json_object_set_new(o, names[i], v) != 0)
            goto fail;
    }
    return o;

fail:
    json_decref(o);
    return NULL;
}
