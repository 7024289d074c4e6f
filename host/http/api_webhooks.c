/* api_webhooks.c - webhooks of ABI 1.2 plugins (webhook_verify/webhook_parse):
 * the plugin sees the whole request; one delivery may carry several events,
 * each applied once (deduped on (connector, event_id)).
 *
 *  - payment events move the payment as the 1.0 path does (by our id or the
 *    bank's; an unknown bank id is kept as an orphan);
 *  - refund events move the refund (by our id or the bank's refund id);
 *  - look_up events (the event says only "it changed") make the payment due
 *    for the reconciler at once, which runs its sync flow off this thread;
 *  - IGNORED events (a type the plugin does not handle) are stored and
 *    acknowledged, and change nothing.
 * The answer is the plugin's (status, body, content type) when it sets one.
 */
#include "api_webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bankcall.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_batch.h"
#include "store_flows.h"
#include "store_orphan.h"
#include "store_recon.h"
#include "textcheck.h"

#define WEBHOOK_MAX_HEADERS 128
#define WEBHOOK_MAX_QUERY 8192

typedef struct wh_headers {
    pagoflex_header *items;
    size_t count, cap;
} wh_headers;

static enum MHD_Result wh_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    wh_headers *l = cls;
    if (l->count == l->cap)
        return MHD_NO;
    l->items[l->count].name = key;
    l->items[l->count].value = value ? value : "";
    l->count++;
    return MHD_YES;
}

typedef struct wh_query {
    char *buf;
    size_t len, cap;
    bool overflow;
} wh_query;

/* Append one percent-encoded query string byte run. */
static void wh_query_put(wh_query *q, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                     c == '_' || c == '.' || c == '~';
        if (q->len + 4 > q->cap) {
            q->overflow = true;
            return;
        }
        if (plain) {
            q->buf[q->len++] = (char)c;
        } else {
            q->buf[q->len++] = '%';
            q->buf[q->len++] = hex[c >> 4];
            q->buf[q->len++] = hex[c & 15];
        }
    }
}

static enum MHD_Result wh_collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    wh_query *q = cls;
    if (q->len && q->len + 1 < q->cap)
        q->buf[q->len++] = '&';
    wh_query_put(q, key);
    if (value) {
        if (q->len + 1 < q->cap)
            q->buf[q->len++] = '=';
        wh_query_put(q, value);
    }
    q->buf[q->len < q->cap ? q->len : q->cap - 1] = '\0';
    return q->overflow ? MHD_NO : MHD_YES;
}

/* Is what the plugin read text we can store? */
static bool wh_event_is_text(const pagoflex_event *ev)
{
    const char *names[] = {ev->event_id, ev->type, ev->payment_id, ev->tx_id, ev->refund_id,
                           ev->refund_provider_reference_id, ev->error_code};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i] && (!*names[i] || strlen(names[i]) > 255 || !textcheck_printable(names[i], strlen(names[i]))))
            return false;
    return !ev->error_message || textcheck_utf8(ev->error_message, strlen(ev->error_message));
}

static pagoflex_webhook_event wh_event_of(const pagoflex_event *e)
{
    pagoflex_webhook_event ev = {.event_id = e->event_id,
                                 .tx_id = e->tx_id,
                                 .payment_id = e->payment_id,
                                 .state = e->state,
                                 .error_code = e->error_code,
                                 .error_message = e->error_message};
    return ev;
}

/* The outcome of a payment event's apply (sr, p, applied) into *doc; an
 * unknown bank id is kept as an orphan here. */
static store_result wh_payment_outcome(api_context *ctx, const registry_plugin *pl, const pagoflex_event *e,
                                       const unsigned char *body, size_t len, pagoflex_arena *arena,
                                       json_t *doc, store_result sr, const store_payment *pp, bool applied)
{
    const store_payment p = *pp;
    pagoflex_webhook_event ev = wh_event_of(e);
    if (sr == STORE_OK && applied)
        metrics_payment_outcome(metrics_connector(pl->desc->key), (int)p.state);
    if (sr == STORE_OK) {
        log_debug("webhook %s: connector=%s event=%s payment=%s state=%s", applied ? "applied" : "ignored",
                 pl->desc->key, e->event_id, p.id, payment_state_name(p.state));
        json_object_set_new(doc, "result", json_string(applied ? "applied" : "ignored"));
        json_object_set_new(doc, "payment_id", json_string(p.id));
        json_object_set_new(doc, "status", json_string(payment_state_name(p.state)));
    } else if (sr == STORE_DUPLICATE) {
        json_object_set_new(doc, "result", json_string("duplicate"));
        sr = STORE_OK;
    } else if (sr == STORE_NOT_FOUND && !e->payment_id && e->tx_id) {
        /* A bank id we do not know yet: keep it, apply it once it is stored. */
        sr = store_orphan_keep(ctx->store, pl->desc->key, pl->account, &ev, body, len, arena);
        int n = 0;
        if (sr == STORE_OK)
            store_orphan_apply(ctx->store, pl->desc->key, pl->account, e->tx_id, &n);
        if (sr == STORE_DUPLICATE) {
            json_object_set_new(doc, "result", json_string("duplicate"));
            sr = STORE_OK;
        } else if (sr == STORE_OK) {
            json_object_set_new(doc, "result", json_string(n ? "applied" : "stored"));
            json_object_set_new(doc, "tx_id", json_string(e->tx_id));
            sr = STORE_OK;
        }
    }
    return sr;
}

/* Apply one payment event with a state, on the pool; its outcome into *doc. */
static store_result wh_payment_event(api_context *ctx, const registry_plugin *pl, const pagoflex_event *e,
                                     const unsigned char *body, size_t len, pagoflex_arena *arena,
                                     json_t *doc)
{
    pagoflex_webhook_event ev = wh_event_of(e);
    store_payment p = {0};
    bool applied = false;
    store_result sr =
        store_webhook_apply(ctx->store, pl->desc->key, pl->account, &ev, body, len, arena, &p, &applied);
    return wh_payment_outcome(ctx, pl, e, body, len, arena, doc, sr, &p, applied);
}

/* Apply one refund event with a state. */
static store_result wh_refund_event(api_context *ctx, const registry_plugin *pl, const pagoflex_event *e,
                                    const unsigned char *body, size_t len, pagoflex_arena *arena, json_t *doc)
{
    store_refund f;
    bool applied = false;
    store_result sr =
        store_refund_webhook_apply(ctx->store, pl->desc->key, pl->account, e, body, len, arena, &f, &applied);
    if (sr == STORE_OK) {
        log_debug("webhook %s: connector=%s event=%s refund=%s state=%s", applied ? "applied" : "ignored",
                 pl->desc->key, e->event_id, f.id, payment_state_name(f.state));
        json_object_set_new(doc, "result", json_string(applied ? "applied" : "ignored"));
        json_object_set_new(doc, "refund_id", json_string(f.id));
    } else if (sr == STORE_DUPLICATE) {
        json_object_set_new(doc, "result", json_string("duplicate"));
        sr = STORE_OK;
    }
    return sr;
}

/* A look-up event: store it, then make the object due for the reconciler
 * now (it runs the sync flow off the HTTP thread). An object named only by
 * the bank's id (Mercado Pago's notifications) is found by that id. */
static store_result wh_look_up(api_context *ctx, const registry_plugin *pl, const pagoflex_event *e,
                               const unsigned char *body, size_t len, pagoflex_arena *arena, json_t *doc)
{
    store_result sr = store_webhook_keep(ctx->store, pl->desc->key, pl->account, e, body, len, arena);
    if (sr == STORE_DUPLICATE) {
        json_object_set_new(doc, "result", json_string("duplicate"));
        return STORE_OK;
    }
    if (sr != STORE_OK)
        return sr;
    /* Made due now (open or held, by our id or the bank's): the reconciler
     * runs the object's sync (or re-send) off this thread. */
    const char *found = NULL;
    const char *what = e->kind == PAGOFLEX_EVENT_REFUND ? "refund" : "payment";
    if (e->kind == PAGOFLEX_EVENT_REFUND)
        sr = store_refund_make_due(ctx->store, pl->desc->key, pl->account, e->refund_id,
                                   e->refund_id ? NULL : e->refund_provider_reference_id, arena, &found);
    else
        sr = store_recon_look_up(ctx->store, pl->desc->key, pl->account, e->payment_id,
                                 e->payment_id ? NULL : e->tx_id, arena, &found);
    if (sr == STORE_OK) {
        log_info("webhook look-up: connector=%s event=%s: %s %s is due for the reconciler now", pl->desc->key,
                 e->event_id, what, found);
        json_object_set_new(doc, e->kind == PAGOFLEX_EVENT_REFUND ? "refund_id" : "payment_id", json_string(found));
    } else if (sr == STORE_NOT_FOUND) {
        log_warn("webhook look-up: connector=%s event=%s names no open %s of this connector; stored, nothing "
                 "changed",
                 pl->desc->key, e->event_id, what);
    } else {
        log_warn("webhook look-up: connector=%s event=%s: could not make the %s due (store error %d); stored, "
                 "settled by the reconciler's own schedule",
                 pl->desc->key, e->event_id, what, (int)sr);
    }
    json_object_set_new(doc, "result", json_string("look_up"));
    return STORE_OK;
}

/* A delivery being applied, event by event; across the group commit of a
 * payment event the connection is suspended (no thread waits). Lives in
 * the request's arena. */
typedef struct wh_delivery {
    const registry_plugin *pl;
    pagoflex_webhook_parsed parsed;
    const unsigned char *body;
    size_t len;
    json_t *events; /* the outcomes so far */
    size_t next;    /* the event being applied */
    json_t *doc;    /* its outcome, while it is in the group commit */
    pagoflex_webhook_event ev;
    store_batch_op op;
} wh_delivery;

static enum MHD_Result wh_apply(api_request *r, wh_delivery *d);

/* The answer when event d->next could not be applied (sr). */
static enum MHD_Result wh_fail(api_request *r, wh_delivery *d, store_result sr, json_t *doc)
{
    const pagoflex_event *e = &d->parsed.events[d->next];
    json_decref(doc);
    json_decref(d->events);
    d->events = NULL;
    if (sr == STORE_UNAVAILABLE)
        return api_req_db_unavailable(r);
    if (sr == STORE_NOT_FOUND)
        return api_req_error(r, MHD_HTTP_NOT_FOUND,
                             e->kind == PAGOFLEX_EVENT_REFUND ? "unknown_refund" : "unknown_payment", NULL,
                             "event %s names no payment or refund we know; the events before it "
                             "were applied, a retry applies each once",
                             e->event_id);
    return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "store error %d", (int)sr);
}

/* The payment event d->next is committed (or failed): its outcome, then
 * the next events. */
static enum MHD_Result wh_committed(api_request *r, void *arg)
{
    wh_delivery *d = arg;
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    const pagoflex_event *e = &d->parsed.events[d->next];
    json_t *doc = d->doc;
    d->doc = NULL;
    if (d->op.rc == STORE_OK && d->op.orphans_waiting) {
        /* This event stored the bank id orphans wait for (after its commit). */
        int n = 0;
        store_orphan_apply(ctx->store, d->pl->desc->key, d->pl->account, d->op.row.provider_reference_id, &n);
    }
    store_result sr =
        wh_payment_outcome(ctx, d->pl, e, d->body, d->len, arena, doc, d->op.rc, &d->op.row, d->op.applied);
    if (sr != STORE_OK)
        return wh_fail(r, d, sr, doc);
    json_array_append_new(d->events, doc);
    d->next++;
    return wh_apply(r, d);
}

/* Queue payment event d->next to the group commit; wh_committed goes on. */
static enum MHD_Result wh_batch(api_request *r, wh_delivery *d, json_t *doc)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    d->ev = wh_event_of(&d->parsed.events[d->next]);
    if (!store_batch_webhook_init(&d->op, d->pl->desc->key, d->pl->account, &d->ev, d->body, d->len, arena))
        return wh_fail(r, d, STORE_ERROR, doc);
    d->doc = doc;
    d->op.done = api_req_resume;
    d->op.arg = r;
    api_req_suspend_fn(r, wh_committed, d);
    if (!store_batch_submit(ctx->batch, &d->op)) {
        /* The batcher is closing: the pool does it, orphans included. */
        d->op.rc = store_webhook_apply(ctx->store, d->pl->desc->key, d->pl->account, &d->ev, d->body, d->len,
                                       arena, &d->op.row, &d->op.applied);
        d->op.orphans_waiting = false;
        api_req_resume(r);
    }
    return MHD_YES;
}

/* Apply the events of d from d->next on, in order, then answer. */
static enum MHD_Result wh_apply(api_request *r, wh_delivery *d)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    const registry_plugin *pl = d->pl;
    const unsigned char *body = d->body;
    size_t len = d->len;
    for (; d->next < d->parsed.event_count; d->next++) {
        const pagoflex_event *e = &d->parsed.events[d->next];
        json_t *doc = json_pack("{s:s}", "event_id", e->event_id);
        store_result sr;
        if (e->kind == PAGOFLEX_EVENT_IGNORED) {
            sr = store_webhook_keep(ctx->store, pl->desc->key, pl->account, e, body, len, arena);
            log_info("webhook event %s of connector %s (type %s) acknowledged and stored; it changes nothing",
                     e->event_id, pl->desc->key, e->type ? e->type : "-");
            json_object_set_new(doc, "result", json_string(sr == STORE_DUPLICATE ? "duplicate" : "ignored"));
            if (sr == STORE_DUPLICATE)
                sr = STORE_OK;
        } else if (e->look_up) {
            sr = wh_look_up(ctx, pl, e, body, len, arena, doc);
        } else if (e->kind == PAGOFLEX_EVENT_PAYMENT && ctx->batch && !api_req_gone(r)) {
            return wh_batch(r, d, doc);
        } else if (e->kind == PAGOFLEX_EVENT_PAYMENT) {
            sr = wh_payment_event(ctx, pl, e, body, len, arena, doc);
        } else {
            sr = wh_refund_event(ctx, pl, e, body, len, arena, doc);
        }
        if (sr != STORE_OK)
            return wh_fail(r, d, sr, doc);
        json_array_append_new(d->events, doc);
    }
    json_t *events = d->events;
    d->events = NULL;
    const pagoflex_webhook_parsed parsed = d->parsed;
    if (parsed.answer_status >= 200 && parsed.answer_status < 300) {
        json_decref(events);
        const char *ct = parsed.answer_content_type ? parsed.answer_content_type : "text/plain";
        char *text = arena_strndup(
            arena, (const char *)(parsed.answer_body ? parsed.answer_body : (const unsigned char *)""),
            parsed.answer_body ? parsed.answer_body_len : 0);
        if (!text)
            return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
        return api_req_reply_raw(r, (unsigned)parsed.answer_status, text, ct);
    }
    /* One event: its own outcome, as the 1.0 path answers (202 for an
     * event kept until its bank id is known). Several: each in order. */
    if (json_array_size(events) == 1) {
        json_t *one = json_incref(json_array_get(events, 0));
        json_decref(events);
        bool kept = json_object_get(one, "tx_id") && !json_object_get(one, "payment_id");
        return api_req_reply(r, kept ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK, one);
    }
    return api_req_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:o}", "result", "ok", "events", events));
}

enum MHD_Result api_webhooks_v12(api_request *r, const registry_plugin *pl, const char *path)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    wh_headers headers = {.cap = WEBHOOK_MAX_HEADERS};
    wh_query query = {.cap = WEBHOOK_MAX_QUERY};
    headers.items = arena_alloc(arena, headers.cap * sizeof *headers.items);
    query.buf = arena_alloc(arena, query.cap);
    if (!headers.items || !query.buf)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    query.buf[0] = '\0';
    MHD_get_connection_values(api_req_conn(r), MHD_HEADER_KIND, wh_collect, &headers);
    MHD_get_connection_values(api_req_conn(r), MHD_GET_ARGUMENT_KIND, wh_collect_arg, &query);
    size_t len;
    const unsigned char *body = (const unsigned char *)api_req_body(r, &len);
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req,
                                    .method = "POST",
                                    .path = arena_printf(arena, "/webhooks/%s", path),
                                    .query = query.buf,
                                    .headers = headers.items,
                                    .header_count = headers.count,
                                    .body = body,
                                    .body_len = len};
    if (!req.path)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    int vrc = bankcall_webhook_verify(pl, &req, ctx->cfg->bank_timeout_ms, arena);
    if (vrc != PAGOFLEX_OK) {
        unsigned long n = atomic_fetch_add(&ctx->webhook_bad_signature, 1) + 1;
        log_warn("webhook refused: connector=%s path=/webhooks/%s reason=signature bytes=%zu refused_total=%lu",
                 pl->desc->key, textcheck_shown(arena, path, 40), len, n);
        return api_req_error(r, MHD_HTTP_UNAUTHORIZED, "invalid_signature", NULL,
                             "webhook signature is missing, invalid or too old");
    }
    pagoflex_webhook_parsed parsed;
    memset(&parsed, 0, sizeof parsed);
    parsed.size = (uint32_t)sizeof parsed;
    bankcall_enter(pl);
    int prc = pl->desc->webhook_parse(pl->state, &req, arena, &parsed);
    bankcall_leave(pl);
    if (prc != PAGOFLEX_OK || (parsed.event_count && !parsed.events) || parsed.event_count > 1000)
        return api_req_error(r, MHD_HTTP_BAD_REQUEST, "invalid_webhook", NULL,
                             "connector %s could not parse the webhook (status %d); nothing was stored",
                             pl->desc->key, prc);
    if (!textcheck_utf8((const char *)body, len))
        return api_req_error(r, MHD_HTTP_BAD_REQUEST, "invalid_webhook", NULL,
                             "the webhook body is not UTF-8 text; nothing was stored");
    /* Check every event before applying any: a delivery is refused whole. */
    for (size_t i = 0; i < parsed.event_count; i++) {
        const pagoflex_event *e = &parsed.events[i];
        bool names = e->kind == PAGOFLEX_EVENT_IGNORED ||
                     (e->kind == PAGOFLEX_EVENT_PAYMENT && (e->payment_id || e->tx_id)) ||
                     (e->kind == PAGOFLEX_EVENT_REFUND && (e->refund_id || e->refund_provider_reference_id));
        bool state_ok = e->kind == PAGOFLEX_EVENT_IGNORED || e->look_up ||
                        ((int)e->state >= 0 && (int)e->state < PAYMENT_STATE_COUNT);
        if (!e->event_id || !names || !state_ok || (int)e->kind < 0 || e->kind > PAGOFLEX_EVENT_IGNORED ||
            !wh_event_is_text(e))
            return api_req_error(r, MHD_HTTP_BAD_REQUEST, "invalid_webhook", NULL,
                                 "connector %s read event %zu without an event id, an object it names, a "
                                 "known state, or as text; nothing was stored",
                                 pl->desc->key, i);
    }
    if (!api_db_ready(ctx))
        return api_req_db_unavailable(r);
    wh_delivery *d = arena_alloc(arena, sizeof *d);
    if (!d)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    memset(d, 0, sizeof *d);
    d->pl = pl;
    d->parsed = parsed;
    d->body = body;
    d->len = len;
    d->events = json_array();
    return wh_apply(r, d);
}
