/* pgtest.h - what the unit tests that need PostgreSQL share: a database
 * of their own on the server of $PAGOFLEX_PG, a migrated store and a direct
 * connection on it, and commands run as the admin of $PAGOFLEX_PG. */
#ifndef PAGOFLEX_PGTEST_H
#define PAGOFLEX_PGTEST_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "store.h"

/* `base` (key=value or URI) with its dbname replaced by `db`; malloc'd,
 * NULL (with a message on stderr) when `base` is not a conninfo. */
char *pgtest_conninfo_with_db(const char *base, const char *db);

/* Run one command on `admin` (a conninfo); false, with the server's
 * message on stderr, on failure. Notices are dropped. */
bool pgtest_admin_exec(const char *admin, const char *sql);

/* $PAGOFLEX_PG. When it is not set, NULL after "<test>: PAGOFLEX_PG is not
 * set (...); skipped" on stderr: the test program then exits 77. */
const char *pgtest_admin(const char *test);

/* Make database `db` afresh on `admin`'s server (dropping the one an
 * earlier run may have left) and return its conninfo, malloc'd; NULL, with
 * the reason on stderr, on failure. */
char *pgtest_create_db(const char *admin, const char *db);

/* Drop database `db` (WITH (FORCE)) if it exists; false, with the server's
 * message on stderr, on failure. */
bool pgtest_drop_db(const char *admin, const char *db);

/* A test program's group set-up: make database `db` afresh, and set
 * *conninfo to its conninfo (malloc'd), *st to a migrated store of `pool`
 * connections on it and *check to a direct connection to it whose notices
 * are dropped, in that order. 0; or -1, with the reason on stderr, when a
 * step fails: it leaves its output NULL and the later ones unwritten, and
 * what was made stays for pgtest_close. */
int pgtest_open(const char *admin, const char *db, int pool, char **conninfo, store **st, PGconn **check);

/* The group tear-down matching pgtest_open: close `st` and `check`, drop
 * `db`, free `conninfo` (any may be NULL). 0, or -1 when `db` could not be
 * dropped. */
int pgtest_close(const char *admin, const char *db, char *conninfo, store *st, PGconn *check);

/* The integer in the one row `sql` returns on `c`, with $1 = `param` when
 * it is not NULL; -1, with the server's message on stderr, otherwise. */
long pgtest_long(PGconn *c, const char *sql, const char *param);

/* Run `sql` on `c`; fail the running cmocka test, naming the statement and
 * the server's message, when it does not succeed. */
void pgtest_exec(PGconn *c, const char *sql);

/* The sequential and index scans of `table` counted so far, from a fresh
 * snapshot of the statistics, with `c`'s own counts reported first; fails
 * the running test when there are none. */
void pgtest_table_scans(PGconn *c, const char *table, long *seq, long *idx);

/* pgtest_table_scans once the index scans have passed `idx_before`: another
 * session's counts arrive once it has ended (or gone idle, at most once a
 * second, else up to 10 s later), so it waits, at most 10 s, and fails the
 * running test when they do not. */
void pgtest_table_scans_after(PGconn *c, const char *table, long idx_before, long *seq, long *idx);

#endif
