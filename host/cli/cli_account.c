/* cli_account.c - `pagoflex merchant account add | list | remove`.
 *
 * A merchant uses each connector through one connector account, whose
 * credentials are <credentials_dir>/<plugin>/<account>.cfg.enc (account
 * "default": <plugin>.cfg.enc). The binding lives in the database, so every
 * host sees it at once; a payment keeps the account it was made with.
 * The database is the config's `database` (-c CONFIG; $PAGOFLEX_DATABASE
 * still overrides it, as for pagoflexd) or $PAGOFLEX_DATABASE alone; the
 * schema is migrated first.
 */
#include "cli_account.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "store.h"
#include "store_accounts.h"

typedef struct account_args {
    const char *config_path;
    const char *connector;
    const char *account;
    const char *merchant; /* the positional MERCHANT, or NULL */
} account_args;

/* Options after the subcommand (argv[0] is the subcommand). */
static int account_cli_opts(const cli_command *cmd, int argc, char **argv, account_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"connector", required_argument, NULL, 'C'},
        {"account", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config_path = optarg;
            break;
        case 'C':
            a->connector = optarg;
            break;
        case 'a':
            a->account = optarg;
            break;
        case ':':
            return cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        a->merchant = argv[optind++];
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
    return CLI_OK;
}

/* A connector key as plugins declare it: [A-Z0-9_]{1,32}. */
static int account_check_connector(const cli_command *cmd, const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (!key)
        return cli_usage_error(cmd, "--connector KEY is required (the connector key, e.g. BANCO_X)");
    if (n == 0 || n > 32 || strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n)
        return cli_usage_error(
            cmd, "invalid connector key '%.40s': [A-Z0-9_]{1,32}, as in GET /v1/connectors", key);
    return CLI_OK;
}

static int account_add(const cli_command *cmd, store *s, const account_args *a)
{
    switch (store_account_bind(s, a->merchant, a->connector, a->account)) {
    case STORE_OK:
        fprintf(stderr,
                "pagoflex: merchant %s uses account %s of connector %s for its new payments (credentials: "
                "<credentials_dir>/<plugin>/%s.cfg.enc, loaded on the next reload)\n",
                a->merchant, a->account, a->connector, a->account);
        return CLI_OK;
    case STORE_NOT_FOUND:
        return cli_error("no merchant '%.44s'; see: pagoflex merchant list", a->merchant);
    default:
        (void)cmd;
        return cli_error("cannot bind the account (database error)");
    }
}

static int account_remove(store *s, const account_args *a)
{
    switch (store_account_unbind(s, a->merchant, a->connector)) {
    case STORE_OK:
        fprintf(stderr,
                "pagoflex: merchant %s has no account for connector %s any more%s; its payments made "
                "before keep theirs\n",
                a->merchant, a->connector,
                strcmp(a->merchant, "mer_default") == 0 ? " but \"default\", as every connector" : "");
        return CLI_OK;
    case STORE_NOT_FOUND:
        return cli_error("merchant '%.44s' has no account bound for connector %s; see: pagoflex merchant "
                         "account list",
                         a->merchant, a->connector);
    default:
        return cli_error("cannot remove the binding (database error)");
    }
}

static int account_list(store *s, const account_args *a)
{
    pagoflex_arena *arena = arena_new();
    store_account_binding *items = NULL;
    size_t count = 0;
    if (!arena || store_account_list(s, a->merchant, arena, &items, &count) != STORE_OK) {
        arena_free(arena);
        return cli_error("cannot list the bindings (database error or out of memory)");
    }
    printf("%-24s %-20s %-20s %s\n", "MERCHANT", "CONNECTOR", "ACCOUNT", "SINCE");
    for (size_t i = 0; i < count; i++)
        printf("%-24s %-20s %-20s %s\n", items[i].merchant_id, items[i].connector, items[i].account,
               items[i].created_at);
    if (!a->merchant || strcmp(a->merchant, "mer_default") == 0)
        printf("(mer_default uses account \"default\" of every connector not listed for it)\n");
    arena_free(arena);
    return CLI_OK;
}

int cli_account(const cli_command *cmd, int argc, char **argv)
{
    account_args a = {0};
    store *s = NULL;
    if (argc < 2)
        return cli_usage_error(cmd, "give a subcommand: add, list or remove");
    const char *sub = argv[1];
    int rc = account_cli_opts(cmd, argc - 1, argv + 1, &a);
    if (rc != CLI_OK)
        return rc;
    if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) {
        bool add = sub[0] == 'a';
        if (!a.merchant)
            return cli_usage_error(cmd, "name the merchant: pagoflex merchant account %s MERCHANT ...", sub);
        if ((rc = account_check_connector(cmd, a.connector)) != CLI_OK)
            return rc;
        if (add && !store_account_name_valid(a.account))
            return cli_usage_error(cmd, "--account NAME is required, [a-z0-9_-]{1,32} (its credentials are "
                                        "<credentials_dir>/<plugin>/NAME.cfg.enc)");
        if (!add && a.account)
            return cli_usage_error(cmd,
                                   "remove takes no --account: a merchant has one account per connector");
        if ((rc = cli_open_store(NULL, a.config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
            return rc;
        rc = add ? account_add(cmd, s, &a) : account_remove(s, &a);
    } else if (strcmp(sub, "list") == 0) {
        if (a.connector || a.account)
            return cli_usage_error(cmd, "list takes only [MERCHANT] and -c CONFIG");
        if ((rc = cli_open_store(NULL, a.config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
            return rc;
        rc = account_list(s, &a);
    } else {
        return cli_usage_error(cmd, "unknown subcommand '%.20s': add, list or remove", sub);
    }
    store_close(s);
    return rc;
}
