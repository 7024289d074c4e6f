/* cli_apikey.c - `pagoflex apikey create | list | revoke`.
 *
 * The database is the config's `database` (-c CONFIG; $PAGOFLEX_DATABASE
 * still overrides it, as for pagoflexd) or $PAGOFLEX_DATABASE alone. The
 * schema is migrated first, so this works on a fresh database.
 */
#include "cli_apikey.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apikey.h"
#include "arena.h"
#include "store.h"

#define APIKEY_CLI_ERRLEN 512

/* getopt over -c/--config and, when their outputs are given, --name NAME
 * and --merchant ID. */
static int apikey_cli_opts(const cli_command *cmd, int argc, char **argv, const char **config_path,
                           const char **name, const char **merchant)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"name", required_argument, NULL, 'n'},
        {"merchant", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, name ? ":c:n:m:" : ":c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': *config_path = optarg; break;
        case 'n':
            if (!name)
                return cli_usage_error(cmd, "unknown option --name");
            *name = optarg;
            break;
        case 'm':
            if (!merchant)
                return cli_usage_error(cmd, "unknown option --merchant");
            *merchant = optarg;
            break;
        case ':': return cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
        }
    }
    return CLI_OK;
}

int cli_apikey_create(const cli_command *cmd, int argc, char **argv)
{
    const char *config_path = NULL, *name = NULL, *merchant = NULL;
    store *s = NULL;
    apikey_created k;
    char err[APIKEY_CLI_ERRLEN], line[APIKEY_LEN + 2];
    int rc = apikey_cli_opts(cmd, argc, argv, &config_path, &name, &merchant);
    memset(&k, 0, sizeof k);
    if (rc != CLI_OK)
        goto fail;
    if (!name || optind != argc) {
        rc = cli_usage_error(cmd, "give --name NAME (what the key is for) and nothing else");
        goto fail;
    }
    if ((rc = cli_open_store(NULL, config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
        goto fail;
    if (!merchant)
        merchant = APIKEY_DEFAULT_MERCHANT;
    if (apikey_create(s, merchant, name, &k, err, sizeof err) != STORE_OK) {
        rc = cli_error("cannot create the key: %s", err);
        goto fail;
    }
    int n = snprintf(line, sizeof line, "%s\n", k.key);
    if (n < 0 || (size_t)n >= sizeof line || cli_write_stdout(line, (size_t)n) != 0) {
        rc = cli_error("cannot write the key to standard output; revoke key %lld", k.id);
        goto fail;
    }
    fprintf(stderr,
            "pagoflex: created API key %lld (name %s, prefix %s) for merchant %s; it is shown only "
            "this once: only its SHA-256 is stored\n",
            k.id, name, k.prefix, merchant);
    rc = CLI_OK;
fail:
    OPENSSL_cleanse(&k, sizeof k);
    OPENSSL_cleanse(line, sizeof line);
    store_close(s);
    return rc;
}

int cli_apikey_list(const cli_command *cmd, int argc, char **argv)
{
    const char *config_path = NULL;
    store *s = NULL;
    pagoflex_arena *arena = NULL;
    apikey_info *list = NULL;
    size_t count = 0;
    int rc = apikey_cli_opts(cmd, argc, argv, &config_path, NULL, NULL);
    if (rc != CLI_OK)
        goto fail;
    if (optind != argc) {
        rc = cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
        goto fail;
    }
    if ((rc = cli_open_store(NULL, config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
        goto fail;
    arena = arena_new();
    if (!arena || apikey_list(s, arena, &list, &count) != STORE_OK) {
        rc = cli_error("cannot list the keys (database error or out of memory)");
        goto fail;
    }
    printf("%-6s %-24s %-18s %-30s %-22s %s\n", "ID", "NAME", "PREFIX", "MERCHANT", "CREATED", "REVOKED");
    for (size_t i = 0; i < count; i++)
        printf("%-6lld %-24s %-18s %-30s %-22s %s\n", list[i].id, list[i].name, list[i].prefix,
               list[i].merchant_id, list[i].created_at, list[i].revoked_at ? list[i].revoked_at : "-");
    rc = CLI_OK;
fail:
    arena_free(arena);
    store_close(s);
    return rc;
}

int cli_apikey_revoke(const cli_command *cmd, int argc, char **argv)
{
    const char *config_path = NULL, *when = NULL;
    store *s = NULL;
    pagoflex_arena *arena = NULL;
    int rc = apikey_cli_opts(cmd, argc, argv, &config_path, NULL, NULL);
    if (rc != CLI_OK)
        goto fail;
    if (optind != argc - 1) {
        rc = cli_usage_error(cmd, "name one key: its id or its prefix (pagoflex apikey list)");
        goto fail;
    }
    const char *which = argv[optind];
    if ((rc = cli_open_store(NULL, config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
        goto fail;
    arena = arena_new();
    store_result sr = arena ? apikey_revoke(s, which, arena, &when) : STORE_ERROR;
    switch (sr) {
    case STORE_OK:
        fprintf(stderr, "pagoflex: revoked API key %s at %s; it is refused from now on\n", which,
                when);
        rc = CLI_OK;
        break;
    case STORE_CONFLICT:
        fprintf(stderr, "pagoflex: API key %s was already revoked\n", which);
        rc = CLI_OK;
        break;
    case STORE_NOT_FOUND:
        rc = cli_error("no API key with id or prefix '%.40s'; see: pagoflex apikey list", which);
        break;
    default:
        rc = cli_error("cannot revoke the key (database error)");
        break;
    }
fail:
    arena_free(arena);
    store_close(s);
    return rc;
}
