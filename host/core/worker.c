/* worker.c - one worker process: loads the plugins, serves HTTP, drains.
 *
 * A worker is forked by the master with the listening socket already open.
 * It loads the plugin directory as it is now (falling back to each plugin's
 * last good version when a new file is rejected, skipping quarantined ones),
 * decrypts credentials, and serves the API on the shared socket. It tells
 * the master it is ready by writing one byte to its ready pipe.
 *
 * SIGTERM or SIGINT: stop accepting (MHD_quiesce_daemon), answer what is in
 * flight with Connection: close, wait for connections to end (drain
 * deadline), stop, fini and dlclose the plugins: no thread runs plugin code
 * by then. A worker whose master dies gets SIGTERM (PR_SET_PDEATHSIG).
 * SIGQUIT stops it the same way. SIGUSR1 reopens the log file (the master
 * relays its SIGUSR1 to every worker). SIGHUP is the master's business and
 * SIGUSR2 means nothing to a worker: both are ignored. The other stray
 * signals keep what the master set (see master.c).
 */
#include "worker.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "admin.h"
#include "api.h"
#include "executor.h"
#include "janitor.h"
#include "log.h"
#include "metrics.h"
#include "notifier.h"
#include "notify_secret.h"
#include "plugin_trust.h"
#include "workpool.h"
#include "reconciler.h"
#include "registry.h"
#include "secrets.h"
#include "store.h"
#include "store_batch.h"

static void worker_register_plugins(const worker_params *p, registry *reg)
{
    for (size_t i = 0; i < registry_count(reg); i++) {
        /* The registry hands out const plugins; the busy pointer is the
         * one field the worker sets after loading. */
        registry_plugin *pl = (registry_plugin *)registry_at(reg, i);
        /* A plugin's accounts are adjacent and share its one crash counter. */
        const registry_plugin *prev = i ? registry_at(reg, i - 1) : NULL;
        pl->busy = prev && strcmp(prev->name, pl->name) == 0
                       ? prev->busy
                       : crashboard_register(p->board, p->slot, pl->name);
    }
}

static void worker_ready(const worker_params *p)
{
    if (p->ready_fd < 0)
        return;
    char byte = 'R';
    ssize_t w = write(p->ready_fd, &byte, 1);
    (void)w;
    close(p->ready_fd);
}

int worker_main(const worker_params *p)
{
    const config *cfg = p->cfg;
    char err[1024];
    int rc = 1;
    secrets_key key, prev_key;
    bool have_key = false, have_prev = false;
    plugin_trust *trust = NULL;
    store *st = NULL;
    registry *reg = NULL;
    api_server *srv = NULL;
    api_context ctx = {0};
    notify_keys nkeys = {0};

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    metrics_set_worker(p->slot);
    if (getppid() != p->master_pid)
        return 1; /* the master died before prctl took effect */
    /* Exactly these are blocked (every thread inherits the mask) and taken
     * by sigwait below; the rest of the master's mask is dropped. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    signal(SIGUSR2, SIG_IGN); /* before the mask lets a pending one through */
    pthread_sigmask(SIG_SETMASK, &sigs, NULL);

    if (executor_global_init()) {
        log_error("worker: libcurl could not be initialised");
        goto out;
    }
    if (secrets_key_load(cfg->master_key_file, &key, err, sizeof err)) {
        log_error("worker: master key: %s", err);
        goto out;
    }
    have_key = true;
    if (cfg->previous_master_key_file) {
        if (secrets_key_from_file(cfg->previous_master_key_file, &prev_key, err, sizeof err)) {
            log_error("worker: previous master key: %s", err);
            goto out;
        }
        have_prev = true;
    }
    trust = plugin_trust_new(cfg->require_signed_plugins != 0, (const char *const *)cfg->trusted_keys,
                             cfg->trusted_key_count, err, sizeof err);
    if (!trust) {
        log_error("worker: plugin signatures: %s", err);
        goto out;
    }
    st = store_open(cfg->database, cfg->db_pool_size);
    registry_options ropts = {.plugin_dir = cfg->plugin_dir, .credentials_dir = cfg->credentials_dir,
                              .private_dir = cfg->private_dir, .master_key = &key,
                              .previous_master_key = have_prev ? &prev_key : NULL, .trust = trust,
                              .keep_last_good = true, .skip = p->quarantine,
                              .settings = cfg->connector_settings,
                              .settings_count = cfg->connector_setting_count};
    reg = st ? registry_new(&ropts) : NULL;
    if (!reg) {
        log_error("worker: out of memory");
        goto out;
    }
    if (registry_load_dir(reg, err, sizeof err) < 0) {
        log_error("worker: plugin directory: %s", err);
        goto out;
    }
    /* Credentials are not needed once init has run; the master keys stay
     * for one purpose only: sealing and opening webhook endpoint secrets,
     * which the host signs every notification with. */
    nkeys.current = key;
    nkeys.have_previous = have_prev;
    if (have_prev)
        nkeys.previous = prev_key;
    secrets_key_wipe(&key);
    have_key = false;
    if (have_prev)
        secrets_key_wipe(&prev_key);
    have_prev = false;
    worker_register_plugins(p, reg);

    api_context_init(&ctx, cfg, st, reg);
    ctx.generation = p->generation;
    ctx.admin_fd = p->admin_fd;
    ctx.notify_keys = &nkeys;
    /* Group commit of the hot-path writes, on connections of its own. */
    if (cfg->db_batch_max > 0 &&
        !(ctx.batch = store_batch_open(cfg->database, cfg->db_batch_connections, cfg->db_batch_max))) {
        log_error("worker: cannot start the group-commit writers");
        goto out;
    }
    /* Bank calls wait on one libcurl multi thread, and connectors' own
     * blocking executors on a few pool threads: never one thread each. */
    ctx.bankq = bankq_start(cfg->bank_max_connections);
    ctx.blocking = workpool_start(cfg->blocking_threads);
    if (!ctx.bankq || !ctx.blocking) {
        log_error("worker: cannot start the bank threads");
        goto out;
    }
    char migrate_err[512];
    if (admin_schema_ready(&ctx, migrate_err, sizeof migrate_err)) {
        atomic_store(&ctx.schema_ready, true);
    } else if (!cfg->migrate && store_ping(st)) {
        /* The database answers and the schema is behind: serving would
         * fail on every statement that needs what is missing. */
        log_error("worker: %s", migrate_err);
        goto out;
    } else {
        log_warn("database not ready yet (%s); API calls answer 503 until it is", migrate_err);
    }
    srv = api_start(&ctx, p->listen_fd, err, sizeof err);
    if (!srv) {
        log_error("worker: %s", err);
        goto out;
    }
    /* Background settling of open payments (retries, status sync, deadlines). */
    if (reconciler_start(&ctx) != 0)
        goto out;
    /* Retention, whatever reconcile_workers says. */
    if (janitor_start(&ctx) != 0)
        goto out;
    /* Notifications to merchants, on their own thread and libcurl handle. */
    if (notifier_start(&ctx) != 0)
        goto out;
    log_info("worker ready: generation=%u connectors=%zu", p->generation, registry_count(reg));
    worker_ready(p);

    int sig = 0;
    do {
        if (sigwait(&sigs, &sig) != 0)
            sig = 0;
        if (sig == SIGUSR1)
            log_reopen();
    } while (sig != SIGTERM && sig != SIGINT && sig != SIGQUIT);

    api_quiesce(srv);
    /* From here the next generation takes every new connection. */
    log_info("worker draining: generation=%u (no longer accepting connections)", p->generation);
    int left = api_drain(srv, cfg->drain_timeout_ms);
    if (left > 0)
        log_warn("worker: drain deadline of %d ms passed with %d connection(s) open; closing them",
                 cfg->drain_timeout_ms, left);
    rc = 0;
out:
    reconciler_stop(); /* before the plugins go: its threads call them */
    janitor_stop();    /* before the registry goes: it reads its copies */
    notifier_stop();   /* before the store goes */
    /* Answer bank calls still waiting (after the drain deadline) as unknown
     * outcomes, so no connection stays suspended, then let those requests
     * finish before the server stops. */
    bankq_stop(ctx.bankq);
    workpool_stop(ctx.blocking);
    ctx.blocking = NULL;
    for (int waited = 0; srv && atomic_load(&ctx.in_flight) > 0 && waited < 2000; waited += 10)
        usleep(10 * 1000);
    /* Writes still queued are run and their requests resumed while the
     * server is up; a request that writes after this does it on the pool. */
    store_batch_close(ctx.batch);
    ctx.batch = NULL;
    api_stop(srv); /* waits for handlers: after this no thread runs plugin code */
    bankq_free(ctx.bankq);
    registry_free(reg);
    store_close(st);
    plugin_trust_free(trust);
    if (have_key)
        secrets_key_wipe(&key);
    if (have_prev)
        secrets_key_wipe(&prev_key);
    secrets_key_wipe(&nkeys.current);
    secrets_key_wipe(&nkeys.previous);
    log_info("worker stopped: generation=%u", p->generation);
    return rc;
}
