/* pgtest.h - what the unit tests that need PostgreSQL share: a conninfo
 * for a database of their own, and commands run as the admin of
 * $PAGOFLEX_PG. */
#ifndef PAGOFLEX_PGTEST_H
#define PAGOFLEX_PGTEST_H

#include <stdbool.h>

/* `base` (key=value or URI) with its dbname replaced by `db`; malloc'd,
 * NULL (with a message on stderr) when `base` is not a conninfo. */
char *pgtest_conninfo_with_db(const char *base, const char *db);

/* Run one command on `admin` (a conninfo); false, with the server's
 * message on stderr, on failure. Notices are dropped. */
bool pgtest_admin_exec(const char *admin, const char *sql);

#endif
