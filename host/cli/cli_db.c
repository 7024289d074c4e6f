/* cli_db.c - `pagoflex db migrate | status`.
 *
 * The database is --database CONNINFO, else the config's `database` (-c
 * CONFIG; $PAGOFLEX_DATABASE overrides it, as for pagoflexd), else
 * $PAGOFLEX_DATABASE. `migrate` is what a privileged role runs before (or
 * instead of) hosts with `migrate = false`, whose role has no DDL rights.
 */
#include "cli_db.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "store.h"
#include "store_migrations.h"

#define CLI_DB_ERRLEN 1024

/* Parse -c CONFIG / --database CONNINFO and open a store of one
 * connection. CLI_OK with *out set. */
static int cli_db_open(const cli_command *cmd, int argc, char **argv, store **out)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"database", required_argument, NULL, 'd'}, {0, 0, 0, 0}};
    const char *config_path = NULL, *database = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:d:", opts, NULL)) != -1) {
        if (c == 'c')
            config_path = optarg;
        else if (c == 'd')
            database = optarg;
        else
            return cli_usage_error(cmd, "unknown option or missing value: %s", argv[optind - 1]);
    }
    if (optind != argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    const char *env = getenv("PAGOFLEX_DATABASE");
    if (!database && !config_path && (!env || !*env))
        return cli_usage_error(cmd, "no database given; pass --database CONNINFO, -c CONFIG or set "
                                    "$PAGOFLEX_DATABASE");
    return cli_open_store(database, config_path, CLI_SCHEMA_AS_IS, out);
}

int cli_db_migrate(const cli_command *cmd, int argc, char **argv)
{
    store *s = NULL;
    char err[CLI_DB_ERRLEN];
    int rc = cli_db_open(cmd, argc, argv, &s);
    if (rc != CLI_OK)
        return rc;
    int before = 0, pending = 0, after = 0;
    if (store_schema_status(s, &before, &pending, err, sizeof err) != STORE_OK) {
        rc = cli_error("database: %s; check the conninfo and that PostgreSQL is up", err);
        goto out;
    }
    /* The store logs each version it applies: show those lines. */
    log_set_level(PAGOFLEX_LOG_INFO);
    if (store_migrate(s, err, sizeof err) != STORE_OK) {
        rc = cli_error("migration failed: %s; nothing after the failed version was applied (a "
                       "role that may create tables and indexes is needed)",
                       err);
        goto out;
    }
    if (store_schema_status(s, &after, &pending, err, sizeof err) != STORE_OK) {
        rc = cli_error("database: %s", err);
        goto out;
    }
    if (after == before)
        printf("schema is up to date at version %d\n", after);
    else
        printf("schema migrated from version %d to %d\n", before, after);
out:
    store_close(s);
    return rc;
}

int cli_db_status(const cli_command *cmd, int argc, char **argv)
{
    store *s = NULL;
    char err[CLI_DB_ERRLEN];
    pagoflex_arena *arena = arena_new();
    int rc = arena ? cli_db_open(cmd, argc, argv, &s) : cli_error("out of memory");
    if (rc != CLI_OK)
        goto out;
    int applied = 0, pending = 0;
    if (store_schema_status(s, &applied, &pending, err, sizeof err) != STORE_OK) {
        rc = cli_error("database: %s; check the conninfo and that PostgreSQL is up", err);
        goto out;
    }
    store_rows rows = {0};
    if (applied > 0 && store_query(s, "db status",
                                   "SELECT version::text, to_char(applied_at AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations",
                                   0, NULL, arena, &rows) != STORE_OK) {
        rc = cli_error("cannot read schema_migrations; the role needs SELECT on it");
        goto out;
    }
    size_t count = 0;
    const store_migration *m = store_migrations(&count);
    printf("%-8s %-22s %s\n", "VERSION", "APPLIED", "NAME");
    for (size_t i = 0; i < count; i++) {
        const char *at = NULL;
        for (size_t k = 0; k < rows.rows && !at; k++)
            if (atoi(rows.cells[k * rows.cols]) == m[i].version)
                at = rows.cells[k * rows.cols + 1];
        printf("%-8d %-22s %s\n", m[i].version, at ? at : "pending", m[i].name);
    }
    int known = count ? m[count - 1].version : 0;
    if (pending) {
        rc = cli_error("%d version(s) pending: run `pagoflex db migrate` as a role that may change the "
                       "schema",
                       pending);
    } else if (applied > known) {
        printf("schema version %d is newer than this build's %d: upgrade pagoflex here\n", applied, known);
    } else {
        printf("schema is up to date at version %d\n", applied);
    }
out:
    store_close(s);
    arena_free(arena);
    return rc;
}
