/* cli_secrets.h - `pagoflex secrets ...`: master keys and credential files. */
#ifndef PAGOFLEX_CLI_SECRETS_H
#define PAGOFLEX_CLI_SECRETS_H

#include "cli.h"

/* pagoflex secrets keygen [--out FILE] [--force]
 * Write a new master key (64 hex digits and a newline) to FILE (mode 0600,
 * never overwriting without --force) or to stdout. */
int cli_secrets_keygen(const cli_command *cmd, int argc, char **argv);

/* pagoflex secrets encrypt --plugin NAME [--account ACCOUNT] [--key-file F] [--in PLAIN] [--out FILE]
 * Validate a plaintext libconfig credentials document (only string
 * settings) and write it encrypted for NAME, or for its connector account
 * ACCOUNT (default NAME.cfg.enc, or NAME/ACCOUNT.cfg.enc with the folder
 * NAME created 0700; mode 0600, atomic replace). */
int cli_secrets_encrypt(const cli_command *cmd, int argc, char **argv);

/* Check --plugin NAME and --account ACCOUNT (NULL: "default") and write
 * the name the credentials file of that account is encrypted for
 * (secrets_binding_name) into out. CLI_OK, or CLI_USAGE (usage printed). */
int cli_secrets_binding(const cli_command *cmd, const char *plugin, const char *account, char *out,
                        size_t cap);

/* pagoflex secrets decrypt --plugin NAME [--account ACCOUNT] [--key-file F] FILE
 * Print the plaintext of FILE on stdout. */
int cli_secrets_decrypt(const cli_command *cmd, int argc, char **argv);

#endif
