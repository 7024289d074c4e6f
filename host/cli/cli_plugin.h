/* cli_plugin.h - `pagoflex plugin ...`: create and check connector plugins. */
#ifndef PAGOFLEX_CLI_PLUGIN_H
#define PAGOFLEX_CLI_PLUGIN_H

#include "cli.h"

/* `plugin new NAME [--dir D] [--template T]`: copy the SDK's plugin
 * template into D (default ./NAME, must not exist or be empty), replacing
 * @NAME@, @KEY@, @PATH@ and @SECRET@ in file names and contents. */
int cli_plugin_new(const cli_command *cmd, int argc, char **argv);

/* `plugin check FILE.so [--credentials F --key-file K | --credential N=V...]
 * [--plugin-name N] [--with DIR] [--verbose]`: run the conformance checker (check.h). Exit 0
 * only if every check passes, 1 if one fails or the checker cannot run. */
int cli_plugin_check(const cli_command *cmd, int argc, char **argv);

/* 0 if s is "NAME=VALUE" with NAME a libconfig setting name
 * ([A-Za-z_][A-Za-z0-9_]*), -1 otherwise. */
int cli_plugin_pair_ok(const char *s);

#endif
