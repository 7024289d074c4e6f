/* api_flows.c - capture, cancel and refunds over the HTTP API (issue 11).
 *
 * Every operation is claimed in PostgreSQL before the bank hears of it:
 * store_payment_claim_operation (one capture or void in flight, only from
 * requires_capture / requires_action, a capture at most amount_capturable)
 * and store_refund_create (reserves the amount in the inserting statement,
 * never more than amount_received in total). A refused claim is answered at
 * once and nothing is sent. The bank call runs with the connection
 * suspended; its outcome is recorded, then answered. An outcome the bank
 * did not give (timeout, garbage) leaves the operation pending: never
 * failed while the bank may have done it. With group commit on, a refund's
 * claim (without Idempotency-Key) and its bank answer are batched writes
 * (store_batch.h): the request stays suspended until each is committed.
 */
#include "api_flows.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bankcall.h"
#include "idempotency.h"
#include "jsonbody.h"
#include "log.h"
#include "payment.h"
#include "payreq.h"
#include "store_batch.h"
#include "store_flows.h"
#include "store_idem.h"
#include "textcheck.h"

#define FLOW_REASON_MAX 500

typedef enum flow_op { FLOW_OP_CAPTURE, FLOW_OP_VOID, FLOW_OP_REFUND } flow_op;

/* One operation across its key wait or its bank call (in the request's arena). */
struct api_flow {
    flow_op op;
    const registry_plugin *pl;
    const char *object_id; /* the payment (capture, void) or the refund */
    const char *payment_id;
    int64_t amount; /* asked for; 0 = all */
    const char *reason;
    const char *metadata; /* JSON text or NULL */
    store_payment row;
    store_refund refund;
    pagoflex_payment pay;
    pagoflex_flow_input in;
    pagoflex_http_request breq;
    pagoflex_http_response resp;
    const char *scope, *idem_key;
    idempotency_hash hash;
    bool waiting;
    idempotency_wait wait;
    pagoflex_flow_result res; /* the bank's answer, mapped */
    store_batch_op bop;       /* a refund's write in the group commit (its claim, then the answer) */
};

static const char *flow_op_name(flow_op op)
{
    return op == FLOW_OP_CAPTURE ? "capture" : op == FLOW_OP_VOID ? "void" : "refund";
}

static json_t *flow_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *api_flows_payment_json(const store_payment *p)
{
    json_t *error = json_null();
    if (p->error_code)
        error = json_pack("{s:s, s:o}", "code", p->error_code, "message", flow_str(p->error_message));
    json_t *next = json_null();
    if (p->state == PAGOFLEX_STATE_REQUIRES_ACTION && p->redirect_url)
        next = json_pack("{s:s, s:{s:s, s:o}}", "type", "redirect_to_url", "redirect_to_url", "url",
                         p->redirect_url, "return_url", flow_str(p->return_url));
    json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", p->id, "status",
                            payment_state_name(p->state), "amount", (json_int_t)p->amount, "currency",
                            p->currency, "connector", p->connector, "provider_reference_id",
                            flow_str(p->provider_reference_id), "reference", flow_str(p->reference),
                            "description", flow_str(p->description), "created_at", flow_str(p->created_at),
                            "updated_at", flow_str(p->updated_at), "error", error);
    json_t *meta = p->metadata ? json_loads(p->metadata, 0, NULL) : NULL;
    json_t *more = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "object", "payment", "capture_method",
                             p->manual_capture ? "manual" : "automatic", "amount_capturable",
                             (json_int_t)p->amount_capturable, "amount_received",
                             (json_int_t)p->amount_received, "amount_refunded",
                             (json_int_t)p->amount_refunded, "return_url", flow_str(p->return_url),
                             "next_action", next, "pending_operation", flow_str(p->pending_operation),
                             "metadata", meta ? meta : json_object());
    if (!doc || !more || json_object_update(doc, more) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    json_decref(more);
    return doc;
}

static const char *refund_status_name(pagoflex_state s)
{
    /* created, processing (outcome unknown) and requires_review are all
     * "the bank may still do it": pending to the merchant. */
    return s == PAGOFLEX_STATE_SUCCEEDED ? "succeeded" : s == PAGOFLEX_STATE_FAILED ? "failed" : "pending";
}

json_t *api_flows_refund_json(const store_refund *f)
{
    json_t *error = json_null();
    if (f->error_code)
        error = json_pack("{s:s, s:o}", "code", f->error_code, "message", flow_str(f->error_message));
    json_t *meta = f->metadata ? json_loads(f->metadata, 0, NULL) : NULL;
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", f->id, "object",
                     "refund", "payment_id", f->payment_id, "amount", (json_int_t)f->amount, "currency",
                     f->currency, "status", refund_status_name(f->state), "reason", flow_str(f->reason),
                     "metadata", meta ? meta : json_object(), "provider_reference_id",
                     flow_str(f->provider_reference_id), "error", error, "created_at", flow_str(f->created_at),
                     "updated_at", flow_str(f->updated_at));
}

/* ---- answers -------------------------------------------------------------- */

/* An error document; `status` (the payment's or refund's current state
 * name) and `bank_code` are added when not NULL. Text from outside (the
 * bank's message) is made JSON-safe. */
static json_t *flow_error_doc(api_request *r, const char *code, const char *field, const char *status,
                              const char *bank_code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static json_t *flow_error_doc(api_request *r, const char *code, const char *field, const char *status,
                              const char *bank_code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *shown = textcheck_shown(api_req_arena(r), message, sizeof message);
    json_t *err = api_req_error_object(r, code, field, shown ? shown : "?");
    if (err && status)
        json_object_set_new(err, "status", json_string(status));
    if (err && bank_code) {
        const char *b = textcheck_shown(api_req_arena(r), bank_code, 64);
        json_object_set_new(err, "bank_code", json_string(b ? b : "?"));
    }
    return err ? json_pack("{s:o}", "error", err) : NULL;
}

/* Reply `doc` (released) with `status`; under a key, a final answer (not
 * 5xx) becomes the key's own. */
static enum MHD_Result flow_answer(api_request *r, struct api_flow *f, unsigned status, json_t *doc)
{
    if (!f->idem_key)
        return api_req_reply(r, status, doc);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    if (status < 500)
        store_idem_complete(api_req_ctx(r)->store, f->scope, f->idem_key, (int)status, text);
    enum MHD_Result ret = api_req_reply_text(r, status, text, NULL, NULL);
    free(text);
    return ret;
}

static enum MHD_Result flow_store_error(api_request *r, store_result sr, const char *what)
{
    if (sr == STORE_UNAVAILABLE)
        return api_req_db_unavailable(r);
    return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "%s failed (store error %d)", what,
                         (int)sr);
}

/* ---- input ----------------------------------------------------------------- */

/* Could `id` be one of our ids? 1 to 64 of [A-Za-z0-9_-]. */
static bool flow_id_plausible(const char *id)
{
    size_t n = strnlen(id, 65);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '_' && c != '-')
            return false;
    }
    return true;
}

/* Parse the body (empty = {}) into *root; it may hold only the members
 * `allowed` (NULL terminated). False with the reply queued. */
static bool flow_body(api_request *r, const char *const *allowed, json_t **root, enum MHD_Result *ret)
{
    size_t len;
    const char *body = api_req_body(r, &len);
    jsonbody_error jerr;
    *root = len == 0 ? json_object() : jsonbody_parse(body, len, &jerr);
    if (!*root && len == 0)
        jsonbody_error_oom(&jerr);
    if (*root && jsonbody_check_known(*root, allowed, "", api_req_arena(r), &jerr) != 0) {
        json_decref(*root);
        *root = NULL;
    }
    if (!*root) {
        *ret = api_req_error(r, (unsigned)jerr.status, jerr.code, jerr.field, "%s", jerr.message);
        return false;
    }
    return true;
}

/* An optional positive amount field; false with the reply queued. */
static bool flow_amount(api_request *r, json_t *root, const char *name, int64_t *out, enum MHD_Result *ret)
{
    json_t *v = json_object_get(root, name);
    *out = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > PAYREQ_AMOUNT_MAX) {
        *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", name,
                             "%s must be a positive integer in minor units", name);
        return false;
    }
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* The Idempotency-Key of the request, checked, with its scope on `route`
 * and the body's hash. False with the reply queued. */
static bool flow_idem_setup(api_request *r, struct api_flow *f, const char *route, enum MHD_Result *ret)
{
    const char *key = MHD_lookup_connection_value(api_req_conn(r), MHD_HEADER_KIND, "Idempotency-Key");
    if (!key)
        return true;
    if (!idempotency_key_valid(key)) {
        *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "Idempotency-Key",
                             "Idempotency-Key must be 1 to %d printable ASCII characters", IDEMPOTENCY_KEY_MAX);
        return false;
    }
    size_t len;
    const char *body = api_req_body(r, &len);
    f->scope = api_req_idempotency_scope(r, route);
    if (!f->scope || idempotency_request_hash(body, len, &f->hash) != 0) {
        *ret = api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
        return false;
    }
    f->idem_key = key;
    return true;
}

/* ---- the operation ------------------------------------------------------------ */

static enum MHD_Result flow_claim_key(api_request *r, struct api_flow *f);

/* Answer a key stuck unanswered (its request died): from the object as it
 * is now; a refund that was never made is made now, under the same key. */
static enum MHD_Result flow_answer_stale(api_request *r, struct api_flow *f, const char *object_id);

static enum MHD_Result flow_send(api_request *r, struct api_flow *f)
{
    api_context *ctx = api_req_ctx(r);
    f->waiting = false;
    api_req_suspend(r, f);
    bankcall_flow_start(f->pl, &f->in, &f->breq, ctx->cfg->bank_timeout_ms, api_req_arena(r), &f->resp, ctx->bankq,
                   ctx->blocking, api_req_resume, r);
    return MHD_YES;
}

/* The claim of a capture or void was refused: say why, from the row as it is. */
static enum MHD_Result flow_op_refused(api_request *r, struct api_flow *f, const store_payment *now)
{
    const char *st = payment_state_name(now->state);
    if (now->pending_operation)
        return flow_answer(r, f, MHD_HTTP_CONFLICT,
                           flow_error_doc(r, "operation_in_progress", NULL, st, NULL,
                                          "payment %s has a %s in progress; GET it for the outcome", now->id,
                                          now->pending_operation));
    if (f->op == FLOW_OP_CAPTURE && now->state == PAGOFLEX_STATE_REQUIRES_CAPTURE && now->capture_amount == 0)
        return flow_answer(r, f, MHD_HTTP_UNPROCESSABLE_CONTENT,
                           flow_error_doc(r, "invalid_field", "amount_to_capture", st, NULL,
                                          "amount_to_capture %" PRId64 " is more than amount_capturable %" PRId64
                                          "; nothing was sent to the bank",
                                          f->amount, now->amount_capturable));
    return flow_answer(r, f, MHD_HTTP_CONFLICT,
                       flow_error_doc(r, "invalid_state", NULL, st, NULL,
                                      "payment %s is %s: it cannot be %s; nothing was sent to the bank",
                                      now->id, st, f->op == FLOW_OP_CAPTURE ? "captured" : "canceled"));
}

/* The refund's reservation was refused. */
static enum MHD_Result flow_refund_refused(api_request *r, struct api_flow *f, const store_payment *now)
{
    const char *st = payment_state_name(now->state);
    if (now->state != PAGOFLEX_STATE_SUCCEEDED)
        return flow_answer(r, f, MHD_HTTP_CONFLICT,
                           flow_error_doc(r, "invalid_state", NULL, st, NULL,
                                          "payment %s is %s: only a captured (succeeded) payment can be "
                                          "refunded; nothing was sent to the bank",
                                          now->id, st));
    int64_t left = now->amount_received - now->amount_refunded;
    return flow_answer(r, f, MHD_HTTP_UNPROCESSABLE_CONTENT,
                       flow_error_doc(r, "invalid_field", "amount", st, NULL,
                                      "amount %" PRId64 " is more than what is left to refund of payment %s "
                                      "(%" PRId64 " of %" PRId64 " received); nothing was sent to the bank",
                                      f->amount ? f->amount : left, now->id, left, now->amount_received));
}

/* Set f->pl to the plugin account that serves `flow` for payment p (its
 * own account: a refund's is its payment's, its credentials, never
 * another's). False with the reply queued when this host has none. */
static bool flow_plugin_of(api_request *r, struct api_flow *f, const store_payment *p, pagoflex_flow flow,
                           enum MHD_Result *ret)
{
    api_context *ctx = api_req_ctx(r);
    api_req_set_connector(r, p->connector);
    f->pl = registry_find_account(ctx->registry, p->connector, p->connector_account);
    if (!f->pl) {
        bool loaded = registry_find_key(ctx->registry, p->connector) != NULL;
        *ret = api_req_error(
            r, MHD_HTTP_SERVICE_UNAVAILABLE,
            loaded ? "connector_account_unavailable" : "connector_unavailable", NULL,
            loaded ? "account %s of connector %s (payment %s) has no loaded credentials on this "
                     "host; nothing was changed or sent"
                   : "connector %s of payment %s is not loaded on this host; nothing was changed",
            loaded ? p->connector_account : p->connector, loaded ? p->connector : p->id, p->id);
        return false;
    }
    if (!registry_has_flow(f->pl, flow)) {
        *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "unsupported_operation", NULL,
                             "connector %s does not support %s; nothing was stored or sent", f->pl->desc->key,
                             registry_flow_name(flow));
        f->pl = NULL;
        return false;
    }
    return true;
}

static enum MHD_Result flow_no_payment(api_request *r, struct api_flow *f, const char *field)
{
    return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", field, "no payment with id '%s'", f->payment_id);
}

/* Common checks and the plugin of payment `payment_id`. False with the
 * reply queued. */
static bool flow_payment_plugin(api_request *r, struct api_flow *f, pagoflex_flow flow, const char *field,
                                enum MHD_Result *ret)
{
    api_context *ctx = api_req_ctx(r);
    store_payment p;
    store_result sr =
        store_payment_get_of(ctx->store, api_req_merchant(r), f->payment_id, api_req_arena(r), &p);
    if (sr == STORE_NOT_FOUND) {
        *ret = flow_no_payment(r, f, field);
        return false;
    }
    if (sr != STORE_OK) {
        *ret = flow_store_error(r, sr, "reading the payment");
        return false;
    }
    return flow_plugin_of(r, f, &p, flow, ret);
}

/* The "connector/account" pairs this host serves refunds for, as a
 * PostgreSQL text[] literal in the request's arena (keys and account names
 * need no quoting); NULL when out of memory. */
static const char *flow_refund_accounts(api_request *r)
{
    const registry *reg = api_req_ctx(r)->registry;
    size_t n = registry_count(reg), cap = 3, used = 0;
    for (size_t i = 0; i < n; i++)
        cap += strlen(registry_at(reg, i)->desc->key) + strlen(registry_at(reg, i)->account) + 2;
    char *list = arena_alloc(api_req_arena(r), cap);
    if (!list)
        return NULL;
    list[used++] = '{';
    for (size_t i = 0; i < n; i++) {
        const registry_plugin *pl = registry_at(reg, i);
        if (registry_has_flow(pl, PAGOFLEX_FLOW_REFUND))
            used += (size_t)snprintf(list + used, cap - used, "%s%s/%s", used > 1 ? "," : "", pl->desc->key,
                                     pl->account);
    }
    snprintf(list + used, cap - used, "}");
    return list;
}

/* Queue f->bop (made ready by a store_batch_*_init) to the group commit
 * and suspend the request until it is committed; `then` goes on when it is
 * resumed. When the batcher refuses it (closing), `sync` does the write
 * here and the request resumes at once, the same way. */
static enum MHD_Result flow_batch(api_request *r, struct api_flow *f, api_req_resumed_fn then,
                                  void (*sync)(api_request *, struct api_flow *))
{
    f->bop.done = api_req_resume;
    f->bop.arg = r;
    api_req_suspend_fn(r, then, f);
    if (!store_batch_submit(api_req_ctx(r)->batch, &f->bop)) {
        sync(r, f);
        api_req_resume(r);
    }
    return MHD_YES;
}

static enum MHD_Result flow_claimed(api_request *r, struct api_flow *f, store_result sr, store_payment *now);

/* The batched create done here (the batcher is closing), with the result
 * the batched one would have: when the payment was not read first, a
 * payment this host cannot refund is refused with its row, unwritten. */
static void flow_refund_create_sync(api_request *r, struct api_flow *f)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    if (!f->pl) {
        f->bop.rc = store_payment_get_of(ctx->store, api_req_merchant(r), f->payment_id, arena, &f->bop.row);
        const registry_plugin *pl =
            f->bop.rc == STORE_OK
                ? registry_find_account(ctx->registry, f->bop.row.connector, f->bop.row.connector_account)
                : NULL;
        if (f->bop.rc == STORE_OK && (!pl || !registry_has_flow(pl, PAGOFLEX_FLOW_REFUND)))
            f->bop.rc = STORE_CONFLICT;
        if (f->bop.rc != STORE_OK)
            return;
    }
    f->bop.rc = store_refund_create(ctx->store, api_req_merchant(r), f->object_id, f->payment_id, f->amount,
                                    f->reason, f->metadata, arena, &f->bop.refund, &f->bop.row);
}

/* The refund's claim in the group commit is in (f->bop). A client gone
 * meanwhile leaves a committed refund that no bank has: the reconciler
 * sends it at its next poll. */
static enum MHD_Result flow_refund_created(api_request *r, void *arg)
{
    struct api_flow *f = arg;
    if (api_req_gone(r)) {
        const store_refund *ref = &f->bop.refund;
        const char *found = NULL;
        if (f->bop.rc != STORE_OK)
            return MHD_NO;
        log_info("POST /v1/refunds: the client was gone before refund %s went to the bank; the reconciler "
                 "sends it now",
                 ref->id);
        store_refund_make_due(api_req_ctx(r)->store, ref->connector, ref->connector_account, ref->id, NULL,
                              api_req_arena(r), &found);
        return MHD_NO;
    }
    if (f->bop.rc == STORE_OK)
        f->refund = f->bop.refund;
    if (!f->pl) {
        /* The payment was not read first: the claim's answer has it, and
         * says what that read would have. */
        enum MHD_Result ret;
        if (f->bop.rc == STORE_NOT_FOUND)
            return flow_no_payment(r, f, "payment_id");
        if ((f->bop.rc == STORE_OK || f->bop.rc == STORE_CONFLICT) &&
            !flow_plugin_of(r, f, &f->bop.row, PAGOFLEX_FLOW_REFUND, &ret)) {
            if (f->bop.rc == STORE_OK) { /* not in the list it was claimed with: cannot be */
                store_refund gone;
                log_error("refund %s: claimed for connector %s account %s, which cannot refund; failed, "
                          "not sent",
                          f->refund.id, f->bop.row.connector, f->bop.row.connector_account);
                store_refund_transition(api_req_ctx(r)->store, f->refund.id, PAGOFLEX_STATE_FAILED,
                                        STORE_SOURCE_API, "not sent", NULL, "connector_unavailable",
                                        "no loaded connector account could send the refund", api_req_arena(r),
                                        &gone);
            }
            return ret;
        }
    }
    return flow_claimed(r, f, f->bop.rc, &f->bop.row);
}

/* Claim the operation in the database, build the bank call, send it. A
 * refund without an Idempotency-Key is claimed in the group commit when it
 * is on (the bank is called only once its row is committed); one with a key
 * is claimed here, on the pool. */
static enum MHD_Result flow_start(api_request *r, struct api_flow *f)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    store_payment now;
    store_result sr;
    if (f->op == FLOW_OP_REFUND) {
        if (!f->idem_key && ctx->batch) {
            /* Unread (f->pl NULL): the claim refuses what this host cannot refund. */
            const char *accounts = f->pl ? NULL : flow_refund_accounts(r);
            if ((!f->pl && !accounts) ||
                !store_batch_refund_create_init(&f->bop, api_req_merchant(r), f->object_id, f->payment_id,
                                                f->amount, f->reason, f->metadata, accounts, arena))
                return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                                     "the refund could not be stored; nothing was sent to the bank");
            return flow_batch(r, f, flow_refund_created, flow_refund_create_sync);
        }
        sr = store_refund_create(ctx->store, api_req_merchant(r), f->object_id, f->payment_id, f->amount,
                                 f->reason, f->metadata, arena, &f->refund, &now);
    } else {
        sr =
            store_payment_claim_operation(ctx->store, api_req_merchant(r), f->payment_id, flow_op_name(f->op),
                                          f->op == FLOW_OP_CAPTURE ? f->amount : 0, arena, &now);
    }
    return flow_claimed(r, f, sr, &now);
}

/* What the store said to the claim (sr; *now the payment as it is, and
 * f->refund the refund made, on STORE_OK): refuse it, or build the bank
 * call and send it. */
static enum MHD_Result flow_claimed(api_request *r, struct api_flow *f, store_result sr, store_payment *now)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    if (sr == STORE_CONFLICT)
        return f->op == FLOW_OP_REFUND ? flow_refund_refused(r, f, now) : flow_op_refused(r, f, now);
    if (sr == STORE_DUPLICATE && f->op == FLOW_OP_REFUND)
        return flow_answer_stale(r, f, f->object_id);
    if (sr == STORE_NOT_FOUND)
        return flow_answer(r, f, MHD_HTTP_NOT_FOUND,
                           flow_error_doc(r, "not_found", f->op == FLOW_OP_REFUND ? "payment_id" : "id", NULL,
                                          NULL, "no payment with id '%s'", f->payment_id));
    if (sr != STORE_OK)
        return flow_store_error(r, sr, "claiming the operation");
    f->row = *now;
    if (bankcall_payment(ctx->cfg->public_url, f->pl, &f->row, arena, &f->pay) != 0)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    pagoflex_flow_input *in = &f->in;
    memset(in, 0, sizeof *in);
    in->size = (uint32_t)sizeof *in;
    in->payment = &f->pay;
    in->amount_captured = f->row.amount_received;
    in->amount_refunded = f->row.amount_refunded;
    if (f->op == FLOW_OP_REFUND) {
        in->flow = PAGOFLEX_FLOW_REFUND;
        in->operation_id = f->refund.id;
        in->amount = f->refund.amount;
        in->refund_id = f->refund.id;
        in->reason = f->refund.reason;
    } else {
        in->flow = f->op == FLOW_OP_CAPTURE ? PAGOFLEX_FLOW_CAPTURE : PAGOFLEX_FLOW_VOID;
        /* One capture and one void per payment: their ids follow from it,
         * so a retry (the reconciler's too) sends the same one. */
        in->operation_id = arena_printf(arena, "%s_%s", f->row.id, flow_op_name(f->op));
        in->amount = f->op == FLOW_OP_CAPTURE ? f->row.capture_amount : 0;
        if (!in->operation_id)
            return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    }
    int rc = bankcall_flow_request(f->pl, in, arena, &f->breq);
    if (rc == PAGOFLEX_OK)
        return flow_send(r, f);
    /* Nothing was sent: undo the claim. */
    if (f->op == FLOW_OP_REFUND) {
        store_refund gone;
        store_refund_transition(ctx->store, f->refund.id, PAGOFLEX_STATE_FAILED, STORE_SOURCE_API, "not sent",
                                NULL, "connector_refused", "the connector could not build the refund request",
                                arena, &gone);
    } else {
        store_payment_release_operation(ctx->store, f->row.id, flow_op_name(f->op), arena, now);
    }
    bool refused = rc == PAGOFLEX_ERR_UNSUPPORTED || rc == PAGOFLEX_ERR_INVALID;
    return flow_answer(r, f, refused ? MHD_HTTP_UNPROCESSABLE_CONTENT : MHD_HTTP_BAD_GATEWAY,
                       flow_error_doc(r, refused ? "connector_refused" : "connector_error", NULL, NULL, NULL,
                                      "connector %s %s this %s (status %d); nothing was sent to the bank",
                                      f->pl->desc->key, refused ? "cannot make" : "failed to build",
                                      flow_op_name(f->op), rc));
}

/* The bank answered (or did not) a capture or void. */
static enum MHD_Result flow_finish_op(api_request *r, struct api_flow *f, const pagoflex_flow_result *res)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    const char *op = flow_op_name(f->op);
    store_payment now;
    store_result sr;
    if (res->state == PAGOFLEX_STATE_SUCCEEDED) {
        pagoflex_state to = f->op == FLOW_OP_CAPTURE ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_CANCELED;
        sr = store_payment_transition_from(ctx->store, f->row.id, to, STORE_SOURCE_BANK_REPLY, op, NULL, NULL,
                                           NULL, arena, &now);
        if (sr != STORE_OK && sr != STORE_CONFLICT)
            return flow_store_error(r, sr, "recording the bank's answer");
        return flow_answer(r, f, MHD_HTTP_OK, api_flows_payment_json(&now));
    }
    if (res->state == PAGOFLEX_STATE_FAILED) {
        sr = store_payment_release_operation(ctx->store, f->row.id, op, arena, &now);
        if (sr != STORE_OK && sr != STORE_CONFLICT)
            return flow_store_error(r, sr, "recording the bank's refusal");
        return flow_answer(r, f, MHD_HTTP_CONFLICT,
                           flow_error_doc(r, "operation_declined", NULL, payment_state_name(now.state),
                                          res->error_code, "the bank refused the %s of payment %s: %s", op,
                                          f->row.id, res->error_message ? res->error_message : "no detail"));
    }
    /* PENDING (a webhook tells) or PROCESSING (unknown): the operation stays
     * claimed, so nothing else can start; the reconciler syncs it after the
     * webhook grace, or re-sends it (same operation id) after the first
     * retry delay. The payment as it is. */
    bool accepted = res->state == PAGOFLEX_STATE_PENDING;
    log_info("payment %s: %s %s at the bank (%s)", f->row.id, op,
             accepted ? "accepted, result to come" : "outcome unknown",
             res->error_code ? res->error_code : "-");
    char why[300];
    snprintf(why, sizeof why, "%s: %.250s", res->error_code ? res->error_code : (accepted ? "bank_pending" : "unknown"),
             res->error_message ? res->error_message : (accepted ? "the bank accepted it; result to come" : "no detail"));
    sr = store_payment_schedule_operation(ctx->store, f->row.id, op,
                                          accepted ? ctx->cfg->webhook_grace_s * 1000 : ctx->cfg->retry_base_ms,
                                          accepted, why);
    if (sr != STORE_OK)
        log_warn("payment %s: could not schedule the %s for the reconciler (store error %d); it is taken up "
                 "recover_after_ms after its claim",
                 f->row.id, op, (int)sr);
    sr = store_payment_get(ctx->store, f->row.id, arena, &now);
    if (sr != STORE_OK)
        return flow_store_error(r, sr, "reading the payment");
    return flow_answer(r, f, MHD_HTTP_ACCEPTED, api_flows_payment_json(&now));
}

static void flow_refund_record_sync(api_request *r, struct api_flow *f)
{
    const pagoflex_flow_result *res = &f->res;
    f->bop.rc = store_refund_transition(
        api_req_ctx(r)->store, f->refund.id, res->state, STORE_SOURCE_BANK_REPLY, NULL,
        res->provider_reference_id, res->error_code, res->error_message, api_req_arena(r), &f->bop.refund);
}

/* The bank's answer to the refund is recorded (f->bop): the reply. */
static enum MHD_Result flow_refund_recorded(api_request *r, void *arg)
{
    struct api_flow *f = arg;
    store_result sr = f->bop.rc;
    if (sr != STORE_OK && sr != STORE_CONFLICT)
        return flow_store_error(r, sr, "recording the bank's answer to the refund");
    return flow_answer(r, f, MHD_HTTP_CREATED, api_flows_refund_json(&f->bop.refund));
}

/* The bank answered (or did not) a refund (f->res): record it durably
 * (through the group commit when it is on, and the client is still there),
 * then reply. */
static enum MHD_Result flow_finish_refund(api_request *r, struct api_flow *f)
{
    const pagoflex_flow_result *res = &f->res;
    if (api_req_ctx(r)->batch && !api_req_gone(r) &&
        store_batch_refund_transition_init(&f->bop, f->refund.id, f->refund.payment_id, res->state,
                                           STORE_SOURCE_BANK_REPLY, NULL, res->provider_reference_id,
                                           res->error_code, res->error_message, api_req_arena(r)))
        return flow_batch(r, f, flow_refund_recorded, flow_refund_record_sync);
    flow_refund_record_sync(r, f);
    return flow_refund_recorded(r, f);
}

/* Hold the request's key (if any), then start. */
static enum MHD_Result flow_claim_key(api_request *r, struct api_flow *f)
{
    api_context *ctx = api_req_ctx(r);
    for (int tries = 0; f->idem_key && tries < 3; tries++) {
        store_result sr =
            store_idem_claim(ctx->store, f->scope, f->idem_key, f->hash.canonical, ctx->cfg->idempotency_ttl_s, f->object_id);
        if (sr == STORE_OK)
            break;
        if (sr != STORE_DUPLICATE)
            return flow_store_error(r, sr, "claiming the Idempotency-Key");
        int status = 0;
        const char *response = NULL, *object_id = NULL;
        idempotency_verdict v = idempotency_check(ctx->store, f->scope, f->idem_key, &f->hash,
                                                  ctx->cfg->idempotency_stale_ms, api_req_arena(r), &status,
                                                  &response, &object_id);
        switch (v) {
        case IDEMPOTENCY_GONE:
            continue;
        case IDEMPOTENCY_REPLAY:
            return api_req_reply_text(r, (unsigned)status, response, "Idempotent-Replayed", "true");
        case IDEMPOTENCY_MISMATCH:
            return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "idempotency_key_reused", "Idempotency-Key",
                                 "this Idempotency-Key was used with a different request body; use a new key "
                                 "for a new operation");
        case IDEMPOTENCY_STALE:
            return flow_answer_stale(r, f, object_id);
        case IDEMPOTENCY_UNAVAILABLE:
            return api_req_db_unavailable(r);
        case IDEMPOTENCY_BUSY:
        default:
            if (!f->wait.until_ms || idempotency_now_ms() < f->wait.until_ms) {
                idempotency_wait *w = &f->wait;
                if (!w->until_ms)
                    w->until_ms = idempotency_now_ms() + ctx->cfg->idempotency_wait_ms;
                w->scope = f->scope;
                w->key = f->idem_key;
                w->request_hash = &f->hash;
                w->stale_ms = ctx->cfg->idempotency_stale_ms;
                w->arena = api_req_arena(r);
                w->done = api_req_resume;
                w->arg = r;
                f->waiting = true;
                api_req_suspend(r, f);
                idempotency_wait_start(ctx->idem_waiter, w);
                return MHD_YES;
            }
            return api_req_error(r, MHD_HTTP_CONFLICT, "idempotency_key_in_use", "Idempotency-Key",
                                 "a request with this Idempotency-Key is still being processed; retry after a "
                                 "second");
        }
    }
    return flow_start(r, f);
}

static enum MHD_Result flow_answer_stale(api_request *r, struct api_flow *f, const char *object_id)
{
    api_context *ctx = api_req_ctx(r);
    pagoflex_arena *arena = api_req_arena(r);
    if (f->op == FLOW_OP_REFUND) {
        store_refund ref;
        store_result sr = store_refund_get_of(ctx->store, api_req_merchant(r), object_id, arena, &ref);
        if (sr == STORE_OK) {
            json_t *doc = api_flows_refund_json(&ref);
            char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
            json_decref(doc);
            if (!text)
                return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
            enum MHD_Result ret = api_req_reply_text(r, MHD_HTTP_CREATED, text, "Idempotent-Replayed", "true");
            free(text);
            return ret;
        }
        if (sr != STORE_NOT_FOUND)
            return flow_store_error(r, sr, "reading the refund");
        /* Its request died before making it: make it now, one of many. */
        sr = store_idem_takeover(ctx->store, f->scope, f->idem_key, f->hash.canonical, f->hash.bytes,
                                 ctx->cfg->idempotency_stale_ms);
        if (sr == STORE_OK) {
            f->object_id = object_id;
            return flow_start(r, f);
        }
        if (sr != STORE_CONFLICT)
            return flow_store_error(r, sr, "taking over the Idempotency-Key");
        return api_req_error(r, MHD_HTTP_CONFLICT, "idempotency_key_in_use", "Idempotency-Key",
                             "a request with this Idempotency-Key is still being processed; retry after a second");
    }
    store_payment p;
    store_result sr = store_payment_get_of(ctx->store, api_req_merchant(r), object_id, arena, &p);
    if (sr != STORE_OK)
        return flow_store_error(r, sr, "reading the payment");
    return api_req_reply(r, p.pending_operation ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK, api_flows_payment_json(&p));
}

static struct api_flow *flow_new(api_request *r, flow_op op)
{
    struct api_flow *f = arena_alloc(api_req_arena(r), sizeof *f);
    if (f) {
        memset(f, 0, sizeof *f);
        f->op = op;
    }
    return f;
}

/* The checks every route of this file makes first. */
static bool flow_preamble(api_request *r, enum MHD_Result *ret)
{
    if (!api_req_authorized(r, ret) || !api_req_json_body(r, ret))
        return false;
    if (!api_db_ready(api_req_ctx(r))) {
        *ret = api_req_db_unavailable(r);
        return false;
    }
    return true;
}

enum MHD_Result api_flows_payment_operation(api_request *r, const char *id, bool cancel)
{
    enum MHD_Result ret;
    if (!flow_preamble(r, &ret))
        return ret;
    if (!flow_id_plausible(id))
        return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id", "no payment with id '%s'",
                             textcheck_shown(api_req_arena(r), id, 64));
    struct api_flow *f = flow_new(r, cancel ? FLOW_OP_VOID : FLOW_OP_CAPTURE);
    json_t *root = NULL;
    if (!f)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    static const char *const capture_fields[] = {"amount_to_capture", NULL}, *const cancel_fields[] = {NULL};
    if (!flow_body(r, cancel ? cancel_fields : capture_fields, &root, &ret))
        return ret;
    bool ok = cancel || flow_amount(r, root, "amount_to_capture", &f->amount, &ret);
    json_decref(root);
    if (!ok)
        return ret;
    f->payment_id = f->object_id = id;
    if (!flow_payment_plugin(r, f, cancel ? PAGOFLEX_FLOW_VOID : PAGOFLEX_FLOW_CAPTURE, "id", &ret))
        return ret;
    char route[96];
    snprintf(route, sizeof route, "POST /v1/payments/%s/%s", id, cancel ? "cancel" : "capture");
    if (!flow_idem_setup(r, f, route, &ret))
        return ret;
    return flow_claim_key(r, f);
}

/* The optional fields of a refund; false with the reply queued. */
static bool flow_refund_fields(api_request *r, json_t *root, struct api_flow *f, enum MHD_Result *ret)
{
    pagoflex_arena *arena = api_req_arena(r);
    json_t *pid = json_object_get(root, "payment_id");
    if (!pid) {
        *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "missing_field", "payment_id",
                             "payment_id is required: the id of the payment to refund");
        return false;
    }
    if (!json_is_string(pid) || !flow_id_plausible(json_string_value(pid))) {
        *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "payment_id",
                             "payment_id must be a payment id such as pay_...");
        return false;
    }
    f->payment_id = arena_strdup(arena, json_string_value(pid));
    if (!flow_amount(r, root, "amount", &f->amount, ret))
        return false;
    json_t *reason = json_object_get(root, "reason");
    if (reason && !json_is_null(reason)) {
        size_t n = json_is_string(reason) ? json_string_length(reason) : 0;
        if (!json_is_string(reason) || n > FLOW_REASON_MAX || memchr(json_string_value(reason), '\0', n)) {
            *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "reason",
                                 "reason must be a string of at most %d bytes without NUL", FLOW_REASON_MAX);
            return false;
        }
        f->reason = arena_strndup(arena, json_string_value(reason), n);
    }
    jsonbody_error jerr;
    if (jsonbody_metadata(json_object_get(root, "metadata"), arena, &f->metadata, &jerr) != 0) {
        *ret = api_req_error(r, (unsigned)jerr.status, jerr.code, jerr.field, "%s", jerr.message);
        return false;
    }
    if (!f->payment_id || (reason && json_is_string(reason) && !f->reason)) {
        *ret = api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
        return false;
    }
    return true;
}

enum MHD_Result api_flows_refund_create(api_request *r)
{
    enum MHD_Result ret;
    if (!flow_preamble(r, &ret))
        return ret;
    struct api_flow *f = flow_new(r, FLOW_OP_REFUND);
    json_t *root = NULL;
    if (!f)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    static const char *const fields[] = {"payment_id", "amount", "reason", "metadata", NULL};
    if (!flow_body(r, fields, &root, &ret))
        return ret;
    bool ok = flow_refund_fields(r, root, f, &ret);
    json_decref(root);
    if (!ok)
        return ret;
    /* Without a key, in the group commit, the claim itself reads the
     * payment and refuses one this host cannot refund (flow_refund_created
     * answers as this read would); with a key, the read comes first, before
     * the key is held. */
    bool keyed = MHD_lookup_connection_value(api_req_conn(r), MHD_HEADER_KIND, "Idempotency-Key") != NULL;
    if ((keyed || !api_req_ctx(r)->batch) &&
        !flow_payment_plugin(r, f, PAGOFLEX_FLOW_REFUND, "payment_id", &ret))
        return ret;
    if (!flow_idem_setup(r, f, "POST /v1/refunds", &ret))
        return ret;
    f->object_id = api_req_new_id(r, "re");
    if (!f->object_id)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    return flow_claim_key(r, f);
}

enum MHD_Result api_flows_refund_get(api_request *r, const char *id)
{
    enum MHD_Result ret;
    if (!flow_preamble(r, &ret))
        return ret;
    if (!flow_id_plausible(id))
        return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id", "no refund with id '%s'",
                             textcheck_shown(api_req_arena(r), id, 64));
    store_refund f;
    store_result sr =
        store_refund_get_of(api_req_ctx(r)->store, api_req_merchant(r), id, api_req_arena(r), &f);
    if (sr == STORE_NOT_FOUND)
        return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id", "no refund with id '%s'", id);
    if (sr != STORE_OK)
        return flow_store_error(r, sr, "reading the refund");
    return api_req_reply(r, MHD_HTTP_OK, api_flows_refund_json(&f));
}

bool api_flows_waiting(const struct api_flow *f)
{
    return f->waiting;
}

enum MHD_Result api_flows_resumed(api_request *r, struct api_flow *f)
{
    if (f->waiting) {
        f->waiting = false;
        const idempotency_wait *w = &f->wait;
        switch (w->verdict) {
        case IDEMPOTENCY_GONE:
            return flow_claim_key(r, f);
        case IDEMPOTENCY_REPLAY:
            return api_req_reply_text(r, (unsigned)w->status, w->response, "Idempotent-Replayed", "true");
        case IDEMPOTENCY_MISMATCH:
            return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "idempotency_key_reused", "Idempotency-Key",
                                 "this Idempotency-Key was used with a different request body; use a new key "
                                 "for a new operation");
        case IDEMPOTENCY_STALE:
            return flow_answer_stale(r, f, w->payment_id);
        case IDEMPOTENCY_UNAVAILABLE:
            return api_req_db_unavailable(r);
        case IDEMPOTENCY_BUSY:
        default:
            return api_req_error(r, MHD_HTTP_CONFLICT, "idempotency_key_in_use", "Idempotency-Key",
                                 "a request with this Idempotency-Key is still being processed; retry after a "
                                 "second");
        }
    }
    bankcall_flow_map(f->pl, &f->in, &f->resp, api_req_arena(r), &f->res);
    if (f->op == FLOW_OP_REFUND)
        return flow_finish_refund(r, f);
    return flow_finish_op(r, f, &f->res);
}
