/* api_endpoints.c - the webhook endpoint routes (see api_endpoints.h). */
#include "api_endpoints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "arena.h"
#include "log.h"
#include "notify_secret.h"
#include "notify_target.h"
#include "store_notify.h"
#include "textcheck.h"

#define ENDPOINT_DESCRIPTION_MAX 500
#define ENDPOINT_ID_MAX 64

const char *const api_endpoints_event_types[] = {
    "payment.processing",
    "payment.pending",
    "payment.requires_action",
    "payment.requires_capture",
    "payment.succeeded",
    "payment.failed",
    "payment.canceled",
    "payment.requires_review",
    "refund.succeeded",
    "refund.failed",
    NULL,
};

static json_t *ep_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *endpoint_json(const store_endpoint *e, const char *secret)
{
    json_t *events = e->events_json ? json_loads(e->events_json, 0, NULL) : NULL;
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s}", "id", e->id, "object", "webhook_endpoint",
                            "url", e->url, "description", ep_str(e->description), "events",
                            events ? events : json_pack("[s]", "*"), "created_at", e->created_at,
                            "updated_at", e->updated_at);
    if (doc && e->previous_secret_expires_at)
        json_object_set_new(doc, "previous_secret_expires_at", json_string(e->previous_secret_expires_at));
    if (doc && secret)
        json_object_set_new(doc, "secret", json_string(secret));
    return doc;
}

static json_t *delivery_json(const store_delivery *d)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:s, s:s, s:o}", "id", d->id,
                     "object", "webhook_delivery", "endpoint_id", d->endpoint_id, "event_id", d->event_id,
                     "event_type", d->event_type, "status", d->status, "attempts", d->attempts,
                     "last_http_status",
                     d->last_http_status ? json_integer(d->last_http_status) : json_null(), "last_error",
                     ep_str(d->last_error), "next_attempt_at", ep_str(d->next_attempt_at), "created_at",
                     d->created_at, "updated_at", d->updated_at, "delivered_at", ep_str(d->delivered_at));
}

static enum MHD_Result ep_store_error(api_request *r, store_result sr)
{
    if (sr == STORE_UNAVAILABLE)
        return api_req_db_unavailable(r);
    return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                         "the webhook endpoint could not be read or written; try again");
}

static bool ep_id_plausible(const char *id, size_t len)
{
    if (len == 0 || len > ENDPOINT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '_')
            return false;
    }
    return true;
}

static enum MHD_Result ep_not_found(api_request *r, const char *id)
{
    return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id", "no webhook endpoint with id '%s'",
                         textcheck_shown(api_req_arena(r), id, ENDPOINT_ID_MAX));
}

/* The "events" field: NULL (absent) or a JSON array text of known,
 * distinct types. False with the reply queued. */
static bool ep_events(api_request *r, json_t *root, const char **out, enum MHD_Result *ret)
{
    json_t *ev = json_object_get(root, "events");
    *out = NULL;
    if (!ev || json_is_null(ev))
        return true;
    if (!json_is_array(ev) || json_array_size(ev) == 0) {
        *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "events",
                             "events must be a non-empty list of event types such as "
                             "[\"payment.succeeded\"]; leave it out (or [\"*\"]) for every type");
        return false;
    }
    /* ["*"]: every type, as an endpoint without events shows it. */
    if (json_array_size(ev) == 1 && json_is_string(json_array_get(ev, 0)) &&
        strcmp(json_string_value(json_array_get(ev, 0)), "*") == 0)
        return true;
    json_t *clean = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(ev, i, item)
    {
        const char *t = json_string_value(item);
        size_t k = 0;
        while (t && api_endpoints_event_types[k] && strcmp(api_endpoints_event_types[k], t) != 0)
            k++;
        if (!t || !api_endpoints_event_types[k]) {
            json_decref(clean);
            *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "events",
                                 "events[%zu] is not a known event type (payment.succeeded, payment.failed, "
                                 "payment.requires_capture, payment.canceled, payment.requires_action, "
                                 "payment.requires_review, payment.processing, payment.pending, "
                                 "refund.succeeded, refund.failed)",
                                 i);
            return false;
        }
        bool seen = false;
        size_t j;
        json_t *prev;
        json_array_foreach(clean, j, prev) seen |= strcmp(json_string_value(prev), t) == 0;
        if (!seen)
            json_array_append_new(clean, json_string(t));
    }
    char *text = json_dumps(clean, JSON_COMPACT);
    json_decref(clean);
    *out = text ? arena_strdup(api_req_arena(r), text) : NULL;
    free(text);
    if (!*out) {
        *ret = api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
        return false;
    }
    return true;
}

/* Reject any field the route does not know, naming it. */
static bool ep_known_fields(api_request *r, json_t *root, enum MHD_Result *ret)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "url") != 0 && strcmp(key, "events") != 0 && strcmp(key, "description") != 0) {
            *ret = api_req_error(r, MHD_HTTP_BAD_REQUEST, "unknown_parameter", key,
                                 "unknown parameter '%s'; a webhook endpoint takes url, events and description",
                                 textcheck_shown(api_req_arena(r), key, 64));
            return false;
        }
    }
    return true;
}

static enum MHD_Result ep_create(api_request *r)
{
    api_context *ctx = api_req_ctx(r);
    enum MHD_Result ret;
    size_t len;
    const char *body = api_req_body(r, &len);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    char err[300];
    char secret[NOTIFY_SECRET_LEN + 1] = "";
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if (!root || !json_is_object(root)) {
        ret =
            api_req_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                          "request body must be a JSON object%s%s", root ? "" : ": ", root ? "" : jerr.text);
        goto done;
    }
    if (!ep_known_fields(r, root, &ret))
        goto done;
    json_t *url = json_object_get(root, "url");
    if (!url) {
        ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "missing_field", "url",
                            "url is required: the https URL notifications are sent to");
        goto done;
    }
    if (!json_is_string(url)) {
        ret =
            api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "url", "url must be a string");
        goto done;
    }
    if (notify_target_check_url(json_string_value(url), ctx->cfg->notify_allow_private_targets != 0, err,
                                sizeof err) != 0) {
        ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "url", "%s", err);
        goto done;
    }
    json_t *desc = json_object_get(root, "description");
    const char *description = NULL;
    if (desc && !json_is_null(desc)) {
        if (!json_is_string(desc) || json_string_length(desc) > ENDPOINT_DESCRIPTION_MAX ||
            !textcheck_utf8(json_string_value(desc), json_string_length(desc))) {
            ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "description",
                                "description must be text of at most %d bytes", ENDPOINT_DESCRIPTION_MAX);
            goto done;
        }
        description = json_string_value(desc);
    }
    const char *events = NULL;
    if (!ep_events(r, root, &events, &ret))
        goto done;
    if (!ctx->notify_keys) {
        ret = api_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", NULL,
                            "this host holds no master key to keep endpoint secrets with");
        goto done;
    }
    const char *id = api_req_new_id(r, "we");
    if (!id || notify_secret_new(secret) != 0 ||
        notify_secret_seal(ctx->notify_keys, id, secret, &sealed, &sealed_len, err, sizeof err) != 0) {
        log_error("webhook endpoint: the secret could not be made or sealed: %s", id ? err : "out of memory");
        ret = api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                            "the endpoint's secret could not be made; try again");
        goto done;
    }
    store_endpoint e = {.id = id,
                        .merchant_id = api_req_merchant(r),
                        .url = json_string_value(url),
                        .description = description,
                        .events_json = events,
                        .secret_enc = sealed,
                        .secret_enc_len = sealed_len};
    store_endpoint stored;
    store_result sr = store_endpoint_insert(ctx->store, &e, api_req_arena(r), &stored);
    if (sr == STORE_CONFLICT) {
        ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "endpoint_limit_reached", NULL,
                            "a merchant may have at most %d webhook endpoints; delete one first",
                            STORE_NOTIFY_ENDPOINTS_MAX);
        goto done;
    }
    if (sr != STORE_OK) {
        ret = ep_store_error(r, sr);
        goto done;
    }
    log_info("webhook endpoint %s created for merchant %s", stored.id, stored.merchant_id);
    ret = api_req_reply(r, MHD_HTTP_CREATED, endpoint_json(&stored, secret));
done:
    OPENSSL_cleanse(secret, sizeof secret);
    free(sealed);
    json_decref(root);
    return ret;
}

static enum MHD_Result ep_list(api_request *r)
{
    store_endpoint *rows = NULL;
    size_t n = 0;
    store_result sr =
        store_endpoint_list(api_req_ctx(r)->store, api_req_merchant(r), api_req_arena(r), &rows, &n);
    if (sr != STORE_OK)
        return ep_store_error(r, sr);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, endpoint_json(&rows[i], NULL));
    return api_req_reply(r, MHD_HTTP_OK, json_pack("{s:o}", "data", data));
}

static enum MHD_Result ep_get(api_request *r, const char *id)
{
    store_endpoint e;
    store_result sr =
        store_endpoint_get(api_req_ctx(r)->store, api_req_merchant(r), id, api_req_arena(r), &e);
    if (sr == STORE_NOT_FOUND)
        return ep_not_found(r, id);
    if (sr != STORE_OK)
        return ep_store_error(r, sr);
    return api_req_reply(r, MHD_HTTP_OK, endpoint_json(&e, NULL));
}

static enum MHD_Result ep_delete(api_request *r, const char *id)
{
    store_result sr = store_endpoint_delete(api_req_ctx(r)->store, api_req_merchant(r), id);
    if (sr == STORE_NOT_FOUND)
        return ep_not_found(r, id);
    if (sr != STORE_OK)
        return ep_store_error(r, sr);
    log_info("webhook endpoint %s deleted by merchant %s", id, api_req_merchant(r));
    return api_req_reply(r, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:b}", "id", id, "object", "webhook_endpoint", "deleted", 1));
}

static enum MHD_Result ep_rotate(api_request *r, const char *id)
{
    api_context *ctx = api_req_ctx(r);
    char secret[NOTIFY_SECRET_LEN + 1] = "", err[300];
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    enum MHD_Result ret;
    if (!ctx->notify_keys || notify_secret_new(secret) != 0 ||
        notify_secret_seal(ctx->notify_keys, id, secret, &sealed, &sealed_len, err, sizeof err) != 0) {
        ret = api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                            "a new secret could not be made; try again");
        goto done;
    }
    store_endpoint e;
    store_result sr = store_endpoint_rotate(ctx->store, api_req_merchant(r), id, sealed, sealed_len,
                                            ctx->cfg->notify_secret_grace_s, api_req_arena(r), &e);
    if (sr == STORE_NOT_FOUND)
        ret = ep_not_found(r, id);
    else if (sr != STORE_OK)
        ret = ep_store_error(r, sr);
    else {
        log_info("webhook endpoint %s: secret rotated; the previous one signs too until %s", id,
                 e.previous_secret_expires_at ? e.previous_secret_expires_at : "now");
        ret = api_req_reply(r, MHD_HTTP_OK, endpoint_json(&e, secret));
    }
done:
    OPENSSL_cleanse(secret, sizeof secret);
    free(sealed);
    return ret;
}

static enum MHD_Result ep_deliveries(api_request *r, const char *id)
{
    store_delivery *rows = NULL;
    size_t n = 0;
    store_result sr =
        store_delivery_list(api_req_ctx(r)->store, api_req_merchant(r), id, api_req_arena(r), &rows, &n);
    if (sr == STORE_NOT_FOUND)
        return ep_not_found(r, id);
    if (sr != STORE_OK)
        return ep_store_error(r, sr);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, delivery_json(&rows[i]));
    return api_req_reply(r, MHD_HTTP_OK, json_pack("{s:o}", "data", data));
}

static enum MHD_Result ep_resend(api_request *r, const char *id, const char *delivery_id)
{
    const char *new_id = api_req_new_id(r, "dlv");
    if (!new_id)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    store_delivery d;
    store_result sr = store_delivery_resend(api_req_ctx(r)->store, api_req_merchant(r), id, delivery_id,
                                            new_id, api_req_arena(r), &d);
    if (sr == STORE_NOT_FOUND)
        return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", "delivery_id",
                             "no delivery '%s' of webhook endpoint '%s'",
                             textcheck_shown(api_req_arena(r), delivery_id, ENDPOINT_ID_MAX),
                             textcheck_shown(api_req_arena(r), id, ENDPOINT_ID_MAX));
    if (sr == STORE_CONFLICT)
        return api_req_error(r, MHD_HTTP_CONFLICT, "delivery_pending", "delivery_id",
                             "delivery %s of this event to this endpoint is still pending; it is sent "
                             "without a resend",
                             d.id);
    if (sr != STORE_OK)
        return ep_store_error(r, sr);
    return api_req_reply(r, MHD_HTTP_ACCEPTED, delivery_json(&d));
}

enum MHD_Result api_endpoints_route(api_request *r, const char *method, const char *rest)
{
    enum MHD_Result ret;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    bool del = strcmp(method, "DELETE") == 0;
    if (!api_req_authorized(r, &ret) || !api_req_json_body(r, &ret))
        return ret;
    if (!api_db_ready(api_req_ctx(r)))
        return api_req_db_unavailable(r);
    if (!*rest) {
        if (post)
            return ep_create(r);
        if (get)
            return ep_list(r);
        api_req_allow(r, "GET, POST");
        return api_req_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
                             "%s is not allowed here; use GET or POST", method);
    }
    /* "/{id}", "/{id}/rotate_secret", "/{id}/deliveries", "/{id}/deliveries/{d}/resend" */
    const char *id_start = rest + 1, *slash = strchr(id_start, '/');
    size_t id_len = slash ? (size_t)(slash - id_start) : strlen(id_start);
    char *id = arena_strndup(api_req_arena(r), id_start, id_len);
    if (!id)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    if (!ep_id_plausible(id, id_len))
        return ep_not_found(r, id);
    const char *tail = slash ? slash : "";
    const char *allowed = NULL;
    if (!*tail) {
        if (get)
            return ep_get(r, id);
        if (del)
            return ep_delete(r, id);
        allowed = "GET, DELETE";
    } else if (strcmp(tail, "/rotate_secret") == 0) {
        if (post)
            return ep_rotate(r, id);
        allowed = "POST";
    } else if (strcmp(tail, "/deliveries") == 0) {
        if (get)
            return ep_deliveries(r, id);
        allowed = "GET";
    } else if (strncmp(tail, "/deliveries/", 12) == 0) {
        const char *d = tail + 12, *end = strchr(d, '/');
        if (end && strcmp(end, "/resend") == 0 && ep_id_plausible(d, (size_t)(end - d))) {
            if (post)
                return ep_resend(r, id, arena_strndup(api_req_arena(r), d, (size_t)(end - d)));
            allowed = "POST";
        }
    }
    api_req_allow(r, allowed);
    if (allowed)
        return api_req_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
                             "%s is not allowed here; use %s", method, allowed);
    return api_req_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no route for %s /v1/webhook_endpoints%s",
                         method, textcheck_shown(api_req_arena(r), rest, 100));
}
