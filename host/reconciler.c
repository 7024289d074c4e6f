/* reconciler.c - settles payments whose outcome is not known yet. */
#include "reconciler.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "bankcall.h"
#include "log.h"
#include "payment.h"
#include "store_orphan.h"
#include "store_recon.h"

#define RECON_ERROR_MAX 300

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool running;
    bool stopping;
    pthread_t *threads;
    int count;
    api_context *ctx;
} recon = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* What one attempt found out about a payment. */
typedef struct recon_outcome {
    bool settled;   /* moved (or found moved); nothing left to do now */
    bool reached;   /* a call of this attempt may have reached the bank */
    bool not_found; /* the bank says it does not know the payment */
    char error[RECON_ERROR_MAX];
} recon_outcome;

static bool recon_stopping(void)
{
    pthread_mutex_lock(&recon.mu);
    bool s = recon.stopping;
    pthread_mutex_unlock(&recon.mu);
    return s;
}

/* Sleep `ms` or until stopped. */
static void recon_sleep(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&recon.mu);
    if (!recon.stopping)
        pthread_cond_timedwait(&recon.wake, &recon.mu, &ts);
    pthread_mutex_unlock(&recon.mu);
}

/* retry_base_ms * 2^(attempts-1), at most retry_max_ms, then a random
 * value in [d/2, d] so that hosts do not retry in step. */
static long recon_backoff(const config *cfg, int attempts, unsigned *seed)
{
    long d = cfg->retry_base_ms;
    for (int i = 1; i < attempts && d < cfg->retry_max_ms; i++)
        d *= 2;
    if (d > cfg->retry_max_ms)
        d = cfg->retry_max_ms;
    long half = d / 2;
    return half + (half > 0 ? (long)(rand_r(seed) % (unsigned long)(half + 1)) : 0);
}

static void recon_error(recon_outcome *o, const pagoflex_payment_result *res)
{
    snprintf(o->error, sizeof o->error, "%s: %.250s", res->error_code ? res->error_code : "unknown",
             res->error_message ? res->error_message : "no detail");
}

/* Record a bank's verdict; settled unless the store is unreachable. */
static void recon_apply(api_context *ctx, const store_payment *p, const char *source,
                        const char *detail, const pagoflex_payment_result *res,
                        pagoflex_arena *arena, recon_outcome *o)
{
    store_payment now;
    store_result sr = store_payment_transition_from(ctx->store, p->id, res->state, source, detail,
                                                    res->provider_reference_id, res->error_code,
                                                    res->error_message, arena, &now);
    if (sr != STORE_OK && sr != STORE_CONFLICT) {
        snprintf(o->error, sizeof o->error, "could not record the bank's answer (store error %d)",
                 (int)sr);
        return;
    }
    log_info("reconciler: payment %s %s -> %s (%s%s%s)", p->id, payment_state_name(p->state),
             payment_state_name(now.state), source, detail ? " " : "", detail ? detail : "");
    int applied = 0;
    if (res->provider_reference_id)
        store_orphan_apply(ctx->store, p->connector, res->provider_reference_id, &applied);
    o->settled = true;
    if (sr == STORE_OK && res->state == PAGOFLEX_STATE_PENDING && applied == 0)
        store_recon_schedule(ctx->store, p->id, ctx->cfg->webhook_grace_s * 1000, NULL, true,
                             false);
}

/* Re-send the create call of `p` (same id: the bank's idempotency key). */
static void recon_resend(api_context *ctx, const registry_plugin *pl, const store_payment *p,
                         const pagoflex_payment *pay, int attempt, pagoflex_arena *arena,
                         recon_outcome *o)
{
    pagoflex_http_request req = {0};
    bankcall_enter(pl);
    int rc = pl->desc->build_request(pl->state, pay, arena, &req);
    bankcall_leave(pl);
    if (rc != PAGOFLEX_OK || !req.url || !req.method) {
        snprintf(o->error, sizeof o->error, "connector_error: %s could not build the request (status %d)",
                 pl->desc->key, rc);
        return;
    }
    pagoflex_payment_result res;
    pagoflex_transport transport = PAGOFLEX_TRANSPORT_ERROR;
    bankcall_create(pl, pay, &req, ctx->cfg->bank_timeout_ms, arena, &res, &transport);
    o->reached = transport != PAGOFLEX_TRANSPORT_CONNECT;
    if (res.state == PAGOFLEX_STATE_PROCESSING) {
        recon_error(o, &res);
        /* A row left `created` by a host that died is now known to be
         * waiting for the bank: say so, with the reason. */
        if (p->state == PAGOFLEX_STATE_CREATED) {
            store_payment now;
            store_payment_transition_from(ctx->store, p->id, PAGOFLEX_STATE_PROCESSING,
                                          STORE_SOURCE_RECONCILER, "recovered", NULL,
                                          res.error_code, res.error_message, arena, &now);
        }
        return;
    }
    char detail[48];
    snprintf(detail, sizeof detail, "resend, attempt %d", attempt);
    recon_apply(ctx, p, STORE_SOURCE_RECONCILER, detail, &res, arena, o);
}

/* Ask the bank about `p`. Returns false when there was nothing to ask by
 * (the caller re-sends instead). */
static bool recon_sync(api_context *ctx, const registry_plugin *pl, const store_payment *p,
                       const pagoflex_payment *pay, int attempt, pagoflex_arena *arena,
                       recon_outcome *o)
{
    pagoflex_payment_result res;
    int rc = bankcall_sync(pl, pay, ctx->cfg->bank_timeout_ms, arena, &res);
    if (rc == PAGOFLEX_ERR_NOT_FOUND) {
        if (p->state != PAGOFLEX_STATE_PENDING)
            return false;
        o->not_found = true;
        snprintf(o->error, sizeof o->error, "bank_not_found: the bank does not know this payment");
        return true;
    }
    if (rc != PAGOFLEX_OK) {
        snprintf(o->error, sizeof o->error, "connector_error: %s sync failed (status %d)",
                 pl->desc->key, rc);
        return true;
    }
    o->reached = true;
    if (res.state == PAGOFLEX_STATE_PROCESSING) {
        recon_error(o, &res);
        return true;
    }
    if (res.state == PAGOFLEX_STATE_PENDING && p->state == PAGOFLEX_STATE_PENDING) {
        snprintf(o->error, sizeof o->error, "bank_pending: the bank has not decided yet");
        return true;
    }
    char detail[48];
    snprintf(detail, sizeof detail, "attempt %d", attempt);
    recon_apply(ctx, p, STORE_SOURCE_SYNC, detail, &res, arena, o);
    return true;
}

/* Past the deadline and still open: a final state that says why. */
static void recon_give_up(api_context *ctx, const store_recon_item *it, const recon_outcome *o,
                          pagoflex_arena *arena)
{
    const store_payment *p = &it->payment;
    bool open_create = p->state != PAGOFLEX_STATE_PENDING;
    bool never_sent = open_create && !it->maybe_at_bank && !o->reached;
    pagoflex_state to = PAGOFLEX_STATE_REQUIRES_REVIEW;
    const char *code = "outcome_unknown";
    char msg[512];
    if (never_sent || o->not_found) {
        to = PAGOFLEX_STATE_FAILED;
        code = "expired";
        snprintf(msg, sizeof msg, "%s within payment_deadline_s (%ld s); last: %.300s",
                 o->not_found ? "the bank does not know this payment"
                              : "the bank never received this payment",
                 ctx->cfg->payment_deadline_s, o->error);
    } else {
        snprintf(msg, sizeof msg,
                 "no final answer from the bank within payment_deadline_s (%ld s); the bank may "
                 "have the payment; last: %.300s",
                 ctx->cfg->payment_deadline_s, o->error);
    }
    store_payment now;
    store_result sr = store_payment_transition_from(ctx->store, p->id, to, STORE_SOURCE_RECONCILER,
                                                    "deadline", NULL, code, msg, arena, &now);
    if (sr == STORE_OK)
        log_warn("reconciler: payment %s %s -> %s (%s): %s", p->id, payment_state_name(p->state),
                 payment_state_name(to), code, msg);
}

/* One attempt at settling a claimed payment. */
static void recon_one(api_context *ctx, const store_recon_item *it, unsigned *seed,
                      pagoflex_arena *arena)
{
    const store_payment *p = &it->payment;
    recon_outcome o = {0};
    const registry_plugin *pl = registry_find_key(ctx->registry, p->connector);
    pagoflex_payment pay;
    if (!pl) {
        snprintf(o.error, sizeof o.error, "connector %s is not loaded on this host", p->connector);
    } else if (bankcall_payment(ctx->cfg->public_url, pl, p, arena, &pay) != 0) {
        snprintf(o.error, sizeof o.error, "out of memory");
    } else {
        bool has_sync = bankcall_has_sync(pl);
        bool asked = false;
        if (has_sync && (p->state == PAGOFLEX_STATE_PENDING || p->provider_reference_id))
            asked = recon_sync(ctx, pl, p, &pay, it->attempts, arena, &o);
        if (!asked && p->state != PAGOFLEX_STATE_PENDING)
            recon_resend(ctx, pl, p, &pay, it->attempts, arena, &o);
        else if (!asked)
            snprintf(o.error, sizeof o.error,
                     "no_sync: connector %s cannot query the bank; waiting for its webhook",
                     pl->desc->key);
    }
    if (o.settled)
        return;
    if (it->past_deadline) {
        recon_give_up(ctx, it, &o, arena);
        return;
    }
    long delay = recon_backoff(ctx->cfg, it->attempts, seed);
    log_info("reconciler: payment %s still %s after attempt %d (%s); next in %ld ms", p->id,
             payment_state_name(p->state), it->attempts, o.error, delay);
    store_recon_schedule(ctx->store, p->id, delay, o.error, o.reached, false);
}

static void *recon_main(void *arg)
{
    api_context *ctx = recon.ctx;
    const config *cfg = ctx->cfg;
    int index = (int)(intptr_t)arg;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(index * 2654435761u);
    store_recon_timing t = {
        .recover_created_ms = cfg->recover_after_ms,
        .first_retry_ms = cfg->retry_base_ms,
        .webhook_grace_ms = cfg->webhook_grace_s * 1000,
        .lease_ms = cfg->reconcile_lease_ms,
        .deadline_s = cfg->payment_deadline_s,
    };
    while (!recon_stopping()) {
        size_t count = 0;
        if (api_db_ready(ctx)) {
            pagoflex_arena *arena = arena_new();
            store_recon_item *items = NULL;
            if (arena && store_recon_claim(ctx->store, &t, cfg->reconcile_batch, arena, &items,
                                           &count) == STORE_OK) {
                for (size_t i = 0; i < count && !recon_stopping(); i++)
                    recon_one(ctx, &items[i], &seed, arena);
            }
            arena_free(arena);
        }
        /* A full batch: more may be due at once. */
        if (count < (size_t)cfg->reconcile_batch) {
            long jitter = cfg->reconcile_interval_ms / 4;
            recon_sleep(cfg->reconcile_interval_ms - jitter +
                        (jitter > 0 ? (long)(rand_r(&seed) % (unsigned long)(2 * jitter + 1)) : 0));
        }
    }
    return NULL;
}

int reconciler_start(api_context *ctx)
{
    int n = ctx->cfg->reconcile_workers;
    pthread_mutex_lock(&recon.mu);
    if (recon.running) {
        pthread_mutex_unlock(&recon.mu);
        log_error("reconciler: already running in this process");
        return -1;
    }
    recon.running = true;
    recon.stopping = false;
    recon.ctx = ctx;
    recon.count = 0;
    recon.threads = n > 0 ? calloc((size_t)n, sizeof *recon.threads) : NULL;
    pthread_mutex_unlock(&recon.mu);
    if (n > 0 && !recon.threads)
        goto fail;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&recon.threads[i], NULL, recon_main, (void *)(intptr_t)i) != 0)
            goto fail;
        recon.count++;
    }
    log_info("reconciler: %d worker(s), every %ld ms, retry %ld..%ld ms, webhook grace %ld s, "
             "deadline %ld s",
             n, ctx->cfg->reconcile_interval_ms, ctx->cfg->retry_base_ms, ctx->cfg->retry_max_ms,
             ctx->cfg->webhook_grace_s, ctx->cfg->payment_deadline_s);
    return 0;

fail:
    log_error("reconciler: could not start %d worker thread(s)", n);
    reconciler_stop();
    return -1;
}

void reconciler_stop(void)
{
    pthread_mutex_lock(&recon.mu);
    if (!recon.running) {
        pthread_mutex_unlock(&recon.mu);
        return;
    }
    recon.stopping = true;
    pthread_cond_broadcast(&recon.wake);
    pthread_mutex_unlock(&recon.mu);
    for (int i = 0; i < recon.count; i++)
        pthread_join(recon.threads[i], NULL);
    free(recon.threads);
    pthread_mutex_lock(&recon.mu);
    recon.threads = NULL;
    recon.count = 0;
    recon.running = false;
    recon.ctx = NULL;
    pthread_mutex_unlock(&recon.mu);
}
