/* store_migrate.c - applying the schema versions of store_migrations.c.
 *
 * Ordinary versions run inside one transaction under a session-level
 * advisory lock, so two hosts starting at once apply each version once. A
 * version whose statements cannot run in a transaction block (CREATE INDEX
 * CONCURRENTLY: the build does not block writes to a large table) runs
 * after the versions before it have committed, statement by statement,
 * under the same lock, and is recorded once the last statement succeeded.
 * The lock is tried, never waited for in a statement (migrate_lock).
 * Reading what is applied needs no DDL right.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "log.h"
#include "metrics.h"
#include "store_internal.h"
#include "store_migrations.h"

/* Key of the advisory lock that serialises migrations: "pagoflx" in ASCII. */
#define STORE_MIGRATE_LOCK "31632294270102648"

static const char sql_migrations_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())";

/* No version: what an absent schema_migrations table reads as. */
static const char sql_versions[] = "SELECT 0 WHERE false";
static const char sql_versions_safe[] =
    "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 'absent' ELSE 'present' END";

/* Record in err the reason a migration step failed. */
static void migrate_error(char *err, size_t errlen, const char *step, const store_call *c)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", step, c->error[0] ? c->error : "PostgreSQL unreachable");
}

/* Warn when the database has versions this build does not know: a newer
 * build migrated it; this one runs, but may miss columns it never heard of. */
static void migrate_check_newer(const PGresult *done, const store_migration *m, size_t count)
{
    int known = count ? m[count - 1].version : 0;
    for (int i = 0; i < PQntuples(done); i++) {
        int v = atoi(PQgetvalue(done, i, 0));
        if (v > known) {
            log_warn("store: database schema version %d is newer than this build's %d; "
                     "upgrade pagoflex on this host",
                     v, known);
            return;
        }
    }
}

static bool migration_recorded(const PGresult *r, int version)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (atoi(PQgetvalue(r, i, 0)) == version)
            return true;
    return false;
}

/* Read the recorded versions into *out (the caller PQclears it). The
 * table may not exist: that reads as no version. */
static store_result migrate_read(store_call *c, PGresult **out)
{
    PGresult *r = NULL;
    store_result rc =
        store_call_exec(c, "migrate: schema_migrations present?", sql_versions_safe, 0, NULL, false, &r);
    bool present = rc == STORE_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "present") == 0;
    PQclear(r);
    r = NULL;
    if (rc != STORE_OK)
        return rc;
    rc =
        store_call_exec(c, "migrate: read versions",
                        present ? "SELECT version FROM schema_migrations" : sql_versions, 0, NULL, false, &r);
    if (rc != STORE_OK) {
        PQclear(r);
        return rc;
    }
    *out = r;
    return STORE_OK;
}

static store_result migrate_record(store_call *c, const char *step, int version)
{
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *const params[] = {v};
    PGresult *r = NULL;
    store_result rc = store_call_exec(c, step, "INSERT INTO schema_migrations (version) VALUES ($1::int)", 1,
                                      params, false, &r);
    PQclear(r);
    return rc;
}

static bool migrate_is_concurrent(const store_migration *m)
{
    return strncmp(m->sql, STORE_MIGRATION_NO_TRANSACTION, strlen(STORE_MIGRATION_NO_TRANSACTION)) == 0;
}

/* Apply, inside the caller's transaction, the ordinary migrations of
 * list[0..count) not recorded in `done`, in order, stopping before the
 * first pending concurrent one (*stop: its index, or count). Returns how
 * many ran, or -1 (err written). */
static int migrate_apply(store_call *c, const store_migration *list, size_t count, const PGresult *done,
                         size_t *stop, char *err, size_t errlen, store_result *rc)
{
    int applied = 0;
    *stop = count;
    for (size_t i = 0; i < count; i++) {
        if (migration_recorded(done, list[i].version))
            continue;
        if (migrate_is_concurrent(&list[i])) {
            *stop = i;
            break;
        }
        char step[160];
        snprintf(step, sizeof step, "migration %d (%s)", list[i].version, list[i].name);
        PGresult *r = NULL;
        *rc = store_call_exec(c, step, list[i].sql, 0, NULL, false, &r);
        PQclear(r);
        if (*rc == STORE_OK)
            *rc = migrate_record(c, step, list[i].version);
        if (*rc != STORE_OK) {
            migrate_error(err, errlen, step, c);
            return -1;
        }
        log_info("store: applied %s", step);
        applied++;
    }
    return applied;
}

/* "CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name> ..." -> <name>
 * in out (empty when the statement is not one). */
static void migrate_index_name(const char *sql, char *out, size_t cap)
{
    static const char *const heads[] = {"CREATE INDEX CONCURRENTLY IF NOT EXISTS ",
                                        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "};
    out[0] = '\0';
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        if (strncmp(sql, heads[i], strlen(heads[i])) != 0)
            continue;
        const char *p = sql + strlen(heads[i]);
        size_t n = strcspn(p, " \n(");
        if (n > 0 && n < cap) {
            memcpy(out, p, n);
            out[n] = '\0';
        }
        return;
    }
}

/* Run one statement of a concurrent migration; an index it creates that a
 * failed build left invalid is dropped first. 0, or -1 with err written. */
static int migrate_statement(store_call *c, const char *step, const char *sql, char *err, size_t errlen,
                             store_result *rc)
{
    PGresult *r = NULL;
    char index[64];
    migrate_index_name(sql, index, sizeof index);
    if (index[0]) {
        /* A build that failed (or was cut) leaves an INVALID index of that
         * name, which IF NOT EXISTS would take as done. */
        const char *const params[] = {index};
        *rc = store_call_exec(c, step,
                              "SELECT format('DROP INDEX CONCURRENTLY IF EXISTS %I', c.relname)"
                              " FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
                              " WHERE c.relname = $1::text AND NOT i.indisvalid"
                              " AND pg_table_is_visible(c.oid)",
                              1, params, false, &r);
        char *drop = *rc == STORE_OK && PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
        PQclear(r);
        r = NULL;
        if (*rc == STORE_OK && drop) {
            log_warn("store: %s: dropping the invalid index %s a failed build left", step, index);
            *rc = store_call_exec(c, step, drop, 0, NULL, false, &r);
            PQclear(r);
            r = NULL;
        }
        free(drop);
        if (*rc != STORE_OK) {
            migrate_error(err, errlen, step, c);
            return -1;
        }
    }
    *rc = store_call_exec(c, step, sql, 0, NULL, false, &r);
    PQclear(r);
    if (*rc != STORE_OK) {
        migrate_error(err, errlen, step, c);
        return -1;
    }
    return 0;
}

/* Take the migration lock: `fn` is pg_try_advisory_xact_lock (in the
 * caller's transaction) or pg_try_advisory_lock (the session's). Tried
 * every 20 ms rather than waited for in one statement: a statement blocked
 * on the lock holds a snapshot, and CREATE INDEX CONCURRENTLY, which the
 * lock holder may be running, waits for every snapshot older than its own;
 * the two would wait for each other (PostgreSQL reports a deadlock). Between
 * two tries this backend holds none. STORE_OK once held. */
static store_result migrate_lock(store_call *c, const char *fn)
{
    const char *const lock[] = {STORE_MIGRATE_LOCK};
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT %s($1::bigint)", fn);
    struct timespec tick = {.tv_nsec = 20 * 1000 * 1000};
    for (;;) {
        PGresult *r = NULL;
        store_result rc = store_call_exec(c, "migrate: lock", sql, 1, lock, false, &r);
        bool held = rc == STORE_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (rc != STORE_OK || held)
            return rc;
        nanosleep(&tick, NULL);
    }
}

/* Run concurrent migration *m outside any transaction, under the session
 * advisory lock, unless another host recorded it meanwhile. 0, or -1 with
 * err written. */
static int migrate_concurrent(store_call *c, const store_migration *m, char *err, size_t errlen,
                              store_result *rc)
{
    char step[160];
    PGresult *done = NULL;
    int ret = -1;
    snprintf(step, sizeof step, "migration %d (%s)", m->version, m->name);
    *rc = migrate_lock(c, "pg_try_advisory_lock");
    if (*rc != STORE_OK) {
        migrate_error(err, errlen, "migrate: lock", c);
        return -1;
    }
    *rc = migrate_read(c, &done);
    if (*rc != STORE_OK) {
        migrate_error(err, errlen, "migrate: read versions", c);
        goto out;
    }
    if (migration_recorded(done, m->version)) {
        ret = 0;
        goto out;
    }
    log_info("store: applying %s, statement by statement, without blocking writes", step);
    const char *next = m->sql + strlen(STORE_MIGRATION_NO_TRANSACTION);
    while (*next) {
        const char *end = strstr(next, ";\n");
        size_t len = end ? (size_t)(end - next) + 1 : strlen(next);
        char *sql = strndup(next, len);
        next += end ? len + 1 : len;
        if (!sql) {
            snprintf(err, errlen, "%s: out of memory", step);
            *rc = STORE_ERROR;
            goto out;
        }
        int step_rc = migrate_statement(c, step, sql, err, errlen, rc);
        free(sql);
        if (step_rc != 0)
            goto out;
        while (*next == '\n' || *next == ' ')
            next++;
    }
    *rc = migrate_record(c, step, m->version);
    if (*rc != STORE_OK) {
        migrate_error(err, errlen, step, c);
        goto out;
    }
    metrics_db_commit();
    log_info("store: applied %s", step);
    ret = 0;
out:
    PQclear(done);
    if (!c->broken)
        PQclear(PQexec(c->conn, "SELECT pg_advisory_unlock(" STORE_MIGRATE_LOCK "::bigint)"));
    return ret;
}

/* One pass: the ordinary versions up to the first pending concurrent one in
 * a transaction, then that one. *more: a later version may be pending. */
static store_result migrate_pass(store_call *c, const store_migration *list, size_t count, bool *more,
                                 char *err, size_t errlen)
{
    PGresult *r = NULL;
    bool in_tx = false, locked = false;
    size_t stop = count;
    *more = false;
    /* Two hosts starting at once: the second waits here, then finds the
     * first one's work committed. The lock is the session's, taken before
     * the transaction: a transaction left open while waiting would hold up
     * the other host's CREATE INDEX CONCURRENTLY (see migrate_lock). */
    store_result rc = migrate_lock(c, "pg_try_advisory_lock");
    if (rc != STORE_OK) {
        migrate_error(err, errlen, "migrate: lock", c);
        goto fail;
    }
    locked = true;
    rc = store_call_exec(c, "migrate: BEGIN", "BEGIN", 0, NULL, false, &r);
    PQclear(r);
    r = NULL;
    if (rc != STORE_OK)
        goto fail;
    in_tx = true;
    rc = store_call_exec(c, "migrate: schema_migrations", sql_migrations_table, 0, NULL, false, &r);
    PQclear(r);
    r = NULL;
    if (rc == STORE_OK)
        rc = migrate_read(c, &r);
    if (rc != STORE_OK) {
        migrate_error(err, errlen, "preparing migrations", c);
        goto fail;
    }
    migrate_check_newer(r, list, count);
    int applied = migrate_apply(c, list, count, r, &stop, err, errlen, &rc);
    PQclear(r);
    r = NULL;
    if (applied < 0)
        goto fail;
    rc = store_call_exec(c, "migrate: COMMIT", "COMMIT", 0, NULL, false, &r);
    PQclear(r);
    r = NULL;
    in_tx = false;
    if (rc != STORE_OK) {
        migrate_error(err, errlen, "commit", c);
        goto fail;
    }
    metrics_db_commit();
    if (stop < count) {
        /* Still holding the lock (advisory locks nest): no other host
         * applies a version in between. */
        if (migrate_concurrent(c, &list[stop], err, errlen, &rc) != 0)
            goto fail;
        *more = true;
    }
    rc = STORE_OK;

fail:
    if (in_tx && !c->broken)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    if (locked && !c->broken)
        PQclear(PQexec(c->conn, "SELECT pg_advisory_unlock(" STORE_MIGRATE_LOCK "::bigint)"));
    return rc;
}

/* How many of list[0..count) `done` does not record. */
static int migrate_pending(const store_migration *list, size_t count, const PGresult *done)
{
    int n = 0;
    for (size_t i = 0; i < count; i++)
        n += !migration_recorded(done, list[i].version);
    return n;
}

store_result store_migrate_list(store *s, const store_migration *list, size_t count, char *err, size_t errlen)
{
    store_call c;
    PGresult *r = NULL;
    store_result rc = store_call_begin(s, &c);
    if (rc != STORE_OK) {
        if (err && errlen)
            snprintf(err, errlen, "PostgreSQL unreachable; retry when it is up");
        return rc;
    }
    /* Nothing pending: no lock, no DDL (a role without DDL rights gets here). */
    rc = migrate_read(&c, &r);
    if (rc != STORE_OK) {
        migrate_error(err, errlen, "reading the schema version", &c);
        goto out;
    }
    int pending = migrate_pending(list, count, r);
    migrate_check_newer(r, list, count);
    PQclear(r);
    bool more = pending > 0;
    while (more && rc == STORE_OK)
        rc = migrate_pass(&c, list, count, &more, err, errlen);
    if (rc == STORE_OK && pending == 0)
        log_debug("store: schema is up to date");
out:
    store_call_end(&c);
    return rc;
}

store_result store_migrate(store *s, char *err, size_t errlen)
{
    size_t count = 0;
    const store_migration *list = store_migrations(&count);
    return store_migrate_list(s, list, count, err, errlen);
}

store_result store_schema_status(store *s, int *applied, int *pending, char *err, size_t errlen)
{
    store_call c;
    PGresult *r = NULL;
    size_t count = 0;
    const store_migration *list = store_migrations(&count);
    store_result rc = store_call_begin(s, &c);
    if (rc != STORE_OK) {
        snprintf(err, errlen, "PostgreSQL unreachable; retry when it is up");
        return rc;
    }
    rc = migrate_read(&c, &r);
    if (rc != STORE_OK) {
        migrate_error(err, errlen, "reading the schema version", &c);
        goto out;
    }
    int top = 0;
    for (int i = 0; i < PQntuples(r); i++)
        if (atoi(PQgetvalue(r, i, 0)) > top)
            top = atoi(PQgetvalue(r, i, 0));
    *applied = top;
    *pending = migrate_pending(list, count, r);
    PQclear(r);
out:
    store_call_end(&c);
    return rc;
}
