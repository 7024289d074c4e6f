/* cli_secrets_tools.h - `pagoflex secrets edit | rotate | check`. */
#ifndef PAGOFLEX_CLI_SECRETS_TOOLS_H
#define PAGOFLEX_CLI_SECRETS_TOOLS_H

#include "cli.h"

/* pagoflex secrets edit --plugin NAME [--key-file F] [--insecure-tmp] FILE.cfg.enc
 * Decrypt FILE (or start empty if it does not exist) into a 0600 file in a
 * private 0700 folder on tmpfs ($XDG_RUNTIME_DIR, else /dev/shm; another
 * file system only with --insecure-tmp), run $EDITOR on it, validate the
 * result and encrypt it back (atomic replace). The folder and every file in
 * it (editor backups too) are overwritten and removed on every path: success,
 * invalid text, editor failure, SIGINT/SIGTERM/SIGHUP. */
int cli_secrets_edit(const cli_command *cmd, int argc, char **argv);

/* pagoflex secrets rotate --old-key-file A --new-key-file B DIR
 * Re-encrypt every DIR/NAME.cfg.enc under key B (each file replaced
 * atomically; files already under B are left alone). Exit 1 if any file
 * could not be rotated; the others are still done. */
int cli_secrets_rotate(const cli_command *cmd, int argc, char **argv);

/* pagoflex secrets check --credentials-dir D --plugin-dir P [--key-file F]
 *                        [--previous-key-file F2]
 * Decrypt every D/NAME.cfg.enc and load every P/NAME.so as the host would
 * (private copy, descriptor checks, required credential names, init);
 * prints names, never values. Exit 1 on any problem. */
int cli_secrets_check(const cli_command *cmd, int argc, char **argv);

#endif
