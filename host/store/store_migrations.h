/* store_migrations.h - the schema versions of the store, embedded in the binary. */
#ifndef PAGOFLEX_STORE_MIGRATIONS_H
#define PAGOFLEX_STORE_MIGRATIONS_H

#include <stddef.h>

#include "store.h"

typedef struct store_migration {
    int version;      /* 1, 2, ...: applied in this order, recorded in schema_migrations */
    const char *name; /* short description for the log */
    const char *sql;  /* one or more statements, run inside the migration transaction */
} store_migration;

/* A migration whose sql starts with this line runs outside any transaction
 * block, for statements that cannot run in one (CREATE INDEX CONCURRENTLY:
 * a build that does not block writes to a large table). Its statements end
 * with ";\n" and each runs on its own, in order, after the versions before
 * it committed; the version is recorded once the last one succeeded. A run
 * cut in the middle starts again from the first, so each must be
 * idempotent (IF NOT EXISTS). Before "CREATE [UNIQUE] INDEX CONCURRENTLY IF
 * NOT EXISTS <name> ...", an invalid index <name> left by a failed build is
 * dropped (DROP INDEX CONCURRENTLY), or IF NOT EXISTS would keep it. */
#define STORE_MIGRATION_NO_TRANSACTION "-- pagoflex: no transaction\n"

/* The migrations in ascending version order; *count receives how many.
 * The array is static and never freed. */
const store_migration *store_migrations(size_t *count);

/* store_migrate() over `list` instead of the embedded migrations (tests
 * run lists of their own). Same locking, results and errors. */
store_result store_migrate_list(store *s, const store_migration *list, size_t count, char *err,
                                size_t errlen);

#endif
