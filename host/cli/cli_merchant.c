/* cli_merchant.c - `pagoflex merchant create | list | disable` (issue 13).
 *
 * The database is found as for `pagoflex apikey` (cli_open_store): -c
 * CONFIG or $PAGOFLEX_DATABASE, migrated first. A merchant is made with its
 * first API key, which is shown once and never stored in clear.
 */
#include "cli_merchant.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "apikey.h"
#include "arena.h"
#include "store.h"
#include "store_merchant.h"

#define MERCHANT_CLI_ERRLEN 512
/* The name of the key `merchant create` makes with the merchant. */
#define MERCHANT_FIRST_KEY_NAME "first key"

/* getopt over -c/--config and, when `json` is given, --json. */
static int merchant_cli_opts(const cli_command *cmd, int argc, char **argv, const char **config_path,
                             bool *json)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *config_path = optarg;
            break;
        case 'j':
            if (!json)
                return cli_usage_error(cmd, "unknown option --json");
            *json = true;
            break;
        case ':':
            return cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
        }
    }
    return CLI_OK;
}

static json_t *merchant_json(const store_merchant *m)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "id", m->id, "name", m->name, "created_at", m->created_at,
                     "disabled_at", m->disabled_at ? json_string(m->disabled_at) : json_null());
}

int cli_merchant_create(const cli_command *cmd, int argc, char **argv)
{
    const char *config_path = NULL;
    bool json = false;
    store *s = NULL;
    pagoflex_arena *arena = NULL;
    apikey_created k;
    char id[STORE_MERCHANT_ID_LEN + 1] = "";
    char err[MERCHANT_CLI_ERRLEN];
    char *doc = NULL, *out = NULL;
    size_t out_len = 0;
    memset(&k, 0, sizeof k);
    int rc = merchant_cli_opts(cmd, argc, argv, &config_path, &json);
    if (rc != CLI_OK)
        goto fail;
    if (optind != argc - 1) {
        rc = cli_usage_error(cmd, "give the merchant's NAME (one argument; quote a name with spaces)");
        goto fail;
    }
    const char *name = argv[optind];
    if (!store_merchant_name_ok(name)) {
        rc = cli_usage_error(cmd, "the merchant name must be 1 to %d bytes without control characters",
                             STORE_MERCHANT_NAME_MAX);
        goto fail;
    }
    if ((rc = cli_open_store(NULL, config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
        goto fail;
    if (apikey_create_merchant(s, name, MERCHANT_FIRST_KEY_NAME, id, &k, err, sizeof err) != STORE_OK) {
        rc = cli_error("cannot create the merchant: %s; nothing was stored", err);
        goto fail;
    }
    store_merchant m;
    arena = arena_new();
    if (!arena || store_merchant_get(s, id, arena, &m) != STORE_OK) {
        rc = cli_error("merchant %s was created but cannot be read back; see: pagoflex merchant list", id);
        goto fail;
    }
    if (json) {
        /* The key is [a-z0-9_] only: it is placed in the document as is, so
         * that no copy of it is left in Jansson's heap. */
        json_t *mj = merchant_json(&m);
        doc = mj ? json_dumps(mj, JSON_COMPACT) : NULL;
        json_decref(mj);
        out_len = doc ? strlen(doc) + strlen(k.key) + 40 : 0;
        out = doc ? malloc(out_len) : NULL;
        if (out)
            out_len = (size_t)snprintf(out, out_len, "{\"merchant\":%s,\"api_key\":\"%s\"}\n", doc, k.key);
    } else {
        out_len = strlen(id) + strlen(k.key) + 3;
        out = malloc(out_len);
        if (out)
            out_len = (size_t)snprintf(out, out_len, "%s\n%s\n", id, k.key);
    }
    if (!out || cli_write_stdout(out, out_len) != 0) {
        rc = cli_error("cannot write the merchant's key to standard output; make another with: pagoflex "
                       "apikey create --merchant %s --name NAME, then revoke key %lld",
                       id, k.id);
        goto fail;
    }
    fprintf(stderr,
            "pagoflex: created merchant %s (%s) with API key %lld (prefix %s); the key is shown only this "
            "once: only its SHA-256 is stored\n",
            id, name, k.id, k.prefix);
    rc = CLI_OK;
fail:
    if (out)
        OPENSSL_cleanse(out, out_len);
    free(out);
    free(doc);
    OPENSSL_cleanse(&k, sizeof k);
    arena_free(arena);
    store_close(s);
    return rc;
}

int cli_merchant_list(const cli_command *cmd, int argc, char **argv)
{
    const char *config_path = NULL;
    bool json = false;
    store *s = NULL;
    pagoflex_arena *arena = NULL;
    store_merchant *list = NULL;
    size_t count = 0;
    int rc = merchant_cli_opts(cmd, argc, argv, &config_path, &json);
    if (rc != CLI_OK)
        goto fail;
    if (optind != argc) {
        rc = cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
        goto fail;
    }
    if ((rc = cli_open_store(NULL, config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
        goto fail;
    arena = arena_new();
    if (!arena || store_merchant_list(s, arena, &list, &count) != STORE_OK) {
        rc = cli_error("cannot list the merchants (database error or out of memory)");
        goto fail;
    }
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < count; i++)
            json_array_append_new(arr, merchant_json(&list[i]));
        json_t *doc = json_pack("{s:o}", "merchants", arr);
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!text) {
            rc = cli_error("out of memory");
            goto fail;
        }
        printf("%s\n", text);
        free(text);
    } else {
        printf("%-30s %-24s %-26s %s\n", "ID", "NAME", "CREATED", "DISABLED");
        for (size_t i = 0; i < count; i++)
            printf("%-30s %-24s %-26s %s\n", list[i].id, list[i].name, list[i].created_at,
                   list[i].disabled_at ? list[i].disabled_at : "-");
    }
    rc = CLI_OK;
fail:
    arena_free(arena);
    store_close(s);
    return rc;
}

int cli_merchant_disable(const cli_command *cmd, int argc, char **argv)
{
    const char *config_path = NULL, *when = NULL;
    store *s = NULL;
    pagoflex_arena *arena = NULL;
    int rc = merchant_cli_opts(cmd, argc, argv, &config_path, NULL);
    if (rc != CLI_OK)
        goto fail;
    if (optind != argc - 1) {
        rc = cli_usage_error(cmd, "name one merchant by its id (pagoflex merchant list)");
        goto fail;
    }
    const char *id = argv[optind];
    if (strcmp(id, STORE_MERCHANT_DEFAULT) == 0) {
        rc = cli_error("%s cannot be disabled: it acts for the config's api_key_sha256 keys and owns the "
                       "payments made before merchants; remove those keys from the config instead",
                       STORE_MERCHANT_DEFAULT);
        goto fail;
    }
    if ((rc = cli_open_store(NULL, config_path, CLI_SCHEMA_MIGRATE, &s)) != CLI_OK)
        goto fail;
    arena = arena_new();
    store_result sr = arena ? store_merchant_disable(s, id, arena, &when) : STORE_ERROR;
    switch (sr) {
    case STORE_OK:
        fprintf(stderr,
                "pagoflex: disabled merchant %s at %s; its API keys are refused from now on, on "
                "every host\n",
                id, when);
        rc = CLI_OK;
        break;
    case STORE_CONFLICT:
        fprintf(stderr, "pagoflex: merchant %s was already disabled (at %s)\n", id, when);
        rc = CLI_OK;
        break;
    case STORE_NOT_FOUND:
        rc = cli_error("no merchant with id '%.44s'; see: pagoflex merchant list", id);
        break;
    default:
        rc = cli_error("cannot disable the merchant (database error)");
        break;
    }
fail:
    arena_free(arena);
    store_close(s);
    return rc;
}
