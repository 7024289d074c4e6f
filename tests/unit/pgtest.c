/* pgtest.c - conninfo and admin helpers for the unit tests that need PostgreSQL. */
#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Append key='value' (quoted as libpq wants) to buf. */
static void pgtest_conninfo_add(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, len - n, "%s%s='", n ? " " : "", key);
    for (const char *p = val; *p && n + 3 < len; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    snprintf(buf + n, len - n, "'");
}

char *pgtest_conninfo_with_db(const char *base, const char *db)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &err);
    if (!opts) {
        fprintf(stderr, "PAGOFLEX_PG is not a valid conninfo: %s", err ? err : "?\n");
        PQfreemem(err);
        return NULL;
    }
    char *buf = calloc(1, 4096);
    for (PQconninfoOption *o = opts; buf && o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
            pgtest_conninfo_add(buf, 4096, o->keyword, o->val);
    if (buf)
        pgtest_conninfo_add(buf, 4096, "dbname", db);
    PQconninfoFree(opts);
    return buf;
}

static void pgtest_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

bool pgtest_admin_exec(const char *admin, const char *sql)
{
    PGconn *c = PQconnectdb(admin);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PQsetNoticeProcessor(c, pgtest_quiet, NULL);
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "cannot connect to PAGOFLEX_PG: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok;
}

const char *pgtest_admin(const char *test)
{
    const char *admin = getenv("PAGOFLEX_PG");
    if (admin && *admin)
        return admin;
    fprintf(stderr,
            "%s: PAGOFLEX_PG is not set (a conninfo to a PostgreSQL where databases may be "
            "created); skipped\n",
            test);
    return NULL;
}

char *pgtest_create_db(const char *admin, const char *db)
{
    char sql[256];
    if (!pgtest_drop_db(admin, db))
        return NULL;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    if (!pgtest_admin_exec(admin, sql))
        return NULL;
    return pgtest_conninfo_with_db(admin, db);
}

bool pgtest_drop_db(const char *admin, const char *db)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    return pgtest_admin_exec(admin, sql);
}

/* A store of `pool` connections on `conninfo`, migrated; NULL, with the
 * reason on stderr, on failure. */
static store *pgtest_store(const char *conninfo, int pool)
{
    char err[256] = "";
    store *s = store_open(conninfo, pool);
    if (!s || store_migrate(s, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "migration failed: %s\n", err);
        store_close(s);
        return NULL;
    }
    return s;
}

/* A direct connection to `conninfo`, notices dropped; NULL, with the
 * reason on stderr, on failure. */
static PGconn *pgtest_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to the test database: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pgtest_quiet, NULL);
    return c;
}

int pgtest_open(const char *admin, const char *db, int pool, char **conninfo, store **st, PGconn **check)
{
    if (!(*conninfo = pgtest_create_db(admin, db)))
        return -1;
    if (!(*st = pgtest_store(*conninfo, pool)))
        return -1;
    if (!(*check = pgtest_connect(*conninfo)))
        return -1;
    return 0;
}

int pgtest_close(const char *admin, const char *db, char *conninfo, store *st, PGconn *check)
{
    store_close(st);
    PQfinish(check);
    bool ok = pgtest_drop_db(admin, db);
    free(conninfo);
    return ok ? 0 : -1;
}

void pgtest_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

long pgtest_long(PGconn *c, const char *sql, const char *param)
{
    const char *const params[] = {param};
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    long n = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = atol(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return n;
}

void pgtest_table_scans(PGconn *c, const char *table, long *seq, long *idx)
{
    /* This session's own counts first: a session reports them when it goes
     * idle, but at most once a second, else up to 10 s later, so a scan it
     * made just before (a test's DELETE of the table) could arrive after
     * this reading and be counted as the measured session's. Forced, they
     * are reported before this statement's answer. */
    pgtest_exec(c, "SELECT pg_stat_force_next_flush()");
    pgtest_exec(c, "SELECT pg_stat_clear_snapshot()");
    *seq = pgtest_long(c, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = $1", table);
    *idx = pgtest_long(c, "SELECT idx_scan FROM pg_stat_user_tables WHERE relname = $1", table);
    if (*seq < 0 || *idx < 0)
        fail_msg("no scan counts for table %s", table);
}

void pgtest_table_scans_after(PGconn *c, const char *table, long idx_before, long *seq, long *idx)
{
    pgtest_table_scans(c, table, seq, idx);
    for (int waited = 0; *idx <= idx_before && waited < 100; waited++) {
        usleep(100 * 1000);
        pgtest_table_scans(c, table, seq, idx);
    }
    if (*idx <= idx_before)
        fail_msg("the index scans of %s did not arrive in the statistics within 10 s", table);
}
