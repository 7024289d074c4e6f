/* cli_payment.c - `pagoflex payment resolve`.
 *
 * A payment the host could not settle alone (requires_review: the bank's
 * answer never came, or contradicted itself) is settled by an operator who
 * asked the bank: succeeded or failed, with who did it (--by, else the OS
 * user; under sudo, the user who ran sudo) and why, in the payment's
 * history (source "operator"). The change is an ordinary state change, so
 * the merchant is notified of it like any other. The database is -c
 * CONFIG's, else $PAGOFLEX_DATABASE.
 */
#include "cli_payment.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "config.h"
#include "payment.h"
#include "store.h"
#include "store_resolve.h"
#include "textcheck.h"

#define CLI_PAYMENT_ERRLEN 512
#define CLI_PAYMENT_REASON_MAX 500
#define CLI_PAYMENT_WHO_MAX 64

/* Who runs this: the user sudo ran as, else the effective user. */
static const char *cli_payment_who(void)
{
    const char *sudo = getenv("SUDO_USER");
    if (geteuid() == 0 && sudo && *sudo)
        return sudo;
    struct passwd *pw = getpwuid(geteuid());
    return pw ? pw->pw_name : "unknown";
}

static int cli_payment_store(const char *config_path, store **out)
{
    char err[CLI_PAYMENT_ERRLEN];
    char *conninfo = NULL;
    if (config_path) {
        config cfg;
        if (config_load(config_path, &cfg, err, sizeof err) != 0)
            return cli_error("%s", err);
        conninfo = strdup(cfg.database);
        config_free(&cfg);
    } else {
        const char *env = getenv("PAGOFLEX_DATABASE");
        if (!env || !*env)
            return cli_error("no database given; pass -c CONFIG (its `database` setting) or set "
                             "$PAGOFLEX_DATABASE to a libpq conninfo");
        conninfo = strdup(env);
    }
    if (!conninfo)
        return cli_error("out of memory");
    store *s = store_open(conninfo, 1);
    free(conninfo);
    if (!s)
        return cli_error("out of memory");
    int applied = 0, pending = 0;
    if (store_schema_status(s, &applied, &pending, err, sizeof err) != STORE_OK || pending > 0) {
        store_close(s);
        return cli_error("database: %s; run `pagoflex db migrate` first if versions are pending",
                         pending > 0 ? "the schema is behind this build" : err);
    }
    *out = s;
    return CLI_OK;
}

int cli_payment_resolve(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"status", required_argument, NULL, 's'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {"by", required_argument, NULL, 'b'},
                                         {0, 0, 0, 0}};
    const char *config_path = NULL, *status = NULL, *reason = NULL, *by = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c == 'c')
            config_path = optarg;
        else if (c == 's')
            status = optarg;
        else if (c == 'r')
            reason = optarg;
        else if (c == 'b')
            by = optarg;
        else
            return cli_usage_error(cmd, "unknown option or missing value: %s", argv[optind - 1]);
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, "give one payment id");
    const char *id = argv[optind];
    if (!status || (strcmp(status, "succeeded") != 0 && strcmp(status, "failed") != 0))
        return cli_usage_error(cmd, "--status must be succeeded or failed");
    if (!reason || !*reason || strlen(reason) > CLI_PAYMENT_REASON_MAX ||
        !textcheck_utf8(reason, strlen(reason)))
        return cli_usage_error(cmd, "--reason is required: why, in 1 to %d bytes of UTF-8 text",
                               CLI_PAYMENT_REASON_MAX);
    const char *who = by ? by : cli_payment_who();
    if (!*who || strlen(who) > CLI_PAYMENT_WHO_MAX || !textcheck_printable(who, strlen(who)))
        return cli_usage_error(cmd, "--by must be 1 to %d printable characters without spaces",
                               CLI_PAYMENT_WHO_MAX);
    size_t idlen = strlen(id);
    if (idlen == 0 || idlen > 64 || !textcheck_printable(id, idlen))
        return cli_usage_error(cmd, "'%s' is not a payment id (pay_...)", id);

    store *s = NULL;
    int rc = cli_payment_store(config_path, &s);
    if (rc != CLI_OK)
        return rc;
    pagoflex_arena *arena = arena_new();
    if (!arena) {
        store_close(s);
        return cli_error("out of memory");
    }
    pagoflex_state to = strcmp(status, "succeeded") == 0 ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_FAILED;
    store_payment p;
    store_result sr = store_payment_resolve(s, id, to, who, reason, arena, &p);
    if (sr == STORE_OK)
        printf("payment %s: requires_review -> %s (by %s: %s)\n", p.id, payment_state_name(p.state), who,
               reason);
    else if (sr == STORE_CONFLICT)
        rc = cli_error("payment %s is %s, not requires_review; nothing was changed", id,
                       payment_state_name(p.state));
    else if (sr == STORE_NOT_FOUND)
        rc = cli_error("no payment with id '%s'", id);
    else
        rc = cli_error("the database could not record it (%s); nothing was changed",
                       sr == STORE_UNAVAILABLE ? "PostgreSQL is unreachable" : "store error");
    arena_free(arena);
    store_close(s);
    return rc;
}
