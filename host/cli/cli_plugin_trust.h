/* cli_plugin_trust.h - `pagoflex plugin keygen | sign`: Ed25519 plugin signatures. */
#ifndef PAGOFLEX_CLI_PLUGIN_TRUST_H
#define PAGOFLEX_CLI_PLUGIN_TRUST_H

#include "cli.h"

/* pagoflex plugin keygen --out PREFIX [--force]
 * Write PREFIX.key (Ed25519 private key, PEM, mode 0600) and PREFIX.pub
 * (public key, PEM, mode 0644: list it in the host's trusted_keys). */
int cli_plugin_keygen(const cli_command *cmd, int argc, char **argv);

/* pagoflex plugin sign --key PREFIX.key FILE.so
 * Write FILE.so.sig (see plugin_trust.h for its format), mode 0644. */
int cli_plugin_sign(const cli_command *cmd, int argc, char **argv);

#endif
