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
#include "condwait.h"
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
    bool settled;   /* moved, found moved, or no longer ours: nothing left to do now */
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
    pthread_mutex_lock(&recon.mu);
    if (!recon.stopping)
        condwait_ms(&recon.wake, &recon.mu, ms);
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

/* Why a reconciler transition of `it` was refused, for the log. */
static const char *recon_refused_why(const store_recon_item *it, const store_payment *now,
                                     bool lost_claim, char *buf, size_t len)
{
    if (lost_claim)
        snprintf(buf, len, "another reconciler claimed it after this claim's lease ran out");
    else
        snprintf(buf, len, "it is now %s, not %s as decided from", payment_state_name(now->state),
                 payment_state_name(it->payment.state));
    return buf;
}

/* Record a bank's verdict; settled unless the store is unreachable. The
 * move happens only from the state it was decided from, under our claim. */
static void recon_apply(api_context *ctx, const store_recon_item *it, const char *source,
                        const char *detail, const pagoflex_payment_result *res,
                        pagoflex_arena *arena, recon_outcome *o)
{
    const store_payment *p = &it->payment;
    store_payment now;
    bool lost = false;
    char why[128];
    store_result sr = store_recon_transition(ctx->store, it, res->state, source, detail,
                                             res->provider_reference_id, res->error_code,
                                             res->error_message, arena, &now, &lost);
    if (sr != STORE_OK && sr != STORE_CONFLICT) {
        snprintf(o->error, sizeof o->error, "could not record the bank's answer (store error %d)",
                 (int)sr);
        return;
    }
    if (sr == STORE_OK)
        log_info("reconciler: payment %s %s -> %s (%s%s%s)", p->id, payment_state_name(p->state),
                 payment_state_name(now.state), source, detail ? " " : "", detail ? detail : "");
    else
        log_info("reconciler: payment %s: the bank's answer (%s) not applied: %s", p->id,
                 payment_state_name(res->state), recon_refused_why(it, &now, lost, why, sizeof why));
    int applied = 0;
    if (res->provider_reference_id)
        store_orphan_apply(ctx->store, p->connector, res->provider_reference_id, &applied);
    o->settled = true;
    if (sr == STORE_OK && res->state == PAGOFLEX_STATE_PENDING && applied == 0)
        store_recon_reschedule(ctx->store, it, ctx->cfg->webhook_grace_s * 1000, NULL, true, NULL);
}

/* A re-send answered FAILED without a 2xx (401 during an API-key rotation,
 * 400, 404, 422, ...) while an earlier call may have reached the bank: the
 * refusal is of this request, not proof that the bank lacks the payment the
 * first call may have made. Only a 2xx verdict (a replayed REJECTED, say)
 * or a bank that never saw the payment makes FAILED final. */
static bool recon_refusal_unproven(const store_recon_item *it, const pagoflex_payment_result *res,
                                   pagoflex_transport transport, int status)
{
    bool verdict = transport == PAGOFLEX_TRANSPORT_OK && status >= 200 && status < 300;
    return res->state == PAGOFLEX_STATE_FAILED && it->maybe_at_bank && !verdict;
}

/* The flow verdict as the payment verdict the rest of this file reads. */
static pagoflex_payment_result recon_result_of(const pagoflex_flow_result *f)
{
    pagoflex_payment_result res = {.state = f->state,
                                   .provider_reference_id = f->provider_reference_id,
                                   .error_code = f->error_code,
                                   .error_message = f->error_message};
    return res;
}

/* The AUTHORIZE flow of stored payment `p` (as the API sent it). */
static void recon_authorize_input(const store_payment *p, const pagoflex_payment *pay, pagoflex_flow_input *in)
{
    bankcall_authorize_input(in, pay, p->manual_capture, p->return_url, p->payment_method_type,
                              p->payment_method_token);
}

/* Re-send the create call of `it` (same id: the bank's idempotency key). */
static void recon_resend(api_context *ctx, const registry_plugin *pl, const store_recon_item *it,
                         const pagoflex_payment *pay, pagoflex_arena *arena, recon_outcome *o)
{
    const store_payment *p = &it->payment;
    pagoflex_flow_input in;
    recon_authorize_input(p, pay, &in);
    pagoflex_flow_result fres;
    pagoflex_transport transport = PAGOFLEX_TRANSPORT_ERROR;
    int status = 0;
    int rc = bankcall_flow(pl, &in, ctx->cfg->bank_timeout_ms, arena, &fres, &transport, &status);
    if (rc != PAGOFLEX_OK) {
        snprintf(o->error, sizeof o->error, "connector_error: %s could not build the request (status %d)",
                 pl->desc->key, rc);
        return;
    }
    pagoflex_payment_result res = recon_result_of(&fres);
    o->reached = transport != PAGOFLEX_TRANSPORT_CONNECT;
    bool unproven = recon_refusal_unproven(it, &res, transport, status);
    if (unproven) {
        snprintf(o->error, sizeof o->error,
                 "%s: %.180s (HTTP %d to a re-send; an earlier call may have reached the bank, "
                 "so the payment stays open)",
                 res.error_code ? res.error_code : "bank_refused",
                 res.error_message ? res.error_message : "no detail", status);
        log_warn("reconciler: payment %s: re-send refused with HTTP %d (%s); not failed, since "
                 "the bank may have it from an earlier call; check connector %s's credentials and "
                 "settings",
                 p->id, status, res.error_code ? res.error_code : "no code", pl->desc->key);
    }
    if (res.state == PAGOFLEX_STATE_PROCESSING || unproven) {
        if (!unproven)
            recon_error(o, &res);
        /* A row left `created` by a host that died is now known to be
         * waiting for the bank: say so, with the reason. */
        if (p->state == PAGOFLEX_STATE_CREATED) {
            store_payment now;
            bool lost = false;
            store_recon_transition(ctx->store, it, PAGOFLEX_STATE_PROCESSING,
                                   STORE_SOURCE_RECONCILER, "recovered", NULL, res.error_code,
                                   unproven ? o->error : res.error_message, arena, &now, &lost);
        }
        return;
    }
    char detail[48];
    snprintf(detail, sizeof detail, "resend, attempt %d", it->attempts);
    recon_apply(ctx, it, STORE_SOURCE_RECONCILER, detail, &res, arena, o);
}

/* Ask the bank about `it`. Returns false when there was nothing to ask by
 * (the caller re-sends instead). */
static bool recon_sync(api_context *ctx, const registry_plugin *pl, const store_recon_item *it,
                       const pagoflex_payment *pay, pagoflex_arena *arena, recon_outcome *o)
{
    const store_payment *p = &it->payment;
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in,
                              .flow = PAGOFLEX_FLOW_PAYMENT_SYNC,
                              .payment = pay,
                              .operation_id = pay->id};
    pagoflex_flow_result fres;
    int rc = bankcall_flow(pl, &in, ctx->cfg->bank_timeout_ms, arena, &fres, NULL, NULL);
    pagoflex_payment_result res = recon_result_of(&fres);
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
    snprintf(detail, sizeof detail, "attempt %d", it->attempts);
    recon_apply(ctx, it, STORE_SOURCE_SYNC, detail, &res, arena, o);
    return true;
}

/* Past the deadline and still open: a final state that says why, decided
 * from it->payment.state and applied only if the payment is still in it. */
static void recon_give_up(api_context *ctx, const store_recon_item *it, const recon_outcome *o,
                          pagoflex_arena *arena)
{
    const store_payment *p = &it->payment;
    bool open_create = p->state != PAGOFLEX_STATE_PENDING;
    bool never_sent = open_create && !it->maybe_at_bank && !o->reached;
    pagoflex_state to = PAGOFLEX_STATE_REQUIRES_REVIEW;
    const char *code = "outcome_unknown";
    char msg[512], why[128];
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
    bool lost = false;
    store_result sr = store_recon_transition(ctx->store, it, to, STORE_SOURCE_RECONCILER,
                                             "deadline", NULL, code, msg, arena, &now, &lost);
    if (sr == STORE_OK)
        log_warn("reconciler: payment %s %s -> %s (%s): %s", p->id, payment_state_name(p->state),
                 payment_state_name(to), code, msg);
    else if (sr == STORE_CONFLICT)
        log_info("reconciler: payment %s not given up as %s: %s", p->id, payment_state_name(to),
                 recon_refused_why(it, &now, lost, why, sizeof why));
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
        bool has_sync = registry_has_flow(pl, PAGOFLEX_FLOW_PAYMENT_SYNC);
        bool asked = false;
        if (has_sync && (p->state == PAGOFLEX_STATE_PENDING || p->provider_reference_id))
            asked = recon_sync(ctx, pl, it, &pay, arena, &o);
        if (!asked && p->state != PAGOFLEX_STATE_PENDING)
            recon_resend(ctx, pl, it, &pay, arena, &o);
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
    bool kept = false;
    store_recon_reschedule(ctx->store, it, delay, o.error, o.reached, &kept);
    if (kept)
        log_info("reconciler: payment %s still %s after attempt %d (%s); next in %ld ms", p->id,
                 payment_state_name(p->state), it->attempts, o.error, delay);
    else
        log_info("reconciler: payment %s still %s after attempt %d (%s); not rescheduled: it "
                 "settled or another reconciler claimed it meanwhile",
                 p->id, payment_state_name(p->state), it->attempts, o.error);
}

/* Work a claimed batch one payment at a time. Each payment after the first
 * has its lease renewed (and its row re-read) just before it is worked: one
 * whose lease ran out while it waited, and that another reconciler claimed
 * since, is skipped, never worked twice at once. */
static void recon_batch(api_context *ctx, const store_recon_timing *t, store_recon_item *items,
                        size_t count, unsigned *seed, pagoflex_arena *arena)
{
    for (size_t i = 0; i < count && !recon_stopping(); i++) {
        if (i > 0) {
            store_result sr = store_recon_renew(ctx->store, t, arena, &items[i]);
            if (sr == STORE_CONFLICT) {
                log_debug("reconciler: payment %s skipped: it settled, or another reconciler "
                          "claimed it after this claim's lease ran out",
                          items[i].payment.id);
                continue;
            }
            if (sr != STORE_OK)
                return; /* the store is away: the rest of the batch lapses and is claimed again */
        }
        recon_one(ctx, &items[i], seed, arena);
    }
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
                recon_batch(ctx, &t, items, count, &seed, arena);
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
