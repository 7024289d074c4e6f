/* cli_webhook.h - `pagoflex webhook verify`: replay a captured webhook. */
#ifndef PAGOFLEX_CLI_WEBHOOK_H
#define PAGOFLEX_CLI_WEBHOOK_H

#include "cli.h"

/* `webhook verify --plugin FILE.so [--credentials F [--key-file K] |
 * --credential N=V...] [--now UNIX] [--header 'Name: value'...] [--query S]
 * --body-file FILE [--method M] [--path P]`: load the plugin, run its
 * webhook verification and parsing on the delivery and print the verdict
 * and the events (check_webhook_replay). Exit 0 if the signature is valid
 * and the delivery parsed, 1 otherwise, 2 on bad arguments. */
int cli_webhook_verify(const cli_command *cmd, int argc, char **argv);

#endif
