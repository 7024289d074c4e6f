/* test_store_migrate.c - the migration runner on a real PostgreSQL: versions
 * that must run outside a transaction block (CREATE INDEX CONCURRENTLY),
 * and the invalid index a failed concurrent build leaves behind; upgrades
 * of databases made at older versions.
 *
 * PAGOFLEX_PG holds a conninfo to a server where we may create databases;
 * without it the program exits 77 (skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "arena.h"
#include "store.h"
#include "store_accounts.h"
#include "store_flows.h"
#include "store_migrations.h"
#include "store_notify.h"

static const char *g_admin;
static char g_db[64];
static char g_conninfo[4096];
static PGconn *g_check;

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static bool exec_on(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PQsetNoticeProcessor(c, quiet, NULL);
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

/* The single text value of `sql` on the test database ("" when no row). */
static char *value(const char *sql)
{
    static char out[256];
    PGresult *r = PQexec(g_check, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(out, sizeof out, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

/* A new database <g_db>_<suffix> at the versions of this build below
 * `version`, for an upgrade test: its conninfo, and a store on it. */
static store *older_database(const char *suffix, int version, char *conninfo, size_t len)
{
    char err[512] = "", sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s_%s", g_db, suffix);
    assert_true(exec_on(g_admin, sql));
    snprintf(conninfo, len, "%s dbname=%s_%s", g_admin, g_db, suffix);
    size_t count = 0, before = 0;
    const store_migration *all = store_migrations(&count);
    store_migration *older = calloc(count, sizeof *older);
    assert_non_null(older);
    for (size_t i = 0; i < count; i++)
        if (all[i].version < version)
            older[before++] = all[i];
    store *s = store_open(conninfo, 1);
    assert_non_null(s);
    assert_int_equal(store_migrate_list(s, older, before, err, sizeof err), STORE_OK);
    free(older);
    return s;
}

static void drop_database(const char *suffix)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE %s_%s WITH (FORCE)", g_db, suffix);
    exec_on(g_admin, sql);
}

static void test_concurrent_version_runs_between_the_others(void **state)
{
    (void)state;
    static const store_migration list[] = {
        {901, "a table with rows",
         "CREATE TABLE cc (x int); INSERT INTO cc SELECT generate_series(1, 5000);"},
        {902, "two indexes, built without blocking writes",
         STORE_MIGRATION_NO_TRANSACTION "CREATE INDEX CONCURRENTLY IF NOT EXISTS cc_x ON cc (x);\n"
                                        "CREATE INDEX CONCURRENTLY IF NOT EXISTS cc_x2 ON cc ((x * 2));\n"},
        {903, "after the concurrent one", "ALTER TABLE cc ADD COLUMN y int;"},
    };
    char err[512] = "";
    store *s = store_open(g_conninfo, 1);
    assert_non_null(s);
    assert_int_equal(store_migrate_list(s, list, 3, err, sizeof err), STORE_OK);
    assert_string_equal(value("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"
                              " WHERE version BETWEEN 901 AND 903"),
                        "901,902,903");
    assert_string_equal(value("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                              " WHERE c.relname IN ('cc_x', 'cc_x2') AND i.indisvalid"),
                        "2");
    assert_string_equal(value("SELECT count(*) FROM information_schema.columns WHERE table_name = 'cc'"
                              " AND column_name = 'y'"),
                        "1");
    /* Again: nothing pending, nothing run. */
    assert_int_equal(store_migrate_list(s, list, 3, err, sizeof err), STORE_OK);
    /* The same statements inside a migration transaction are refused by
     * PostgreSQL: that is why the runner takes them out of it. */
    static const store_migration in_tx[] = {
        {904, "concurrently in a transaction", "CREATE INDEX CONCURRENTLY IF NOT EXISTS cc_y ON cc (y);"},
    };
    assert_int_equal(store_migrate_list(s, in_tx, 1, err, sizeof err), STORE_ERROR);
    assert_non_null(strstr(err, "cannot run inside a transaction block"));
    store_close(s);
}

static void test_invalid_index_of_a_failed_build_is_built_again(void **state)
{
    (void)state;
    static const store_migration list[] = {
        {911, "rows with a duplicate", "CREATE TABLE dd (x int); INSERT INTO dd VALUES (1), (2), (2);"},
        {912, "a unique index",
         STORE_MIGRATION_NO_TRANSACTION "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS dd_x ON dd (x);\n"},
    };
    char err[512] = "";
    store *s = store_open(g_conninfo, 1);
    assert_non_null(s);
    /* The build fails on the duplicate and leaves dd_x INVALID; 912 is not recorded. */
    assert_int_equal(store_migrate_list(s, list, 2, err, sizeof err), STORE_ERROR);
    assert_non_null(strstr(err, "migration 912"));
    assert_string_equal(value("SELECT count(*) FROM schema_migrations WHERE version = 912"), "0");
    assert_string_equal(value("SELECT i.indisvalid::text FROM pg_index i JOIN pg_class c"
                              " ON c.oid = i.indexrelid WHERE c.relname = 'dd_x'"),
                        "false");
    /* The operator fixes the data and runs it again: IF NOT EXISTS alone
     * would keep the invalid index; the runner drops and rebuilds it. */
    PQclear(PQexec(g_check, "DELETE FROM dd WHERE ctid = (SELECT max(ctid) FROM dd WHERE x = 2)"));
    assert_int_equal(store_migrate_list(s, list, 2, err, sizeof err), STORE_OK);
    assert_string_equal(value("SELECT i.indisvalid::text FROM pg_index i JOIN pg_class c"
                              " ON c.oid = i.indexrelid WHERE c.relname = 'dd_x'"),
                        "true");
    assert_string_equal(value("SELECT count(*) FROM schema_migrations WHERE version = 912"), "1");
    store_close(s);
}

static void test_status_counts_pending_versions(void **state)
{
    (void)state;
    char err[512] = "";
    int applied = -1, pending = -1;
    store *s = store_open(g_conninfo, 1);
    assert_non_null(s);
    size_t count = 0;
    store_migrations(&count);
    assert_int_equal(store_schema_status(s, &applied, &pending, err, sizeof err), STORE_OK);
    /* The test versions 9xx are applied; none of the build's. */
    assert_int_equal(applied, 912);
    assert_int_equal(pending, (int)count);
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    assert_int_equal(store_schema_status(s, &applied, &pending, err, sizeof err), STORE_OK);
    assert_int_equal(pending, 0);
    store_close(s);
}

/* A database made before migration 11 (connector accounts), with a payment,
 * a refund, an applied and an orphan webhook event, upgraded: every row is
 * account "default" (the one set of credentials there was), mer_default
 * resolves to it, and events are deduplicated per account from then on. */
static void test_upgrade_to_connector_accounts_keeps_every_row(void **state)
{
    (void)state;
    char err[512] = "", conninfo[4200];
    store *s = older_database("acct", 11, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                        " provider_reference_id,"
                        " amount_received) VALUES ('pay_old', 'BANCO_X', 100, 'EUR', 'succeeded',"
                        " 'mer_default', 'bx_old', 100);"
                        "INSERT INTO refunds (id, payment_id, connector, amount, currency, state,"
                        " merchant_id)"
                        " VALUES ('re_old', 'pay_old', 'BANCO_X', 10, 'EUR', 'pending', 'mer_default');"
                        "INSERT INTO webhook_events (connector, event_id, payment_id, state, applied)"
                        " VALUES ('BANCO_X', 'evt_old', 'pay_old', 'succeeded', true);"
                        "INSERT INTO webhook_events (connector, event_id, state, tx_id, applied)"
                        " VALUES ('BANCO_X', 'evt_orphan', 'succeeded', 'bx_later', false)"));
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SELECT (SELECT connector_account FROM payments WHERE id = 'pay_old'),"
                            " (SELECT connector_account FROM refunds WHERE id = 're_old'),"
                            " (SELECT string_agg(DISTINCT connector_account, ',') FROM webhook_events),"
                            " (SELECT count(*) FROM webhook_events)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "default");
    assert_string_equal(PQgetvalue(r, 0, 1), "default");
    assert_string_equal(PQgetvalue(r, 0, 2), "default");
    assert_string_equal(PQgetvalue(r, 0, 3), "2");
    PQclear(r);
    /* The same event id at another account is another event; at the same account a duplicate. */
    r = PQexec(c, "INSERT INTO webhook_events (connector, connector_account, event_id, state, applied)"
                  " VALUES ('BANCO_X', 'acme', 'evt_old', 'succeeded', false)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(c, "INSERT INTO webhook_events (connector, connector_account, event_id, state, applied)"
                  " VALUES ('BANCO_X', 'default', 'evt_old', 'succeeded', false)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
    PQclear(r);
    /* A new row names its account: no default is left to pick one silently. */
    r = PQexec(c, "INSERT INTO payments (id, connector, amount, currency, state, merchant_id)"
                  " VALUES ('pay_new', 'BANCO_X', 100, 'EUR', 'created', 'mer_default')");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23502");
    PQclear(r);
    PQfinish(c);
    pagoflex_arena *arena = arena_new();
    const char *acct = NULL;
    assert_int_equal(store_account_resolve(s, "mer_default", "BANCO_X", arena, &acct), STORE_OK);
    assert_string_equal(acct, "default");
    arena_free(arena);
    store_close(s);
    drop_database("acct");
}

/* The single text value of `sql` on connection c ("" when no row). */
static char *value_on(PGconn *c, const char *sql)
{
    static char out[256];
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    snprintf(out, sizeof out, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

/* Upgrade the older database `conninfo` with `s`, checking that `rows`
 * reads the same before and after (`expected`, or, when NULL, whatever it
 * read before): an upgrade that keeps every row. A connection to it, for
 * the test's own checks after. */
static PGconn *upgrade_keeping(store *s, const char *conninfo, const char *rows, const char *expected)
{
    char err[512] = "", before[256];
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    snprintf(before, sizeof before, "%s", value_on(c, rows));
    if (expected)
        assert_string_equal(before, expected);
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    assert_string_equal(value_on(c, rows), before);
    return c;
}

/* A database at version 16, with the row-level notification triggers of
 * version 12, an endpoint and open payments and refunds, upgraded: the
 * triggers are per statement (pg_trigger.tgtype bit 0 clear), the old
 * functions are gone, and a change of state writes one event and its
 * delivery, not two. */
static void test_upgrade_to_statement_triggers_notifies_once(void **state)
{
    (void)state;
    char err[512] = "", conninfo[4200];
    store *s = older_database("stmt", 17, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO webhook_endpoints (id, merchant_id, url, secret_enc)"
                        " VALUES ('we_old', 'mer_default', 'https://example.com/hook', 'sealed');"
                        "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                        " connector_account) VALUES ('pay_old', 'BANCO_X', 100, 'EUR', 'created',"
                        " 'mer_default', 'default');"
                        "UPDATE payments SET state = 'succeeded' WHERE id = 'pay_old';"
                        "INSERT INTO refunds (id, payment_id, connector, amount, currency, state,"
                        " merchant_id, connector_account)"
                        " VALUES ('re_old', 'pay_old', 'BANCO_X', 10, 'EUR', 'pending', 'mer_default',"
                        " 'default')"));
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_string_equal(value_on(c, "SELECT count(*) FROM notify_events"), "1"); /* by the old trigger */
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    assert_string_equal(value_on(c, "SELECT string_agg(tgname || ' ' || (tgtype & 1)::text, ',' ORDER BY tgname)"
                                    " FROM pg_trigger WHERE tgname LIKE 'notify_%'"),
                        "notify_payment 0,notify_refund 0");
    assert_string_equal(value_on(c, "SELECT count(*) FROM pg_proc WHERE proname IN"
                                    " ('notify_emit', 'notify_payment_changed', 'notify_refund_changed')"),
                        "0");
    PGresult *r = PQexec(c, "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                            " connector_account) VALUES ('pay_new', 'BANCO_X', 100, 'EUR', 'created',"
                            " 'mer_default', 'default');"
                            "UPDATE payments SET state = 'pending' WHERE id = 'pay_new';"
                            "UPDATE refunds SET state = 'succeeded' WHERE id = 're_old'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_string_equal(value_on(c, "SELECT string_agg(object_id || ' ' || type, ',' ORDER BY object_id)"
                                    " FROM notify_events"),
                        "pay_new payment.pending,pay_old payment.succeeded,re_old refund.succeeded");
    assert_string_equal(value_on(c, "SELECT count(*) FROM notify_deliveries WHERE endpoint_id = 'we_old'"), "3");
    PQfinish(c);
    store_close(s);
    drop_database("stmt");
}

/* The SQLSTATE of `sql` run on c inside a transaction that is rolled back
 * ("" when it succeeded). */
static char *sqlstate_of(PGconn *c, const char *sql)
{
    static char out[8];
    PQclear(PQexec(c, "BEGIN"));
    PGresult *r = PQexec(c, sql);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(out, sizeof out, "%s", st ? st : "");
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    return out;
}

/* Each value of a state, source or kind column is checked, by a domain: a
 * CHECK with an IN list on a table is parsed and planned again for every
 * statement that writes the table; a domain's check once per connection. */
static void test_state_lists_are_domains_and_still_refuse_what_is_not_in_them(void **state)
{
    (void)state;
    assert_string_equal(value("SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid::regclass::text"
                              " IN ('payments', 'payment_history', 'refunds', 'refund_history', 'webhook_events',"
                              " 'notify_deliveries')"
                              " AND conbin::text LIKE '%SCALARARRAYOPEXPR%'"),
                        "0");
    assert_true(exec_on(g_conninfo, "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                                    " connector_account) VALUES ('pay_dom', 'BANCO_X', 100, 'EUR', 'pending',"
                                    " 'mer_default', 'default');"
                                    "INSERT INTO refunds (id, payment_id, connector, amount, currency, state,"
                                    " merchant_id, connector_account) VALUES ('re_dom', 'pay_dom', 'BANCO_X', 10,"
                                    " 'EUR', 'pending', 'mer_default', 'default');"
                                    "INSERT INTO notify_deliveries (id, event_id, endpoint_id)"
                                    " VALUES ('dlv_dom', 'evt_dom', 'we_dom')"));
    static const struct {
        const char *ok, *bad;
    } cases[] = {
        {"UPDATE payments SET state = 'succeeded' WHERE id = 'pay_dom'",
         "UPDATE payments SET state = 'settled' WHERE id = 'pay_dom'"},
        {"UPDATE payments SET pending_operation = 'void' WHERE id = 'pay_dom'",
         "UPDATE payments SET pending_operation = 'refund' WHERE id = 'pay_dom'"},
        {"UPDATE payments SET capture_method = 'manual' WHERE id = 'pay_dom'",
         "UPDATE payments SET capture_method = 'later' WHERE id = 'pay_dom'"},
        {"INSERT INTO payment_history (payment_id, from_state, to_state, source)"
         " VALUES ('pay_dom', NULL, 'requires_capture', 'operator')",
         "INSERT INTO payment_history (payment_id, from_state, to_state, source)"
         " VALUES ('pay_dom', NULL, 'done', 'api')"},
        {"INSERT INTO payment_history (payment_id, from_state, to_state, source)"
         " VALUES ('pay_dom', 'pending', 'failed', 'webhook')",
         "INSERT INTO payment_history (payment_id, from_state, to_state, source)"
         " VALUES ('pay_dom', 'pending', 'failed', 'cron')"},
        {"UPDATE refunds SET state = 'failed' WHERE id = 're_dom'",
         "UPDATE refunds SET state = 'requires_capture' WHERE id = 're_dom'"},
        {"INSERT INTO refund_history (refund_id, from_state, to_state, source)"
         " VALUES ('re_dom', 'pending', 'succeeded', 'sync')",
         "INSERT INTO refund_history (refund_id, from_state, to_state, source)"
         " VALUES ('re_dom', 'pending', 'succeeded', 'operator')"},
        {"INSERT INTO webhook_events (connector, connector_account, event_id, tx_id, state, kind, applied)"
         " VALUES ('BANCO_X', 'default', 'ev_dom', 'tx_dom', 'succeeded', 'refund', false)",
         "INSERT INTO webhook_events (connector, connector_account, event_id, tx_id, state, kind, applied)"
         " VALUES ('BANCO_X', 'default', 'ev_dom', 'tx_dom', 'succeeded', 'chargeback', false)"},
        {"INSERT INTO notify_deliveries (id, event_id, endpoint_id, status) VALUES ('dlv_dom1', 'evt_dom',"
         " 'we_dom', 'failed')",
         "INSERT INTO notify_deliveries (id, event_id, endpoint_id, status) VALUES ('dlv_dom2', 'evt_dom',"
         " 'we_dom', 'lost')"},
        {"UPDATE notify_deliveries SET status = 'succeeded' WHERE id = 'dlv_dom'",
         "UPDATE notify_deliveries SET status = 'delivered' WHERE id = 'dlv_dom'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_string_equal(sqlstate_of(g_check, cases[i].ok), "");
        assert_string_equal(sqlstate_of(g_check, cases[i].bad), "23514"); /* check_violation */
    }
}

/* A database at version 18 with a row of every kind, upgraded: the values
 * stay, and the columns that now have a domain type refuse a bad one. */
static void test_upgrade_to_state_domains_keeps_every_value(void **state)
{
    (void)state;
    char err[512] = "", conninfo[4200];
    store *s = older_database("dom", 22, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                        " connector_account, capture_method, pending_operation) VALUES ('pay_old', 'BANCO_X',"
                        " 100, 'EUR', 'requires_capture', 'mer_default', 'default', 'manual', 'capture');"
                        "INSERT INTO payment_history (payment_id, from_state, to_state, source)"
                        " VALUES ('pay_old', 'processing', 'requires_capture', 'bank_reply');"
                        "INSERT INTO refunds (id, payment_id, connector, amount, currency, state,"
                        " merchant_id, connector_account)"
                        " VALUES ('re_old', 'pay_old', 'BANCO_X', 10, 'EUR', 'requires_review', 'mer_default',"
                        " 'default');"
                        "INSERT INTO refund_history (refund_id, from_state, to_state, source)"
                        " VALUES ('re_old', 'pending', 'requires_review', 'reconciler');"
                        "INSERT INTO webhook_events (connector, connector_account, event_id, tx_id, state, kind, applied)"
                        " VALUES ('BANCO_X', 'default', 'ev_old', 'tx_old', 'failed', 'ignored', false)"));
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_string_equal(value_on(c, "SELECT concat_ws(' ', p.state, p.capture_method, p.pending_operation,"
                                    " h.from_state, h.to_state, h.source, r.state, rh.to_state, rh.source,"
                                    " w.state, w.kind) FROM payments p, payment_history h, refunds r,"
                                    " refund_history rh, webhook_events w"),
                        "requires_capture manual capture processing requires_capture bank_reply"
                        " requires_review requires_review reconciler failed ignored");
    assert_string_equal(value_on(c, "SELECT string_agg(table_name || '.' || column_name || ' ' || domain_name,"
                                    " ',' ORDER BY table_name, column_name) FROM information_schema.columns"
                                    " WHERE table_name = 'payment_history' AND domain_name IS NOT NULL"),
                        "payment_history.from_state payment_state,payment_history.source payment_history_source,"
                        "payment_history.to_state payment_state");
    assert_string_equal(sqlstate_of(c, "UPDATE payment_history SET source = 'cron'"), "23514");
    assert_string_equal(sqlstate_of(c, "UPDATE payments SET state = 'settled'"), "23514");
    PQfinish(c);
    store_close(s);
    drop_database("dom");
}

/* A database at the versions before 23, with a payment, its refund, the
 * refund's history and webhook event, and a delivery, upgraded: every row
 * is as it was, the tables a refund writes have no foreign key left (no
 * hot-path table has one), a refund is still made and moved by the store's
 * statements, and a delivery's status is still only one of the three. */
static void test_upgrade_to_23_keeps_refunds_without_their_keys(void **state)
{
    (void)state;
    char err[512] = "", conninfo[4200];
    store *s = older_database("v23", 23, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                        " connector_account, amount_received) VALUES ('pay_k', 'BANCO_X', 100, 'EUR', 'succeeded',"
                        " 'mer_default', 'default', 100);"
                        "INSERT INTO refunds (id, payment_id, connector, amount, currency, state,"
                        " merchant_id, connector_account)"
                        " VALUES ('re_k', 'pay_k', 'BANCO_X', 10, 'EUR', 'pending', 'mer_default', 'default');"
                        "INSERT INTO refund_history (refund_id, from_state, to_state, source)"
                        " VALUES ('re_k', 'created', 'pending', 'bank_reply');"
                        "INSERT INTO webhook_events (connector, connector_account, event_id, refund_id, kind,"
                        " applied) VALUES ('BANCO_X', 'default', 'ev_k', 're_k', 'refund', true);"
                        "INSERT INTO notify_deliveries (id, event_id, endpoint_id, status)"
                        " VALUES ('dlv_k', 'evt_k', 'we_k', 'succeeded')"));
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    static const char rows[] = "SELECT concat_ws(' ', r.payment_id, r.state, h.to_state, w.refund_id, d.status)"
                               " FROM refunds r, refund_history h, webhook_events w, notify_deliveries d";
    assert_string_equal(value_on(c, rows), "pay_k pending pending re_k succeeded");
    assert_string_equal(value_on(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                                    " AND conrelid = 'refund_history'::regclass"),
                        "1");
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    assert_string_equal(value_on(c, rows), "pay_k pending pending re_k succeeded");
    assert_string_equal(value_on(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN"
                                    " ('payments'::regclass, 'payment_history'::regclass, 'refunds'::regclass,"
                                    " 'refund_history'::regclass, 'webhook_events'::regclass,"
                                    " 'notify_events'::regclass, 'notify_deliveries'::regclass)"),
                        "0");
    pagoflex_arena *a = arena_new();
    store_payment pay;
    store_refund made, moved;
    assert_int_equal(store_refund_create(s, "mer_default", "re_k2", "pay_k", 20, NULL, NULL, a, &made, &pay),
                     STORE_OK);
    assert_int_equal(store_refund_transition(s, "re_k2", PAGOFLEX_STATE_SUCCEEDED, STORE_SOURCE_BANK_REPLY, NULL,
                                             NULL, NULL, NULL, a, &moved),
                     STORE_OK);
    assert_string_equal(value_on(c, "SELECT string_agg(coalesce(from_state, '-') || '>' || to_state, ','"
                                    " ORDER BY id) FROM refund_history WHERE refund_id = 're_k2'"),
                        "->created,created>succeeded");
    assert_string_equal(sqlstate_of(c, "UPDATE notify_deliveries SET status = 'lost'"), "23514");
    arena_free(a);
    PQfinish(c);
    store_close(s);
    drop_database("v23");
}

/* A database at the versions before 24, with a delivery claimed the old way
 * (its lease in next_attempt_at, an hour from now) and one due, upgraded:
 * both rows are as they were, the lease has its column and the table's new
 * pages are half free; a claim by the new build takes the due one, leases
 * it in the new column with its due time kept, and leaves the one an old
 * host holds alone until that hour has passed. */
static void test_upgrade_to_24_keeps_old_leases(void **state)
{
    (void)state;
    char conninfo[4200];
    store *s = older_database("v24", 24, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO webhook_endpoints (id, merchant_id, url, secret_enc)"
                        " VALUES ('we_l', 'mer_default', 'https://example.com/hook', 'sealed');"
                        "INSERT INTO notify_events (id, merchant_id, type, object_id, payload) VALUES"
                        " ('evt_l1', 'mer_default', 'payment.pending', 'pay_l1', '{}'),"
                        " ('evt_l2', 'mer_default', 'payment.pending', 'pay_l2', '{}');"
                        "INSERT INTO notify_deliveries (id, event_id, endpoint_id, attempts, claim_token,"
                        " next_attempt_at) VALUES"
                        " ('dlv_l1', 'evt_l1', 'we_l', 1, 7, now() + interval '1 hour'),"
                        " ('dlv_l2', 'evt_l2', 'we_l', 0, NULL, '2026-01-02 03:04:05+00')"));
    PGconn *c = upgrade_keeping(s, conninfo,
                                "SELECT string_agg(concat_ws(' ', id, status, attempts, claim_token), ','"
                                " ORDER BY id) FROM notify_deliveries",
                                "dlv_l1 pending 1 7,dlv_l2 pending 0");
    assert_string_equal(value_on(c, "SELECT reloptions::text FROM pg_class WHERE relname = 'notify_deliveries'"),
                        "{fillfactor=50}");
    pagoflex_arena *a = arena_new();
    store_notify_job *jobs = NULL;
    size_t n = 0;
    assert_int_equal(store_notify_claim(s, 10, 10, NULL, NULL, 0, 60000, a, &jobs, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].delivery_id, "dlv_l2");
    assert_string_equal(value_on(c, "SELECT concat_ws(' ', attempts, next_attempt_at = '2026-01-02 03:04:05+00',"
                                    " leased_until > now() + interval '50 seconds') FROM notify_deliveries"
                                    " WHERE id = 'dlv_l2'"),
                        "1 t t");
    assert_string_equal(value_on(c, "SELECT concat_ws(' ', attempts, claim_token, leased_until IS NULL)"
                                    " FROM notify_deliveries WHERE id = 'dlv_l1'"),
                        "1 7 t");
    arena_free(a);
    PQfinish(c);
    store_close(s);
    drop_database("v24");
}

/* A database at the versions before 20, with open payments scheduled and
 * not, one waiting for its customer with a redirect URL and a settled one,
 * upgraded: every row is as it was; payments_due is gone and
 * payments_scheduled_due (valid, built concurrently) holds the scheduled
 * open payments only and answers the claim's "due" look-up; the amounts
 * trigger has its WHEN clause and still sets the amounts and clears the
 * redirect URL when the state moves. Migrating again changes nothing. */
static void test_upgrade_to_scheduled_due_index_keeps_every_row(void **state)
{
    (void)state;
    char err[512] = "", sql[256], conninfo[4200];
    store *s = older_database("due", 20, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                        " connector_account, provider_reference_id, next_attempt_at, redirect_url,"
                        " amount_received) VALUES"
                        " ('pay_u_new', 'BANCO_X', 100, 'EUR', 'created', 'mer_default', 'default', NULL,"
                        "  NULL, NULL, 0),"
                        " ('pay_u_due', 'BANCO_X', 100, 'EUR', 'pending', 'mer_default', 'default', 'bx_u1',"
                        "  now() - interval '1 minute', NULL, 0),"
                        " ('pay_u_later', 'BANCO_X', 100, 'EUR', 'processing', 'mer_default', 'default',"
                        "  NULL, now() + interval '1 hour', NULL, 0),"
                        " ('pay_u_act', 'BANCO_X', 100, 'EUR', 'requires_action', 'mer_default', 'default',"
                        "  'bx_u2', NULL, 'https://bank.example/3ds', 0),"
                        " ('pay_u_done', 'BANCO_X', 100, 'EUR', 'succeeded', 'mer_default', 'default',"
                        "  'bx_u3', now() - interval '1 day', NULL, 100)"));
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    static const char rows[] = "SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM payments p";
    char was[64];
    snprintf(was, sizeof was, "%s", value_on(c, rows));
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    assert_string_equal(value_on(c, rows), was);
    assert_string_equal(value_on(c, "SELECT count(*) FROM pg_class WHERE relname = 'payments_due'"), "0");
    assert_string_equal(value_on(c,
                                 "SELECT i.indisvalid::text || ' ' || pg_get_expr(i.indpred, i.indrelid)"
                                 " FROM pg_index i WHERE i.indexrelid = 'payments_scheduled_due'::regclass"),
                        "true ((next_attempt_at IS NOT NULL) AND (state = ANY (ARRAY['created'::text,"
                        " 'processing'::text, 'pending'::text])))");
    /* The claim's look-up of scheduled payments that are due reads it. */
    PGresult *r = PQexec(c, "SET enable_seqscan = off; SET enable_bitmapscan = off");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    static const char due[] =
        "SELECT string_agg(id, ',' ORDER BY id) FROM payments"
        " WHERE state IN ('created', 'processing', 'pending') AND next_attempt_at <= now()";
    snprintf(sql, sizeof sql, "EXPLAIN (COSTS OFF) %s", due);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    bool by_index = false;
    for (int i = 0; i < PQntuples(r); i++)
        by_index |= strstr(PQgetvalue(r, i, 0), "payments_scheduled_due") != NULL;
    PQclear(r);
    assert_true(by_index);
    assert_string_equal(value_on(c, due), "pay_u_due");
    /* The build counted its entries: pay_u_due and pay_u_later, not pay_u_new. */
    assert_string_equal(
        value_on(c, "SELECT reltuples FROM pg_class WHERE relname = 'payments_scheduled_due'"), "2");
    assert_string_equal(value_on(c, "SELECT pg_get_triggerdef(oid) LIKE '%WHEN%' FROM pg_trigger"
                                    " WHERE tgname = 'payments_amounts'"),
                        "t");
    r = PQexec(c, "UPDATE payments SET state = 'succeeded' WHERE id = 'pay_u_due';"
                  "UPDATE payments SET state = 'pending' WHERE id = 'pay_u_act'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_string_equal(value_on(c, "SELECT amount_received || ' ' || (redirect_url IS NULL)::text"
                                    " FROM payments WHERE id = 'pay_u_due'"),
                        "100 true");
    assert_string_equal(value_on(c, "SELECT amount_received || ' ' || (redirect_url IS NULL)::text"
                                    " FROM payments WHERE id = 'pay_u_act'"),
                        "0 true");
    snprintf(was, sizeof was, "%s", value_on(c, rows));
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_OK);
    assert_string_equal(value_on(c, rows), was);
    PQfinish(c);
    store_close(s);
    drop_database("due");
}

/* A database at version 18, with an endpoint, payments and their events
 * and deliveries, upgraded to 19: every row is kept, notify_deliveries
 * has no foreign key left and notify_events no index by object, the
 * indexes the queries use are there and valid, a state change still
 * writes its event and delivery, and deleting the endpoint deletes its
 * deliveries (what the cascade did). */
static void test_upgrade_to_19_keeps_the_outbox_without_its_keys(void **state)
{
    (void)state;
    char conninfo[4200];
    store *s = older_database("v19", 19, conninfo, sizeof conninfo);
    assert_true(exec_on(conninfo,
                        "INSERT INTO webhook_endpoints (id, merchant_id, url, secret_enc)"
                        " VALUES ('we_a', 'mer_default', 'https://example.com/a', 'sealed'),"
                        " ('we_b', 'mer_default', 'https://example.com/b', 'sealed');"
                        "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                        " connector_account) SELECT 'pay_' || g, 'BANCO_X', 100, 'EUR', 'created',"
                        " 'mer_default', 'default' FROM generate_series(1, 3) g;"
                        "UPDATE payments SET state = 'pending';"
                        "UPDATE notify_deliveries SET status = 'succeeded', attempts = 1"
                        " WHERE endpoint_id = 'we_b'"));
    static const char rows[] =
        "SELECT (SELECT count(*) FROM notify_events) || ' ' || (SELECT string_agg(g, ',' ORDER BY g) FROM"
        " (SELECT endpoint_id || ':' || status || ':' || attempts || ':' || count(*) AS g"
        " FROM notify_deliveries GROUP BY endpoint_id, status, attempts) x)"
        " || ' ' || (SELECT count(*) FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_id)";
    PGconn *c = upgrade_keeping(s, conninfo, rows, "3 we_a:pending:0:3,we_b:succeeded:1:3 6");
    assert_string_equal(value_on(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                                    " AND conrelid = 'notify_deliveries'::regclass"),
                        "0");
    assert_string_equal(value_on(c, "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_index i"
                                    " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisvalid"
                                    " AND i.indrelid IN ('notify_deliveries'::regclass,"
                                    " 'notify_events'::regclass)"),
                        "notify_deliveries_endpoint,notify_deliveries_endpoint_due,notify_deliveries_event,"
                        "notify_deliveries_pkey,notify_events_created,notify_events_pkey");
    PGresult *r = PQexec(c, "UPDATE payments SET state = 'succeeded' WHERE id = 'pay_1'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_string_equal(value_on(c, "SELECT count(*) FROM notify_events e JOIN notify_deliveries d"
                                    " ON d.event_id = e.id WHERE e.object_id = 'pay_1'"
                                    " AND e.type = 'payment.succeeded'"),
                        "2");
    assert_int_equal(store_endpoint_delete(s, "mer_default", "we_a"), STORE_OK);
    assert_string_equal(value_on(c, "SELECT string_agg(DISTINCT endpoint_id, ',') || ' ' || count(*)"
                                    " FROM notify_deliveries"),
                        "we_b 4");
    PQfinish(c);
    store_close(s);
    drop_database("v19");
}

int main(void)
{
    g_admin = getenv("PAGOFLEX_PG");
    if (!g_admin || !*g_admin) {
        fprintf(stderr, "test_store_migrate: PAGOFLEX_PG is not set; skipped\n");
        return 77;
    }
    char sql[256];
    snprintf(g_db, sizeof g_db, "pf_migrate_%d", (int)getpid());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_db);
    if (!exec_on(g_admin, sql))
        return 1;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", g_db);
    if (!exec_on(g_admin, sql))
        return 1;
    /* A later keyword wins in a conninfo string. */
    snprintf(g_conninfo, sizeof g_conninfo, "%s dbname=%s", g_admin, g_db);
    g_check = PQconnectdb(g_conninfo);
    if (PQstatus(g_check) != CONNECTION_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_version_runs_between_the_others),
        cmocka_unit_test(test_invalid_index_of_a_failed_build_is_built_again),
        cmocka_unit_test(test_status_counts_pending_versions),
        cmocka_unit_test(test_upgrade_to_connector_accounts_keeps_every_row),
        cmocka_unit_test(test_upgrade_to_statement_triggers_notifies_once),
        cmocka_unit_test(test_state_lists_are_domains_and_still_refuse_what_is_not_in_them),
        cmocka_unit_test(test_upgrade_to_state_domains_keeps_every_value),
        cmocka_unit_test(test_upgrade_to_scheduled_due_index_keeps_every_row),
        cmocka_unit_test(test_upgrade_to_19_keeps_the_outbox_without_its_keys),
        cmocka_unit_test(test_upgrade_to_23_keeps_refunds_without_their_keys),
        cmocka_unit_test(test_upgrade_to_24_keeps_old_leases),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    PQfinish(g_check);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_db);
    exec_on(g_admin, sql);
    return rc;
}
