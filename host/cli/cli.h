/* cli.h - the operator CLI `pagoflex`: command table and shared helpers.
 *
 * Every command is one row of the table in pagoflex.c:
 *   { "secrets", "encrypt", cli_secrets_encrypt, "--plugin NAME ...", "summary", "help" }
 * A group (`secrets`, `apikey`, `plugin`) holds several commands; a command
 * with group NULL stands alone (`pagoflex status`). The dispatcher handles
 * --help for every level, then calls the handler with argv[0] set to the
 * command name, so the handler parses its own options with getopt_long.
 *
 * Exit codes: CLI_OK (0), CLI_ERROR (1: message "pagoflex: <what went wrong>;
 * <what to do>" on stderr), CLI_USAGE (2: bad arguments, usage on stderr).
 */
#ifndef PAGOFLEX_CLI_H
#define PAGOFLEX_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "store.h"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef struct cli_command cli_command;

/* Run a command. argv[0] is the command name, argv[1..argc-1] its arguments.
 * Returns an exit code (CLI_OK, CLI_ERROR or CLI_USAGE). */
typedef int (*cli_handler)(const cli_command *cmd, int argc, char **argv);

struct cli_command {
    const char *group;   /* "secrets"; NULL for a top-level command */
    const char *name;    /* "encrypt" */
    cli_handler run;
    const char *args;    /* "--plugin NAME [--out FILE]" (may be "") */
    const char *summary; /* one line for the command list */
    const char *help;    /* more lines for `pagoflex GROUP NAME --help`; may be NULL */
};

/* Print "usage: pagoflex [group] name args" to f. */
void cli_print_usage(FILE *f, const cli_command *cmd);

/* Print the full help of one command (usage, summary, help) to f. */
void cli_print_help(FILE *f, const cli_command *cmd);

/* Print "pagoflex: <message>" on stderr and return CLI_ERROR. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "pagoflex: warning: <message>" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "pagoflex: <message>" and the command's usage on stderr; return
 * CLI_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Read all of stdin (at most `max` bytes) into a malloc'd, NUL-terminated
 * buffer allocated once (no realloc, so a secret leaves no stray copy; the
 * caller wipes and frees it). On failure -1, partial data wiped, reason in
 * err. */
int cli_read_stdin(size_t max, unsigned char **out, size_t *len, char *err, size_t errlen);

/* Write all of `data` to stdout with write(2), bypassing stdio so no copy
 * of a secret stays in a stdio buffer. 0 on success, -1 on error. */
int cli_write_stdout(const void *data, size_t len);

/* Write `data` to `path` with mode 0600.
 * CLI_WRITE_EXCL: create the file, refuse if anything exists at `path`.
 * CLI_WRITE_REPLACE: write a temp file in the same directory, fsync it and
 * rename it over `path`, so readers see the old file or the new one, never
 * half of it. On failure -1 with a reason in err, no temp file left behind,
 * and `path` unchanged (EXCL: removed if it was created by this call). */
enum { CLI_WRITE_EXCL = 1, CLI_WRITE_REPLACE = 2 };
int cli_write_file(const char *path, const void *data, size_t len, int mode, char *err,
                   size_t errlen);

/* What cli_open_store() does with the schema before it hands the store over. */
typedef enum cli_schema {
    CLI_SCHEMA_AS_IS,   /* nothing: the command reads or migrates it itself (pagoflex db) */
    CLI_SCHEMA_MIGRATE, /* migrate it, so that the command works on a fresh database */
    CLI_SCHEMA_CURRENT, /* refuse it while versions are pending (`pagoflex db migrate` first) */
} cli_schema;

/* Open a store of one connection on the database named by `database` (a
 * libpq conninfo), else by the `database` setting of `config_path`
 * ($PAGOFLEX_DATABASE overrides it, as for pagoflexd), else by
 * $PAGOFLEX_DATABASE; either argument may be NULL. Then ready its schema as
 * `schema` says. CLI_OK with *out set (the caller store_close()s it); on
 * failure the error is printed, *out is left alone and CLI_ERROR returned. */
int cli_open_store(const char *database, const char *config_path, cli_schema schema, store **out);

#endif
