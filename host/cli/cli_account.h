/* cli_account.h - `pagoflex merchant account add | list | remove`: which
 * connector account each merchant uses (store_accounts.h). */
#ifndef PAGOFLEX_CLI_ACCOUNT_H
#define PAGOFLEX_CLI_ACCOUNT_H

#include "cli.h"

/* pagoflex merchant account add MERCHANT --connector KEY --account NAME [-c CONFIG]
 * pagoflex merchant account list [MERCHANT] [-c CONFIG]
 * pagoflex merchant account remove MERCHANT --connector KEY [-c CONFIG]
 * argv[1] is the subcommand. */
int cli_account(const cli_command *cmd, int argc, char **argv);

#endif
