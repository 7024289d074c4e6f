/* configtest.c - `pagoflexd -t`: test a configuration as nginx -t does. */
#include "configtest.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "creds.h"
#include "executor.h"
#include "log.h"
#include "plugin_trust.h"
#include "registry.h"
#include "secrets.h"

#define CONFIGTEST_ERRLEN 1024

static void configtest_say(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "pagoflexd: <what>: <message>" on stderr. */
static void configtest_say(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pagoflexd: %s: ", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static bool configtest_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcmp(name + n - k, suffix) == 0;
}

static int configtest_address(const char *setting, const char *address)
{
    struct in_addr a;
    if (inet_pton(AF_INET, address, &a) == 1)
        return 0;
    configtest_say("FAIL", "setting '%s' is '%s': not an IPv4 address", setting, address);
    return 1;
}

/* Decrypt every <credentials_dir>/<plugin>.cfg.enc with the configured keys. */
static int configtest_credentials(const config *cfg, const secrets_key *const *keys)
{
    DIR *d = opendir(cfg->credentials_dir);
    int problems = 0;
    if (!d) {
        configtest_say("FAIL", "credentials_dir %s: %s", cfg->credentials_dir, strerror(errno));
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !configtest_suffix(de->d_name, ".cfg.enc"))
            continue;
        char path[4096], plugin[256], err[CONFIGTEST_ERRLEN];
        size_t stem = strlen(de->d_name) - strlen(".cfg.enc");
        int n = snprintf(path, sizeof path, "%s/%s", cfg->credentials_dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof path || stem >= sizeof plugin) {
            configtest_say("FAIL", "credentials %s: name too long", de->d_name);
            problems++;
            continue;
        }
        memcpy(plugin, de->d_name, stem);
        plugin[stem] = '\0';
        pagoflex_credentials *creds = NULL;
        if (secrets_load_credentials_keys(keys, 2, path, plugin, &creds, err, sizeof err) != 0) {
            configtest_say("FAIL", "credentials %s: %s", path, err);
            problems++;
            continue;
        }
        configtest_say("ok", "credentials %s decrypt (%zu setting%s)", path, creds->count,
                       creds->count == 1 ? "" : "s");
        creds_free(creds);
    }
    closedir(d);
    return problems;
}

/* Load the plugin directory as a worker would, into a private temporary
 * folder; every rejection is a problem. */
static int configtest_plugins(const config *cfg, const secrets_key *key, const secrets_key *prev,
                              plugin_trust *trust)
{
    char private_dir[] = "/tmp/pagoflexd-t.XXXXXX", err[CONFIGTEST_ERRLEN];
    int problems = 0;
    if (!mkdtemp(private_dir)) {
        configtest_say("FAIL", "cannot create a private folder in /tmp: %s", strerror(errno));
        return 1;
    }
    registry_options ro = {.plugin_dir = cfg->plugin_dir,
                           .credentials_dir = cfg->credentials_dir,
                           .private_dir = private_dir,
                           .master_key = key,
                           .previous_master_key = prev,
                           .trust = trust};
    registry *reg = registry_new(&ro);
    int loaded = reg ? registry_load_dir(reg, err, sizeof err) : -1;
    if (loaded < 0) {
        configtest_say("FAIL", "plugin_dir %s: %s", cfg->plugin_dir, reg ? err : "out of memory");
        problems++;
        goto out;
    }
    for (size_t i = 0; i < registry_count(reg); i++) {
        const registry_plugin *p = registry_at(reg, i);
        configtest_say("ok", "plugin %s loads: %s %s (ABI %u.%u) account %s", p->file, p->desc->key,
                       p->desc->version, (unsigned)p->desc->abi_major, (unsigned)p->desc->abi_minor,
                       p->account);
    }
    for (size_t i = 0; i < registry_account_rejected_count(reg); i++) {
        const registry_account_rejection *ra = registry_account_rejected_at(reg, i);
        configtest_say("FAIL", "plugin %s account %s: %s", ra->plugin, ra->account, ra->reason);
        problems++;
    }
    for (size_t i = 0; i < registry_rejected_count(reg); i++) {
        const registry_rejection *rj = registry_rejected_at(reg, i);
        configtest_say("FAIL", "plugin %s: %s", rj->file, rj->reason);
        problems++;
    }
    if (registry_count(reg) == 0 && problems == 0) {
        configtest_say("FAIL", "plugin_dir %s holds no plugin: the host would serve no connector",
                       cfg->plugin_dir);
        problems++;
    }
out:
    registry_free(reg);
    /* Without keep_last_good, registry_free removes the private copies;
     * the folder itself goes here. */
    rmdir(private_dir);
    return problems;
}

int configtest_run(const char *config_path)
{
    char err[CONFIGTEST_ERRLEN];
    config cfg;
    secrets_key key, prev;
    bool have_key = false, have_prev = false;
    plugin_trust *trust = NULL;
    int problems = 0;

    if (config_load(config_path, &cfg, err, sizeof err) != 0) {
        configtest_say("FAIL", "%s", err);
        configtest_say("configuration file", "%s test failed", config_path);
        return 1;
    }
    configtest_say("ok", "configuration file %s syntax and settings are ok", config_path);
    /* Rejections of plugins are logged as the host logs them: keep those
     * lines (they say why) but not the info chatter. */
    log_set_level(PAGOFLEX_LOG_WARN);
    problems += configtest_address("listen", cfg.listen_address);
    if (cfg.admin_port)
        problems += configtest_address("admin_listen", cfg.admin_listen);
    if (secrets_key_load(cfg.master_key_file, &key, err, sizeof err) != 0) {
        configtest_say("FAIL", "master key: %s", err);
        problems++;
    } else {
        have_key = true;
        configtest_say("ok", "master key %s",
                       getenv("PAGOFLEX_MASTER_KEY") ? "from $PAGOFLEX_MASTER_KEY" : cfg.master_key_file);
    }
    if (cfg.previous_master_key_file) {
        if (secrets_key_from_file(cfg.previous_master_key_file, &prev, err, sizeof err) != 0) {
            configtest_say("FAIL", "previous master key: %s", err);
            problems++;
        } else {
            have_prev = true;
        }
    }
    trust = plugin_trust_new(cfg.require_signed_plugins != 0, (const char *const *)cfg.trusted_keys,
                             cfg.trusted_key_count, err, sizeof err);
    if (!trust) {
        configtest_say("FAIL", "plugin signatures: %s", err);
        problems++;
    }
    if (have_key) {
        const secrets_key *keys[2] = {&key, have_prev ? &prev : NULL};
        problems += configtest_credentials(&cfg, keys);
        if (trust) {
            if (executor_global_init() != 0) {
                configtest_say("FAIL", "libcurl could not be initialised");
                problems++;
            } else {
                problems += configtest_plugins(&cfg, &key, have_prev ? &prev : NULL, trust);
            }
        }
    }
    if (have_key)
        secrets_key_wipe(&key);
    if (have_prev)
        secrets_key_wipe(&prev);
    plugin_trust_free(trust);
    config_free(&cfg);
    if (problems) {
        configtest_say("configuration file", "%s test failed: %d problem%s (above)", config_path, problems,
                       problems == 1 ? "" : "s");
        return 1;
    }
    configtest_say("configuration file", "%s test is successful", config_path);
    return 0;
}
