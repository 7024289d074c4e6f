/* cli_secrets.c - `pagoflex secrets ...`: master keys and credential files.
 *
 * Key source for encrypt/decrypt: an explicit --key-file wins (what the
 * operator typed is what is used); without it, $PAGOFLEX_MASTER_KEY, then
 * $PAGOFLEX_MASTER_KEY_FILE, as secrets_key_load() does for the daemon.
 */
#include "cli_secrets.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "hex.h"
#include "secrets.h"

#define CLI_ERRLEN 1024

/* Report a getopt failure ('?' unknown option, ':' missing argument). */
static int cli_bad_option(const cli_command *cmd, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (optopt > 0 && optopt < 128 && isalpha(optopt)) {
        char opt[3] = {'-', (char)optopt, '\0'};
        /* For a long option optopt is its short alias; name what was typed. */
        if (strncmp(arg, "--", 2) != 0)
            arg = opt;
        if (c == ':')
            return cli_usage_error(cmd, "option %s needs a value", arg);
    } else if (c == ':') {
        return cli_usage_error(cmd, "option %s needs a value", arg);
    }
    return cli_usage_error(cmd, "unknown option %s", arg);
}

/* A plugin name becomes part of a file name (NAME.cfg.enc): keep it to
 * letters, digits, '_', '-', '.', not starting with '.'. */
static int cli_check_plugin(const cli_command *cmd, const char *plugin)
{
    if (!plugin || !*plugin)
        return cli_usage_error(cmd, "--plugin NAME is required (the plugin the file belongs to)");
    if (strlen(plugin) > SECRETS_MAX_PLUGIN_NAME || plugin[0] == '.')
        return cli_usage_error(cmd, "invalid plugin name; use the plugin's file name without .so");
    for (const char *p = plugin; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return cli_usage_error(cmd, "invalid plugin name '%s': use letters, digits, '_', "
                                   "'-' and '.' only (the plugin's file name without .so)",
                                   plugin);
    }
    return CLI_OK;
}

int cli_secrets_binding(const cli_command *cmd, const char *plugin, const char *account, char *out,
                        size_t cap)
{
    int rc = cli_check_plugin(cmd, plugin);
    if (rc != CLI_OK)
        return rc;
    size_t n = account ? strlen(account) : 0;
    if (account && (n == 0 || n > 32 || strspn(account, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n))
        return cli_usage_error(cmd,
                               "invalid account name '%.40s': [a-z0-9_-]{1,32} (the connector account, "
                               "as in: pagoflex merchant account add M --connector KEY --account NAME)",
                               account);
    if (secrets_binding_name(plugin, account, out, cap) != 0)
        return cli_usage_error(cmd, "plugin name too long");
    return CLI_OK;
}

static int cli_load_key(const char *key_file, secrets_key *key)
{
    char err[CLI_ERRLEN];
    const char *env = getenv(SECRETS_ENV_KEY), *env_file = getenv(SECRETS_ENV_KEY_FILE);
    if (!key_file && (!env || !*env) && (!env_file || !*env_file))
        return cli_error("no master key given; pass --key-file FILE or set $" SECRETS_ENV_KEY_FILE
                         " (or $" SECRETS_ENV_KEY ")");
    int rc = key_file ? secrets_key_from_file(key_file, key, err, sizeof err)
                      : secrets_key_load(NULL, key, err, sizeof err);
    if (rc != 0)
        return cli_error("%s", err);
    return CLI_OK;
}

int cli_secrets_keygen(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int force = 0, c, rc = CLI_ERROR;
    secrets_key key;
    char hex[2 * SECRETS_KEY_LEN + 2];
    char id[2 * SECRETS_KEY_ID_LEN + 1];
    char err[CLI_ERRLEN];

    memset(&key, 0, sizeof key);
    memset(hex, 0, sizeof hex);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:f", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        default: rc = cli_bad_option(cmd, c, argv); goto fail;
        }
    }
    if (optind < argc) {
        rc = cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
        goto fail;
    }
    if (secrets_key_generate(&key) != 0) {
        rc = cli_error("cannot generate a key: the OpenSSL random generator failed; "
                       "check the system entropy source");
        goto fail;
    }
    hex_encode(key.bytes, SECRETS_KEY_LEN, hex);
    hex[2 * SECRETS_KEY_LEN] = '\n';
    secrets_key_id_hex(&key, id);
    if (!out) {
        if (cli_write_stdout(hex, 2 * SECRETS_KEY_LEN + 1) != 0) {
            rc = cli_error("cannot write the key to standard output");
            goto fail;
        }
        rc = CLI_OK;
        goto fail;
    }
    if (cli_write_file(out, hex, 2 * SECRETS_KEY_LEN + 1,
                       force ? CLI_WRITE_REPLACE : CLI_WRITE_EXCL, err, sizeof err) != 0) {
        rc = cli_error("%s", err);
        goto fail;
    }
    fprintf(stderr, "pagoflex: wrote master key %s (mode 0600, key id %s); keep a backup: "
            "credential files cannot be read without it\n", out, id);
    rc = CLI_OK;
fail:
    OPENSSL_cleanse(hex, sizeof hex);
    secrets_key_wipe(&key);
    return rc;
}

/* Read the plaintext from `path`, or stdin when path is NULL or "-". */
static int cli_read_plain(const char *path, unsigned char **buf, size_t *len)
{
    char err[CLI_ERRLEN];
    if (!path || strcmp(path, "-") == 0) {
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "pagoflex: reading credentials from the terminal; end with Ctrl-D\n");
        if (cli_read_stdin(SECRETS_MAX_PLAIN, buf, len, err, sizeof err) != 0)
            return cli_error("%s", err);
        return CLI_OK;
    }
    if (secrets_read_file(path, SECRETS_MAX_PLAIN, buf, len, err, sizeof err) != 0)
        return cli_error("%s", err);
    return CLI_OK;
}

int cli_secrets_encrypt(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugin", required_argument, NULL, 'p'},   {"account", required_argument, NULL, 'a'},
        {"key-file", required_argument, NULL, 'k'}, {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},      {NULL, 0, NULL, 0},
    };
    const char *plugin = NULL, *account = NULL, *key_file = NULL, *in = NULL, *out = NULL;
    char binding[SECRETS_MAX_PLUGIN_NAME + 40];
    char *default_out = NULL;
    unsigned char *plain = NULL, *enc = NULL;
    size_t plain_len = 0, enc_len = 0;
    pagoflex_credentials *creds = NULL;
    secrets_key key;
    char err[CLI_ERRLEN], id[2 * SECRETS_KEY_ID_LEN + 1];
    int c, rc = CLI_ERROR;

    memset(&key, 0, sizeof key);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:a:k:i:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plugin = optarg; break;
        case 'a':
            account = optarg;
            break;
        case 'k': key_file = optarg; break;
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        default: rc = cli_bad_option(cmd, c, argv); goto fail;
        }
    }
    if (optind < argc) {
        rc = cli_usage_error(cmd, "unexpected argument %s (give the plaintext with --in FILE)",
                             argv[optind]);
        goto fail;
    }
    if ((rc = cli_secrets_binding(cmd, plugin, account, binding, sizeof binding)) != CLI_OK)
        goto fail;
    rc = CLI_ERROR;
    if (!out) {
        /* As the host looks for it under credentials_dir (registry.h). */
        if (asprintf(&default_out, "%s.cfg.enc", binding) < 0) {
            default_out = NULL;
            rc = cli_error("out of memory");
            goto fail;
        }
        if (strchr(binding, '/') && mkdir(plugin, 0700) != 0 && errno != EEXIST) {
            rc = cli_error("cannot create folder %s for the accounts of plugin %s: %s", plugin, plugin,
                           strerror(errno));
            goto fail;
        }
        out = default_out;
    }
    if (cli_load_key(key_file, &key) != CLI_OK)
        goto fail;
    if (cli_read_plain(in, &plain, &plain_len) != CLI_OK)
        goto fail;
    /* Refuse now what the daemon would refuse at load time. */
    if (secrets_parse_credentials((const char *)plain, plain_len, &creds, err, sizeof err) != 0) {
        rc = cli_error("refusing to encrypt %s: %s", in && strcmp(in, "-") ? in : "standard input",
                       err);
        goto fail;
    }
    if (creds->count == 0)
        cli_warn("%s holds no settings; the plugin will get no credentials",
                 in && strcmp(in, "-") ? in : "standard input");
    if (secrets_encrypt(&key, binding, plain, plain_len, &enc, &enc_len, err, sizeof err) != 0) {
        rc = cli_error("cannot encrypt: %s", err);
        goto fail;
    }
    if (cli_write_file(out, enc, enc_len, CLI_WRITE_REPLACE, err, sizeof err) != 0) {
        rc = cli_error("%s", err);
        goto fail;
    }
    secrets_key_id_hex(&key, id);
    fprintf(stderr, "pagoflex: wrote %s for plugin %s account %s (%zu setting%s, key id %s)\n", out, plugin,
            account ? account : "default", creds->count, creds->count == 1 ? "" : "s", id);
    rc = CLI_OK;
fail:
    creds_free(creds);
    if (plain) {
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
    }
    free(enc);
    free(default_out);
    secrets_key_wipe(&key);
    return rc;
}

int cli_secrets_decrypt(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugin", required_argument, NULL, 'p'},
        {"account", required_argument, NULL, 'a'},
        {"key-file", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *plugin = NULL, *account = NULL, *key_file = NULL, *path = NULL;
    char binding[SECRETS_MAX_PLUGIN_NAME + 40];
    unsigned char *file = NULL, *plain = NULL;
    size_t file_len = 0, plain_len = 0;
    secrets_key key;
    char err[CLI_ERRLEN];
    int c, rc = CLI_ERROR;

    memset(&key, 0, sizeof key);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:a:k:", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plugin = optarg; break;
        case 'a':
            account = optarg;
            break;
        case 'k': key_file = optarg; break;
        default: rc = cli_bad_option(cmd, c, argv); goto fail;
        }
    }
    if (optind != argc - 1) {
        rc = cli_usage_error(cmd, optind == argc ? "name the encrypted file to decrypt"
                                                 : "give exactly one file to decrypt");
        goto fail;
    }
    path = argv[optind];
    if ((rc = cli_secrets_binding(cmd, plugin, account, binding, sizeof binding)) != CLI_OK)
        goto fail;
    rc = CLI_ERROR;
    if (cli_load_key(key_file, &key) != CLI_OK)
        goto fail;
    if (secrets_read_file(path, SECRETS_MAX_FILE, &file, &file_len, err, sizeof err) != 0) {
        rc = cli_error("%s", err);
        goto fail;
    }
    if (secrets_decrypt(&key, binding, file, file_len, &plain, &plain_len, err, sizeof err) != 0) {
        rc = cli_error("cannot decrypt %s for plugin %s account %s: %s", path, plugin,
                       account ? account : "default", err);
        goto fail;
    }
    if (isatty(STDOUT_FILENO))
        cli_warn("printing the credentials of plugin %s to the terminal", plugin);
    if (cli_write_stdout(plain, plain_len) != 0) {
        rc = cli_error("cannot write to standard output");
        goto fail;
    }
    rc = CLI_OK;
fail:
    free(file);
    if (plain) {
        OPENSSL_cleanse(plain, plain_len + 1);
        free(plain);
    }
    secrets_key_wipe(&key);
    return rc;
}
