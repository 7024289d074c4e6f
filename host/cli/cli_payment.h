/* cli_payment.h - `pagoflex payment resolve`: an operator settles a payment
 * that requires review (issue 14). */
#ifndef PAGOFLEX_CLI_PAYMENT_H
#define PAGOFLEX_CLI_PAYMENT_H

#include "cli.h"

/* pagoflex payment resolve ID --status succeeded|failed --reason TEXT
 * [--by WHO] [-c CONFIG]. CLI_OK once moved; CLI_ERROR when the payment is
 * not in requires_review (nothing changed) or cannot be read; CLI_USAGE. */
int cli_payment_resolve(const cli_command *cmd, int argc, char **argv);

#endif
