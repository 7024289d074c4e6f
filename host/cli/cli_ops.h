/* cli_ops.h - operating a running pagoflexd: `pagoflex reload`, `pagoflex status`. */
#ifndef PAGOFLEX_CLI_OPS_H
#define PAGOFLEX_CLI_OPS_H

#include "cli.h"

/* pagoflex reload -c CONFIG: SIGHUP the master named by the config's pid_file. */
int cli_ops_reload(const cli_command *cmd, int argc, char **argv);

/* pagoflex status -c CONFIG: print /healthz and /v1/connectors of the host. */
int cli_ops_status(const cli_command *cmd, int argc, char **argv);

#endif
