/* store_migrations.h - the schema versions of the store, embedded in the binary. */
#ifndef PAGOFLEX_STORE_MIGRATIONS_H
#define PAGOFLEX_STORE_MIGRATIONS_H

#include <stddef.h>

typedef struct store_migration {
    int version;      /* 1, 2, ...: applied in this order, recorded in schema_migrations */
    const char *name; /* short description for the log */
    const char *sql;  /* one or more statements, run inside the migration transaction */
} store_migration;

/* The migrations in ascending version order; *count receives how many.
 * The array is static and never freed. */
const store_migration *store_migrations(size_t *count);

#endif
