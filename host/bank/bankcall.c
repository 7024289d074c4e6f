/* bankcall.c - calling a bank through a connector: create and status sync. */
#include "bankcall.h"

#include <stdatomic.h>
#include <string.h>

#include "arena.h"
#include "executor.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "services.h"

void bankcall_enter(const registry_plugin *pl)
{
    if (pl->busy)
        atomic_fetch_add(pl->busy, 1);
}

void bankcall_leave(const registry_plugin *pl)
{
    if (pl->busy)
        atomic_fetch_sub(pl->busy, 1);
}

const char *bankcall_webhook_url(const char *public_url, const registry_plugin *pl, pagoflex_arena *arena)
{
    if (strcmp(pl->account, "default") == 0)
        return arena_printf(arena, "%s/webhooks/%s", public_url, pl->desc->webhook_path);
    return arena_printf(arena, "%s/webhooks/%s/%s", public_url, pl->desc->webhook_path, pl->account);
}

int bankcall_payment(const char *public_url, const registry_plugin *pl, const store_payment *row,
                     pagoflex_arena *arena, pagoflex_payment *out)
{
    pagoflex_payment p = {
        .id = row->id,
        .amount = row->amount,
        .currency = row->currency,
        .reference = row->reference,
        .description = row->description,
        .webhook_url = bankcall_webhook_url(public_url, pl, arena),
        .provider_reference_id = row->provider_reference_id,
    };
    if (!p.webhook_url)
        return -1;
    *out = p;
    return 0;
}

static atomic_flag bankcall_cut_logged = ATOMIC_FLAG_INIT;

/* `req`, or, when the connector asks for a timeout above `limit_ms`
 * (bank_timeout_ms), a copy in the arena with the timeout cut to it:
 * bank_timeout_ms bounds every bank call, and the reconciler's lease,
 * recover_after_ms and idempotency_stale_ms are checked against it at
 * start-up (config.c). NULL on OOM. */
static const pagoflex_http_request *bankcall_bounded(const registry_plugin *pl,
                                                     const pagoflex_http_request *req,
                                                     long limit_ms, pagoflex_arena *arena)
{
    if (req->timeout_ms <= limit_ms)
        return req;
    pagoflex_http_request *cut = arena_alloc(arena, sizeof *cut);
    if (!cut)
        return NULL;
    if (!atomic_flag_test_and_set(&bankcall_cut_logged))
        log_warn("connector %s asks for a %ld ms bank call timeout, above bank_timeout_ms (%ld); "
                 "its calls are cut to %ld ms (the reconciler lease is sized by it); raise "
                 "bank_timeout_ms to allow longer calls (logged once)",
                 pl->desc->key, req->timeout_ms, limit_ms, limit_ms);
    *cut = *req;
    cut->timeout_ms = limit_ms;
    return cut;
}

/* Perform `req` with the connector's executor, or the host's. */
static void bankcall_perform(const registry_plugin *pl, const pagoflex_http_request *req,
                             long default_timeout_ms, pagoflex_arena *arena,
                             pagoflex_http_response *resp)
{
    const pagoflex_connector *d = pl->desc;
    uint64_t t0 = metrics_now_ns();
    memset(resp, 0, sizeof *resp);
    req = bankcall_bounded(pl, req, default_timeout_ms, arena);
    if (!req) {
        resp->transport = PAGOFLEX_TRANSPORT_ERROR;
    } else if (d->execute_request) {
        bankcall_enter(pl);
        int rc = d->execute_request(pl->state, req, arena, resp);
        bankcall_leave(pl);
        if (rc != PAGOFLEX_OK) {
            memset(resp, 0, sizeof *resp);
            resp->transport = PAGOFLEX_TRANSPORT_ERROR;
        }
    } else {
        executor_perform(req, default_timeout_ms, pl->tls, arena, resp);
    }
    metrics_bank_call(metrics_connector(d->key), resp->transport == PAGOFLEX_TRANSPORT_OK,
                      metrics_now_ns() - t0);
}

/* True if a connector's verdict is a state it may report. */
static bool bankcall_state_ok(pagoflex_state s)
{
    return (int)s > (int)PAGOFLEX_STATE_CREATED && (int)s < PAYMENT_STATE_COUNT &&
           s != PAGOFLEX_STATE_REQUIRES_REVIEW;
}

static void bankcall_unknown(pagoflex_payment_result *res)
{
    memset(res, 0, sizeof *res);
    res->state = PAGOFLEX_STATE_PROCESSING;
    res->error_code = "connector_error";
    res->error_message = "the connector could not read the bank's answer; the outcome is unknown";
}

void bankcall_create(const registry_plugin *pl, const pagoflex_payment *pay,
                     const pagoflex_http_request *req, long default_timeout_ms,
                     pagoflex_arena *arena, pagoflex_payment_result *res,
                     pagoflex_transport *transport, int *http_status)
{
    pagoflex_http_response resp;
    bankcall_perform(pl, req, default_timeout_ms, arena, &resp);
    if (transport)
        *transport = resp.transport;
    if (http_status)
        *http_status = resp.transport == PAGOFLEX_TRANSPORT_OK ? resp.status : 0;
    bankcall_map_create(pl, pay, &resp, arena, res);
}

void bankcall_map_create(const registry_plugin *pl, const pagoflex_payment *pay,
                         const pagoflex_http_response *resp, pagoflex_arena *arena,
                         pagoflex_payment_result *res)
{
    const pagoflex_connector *d = pl->desc;
    memset(res, 0, sizeof *res);
    bankcall_enter(pl);
    int rc = d->handle_response(pl->state, pay, resp, arena, res);
    bankcall_leave(pl);
    if (rc != PAGOFLEX_OK || !bankcall_state_ok(res->state)) {
        log_warn("connector %s: handle_response returned status %d, state %d for payment %s; "
                 "keeping it processing",
                 d->key, rc, (int)res->state, pay->id);
        bankcall_unknown(res);
    }
}

bool bankcall_has_sync(const registry_plugin *pl)
{
    const pagoflex_connector *d = pl->desc;
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, sync_response) && d->sync_request &&
           d->sync_response;
}

int bankcall_sync(const registry_plugin *pl, const pagoflex_payment *pay,
                  long default_timeout_ms, pagoflex_arena *arena, pagoflex_payment_result *res)
{
    const pagoflex_connector *d = pl->desc;
    if (!bankcall_has_sync(pl))
        return PAGOFLEX_ERR_UNSUPPORTED;
    pagoflex_http_request req = {0};
    bankcall_enter(pl);
    int rc = d->sync_request(pl->state, pay, arena, &req);
    bankcall_leave(pl);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (!req.url || !req.method)
        return PAGOFLEX_ERR_INTERNAL;
    pagoflex_http_response resp;
    bankcall_perform(pl, &req, default_timeout_ms, arena, &resp);
    pagoflex_payment_result out = {0};
    bankcall_enter(pl);
    rc = d->sync_response(pl->state, pay, &resp, arena, &out);
    bankcall_leave(pl);
    if (rc == PAGOFLEX_ERR_NOT_FOUND)
        return rc;
    if (rc != PAGOFLEX_OK || !bankcall_state_ok(out.state)) {
        log_warn("connector %s: sync_response returned status %d, state %d for payment %s; "
                 "outcome still unknown",
                 d->key, rc, (int)out.state, pay->id);
        bankcall_unknown(&out);
    }
    *res = out;
    return PAGOFLEX_OK;
}

/* ---- without a waiting thread ------------------------------------------ */

/* What a started call needs until its answer is in (in the caller's arena). */
typedef struct bankcall_async {
    const registry_plugin *pl;
    const pagoflex_http_request *req;
    long timeout_ms;
    pagoflex_arena *arena;
    pagoflex_http_response *resp;
    bankq_done_fn done;
    void *arg;
    uint64_t t0;
} bankcall_async;

static void bankcall_async_done(void *arg)
{
    bankcall_async *a = arg;
    metrics_bank_call(metrics_connector(a->pl->desc->key), a->resp->transport == PAGOFLEX_TRANSPORT_OK,
                      metrics_now_ns() - a->t0);
    a->done(a->arg);
}

/* On a pool thread: the connector's own, blocking execute_request. */
static void bankcall_async_execute(void *arg)
{
    bankcall_async *a = arg;
    const pagoflex_connector *d = a->pl->desc;
    memset(a->resp, 0, sizeof *a->resp);
    bankcall_enter(a->pl);
    int rc = d->execute_request(a->pl->state, a->req, a->arena, a->resp);
    bankcall_leave(a->pl);
    if (rc != PAGOFLEX_OK) {
        memset(a->resp, 0, sizeof *a->resp);
        a->resp->transport = PAGOFLEX_TRANSPORT_ERROR;
    }
    bankcall_async_done(a);
}

void bankcall_start(const registry_plugin *pl, const pagoflex_http_request *req, long default_timeout_ms,
                    pagoflex_arena *arena, pagoflex_http_response *resp, bankq *q, workpool *pool,
                    bankq_done_fn done, void *arg)
{
    bankcall_async *a = arena_alloc(arena, sizeof *a);
    req = bankcall_bounded(pl, req, default_timeout_ms, arena);
    if (!a || !req) {
        memset(resp, 0, sizeof *resp);
        resp->transport = PAGOFLEX_TRANSPORT_ERROR;
        done(arg);
        return;
    }
    *a = (bankcall_async){.pl = pl, .req = req, .timeout_ms = default_timeout_ms, .arena = arena,
                          .resp = resp, .done = done, .arg = arg, .t0 = metrics_now_ns()};
    if (pl->desc->execute_request)
        workpool_submit(pool, bankcall_async_execute, a);
    else
        bankq_submit(q, req, default_timeout_ms, pl->tls, arena, resp, bankcall_async_done, a);
}

/* ---- ABI 1.2: flows ----------------------------------------------------- */

bool bankcall_flow_state_ok(pagoflex_flow flow, pagoflex_state state)
{
#define B(x) (1u << PAGOFLEX_STATE_##x)
    unsigned ok = 0;
    switch (flow) {
    case PAGOFLEX_FLOW_AUTHORIZE:
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
        ok = B(PROCESSING) | B(PENDING) | B(SUCCEEDED) | B(FAILED) | B(REQUIRES_ACTION) |
             B(CANCELED) | B(REQUIRES_CAPTURE);
        break;
    case PAGOFLEX_FLOW_CAPTURE:
    case PAGOFLEX_FLOW_VOID:
    case PAGOFLEX_FLOW_REFUND:
    case PAGOFLEX_FLOW_REFUND_SYNC:
        ok = B(PROCESSING) | B(PENDING) | B(SUCCEEDED) | B(FAILED);
        break;
    }
#undef B
    return (unsigned)state < 32u && ((ok >> (unsigned)state) & 1u);
}

static void bankcall_flow_unknown(pagoflex_flow_result *res)
{
    uint32_t size = res->size;
    memset(res, 0, sizeof *res);
    res->size = size;
    res->state = PAGOFLEX_STATE_PROCESSING;
    res->error_code = "connector_error";
    res->error_message = "the connector could not read the bank's answer; the outcome is unknown";
}

int bankcall_flow_request(const registry_plugin *pl, const pagoflex_flow_input *in,
                          pagoflex_arena *arena, pagoflex_http_request *req)
{
    const pagoflex_connector *d = pl->desc;
    pagoflex_http_request out = {0};
    int rc;
    if (!registry_has_flow(pl, in->flow))
        return PAGOFLEX_ERR_UNSUPPORTED;
    bankcall_enter(pl);
    if (registry_uses_flows(pl))
        rc = d->flow_request(pl->state, in, arena, &out);
    else if (in->flow == PAGOFLEX_FLOW_AUTHORIZE)
        rc = in->capture ? d->build_request(pl->state, in->payment, arena, &out)
                         : PAGOFLEX_ERR_UNSUPPORTED; /* an old plugin captures at once */
    else if (in->flow == PAGOFLEX_FLOW_PAYMENT_SYNC)
        rc = d->sync_request(pl->state, in->payment, arena, &out);
    else
        rc = PAGOFLEX_ERR_UNSUPPORTED;
    bankcall_leave(pl);
    if (rc == PAGOFLEX_OK && (!out.url || !out.method))
        rc = PAGOFLEX_ERR_INTERNAL;
    if (rc == PAGOFLEX_OK)
        *req = out;
    return rc;
}

/* bankcall_flow_map, also saying what the plugin itself returned in
 * *plugin_rc (PAGOFLEX_ERR_TOKEN: it refused the access token). */
static int bankcall_flow_map_rc(const registry_plugin *pl, const pagoflex_flow_input *in,
                                const pagoflex_http_response *resp, pagoflex_arena *arena,
                                pagoflex_flow_result *res, int *plugin_rc)
{
    const pagoflex_connector *d = pl->desc;
    bool sync = in->flow == PAGOFLEX_FLOW_PAYMENT_SYNC || in->flow == PAGOFLEX_FLOW_REFUND_SYNC;
    int rc;
    memset(res, 0, sizeof *res);
    res->size = (uint32_t)sizeof *res;
    bankcall_enter(pl);
    if (registry_uses_flows(pl)) {
        rc = d->flow_response(pl->state, in, resp, arena, res);
        res->size = (uint32_t)sizeof *res; /* the plugin may not change it */
    } else {
        pagoflex_payment_result old = {0};
        if (in->flow == PAGOFLEX_FLOW_AUTHORIZE)
            rc = d->handle_response(pl->state, in->payment, resp, arena, &old);
        else if (in->flow == PAGOFLEX_FLOW_PAYMENT_SYNC && bankcall_has_sync(pl))
            rc = d->sync_response(pl->state, in->payment, resp, arena, &old);
        else
            rc = PAGOFLEX_ERR_UNSUPPORTED;
        res->state = old.state;
        res->provider_reference_id = old.provider_reference_id;
        res->error_code = old.error_code;
        res->error_message = old.error_message;
    }
    bankcall_leave(pl);
    *plugin_rc = rc;
    if (rc == PAGOFLEX_ERR_NOT_FOUND && sync)
        return rc;
    if (rc != PAGOFLEX_OK || !bankcall_flow_state_ok(in->flow, res->state)) {
        log_warn("connector %s: %s answer mapped to status %d, state %d for %s; "
                 "keeping the outcome unknown",
                 d->key, registry_flow_name(in->flow), rc, (int)res->state,
                 in->operation_id ? in->operation_id : in->payment ? in->payment->id : "?");
        bankcall_flow_unknown(res);
    }
    return PAGOFLEX_OK;
}

int bankcall_flow_map(const registry_plugin *pl, const pagoflex_flow_input *in,
                      const pagoflex_http_response *resp, pagoflex_arena *arena,
                      pagoflex_flow_result *res)
{
    int plugin_rc;
    return bankcall_flow_map_rc(pl, in, resp, arena, res, &plugin_rc);
}

/* ---- ABI 1.2: access tokens -------------------------------------------- */

/* Read the answer to token_request's call with token_response and end the
 * fetch the cache gave this caller: the token kept, or the fetch failed. */
static void bankcall_token_read(const registry_plugin *pl, const pagoflex_http_response *resp,
                                pagoflex_arena *arena)
{
    const pagoflex_connector *d = pl->desc;
    pagoflex_token tok = {.size = (uint32_t)sizeof tok};
    bankcall_enter(pl);
    int rc = d->token_response(pl->state, resp, arena, &tok);
    bankcall_leave(pl);
    if (rc == PAGOFLEX_OK && tok.value && *tok.value) {
        int64_t now = services_now();
        if (banktoken_store(pl->token, tok.value, tok.expires_at, now) != 0) {
            log_warn("connector %s: out of memory keeping the access token", d->key);
            return; /* banktoken_store ended the fetch as failed */
        }
        log_info("connector %s: access token fetched (expires in %lld s; fetch %ld)", d->key,
                 tok.expires_at ? (long long)(tok.expires_at - now) : -1LL, banktoken_fetches(pl->token));
        return;
    }
    banktoken_failed(pl->token, services_now());
    log_warn("connector %s: access token not obtained (transport %d, HTTP %d, token_response status %d); "
             "its flows cannot start until a fetch succeeds: check the token endpoint and the client "
             "credentials",
             d->key, (int)resp->transport, resp->status, rc);
}

/* token_request's call into *req; PAGOFLEX_OK or the plugin's error. */
static int bankcall_token_request(const registry_plugin *pl, pagoflex_arena *arena,
                                  pagoflex_http_request *req)
{
    pagoflex_http_request out = {0};
    bankcall_enter(pl);
    int rc = pl->desc->token_request(pl->state, arena, &out);
    bankcall_leave(pl);
    if (rc == PAGOFLEX_OK && (!out.url || !out.method))
        rc = PAGOFLEX_ERR_INTERNAL;
    if (rc == PAGOFLEX_OK)
        *req = out;
    else
        log_warn("connector %s: token_request failed (status %d); no token fetched", pl->desc->key, rc);
    return rc;
}

/* A valid token for a blocking caller (fetching it if this caller is the
 * one to), in the arena, or NULL when none can be had now. `refused`: the
 * generation a flow saw refused (0: none). */
static const char *bankcall_token_blocking(const registry_plugin *pl, long default_timeout_ms,
                                           pagoflex_arena *arena, uint64_t refused, uint64_t *gen)
{
    for (int tries = 0; tries < 2; tries++) {
        char *value = NULL;
        banktoken_verdict v = banktoken_acquire(pl->token, services_now(), refused, arena, &value, gen, NULL);
        if (v == BANKTOKEN_READY)
            return value;
        if (v != BANKTOKEN_FETCH)
            return NULL;
        pagoflex_http_request req;
        if (bankcall_token_request(pl, arena, &req) != PAGOFLEX_OK) {
            banktoken_failed(pl->token, services_now());
            return NULL;
        }
        pagoflex_http_response resp;
        bankcall_perform(pl, &req, default_timeout_ms, arena, &resp);
        bankcall_token_read(pl, &resp, arena);
    }
    return NULL;
}

/* A flow that could not start for want of a token: nothing was sent. */
static void bankcall_no_token(pagoflex_flow_result *res, pagoflex_transport *transport, int *http_status)
{
    memset(res, 0, sizeof *res);
    res->size = (uint32_t)sizeof *res;
    res->state = PAGOFLEX_STATE_PROCESSING;
    res->error_code = "token_unavailable";
    res->error_message = "no access token could be obtained from the bank; nothing was sent";
    if (transport)
        *transport = PAGOFLEX_TRANSPORT_CONNECT;
    if (http_status)
        *http_status = 0;
}

int bankcall_flow(const registry_plugin *pl, const pagoflex_flow_input *in,
                  long default_timeout_ms, pagoflex_arena *arena, pagoflex_flow_result *res,
                  pagoflex_transport *transport, int *http_status)
{
    pagoflex_flow_input local = *in;
    uint64_t gen = 0, refused = 0;
    int rc = PAGOFLEX_OK;
    /* With tokens: a second round after the bank refused the first token. */
    for (int round = 0; round < 2; round++) {
        if (pl->token &&
            !(local.access_token = bankcall_token_blocking(pl, default_timeout_ms, arena, refused, &gen))) {
            bankcall_no_token(res, transport, http_status);
            return PAGOFLEX_OK;
        }
        pagoflex_http_request req;
        rc = bankcall_flow_request(pl, &local, arena, &req);
        if (rc != PAGOFLEX_OK)
            return rc;
        pagoflex_http_response resp;
        bankcall_perform(pl, &req, default_timeout_ms, arena, &resp);
        if (transport)
            *transport = resp.transport;
        if (http_status)
            *http_status = resp.status;
        int plugin_rc;
        rc = bankcall_flow_map_rc(pl, &local, &resp, arena, res, &plugin_rc);
        if (!pl->token || plugin_rc != PAGOFLEX_ERR_TOKEN)
            break;
        log_info("connector %s: the bank refused the access token for %s; fetching a new one and "
                 "retrying once", pl->desc->key, registry_flow_name(in->flow));
        refused = gen;
    }
    return rc;
}

/* A flow started without a waiting thread, with a token (arena memory). */
typedef struct bankcall_tokflow {
    const registry_plugin *pl;
    pagoflex_flow_input *in;
    long timeout_ms;
    pagoflex_arena *arena;
    pagoflex_http_response *resp;
    bankq *q;
    workpool *pool;
    bankq_done_fn done;
    void *arg;
    banktoken_waiter waiter;
    uint64_t gen, refused;
    bool retried;
    pagoflex_http_request token_req, flow_req;
    pagoflex_http_response token_resp;
} bankcall_tokflow;

static void bankcall_tokflow_go(void *arg);

/* Nothing was sent: answer as a connection failure (the outcome is known
 * not to exist at the bank; the flow maps it as unknown and is retried). */
static void bankcall_tokflow_fail(bankcall_tokflow *t)
{
    memset(t->resp, 0, sizeof *t->resp);
    t->resp->transport = PAGOFLEX_TRANSPORT_CONNECT;
    t->done(t->arg);
}

static void bankcall_tokflow_token_answered(void *arg)
{
    bankcall_tokflow *t = arg;
    bankcall_token_read(t->pl, &t->token_resp, t->arena);
    bankcall_tokflow_go(t);
}

/* The flow's answer is in: on a refused token (first time), fetch a new one
 * and send the flow again; else hand the answer to the caller, which maps
 * it with bankcall_flow_map. */
static void bankcall_tokflow_answered(void *arg)
{
    bankcall_tokflow *t = arg;
    if (!t->retried && t->resp->transport == PAGOFLEX_TRANSPORT_OK) {
        pagoflex_flow_result probe;
        int plugin_rc = PAGOFLEX_OK;
        bankcall_flow_map_rc(t->pl, t->in, t->resp, t->arena, &probe, &plugin_rc);
        if (plugin_rc == PAGOFLEX_ERR_TOKEN) {
            log_info("connector %s: the bank refused the access token for %s; fetching a new one and "
                     "retrying once", t->pl->desc->key, registry_flow_name(t->in->flow));
            t->retried = true;
            t->refused = t->gen;
            bankcall_tokflow_go(t);
            return;
        }
    }
    t->done(t->arg);
}

/* Get a token (now, after a fetch, or once the running fetch ends), then
 * send the flow with it. */
static void bankcall_tokflow_go(void *arg)
{
    bankcall_tokflow *t = arg;
    char *value = NULL;
    t->waiter = (banktoken_waiter){.ready = bankcall_tokflow_go, .arg = t};
    switch (banktoken_acquire(t->pl->token, services_now(), t->refused, t->arena, &value, &t->gen,
                              &t->waiter)) {
    case BANKTOKEN_READY:
        t->in->access_token = value;
        if (bankcall_flow_request(t->pl, t->in, t->arena, &t->flow_req) != PAGOFLEX_OK) {
            bankcall_tokflow_fail(t);
            return;
        }
        bankcall_start(t->pl, &t->flow_req, t->timeout_ms, t->arena, t->resp, t->q, t->pool,
                       bankcall_tokflow_answered, t);
        return;
    case BANKTOKEN_FETCH:
        if (bankcall_token_request(t->pl, t->arena, &t->token_req) != PAGOFLEX_OK) {
            banktoken_failed(t->pl->token, services_now());
            bankcall_tokflow_fail(t);
            return;
        }
        bankcall_start(t->pl, &t->token_req, t->timeout_ms, t->arena, &t->token_resp, t->q, t->pool,
                       bankcall_tokflow_token_answered, t);
        return;
    case BANKTOKEN_PARKED:
        return; /* bankcall_tokflow_go runs again when the fetch ends */
    case BANKTOKEN_FAILED:
    default:
        bankcall_tokflow_fail(t);
        return;
    }
}

void bankcall_flow_start(const registry_plugin *pl, pagoflex_flow_input *in, const pagoflex_http_request *req,
                         long default_timeout_ms, pagoflex_arena *arena, pagoflex_http_response *resp,
                         bankq *q, workpool *pool, bankq_done_fn done, void *arg)
{
    if (!pl->token) {
        bankcall_start(pl, req, default_timeout_ms, arena, resp, q, pool, done, arg);
        return;
    }
    bankcall_tokflow *t = arena_alloc(arena, sizeof *t);
    if (!t) {
        memset(resp, 0, sizeof *resp);
        resp->transport = PAGOFLEX_TRANSPORT_CONNECT;
        done(arg);
        return;
    }
    *t = (bankcall_tokflow){.pl = pl, .in = in, .timeout_ms = default_timeout_ms, .arena = arena,
                            .resp = resp, .q = q, .pool = pool, .done = done, .arg = arg};
    bankcall_tokflow_go(t);
}

/* ---- ABI 1.2: webhook key sets ----------------------------------------- */

/* Fetch the key set (blocking) if the cache lets this caller. */
static void bankcall_keys_fetch(const registry_plugin *pl, long default_timeout_ms, pagoflex_arena *arena,
                                uint64_t seen)
{
    if (!keyset_begin(pl->keys, services_now(), seen))
        return;
    pagoflex_http_request req = {0};
    const unsigned char *body = NULL;
    size_t len = 0;
    bankcall_enter(pl);
    int rc = pl->desc->keys_request(pl->state, arena, &req);
    bankcall_leave(pl);
    if (rc == PAGOFLEX_OK && req.url && req.method) {
        pagoflex_http_response resp;
        bankcall_perform(pl, &req, default_timeout_ms, arena, &resp);
        if (resp.transport == PAGOFLEX_TRANSPORT_OK && resp.status == 200 && resp.body_len > 0) {
            body = resp.body;
            len = resp.body_len;
        } else {
            log_warn("connector %s: webhook key set not fetched (transport %d, HTTP %d); keeping the "
                     "cached one; next try in %d s at the earliest",
                     pl->desc->key, (int)resp.transport, resp.status, KEYSET_MIN_REFETCH_S);
        }
    } else {
        log_warn("connector %s: keys_request failed (status %d)", pl->desc->key, rc);
    }
    keyset_end(pl->keys, body, len);
    if (body)
        log_info("connector %s: webhook key set fetched (%zu bytes; fetch %ld)", pl->desc->key, len,
                 keyset_fetches(pl->keys));
}

int bankcall_webhook_verify(const registry_plugin *pl, pagoflex_webhook_request *req,
                            long default_timeout_ms, pagoflex_arena *arena)
{
    uint64_t gen = 0;
    int rc = PAGOFLEX_ERR_SIGNATURE;
    for (int round = 0; round < 2; round++) {
        if (pl->keys) {
            unsigned char *keys = NULL;
            size_t len = 0;
            if (keyset_get(pl->keys, arena, &keys, &len, &gen) != 0)
                return PAGOFLEX_ERR_NOMEM;
            if (!keys) { /* the first webhook: fetch the set */
                bankcall_keys_fetch(pl, default_timeout_ms, arena, gen);
                if (keyset_get(pl->keys, arena, &keys, &len, &gen) != 0)
                    return PAGOFLEX_ERR_NOMEM;
            }
            req->keys = keys;
            req->keys_len = len;
        }
        bankcall_enter(pl);
        rc = pl->desc->webhook_verify(pl->state, req, arena);
        bankcall_leave(pl);
        if (rc != PAGOFLEX_ERR_KEY_UNKNOWN || !pl->keys || round == 1)
            break;
        bankcall_keys_fetch(pl, default_timeout_ms, arena, gen);
    }
    return rc;
}

void bankcall_authorize_input(pagoflex_flow_input *in, const pagoflex_payment *pay, bool manual_capture,
                               const char *return_url, const char *payment_method_type,
                               const char *payment_method_token)
{
    memset(in, 0, sizeof *in);
    in->size = (uint32_t)sizeof *in;
    in->flow = PAGOFLEX_FLOW_AUTHORIZE;
    in->payment = pay;
    in->operation_id = pay->id;
    in->capture = manual_capture ? 0 : 1;
    in->return_url = return_url;
    in->payment_method_type = payment_method_type;
    in->payment_method_token = payment_method_token;
}
