/* cli_plugin_trust.c - `pagoflex plugin keygen | sign`; see plugin_trust.h. */
#include "cli_plugin_trust.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "plugin_trust.h"
#include "secrets.h"

#define TRUST_CLI_ERRLEN 1024
#define TRUST_CLI_MAX_PLUGIN (256u << 20)

static int trust_cli_option(const cli_command *cmd, int c, char **argv)
{
    if (c == ':')
        return cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
    return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
}

int cli_plugin_keygen(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *prefix = NULL;
    char *priv = NULL, *pub = NULL, *priv_path = NULL, *pub_path = NULL;
    char id[65], err[TRUST_CLI_ERRLEN];
    int c, force = 0, rc = CLI_ERROR;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:f", opts, NULL)) != -1) {
        switch (c) {
        case 'o': prefix = optarg; break;
        case 'f': force = 1; break;
        default: rc = trust_cli_option(cmd, c, argv); goto fail;
        }
    }
    if (!prefix || optind != argc) {
        rc = cli_usage_error(cmd, "give --out PREFIX (writes PREFIX.key and PREFIX.pub)");
        goto fail;
    }
    if (asprintf(&priv_path, "%s.key", prefix) < 0 || asprintf(&pub_path, "%s.pub", prefix) < 0) {
        priv_path = pub_path = NULL;
        rc = cli_error("out of memory");
        goto fail;
    }
    if (plugin_trust_keygen(&priv, &pub, id, err, sizeof err) != 0) {
        rc = cli_error("%s", err);
        goto fail;
    }
    int mode = force ? CLI_WRITE_REPLACE : CLI_WRITE_EXCL;
    if (cli_write_file(priv_path, priv, strlen(priv), mode, err, sizeof err) != 0 ||
        cli_write_file(pub_path, pub, strlen(pub), mode, err, sizeof err) != 0) {
        rc = cli_error("%s%s", err, force ? "" : " (--force replaces existing files)");
        goto fail;
    }
    chmod(pub_path, 0644);
    fprintf(stderr, "pagoflex: wrote signing key %s (mode 0600) and public key %s (key id %.16s); "
            "list %s in trusted_keys\n", priv_path, pub_path, id, pub_path);
    rc = CLI_OK;
fail:
    if (priv) {
        OPENSSL_cleanse(priv, strlen(priv));
        free(priv);
    }
    free(pub);
    free(priv_path);
    free(pub_path);
    return rc;
}

int cli_plugin_sign(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL, *file = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    char *sig = NULL, *sig_path = NULL, err[TRUST_CLI_ERRLEN];
    int c, rc = CLI_ERROR;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        default: rc = trust_cli_option(cmd, c, argv); goto fail;
        }
    }
    if (!key || optind != argc - 1) {
        rc = cli_usage_error(cmd, "give --key SIGNER.key and one plugin file");
        goto fail;
    }
    file = argv[optind];
    if (secrets_read_file(file, TRUST_CLI_MAX_PLUGIN, &data, &len, err, sizeof err) != 0 ||
        plugin_trust_sign(key, data, len, &sig, err, sizeof err) != 0) {
        rc = cli_error("%s", err);
        goto fail;
    }
    if (asprintf(&sig_path, "%s%s", file, PLUGIN_TRUST_SIG_SUFFIX) < 0) {
        sig_path = NULL;
        rc = cli_error("out of memory");
        goto fail;
    }
    if (cli_write_file(sig_path, sig, strlen(sig), CLI_WRITE_REPLACE, err, sizeof err) != 0) {
        rc = cli_error("%s", err);
        goto fail;
    }
    chmod(sig_path, 0644);
    fprintf(stderr, "pagoflex: wrote %s\n", sig_path);
    rc = CLI_OK;
fail:
    free(data);
    free(sig);
    free(sig_path);
    return rc;
}
