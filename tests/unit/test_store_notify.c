/* Unit tests for the notification outbox (migration 12, store_notify.c)
 * against a real PostgreSQL: the triggers write an event and its
 * deliveries with each state change and nothing for a rolled-back one,
 * one per changed row of a many-row statement;
 * claims share the work (per-endpoint cap, lease, fencing token); an
 * endpoint is its merchant's only; an endpoint's DELETE and the janitor
 * remove the deliveries the foreign keys cascaded to before migration 19.
 *
 * PAGOFLEX_PG holds a conninfo to a server where we may create databases.
 * Each run creates pf_notify_<pid> and drops it at the end. Without
 * PAGOFLEX_PG the program exits 77 (skipped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "arena.h"
#include "pgtest.h"
#include "store.h"
#include "store_janitor.h"
#include "notifier.h"
#include "notify_secret.h"
#include "store_internal.h"
#include "store_notify.h"

static const char *g_admin; /* PAGOFLEX_PG */
static char g_db[64];
static char *g_conninfo;
static store *g_store;
static PGconn *g_check;

/* Run `sql` on the check connection; fail the test on error. */
static void check_exec(const char *sql)
{
    pgtest_exec(g_check, sql);
}

static long check_count(const char *sql)
{
    PGresult *r = PQexec(g_check, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void make_endpoint(const char *id, const char *merchant, const char *events_json)
{
    pagoflex_arena *a = arena_new();
    store_endpoint e = {.id = id,
                        .merchant_id = merchant,
                        .url = "https://example.com/hook",
                        .events_json = events_json,
                        .secret_enc = (const unsigned char *)"sealed",
                        .secret_enc_len = 6},
                   out;
    assert_int_equal(store_endpoint_insert(g_store, &e, a, &out), STORE_OK);
    assert_string_equal(out.id, id);
    arena_free(a);
}

static void make_payment(const char *id, const char *merchant)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO payments (id, connector, amount, currency, state, merchant_id, connector_account)"
             " VALUES ('%s', 'BANCO_X', 1000, 'ARS', 'created', '%s', 'default')",
             id, merchant);
    check_exec(sql);
}

static void test_triggers_write_the_outbox_with_the_change(void **unused)
{
    (void)unused;
    char sql[512];
    make_endpoint("we_t_all", "mer_t", NULL);
    make_endpoint("we_t_ok", "mer_t", "[\"payment.succeeded\", \"refund.succeeded\"]");
    make_payment("pay_t1", "mer_t");
    make_payment("pay_u1", "mer_u");                                        /* mer_u has no endpoint */
    assert_int_equal(check_count("SELECT count(*) FROM notify_events"), 0); /* an insert is no change */
    check_exec("UPDATE payments SET state = 'pending' WHERE id IN ('pay_t1', 'pay_u1')");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 'pay_t1'"
                                 " AND type = 'payment.pending'"),
                     1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 'pay_u1'"), 0);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries"),
                     1); /* we_t_ok is not subscribed */
    /* A change that is not of state writes nothing; one rolled back neither. */
    check_exec("UPDATE payments SET description = 'x' WHERE id = 'pay_t1'");
    check_exec("BEGIN; UPDATE payments SET state = 'succeeded' WHERE id = 'pay_t1'; ROLLBACK");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events"), 1);
    check_exec("UPDATE payments SET state = 'succeeded' WHERE id = 'pay_t1'");
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries d JOIN notify_events e"
                                 " ON e.id = d.event_id WHERE e.type = 'payment.succeeded'"),
                     2);
    /* The data is the API object, with the amounts the BEFORE trigger set. */
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE type = 'payment.succeeded'"
                                 " AND (payload::jsonb)->'data'->>'amount_received' = '1000'"
                                 " AND (payload::jsonb)->'data'->>'status' = 'succeeded'"
                                 " AND (payload::jsonb) ? 'timestamp'"),
                     1);
    /* Refunds: pending inside (created, processing) is no change the API shows. */
    check_exec("INSERT INTO refunds (id, payment_id, connector, amount, currency, state, merchant_id,"
               " connector_account) VALUES ('re_t1', 'pay_t1', 'BANCO_X', 500, 'ARS', 'created', 'mer_t',"
               " 'default')");
    check_exec("UPDATE refunds SET state = 'processing' WHERE id = 're_t1'");
    check_exec("UPDATE refunds SET state = 'pending' WHERE id = 're_t1'");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 're_t1'"), 0);
    check_exec("UPDATE refunds SET state = 'succeeded' WHERE id = 're_t1'");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM notify_events WHERE object_id = 're_t1' AND type = 'refund.succeeded'"
             " AND (payload::jsonb)->'data'->>'object' = 'refund'");
    assert_int_equal(check_count(sql), 1);
    assert_int_equal(check_count("SELECT count(DISTINCT id) FROM notify_events"),
                     check_count("SELECT count(*) FROM notify_events"));
    check_exec("DELETE FROM notify_deliveries");
}

/* Migration 17: the triggers run once per statement. A statement that
 * changes many rows (the group commit's) writes one event per row whose
 * state changed, each with the row's own object, and deliveries for the
 * endpoints subscribed to its type only; rows whose state stayed, or whose
 * merchant has no endpoint, write nothing. Changes of one table made by
 * several parts of one statement (data-modifying WITH) are all seen. */
static void test_one_statement_writes_an_event_per_changed_row(void **unused)
{
    (void)unused;
    make_endpoint("we_s_all", "mer_s", NULL);
    make_endpoint("we_s_failed", "mer_s", "[\"payment.failed\", \"refund.failed\"]");
    make_payment("pay_s1", "mer_s");
    make_payment("pay_s2", "mer_s");
    make_payment("pay_s3", "mer_s");
    make_payment("pay_v1", "mer_v"); /* mer_v has no endpoint */
    check_exec("UPDATE payments SET state = 'pending' WHERE id = 'pay_s3'");
    check_exec("DELETE FROM notify_deliveries; DELETE FROM notify_events");
    check_exec("UPDATE payments SET state = CASE id WHEN 'pay_s2' THEN 'failed' ELSE 'pending' END"
               " WHERE id IN ('pay_s1', 'pay_s2', 'pay_s3', 'pay_v1')");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events"), 2);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 'pay_s1'"
                                 " AND type = 'payment.pending'"),
                     1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 'pay_s2'"
                                 " AND type = 'payment.failed'"),
                     1);
    /* pay_s1's event to the endpoint of every type; pay_s2's to both. */
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries d JOIN notify_events e"
                                 " ON e.id = d.event_id WHERE e.object_id = 'pay_s1'"
                                 " AND d.endpoint_id = 'we_s_all'"),
                     1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries d JOIN notify_events e"
                                 " ON e.id = d.event_id WHERE e.object_id = 'pay_s2'"),
                     2);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries"), 3);
    /* Each event carries its own row, as the API shows it. */
    assert_int_equal(check_count("SELECT count(*) FROM notify_events e JOIN payments p ON p.id = e.object_id"
                                 " WHERE (e.payload::jsonb)->'data' = notify_payment_object(p)"
                                 " AND e.merchant_id = p.merchant_id AND (e.payload::jsonb) ? 'timestamp'"),
                     2);
    /* Two data-modifying parts of one statement: both changes written. */
    check_exec("WITH a AS (UPDATE payments SET state = 'succeeded' WHERE id = 'pay_s1' RETURNING id)"
               " UPDATE payments SET state = 'succeeded' WHERE id = 'pay_s3'");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE type = 'payment.succeeded'"
                                 " AND object_id IN ('pay_s1', 'pay_s3')"),
                     2);
    /* Refunds: of two changed in one statement, only the one the API shows as changed. */
    check_exec("INSERT INTO refunds (id, payment_id, connector, amount, currency, state, merchant_id,"
               " connector_account) VALUES ('re_s1', 'pay_s1', 'BANCO_X', 100, 'ARS', 'pending', 'mer_s',"
               " 'default'), ('re_s2', 'pay_s1', 'BANCO_X', 100, 'ARS', 'created', 'mer_s', 'default')");
    check_exec("UPDATE refunds SET state = CASE id WHEN 're_s1' THEN 'failed' ELSE 'processing' END"
               " WHERE id IN ('re_s1', 're_s2')");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id LIKE 're_s%'"), 1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events e JOIN refunds r ON r.id = e.object_id"
                                 " WHERE e.type = 'refund.failed' AND (e.payload::jsonb)->'data' ="
                                 " notify_refund_object(r)"),
                     1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries d JOIN notify_events e"
                                 " ON e.id = d.event_id WHERE e.object_id = 're_s1'"),
                     2);
    /* A statement that changes no state, or no row, writes nothing. */
    long before = check_count("SELECT count(*) FROM notify_events");
    check_exec("UPDATE payments SET description = 'x' WHERE merchant_id = 'mer_s'");
    check_exec("UPDATE payments SET state = 'failed' WHERE id = 'pay_none'");
    assert_int_equal(check_count("SELECT count(*) FROM notify_events"), before);
    check_exec("DELETE FROM notify_deliveries");
}

/* The server's messages on a connection that show a transition table
 * read (auto_explain's plans). */
static char g_messages[1 << 20];
/* How many plans of notify_time's or notify_error's bodies were logged:
 * each is a SQL function run on its own rather than inlined. */
static int g_function_plans;

static void collect_message(void *arg, const char *msg)
{
    (void)arg;
    size_t used = strlen(g_messages);
    if (strstr(msg, "Named Tuplestore Scan"))
        snprintf(g_messages + used, sizeof g_messages - used, "%s", msg);
    if (strstr(msg, "Query Text") && (strstr(msg, "to_char(t AT TIME ZONE") || strstr(msg, "'code', code")))
        g_function_plans++;
}

/* Every Named Tuplestore Scan (a transition table read) in the plans of
 * g_messages ran once; how many there were goes to *scans. */
static void assert_transition_tables_read_once(int *scans)
{
    *scans = 0;
    for (const char *p = g_messages; (p = strstr(p, "Named Tuplestore Scan")); p++) {
        const char *loops = strstr(p, "loops=");
        assert_non_null(loops);
        if (atoi(loops + 6) != 1)
            fail_msg("a transition table is read %d times:\n%s", atoi(loops + 6), g_messages);
        (*scans)++;
    }
}

/* The trigger's statement is planned once per connection, with the row
 * counts of the first statement it sees, and the plan is kept. A plan made
 * for one row that joined a statement's old and new rows (or recomputed
 * what it derives from them) by a nested loop would read a transition
 * table again for every row: minutes for a statement of 30,000 rows. So,
 * after one-row statements on a connection, a statement of 500 rows (the
 * kept plan) and one of 3,000 (planned for its own size) must each read
 * every transition table once (auto_explain's loops=1 on every Named
 * Tuplestore Scan), and write all their events. The objects are built
 * inline, in the trigger's statement: no SQL function of the object
 * (notify_time, notify_error) runs as a query of its own. */
static void test_transition_tables_read_once_whatever_the_first_plan(void **unused)
{
    (void)unused;
    int scans = 0;
    make_endpoint("we_l_all", "mer_l", NULL);
    check_exec("INSERT INTO payments (id, connector, amount, currency, state, merchant_id, connector_account)"
               " SELECT 'pay_l' || g, 'BANCO_X', 1000, 'ARS', 'created', 'mer_l', 'default'"
               " FROM generate_series(1, 3500) g");
    PGconn *c = PQconnectdb(g_conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    pgtest_exec(c, "UPDATE payments SET state = 'processing' WHERE id = 'pay_l1'");
    pgtest_exec(c, "UPDATE payments SET state = 'processing' WHERE id = 'pay_l2'");
    pgtest_exec(c, "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                   " SET auto_explain.log_analyze = on; SET auto_explain.log_nested_statements = on;"
                   " SET client_min_messages = log");
    PQsetNoticeProcessor(c, collect_message, NULL);
    g_messages[0] = '\0';
    g_function_plans = 0;
    pgtest_exec(c, "UPDATE payments SET state = 'pending' WHERE merchant_id = 'mer_l'"
                   " AND substr(id, 6)::int <= 500");
    assert_transition_tables_read_once(&scans);
    assert_true(scans >= 2); /* the old rows and the new */
    g_messages[0] = '\0';
    pgtest_exec(c, "UPDATE payments SET state = 'pending' WHERE merchant_id = 'mer_l' AND state <> 'pending'");
    assert_transition_tables_read_once(&scans);
    assert_true(scans >= 2);
    assert_int_equal(g_function_plans, 0);
    PQfinish(c);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE merchant_id = 'mer_l'"
                                 " AND type = 'payment.pending'"),
                     3500);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_l_all'"), 3502);
    check_exec("DELETE FROM notify_deliveries");
}

static void test_claims_cap_lease_and_fence(void **unused)
{
    (void)unused;
    char sql[256];
    make_endpoint("we_c1", "mer_c", "[\"payment.pending\"]");
    make_endpoint("we_c2", "mer_d", "[\"payment.pending\"]");
    for (int i = 0; i < 10; i++) {
        snprintf(sql, sizeof sql, "pay_c%d", i);
        make_payment(sql, "mer_c");
    }
    make_payment("pay_d1", "mer_d");
    make_payment("pay_d2", "mer_d");
    check_exec("UPDATE payments SET state = 'pending' WHERE merchant_id IN ('mer_c', 'mer_d')");
    pagoflex_arena *a = arena_new();
    store_notify_job *jobs = NULL;
    size_t n = 0;
    /* At most 3 per endpoint: one endpoint's backlog does not take the claim. */
    assert_int_equal(store_notify_claim(g_store, 100, 3, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
    assert_int_equal(n, 5);
    int c1 = 0;
    for (size_t i = 0; i < n; i++) {
        c1 += strcmp(jobs[i].endpoint_id, "we_c1") == 0;
        assert_int_equal(jobs[i].attempts, 1);
        assert_non_null(strstr(jobs[i].payload, "\"type\" : \"payment.pending\""));
        assert_int_equal(jobs[i].secrets.secret_enc_len, 6);
        assert_memory_equal(jobs[i].secrets.secret_enc, "sealed", 6);
    }
    assert_int_equal(c1, 3);
    /* Each listed endpoint's own room: we_c1 without room is left out. */
    const char *busy[] = {"we_c1"};
    const int rooms[] = {0};
    store_notify_job *more = NULL;
    assert_int_equal(store_notify_claim(g_store, 100, 3, busy, rooms, 1, 60000, a, &more, &n), STORE_OK);
    assert_int_equal(n, 0);
    /* Another host (nothing busy there) takes the next 3 of we_c1; leased rows are not taken twice. */
    assert_int_equal(store_notify_claim(g_store, 100, 3, NULL, NULL, 0, 200, a, &more, &n), STORE_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 5; j++)
            assert_string_not_equal(more[i].delivery_id, jobs[j].delivery_id);
    /* Recorded outcomes. */
    assert_int_equal(
        store_notify_finish(g_store, jobs[0].delivery_id, jobs[0].claim_token, "succeeded", 204, NULL, 0),
        STORE_OK);
    assert_int_equal(store_notify_finish(g_store, jobs[1].delivery_id, jobs[1].claim_token, "pending", 500,
                                         "HTTP 500", 60000),
                     STORE_OK);
    /* A lapsed lease: the row is due again, claimed with a new token, and
     * the first claimer's outcome is refused. */
    usleep(400 * 1000);
    store_notify_job *again = NULL;
    assert_int_equal(store_notify_claim(g_store, 100, 10, NULL, NULL, 0, 60000, a, &again, &n), STORE_OK);
    assert_int_equal(n, 3 + 4); /* the 3 lapsed ones + the 4 of we_c1 never claimed */
    const store_notify_job *lapsed = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(again[i].delivery_id, more[0].delivery_id) == 0)
            lapsed = &again[i];
    assert_non_null(lapsed);
    assert_int_equal(lapsed->attempts, 2);
    assert_true(lapsed->claim_token > more[0].claim_token);
    assert_int_equal(
        store_notify_finish(g_store, more[0].delivery_id, more[0].claim_token, "succeeded", 200, NULL, 0),
        STORE_CONFLICT);
    assert_int_equal(store_notify_finish(g_store, lapsed->delivery_id, lapsed->claim_token, "failed", 0,
                                         "Timeout was reached", 0),
                     STORE_OK);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM notify_deliveries WHERE id = '%s' AND status = 'failed'"
             " AND next_attempt_at IS NULL AND last_error = 'Timeout was reached'",
             lapsed->delivery_id);
    assert_int_equal(check_count(sql), 1);
    /* The delivery log and a resend, merchant-scoped. */
    store_delivery *log = NULL;
    assert_int_equal(store_delivery_list(g_store, "mer_c", "we_c1", a, &log, &n), STORE_OK);
    assert_int_equal(n, 10);
    assert_int_equal(store_delivery_list(g_store, "mer_d", "we_c1", a, &log, &n), STORE_NOT_FOUND);
    store_delivery d;
    assert_int_equal(
        store_delivery_resend(g_store, "mer_c", "we_c1", lapsed->delivery_id, "dlv_resent", a, &d), STORE_OK);
    assert_string_equal(d.event_id, lapsed->event_id);
    assert_string_equal(d.status, "pending");
    assert_int_equal(
        store_delivery_resend(g_store, "mer_c", "we_c1", lapsed->delivery_id, "dlv_twice", a, &d),
        STORE_CONFLICT);
    assert_string_equal(d.id, "dlv_resent");
    assert_int_equal(store_delivery_resend(g_store, "mer_d", "we_c1", lapsed->delivery_id, "dlv_x", a, &d),
                     STORE_NOT_FOUND);
    arena_free(a);
}

/* n due deliveries of endpoint `endpoint` (events evt_<tag><g>, deliveries
 * dlv_<tag><g>, g = 1..n, due an hour ago plus g ms) in a steady outbox:
 * room left in every page by purged deliveries (as the janitor leaves it)
 * and fresh statistics on every table the claim reads (without them on
 * webhook_endpoints, PostgreSQL assumes ten pages of endpoints, 290 rows). */
static void make_backlog(const char *tag, const char *endpoint, int n)
{
    char sql[640];
    snprintf(sql, sizeof sql,
             "INSERT INTO notify_events (id, merchant_id, type, object_id, payload)"
             " SELECT 'evt_%s' || g, 'mer_bl', 'payment.pending', 'pay_%s' || g, '{}'"
             " FROM generate_series(1, %d) g",
             tag, tag, n);
    check_exec(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
             " SELECT 'dlv_%s' || f.k || g, 'evt_%s' || g, '%s', now() - interval '1 hour' + g * interval '1 ms'"
             " FROM generate_series(1, %d) g, (VALUES (''), ('purged')) f(k) ORDER BY g, f.k",
             tag, tag, endpoint, n);
    check_exec(sql);
    snprintf(sql, sizeof sql, "DELETE FROM notify_deliveries WHERE id LIKE 'dlv_%spurged%%'", tag);
    check_exec(sql);
    check_exec("VACUUM (ANALYZE) notify_deliveries, notify_events, webhook_endpoints");
}

/* PREPARE `sql` on `c` as `head` (name and parameter types). */
static void prepare_as(PGconn *c, const char *head, const char *sql)
{
    char *prep = malloc(strlen(head) + strlen(sql) + 16);
    assert_non_null(prep);
    sprintf(prep, "PREPARE %s AS %s", head, sql);
    pgtest_exec(c, prep);
    free(prep);
}

/* A new connection with `settings` run and the claim prepared as "c". */
static PGconn *claim_connection(const char *settings)
{
    PGconn *c = PQconnectdb(g_conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    pgtest_exec(c, settings);
    prepare_as(c, "c(text[], int[], int, int, bigint)", store_sql_notify_claim);
    return c;
}

/* A claim with one endpoint at its cap and a long backlog of its due
 * deliveries looks up a few rows by index, whatever the plan the
 * connection keeps: no sequential scan or sort of every pending delivery
 * (that took 126 ms per claim with 140,000 pending). */
static void test_claim_reads_a_few_rows_whatever_the_backlog(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    make_endpoint("we_bl1", "mer_bl", NULL);
    make_endpoint("we_bl2", "mer_bl", NULL);
    make_backlog("bl", "we_bl1", 5000);
    check_exec("UPDATE notify_deliveries SET endpoint_id = 'we_bl2' WHERE id = 'dlv_bl5000'");
    PGconn *c = claim_connection("SET plan_cache_mode = force_generic_plan; SET jit = off");
    pgtest_exec(c, "BEGIN");
    PGresult *r = PQexec(c, "EXECUTE c('{we_bl1}', '{0}', 4, 60, 60000)");
    bool one = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
               strcmp(PQgetvalue(r, 0, 0), "dlv_bl5000") == 0; /* we_bl2's, behind we_bl1's 4,999 */

    PQclear(r);
    pgtest_exec(c, "ROLLBACK");
    pgtest_exec(c, "BEGIN");
    r = PQexec(c, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE c('{we_bl1}', '{0}', 4, 60, 60000)");
    bool seq = PQresultStatus(r) != PGRES_TUPLES_OK, external = false;
    for (int i = 0; i < PQntuples(r); i++) {
        seq |= strstr(PQgetvalue(r, i, 0), "Seq Scan on notify_deliveries") != NULL;
        external |= strstr(PQgetvalue(r, i, 0), "external") != NULL;
    }
    PQclear(r);
    pgtest_exec(c, "ROLLBACK");
    PQfinish(c);
    assert_true(one);
    assert_false(seq);
    assert_false(external);
    check_exec("DELETE FROM notify_deliveries");
}

/* The store plans its claim once per connection (each plan is a planning
 * of the whole claim: 0.3-0.7 ms), whatever the backlog and however the
 * tables grow, and the connection plans its other statements as before
 * once the claim is done. */
static void test_claim_is_planned_once_per_connection(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    make_endpoint("we_gp1", "mer_bl", NULL);
    make_backlog("gp", "we_gp1", 20000);
    store *one = store_open(g_conninfo, 1);
    assert_non_null(one);
    pagoflex_arena *a = arena_new();
    for (int i = 0; i < 8; i++) {
        store_notify_job *jobs = NULL;
        size_t n = 0;
        assert_int_equal(store_notify_claim(one, 8, 8, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
        assert_int_equal(n, 8);
        if (i == 3) /* the table grows between two claims */
            check_exec("INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
                       " SELECT 'dlv_gpmore' || g, 'evt_gp' || g, 'we_gp1', now() FROM generate_series(1, 20000) g");
    }
    PGresult *r = NULL;
    assert_int_equal(store_run(one, "plans",
                               "SELECT generic_plans, custom_plans, current_setting('plan_cache_mode'),"
                               " current_setting('enable_seqscan')"
                               " FROM pg_prepared_statements WHERE statement LIKE '%WITH busy AS%'",
                               0, NULL, false, &r),
                     STORE_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), 8);
    assert_int_equal(atoi(PQgetvalue(r, 0, 1)), 0);
    assert_string_equal(PQgetvalue(r, 0, 2), "auto");
    assert_string_equal(PQgetvalue(r, 0, 3), "on");
    PQclear(r);
    store_close(one);
    arena_free(a);
    check_exec("DELETE FROM notify_deliveries");
}

/* The notifier's statements planned while the outbox is empty, as in a
 * new database, still find their deliveries by index after the outbox has
 * grown, before anything analyzes it again: the store's claims, outcomes
 * and give-backs scan no part of notify_deliveries sequentially.
 * (PostgreSQL kept the generic plans it made on the empty table,
 * sequential scans, until autovacuum next analyzed the table: 25-58 ms a
 * claim in the bench.) */
static void test_notifier_planned_on_an_empty_outbox_keeps_to_its_indexes(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    check_exec("ALTER TABLE notify_deliveries SET (autovacuum_enabled = false)"); /* no ANALYZE meanwhile */
    check_exec("VACUUM (ANALYZE) notify_deliveries");                            /* known to be empty */
    make_endpoint("we_ep1", "mer_bl", NULL);
    store *one = store_open(g_conninfo, 1);
    assert_non_null(one);
    pagoflex_arena *a = arena_new();
    store_notify_job *jobs = NULL;
    size_t n = 0;
    const char *none = "dlv_none";
    int64_t no_token = 1;
    for (int i = 0; i < 8; i++) { /* past PostgreSQL's five custom plans */
        assert_int_equal(store_notify_claim(one, 8, 8, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
        assert_int_equal(n, 0);
        store_notify_outcome o = {.delivery_id = none, .claim_token = no_token, .status = "succeeded"};
        assert_int_equal(store_notify_finish_many(one, &o, 1), STORE_OK);
        assert_false(o.recorded);
        assert_int_equal(store_notify_give_back(one, &none, &no_token, 1, &n), STORE_OK);
        assert_int_equal(n, 0);
    }
    check_exec("INSERT INTO notify_events (id, merchant_id, type, object_id, payload)"
               " SELECT 'evt_ep' || g, 'mer_bl', 'payment.pending', 'pay_ep' || g, '{}' FROM generate_series(1, 20000) g");
    check_exec("INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
               " SELECT 'dlv_ep' || g, 'evt_ep' || g, 'we_ep1', now() - interval '1 hour' FROM generate_series(1, 20000) g");
    long seq0, idx0, seq, idx;
    pgtest_table_scans(g_check, "notify_deliveries", &seq0, &idx0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_notify_claim(one, 8, 8, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
        assert_int_equal(n, 8);
        if (i == 0) { /* delivered */
            store_notify_outcome o[8];
            for (size_t k = 0; k < 8; k++)
                o[k] = (store_notify_outcome){
                    .delivery_id = jobs[k].delivery_id, .claim_token = jobs[k].claim_token, .status = "succeeded"};
            assert_int_equal(store_notify_finish_many(one, o, 8), STORE_OK);
            for (size_t k = 0; k < 8; k++)
                assert_true(o[k].recorded);
        } else { /* never attempted */
            const char *ids[8];
            int64_t tokens[8];
            for (size_t k = 0; k < 8; k++) {
                ids[k] = jobs[k].delivery_id;
                tokens[k] = jobs[k].claim_token;
            }
            size_t given = 0;
            assert_int_equal(store_notify_give_back(one, ids, tokens, 8, &given), STORE_OK);
            assert_int_equal(given, 8);
        }
    }
    store_close(one); /* a session's counts arrive as it ends */
    pgtest_table_scans_after(g_check, "notify_deliveries", idx0, &seq, &idx);
    check_exec("ALTER TABLE notify_deliveries RESET (autovacuum_enabled)");
    check_exec("DELETE FROM notify_deliveries");
    arena_free(a);
    assert_int_equal(seq - seq0, 0);
}

/* Outcomes recorded together, each fenced by its own claim: a stale token
 * writes nothing for its delivery and does not stop the others. */
static void test_outcomes_recorded_in_one_statement(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    make_endpoint("we_fm", "mer_bl", NULL);
    check_exec("INSERT INTO notify_events (id, merchant_id, type, object_id, payload)"
               " SELECT 'evt_fm' || g, 'mer_bl', 'payment.pending', 'pay_fm' || g, '{}' FROM generate_series(1, 3) g");
    check_exec("INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
               " SELECT 'dlv_fm' || g, 'evt_fm' || g, 'we_fm', now() FROM generate_series(1, 3) g");
    pagoflex_arena *a = arena_new();
    store_notify_job *jobs = NULL;
    size_t n = 0;
    assert_int_equal(store_notify_claim(g_store, 10, 10, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
    assert_int_equal(n, 3);
    store_notify_outcome o[3];
    for (size_t i = 0; i < 3; i++)
        o[i] = (store_notify_outcome){.delivery_id = jobs[i].delivery_id,
                                      .claim_token = jobs[i].claim_token + (i == 1), /* a stale claim */
                                      .status = i == 2 ? "pending" : "succeeded",
                                      .http_status = i == 2 ? 500 : 204,
                                      .error = i == 2 ? "HTTP 500" : NULL,
                                      .retry_ms = i == 2 ? 60000 : 0};
    assert_int_equal(store_notify_finish_many(g_store, o, 3), STORE_OK);
    assert_true(o[0].recorded);
    assert_false(o[1].recorded);
    assert_true(o[2].recorded);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM notify_deliveries WHERE id = '%s' AND status = 'succeeded'"
             " AND last_http_status = 204 AND delivered_at IS NOT NULL AND next_attempt_at IS NULL", jobs[0].delivery_id);
    assert_int_equal(check_count(sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM notify_deliveries WHERE id = '%s' AND status = 'pending'"
             " AND last_http_status IS NULL", jobs[1].delivery_id);
    assert_int_equal(check_count(sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM notify_deliveries WHERE id = '%s' AND status = 'pending'"
             " AND last_error = 'HTTP 500' AND next_attempt_at > now() + interval '50 seconds'", jobs[2].delivery_id);
    assert_int_equal(check_count(sql), 1);
    arena_free(a);
    check_exec("DELETE FROM notify_deliveries");
}

/* A claim gives each listed endpoint its own room; deliveries given back
 * unsent are due at once with the attempt their claim counted taken back,
 * only while the claim is still the giver's. The notifier's statements
 * commit asynchronously for their own transaction only: the pool's
 * connections stay synchronous for everyone else. */
static void test_claim_rooms_give_back_and_local_async_commit(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    make_endpoint("we_gb1", "mer_bl", NULL);
    make_endpoint("we_gb2", "mer_bl", NULL);
    check_exec("INSERT INTO notify_events (id, merchant_id, type, object_id, payload)"
               " SELECT 'evt_gb' || g, 'mer_bl', 'payment.pending', 'pay_gb' || g, '{}' FROM "
               "generate_series(1, 20) g");
    check_exec("INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
               " SELECT 'dlv_gb' || g, 'evt_gb' || g, CASE WHEN g <= 10 THEN 'we_gb1' ELSE 'we_gb2' END,"
               " now() - interval '1 minute' + g * interval '1 ms' FROM generate_series(1, 20) g");
    pagoflex_arena *a = arena_new();
    store_notify_job *jobs = NULL;
    size_t n = 0;
    const char *ids[] = {"we_gb1"};
    const int rooms[] = {7};
    assert_int_equal(store_notify_claim(g_store, 100, 2, ids, rooms, 1, 60000, a, &jobs, &n), STORE_OK);
    assert_int_equal(n, 7 + 2);
    int gb1 = 0;
    for (size_t i = 0; i < n; i++)
        gb1 += strcmp(jobs[i].endpoint_id, "we_gb1") == 0;
    assert_int_equal(gb1, 7);
    /* Give back two, one of them with a stale token: only the other is given back. */
    const char *back[] = {jobs[0].delivery_id, jobs[1].delivery_id};
    const int64_t tokens[] = {jobs[0].claim_token, jobs[1].claim_token + 1000};
    size_t given = 99;
    assert_int_equal(store_notify_give_back(g_store, back, tokens, 2, &given), STORE_OK);
    assert_int_equal(given, 1);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM notify_deliveries WHERE id = '%s' AND attempts = 0 AND status = 'pending'"
             " AND next_attempt_at <= now()",
             jobs[0].delivery_id);
    assert_int_equal(check_count(sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM notify_deliveries WHERE id = '%s' AND attempts = 1",
             jobs[1].delivery_id);
    assert_int_equal(check_count(sql), 1);
    /* The given-back one is due at once: claimed again with we_gb1's 3 never claimed. */
    store_notify_job *again = NULL;
    const int ten[] = {10};
    assert_int_equal(store_notify_claim(g_store, 100, 0, ids, ten, 1, 60000, a, &again, &n), STORE_OK);
    assert_int_equal(n, 4);
    const store_notify_job *back0 = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(again[i].delivery_id, jobs[0].delivery_id) == 0)
            back0 = &again[i];
    assert_non_null(back0);
    assert_int_equal(back0->attempts, 1);
    assert_true(back0->claim_token > jobs[0].claim_token);
    /* Every pool connection still commits synchronously after the notifier's statements. */
    store_notify_outcome o = {.delivery_id = back0->delivery_id,
                              .claim_token = back0->claim_token,
                              .status = "succeeded",
                              .http_status = 200};
    assert_int_equal(store_notify_finish_many(g_store, &o, 1), STORE_OK);
    assert_true(o.recorded);
    for (int i = 0; i < 8; i++) {
        PGresult *r = NULL;
        assert_int_equal(store_run(g_store, "show", "SHOW synchronous_commit", 0, NULL, false, &r), STORE_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "on");
        PQclear(r);
    }
    arena_free(a);
    check_exec("DELETE FROM notify_deliveries");
}

/* Every delivery's id and due time, in id order (malloc'd). */
static char *due_times(void)
{
    PGresult *r = PQexec(g_check, "SELECT string_agg(id || '=' || next_attempt_at, ',' ORDER BY id)"
                                  " FROM notify_deliveries");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("due times: %s", PQresultErrorMessage(r));
    char *text = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_non_null(text);
    return text;
}

/* Fail the running test unless `r` has `rows` rows, closing `c` first (its
 * open transaction would keep the rows locked for the tests after). */
static void expect_rows_or_close(PGconn *c, PGresult *r, int rows, const char *what)
{
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == rows)
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %d rows, not %d: %s", what, PQntuples(r), rows, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    fail_msg("%s", msg);
}

/* A claim and a give-back change no indexed column of a delivery (the
 * lease has a column of its own, migration 24), so on the half-free pages
 * of notify_deliveries each is a HOT update: no index entry is written.
 * Before, the claim leased a row by moving next_attempt_at, a column of
 * the due index, and wrote the row again in all four indexes. The store's
 * two statements run here in one transaction, whose own update counts
 * PostgreSQL keeps (pg_stat_get_xact_*). A given-back delivery keeps its
 * due time, so it keeps its place in the queue. */
static void test_claims_and_give_backs_write_no_index_entry(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    check_exec("VACUUM notify_deliveries");
    make_endpoint("we_hot", "mer_bl", NULL);
    check_exec("INSERT INTO notify_events (id, merchant_id, type, object_id, payload)"
               " SELECT 'evt_hot' || g, 'mer_bl', 'payment.pending', 'pay_hot' || g, '{}'"
               " FROM generate_series(1, 10) g");
    check_exec(
        "INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
        " SELECT 'dlv_hot' || g, 'evt_hot' || g, 'we_hot', now() - interval '1 minute' + g * interval '1 ms'"
        " FROM generate_series(1, 10) g");
    char *due_before = due_times();
    PGconn *c = claim_connection("SELECT 1");
    prepare_as(c, "g(json)", store_sql_notify_give_back);
    pgtest_exec(c, "BEGIN");
    PGresult *r = PQexec(c, "EXECUTE c('{we_hot}', '{10}', 0, 100, 60000)");
    expect_rows_or_close(c, r, 10, "the claim");
    char back[512] = "[";
    for (int i = 0; i < 4; i++)
        snprintf(back + strlen(back), sizeof back - strlen(back), "%s{\"id\": \"%s\", \"token\": %s}",
                 i ? ", " : "", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    strcat(back, "]");
    PQclear(r);
    const char *const params[] = {back};
    r = PQexecPrepared(c, "g", 1, params, NULL, NULL, 0);
    expect_rows_or_close(c, r, 4, "the give-back");
    PQclear(r);
    long updated = pgtest_long(c, "SELECT pg_stat_get_xact_tuples_updated('notify_deliveries'::regclass)", NULL);
    long hot = pgtest_long(c, "SELECT pg_stat_get_xact_tuples_hot_updated('notify_deliveries'::regclass)", NULL);
    pgtest_exec(c, "COMMIT"); /* before any assertion: a failed one must not leave the rows locked */
    PQfinish(c);
    assert_int_equal(updated, 14);
    assert_int_equal(hot, 14);
    /* Every due time as it was before the claim; the given-back ones leased no longer. */
    char *after = due_times();
    assert_string_equal(after, due_before);
    free(after);
    free(due_before);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE leased_until IS NULL"
                                 " AND attempts = 0"),
                     4);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE leased_until > now()"
                                 " AND attempts = 1"),
                     6);
    check_exec("DELETE FROM notify_deliveries");
}

static void test_endpoints_are_their_merchants(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_endpoint e;
    make_endpoint("we_m1", "mer_m", NULL);
    assert_int_equal(store_endpoint_get(g_store, "mer_m", "we_m1", a, &e), STORE_OK);
    assert_null(e.events_json);
    assert_null(e.previous_secret_expires_at);
    assert_int_equal(store_endpoint_get(g_store, "mer_n", "we_m1", a, &e), STORE_NOT_FOUND);
    assert_int_equal(
        store_endpoint_rotate(g_store, "mer_n", "we_m1", (const unsigned char *)"n", 1, 60, a, &e),
        STORE_NOT_FOUND);
    assert_int_equal(store_endpoint_delete(g_store, "mer_n", "we_m1"), STORE_NOT_FOUND);
    assert_int_equal(
        store_endpoint_rotate(g_store, "mer_m", "we_m1", (const unsigned char *)"new", 3, 60, a, &e),
        STORE_OK);
    assert_non_null(e.previous_secret_expires_at);
    assert_int_equal(store_endpoint_secrets(g_store, "mer_m", "we_m1", a, &e), STORE_OK);
    assert_memory_equal(e.secret_enc, "new", 3);
    assert_memory_equal(e.previous_secret_enc, "sealed", 6);
    /* Grace 0: the previous secret signs no more. */
    assert_int_equal(
        store_endpoint_rotate(g_store, "mer_m", "we_m1", (const unsigned char *)"newer", 5, 0, a, &e),
        STORE_OK);
    assert_null(e.previous_secret_expires_at);
    assert_int_equal(store_endpoint_secrets(g_store, "mer_m", "we_m1", a, &e), STORE_OK);
    assert_null(e.previous_secret_enc);
    store_endpoint *list = NULL;
    size_t n = 0;
    assert_int_equal(store_endpoint_list(g_store, "mer_n", a, &list, &n), STORE_OK);
    assert_int_equal(n, 0);
    /* At most STORE_NOTIFY_ENDPOINTS_MAX per merchant: the fan-out of one change is bounded. */
    for (int i = 0; i < STORE_NOTIFY_ENDPOINTS_MAX; i++) {
        char id[32];
        snprintf(id, sizeof id, "we_n%d", i);
        make_endpoint(id, "mer_n", NULL);
    }
    store_endpoint extra = {.id = "we_n_extra",
                            .merchant_id = "mer_n",
                            .url = "https://example.com/",
                            .secret_enc = (const unsigned char *)"s",
                            .secret_enc_len = 1};
    assert_int_equal(store_endpoint_insert(g_store, &extra, a, &e), STORE_CONFLICT);
    assert_int_equal(store_endpoint_list(g_store, "mer_n", a, &list, &n), STORE_OK);
    assert_int_equal(n, STORE_NOTIFY_ENDPOINTS_MAX);
    assert_int_equal(store_endpoint_delete(g_store, "mer_m", "we_m1"), STORE_OK);
    arena_free(a);
}

static void test_janitor_purges_old_finished_events_only(void **unused)
{
    (void)unused;
    make_endpoint("we_j1", "mer_j", NULL);
    make_payment("pay_j1", "mer_j");
    make_payment("pay_j2", "mer_j");
    make_payment("pay_j3", "mer_j");
    check_exec("UPDATE payments SET state = 'pending' WHERE merchant_id = 'mer_j'");
    check_exec("UPDATE notify_deliveries d SET status = 'succeeded' FROM notify_events e"
               " WHERE e.id = d.event_id AND e.object_id IN ('pay_j1', 'pay_j3')");
    /* j1 old and delivered, j2 old and still pending, j3 delivered and young. */
    check_exec("UPDATE notify_events SET created_at = now() - interval '40 days'"
               " WHERE object_id IN ('pay_j1', 'pay_j2')");
    store_janitor_limits lim = {.batch = 1, .max_batches = 10, .notify_event_retention_days = 30};
    store_janitor_counts n;
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_true(n.ran);
    assert_int_equal(n.notify_events, 1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 'pay_j1'"), 0);
    assert_int_equal(
        check_count("SELECT count(*) FROM notify_events WHERE object_id IN ('pay_j2', 'pay_j3')"), 2);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries d JOIN webhook_endpoints e"
                                 " ON e.id = d.endpoint_id WHERE e.merchant_id = 'mer_j'"),
                     2);
    /* The purged event's delivery went with it (no foreign key cascades since migration 19). */
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries d WHERE NOT EXISTS"
                                 " (SELECT 1 FROM notify_events e WHERE e.id = d.event_id)"),
                     0);
    lim.notify_event_retention_days = 0; /* keep everything */
    check_exec("UPDATE notify_deliveries SET status = 'failed' WHERE status = 'pending'");
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_int_equal(n.notify_events, 0);
}

/* Deleting an endpoint deletes its deliveries, in the same statement, and
 * leaves the other endpoints' (and the events) alone. */
static void test_endpoint_delete_takes_its_deliveries_only(void **unused)
{
    (void)unused;
    make_endpoint("we_x1", "mer_x", NULL);
    make_endpoint("we_x2", "mer_x", NULL);
    make_payment("pay_x1", "mer_x");
    make_payment("pay_x2", "mer_x");
    check_exec("UPDATE payments SET state = 'pending' WHERE merchant_id = 'mer_x'");
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_x1'"), 2);
    assert_int_equal(store_endpoint_delete(g_store, "mer_x", "we_x1"), STORE_OK);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_x1'"), 0);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_x2'"), 2);
    assert_int_equal(
        check_count("SELECT count(*) FROM notify_events WHERE object_id IN ('pay_x1', 'pay_x2')"), 2);
    /* Another merchant's delete of it changes nothing. */
    assert_int_equal(store_endpoint_delete(g_store, "mer_j", "we_x2"), STORE_NOT_FOUND);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_x2'"), 2);
    assert_int_equal(store_endpoint_delete(g_store, "mer_x", "we_x2"), STORE_OK);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_x2'"), 0);
}

/* A state change whose transaction wrote a delivery to an endpoint that is
 * deleted before it commits: the DELETE does not wait for it (no key
 * locks the endpoint row; a store whose statements give up after 3 s of
 * waiting for a lock tells), the delivery it leaves behind is never
 * claimed, and the janitor removes it, whatever the retention, keeping
 * the pending deliveries of live endpoints. */
static void test_delivery_of_endpoint_deleted_meanwhile_never_claimed_and_purged(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM notify_deliveries");
    make_endpoint("we_o1", "mer_o", NULL);
    make_endpoint("we_o2", "mer_o", "[\"payment.succeeded\"]");
    make_payment("pay_o1", "mer_o");
    make_payment("pay_o2", "mer_o");
    PGconn *tx = PQconnectdb(g_conninfo);
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    pgtest_exec(tx, "BEGIN; UPDATE payments SET state = 'pending' WHERE id = 'pay_o1'");
    char conninfo[4200];
    snprintf(conninfo, sizeof conninfo, "%s options='-c lock_timeout=3000'", g_conninfo);
    store *waits_3s = store_open(conninfo, 1);
    assert_non_null(waits_3s);
    assert_int_equal(store_endpoint_delete(waits_3s, "mer_o", "we_o1"), STORE_OK);
    store_close(waits_3s);
    pgtest_exec(tx, "COMMIT");
    PQfinish(tx);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_o1'"), 1);
    check_exec("UPDATE payments SET state = 'succeeded' WHERE id = 'pay_o2'"); /* a live one, for we_o2 */
    pagoflex_arena *a = arena_new();
    store_notify_job *jobs = NULL;
    size_t n = 0;
    assert_int_equal(store_notify_claim(g_store, 100, 10, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].endpoint_id, "we_o2");
    arena_free(a);
    store_janitor_limits lim = {.batch = 10, .max_batches = 10}; /* retention 0: keep every event */
    store_janitor_counts c;
    assert_int_equal(store_janitor_round(g_store, &lim, &c), STORE_OK);
    assert_true(c.ran);
    assert_int_equal(c.notify_orphan_deliveries, 1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_o1'"), 0);
    assert_int_equal(check_count("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_o2'"
                                 " AND status = 'pending'"),
                     1);
    assert_int_equal(check_count("SELECT count(*) FROM notify_events WHERE object_id = 'pay_o1'"), 1);
    assert_int_equal(store_janitor_round(g_store, &lim, &c), STORE_OK);
    assert_int_equal(c.notify_orphan_deliveries, 0);
    check_exec("DELETE FROM notify_deliveries");
}

static void test_master_key_rotation_reseals_endpoint_secrets(void **unused)
{
    (void)unused;
    notify_keys old = {0}, both = {0}, fresh = {0};
    char secret[NOTIFY_SECRET_LEN + 1], back[NOTIFY_SECRET_LEN + 1], err[256];
    unsigned char *sealed = NULL, *sealed_prev = NULL;
    size_t len = 0, len_prev = 0;
    assert_int_equal(secrets_key_generate(&old.current), 0);
    assert_int_equal(secrets_key_generate(&fresh.current), 0);
    both.current = fresh.current;
    both.previous = old.current;
    both.have_previous = true;
    assert_int_equal(notify_secret_new(secret), 0);
    assert_int_equal(notify_secret_seal(&old, "we_k1", secret, &sealed, &len, err, sizeof err), 0);
    assert_int_equal(notify_secret_seal(&old, "we_k1", "whsec_cGFnb2ZsZXgtdGVzdC1rZXktMDEyMzQ1Njc4OWFiY2Q=",
                                        &sealed_prev, &len_prev, err, sizeof err),
                     0);
    pagoflex_arena *a = arena_new();
    store_endpoint e = {.id = "we_k1",
                        .merchant_id = "mer_k",
                        .url = "https://example.com/k",
                        .secret_enc = sealed,
                        .secret_enc_len = len},
                   out;
    assert_int_equal(store_endpoint_insert(g_store, &e, a, &out), STORE_OK);
    assert_int_equal(store_endpoint_rotate(g_store, "mer_k", "we_k1", sealed_prev, len_prev, 3600, a, &out),
                     STORE_OK);
    /* Under the new key alone nothing opens yet; a host with both re-seals. */
    store_endpoint got;
    assert_int_equal(store_endpoint_secrets(g_store, "mer_k", "we_k1", a, &got), STORE_OK);
    assert_int_not_equal(
        notify_secret_open(&fresh, "we_k1", got.secret_enc, got.secret_enc_len, back, err, sizeof err), 0);
    assert_int_equal(notifier_reseal_secrets(g_store, &both), 1);
    assert_int_equal(notifier_reseal_secrets(g_store, &both), 0); /* done once */
    assert_int_equal(store_endpoint_secrets(g_store, "mer_k", "we_k1", a, &got), STORE_OK);
    assert_int_equal(
        notify_secret_open(&fresh, "we_k1", got.secret_enc, got.secret_enc_len, back, err, sizeof err), 0);
    assert_string_equal(back,
                        "whsec_cGFnb2ZsZXgtdGVzdC1rZXktMDEyMzQ1Njc4OWFiY2Q="); /* the rotated-to secret */
    assert_non_null(got.previous_secret_enc);
    assert_int_equal(notify_secret_open(&fresh, "we_k1", got.previous_secret_enc, got.previous_secret_enc_len,
                                        back, err, sizeof err),
                     0);
    assert_string_equal(back, secret);
    free(sealed);
    free(sealed_prev);
    arena_free(a);
}

static int group_setup(void **unused)
{
    (void)unused;
    snprintf(g_db, sizeof g_db, "pf_notify_%d", (int)getpid());
    if (pgtest_open(g_admin, g_db, 4, &g_conninfo, &g_store, &g_check) != 0)
        return -1;
    check_exec("INSERT INTO merchants (id, name) VALUES ('mer_t', 't'), ('mer_bl', 'bl'), ('mer_u', 'u'), ('mer_c', 'c'),"
               " ('mer_d', 'd'), ('mer_m', 'm'), ('mer_n', 'n'), ('mer_j', 'j'), ('mer_k', 'k'),"
               " ('mer_s', 's'), ('mer_v', 'v'), ('mer_l', 'l'), ('mer_x', 'x'), ('mer_o', 'o')");
    return 0;
}

static int group_teardown(void **unused)
{
    (void)unused;
    return pgtest_close(g_admin, g_db, g_conninfo, g_store, g_check);
}

int main(void)
{
    if (!(g_admin = pgtest_admin("test_store_notify")))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_triggers_write_the_outbox_with_the_change),
        cmocka_unit_test(test_one_statement_writes_an_event_per_changed_row),
        cmocka_unit_test(test_transition_tables_read_once_whatever_the_first_plan),
        cmocka_unit_test(test_claims_cap_lease_and_fence),
        cmocka_unit_test(test_claim_reads_a_few_rows_whatever_the_backlog),
        cmocka_unit_test(test_claim_is_planned_once_per_connection),
        cmocka_unit_test(test_notifier_planned_on_an_empty_outbox_keeps_to_its_indexes),
        cmocka_unit_test(test_outcomes_recorded_in_one_statement),
        cmocka_unit_test(test_claim_rooms_give_back_and_local_async_commit),
        cmocka_unit_test(test_claims_and_give_backs_write_no_index_entry),
        cmocka_unit_test(test_endpoints_are_their_merchants),
        cmocka_unit_test(test_janitor_purges_old_finished_events_only),
        cmocka_unit_test(test_endpoint_delete_takes_its_deliveries_only),
        cmocka_unit_test(test_delivery_of_endpoint_deleted_meanwhile_never_claimed_and_purged),
        cmocka_unit_test(test_master_key_rotation_reseals_endpoint_secrets),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
