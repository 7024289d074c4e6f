/* test_store_migrate.c - the migration runner on a real PostgreSQL: versions
 * that must run outside a transaction block (CREATE INDEX CONCURRENTLY),
 * and the invalid index a failed concurrent build leaves behind.
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

#include "store.h"
#include "store_migrations.h"

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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    PQfinish(g_check);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_db);
    exec_on(g_admin, sql);
    return rc;
}
