/* cli_webhook.c - `pagoflex webhook verify` (see cli_webhook.h).
 *
 * The plugin is loaded exactly as `plugin check` loads it (a private
 * temporary copy, credentials re-encrypted under a throwaway key), so the
 * verdict is the one a serving host would reach with the same credentials
 * and clock. Credentials: an encrypted <name>.cfg.enc with the master key
 * (--key-file, or $PAGOFLEX_MASTER_KEY_FILE / $PAGOFLEX_MASTER_KEY), or
 * plaintext --credential NAME=VALUE pairs for test values.
 */
#include "cli_webhook.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli_plugin.h"
#include "secrets.h"

#define CLI_WEBHOOK_MAX_HEADERS 64
#define CLI_WEBHOOK_MAX_CREDENTIALS 64
#define CLI_WEBHOOK_MAX_BODY (16u << 20)
#define CLI_WEBHOOK_NAME_MAX 256

/* Split "Name: value" into h (name copied into name_buf). -1 if malformed. */
static int cli_webhook_header(const char *arg, pagoflex_header *h, char *name_buf)
{
    const char *colon = strchr(arg, ':');
    size_t n = colon ? (size_t)(colon - arg) : 0;
    if (!colon || n == 0 || n >= CLI_WEBHOOK_NAME_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)arg[i] <= 0x20 || (unsigned char)arg[i] >= 0x7f)
            return -1;
    memcpy(name_buf, arg, n);
    name_buf[n] = '\0';
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    h->name = name_buf;
    h->value = v;
    return 0;
}

int cli_webhook_verify(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugin", required_argument, NULL, 'p'},
        {"credentials", required_argument, NULL, 'c'},
        {"key-file", required_argument, NULL, 'k'},
        {"credential", required_argument, NULL, 'C'},
        {"plugin-name", required_argument, NULL, 'n'},
        {"now", required_argument, NULL, 't'},
        {"header", required_argument, NULL, 'H'},
        {"query", required_argument, NULL, 'q'},
        {"body-file", required_argument, NULL, 'b'},
        {"method", required_argument, NULL, 'm'},
        {"path", required_argument, NULL, 'P'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    check_options co = {0};
    check_delivery dl = {.method = "POST", .query = ""};
    const char *pairs[CLI_WEBHOOK_MAX_CREDENTIALS];
    static pagoflex_header headers[CLI_WEBHOOK_MAX_HEADERS];
    static char names[CLI_WEBHOOK_MAX_HEADERS][CLI_WEBHOOK_NAME_MAX];
    const char *key_file = NULL, *body_file = NULL;
    unsigned char *body = NULL;
    secrets_key key;
    char err[2048], path_buf[80];
    int c, have_key = 0, rc = CLI_ERROR;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': co.plugin_file = optarg; break;
        case 'c': co.credentials_file = optarg; break;
        case 'k': key_file = optarg; break;
        case 'n': co.plugin_name = optarg; break;
        case 'v': co.verbose = 1; break;
        case 'q': dl.query = optarg[0] == '?' ? optarg + 1 : optarg; break;
        case 'b': body_file = optarg; break;
        case 'm': dl.method = optarg; break;
        case 'P': dl.path = optarg; break;
        case 'C':
            if (cli_plugin_pair_ok(optarg) != 0)
                return cli_usage_error(cmd, "--credential needs NAME=VALUE with a setting name "
                                       "[A-Za-z_][A-Za-z0-9_]* before the '='");
            if (co.credential_count == CLI_WEBHOOK_MAX_CREDENTIALS)
                return cli_usage_error(cmd, "at most %d --credential options",
                                       CLI_WEBHOOK_MAX_CREDENTIALS);
            pairs[co.credential_count++] = optarg;
            break;
        case 'H':
            if (dl.header_count == CLI_WEBHOOK_MAX_HEADERS)
                return cli_usage_error(cmd, "at most %d --header options",
                                       CLI_WEBHOOK_MAX_HEADERS);
            if (cli_webhook_header(optarg, &headers[dl.header_count],
                                   names[dl.header_count]) != 0)
                return cli_usage_error(cmd, "--header needs 'Name: value' (a token name, a "
                                       "colon, the value); got '%.80s'",
                                       optarg);
            dl.header_count++;
            break;
        case 't': {
            char *end = NULL;
            errno = 0;
            long long t = strtoll(optarg, &end, 10);
            if (errno || !*optarg || *end || t <= 0)
                return cli_usage_error(cmd, "--now needs Unix seconds (e.g. 1767225600); got "
                                       "'%.40s'",
                                       optarg);
            dl.now = (int64_t)t;
            break;
        }
        default: {
            const char *arg = optind > 0 ? argv[optind - 1] : "?";
            return cli_usage_error(cmd, "unknown option or missing value: %s", arg);
        }
        }
    }
    if (optind != argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!co.plugin_file)
        return cli_usage_error(cmd, "--plugin FILE.so is required");
    if (!body_file)
        return cli_usage_error(cmd, "--body-file FILE is required (the raw body as received; "
                               "/dev/null for an empty one)");
    if (co.credential_count && co.credentials_file)
        return cli_usage_error(cmd, "give either --credentials FILE or --credential NAME=VALUE, "
                               "not both");
    if (key_file && !co.credentials_file)
        return cli_usage_error(cmd, "--key-file only makes sense with --credentials");
    co.credentials = pairs;
    dl.headers = headers;
    if (secrets_read_file(body_file, CLI_WEBHOOK_MAX_BODY, &body, &dl.body_len, err,
                          sizeof err) != 0)
        return cli_error("%s", err);
    dl.body = body;
    if (co.credentials_file) {
        const char *env = getenv(SECRETS_ENV_KEY), *env_file = getenv(SECRETS_ENV_KEY_FILE);
        if (!key_file && (!env || !*env) && (!env_file || !*env_file)) {
            rc = cli_usage_error(cmd, "--credentials needs the master key: pass --key-file "
                                 "FILE or set $" SECRETS_ENV_KEY_FILE);
            goto done;
        }
        int krc = key_file ? secrets_key_from_file(key_file, &key, err, sizeof err)
                           : secrets_key_load(NULL, &key, err, sizeof err);
        if (krc != 0) {
            rc = cli_error("%s", err);
            goto done;
        }
        have_key = 1;
        co.master_key = &key;
    }
    if (!dl.path) {
        /* The path a serving host would see is /webhooks/<webhook_path>;
         * without --path the plugin's name stands in. */
        const char *base = strrchr(co.plugin_file, '/');
        base = base ? base + 1 : co.plugin_file;
        snprintf(path_buf, sizeof path_buf, "/webhooks/%.*s", (int)strcspn(base, "."), base);
        dl.path = path_buf;
    }
    int r = check_webhook_replay(&co, &dl, stdout, err, sizeof err);
    if (r < 0)
        rc = cli_error("cannot replay the webhook with %s: %s", co.plugin_file, err);
    else
        rc = r == 0 ? CLI_OK : CLI_ERROR;
done:
    if (have_key)
        secrets_key_wipe(&key);
    free(body);
    return rc;
}
