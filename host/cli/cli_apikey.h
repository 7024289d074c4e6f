/* cli_apikey.h - `pagoflex apikey create | list | revoke`. */
#ifndef PAGOFLEX_CLI_APIKEY_H
#define PAGOFLEX_CLI_APIKEY_H

#include "cli.h"

/* pagoflex apikey create --name NAME [--merchant ID] [-c CONFIG]
 * Make a key for merchant ID (default mer_default), store its prefix and
 * SHA-256, print the key once on stdout (alone on its line, for scripts);
 * details on stderr. */
int cli_apikey_create(const cli_command *cmd, int argc, char **argv);

/* pagoflex apikey list [-c CONFIG]: id, name, prefix, merchant, created, revoked. */
int cli_apikey_list(const cli_command *cmd, int argc, char **argv);

/* pagoflex apikey revoke [-c CONFIG] ID|PREFIX: refused from the next request on. */
int cli_apikey_revoke(const cli_command *cmd, int argc, char **argv);

#endif
