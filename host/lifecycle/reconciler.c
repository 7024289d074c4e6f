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
#include "store_flows.h"
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
        store_orphan_apply(ctx->store, p->connector, p->connector_account, res->provider_reference_id,
                           &applied);
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
    /* The payment's own account: its credentials, never another's. */
    const registry_plugin *pl = registry_find_account(ctx->registry, p->connector, p->connector_account);
    pagoflex_payment pay;
    if (!pl) {
        snprintf(o.error, sizeof o.error, "connector %s account %s is not loaded on this host", p->connector,
                 p->connector_account);
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

/* ---- refunds ------------------------------------------------------------- */

/* What one attempt found out about a refund. */
typedef struct recon_refund_verdict {
    bool apply;          /* move the refund to `to` */
    pagoflex_state to;
    bool settled;        /* nothing left to do now */
    char error[RECON_ERROR_MAX];
} recon_refund_verdict;

/* The flow input of claimed refund `f` of payment `p`: the REFUND flow
 * (re-sent with the refund id as the bank's idempotency key) or REFUND_SYNC. */
static void recon_refund_input(const store_refund *f, const store_payment *p, const pagoflex_payment *pay,
                               bool sync, pagoflex_flow_input *in)
{
    memset(in, 0, sizeof *in);
    in->size = (uint32_t)sizeof *in;
    in->flow = sync ? PAGOFLEX_FLOW_REFUND_SYNC : PAGOFLEX_FLOW_REFUND;
    in->payment = pay;
    in->operation_id = f->id;
    in->amount = f->amount;
    in->amount_captured = p->amount_received;
    in->amount_refunded = p->amount_refunded;
    in->refund_id = f->id;
    in->refund_provider_reference_id = f->provider_reference_id;
    in->reason = f->reason;
}

/* Decide from the bank's answer to a refund's re-send or sync. FAILED is
 * final only as a 2xx verdict (REJECTED, REFUND_FAILED): any other refusal
 * of a re-send does not prove that the first call, which may have reached
 * the bank, did nothing. */
static void recon_refund_decide(const store_refund *f, bool sync, int rc, const pagoflex_flow_result *res,
                                pagoflex_transport transport, int status, recon_refund_verdict *v)
{
    bool verdict = transport == PAGOFLEX_TRANSPORT_OK && status >= 200 && status < 300;
    if (rc == PAGOFLEX_ERR_NOT_FOUND) {
        snprintf(v->error, sizeof v->error,
                 "bank_not_found: the bank does not know refund %s (bank id %s); kept pending, since the "
                 "bank gave us that id",
                 f->id, f->provider_reference_id ? f->provider_reference_id : "none");
        return;
    }
    if (rc != PAGOFLEX_OK) {
        snprintf(v->error, sizeof v->error, "connector_error: the %s could not be built (status %d)",
                 sync ? "refund sync" : "refund re-send", rc);
        return;
    }
    const char *code = res->error_code ? res->error_code : "unknown";
    const char *msg = res->error_message ? res->error_message : "no detail";
    switch (res->state) {
    case PAGOFLEX_STATE_SUCCEEDED:
        v->apply = true;
        v->to = PAGOFLEX_STATE_SUCCEEDED;
        return;
    case PAGOFLEX_STATE_FAILED:
        if (verdict) {
            v->apply = true;
            v->to = PAGOFLEX_STATE_FAILED;
            return;
        }
        snprintf(v->error, sizeof v->error,
                 "%s: %.180s (HTTP %d to a re-send; an earlier call may have reached the bank, so the "
                 "refund stays pending)",
                 code, msg, status);
        return;
    case PAGOFLEX_STATE_PENDING:
        if (f->state != PAGOFLEX_STATE_PENDING) {
            v->apply = true;
            v->to = PAGOFLEX_STATE_PENDING;
            return;
        }
        snprintf(v->error, sizeof v->error, "bank_pending: the bank has not decided the refund yet");
        return;
    default:
        snprintf(v->error, sizeof v->error, "%s: %.250s", code, msg);
        return;
    }
}

/* Past the deadline and still open: requires_review (shown as pending with
 * its error), never failed, since the bank may have the refund. */
static void recon_refund_give_up(api_context *ctx, const store_refund_item *it, const char *last,
                                 pagoflex_arena *arena)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "no final answer from the bank within payment_deadline_s (%ld s); the bank may have the "
             "refund; last: %.300s",
             ctx->cfg->payment_deadline_s, last);
    store_refund now;
    bool lost = false;
    store_result sr = store_refund_recon_transition(ctx->store, it, PAGOFLEX_STATE_REQUIRES_REVIEW,
                                                    STORE_SOURCE_RECONCILER, "deadline", NULL, "outcome_unknown",
                                                    msg, arena, &now, &lost);
    if (sr == STORE_OK)
        log_warn("reconciler: refund %s %s -> requires_review (outcome_unknown): %s", it->refund.id,
                 payment_state_name(it->refund.state), msg);
    else if (sr == STORE_CONFLICT)
        log_info("reconciler: refund %s not given up: %s", it->refund.id,
                 lost ? "another reconciler claimed it" : "its state changed");
}

/* One attempt at settling a claimed refund: created/processing (outcome
 * unknown) are re-sent with the same refund id, pending ones (accepted,
 * webhook late) synced. */
static void recon_refund_one(api_context *ctx, const store_refund_item *it, unsigned *seed,
                             pagoflex_arena *arena)
{
    const store_refund *f = &it->refund;
    recon_refund_verdict v = {0};
    const registry_plugin *pl = registry_find_account(ctx->registry, f->connector, f->connector_account);
    store_payment p;
    pagoflex_payment pay;
    bool sync = f->state == PAGOFLEX_STATE_PENDING;
    if (!pl) {
        snprintf(v.error, sizeof v.error, "connector %s account %s is not loaded on this host", f->connector,
                 f->connector_account);
    } else if (store_payment_get(ctx->store, f->payment_id, arena, &p) != STORE_OK) {
        snprintf(v.error, sizeof v.error, "could not read payment %s", f->payment_id);
    } else if (bankcall_payment(ctx->cfg->public_url, pl, &p, arena, &pay) != 0) {
        snprintf(v.error, sizeof v.error, "out of memory");
    } else if (sync && (!registry_has_flow(pl, PAGOFLEX_FLOW_REFUND_SYNC) || !f->provider_reference_id)) {
        snprintf(v.error, sizeof v.error, "no_sync: connector %s cannot query this refund; waiting for its webhook",
                 pl->desc->key);
    } else {
        pagoflex_flow_input in;
        recon_refund_input(f, &p, &pay, sync, &in);
        pagoflex_flow_result res = {0};
        pagoflex_transport transport = PAGOFLEX_TRANSPORT_ERROR;
        int status = 0;
        int rc = bankcall_flow(pl, &in, ctx->cfg->bank_timeout_ms, arena, &res, &transport, &status);
        recon_refund_decide(f, sync, rc, &res, transport, status, &v);
        if (v.apply) {
            char detail[48];
            snprintf(detail, sizeof detail, "%s, attempt %d", sync ? "sync" : "resend", it->attempts);
            store_refund now;
            bool lost = false;
            store_result sr = store_refund_recon_transition(
                ctx->store, it, v.to, sync ? STORE_SOURCE_SYNC : STORE_SOURCE_RECONCILER, detail,
                res.provider_reference_id, res.error_code, res.error_message, arena, &now, &lost);
            if (sr == STORE_OK) {
                log_info("reconciler: refund %s %s -> %s (%s)", f->id, payment_state_name(f->state),
                         payment_state_name(now.state), detail);
                v.settled = true;
                if (now.state == PAGOFLEX_STATE_PENDING) {
                    store_refund_item moved = *it;
                    moved.refund = now;
                    store_refund_reschedule(ctx->store, &moved, ctx->cfg->webhook_grace_s * 1000, NULL, NULL);
                }
            } else if (sr == STORE_CONFLICT) {
                log_info("reconciler: refund %s: the bank's answer (%s) not applied: %s", f->id,
                         payment_state_name(v.to),
                         lost ? "another reconciler claimed it after this claim's lease ran out"
                              : "its state changed since");
                v.settled = true;
            } else {
                snprintf(v.error, sizeof v.error, "could not record the bank's answer (store error %d)", (int)sr);
            }
        }
    }
    if (v.settled)
        return;
    if (it->past_deadline) {
        recon_refund_give_up(ctx, it, v.error, arena);
        return;
    }
    long delay = recon_backoff(ctx->cfg, it->attempts, seed);
    bool kept = false;
    store_refund_reschedule(ctx->store, it, delay, v.error, &kept);
    log_info("reconciler: refund %s still %s after attempt %d (%s); %s", f->id, payment_state_name(f->state),
             it->attempts, v.error, kept ? "rescheduled" : "not rescheduled: it settled or was claimed again");
}

/* ---- held payments: a capture or void in flight, or a look-up -------------- */

/* Apply a sync's verdict to held claim `it`; true when settled. */
static bool recon_held_sync(api_context *ctx, const registry_plugin *pl, const store_recon_item *it,
                            const pagoflex_payment *pay, pagoflex_arena *arena, char *error, size_t errlen)
{
    const store_payment *p = &it->payment;
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in,
                              .flow = PAGOFLEX_FLOW_PAYMENT_SYNC,
                              .payment = pay,
                              .operation_id = pay->id};
    pagoflex_flow_result res = {0};
    pagoflex_transport transport = PAGOFLEX_TRANSPORT_ERROR;
    int status = 0;
    int rc = bankcall_flow(pl, &in, ctx->cfg->bank_timeout_ms, arena, &res, &transport, &status);
    if (rc == PAGOFLEX_ERR_NOT_FOUND) {
        snprintf(error, errlen, "bank_not_found: the bank does not know this payment; left as it is");
        return false;
    }
    if (rc != PAGOFLEX_OK) {
        snprintf(error, errlen, "connector_error: %s sync failed (status %d)", pl->desc->key, rc);
        return false;
    }
    bool final = res.state == PAGOFLEX_STATE_SUCCEEDED || res.state == PAGOFLEX_STATE_CANCELED ||
                 res.state == PAGOFLEX_STATE_FAILED ||
                 (res.state == PAGOFLEX_STATE_REQUIRES_CAPTURE && p->state == PAGOFLEX_STATE_REQUIRES_ACTION);
    if (final) {
        store_payment now;
        bool lost = false;
        char detail[48];
        snprintf(detail, sizeof detail, "held, attempt %d", it->attempts);
        store_result sr = store_recon_transition(ctx->store, it, res.state, STORE_SOURCE_SYNC, detail,
                                                 res.provider_reference_id, res.error_code, res.error_message,
                                                 arena, &now, &lost);
        if (sr == STORE_OK)
            log_info("reconciler: payment %s %s -> %s (sync, %s)", p->id, payment_state_name(p->state),
                     payment_state_name(now.state), detail);
        else if (sr == STORE_CONFLICT)
            log_info("reconciler: payment %s: the bank's answer (%s) not applied: %s", p->id,
                     payment_state_name(res.state), lost ? "another reconciler claimed it" : "its state changed");
        if (sr == STORE_OK || sr == STORE_CONFLICT)
            return true;
        snprintf(error, errlen, "could not record the bank's answer (store error %d)", (int)sr);
        return false;
    }
    if (res.state == p->state) {
        /* The bank still has it as we do: an operation in flight did not
         * happen (it may be asked for again); a look-up changes nothing. */
        bool applied = false;
        if (p->pending_operation && store_recon_release_held(ctx->store, it, &applied) == STORE_OK && applied)
            log_info("reconciler: payment %s: the bank says its %s did not happen (%s); released", p->id,
                     p->pending_operation, payment_state_name(res.state));
        else if (!p->pending_operation)
            store_recon_reschedule_held(ctx->store, it, -1, NULL, false, NULL);
        return true;
    }
    snprintf(error, errlen, "%s: %.250s", res.error_code ? res.error_code : "bank_pending",
             res.error_message ? res.error_message : "the bank has not decided yet");
    return false;
}

/* Re-send claimed operation it->payment.pending_operation (same operation
 * id). True when settled; *accepted when the bank accepted it (PENDING). */
static bool recon_held_resend(api_context *ctx, const registry_plugin *pl, const store_recon_item *it,
                              const pagoflex_payment *pay, pagoflex_arena *arena, bool *accepted, char *error,
                              size_t errlen)
{
    const store_payment *p = &it->payment;
    bool capture = strcmp(p->pending_operation, "capture") == 0;
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in,
                              .flow = capture ? PAGOFLEX_FLOW_CAPTURE : PAGOFLEX_FLOW_VOID,
                              .payment = pay,
                              .amount = capture ? p->capture_amount : 0,
                              .amount_captured = p->amount_received,
                              .amount_refunded = p->amount_refunded};
    in.operation_id = arena_printf(arena, "%s_%s", p->id, p->pending_operation);
    if (!in.operation_id) {
        snprintf(error, errlen, "out of memory");
        return false;
    }
    pagoflex_flow_result res = {0};
    int rc = bankcall_flow(pl, &in, ctx->cfg->bank_timeout_ms, arena, &res, NULL, NULL);
    if (rc != PAGOFLEX_OK) {
        snprintf(error, errlen, "connector_error: %s could not build the %s (status %d)", pl->desc->key,
                 p->pending_operation, rc);
        return false;
    }
    if (res.state == PAGOFLEX_STATE_SUCCEEDED) {
        store_payment now;
        bool lost = false;
        char detail[48];
        snprintf(detail, sizeof detail, "%s resend, attempt %d", p->pending_operation, it->attempts);
        pagoflex_state to = capture ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_CANCELED;
        store_result sr = store_recon_transition(ctx->store, it, to, STORE_SOURCE_RECONCILER, detail, NULL, NULL,
                                                 NULL, arena, &now, &lost);
        if (sr == STORE_OK)
            log_info("reconciler: payment %s %s -> %s (%s)", p->id, payment_state_name(p->state),
                     payment_state_name(now.state), detail);
        if (sr == STORE_OK || sr == STORE_CONFLICT)
            return true;
        snprintf(error, errlen, "could not record the bank's answer (store error %d)", (int)sr);
        return false;
    }
    if (res.state == PAGOFLEX_STATE_FAILED) {
        /* A refusal of a re-send proves nothing alone (the first call may
         * have done it): ask the bank what the payment is now. */
        return recon_held_sync(ctx, pl, it, pay, arena, error, errlen);
    }
    *accepted = res.state == PAGOFLEX_STATE_PENDING;
    snprintf(error, errlen, "%s: %.250s", res.error_code ? res.error_code : (*accepted ? "bank_pending" : "unknown"),
             res.error_message ? res.error_message : "no final answer yet");
    return false;
}

/* One attempt at a held payment: an operation whose outcome is unknown is
 * re-sent, an accepted one (or a look-up) synced. Never failed or
 * given up: past any deadline it keeps being retried at retry_max_ms. */
static void recon_held_one(api_context *ctx, const store_recon_item *it, unsigned *seed, pagoflex_arena *arena)
{
    const store_payment *p = &it->payment;
    char error[RECON_ERROR_MAX] = "";
    bool settled = false, accepted = false;
    const registry_plugin *pl = registry_find_account(ctx->registry, p->connector, p->connector_account);
    pagoflex_payment pay;
    if (!pl) {
        snprintf(error, sizeof error, "connector %s account %s is not loaded on this host", p->connector,
                 p->connector_account);
    } else if (bankcall_payment(ctx->cfg->public_url, pl, p, arena, &pay) != 0) {
        snprintf(error, sizeof error, "out of memory");
    } else if (p->pending_operation && !it->operation_accepted) {
        settled = recon_held_resend(ctx, pl, it, &pay, arena, &accepted, error, sizeof error);
    } else if (registry_has_flow(pl, PAGOFLEX_FLOW_PAYMENT_SYNC)) {
        settled = recon_held_sync(ctx, pl, it, &pay, arena, error, sizeof error);
    } else {
        snprintf(error, sizeof error, "no_sync: connector %s cannot query the bank; waiting for its webhook",
                 pl->desc->key);
    }
    if (settled)
        return;
    long delay = accepted ? ctx->cfg->webhook_grace_s * 1000 : recon_backoff(ctx->cfg, it->attempts, seed);
    bool kept = false;
    store_recon_reschedule_held(ctx->store, it, delay, error, accepted, &kept);
    log_info("reconciler: payment %s (%s%s) still %s after attempt %d (%s); %s", p->id,
             p->pending_operation ? p->pending_operation : "look-up", p->pending_operation ? " in flight" : "",
             payment_state_name(p->state), it->attempts, error,
             kept ? "rescheduled" : "not rescheduled: it settled or was claimed again");
}

/* Claim and work due refunds and held payments, renewing each lease (after
 * the first) just before its bank call. Returns how many were claimed. */
static size_t recon_flows(api_context *ctx, const store_recon_timing *t, int limit, unsigned *seed,
                          pagoflex_arena *arena)
{
    size_t total = 0, n = 0;
    store_recon_item *held = NULL;
    if (store_recon_claim_held(ctx->store, t, limit, arena, &held, &n) == STORE_OK) {
        total += n;
        for (size_t i = 0; i < n && !recon_stopping(); i++) {
            if (i > 0) {
                store_result sr = store_recon_renew_held(ctx->store, t, arena, &held[i]);
                if (sr == STORE_CONFLICT)
                    continue;
                if (sr != STORE_OK)
                    return total;
            }
            recon_held_one(ctx, &held[i], seed, arena);
        }
    }
    store_refund_item *refunds = NULL;
    n = 0;
    if (store_refund_claim(ctx->store, t, limit, arena, &refunds, &n) == STORE_OK) {
        total += n;
        for (size_t i = 0; i < n && !recon_stopping(); i++) {
            if (i > 0) {
                store_result sr = store_refund_renew(ctx->store, t, arena, &refunds[i]);
                if (sr == STORE_CONFLICT) {
                    log_debug("reconciler: refund %s skipped: it settled, or another reconciler claimed it",
                              refunds[i].refund.id);
                    continue;
                }
                if (sr != STORE_OK)
                    return total;
            }
            recon_refund_one(ctx, &refunds[i], seed, arena);
        }
    }
    return total;
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
            if (arena && !recon_stopping()) {
                size_t more = recon_flows(ctx, &t, cfg->reconcile_batch, &seed, arena);
                if (more > count)
                    count = more;
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
