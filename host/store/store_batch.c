/* store_batch.c - group commit in libpq pipeline mode (see store_batch.h).
 *
 * One queue per batcher, guarded by a mutex; each writer thread owns one
 * connection. A batch is sent as one pipeline segment
 *   BEGIN; stmt 1; ...; stmt n; COMMIT; Sync
 * and its results are read in order. Only when COMMIT answered "COMMIT"
 * are the operations' results read and their callbacks called. Operations
 * that must look for orphan webhook events after their commit (their
 * snapshot must come after it, so that a host keeping an orphan at the same
 * moment and this one cannot both miss each other) get a second segment of
 * reads before their callbacks fire; a bank reply's transition, whose
 * check can be written before its result is known, has it queued as that
 * second segment in the same pipeline (sent with the batch, read after its
 * COMMIT): no round trip of its own. A lone operation skips BEGIN/COMMIT:
 * it is its own transaction (a lone transition with its check ahead is
 * pipelined all the same).
 */
#include "store_batch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_batch_multi.h"
#include "store_internal.h"

#define BATCH_STMT_MAX 24 /* distinct statements a writer prepares */

/* One statement of a batch: a multi-row statement of several operations
 * (param: their JSON array), or one operation's own. */
typedef struct batch_stmt {
    const char *sql;
    int first, count; /* its operations: w->ops[w->members[first .. first + count)] */
    char *param;
} batch_stmt;

typedef struct batch_writer {
    struct store_batch *b;
    pthread_t thread;
    PGconn *conn;
    const char *prepared[BATCH_STMT_MAX]; /* by address of the SQL text; name "gc<index>" */
    int nprepared;
    store_batch_op **ops; /* the batch being run */
    PGresult **res;       /* and its statements' results */
    batch_stmt *stmts;    /* the statements the batch is sent as */
    int nstmts;
    int *stmt_of;         /* per operation: its statement */
    int *members;         /* operations by statement */
    bool *found;          /* per operation: a row of its statement answered it */
} batch_writer;

struct store_batch {
    pthread_mutex_t mu;
    pthread_cond_t more;
    store_batch_op *head, *tail;
    bool closing;
    int batch_max;
    char *conninfo;
    int nwriters; /* threads started */
    int nalloc;   /* writers allocated */
    batch_writer *writers;
    atomic_ulong commits, ops, reruns, round_trips, statements;
};

/* How a pipelined batch ended. */
typedef enum batch_outcome { BATCH_COMMITTED, BATCH_FAILED, BATCH_LOST } batch_outcome;

/* ---- operations ------------------------------------------------------------ */

bool store_batch_payment_insert_init(store_batch_op *op, const store_payment *p, pagoflex_arena *arena)
{
    memset(op, 0, sizeof *op);
    op->rc = STORE_ERROR;
    if (!store_payment_insert_params(p, op->amount, op->params))
        return false;
    op->nparams = 13;
    op->kind = BATCH_INSERT;
    op->sql = store_sql_insert;
    op->sort_key = p->id;
    op->arena = arena;
    return true;
}

bool store_batch_transition_init(store_batch_op *op, const char *id, pagoflex_state to, const char *source,
                                 const char *detail, const char *provider_ref, const char *error_code,
                                 const char *error_message, pagoflex_arena *arena)
{
    memset(op, 0, sizeof *op);
    op->rc = STORE_ERROR;
    const char *to_name = payment_state_name(to);
    if (!id || !source || payment_state_parse(to_name) < 0) {
        log_error("store: transition of payment %s to invalid state %d", id ? id : "(null)", (int)to);
        return false;
    }
    store_allowed_from(to, op->allowed, sizeof op->allowed);
    const char *const params[] = {id,         to_name,       op->allowed, provider_ref,
                                  error_code, error_message, source,      detail};
    memcpy(op->params, params, sizeof params);
    op->nparams = 8;
    op->kind = BATCH_TRANSITION;
    op->sql = store_sql_transition;
    op->sort_key = id;
    op->arena = arena;
    op->orphan_key[1] = provider_ref;
    return true;
}

bool store_batch_webhook_init(store_batch_op *op, const char *connector, const char *account,
                              const pagoflex_webhook_event *ev, const unsigned char *body, size_t body_len,
                              pagoflex_arena *arena)
{
    char *text = NULL;
    memset(op, 0, sizeof *op);
    op->rc = STORE_ERROR;
    const char *to_name = ev ? payment_state_name(ev->state) : NULL;
    if (!connector || !account || !ev || !ev->event_id || payment_state_parse(to_name) < 0) {
        log_error("store: webhook event without connector, event id or valid state");
        return false;
    }
    if (body &&
        (memchr(body, '\0', body_len) || !(text = arena_strndup(arena, (const char *)body, body_len)))) {
        log_error("store: webhook %s from %s: body has a NUL byte or no memory", ev->event_id, connector);
        return false;
    }
    store_allowed_from(ev->state, op->allowed, sizeof op->allowed);
    const char *const params[] = {connector, ev->event_id, ev->payment_id, ev->tx_id,         to_name,
                                  text,      op->allowed,  ev->error_code, ev->error_message, account};
    memcpy(op->params, params, sizeof params);
    op->nparams = 10;
    op->kind = BATCH_WEBHOOK;
    op->sql = ev->payment_id ? store_sql_webhook_by_id : store_sql_webhook_by_ref;
    op->sort_key = ev->payment_id; /* by bank id: sorts first, in arrival order */
    op->arena = arena;
    op->orphan_key[0] = connector;
    op->orphan_key[2] = account;
    return true;
}

bool store_batch_refund_create_init(store_batch_op *op, const char *merchant_id, const char *refund_id,
                                    const char *payment_id, int64_t amount, const char *reason,
                                    const char *metadata_json, const char *accounts, pagoflex_arena *arena)
{
    memset(op, 0, sizeof *op);
    op->rc = STORE_ERROR;
    if (!merchant_id || !*merchant_id || !refund_id || !payment_id) {
        log_error("store: refund create without a merchant, refund id or payment id");
        return false;
    }
    snprintf(op->amount, sizeof op->amount, "%" PRId64, amount > 0 ? amount : 0);
    const char *const params[] = {refund_id,     payment_id,  op->amount, reason,
                                  metadata_json, merchant_id, accounts};
    memcpy(op->params, params, sizeof params);
    op->nparams = 7;
    op->kind = BATCH_REFUND_CREATE;
    op->sql = store_sql_refund_create;
    op->sort_key = payment_id;
    op->arena = arena;
    return true;
}

bool store_batch_refund_transition_init(store_batch_op *op, const char *id, const char *payment_id,
                                        pagoflex_state to, const char *source, const char *detail,
                                        const char *provider_ref, const char *error_code,
                                        const char *error_message, pagoflex_arena *arena)
{
    memset(op, 0, sizeof *op);
    op->rc = STORE_ERROR;
    const char *to_name = payment_state_name(to);
    if (!id || !source || payment_state_parse(to_name) < 0) {
        log_error("store: transition of refund %s to invalid state %d", id ? id : "(null)", (int)to);
        return false;
    }
    store_refund_allowed_from(to, op->allowed, sizeof op->allowed);
    const char *const params[] = {id,         to_name,       op->allowed, provider_ref,
                                  error_code, error_message, source,      detail};
    memcpy(op->params, params, sizeof params);
    op->nparams = 8;
    op->kind = BATCH_REFUND_TRANSITION;
    op->sql = store_sql_refund_transition;
    op->sort_key = payment_id;
    op->arena = arena;
    return true;
}

/* Read the committed result of `op` from row `row` of `r` (-1: no row
 * answered it), its columns from `base` on (the same reading as the
 * synchronous call of store.c), and decide whether it needs the orphan
 * check. */
static void batch_read_row(store_batch_op *op, const PGresult *r, int row, int base)
{
    op->check_orphans = false;
    if (op->kind == BATCH_REFUND_CREATE) {
        op->rc = store_refund_create_read(r, row, base, op->arena, &op->refund, &op->row);
        return;
    }
    if (op->kind == BATCH_REFUND_TRANSITION) {
        op->rc = store_refund_transition_read(r, row, base, op->arena, &op->refund);
        return;
    }
    if (op->kind == BATCH_INSERT) {
        op->rc = row >= 0 ? store_payment_from_row(r, row, base, op->arena, &op->row) : STORE_CONFLICT;
        return;
    }
    if (row < 0) {
        op->rc = STORE_NOT_FOUND;
        return;
    }
    op->rc = store_payment_from_row(r, row, base + 1, op->arena, &op->row);
    if (op->rc != STORE_OK)
        return;
    if (op->kind == BATCH_TRANSITION) {
        op->rc = PQgetvalue(r, row, base)[0] == 't' ? STORE_OK : STORE_CONFLICT;
        /* As store.c's callers do: the bank id the reply brought may have
         * orphans waiting, whether or not the transition moved the row. */
        op->orphan_key[0] = op->row.connector;
        op->orphan_key[2] = op->row.connector_account;
        op->check_orphans = op->orphan_key[1] && op->orphan_key[0] && op->orphan_key[2];
        return;
    }
    const char *outcome = PQgetvalue(r, row, base);
    bool ref_was_null = strcmp(PQgetvalue(r, row, base + 1 + PAYMENT_NCOLS), "t") == 0;
    if (strcmp(outcome, "duplicate") == 0) {
        op->rc = STORE_DUPLICATE;
        return;
    }
    op->applied = strcmp(outcome, "applied") == 0;
    /* Only the write that stored the bank id looks for orphans waiting for
     * it: one kept before that commit is found here, one kept after it
     * finds the payment itself (store_orphan_keep's caller looks again). */
    op->orphan_key[1] = op->row.provider_reference_id;
    op->check_orphans = ref_was_null && op->row.provider_reference_id;
}

/* The committed result of `op`'s own statement. */
static void batch_read(store_batch_op *op, const PGresult *r)
{
    batch_read_row(op, r, PQntuples(r) == 1 ? 0 : -1, 0);
}

/* The write `kind` is, for log lines. */
static const char *batch_kind_name(int kind)
{
    switch (kind) {
    case BATCH_INSERT:
        return "payment insert";
    case BATCH_WEBHOOK:
        return "webhook apply";
    case BATCH_REFUND_CREATE:
        return "refund create";
    case BATCH_REFUND_TRANSITION:
        return "refund transition";
    default:
        return "payment transition";
    }
}

/* One answer waited for since t0 (metrics_now_ns). */
static void batch_round_trip(batch_writer *w, uint64_t t0)
{
    metrics_db_round_trip(metrics_now_ns() - t0);
    atomic_fetch_add(&w->b->round_trips, 1);
}

/* ---- connection ------------------------------------------------------------- */

/* A writer's statements find each of their few rows by index, whatever the
 * size of the table when they were first planned. A prepared statement
 * keeps its generic plan: a multi-row statement planned on a near-empty
 * payments table (a new database, the first seconds of a bench) would
 * otherwise keep a hash join over a sequential scan of the whole table,
 * for every batch, however large the table grows. Set after connecting,
 * so a conninfo's own "options" cannot drop them. No JIT: it compiles for
 * tens of milliseconds to save microseconds on statements like these.
 * plan_cache_mode stays auto, measured: on a growing payments table a
 * third of the multi-row transitions are planned again (a new generic plan
 * after an ANALYZE costs more than the custom plans PostgreSQL averaged on
 * the smaller table), but forcing the generic plan, in side-by-side bench
 * runs, made each webhook cost PostgreSQL more (about +50 us), for no
 * clear gain on payments. */
const char store_batch_session_settings[] =
    "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; SET jit = off";

static void batch_notice(void *arg, const PGresult *r)
{
    (void)arg;
    const char *msg = PQresultErrorMessage(r);
    log_debug("store batch: postgres: %.*s", msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
}

static void batch_disconnect(batch_writer *w)
{
    PQfinish(w->conn);
    w->conn = NULL;
    w->nprepared = 0;
}

/* A live, idle connection (made now if needed). An idle one the server
 * closed meanwhile (a restart) is found here, before anything is sent, so a
 * batch is never lost to a connection that was already gone. */
static bool batch_connect(batch_writer *w)
{
    if (w->conn && PQconsumeInput(w->conn) && PQstatus(w->conn) == CONNECTION_OK && !PQisBusy(w->conn) &&
        PQtransactionStatus(w->conn) == PQTRANS_IDLE)
        return true;
    batch_disconnect(w);
    const char *const keys[] = {"connect_timeout",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "fallback_application_name",
                                "dbname",
                                NULL};
    const char *const vals[] = {"2", "10", "2", "3", "10000", "pagoflex-batch", w->b->conninfo, NULL};
    w->conn = PQconnectdbParams(keys, vals, 1);
    if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
        const char *msg = w->conn ? PQerrorMessage(w->conn) : "out of memory";
        log_warn("store batch: cannot connect to PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
        batch_disconnect(w);
        return false;
    }
    PQsetNoticeReceiver(w->conn, batch_notice, NULL);
    PGresult *set = PQexec(w->conn, store_batch_session_settings);
    bool ok = set && PQresultStatus(set) == PGRES_COMMAND_OK;
    PQclear(set);
    if (!ok) {
        const char *msg = PQerrorMessage(w->conn);
        log_warn("store batch: cannot set the writer's session settings: %.*s", (int)strcspn(msg, "\n"), msg);
        batch_disconnect(w);
        return false;
    }
    return true;
}

static bool batch_lost(PGconn *conn, const PGresult *r)
{
    const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return true;
    return sqlstate && (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
                        strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0);
}

/* The name `sql` is prepared under on this connection, preparing it now
 * (outside pipeline mode). False when it cannot be prepared. */
static bool batch_prepare(batch_writer *w, const char *sql, char name[16])
{
    int i = 0;
    while (i < w->nprepared && w->prepared[i] != sql)
        i++;
    if (i == BATCH_STMT_MAX)
        return false;
    snprintf(name, 16, "gc%d", i);
    if (i < w->nprepared)
        return true;
    uint64_t t0 = metrics_now_ns();
    PGresult *p = PQprepare(w->conn, name, sql, 0, NULL);
    batch_round_trip(w, t0);
    bool ok = p && PQresultStatus(p) == PGRES_COMMAND_OK;
    if (!ok) {
        const char *msg = p ? PQresultErrorMessage(p) : PQerrorMessage(w->conn);
        log_error("store batch: cannot prepare a statement: %.*s", (int)strcspn(msg, "\n"), msg);
    }
    PQclear(p);
    if (ok)
        w->prepared[w->nprepared++] = sql;
    return ok;
}

/* ---- one at a time ------------------------------------------------------------ */

/* Run `op` alone, in its own transaction (auto-commit), then its orphan
 * check. Used for a lone operation and to re-run a failed batch. */
static void batch_single(batch_writer *w, store_batch_op *op)
{
    char name[16];
    if (!batch_connect(w)) {
        op->rc = STORE_UNAVAILABLE;
        return;
    }
    PGresult *r = NULL;
    uint64_t t0 = metrics_now_ns();
    for (int attempt = 0; attempt < 2; attempt++) {
        r = batch_prepare(w, op->sql, name)
                ? PQexecPrepared(w->conn, name, op->nparams, op->params, NULL, NULL, 0)
                : PQexecParams(w->conn, op->sql, op->nparams, NULL, op->params, NULL, NULL, 0);
        const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (attempt || !sqlstate || strcmp(sqlstate, "0A000") != 0)
            break;
        /* A migration changed a table under the prepared plan: prepare again. */
        PQclear(r);
        r = NULL;
        batch_disconnect(w);
        if (!batch_connect(w)) {
            op->rc = STORE_UNAVAILABLE;
            return;
        }
    }
    batch_round_trip(w, t0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        metrics_db_commit();
        atomic_fetch_add(&w->b->commits, 1);
        atomic_fetch_add(&w->b->ops, 1);
        batch_read(op, r);
    } else {
        const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (!msg)
            msg = PQerrorMessage(w->conn);
        if (batch_lost(w->conn, r)) {
            op->rc = STORE_UNAVAILABLE;
            batch_disconnect(w);
        } else if ((op->kind == BATCH_INSERT || op->kind == BATCH_REFUND_CREATE) && sqlstate &&
                   strcmp(sqlstate, "23505") == 0) {
            op->rc = STORE_DUPLICATE;
        } else {
            op->rc = STORE_ERROR;
            log_error("store batch: %s failed: %.*s (SQLSTATE %s)", batch_kind_name(op->kind),
                      (int)strcspn(msg, "\n"), msg, sqlstate ? sqlstate : "none");
        }
    }
    PQclear(r);
    if (!op->check_orphans)
        return;
    /* The write is committed; an orphan check that cannot run says "maybe". */
    op->orphans_waiting = true;
    if (!w->conn || !batch_prepare(w, store_sql_orphan_waiting, name))
        return;
    t0 = metrics_now_ns();
    r = PQexecPrepared(w->conn, name, 3, op->orphan_key, NULL, NULL, 0);
    batch_round_trip(w, t0);
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
        op->orphans_waiting = PQntuples(r) > 0;
    else if (batch_lost(w->conn, r))
        batch_disconnect(w);
    PQclear(r);
}

/* ---- pipelined ------------------------------------------------------------------ */

/* The next result of the pipeline, with the NULL that ends it consumed.
 * NULL when the connection is gone. */
static PGresult *batch_next(PGconn *conn)
{
    PGresult *r = PQgetResult(conn);
    if (!r)
        return NULL;
    if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        PGresult *extra;
        while ((extra = PQgetResult(conn)) != NULL) { /* one per statement; be safe */
            PQclear(extra);
            if (PQstatus(conn) != CONNECTION_OK)
                break;
        }
    }
    return r;
}

/* Read up to and including the Sync of the current segment. */
static void batch_drain(PGconn *conn)
{
    for (int i = 0; i < 100000 && PQstatus(conn) == CONNECTION_OK; i++) {
        PGresult *r = batch_next(conn);
        if (!r)
            return;
        bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            return;
    }
}

static bool batch_ok(const PGresult *r)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* The orphan check of a bank reply's transition, by its payment (the
 * caller gave no connector or account). It is sent in a segment of its own
 * behind the batch's COMMIT, in the same pipeline, so it costs no round trip
 * of its own, and its snapshot still comes after the commit. */
static const char sql_orphan_waiting_for_payment[] =
    "SELECT 1 FROM payments p JOIN webhook_events e ON e.connector = p.connector AND e.tx_id = $2::text"
    " AND e.connector_account = p.connector_account AND e.payment_id IS NULL WHERE p.id = $1::text LIMIT 1";

/* Whether `op`'s orphan check can be sent with it (before its result says
 * whether it needs one): a transition that brings a bank id. */
static bool batch_check_ahead(const store_batch_op *op)
{
    return op->kind == BATCH_TRANSITION && op->orphan_key[1];
}

/* How many of the n operations have their orphan check sent ahead. */
static int batch_checks_ahead(batch_writer *w, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++)
        count += batch_check_ahead(w->ops[i]);
    return count;
}

/* The JSON array of batch_sql_orphans_waiting_multi for the checks ahead;
 * "n" is the operation's index in w->ops. NULL on no memory or text that
 * is not UTF-8. The caller frees it. */
static char *batch_checks_ahead_param(batch_writer *w, int n)
{
    json_t *all = json_array();
    for (int i = 0; all && i < n; i++) {
        const store_batch_op *op = w->ops[i];
        if (!batch_check_ahead(op))
            continue;
        store_json_push(
            &all, json_pack("{s:i, s:s?, s:s?}", "n", i, "id", op->params[0], "ref", op->orphan_key[1]));
    }
    return store_json_text(all);
}

/* Queue the checks of batch_check_ahead's operations as the pipeline's
 * next segment: one statement for all (`multi`, the JSON array of
 * batch_checks_ahead_param), or one each. */
static bool batch_send_checks_ahead(batch_writer *w, int n, const char *name, const char *multi)
{
    if (multi) {
        if (!PQsendQueryPrepared(w->conn, name, 1, &multi, NULL, NULL, 0))
            return false;
        atomic_fetch_add(&w->b->statements, 1);
        return PQpipelineSync(w->conn);
    }
    for (int i = 0; i < n; i++) {
        const store_batch_op *op = w->ops[i];
        const char *const params[] = {op->params[0], op->orphan_key[1]};
        if (!batch_check_ahead(op))
            continue;
        if (!PQsendQueryPrepared(w->conn, name, 2, params, NULL, NULL, 0))
            return false;
        atomic_fetch_add(&w->b->statements, 1);
    }
    return PQpipelineSync(w->conn);
}

/* Read the segment batch_send_checks_ahead queued, after a commit. */
static void batch_read_checks_ahead(batch_writer *w, int n, bool multi)
{
    for (int i = 0; i < n; i++)
        if (batch_check_ahead(w->ops[i]))
            w->ops[i]->orphans_waiting = w->ops[i]->check_orphans; /* until the check says otherwise */
    if (multi) {
        PGresult *r = batch_next(w->conn);
        if (!r)
            return;
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            for (int i = 0; i < n; i++)
                w->found[i] = false;
            for (int k = 0; k < PQntuples(r); k++) {
                int i = atoi(PQgetvalue(r, k, 0));
                if (i >= 0 && i < n)
                    w->found[i] = true;
            }
            for (int i = 0; i < n; i++)
                if (batch_check_ahead(w->ops[i]) && w->ops[i]->check_orphans)
                    w->ops[i]->orphans_waiting = w->found[i];
        }
        PQclear(r);
        batch_drain(w->conn);
        return;
    }
    for (int i = 0; i < n; i++) {
        store_batch_op *op = w->ops[i];
        if (!batch_check_ahead(op))
            continue;
        PGresult *r = batch_next(w->conn);
        if (!r)
            return;
        if (op->check_orphans && PQresultStatus(r) == PGRES_TUPLES_OK)
            op->orphans_waiting = PQntuples(r) > 0;
        PQclear(r);
    }
    batch_drain(w->conn);
}

/* The orphan checks of the committed batch not made ahead (`ahead`: those
 * of batch_check_ahead were), in a second segment. */
static void batch_orphan_checks(batch_writer *w, int n, bool ahead)
{
    char name[16];
    int sent = 0;
    bool prepared = false;
    for (int i = 0; i < n; i++)
        if (ahead && batch_check_ahead(w->ops[i]))
            continue;
        else if (w->ops[i]->check_orphans) {
            w->ops[i]->orphans_waiting = true; /* until the check says otherwise */
            sent++;
        }
    if (!sent)
        return;
    if (PQpipelineStatus(w->conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(w->conn))
        return;
    prepared = batch_prepare(w, store_sql_orphan_waiting, name);
    if (!prepared || !PQenterPipelineMode(w->conn))
        return;
    for (int i = 0; i < n; i++)
        if (w->ops[i]->check_orphans && !(ahead && batch_check_ahead(w->ops[i])) &&
            !PQsendQueryPrepared(w->conn, name, 3, w->ops[i]->orphan_key, NULL, NULL, 0))
            return;
    if (!PQpipelineSync(w->conn))
        return;
    uint64_t t0 = metrics_now_ns();
    for (int i = 0; i < n; i++) {
        if (!w->ops[i]->check_orphans || (ahead && batch_check_ahead(w->ops[i])))
            continue;
        PGresult *r = batch_next(w->conn);
        if (!r)
            return;
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            w->ops[i]->orphans_waiting = PQntuples(r) > 0;
        PQclear(r);
    }
    batch_drain(w->conn);
    batch_round_trip(w, t0);
}

/* Free the JSON parameters of the planned statements. */
static void batch_unplan(batch_writer *w)
{
    for (int s = 0; s < w->nstmts; s++) {
        free(w->stmts[s].param);
        w->stmts[s].param = NULL;
    }
    w->nstmts = 0;
}

/* Whether operation i may join statement s: no operation of s before it
 * clashes with it. */
static bool batch_joins(batch_writer *w, int i, int s)
{
    for (int j = 0; j < i; j++)
        if (w->stmt_of[j] == s && batch_multi_clash(w->ops[j], w->ops[i]))
            return false;
    return true;
}

/* Group the n operations of w->ops (sorted) into statements: operations
 * of one multi-row statement share it unless they clash; an operation alone
 * in its group, or of a kind without one, is sent with its own statement.
 * With `singles`, every operation is its own statement. */
static void batch_plan(batch_writer *w, int n, bool singles)
{
    w->nstmts = 0;
    for (int i = 0; i < n; i++) {
        const char *multi = singles ? NULL : batch_multi_sql(w->ops[i]);
        int s = 0;
        while (multi && s < w->nstmts && !(w->stmts[s].sql == multi && batch_joins(w, i, s)))
            s++;
        if (!multi || s == w->nstmts) {
            s = w->nstmts++;
            w->stmts[s] = (batch_stmt){.sql = multi ? multi : w->ops[i]->sql};
        }
        w->stmt_of[i] = s;
        w->stmts[s].count++;
    }
    int first = 0;
    for (int s = 0; s < w->nstmts; s++) {
        w->stmts[s].first = first;
        first += w->stmts[s].count;
        w->stmts[s].count = 0;
    }
    for (int i = 0; i < n; i++) {
        batch_stmt *st = &w->stmts[w->stmt_of[i]];
        w->members[st->first + st->count++] = i;
    }
}

/* The JSON arrays of the multi-row statements; a group of one is sent as
 * its operation's own statement. False when one cannot be made (no memory,
 * text that is not UTF-8). */
static bool batch_encode(batch_writer *w)
{
    for (int s = 0; s < w->nstmts; s++) {
        batch_stmt *st = &w->stmts[s];
        store_batch_op *one = w->ops[w->members[st->first]];
        if (st->count == 1 || st->sql == one->sql) {
            st->sql = one->sql;
            continue;
        }
        json_t *all = json_array();
        for (int k = 0; all && k < st->count; k++)
            store_json_push(&all, batch_multi_object(w->ops[w->members[st->first + k]], k));
        st->param = store_json_text(all);
        if (!st->param)
            return false;
    }
    return true;
}

/* Read the committed results of statement s into its operations. */
static void batch_read_stmt(batch_writer *w, int s, const PGresult *r)
{
    const batch_stmt *st = &w->stmts[s];
    if (!st->param) {
        batch_read(w->ops[w->members[st->first]], r);
        return;
    }
    for (int k = 0; k < st->count; k++)
        w->found[w->members[st->first + k]] = false;
    for (int row = 0; row < PQntuples(r); row++) {
        int k = atoi(PQgetvalue(r, row, 0));
        if (k < 0 || k >= st->count || w->found[w->members[st->first + k]])
            continue;
        int i = w->members[st->first + k];
        w->found[i] = true;
        batch_read_row(w->ops[i], r, row, 1);
    }
    for (int k = 0; k < st->count; k++) {
        int i = w->members[st->first + k];
        if (!w->found[i])
            batch_read_row(w->ops[i], r, -1, 1);
    }
}

/* Send the batch as one segment and read it. On BATCH_COMMITTED the
 * operations' results are read into them. */
static batch_outcome batch_pipeline(batch_writer *w, int n)
{
    PGconn *conn = w->conn;
    batch_outcome out = BATCH_FAILED;
    PGresult *begin = NULL, *commit = NULL;
    char *ahead_multi = NULL;
    int got = 0;
    batch_plan(w, n, false);
    if (!batch_encode(w)) {
        batch_unplan(w);
        batch_plan(w, n, true);
    }
    /* Prepare what this connection has not seen yet (outside the pipeline). */
    for (int s = 0; s < w->nstmts; s++) {
        char name[16];
        if (!batch_prepare(w, w->stmts[s].sql, name)) {
            out = batch_lost(conn, NULL) ? BATCH_LOST : BATCH_FAILED;
            goto done;
        }
    }
    char ahead_name[16];
    int ahead = batch_checks_ahead(w, n);
    if (ahead > 1)
        ahead_multi = batch_checks_ahead_param(w, n);
    if (ahead && !batch_prepare(w, ahead_multi ? batch_sql_orphans_waiting_multi : sql_orphan_waiting_for_payment,
                                ahead_name)) {
        if (batch_lost(conn, NULL)) {
            out = BATCH_LOST;
            goto done;
        }
        ahead = 0; /* checked after the commit instead */
    }
    if (!PQenterPipelineMode(conn))
        goto done;
    bool sent = PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (int s = 0; s < w->nstmts && sent; s++) {
        const batch_stmt *st = &w->stmts[s];
        const store_batch_op *one = w->ops[w->members[st->first]];
        char name[16];
        batch_prepare(w, st->sql, name); /* known now: only looks it up */
        sent = st->param ? PQsendQueryPrepared(conn, name, 1, (const char *const *)&st->param, NULL, NULL, 0)
                         : PQsendQueryPrepared(conn, name, one->nparams, one->params, NULL, NULL, 0);
        atomic_fetch_add(&w->b->statements, 1);
    }
    sent = sent && PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(conn);
    sent = sent && (!ahead || batch_send_checks_ahead(w, n, ahead_name, ahead_multi));
    if (!sent) {
        out = BATCH_LOST;
        goto done;
    }
    uint64_t t0 = metrics_now_ns();
    begin = batch_next(conn);
    if (!begin) {
        out = BATCH_LOST;
        goto done;
    }
    for (got = 0; got < w->nstmts; got++) {
        w->res[got] = batch_next(conn);
        if (!w->res[got]) {
            out = BATCH_LOST;
            goto done;
        }
    }
    commit = batch_next(conn);
    batch_round_trip(w, t0);
    if (commit && batch_ok(commit) && strcmp(PQcmdStatus(commit), "COMMIT") == 0) {
        out = BATCH_COMMITTED;
    } else if (!commit || batch_lost(conn, commit)) {
        out = BATCH_LOST;
    } else {
        out = BATCH_FAILED;
        for (int s = 0; s < w->nstmts; s++)
            if (PQresultStatus(w->res[s]) == PGRES_FATAL_ERROR) {
                const char *msg = PQresultErrorField(w->res[s], PG_DIAG_MESSAGE_PRIMARY);
                const char *sqlstate = PQresultErrorField(w->res[s], PG_DIAG_SQLSTATE);
                if (batch_lost(conn, w->res[s])) {
                    out = BATCH_LOST;
                    log_warn("store batch: connection lost in a batch of %d (%s); its writes are "
                             "answered as unavailable",
                             n, msg ? msg : "?");
                    break;
                }
                log_warn("store batch: a batch of %d rolled back (%s, SQLSTATE %s); running its writes one "
                         "by one",
                         n, msg ? msg : "?", sqlstate ? sqlstate : "none");
            }
    }
    if (out != BATCH_LOST)
        batch_drain(conn);
    if (out == BATCH_FAILED && ahead)
        batch_drain(conn); /* the checks ahead: nothing was committed */
    if (out == BATCH_COMMITTED) {
        metrics_db_commit();
        atomic_fetch_add(&w->b->commits, 1);
        atomic_fetch_add(&w->b->ops, (unsigned long)n);
        for (int s = 0; s < w->nstmts; s++)
            batch_read_stmt(w, s, w->res[s]);
        if (ahead && PQstatus(conn) == CONNECTION_OK)
            batch_read_checks_ahead(w, n, ahead_multi != NULL);
        if (PQstatus(conn) == CONNECTION_OK)
            batch_orphan_checks(w, n, ahead > 0);
        else
            for (int i = 0; i < n; i++)
                w->ops[i]->orphans_waiting = w->ops[i]->check_orphans;
    }

done:
    free(ahead_multi);
    batch_unplan(w);
    PQclear(begin);
    PQclear(commit);
    for (int i = 0; i < got; i++) {
        PQclear(w->res[i]);
        w->res[i] = NULL;
    }
    if (out == BATCH_LOST || PQstatus(conn) != CONNECTION_OK ||
        (PQpipelineStatus(conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(conn))) {
        batch_disconnect(w);
        return out == BATCH_COMMITTED ? out : BATCH_LOST;
    }
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    return out;
}

static int batch_cmp(const void *a, const void *b)
{
    const store_batch_op *x = *(store_batch_op *const *)a, *y = *(store_batch_op *const *)b;
    if (!x->sort_key || !y->sort_key)
        return (x->sort_key != NULL) - (y->sort_key != NULL);
    return strcmp(x->sort_key, y->sort_key);
}

/* Run the n operations in w->ops and call their callbacks. */
static void batch_run(batch_writer *w, int n)
{
    /* A lone transition with its check ahead is pipelined too: one round
     * trip for both instead of two. */
    if (n == 1 && !batch_check_ahead(w->ops[0])) {
        batch_single(w, w->ops[0]);
    } else {
        /* Insertion sort: stable (ties keep arrival order), and n is small. */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && batch_cmp(&w->ops[j - 1], &w->ops[j]) > 0; j--) {
                store_batch_op *t = w->ops[j];
                w->ops[j] = w->ops[j - 1];
                w->ops[j - 1] = t;
            }
        batch_outcome out = batch_connect(w) ? batch_pipeline(w, n) : BATCH_LOST;
        if (out == BATCH_FAILED) {
            atomic_fetch_add(&w->b->reruns, 1);
            for (int i = 0; i < n; i++)
                batch_single(w, w->ops[i]);
        } else if (out == BATCH_LOST) {
            if (w->conn)
                batch_disconnect(w);
            for (int i = 0; i < n; i++)
                w->ops[i]->rc = STORE_UNAVAILABLE;
        }
    }
    for (int i = 0; i < n; i++) {
        store_batch_op *op = w->ops[i];
        w->ops[i] = NULL;
        op->done(op->arg); /* op may be gone after this */
    }
}

static void *batch_writer_main(void *arg)
{
    batch_writer *w = arg;
    store_batch *b = w->b;
    for (;;) {
        int n = 0;
        pthread_mutex_lock(&b->mu);
        while (!b->head && !b->closing)
            pthread_cond_wait(&b->more, &b->mu);
        while (b->head && n < b->batch_max) {
            store_batch_op *op = b->head;
            b->head = op->next;
            if (!b->head)
                b->tail = NULL;
            op->next = NULL;
            w->ops[n++] = op;
        }
        bool stop = n == 0 && b->closing;
        pthread_mutex_unlock(&b->mu);
        if (stop)
            break;
        batch_run(w, n);
    }
    batch_disconnect(w);
    return NULL;
}

/* ---- the batcher ---------------------------------------------------------------- */

store_batch *store_batch_open(const char *conninfo, int connections, int batch_max)
{
    if (connections < 1)
        connections = 1;
    if (batch_max < 1)
        batch_max = 1;
    if (batch_max > 64)
        batch_max = 64;
    store_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->more, NULL);
    b->batch_max = batch_max;
    b->conninfo = strdup(conninfo ? conninfo : "");
    b->writers = calloc((size_t)connections, sizeof *b->writers);
    if (!b->conninfo || !b->writers)
        goto fail;
    b->nalloc = connections;
    for (int i = 0; i < connections; i++) {
        batch_writer *w = &b->writers[i];
        w->b = b;
        w->ops = calloc((size_t)batch_max, sizeof *w->ops);
        w->res = calloc((size_t)batch_max, sizeof *w->res);
        w->stmts = calloc((size_t)batch_max, sizeof *w->stmts);
        w->stmt_of = calloc((size_t)batch_max, sizeof *w->stmt_of);
        w->members = calloc((size_t)batch_max, sizeof *w->members);
        w->found = calloc((size_t)batch_max, sizeof *w->found);
        if (!w->ops || !w->res || !w->stmts || !w->stmt_of || !w->members || !w->found || pthread_create(&w->thread, NULL, batch_writer_main, w) != 0)
            goto fail;
        b->nwriters = i + 1;
    }
    return b;

fail:
    log_error("store batch: cannot start %d writer threads", connections);
    store_batch_close(b);
    return NULL;
}

void store_batch_close(store_batch *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->closing = true;
    pthread_cond_broadcast(&b->more);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; b->writers && i < b->nwriters; i++)
        pthread_join(b->writers[i].thread, NULL);
    for (int i = 0; b->writers && i < b->nalloc; i++) {
        free(b->writers[i].ops);
        free(b->writers[i].res);
        free(b->writers[i].stmts);
        free(b->writers[i].stmt_of);
        free(b->writers[i].members);
        free(b->writers[i].found);
    }
    free(b->writers);
    free(b->conninfo);
    pthread_cond_destroy(&b->more);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

bool store_batch_submit(store_batch *b, store_batch_op *op)
{
    if (!b || !op || !op->done || !op->sql)
        return false;
    op->next = NULL;
    pthread_mutex_lock(&b->mu);
    bool taken = !b->closing;
    if (taken) {
        if (b->tail)
            b->tail->next = op;
        else
            b->head = op;
        b->tail = op;
        pthread_cond_signal(&b->more);
    }
    pthread_mutex_unlock(&b->mu);
    return taken;
}

void store_batch_stats(store_batch *b, unsigned long *commits, unsigned long *ops, unsigned long *reruns)
{
    *commits = atomic_load(&b->commits);
    *ops = atomic_load(&b->ops);
    *reruns = atomic_load(&b->reruns);
}

unsigned long store_batch_round_trips(store_batch *b)
{
    return atomic_load(&b->round_trips);
}

unsigned long store_batch_statements(store_batch *b)
{
    return atomic_load(&b->statements);
}
