/* cli_db.h - `pagoflex db migrate | status`: the schema of an existing PostgreSQL. */
#ifndef PAGOFLEX_CLI_DB_H
#define PAGOFLEX_CLI_DB_H

#include "cli.h"

/* Apply the pending schema versions (as the role of the conninfo, which
 * must be allowed to change the schema). CLI_OK, CLI_ERROR, CLI_USAGE. */
int cli_db_migrate(const cli_command *cmd, int argc, char **argv);

/* List this build's schema versions, applied (when) or pending. CLI_OK when
 * none is pending; CLI_ERROR when some are (or the database cannot be read). */
int cli_db_status(const cli_command *cmd, int argc, char **argv);

#endif
