/* store.c - payment operations and webhook events in PostgreSQL (libpq).
 *
 * The pool is an array of connections guarded by one mutex; a call takes an
 * idle slot (waiting while all are busy), connects it if it has no
 * connection, runs its statements and gives the slot back. A connection
 * that fails with a connection-class error is closed, the call returns
 * STORE_UNAVAILABLE and a later call connects again, so the host survives a
 * PostgreSQL restart without help.
 *
 * Every transition is one statement: the row is locked (so the history row
 * knows the state it leaves), then changed by a conditional UPDATE whose
 * WHERE holds the states it may leave (payment_states_into()). Values only
 * ever travel as parameters.
 */
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_internal.h"
#include "store_orphan.h"

/* Seconds a connection attempt may take unless the conninfo says otherwise. */
#define STORE_CONNECT_TIMEOUT "2"

/* Statements with parameters are prepared once per connection and then run
 * with PQexecPrepared: PostgreSQL then parses and plans each of our (CTE
 * heavy) statements once instead of on every call, which was most of its
 * CPU time under load. A statement is known by the address of its static
 * SQL text; its name on the server is "pf<index>". */
#define STORE_STMT_MAX 128

static const char *store_stmts[STORE_STMT_MAX];
static int store_stmt_count;
static pthread_mutex_t store_stmt_mu = PTHREAD_MUTEX_INITIALIZER;

/* Index of statement `sql`, registering it on first use; -1 when the table
 * is full (the statement then runs unprepared). */
static int store_stmt_index(const char *sql)
{
    int found = -1;
    pthread_mutex_lock(&store_stmt_mu);
    for (int i = 0; i < store_stmt_count && found < 0; i++)
        if (store_stmts[i] == sql)
            found = i;
    if (found < 0 && store_stmt_count < STORE_STMT_MAX) {
        found = store_stmt_count++;
        store_stmts[found] = sql;
    }
    pthread_mutex_unlock(&store_stmt_mu);
    return found;
}

struct store {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when a slot is given back */
    char *conninfo;
    int size;
    PGconn **conns; /* NULL: not connected (or taken by a call) */
    bool *busy;
    bool *fatal; /* the slot's server said FATAL while idle: about to close */
    uint64_t (*prepared)[STORE_STMT_MAX / 64]; /* per slot: statements prepared on its connection */
    bool down; /* the last attempt found PostgreSQL unreachable (logged once) */
};

/* ---- SQL ---------------------------------------------------------------- */

/* $12 is the connector account the caller built the bank request with: the
 * row is written only while it is still the one the merchant uses for the
 * connector, resolved here in the INSERT itself (no row: it is not). */
const char store_sql_insert[] =
    "WITH a AS MATERIALIZED ("
    " SELECT " STORE_ACCOUNT_OF("$11::text", "$2::text") " AS account"
    "), p AS ("
    " INSERT INTO payments (id, connector, amount, currency, state, reference, description,"
    " capture_method, return_url, payment_method_type, payment_method_token, merchant_id,"
    " connector_account, metadata)"
    " SELECT $1::text, $2::text, $3::bigint, $4::text, 'created', $5::text, $6::text,"
    " $7::text, $8::text, $9::text, $10::text, $11::text, a.account, $13::jsonb FROM a"
    " WHERE a.account = $12::text"
    " RETURNING *"
    "), h AS ("
    " INSERT INTO payment_history (payment_id, from_state, to_state, source)"
    " SELECT id, NULL, state, 'api' FROM p"
    ") SELECT " PAYMENT_COLS("p") " FROM p";

static const char sql_get[] = "SELECT " PAYMENT_COLS("p") " FROM payments p WHERE p.id = $1::text";

/* A merchant route's read: $1 id, $2 the caller's merchant. Another
 * merchant's payment is no row, exactly like an unknown id. */
static const char sql_get_of[] =
    "SELECT " PAYMENT_COLS("p") " FROM payments p"
                                " WHERE p.id = $1::text AND p.merchant_id = $2::text";

/* $1 id, $2 to, $3 allowed from, $4 provider ref, $5 error code, $6 error
 * message, $7 source, $8 detail; `cond` adds to the UPDATE's WHERE. First
 * column: true if the row moved. */
#define TRANSITION_SQL(cond)                                                            \
    "WITH cur AS MATERIALIZED ("                                                        \
    " SELECT * FROM payments WHERE id = $1::text FOR UPDATE"                            \
    "), upd AS ("                                                                       \
    " UPDATE payments p SET state = $2::text,"                                          \
    " provider_reference_id = COALESCE(p.provider_reference_id, $4::text), "            \
    ERROR_FIELDS("$2", "$5", "$6") ", updated_at = now()"                              \
    " FROM cur WHERE p.id = cur.id AND p.state = ANY ($3::text[])" cond                 \
    " RETURNING p.*, cur.state AS from_state"                                           \
    "), h AS ("                                                                         \
    " INSERT INTO payment_history (payment_id, from_state, to_state, source, detail)"   \
    " SELECT id, from_state, state, $7::text, $8::text FROM upd"                        \
    ") SELECT true, " PAYMENT_COLS("upd") " FROM upd"                                   \
    " UNION ALL"                                                                        \
    " SELECT false, " PAYMENT_COLS("cur") " FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)"

const char store_sql_transition[] = TRANSITION_SQL("");

/* The reconciler's: $9 the claim's fencing token (store_recon.c). */
const char store_sql_transition_fenced[] = TRANSITION_SQL(" AND p.claim_token = $9::bigint");

/* A refused transition still records the bank's id: $1 id, $2 provider ref. */
static const char sql_set_ref[] =
    "WITH u AS ("
    " UPDATE payments SET provider_reference_id = $2::text, updated_at = now()"
    " WHERE id = $1::text AND provider_reference_id IS NULL RETURNING *"
    ") SELECT " PAYMENT_COLS("u") " FROM u"
    " UNION ALL"
    " SELECT " PAYMENT_COLS("p") " FROM payments p"
    " WHERE p.id = $1::text AND NOT EXISTS (SELECT 1 FROM u)";

/* $1 connector, $2 event id, $3 payment id, $4 tx id, $5 to, $6 body, $7
 * allowed from, $8 error code, $9 error message, $10 connector account
 * (only its payments are found); `lookup` finds the
 * payment. The payment row is locked first, so concurrent deliveries of one
 * event queue on it and the event insert of all but the first finds the
 * conflict. First column: applied, refused or duplicate; no row: no such
 * payment. */
#define WEBHOOK_SQL(lookup)                                                                     \
    "WITH cur AS MATERIALIZED ("                                                                \
    " SELECT * FROM payments WHERE connector = $1::text AND connector_account = $10::text"      \
    " AND " lookup " FOR UPDATE"                                                                \
    "), ev AS ("                                                                                \
    " INSERT INTO webhook_events (connector, event_id, payment_id, state, tx_id, body, applied," \
    " connector_account)"                                                                       \
    " SELECT $1::text, $2::text, cur.id, $5::text, $4::text, $6::text,"                         \
    " cur.state = ANY ($7::text[]), $10::text FROM cur"                                         \
    " ON CONFLICT (connector, connector_account, event_id) DO NOTHING RETURNING id"             \
    "), upd AS ("                                                                               \
    " UPDATE payments p SET state = $5::text,"                                                  \
    " provider_reference_id = COALESCE(p.provider_reference_id, $4::text), "                    \
    ERROR_FIELDS("$5", "$8", "$9") ", updated_at = now()"                                      \
    " FROM cur WHERE p.id = cur.id AND p.state = ANY ($7::text[])"                              \
    " AND EXISTS (SELECT 1 FROM ev)"                                                            \
    " RETURNING p.*, cur.state AS from_state, cur.provider_reference_id IS NULL AS ref_was_null" \
    "), h AS ("                                                                                 \
    " INSERT INTO payment_history (payment_id, from_state, to_state, source, detail)"           \
    " SELECT id, from_state, state, 'webhook', $2::text FROM upd"                               \
    ") SELECT 'applied', " PAYMENT_COLS("upd") ", upd.ref_was_null FROM upd"                    \
    " UNION ALL"                                                                                \
    " SELECT CASE WHEN EXISTS (SELECT 1 FROM ev) THEN 'refused' ELSE 'duplicate' END, "         \
    PAYMENT_COLS("cur") ", cur.provider_reference_id IS NULL"                                   \
    " FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)"

/* Two statements, not one lookup with CASE WHEN $3 IS NOT NULL: a prepared
 * statement runs with a generic plan, which cannot pick an index for a CASE
 * of parameters and read every payment. Each of these uses one index (the
 * primary key; payments_connector_provider_ref). */
const char store_sql_webhook_by_id[] = WEBHOOK_SQL("id = $3::text");
const char store_sql_webhook_by_ref[] =
    WEBHOOK_SQL("provider_reference_id = $4::text AND $3::text IS NULL");

static const char sql_history[] =
    "SELECT h.from_state, h.to_state, h.source, h.detail, " TS("h.at")
    " FROM payments p LEFT JOIN payment_history h ON h.payment_id = p.id"
    " WHERE p.id = $1::text ORDER BY h.id";

/* sql_history for a merchant route: $2 the caller's merchant. */
static const char sql_history_of[] = "SELECT h.from_state, h.to_state, h.source, h.detail, " TS(
    "h.at") " FROM payments p LEFT JOIN payment_history h ON h.payment_id = p.id"
            " WHERE p.id = $1::text AND p.merchant_id = $2::text ORDER BY h.id";

/* ---- pool --------------------------------------------------------------- */

/* Length of the first line of a libpq message (they end in "\n"). */
static int first_line(const char *msg)
{
    return msg ? (int)strcspn(msg, "\n") : 0;
}

/* Notices, and errors that arrive while no query runs: libpq hands both
 * here. A FATAL one (e.g. 57P01 on shutdown) means the server is closing
 * this connection; *fatal lets the next call drop it before use. */
static void store_notice(void *fatal, const PGresult *r)
{
    const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorMessage(r);
    if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0))
        *(bool *)fatal = true;
    log_debug("store: postgres: %.*s", first_line(msg), msg);
}

/* Connect slot `slot`. Our defaults come before the expanded dbname, so the
 * conninfo's own settings win. Over TCP, keepalives and tcp_user_timeout
 * end a call within seconds when the server's host vanishes mid-query. */
static PGconn *store_connect(store *s, int slot)
{
    const char *const keys[] = {"connect_timeout",  "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "tcp_user_timeout", "fallback_application_name",
                                "dbname",           NULL};
    const char *const vals[] = {STORE_CONNECT_TIMEOUT, "10", "2", "3", "10000", "pagoflex",
                                s->conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    s->fatal[slot] = false;
    memset(s->prepared[slot], 0, sizeof s->prepared[slot]); /* a new session prepared nothing */
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PQsetNoticeReceiver(conn, store_notice, &s->fatal[slot]);
        /* No JIT: it compiles for tens of milliseconds whenever a plan's
         * estimate is large (a generic plan's LIMIT $n is one), and every
         * statement here is a short transaction's. */
        PQclear(PQexec(conn, "SET jit = off"));
    }
    return conn;
}

/* Log the first failure of a run of failures. */
static void store_note_down(store *s, const char *why)
{
    pthread_mutex_lock(&s->mu);
    bool first = !s->down;
    s->down = true;
    pthread_mutex_unlock(&s->mu);
    if (first)
        log_warn("store: PostgreSQL unreachable (%.*s); calls fail as unavailable until it is back",
                 first_line(why), why ? why : "");
}

static void store_note_up(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool was_down = s->down;
    s->down = false;
    pthread_mutex_unlock(&s->mu);
    if (was_down)
        log_warn("store: PostgreSQL reachable again");
}

/* Best-effort check of an idle connection without a round trip (reads
 * only what already arrived): a backend that was shut down has sent a FATAL
 * message, then closed the socket. A backend killed just now may still
 * pass; its first query then fails as unavailable. */
static bool store_conn_alive(store *s, int slot, PGconn *conn)
{
    if (!PQconsumeInput(conn))
        return false;
    (void)PQisBusy(conn); /* parses what arrived: a FATAL reaches store_notice */
    if (s->fatal[slot] || !PQconsumeInput(conn))
        return false;
    return PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
}

static void store_release(store *s, int slot, PGconn *conn)
{
    pthread_mutex_lock(&s->mu);
    s->conns[slot] = conn;
    s->busy[slot] = false;
    pthread_cond_signal(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Take an idle slot, preferring one that is connected. */
static int store_take_slot(store *s, PGconn **conn)
{
    int slot = -1;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (int i = 0; i < s->size; i++) {
            if (s->busy[i])
                continue;
            if (s->conns[i]) {
                slot = i;
                break;
            }
            if (slot < 0)
                slot = i;
        }
        if (slot >= 0)
            break;
        pthread_cond_wait(&s->idle, &s->mu);
    }
    s->busy[slot] = true;
    *conn = s->conns[slot];
    s->conns[slot] = NULL;
    pthread_mutex_unlock(&s->mu);
    return slot;
}

/* Hold a live connection for one call. STORE_UNAVAILABLE if none can be made. */
store_result store_call_begin(store *s, store_call *c)
{
    PGconn *conn = NULL;
    int slot = store_take_slot(s, &conn);
    if (conn && !store_conn_alive(s, slot, conn)) {
        PQfinish(conn);
        conn = NULL;
    }
    if (!conn) {
        conn = store_connect(s, slot);
        if (!conn || PQstatus(conn) != CONNECTION_OK) {
            store_note_down(s, conn ? PQerrorMessage(conn) : "out of memory");
            goto fail;
        }
        store_note_up(s);
    }
    c->s = s;
    c->slot = slot;
    c->conn = conn;
    c->broken = false;
    c->error[0] = '\0';
    return STORE_OK;

fail:
    PQfinish(conn);
    store_release(s, slot, NULL);
    return STORE_UNAVAILABLE;
}

/* Give the connection back; one that is broken or left inside a
 * transaction is closed instead. */
void store_call_end(store_call *c)
{
    PGconn *conn = c->conn;
    if (c->broken || PQstatus(conn) != CONNECTION_OK ||
        PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQfinish(conn);
        conn = NULL;
    }
    store_release(c->s, c->slot, conn);
}

/* Connection lost, or the server is shutting down: class 08, 57P01..03. */
static bool store_conn_lost(PGconn *conn, const char *sqlstate)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return true;
    if (!sqlstate)
        return false;
    return strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
           strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0;
}

/* Run one statement (several when `n` is 0: simple protocol, no values).
 * On STORE_OK *res holds the result; the caller PQclear()s it. A lost
 * connection gives STORE_UNAVAILABLE; a unique violation gives
 * STORE_DUPLICATE when dup_ok; anything else STORE_ERROR, logged as `what`. */
/* Run `sql` with its parameters, prepared on this connection (see
 * store_stmt_index). A plan the server invalidated because a migration
 * changed a table ("cached plan must not change result type") is prepared
 * again once. */
static PGresult *store_exec_prepared(store_call *c, const char *sql, int n, const char *const *params)
{
    int idx = store_stmt_index(sql);
    if (idx < 0)
        return PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0);
    char name[16];
    snprintf(name, sizeof name, "pf%d", idx);
    uint64_t *bits = &c->s->prepared[c->slot][idx / 64], bit = 1ull << (idx % 64);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!(*bits & bit)) {
            PGresult *p = PQprepare(c->conn, name, sql, n, NULL);
            if (!p || PQresultStatus(p) != PGRES_COMMAND_OK)
                return p; /* the caller reports the error */
            PQclear(p);
            *bits |= bit;
        }
        PGresult *r = PQexecPrepared(c->conn, name, n, params, NULL, NULL, 0);
        const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (attempt || !sqlstate || strcmp(sqlstate, "0A000") != 0)
            return r;
        PQclear(r);
        char drop[32];
        snprintf(drop, sizeof drop, "DEALLOCATE %s", name);
        PQclear(PQexec(c->conn, drop));
        *bits &= ~bit;
    }
    return NULL; /* not reached */
}

store_result store_call_exec(store_call *c, const char *what, const char *sql, int n,
                              const char *const *params, bool dup_ok, PGresult **res)
{
    uint64_t t0 = metrics_now_ns();
    /* Outside a transaction block only: inside one, an error in PQprepare
     * would abort the caller's transaction in a way it does not expect. */
    PGresult *r = n > 0 ? (PQtransactionStatus(c->conn) == PQTRANS_IDLE
                               ? store_exec_prepared(c, sql, n, params)
                               : PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0))
                        : PQexec(c->conn, sql);
    metrics_db_round_trip(metrics_now_ns() - t0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *res = r;
        return STORE_OK;
    }
    const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg)
        msg = PQerrorMessage(c->conn);
    snprintf(c->error, sizeof c->error, "%.*s", first_line(msg), msg);

    store_result rc = STORE_ERROR;
    if (store_conn_lost(c->conn, sqlstate)) {
        c->broken = true;
        store_note_down(c->s, c->error);
        rc = STORE_UNAVAILABLE;
    } else if (dup_ok && sqlstate && strcmp(sqlstate, "23505") == 0) {
        rc = STORE_DUPLICATE;
    } else {
        log_error("store: %s failed: %s (SQLSTATE %s)", what, c->error,
                  sqlstate ? sqlstate : "none");
    }
    PQclear(r);
    return rc;
}

/* Take a connection, run one statement, give the connection back. */
store_result store_run(store *s, const char *what, const char *sql, int n,
                              const char *const *params, bool dup_ok, PGresult **res)
{
    store_call c;
    store_result rc = store_call_begin(s, &c);
    if (rc != STORE_OK)
        return rc;
    rc = store_call_exec(&c, what, sql, n, params, dup_ok, res);
    store_call_end(&c);
    return rc;
}

/* ---- rows --------------------------------------------------------------- */

/* Copy a field into the arena; NULL for SQL NULL. *oom set on failure. */
const char *store_row_text(const PGresult *r, int row, int col, pagoflex_arena *arena,
                            bool *oom)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    char *v = arena_strdup(arena, PQgetvalue(r, row, col));
    if (!v)
        *oom = true;
    return v;
}

/* Read PAYMENT_NCOLS columns from `col` on into *out. */
store_result store_payment_from_row(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                     store_payment *out)
{
    store_payment p = {0};
    bool oom = false;
    p.id = store_row_text(r, row, col + 0, arena, &oom);
    p.connector = store_row_text(r, row, col + 1, arena, &oom);
    p.amount = strtoll(PQgetvalue(r, row, col + 2), NULL, 10);
    p.currency = store_row_text(r, row, col + 3, arena, &oom);
    int state = payment_state_parse(PQgetvalue(r, row, col + 4));
    p.provider_reference_id = store_row_text(r, row, col + 5, arena, &oom);
    p.reference = store_row_text(r, row, col + 6, arena, &oom);
    p.description = store_row_text(r, row, col + 7, arena, &oom);
    p.error_code = store_row_text(r, row, col + 8, arena, &oom);
    p.error_message = store_row_text(r, row, col + 9, arena, &oom);
    p.created_at = store_row_text(r, row, col + 10, arena, &oom);
    p.updated_at = store_row_text(r, row, col + 11, arena, &oom);
    p.manual_capture = strcmp(PQgetvalue(r, row, col + 12), "manual") == 0;
    p.amount_capturable = strtoll(PQgetvalue(r, row, col + 13), NULL, 10);
    p.amount_received = strtoll(PQgetvalue(r, row, col + 14), NULL, 10);
    p.amount_refunded = strtoll(PQgetvalue(r, row, col + 15), NULL, 10);
    p.return_url = store_row_text(r, row, col + 16, arena, &oom);
    p.redirect_url = store_row_text(r, row, col + 17, arena, &oom);
    p.payment_method_type = store_row_text(r, row, col + 18, arena, &oom);
    p.payment_method_token = store_row_text(r, row, col + 19, arena, &oom);
    p.capture_amount = strtoll(PQgetvalue(r, row, col + 20), NULL, 10);
    p.pending_operation = store_row_text(r, row, col + 21, arena, &oom);
    p.merchant_id = store_row_text(r, row, col + 22, arena, &oom);
    p.connector_account = store_row_text(r, row, col + 23, arena, &oom);
    p.metadata = store_row_text(r, row, col + 24, arena, &oom);
    if (oom) {
        log_error("store: out of memory reading payment row");
        return STORE_ERROR;
    }
    if (state < 0) {
        log_error("store: payment %s has unknown state \"%s\"", p.id,
                  PQgetvalue(r, row, col + 4));
        return STORE_ERROR;
    }
    p.state = (pagoflex_state)state;
    *out = p;
    return STORE_OK;
}

/* "{created,processing}": the states `to` may be entered from. */
void store_allowed_from(pagoflex_state to, char *buf, size_t len)
{
    pagoflex_state from[PAYMENT_STATE_COUNT];
    size_t n = payment_states_into(to, from);
    size_t used = (size_t)snprintf(buf, len, "{");
    for (size_t i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
                                 payment_state_name(from[i]));
    if (used < len)
        snprintf(buf + used, len - used, "}");
}

/* ---- public ------------------------------------------------------------- */

store *store_open(const char *conninfo, int pool_size)
{
    bool mu_ok = false;
    if (pool_size < 1)
        pool_size = 1;
    store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->size = pool_size;
    s->conninfo = strdup(conninfo ? conninfo : "");
    s->conns = calloc((size_t)pool_size, sizeof *s->conns);
    s->busy = calloc((size_t)pool_size, sizeof *s->busy);
    s->fatal = calloc((size_t)pool_size, sizeof *s->fatal);
    s->prepared = calloc((size_t)pool_size, sizeof *s->prepared);
    if (!s->conninfo || !s->conns || !s->busy || !s->fatal || !s->prepared)
        goto fail;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto fail;
    mu_ok = true;
    if (pthread_cond_init(&s->idle, NULL) != 0)
        goto fail;
    return s;

fail:
    if (mu_ok)
        pthread_mutex_destroy(&s->mu);
    free(s->prepared);
    free(s->fatal);
    free(s->busy);
    free(s->conns);
    free(s->conninfo);
    free(s);
    return NULL;
}

void store_close(store *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->size; i++)
        PQfinish(s->conns[i]);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s->prepared);
    free(s->fatal);
    free(s->busy);
    free(s->conns);
    free(s->conninfo);
    free(s);
}

/* Run one statement that returns at most one payment row and read it into
 * *out: `empty` when no row comes back. `writes`: the statement commits
 * (counted in the metrics). */
static store_result store_one_payment(store *s, const char *what, const char *sql, int n,
                                      const char *const *params, bool dup_ok, bool writes,
                                      store_result empty, pagoflex_arena *arena, store_payment *out)
{
    PGresult *r = NULL;
    store_result rc = store_run(s, what, sql, n, params, dup_ok, &r);
    if (rc == STORE_OK) {
        if (writes)
            metrics_db_commit();
        rc = PQntuples(r) == 1 ? store_payment_from_row(r, 0, 0, arena, out) : empty;
    }
    PQclear(r);
    return rc;
}

bool store_payment_insert_params(const store_payment *p, char amount[24], const char *params[13])
{
    if (!p || !p->id || !p->connector || !p->currency || !p->merchant_id || !p->connector_account) {
        log_error("store: payment insert without id, connector, currency, merchant or account");
        return false;
    }
    snprintf(amount, 24, "%" PRId64, p->amount);
    const char *const all[] = {p->id,
                               p->connector,
                               amount,
                               p->currency,
                               p->reference,
                               p->description,
                               p->manual_capture ? "manual" : "automatic",
                               p->return_url,
                               p->payment_method_type,
                               p->payment_method_token,
                               p->merchant_id,
                               p->connector_account,
                               p->metadata};
    memcpy(params, all, sizeof all);
    return true;
}

store_result store_payment_insert(store *s, const store_payment *p, pagoflex_arena *arena,
                                  store_payment *out)
{
    char amount[24];
    const char *params[13];
    if (!store_payment_insert_params(p, amount, params))
        return STORE_ERROR;
    return store_one_payment(s, "payment insert", store_sql_insert, 13, params, true, true, STORE_CONFLICT,
                             arena, out);
}

store_result store_payment_get(store *s, const char *id, pagoflex_arena *arena,
                               store_payment *out)
{
    const char *const params[] = {id};
    return store_one_payment(s, "payment get", sql_get, 1, params, false, false, STORE_NOT_FOUND, arena,
                             out);
}

store_result store_payment_get_of(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                  store_payment *out)
{
    if (!merchant_id || !*merchant_id) {
        log_error("store: merchant payment read without a merchant");
        return STORE_ERROR;
    }
    const char *const params[] = {id, merchant_id};
    return store_one_payment(s, "merchant payment get", sql_get_of, 2, params, false, false, STORE_NOT_FOUND,
                             arena, out);
}

/* After a refused transition: store provider_ref if the row has none. */
static store_result transition_keep_ref(store *s, const char *id, const char *provider_ref,
                                        pagoflex_arena *arena, store_payment *row)
{
    const char *const params[] = {id, provider_ref};
    return store_one_payment(s, "payment provider reference", sql_set_ref, 2, params, false, true,
                             STORE_NOT_FOUND, arena, row);
}

store_result store_payment_keep_ref(store *s, const char *id, const char *provider_ref, pagoflex_arena *arena,
                                    store_payment *out)
{
    if (!id || !provider_ref) {
        log_error("store: provider reference kept without a payment id or a reference");
        return STORE_ERROR;
    }
    return transition_keep_ref(s, id, provider_ref, arena, out);
}

store_result store_payment_transition_from(store *s, const char *id, pagoflex_state to,
                                           const char *source, const char *detail,
                                           const char *provider_ref, const char *error_code,
                                           const char *error_message, pagoflex_arena *arena,
                                           store_payment *out)
{
    store_payment row;
    char allowed[128];
    const char *to_name = payment_state_name(to);
    if (!id || payment_state_parse(to_name) < 0) {
        log_error("store: transition of payment %s to invalid state %d", id ? id : "(null)",
                  (int)to);
        return STORE_ERROR;
    }
    store_allowed_from(to, allowed, sizeof allowed);
    const char *const params[] = {id,         to_name,       allowed, provider_ref,
                                  error_code, error_message, source,  detail};
    store_result rc =
        store_transition_run(s, "payment transition", store_sql_transition, 8, params, arena, &row);
    /* Refused, but the bank's id is news: keep it (webhook look-ups need it). */
    if (rc == STORE_CONFLICT && provider_ref && !row.provider_reference_id) {
        store_result kr = transition_keep_ref(s, id, provider_ref, arena, &row);
        if (kr != STORE_OK)
            return kr;
    }
    if (rc == STORE_OK || rc == STORE_CONFLICT)
        *out = row;
    return rc;
}

store_result store_payment_transition(store *s, const char *id, pagoflex_state to,
                                      const char *provider_ref, const char *error_code,
                                      const char *error_message, pagoflex_arena *arena,
                                      store_payment *out)
{
    return store_payment_transition_from(s, id, to, STORE_SOURCE_API, NULL, provider_ref,
                                         error_code, error_message, arena, out);
}

store_result store_webhook_apply(store *s, const char *connector, const char *account,
                                 const pagoflex_webhook_event *ev,
                                 const unsigned char *body, size_t body_len,
                                 pagoflex_arena *arena, store_payment *out, bool *applied)
{
    PGresult *r = NULL;
    store_payment row;
    char allowed[128];
    char *text = NULL;
    const char *to_name = ev ? payment_state_name(ev->state) : NULL;
    if (!connector || !account || !ev || !ev->event_id || payment_state_parse(to_name) < 0) {
        log_error("store: webhook event without connector, event id or valid state");
        return STORE_ERROR;
    }
    if (body && (memchr(body, '\0', body_len) ||
                 !(text = arena_strndup(arena, (const char *)body, body_len)))) {
        log_error("store: webhook %s from %s: body has a NUL byte or no memory", ev->event_id,
                  connector);
        return STORE_ERROR;
    }
    store_allowed_from(ev->state, allowed, sizeof allowed);
    const char *const params[] = {connector, ev->event_id, ev->payment_id,    ev->tx_id,
                                  to_name,   text,         allowed,           ev->error_code,
                                  ev->error_message, account};
    const char *sql = ev->payment_id ? store_sql_webhook_by_id : store_sql_webhook_by_ref;
    store_result rc = store_run(s, "webhook apply", sql, 10, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    metrics_db_commit();
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    const char *outcome = PQgetvalue(r, 0, 0);
    rc = store_payment_from_row(r, 0, 1, arena, &row);
    if (rc != STORE_OK)
        goto fail;
    bool ref_was_null = strcmp(PQgetvalue(r, 0, 1 + PAYMENT_NCOLS), "t") == 0;
    *out = row;
    if (strcmp(outcome, "duplicate") == 0) {
        rc = STORE_DUPLICATE;
    } else {
        *applied = strcmp(outcome, "applied") == 0;
        /* Events that came before the bank id was known wait for it: when
         * this event stored the id, apply them now (after our commit, so an
         * orphan kept concurrently is seen by one of the two sides). */
        int orphans = 0;
        if (ref_was_null && row.provider_reference_id)
            store_orphan_apply(s, connector, account, row.provider_reference_id, &orphans);
    }

fail:
    PQclear(r);
    return rc;
}

/* Each SET and RESET pair is one round trip of utility statements (nothing
 * to plan). RESET goes back to the session's own values; the connection is
 * closed if it cannot, so no other call inherits the settings. */
store_result store_run_indexed(store *s, const char *what, const char *sql, int n, const char *const *params,
                               PGresult **res)
{
    store_call c;
    PGresult *set = NULL;
    store_result rc = store_call_begin(s, &c);
    if (rc != STORE_OK)
        return rc;
    rc = store_call_exec(&c, what, "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off", 0, NULL,
                         false, &set);
    PQclear(set);
    if (rc == STORE_OK)
        rc = store_call_exec(&c, what, sql, n, params, false, res);
    set = NULL;
    if (store_call_exec(&c, what, "RESET plan_cache_mode; RESET enable_seqscan", 0, NULL, false, &set) != STORE_OK)
        c.broken = true;
    PQclear(set);
    store_call_end(&c);
    return rc;
}

static store_result run_rows(store *s, bool indexed, const char *what, const char *sql, int n,
                             const char *const *params, pagoflex_arena *arena, size_t item_size,
                             store_row_fn read, void **items, size_t *count)
{
    PGresult *r = NULL;
    unsigned char *list = NULL;
    store_result rc = indexed ? store_run_indexed(s, what, sql, n, params, &r)
                              : store_run(s, what, sql, n, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0 && !(list = arena_alloc(arena, rows * item_size))) {
        rc = STORE_ERROR;
        goto fail;
    }
    for (size_t i = 0; i < rows; i++)
        if ((rc = read(r, (int)i, arena, list + i * item_size)) != STORE_OK)
            goto fail;
    *items = list;
    *count = rows;

fail:
    PQclear(r);
    return rc;
}

store_result store_run_rows(store *s, const char *what, const char *sql, int n,
                            const char *const *params, pagoflex_arena *arena, size_t item_size,
                            store_row_fn read, void **items, size_t *count)
{
    return run_rows(s, false, what, sql, n, params, arena, item_size, read, items, count);
}

store_result store_run_rows_indexed(store *s, const char *what, const char *sql, int n,
                                    const char *const *params, pagoflex_arena *arena, size_t item_size,
                                    store_row_fn read, void **items, size_t *count)
{
    return run_rows(s, true, what, sql, n, params, arena, item_size, read, items, count);
}

/* Fill one history entry from row `i`. */
static store_result history_from_row(const PGresult *r, int i, const char *what,
                                     pagoflex_arena *arena, store_history_entry *e)
{
    bool oom = false;
    int from = PQgetisnull(r, i, 0) ? -1 : payment_state_parse(PQgetvalue(r, i, 0));
    int to = payment_state_parse(PQgetvalue(r, i, 1));
    if (to < 0 || (from < 0 && !PQgetisnull(r, i, 0))) {
        log_error("store: %s row with unknown state", what);
        return STORE_ERROR;
    }
    e->from_state = from;
    e->to_state = (pagoflex_state)to;
    e->source = store_row_text(r, i, 2, arena, &oom);
    e->detail = store_row_text(r, i, 3, arena, &oom);
    e->at = store_row_text(r, i, 4, arena, &oom);
    return oom ? STORE_ERROR : STORE_OK;
}

store_result store_history_read(store *s, const char *what, const char *sql, int n_params,
                                const char *const *params, pagoflex_arena *arena,
                                store_history_entry **entries, size_t *count)
{
    PGresult *r = NULL;
    store_history_entry *list = NULL;
    store_result rc = store_run(s, what, sql, n_params, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    int rows = PQntuples(r);
    if (rows == 0) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    size_t n = PQgetisnull(r, 0, 1) ? 0 : (size_t)rows; /* LEFT JOIN: no history */
    if (n > 0 && !(list = arena_alloc(arena, n * sizeof *list))) {
        rc = STORE_ERROR;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rc = history_from_row(r, (int)i, what, arena, &list[i]);
        if (rc != STORE_OK)
            goto fail;
    }
    *entries = list;
    *count = n;

fail:
    PQclear(r);
    return rc;
}

store_result store_payment_history(store *s, const char *id, pagoflex_arena *arena,
                                   store_history_entry **entries, size_t *count)
{
    const char *const params[] = {id};
    return store_history_read(s, "payment history", sql_history, 1, params, arena, entries, count);
}

store_result store_payment_history_of(store *s, const char *merchant_id, const char *id,
                                      pagoflex_arena *arena, store_history_entry **entries, size_t *count)
{
    if (!merchant_id || !*merchant_id) {
        log_error("store: merchant payment history without a merchant");
        return STORE_ERROR;
    }
    const char *const params[] = {id, merchant_id};
    return store_history_read(s, "merchant payment history", sql_history_of, 2, params, arena, entries,
                              count);
}

bool store_ping(store *s)
{
    PGresult *r = NULL;
    store_result rc = store_run(s, "ping", "SELECT 1", 0, NULL, false, &r);
    PQclear(r);
    return rc == STORE_OK;
}

store_result store_query(store *s, const char *what, const char *sql, int n,
                         const char *const *params, pagoflex_arena *arena, store_rows *out)
{
    PGresult *r = NULL;
    store_rows rows = {0};
    store_result rc = store_run(s, what, sql, n, params, true, &r);
    if (rc != STORE_OK)
        return rc;
    rows.rows = (size_t)PQntuples(r);
    rows.cols = (size_t)PQnfields(r);
    if (rows.rows && rows.cols) {
        rows.cells = arena_alloc(arena, rows.rows * rows.cols * sizeof *rows.cells);
        if (!rows.cells) {
            rc = STORE_ERROR;
            goto fail;
        }
    }
    bool oom = false;
    for (size_t i = 0; i < rows.rows; i++)
        for (size_t j = 0; j < rows.cols; j++)
            rows.cells[i * rows.cols + j] = store_row_text(r, (int)i, (int)j, arena, &oom);
    if (oom) {
        rc = STORE_ERROR;
        goto fail;
    }
    *out = rows;
fail:
    PQclear(r);
    return rc;
}

void store_json_push(json_t **all, json_t *o)
{
    if (*all && o && json_array_append_new(*all, o) == 0)
        return;
    if (*all && o)
        o = NULL; /* json_array_append_new released it */
    json_decref(o);
    json_decref(*all);
    *all = NULL;
}

char *store_json_text(json_t *all)
{
    char *text = all ? json_dumps(all, JSON_COMPACT) : NULL;
    json_decref(all);
    return text;
}
