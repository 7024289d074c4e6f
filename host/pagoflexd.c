/* pagoflexd - the Pagoflex payment-connector host.
 *
 *   pagoflexd -c etc/pagoflex.cfg [--port-file FILE]
 *
 * Loads every connector plugin from plugin_dir, serves the HTTP API, and
 * stops gracefully on SIGINT or SIGTERM (a second signal stops at once).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "executor.h"
#include "log.h"
#include "plugin_trust.h"
#include "registry.h"
#include "secrets.h"
#include "store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: pagoflexd -c CONFIG [--port-file FILE]\n"
               "  -c, --config FILE     host configuration (libconfig syntax; see etc/pagoflex.cfg)\n"
               "      --port-file FILE  write the bound port to FILE once listening\n"
               "  -h, --help            this text\n");
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *port_file = NULL;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"port-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        usage(stderr);
        return 2;
    }

    char err[1024];
    config cfg;
    if (config_load(config_path, &cfg, err, sizeof err)) {
        log_error("%s", err);
        return 1;
    }
    log_set_level((pagoflex_log_level)log_level_parse(cfg.log_level));

    /* Signals are taken synchronously by the main thread; every other thread
     * inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    secrets_key key, prev_key;
    plugin_trust *trust = NULL;
    store *st = NULL;
    registry *reg = NULL;
    api_server *srv = NULL;
    int fd = -1;
    bool have_key = false, have_prev = false;

    if (executor_global_init()) {
        log_error("libcurl could not be initialised");
        goto out;
    }
    if (secrets_key_load(cfg.master_key_file, &key, err, sizeof err)) {
        log_error("master key: %s", err);
        goto out;
    }
    have_key = true;
    if (cfg.previous_master_key_file) {
        if (secrets_key_from_file(cfg.previous_master_key_file, &prev_key, err, sizeof err)) {
            log_error("previous master key: %s", err);
            goto out;
        }
        have_prev = true;
    }
    trust = plugin_trust_new(cfg.require_signed_plugins != 0,
                             (const char *const *)cfg.trusted_keys, cfg.trusted_key_count, err,
                             sizeof err);
    if (!trust) {
        log_error("plugin signatures: %s", err);
        goto out;
    }
    st = store_open(cfg.database, cfg.db_pool_size);
    if (!st) {
        log_error("out of memory opening the database pool");
        goto out;
    }
    registry_options ropts = {.plugin_dir = cfg.plugin_dir, .credentials_dir = cfg.credentials_dir,
                              .private_dir = cfg.private_dir, .master_key = &key,
                              .previous_master_key = have_prev ? &prev_key : NULL,
                              .trust = trust};
    reg = registry_new(&ropts);
    if (!reg) {
        log_error("out of memory creating the plugin registry");
        goto out;
    }
    int loaded = registry_load_dir(reg, err, sizeof err);
    if (loaded < 0) {
        log_error("plugin directory: %s", err);
        goto out;
    }
    /* Credentials are not needed once every plugin's init has run. */
    secrets_key_wipe(&key);
    have_key = false;
    if (have_prev)
        secrets_key_wipe(&prev_key);
    have_prev = false;

    int port = 0;
    fd = api_listen(cfg.listen_address, cfg.port, &port, err, sizeof err);
    if (fd < 0) {
        log_error("%s", err);
        goto out;
    }
    api_context ctx;
    api_context_init(&ctx, &cfg, st, reg);
    ctx.generation = 1;
    char migrate_err[512];
    if (store_migrate(st, migrate_err, sizeof migrate_err) == STORE_OK)
        atomic_store(&ctx.schema_ready, true);
    else
        log_warn("database not ready yet (%s); API calls answer 503 until it is", migrate_err);

    srv = api_start(&ctx, fd, err, sizeof err);
    if (!srv) {
        log_error("%s", err);
        goto out;
    }
    if (port_file && write_port_file(port_file, port)) {
        log_error("cannot write port file %s: %s", port_file, strerror(errno));
        goto out;
    }
    log_info("pagoflexd listening on http://%s:%d (connectors loaded: %d, public url %s)", cfg.listen_address,
             port, loaded, cfg.public_url);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_warn("SIGHUP: reload is not supported by this build; restart pagoflexd to load new plugins");
            continue;
        }
        log_info("signal %d: stopping (finishing requests in flight)", sig);
        break;
    }
    api_quiesce(srv);
    rc = 0;
out:
    api_stop(srv);
    if (fd >= 0)
        close(fd);
    registry_free(reg);
    store_close(st);
    if (have_key)
        secrets_key_wipe(&key);
    if (have_prev)
        secrets_key_wipe(&prev_key);
    plugin_trust_free(trust);
    config_free(&cfg);
    log_info("pagoflexd stopped");
    return rc;
}
