/* cli_merchant.h - `pagoflex merchant create | list | disable` (issue 13). */
#ifndef PAGOFLEX_CLI_MERCHANT_H
#define PAGOFLEX_CLI_MERCHANT_H

#include "cli.h"

/* pagoflex merchant create NAME [--json] [-c CONFIG]
 * Make a merchant and its first API key (one statement: both or neither);
 * print its id and the key once on stdout: two lines (id, key), or with
 * --json {"merchant": {...}, "api_key": "pfk_..."}. Details on stderr. */
int cli_merchant_create(const cli_command *cmd, int argc, char **argv);

/* pagoflex merchant list [--json] [-c CONFIG]: id, name, created, disabled. */
int cli_merchant_list(const cli_command *cmd, int argc, char **argv);

/* pagoflex merchant disable ID [-c CONFIG]: its keys are refused from the
 * next request on, on every host. mer_default cannot be disabled. */
int cli_merchant_disable(const cli_command *cmd, int argc, char **argv);

#endif
