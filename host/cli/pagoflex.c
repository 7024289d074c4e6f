/* pagoflex.c - the operator CLI: `pagoflex <group> <command> [options]`.
 *
 * To add a command, add a row to cli_commands below and put its handler in
 * host/cli_<group>.c (see cli.h for the handler contract). The dispatcher
 * here handles `--help` at every level, unknown groups and commands, and
 * exit codes: 0 ok, 1 error, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_ops.h"
#include "cli_payment.h"
#include "cli_plugin.h"
#include "cli_account.h"
#include "cli_apikey.h"
#include "cli_db.h"
#include "cli_merchant.h"
#include "cli_plugin_trust.h"
#include "cli_secrets.h"
#include "cli_secrets_tools.h"
#include "cli_webhook.h"
#include "version.h"

#define KEY_SOURCE_HELP                                                                  \
    "  --key-file FILE   master key file (mode 0600); without it, $PAGOFLEX_MASTER_KEY\n"  \
    "                    (64 hex digits), then $PAGOFLEX_MASTER_KEY_FILE\n"

static const cli_command cli_commands[] = {
    {NULL, "status", cli_ops_status, "-c CONFIG",
     "Show a running host: health, generation, connectors (version, file, hash, last error).", NULL},
    {NULL, "reload", cli_ops_reload, "-c CONFIG", "Reload a running host (SIGHUP to the master in pid_file).",
     "Workers of a new generation load the plugins; the old generation drains once\n"
     "they are ready. A plugin that fails to load keeps its last good version."},
    {"secrets", "keygen", cli_secrets_keygen, "[--out FILE] [--force]",
     "Generate a new 32-byte master key (64 hex digits).",
     "  --out FILE   write the key to FILE, created with mode 0600 (default: stdout)\n"
     "  --force      replace FILE if it exists (files encrypted under the old key\n"
     "               become unreadable)\n"},
    {"secrets", "encrypt", cli_secrets_encrypt,
     "--plugin NAME [--account ACCOUNT] [--key-file FILE] [--in PLAIN] [--out FILE.cfg.enc]",
     "Encrypt a plugin's credentials (libconfig, string settings only).",
     "  --plugin NAME     the plugin the file is for; the file only decrypts for it\n"
     "  --account ACCOUNT the connector account, [a-z0-9_-]{1,32} (default: \"default\");\n"
     "                    the file only decrypts for that account of NAME\n" KEY_SOURCE_HELP
     "  --in PLAIN        plaintext libconfig file (default: stdin), e.g.\n"
     "                      BANCOX_API_KEY = \"...\";\n"
     "  --out FILE        encrypted output, mode 0600, replaced atomically\n"
     "                    (default: NAME.cfg.enc; with --account: NAME/ACCOUNT.cfg.enc,\n"
     "                    the folder NAME created 0700; run it in credentials_dir)\n"},
    {"secrets", "decrypt", cli_secrets_decrypt,
     "--plugin NAME [--account ACCOUNT] [--key-file FILE] FILE.cfg.enc",
     "Print a plugin's decrypted credentials on stdout.",
     "  --plugin NAME     the plugin the file was encrypted for\n"
     "  --account ACCOUNT its connector account (default: \"default\")\n" KEY_SOURCE_HELP},
    {"plugin", "new", cli_plugin_new, "NAME [--dir DIR] [--template DIR]",
     "Create a connector project from the SDK template (builds NAME.so out of tree).",
     "  NAME            a-z, 0-9, '_' (key NAME upper-cased, webhook path NAME,\n"
     "                  credential <NAME>_SECRET)\n"
     "  --dir DIR       where to create it (default ./NAME; must be absent or empty)\n"
     "  --template DIR  template to use (default: $PAGOFLEX_TEMPLATE_DIR, then the\n"
     "                  installed share/pagoflex/template, then the source tree)\n"},
    {"plugin", "check", cli_plugin_check,
     "FILE.so [--credentials FILE.cfg.enc [--key-file FILE] [--account NAME] | --credential NAME=VALUE...] "
     "[--plugin-name NAME] [--with DIR] [--verbose]",
     "Load a connector as the host would and check that it conforms; exit 0 if all pass.",
     "  --credentials F  its encrypted credentials (default: dummy values are generated\n"
     "                   for every required credential, in memory)\n" KEY_SOURCE_HELP
     "  --credential NAME=VALUE  a plaintext test credential (repeatable), instead of\n"
     "                   --credentials; kept in memory only, never printed\n"
     "  --plugin-name N  name the credentials were encrypted for (default: FILE without .so)\n"
     "  --account NAME   the connector account the credentials file is for (its\n"
     "                   <plugin>/NAME.cfg.enc; default: the account \"default\")\n"
     "  --with DIR       load the plugins of DIR first, so duplicate keys and paths show\n"
     "  --verbose        show the host's and the plugin's log lines on stderr\n"},
    {"webhook", "verify", cli_webhook_verify,
     "--plugin FILE.so [--credentials FILE.cfg.enc [--key-file FILE] | --credential "
     "NAME=VALUE...] [--now UNIX] [--header 'Name: value'...] [--query STRING] --body-file FILE "
     "[--method POST] [--path /webhooks/x]",
     "Replay a captured webhook offline: print the signature verdict and the parsed events.",
     "  --plugin FILE.so         the connector (1.0, 1.1 or 1.2), loaded as plugin check does\n"
     "  --credentials F          its encrypted credentials, decrypted with the master key\n" KEY_SOURCE_HELP
     "  --credential NAME=VALUE  a plaintext test credential instead (repeatable)\n"
     "  --now UNIX               the host clock the plugin sees (default: now)\n"
     "  --header 'Name: value'   a request header as received (repeatable, in order)\n"
     "  --query STRING           the raw query string, without '?'\n"
     "  --body-file FILE         the raw body as received\n"
     "  --method, --path         default POST and /webhooks/<plugin name>\n"
     "  Exit status 0 if the signature is valid and the delivery parsed, 1 otherwise.\n"},
    {"secrets", "edit", cli_secrets_edit,
     "--plugin NAME [--account ACCOUNT] [--key-file FILE] [--insecure-tmp] FILE.cfg.enc",
     "Edit a plugin's credentials in $EDITOR; the plaintext stays on tmpfs and is wiped.",
     "  --plugin NAME     the plugin the file is for\n"
     "  --account ACCOUNT its connector account (default: \"default\")\n" KEY_SOURCE_HELP
     "  --insecure-tmp    allow a temp folder that is not a tmpfs (the plaintext may\n"
     "                    then reach a disk); default: $XDG_RUNTIME_DIR or /dev/shm\n"},
    {"secrets", "rotate", cli_secrets_rotate, "--old-key-file A --new-key-file B DIR",
     "Re-encrypt every DIR/*.cfg.enc and DIR/<plugin>/*.cfg.enc under a new master key (atomic per file).",
     "  Run the hosts with master_key_file = B and previous_master_key_file = A\n"
     "  while files are rotated; drop previous_master_key_file afterwards.\n"},
    {"secrets", "check", cli_secrets_check,
     "--credentials-dir D --plugin-dir P [--key-file F] [--previous-key-file F]",
     "Decrypt every credentials file and load every plugin; names only, never values.",
     "  Exit status 1 on any problem.\n"},
    {"apikey", "create", cli_apikey_create, "--name NAME [--merchant ID] [-c CONFIG]",
     "Create an API key; it is printed once, only its SHA-256 is stored.",
     "  --merchant ID  the merchant the key acts for (default: mer_default)\n"
     "  -c CONFIG      read the database from CONFIG (default: $PAGOFLEX_DATABASE)\n"},
    {"apikey", "list", cli_apikey_list, "[-c CONFIG]",
     "List API keys: id, name, prefix, merchant, created, revoked (never a key or hash).", NULL},
    {"apikey", "revoke", cli_apikey_revoke, "[-c CONFIG] ID|PREFIX",
     "Revoke an API key; every host refuses it from the next request.", NULL},
    {"merchant", "create", cli_merchant_create, "NAME [--json] [-c CONFIG]",
     "Create a merchant and its first API key; prints its id and the key once.",
     "  NAME        1 to 100 bytes, no control characters\n"
     "  --json      print {\"merchant\": {...}, \"api_key\": \"pfk_...\"} instead of two lines\n"
     "              (the merchant id, then the key)\n"
     "  -c CONFIG   read the database from CONFIG (default: $PAGOFLEX_DATABASE)\n"
     "  More keys: pagoflex apikey create --merchant ID --name NAME\n"},
    {"merchant", "list", cli_merchant_list, "[--json] [-c CONFIG]",
     "List merchants: id, name, created, disabled.", NULL},
    {"merchant", "disable", cli_merchant_disable, "ID [-c CONFIG]",
     "Disable a merchant: every host refuses its API keys from the next request.",
     "  Its payments and refunds are kept; the bank's webhooks and the reconciler\n"
     "  still settle them. mer_default (the config's keys) cannot be disabled.\n"},
    {"merchant", "account", cli_account,
     "add MERCHANT --connector KEY --account NAME | list [MERCHANT] | remove MERCHANT --connector KEY "
     "[-c CONFIG]",
     "Bind a merchant to its account of a connector (credentials <plugin>/<account>.cfg.enc).",
     "  add      the merchant's new payments through KEY use account NAME (replaces its binding)\n"
     "  list     the bindings, of one merchant or of all\n"
     "  remove   the merchant has no account for KEY any more (422 connector_not_configured)\n"
     "  mer_default uses account \"default\" (<plugin>.cfg.enc) of every connector it has no\n"
     "  binding for; any other merchant needs one per connector it uses. A payment keeps the\n"
     "  account it was made with (captures, refunds, webhooks).\n"
     "  -c CONFIG   read the database from CONFIG (default: $PAGOFLEX_DATABASE)\n"},
    {"db", "migrate", cli_db_migrate, "[-c CONFIG] [--database CONNINFO]",
     "Apply the pending schema versions (as a role that may change the schema).",
     "  -c CONFIG            read the database from CONFIG (default: $PAGOFLEX_DATABASE)\n"
     "  --database CONNINFO  libpq conninfo of a privileged role (wins over -c)\n"
     "  Hosts with `migrate = false` (a role with no DDL rights) need this first.\n"
     "  Index builds on large tables run CONCURRENTLY, without blocking writes.\n"},
    {"db", "status", cli_db_status, "[-c CONFIG] [--database CONNINFO]",
     "List the schema versions of this build, applied or pending; exit 1 if any is pending.", NULL},
    {"payment", "resolve", cli_payment_resolve, "ID --status succeeded|failed --reason TEXT [--by WHO] [-c CONFIG]",
     "Settle a payment that requires review, after asking the bank; recorded with who and why.",
     "  --status S   succeeded or failed (only a payment in requires_review moves)\n"
     "  --reason T   why (what the bank said), kept in the payment's history\n"
     "  --by WHO     who decided (default: the OS user; under sudo, SUDO_USER)\n"
     "  -c CONFIG    read the database from CONFIG (default: $PAGOFLEX_DATABASE)\n"
     "  The merchant is notified of the change like any other.\n"},
    {"plugin", "keygen", cli_plugin_keygen, "--out PREFIX [--force]",
     "Make an Ed25519 plugin-signing key pair: PREFIX.key (0600) and PREFIX.pub.", NULL},
    {"plugin", "sign", cli_plugin_sign, "--key SIGNER.key FILE.so",
     "Sign a plugin: writes FILE.so.sig for hosts with require_signed_plugins.", NULL},
};

#define CLI_COMMAND_COUNT (sizeof cli_commands / sizeof cli_commands[0])

static int is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

/* Does argv[from..argc-1] ask for help (before a "--")? */
static int wants_help(int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

static int group_exists(const char *group)
{
    for (size_t i = 0; i < CLI_COMMAND_COUNT; i++)
        if (cli_commands[i].group && strcmp(cli_commands[i].group, group) == 0)
            return 1;
    return 0;
}

static const cli_command *find_command(const char *group, const char *name)
{
    for (size_t i = 0; i < CLI_COMMAND_COUNT; i++) {
        const cli_command *c = &cli_commands[i];
        if ((group ? c->group && strcmp(c->group, group) == 0 : !c->group) &&
            strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

/* List the commands of `group` (every command when group is NULL). */
static void print_commands(FILE *f, const char *group)
{
    for (size_t i = 0; i < CLI_COMMAND_COUNT; i++) {
        const cli_command *c = &cli_commands[i];
        if (group && (!c->group || strcmp(c->group, group) != 0))
            continue;
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", c->group ? c->group : "", c->group ? " " : "",
                 c->name);
        fprintf(f, "  %-18s %s\n", head, c->summary);
    }
}

static void print_main_usage(FILE *f)
{
    fprintf(f, "usage: pagoflex <command> [options]\n"
               "       pagoflex <command> --help\n"
               "       pagoflex --version\n\n"
               "Operator tool for the Pagoflex payment-connector host.\n\ncommands:\n");
    print_commands(f, NULL);
    fprintf(f, "\nexit status: 0 ok, 1 error, 2 usage error\n");
}

static void print_group_usage(FILE *f, const char *group)
{
    fprintf(f, "usage: pagoflex %s <command> [options]\n\ncommands:\n", group);
    print_commands(f, group);
    fprintf(f, "\nRun 'pagoflex %s <command> --help' for a command's options.\n", group);
}

/* Run `cmd` with argv[0] = its name; `--help` anywhere prints its help. */
static int run_command(const cli_command *cmd, int argc, char **argv)
{
    if (wants_help(argc, argv, 1)) {
        cli_print_help(stdout, cmd);
        return CLI_OK;
    }
    return cmd->run(cmd, argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_main_usage(stderr);
        return CLI_USAGE;
    }
    if (is_help(argv[1])) {
        print_main_usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        version_print(stdout, "pagoflex");
        return CLI_OK;
    }
    const cli_command *cmd = find_command(NULL, argv[1]);
    if (cmd)
        return run_command(cmd, argc - 1, argv + 1);
    if (!group_exists(argv[1])) {
        fprintf(stderr, "pagoflex: unknown command '%s'; run 'pagoflex --help' for the list\n",
                argv[1]);
        return CLI_USAGE;
    }
    if (argc < 3) {
        print_group_usage(stderr, argv[1]);
        return CLI_USAGE;
    }
    if (is_help(argv[2])) {
        print_group_usage(stdout, argv[1]);
        return CLI_OK;
    }
    cmd = find_command(argv[1], argv[2]);
    if (!cmd) {
        fprintf(stderr,
                "pagoflex: unknown command '%s %s'; run 'pagoflex %s --help' for the list\n",
                argv[1], argv[2], argv[1]);
        return CLI_USAGE;
    }
    return run_command(cmd, argc - 2, argv + 2);
}
