/* api.c - the HTTP API (GNU libmicrohttpd, JSON with Jansson).
 *
 * Routes:
 *   POST /v1/payments          create a payment through a connector
 *   GET  /v1/payments/{id}     read one payment
 *   GET  /v1/payments          the merchant's payments, a page at a time (api_lists.c)
 *   GET  /v1/payments/{id}/events  the payment's state changes, oldest first
 *   POST /v1/payments/{id}/capture, /cancel, POST /v1/refunds,
 *   GET  /v1/refunds/{id}      (api_flows.c)
 *   GET  /v1/refunds           the merchant's refunds, a page at a time (api_lists.c)
 *   GET  /openapi.yaml         the API reference, host/http/openapi.yaml, embedded at build time
 *   POST /webhooks/{path}      a bank's signed webhook, for the connector serving {path}
 *   POST /webhooks/{path}/{account}  the same, for that connector account
 *   GET  /healthz              database reachability and the serving generation
 *   GET  /livez, /readyz       process alive; database, schema and plugins ready (admin.c)
 * and on the admin listener (admin_listen:admin_port) only:
 *   GET  /v1/connectors        the loaded connectors
 *   GET  /metrics              counters and latency histograms (Prometheus text)
 *
 * Every error is {"error": {"code", "message", "field", "request_id",
 * "doc_url"}} (doc_url: the code's entry in the API reference), and
 * every answer carries X-Request-Id (reqid.h); each request ends with one
 * access line in the log. The body is read in full (up to max_body_bytes)
 * before a route runs; handlers run on the server's thread pool.
 */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "acctcache.h"
#include "admin.h"
#include "api_endpoints.h"
#include "api_flows.h"
#include "api_lists.h"
#include "api_webhooks.h"
#include "apikey.h"
#include "arena.h"
#include "bankcall.h"
#include "idempotency.h"
#include "http_limits.h"
#include "hex.h"
#include "log.h"
#include "metrics.h"
#include "openapi_doc.h"
#include "payment.h"
#include "payreq.h"
#include "reqid.h"
#include "store_accounts.h"
#include "store_batch.h"
#include "store_flows.h"
#include "store_idem.h"
#include "store_orphan.h"
#include "store_recon.h"
#include "textcheck.h"

#define API_ID_CHARS 26
#define API_IDEM_POLL_MS 25
#define API_DOC_ERRORS "/openapi.yaml#/components/x-error-codes/" /* + the error code */ /* how often a waiting request's key is read again */

/* What a libmicrohttpd daemon serves: the merchant API or the admin routes. */
typedef struct api_listener {
    api_context *ctx;
    bool admin;
} api_listener;

struct api_server {
    struct MHD_Daemon *daemon;
    struct MHD_Daemon *admin_daemon; /* NULL without an admin listener */
    api_listener merchant, admin;
    api_context *ctx;
};

static long long api_now_ms(void);

/* Per-request state, from the first callback to the completion notice. */
typedef struct api_request {
    api_context *ctx;
    struct MHD_Connection *conn;
    pagoflex_arena *arena;
    char *body;
    size_t body_len;
    size_t body_cap;
    bool too_large;
    bool responded; /* a reply was queued already */
    const char *method;
    const char *url;
    uint64_t start_ns;    /* first callback, for the latency histograms */
    metrics_route route;  /* set by api_route() */
    int connector;        /* metrics slot of the connector, or METRICS_NO_CONNECTOR */
    unsigned status;      /* HTTP status queued, 0 before */
    bool counted;         /* counted in the payments-in-flight gauge */
    bool admin;           /* came in on the admin listener */
    const char *error_code; /* the JSON error code answered, or NULL */
    const char *allow;      /* a 405's Allow header, or NULL */
    char key_id[APIKEY_PREFIX_LEN + 8]; /* API key's public id for the access log, "" none */
    char merchant_id[APIKEY_MERCHANT_MAX + 1]; /* the key's merchant once authorized, else "" */
    char request_id[REQID_MAX + 1];
    char traceparent[REQID_TRACEPARENT + 1]; /* the client's, if valid; else "" */
    struct api_create *create; /* POST /v1/payments suspended (bank call or key wait) */
    struct api_flow *flow;     /* a route of api_flows.c suspended */
    api_req_resumed_fn resumed; /* suspended by api_req_suspend_fn: run this when resumed */
    void *resumed_arg;
    bool gone;                 /* the connection ended before the request was handled: replies are dropped */
} api_request;

/* What a suspended POST /v1/payments waits for. */
typedef enum api_create_wait {
    API_CREATE_BANK,   /* its bank call */
    API_CREATE_KEY,    /* another request's answer to its Idempotency-Key */
    API_CREATE_INSERT, /* the group commit of its row (store_batch.h) */
    API_CREATE_RECORD  /* the group commit of the bank's answer */
} api_create_wait;

/* A payment creation across the bank call, or across a wait for another
 * request's answer to its Idempotency-Key, or for a group commit, during
 * which the connection is suspended (no thread waits): everything lives in
 * the request's arena. */
typedef struct api_create {
    const registry_plugin *pl;
    pagoflex_payment pay;
    pagoflex_flow_input in; /* the AUTHORIZE flow of pay */
    pagoflex_http_request breq;
    pagoflex_http_response resp;
    const char *scope;
    const char *idem_key;
    const char *metadata; /* the merchant's, stored with the row; the connector never sees it */
    idempotency_hash hash;
    int claims;   /* attempts to store the row under its key */
    api_create_wait waiting; /* what it is suspended on */
    idempotency_wait wait;
    store_batch_op op;        /* API_CREATE_INSERT, API_CREATE_RECORD */
    pagoflex_flow_result res; /* the bank's answer, mapped (API_CREATE_RECORD) */
    bool mapped;              /* res holds the mapped answer */
} api_create;

/* ---- replies ---------------------------------------------------------- */

/* Every reply goes out here: while the process drains, each one closes its
 * connection (Connection: close), so a keep-alive client reconnects to the
 * new generation instead of being reset. Takes `resp` (destroyed). */
static enum MHD_Result api_queue(api_request *r, unsigned status, struct MHD_Response *resp)
{
    if (r->gone) { /* no one to answer (api_completed): the reply is dropped */
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    /* What HTTP gives these statuses (issue 14): the methods a 405's path
     * takes, the scheme a 401 asks for (a bank's webhook signs its body
     * instead), and when to come back after a 503 or 429. */
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == MHD_HTTP_UNAUTHORIZED && r->route != METRICS_ROUTE_WEBHOOK)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"pagoflex\"");
    if ((status == MHD_HTTP_SERVICE_UNAVAILABLE || status == MHD_HTTP_TOO_MANY_REQUESTS) &&
        !MHD_get_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (atomic_load(&r->ctx->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES)
        r->status = status;
    return ret;
}

/* Queue `text` (JSON, copied) with `status`; extra header name/value if not NULL. */
static enum MHD_Result api_reply_text(api_request *r, unsigned status, const char *text,
                                      const char *hname, const char *hvalue)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (hname)
        MHD_add_response_header(resp, hname, hvalue);
    return api_queue(r, status, resp);
}

/* The answer when a JSON document could not be built or encoded (out of
 * memory, or a string that is not UTF-8 slipped through): still a JSON
 * error, with `status` and `code` (a literal of ours). */
static enum MHD_Result api_reply_fallback(api_request *r, unsigned status, const char *code)
{
    char text[512];
    r->error_code = code;
    /* The request id is visible ASCII without '"' or '\\' (reqid_accept). */
    snprintf(text, sizeof text,
             "{\"error\":{\"code\":\"%s\",\"message\":\"the answer could not be encoded as JSON; "
             "retry, and report it if it persists\",\"field\":null,\"request_id\":\"%s\","
             "\"doc_url\":\"%s%s%s\"}}",
             code, r->request_id, r->ctx->cfg->public_url, API_DOC_ERRORS, code);
    return api_reply_text(r, status, text, NULL, NULL);
}

static enum MHD_Result api_reply(api_request *r, unsigned status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return api_reply_fallback(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return api_queue(r, status, resp);
}

/* A value from the request, fit to quote in a message or a log line (see
 * textcheck_shown); "?" when out of memory. */
static const char *api_shown(api_request *r, const char *s, size_t max)
{
    const char *shown = textcheck_shown(r->arena, s, max);
    return shown ? shown : "?";
}

/* The inside of every error body: {"code", "message", "field",
 * "request_id", "doc_url"}, doc_url pointing at the code's entry in the
 * API reference this host serves (GET /openapi.yaml, a JSON Pointer into
 * components/x-error-codes). `message` must be JSON-safe text. NULL on OOM. */
static json_t *api_error_object(api_request *r, const char *code, const char *field, const char *message)
{
    char *doc_url = arena_printf(r->arena, "%s%s%s", r->ctx->cfg->public_url, API_DOC_ERRORS, code);
    if (!doc_url)
        return NULL;
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "code", code, "message", message, "field",
                     field ? json_string(field) : json_null(), "request_id", r->request_id, "doc_url", doc_url);
}

static enum MHD_Result api_error(api_request *r, unsigned status, const char *code, const char *field,
                                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum MHD_Result api_error(api_request *r, unsigned status, const char *code, const char *field,
                                 const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* The message may quote request bytes, or be cut inside a character:
     * make it text JSON can hold. */
    r->error_code = code;
    json_t *err = api_error_object(r, code, field, api_shown(r, message, sizeof message));
    if (!err)
        return api_reply_fallback(r, status, code);
    return api_reply(r, status, json_pack("{s:o}", "error", err));
}

static enum MHD_Result api_db_unavailable(api_request *r)
{
    return api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "database_unavailable", NULL,
                     "the payment database is unreachable; nothing was changed; retry shortly");
}

static json_t *api_string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *api_payment_json(const store_payment *p)
{
    return api_flows_payment_json(p);
}

/* Compact JSON text of `doc` (malloc'd; the caller frees it), which is
 * released. NULL on failure. */
static char *api_dump(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* ---- helpers ------------------------------------------------------------ */

/* "pay_" + 26 random characters of [0-9a-z]. */
static char *api_new_id(pagoflex_arena *arena, const char *prefix)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char raw[API_ID_CHARS];
    char id[API_ID_CHARS + 1];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return NULL;
    for (int i = 0; i < API_ID_CHARS; i++)
        id[i] = alphabet[raw[i] % 36]; /* bias of 256 % 36 is harmless for ids */
    id[API_ID_CHARS] = '\0';
    return arena_printf(arena, "%s_%s", prefix, id);
}

typedef enum api_auth { API_AUTH_OK, API_AUTH_DENIED, API_AUTH_UNAVAILABLE } api_auth;

/* Does the request carry a valid API key? Either one of the configured
 * api_key_sha256 (bootstrap/dev keys, compared in constant time) or an
 * active key of the api_keys table (apikey_verify: looked up by its public
 * prefix on every request, so a revocation applies at once). */
static api_auth api_authorized(api_request *r)
{
    const config *cfg = r->ctx->cfg;
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return API_AUTH_DENIED;
    const char *key = auth + 7;
    unsigned char digest[32];
    char hex[65];
    if (!EVP_Digest(key, strlen(key), digest, NULL, EVP_sha256(), NULL))
        return API_AUTH_DENIED;
    hex_encode(digest, sizeof digest, hex);
    bool ok = false;
    for (size_t i = 0; i < cfg->api_key_count; i++)
        ok |= CRYPTO_memcmp(hex, cfg->api_key_sha256[i], 64) == 0;
    OPENSSL_cleanse(hex, sizeof hex);
    if (ok) {
        snprintf(r->key_id, sizeof r->key_id, "config");
        snprintf(r->merchant_id, sizeof r->merchant_id, "%s", APIKEY_DEFAULT_MERCHANT);
        return API_AUTH_OK;
    }
    char prefix[APIKEY_PREFIX_LEN + 1];
    if (apikey_prefix_of(key, prefix) != 0)
        return API_AUTH_DENIED;
    if (!api_db_ready(r->ctx))
        return API_AUTH_UNAVAILABLE;
    bool valid = false;
    store_result sr = apikey_verify(r->ctx->store, key, &valid, r->merchant_id);
    if (sr == STORE_UNAVAILABLE)
        return API_AUTH_UNAVAILABLE;
    if (sr != STORE_OK || !valid)
        return API_AUTH_DENIED;
    snprintf(r->key_id, sizeof r->key_id, "%s", prefix); /* the public part `apikey list` shows */
    return API_AUTH_OK;
}

/* Answer a request that is not API_AUTH_OK. The 401 never says whether the
 * key was unknown, revoked or malformed. */
static enum MHD_Result api_auth_refused(api_request *r, api_auth a)
{
    if (a == API_AUTH_UNAVAILABLE)
        return api_db_unavailable(r);
    return api_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL,
                     "missing or invalid API key; send Authorization: Bearer <api key>");
}

/* 400 when a JSON body nests deeper than max_json_depth (before any parser
 * sees it); MHD_NO from *ret means nothing was answered. */
static bool api_json_too_deep(api_request *r, enum MHD_Result *ret)
{
    int max = r->ctx->cfg->max_json_depth;
    if (!r->body || !http_limits_json_too_deep(r->body, r->body_len, max))
        return false;
    *ret = api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                     "request body nests arrays or objects deeper than %d levels", max);
    return true;
}

static bool api_json_content_type(api_request *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

bool api_db_ready(api_context *ctx)
{
    if (atomic_load(&ctx->schema_ready))
        return true;
    char err[256];
    pthread_mutex_lock(&ctx->schema_lock);
    if (!atomic_load(&ctx->schema_ready)) {
        if (admin_schema_ready(ctx, err, sizeof err))
            atomic_store(&ctx->schema_ready, true);
        else
            log_warn("database schema not ready: %s", err);
    }
    pthread_mutex_unlock(&ctx->schema_lock);
    return atomic_load(&ctx->schema_ready);
}

static bool api_currency_supported(const pagoflex_connector *desc, const char *currency)
{
    if (!desc->currencies)
        return true;
    for (const char *const *c = desc->currencies; *c; c++)
        if (strcmp(*c, currency) == 0)
            return true;
    return false;
}

/* ---- routes ------------------------------------------------------------- */

/* The idempotency scope of this request: its merchant (issue 13: keys are
 * scoped per merchant, so two API keys of one merchant share them and two
 * merchants never collide). NULL before authorization. */
static const char *api_idempotency_scope(api_request *r)
{
    return r->merchant_id[0] ? r->merchant_id : NULL;
}

/* A retry that finds its key unanswered after idempotency_stale_ms (the
 * first request is presumably dead): answer with the payment as it is now.
 * That answer becomes the key's own only once the payment has left
 * `created`, i.e. a bank answer to its create call is recorded; a `created`
 * snapshot is never frozen as the key's answer (the first request, if it
 * is alive after all, or a later retry records the real one). */
static enum MHD_Result api_payment_answer_stored(api_request *r, const char *scope, const char *key,
                                                 const char *payment_id)
{
    store_payment p;
    store_result sr = store_payment_get_of(r->ctx->store, r->merchant_id, payment_id, r->arena, &p);
    if (sr == STORE_UNAVAILABLE)
        return api_db_unavailable(r);
    if (sr != STORE_OK)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                         "payment %s of this Idempotency-Key cannot be read (store error %d)", payment_id,
                         (int)sr);
    char *text = api_dump(api_payment_json(&p));
    if (!text)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    if (p.state != PAGOFLEX_STATE_CREATED)
        store_idem_complete(r->ctx->store, scope, key, MHD_HTTP_CREATED, text);
    enum MHD_Result ret = api_reply_text(r, MHD_HTTP_CREATED, text, "Idempotent-Replayed", "true");
    free(text);
    return ret;
}

/* Answer a request whose key another request holds, from `verdict`. */
static enum MHD_Result api_idempotent_answer(api_request *r, const api_create *c, idempotency_verdict verdict,
                                             int status, const char *response, const char *payment_id)
{
    switch (verdict) {
    case IDEMPOTENCY_REPLAY:
        return api_reply_text(r, (unsigned)status, response, "Idempotent-Replayed", "true");
    case IDEMPOTENCY_MISMATCH:
        return api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "idempotency_key_reused", "Idempotency-Key",
                         "this Idempotency-Key was used with a different request body; use a new key "
                         "for a new payment");
    case IDEMPOTENCY_STALE:
        return api_payment_answer_stored(r, c->scope, c->idem_key, payment_id);
    case IDEMPOTENCY_UNAVAILABLE:
        return api_db_unavailable(r);
    case IDEMPOTENCY_GONE:
        return api_error(r, MHD_HTTP_CONFLICT, "idempotency_key_in_use", "Idempotency-Key",
                         "this Idempotency-Key is changing hands; retry");
    case IDEMPOTENCY_BUSY:
    default: {
        r->error_code = "idempotency_key_in_use";
        json_t *err = api_error_object(r, "idempotency_key_in_use",  "Idempotency-Key",
                                       "a request with this Idempotency-Key is still being processed; retry "
                                       "after a second");
        char *text = api_dump(json_pack("{s:o}", "error", err));
        if (!text)
            return api_reply_fallback(r, MHD_HTTP_CONFLICT, "idempotency_key_in_use");
        enum MHD_Result ret = api_reply_text(r, MHD_HTTP_CONFLICT, text, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        free(text);
        return ret;
    }
    }
}

static void api_resume(void *arg);
static void api_payment_answered(void *arg);
static enum MHD_Result api_payment_claim(api_request *r, api_create *c);
static enum MHD_Result api_payment_recorded(api_request *r, api_create *c);

/* The key is being answered by another request: suspend this connection
 * and hand the wait to the poller thread (no HTTP thread sleeps); it
 * resumes the connection, in api_payment_resumed, once the key has a
 * verdict or idempotency_wait_ms has passed. */
static enum MHD_Result api_idempotent_wait(api_request *r, api_create *c)
{
    idempotency_wait *w = &c->wait;
    if (!w->until_ms) /* one bound for all waits of this request */
        w->until_ms = idempotency_now_ms() + r->ctx->cfg->idempotency_wait_ms;
    w->scope = c->scope;
    w->key = c->idem_key;
    w->request_hash = &c->hash;
    w->stale_ms = r->ctx->cfg->idempotency_stale_ms;
    w->arena = r->arena;
    w->done = api_resume;
    w->arg = r;
    c->waiting = API_CREATE_KEY;
    r->create = c;
    MHD_suspend_connection(r->conn);
    idempotency_wait_start(r->ctx->idem_waiter, w);
    return MHD_YES;
}

/* Call the bank without holding a thread: suspend this connection, start
 * the call, and finish in api_payment_finish once the answer is in. */
static enum MHD_Result api_payment_send(api_request *r, api_create *c)
{
    api_context *ctx = r->ctx;
    c->waiting = API_CREATE_BANK;
    r->create = c;
    MHD_suspend_connection(r->conn);
    bankcall_flow_start(c->pl, &c->in, &c->breq, ctx->cfg->bank_timeout_ms, r->arena, &c->resp, ctx->bankq,
                        ctx->blocking, api_payment_answered, r);
    return MHD_YES;
}

/* The account of connector `key` that the request's merchant uses, into
 * *pl: as this worker remembers it unless `fresh`, else as the database
 * says. False with the reply queued: 422 connector_not_configured when the
 * merchant has no account for the connector, 503 when the account's
 * credentials are not loaded here (or the database is down). */
static bool api_payment_account(api_request *r, const char *key, bool fresh, const registry_plugin **pl,
                                enum MHD_Result *ret)
{
    api_context *ctx = r->ctx;
    char cached[64];
    const char *account = NULL;
    if (!fresh && acctcache_get(r->merchant_id, key, cached, sizeof cached))
        account = cached;
    if (!account) {
        store_result sr = store_account_resolve(ctx->store, r->merchant_id, key, r->arena, &account);
        if (sr == STORE_NOT_FOUND) {
            acctcache_put(r->merchant_id, key, NULL);
            *ret = api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "connector_not_configured", "connector",
                             "this merchant has no account for connector %s; ask the operator to bind one "
                             "(pagoflex merchant account add); nothing was stored",
                             key);
            return false;
        }
        if (sr != STORE_OK) {
            *ret = sr == STORE_UNAVAILABLE ? api_db_unavailable(r)
                                           : api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                                                       "the merchant's connector account could not be read "
                                                       "(store error %d); nothing was stored",
                                                       (int)sr);
            return false;
        }
        acctcache_put(r->merchant_id, key, account);
    }
    *pl = registry_find_account(ctx->registry, key, account);
    if (!*pl && account == cached) /* refuse only on what the database says now */
        return api_payment_account(r, key, true, pl, ret);
    if (!*pl) {
        *ret = api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "connector_account_unavailable", "connector",
                         "account %s of connector %s has no loaded credentials on this host; nothing was "
                         "stored or sent to the bank",
                         api_shown(r, account, 32), key);
        return false;
    }
    return true;
}

/* Build the bank request of c->pay with account pl (its webhook URL
 * included) into c->breq, before anything is stored. False with the reply
 * queued when the connector cannot express it. */
static bool api_payment_build(api_request *r, api_create *c, const registry_plugin *pl, enum MHD_Result *ret)
{
    pagoflex_http_request breq = {0};
    c->pl = pl;
    c->pay.webhook_url = bankcall_webhook_url(r->ctx->cfg->public_url, pl, r->arena);
    if (!c->pay.webhook_url) {
        *ret = api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                         "out of memory; nothing was stored");
        return false;
    }
    int rc = bankcall_flow_request(pl, &c->in, r->arena, &breq);
    if (rc == PAGOFLEX_ERR_UNSUPPORTED || rc == PAGOFLEX_ERR_INVALID) {
        *ret = api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "connector_refused", NULL,
                         "connector %s cannot take this payment (status %d); nothing was stored",
                         pl->desc->key, rc);
        return false;
    }
    if (rc != PAGOFLEX_OK) {
        *ret = api_error(r, MHD_HTTP_BAD_GATEWAY, "connector_error", NULL,
                         "connector %s failed to build the bank request (status %d); nothing was stored",
                         pl->desc->key, rc);
        return false;
    }
    c->breq = breq;
    return true;
}

/* The row api_payment_claim stores for c. */
static store_payment api_payment_row(api_request *r, const api_create *c)
{
    store_payment row = {.id = c->pay.id,
                         .connector = c->pl->desc->key,
                         .amount = c->pay.amount,
                         .currency = c->pay.currency,
                         .state = PAGOFLEX_STATE_CREATED,
                         .reference = c->pay.reference,
                         .description = c->pay.description,
                         .manual_capture = !c->in.capture,
                         .return_url = c->in.return_url,
                         .payment_method_type = c->in.payment_method_type,
                         .payment_method_token = c->in.payment_method_token,
                         .merchant_id = r->merchant_id, .metadata = c->metadata,
                         .connector_account = c->pl->account};
    return row;
}

/* The record of the bank's mapped answer (c->res) as a group-commit write,
 * in c->op; false on invalid arguments (logged). */
static bool api_payment_record_op(api_request *r, api_create *c)
{
    return store_batch_transition_init(&c->op, c->pay.id, c->res.state, STORE_SOURCE_BANK_REPLY, NULL,
                                       c->res.provider_reference_id, c->res.error_code, c->res.error_message,
                                       r->arena);
}

/* A group-committed write of POST /v1/payments is in (writer thread). A
 * new row, committed, goes to the bank from here: the request stays
 * suspended, and its HTTP thread is not woken only to start the call. Any
 * other outcome is for api_payment_resumed. */
static void api_payment_committed(void *arg)
{
    api_request *r = arg;
    api_create *c = r->create;
    if (c->waiting != API_CREATE_INSERT || c->op.rc != STORE_OK) {
        api_resume(r);
        return;
    }
    reqid_set_current(r->request_id, r->traceparent[0] ? r->traceparent : NULL);
    c->waiting = API_CREATE_BANK;
    bankcall_flow_start(c->pl, &c->in, &c->breq, r->ctx->cfg->bank_timeout_ms, r->arena, &c->resp, r->ctx->bankq,
                        r->ctx->blocking, api_payment_answered, r);
    reqid_set_current(NULL, NULL);
}

/* The bank answered a new payment, or nothing could be sent (on the bank's
 * thread, or on the caller's): map the answer and queue its record to the
 * group commit straight away, the request still suspended; its HTTP thread
 * runs next to reply (API_CREATE_RECORD), or to record the answer itself
 * when the group commit is off or refuses it (API_CREATE_BANK). */
static void api_payment_answered(void *arg)
{
    api_request *r = arg;
    api_create *c = r->create;
    if (r->ctx->batch) {
        reqid_set_current(r->request_id, r->traceparent[0] ? r->traceparent : NULL);
        bankcall_flow_map(c->pl, &c->in, &c->resp, r->arena, &c->res);
        c->mapped = true;
        bool queued = api_payment_record_op(r, c);
        if (queued) {
            c->op.done = api_resume;
            c->op.arg = r;
            c->waiting = API_CREATE_RECORD;
            queued = store_batch_submit(r->ctx->batch, &c->op);
            if (!queued)
                c->waiting = API_CREATE_BANK;
        }
        reqid_set_current(NULL, NULL);
        if (queued)
            return;
    }
    api_resume(r);
}

/* Queue write c->op (made ready by a store_batch_*_init) to the group
 * commit and suspend the request until it is committed; resumed in
 * api_payment_resumed as `stage`. When the batcher refuses it (closing),
 * `sync` does the write here and the request resumes at once, the same way. */
static enum MHD_Result api_payment_batch(api_request *r, api_create *c, api_create_wait stage,
                                         void (*sync)(api_request *, api_create *))
{
    c->op.done = api_payment_committed;
    c->op.arg = r;
    c->waiting = stage;
    r->create = c;
    MHD_suspend_connection(r->conn);
    if (!store_batch_submit(r->ctx->batch, &c->op)) {
        sync(r, c);
        api_resume(r);
    }
    return MHD_YES;
}

static void api_payment_insert_sync(api_request *r, api_create *c)
{
    store_payment row = api_payment_row(r, c);
    c->op.rc = store_payment_insert(r->ctx->store, &row, r->arena, &c->op.row);
}

/* What the store said to a claim of the payment row: true with *ret when
 * the request was answered or sent on to the bank, false to claim again. A
 * key another request holds is answered from that request (replay, 422,
 * 409) or waited for; one that expired meanwhile is claimed again. */
static bool api_payment_claimed(api_request *r, api_create *c, store_result sr, enum MHD_Result *ret)
{
    api_context *ctx = r->ctx;
    const char *key = c->idem_key;
    if (sr == STORE_OK) {
        *ret = api_payment_send(r, c);
        return true;
    }
    if (sr == STORE_CONFLICT) {
        /* The merchant's account for the connector is no longer the one
         * the request was built with (nothing was written): build it
         * again with the account the database names now. */
        const registry_plugin *now = NULL;
        return !api_payment_account(r, c->pl->desc->key, true, &now, ret) ||
               !api_payment_build(r, c, now, ret);
    }
    if (sr == STORE_UNAVAILABLE) {
        *ret = api_db_unavailable(r);
        return true;
    }
    if (sr != STORE_DUPLICATE || !key) {
        *ret = api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                         "the payment could not be stored (store error %d); nothing was sent to the bank",
                         (int)sr);
        return true;
    }
    int status = 0;
    const char *response = NULL, *payment_id = NULL;
    idempotency_verdict v =
        idempotency_check(ctx->store, c->scope, key, &c->hash, ctx->cfg->idempotency_stale_ms, r->arena,
                          &status, &response, &payment_id);
    if (v == IDEMPOTENCY_GONE)
        return false; /* expired meanwhile: claim it again */
    if (v == IDEMPOTENCY_BUSY && (!c->wait.until_ms || idempotency_now_ms() < c->wait.until_ms))
        *ret = api_idempotent_wait(r, c);
    else
        *ret = api_idempotent_answer(r, c, v, status, response, payment_id);
    return true;
}

/* Insert the payment row, under its key when the request has one, then
 * send it to the bank (api_payment_claimed). A row without a key goes
 * through the group commit when it is on: the bank is called only once
 * the row's COMMIT succeeded. */
static enum MHD_Result api_payment_claim(api_request *r, api_create *c)
{
    api_context *ctx = r->ctx;
    const char *key = c->idem_key;
    while (c->claims < 3) {
        c->claims++;
        store_payment row = api_payment_row(r, c), stored;
        if (!key && ctx->batch) {
            if (!store_batch_payment_insert_init(&c->op, &row, r->arena))
                return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                                 "the payment could not be stored; nothing was sent to the bank");
            return api_payment_batch(r, c, API_CREATE_INSERT, api_payment_insert_sync);
        }
        store_result sr = key ? store_idem_create_payment(ctx->store, c->scope, key, c->hash.canonical,
                                                          ctx->cfg->idempotency_ttl_s, &row, r->arena, &stored)
                              : store_payment_insert(ctx->store, &row, r->arena, &stored);
        enum MHD_Result ret;
        if (api_payment_claimed(r, c, sr, &ret))
            return ret;
    }
    return api_idempotent_answer(r, c, IDEMPOTENCY_GONE, 0, NULL, NULL);
}

static enum MHD_Result api_payment_create(api_request *r)
{
    api_context *ctx = r->ctx;
    enum MHD_Result deep;
    api_auth auth = api_authorized(r);
    if (auth != API_AUTH_OK)
        return api_auth_refused(r, auth);
    if (!api_json_content_type(r))
        return api_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                         "send the body as Content-Type: application/json");
    if (api_json_too_deep(r, &deep))
        return deep;
    const char *idem_key =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    const char *scope = NULL;
    idempotency_hash hash;
    memset(&hash, 0, sizeof hash);
    if (idem_key) {
        if (!idempotency_key_valid(idem_key))
            return api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "Idempotency-Key",
                             "Idempotency-Key must be 1 to %d printable ASCII characters", IDEMPOTENCY_KEY_MAX);
        scope = api_idempotency_scope(r);
        if (!scope || idempotency_request_hash(r->body, r->body_len, &hash) != 0)
            return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    }
    payreq pr;
    payreq_error perr;
    if (payreq_parse(r->body ? r->body : "", r->body_len, r->arena, &pr, &perr))
        return api_error(r, (unsigned)perr.status, perr.code, perr.field, "%s", perr.message);

    const registry_plugin *pl = registry_find_key(ctx->registry, pr.connector);
    if (!pl)
        return api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "unknown_connector", "connector",
                         "unknown connector '%s'; GET /v1/connectors lists the loaded ones",
                         api_shown(r, pr.connector, 32));
    r->connector = metrics_connector(pl->desc->key);
    if (!api_currency_supported(pl->desc, pr.currency))
        return api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "unsupported_currency", "currency",
                         "connector %s does not support currency %s", pl->desc->key, pr.currency);

    api_create *c = arena_alloc(r->arena, sizeof *c);
    if (!c)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory; nothing was stored");
    memset(c, 0, sizeof *c);
    pagoflex_payment pay = {
        .id = api_new_id(r->arena, "pay"),
        .amount = pr.amount,
        .currency = arena_strdup(r->arena, pr.currency), /* pr is on this stack; c outlives it */
        .reference = pr.reference,
        .description = pr.description,
    };
    if (!pay.id || !pay.currency)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");

    /* Build the bank request before storing anything: a payment the
     * connector cannot express is refused with nothing written. */
    c->pay = pay;
    bankcall_authorize_input(&c->in, &c->pay, pr.manual_capture, pr.return_url,
                              pr.payment_method_type, pr.payment_method_token);
    if (pr.manual_capture && !registry_has_flow(pl, PAGOFLEX_FLOW_CAPTURE))
        return api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "unsupported_operation", "capture_method",
                         "connector %s does not support manual capture (it has no capture flow); "
                         "nothing was stored",
                         pl->desc->key);
    /* The merchant's account for the connector, then the bank request built
     * with that account's state: another account's is never used. */
    if (!api_db_ready(ctx))
        return api_db_unavailable(r);
    enum MHD_Result refused;
    if (!api_payment_account(r, pl->desc->key, false, &pl, &refused) ||
        !api_payment_build(r, c, pl, &refused))
        return refused;
    c->scope = scope;
    c->idem_key = idem_key;
    c->hash = hash;
    c->metadata = pr.metadata;
    return api_payment_claim(r, c);
}

/* A suspended creation may go on (called on the bank, pool or poller
 * thread): let libmicrohttpd run the request again, in api_payment_resumed. */
static void api_resume(void *arg)
{
    api_request *r = arg;
    MHD_resume_connection(r->conn);
}

static void api_payment_record_sync(api_request *r, api_create *c)
{
    c->op.rc = store_payment_transition_from(r->ctx->store, c->pay.id, c->res.state, STORE_SOURCE_BANK_REPLY,
                                             NULL, c->res.provider_reference_id, c->res.error_code,
                                             c->res.error_message, r->arena, &c->op.row);
    c->op.orphans_waiting = true; /* not looked up: store_orphan_apply looks */
}

/* Second half of POST /v1/payments, after the bank answered: map the answer
 * and record it durably (through the group commit when it is on), then
 * api_payment_recorded replies. */
static enum MHD_Result api_payment_finish(api_request *r, api_create *c)
{
    if (!c->mapped)
        bankcall_flow_map(c->pl, &c->in, &c->resp, r->arena, &c->res);
    c->mapped = true;
    if (r->ctx->batch && !r->gone && api_payment_record_op(r, c))
        return api_payment_batch(r, c, API_CREATE_RECORD, api_payment_record_sync);
    api_payment_record_sync(r, c);
    return api_payment_recorded(r, c);
}

/* The bank's answer to POST /v1/payments is recorded (c->op.rc, c->op.row):
 * the rarer follow-ups (a redirect, a retry schedule, the bank id on a
 * refused transition, orphan events waiting for that id), then the reply. */
static enum MHD_Result api_payment_recorded(api_request *r, api_create *c)
{
    api_context *ctx = r->ctx;
    const registry_plugin *pl = c->pl;
    const char *idem_key = c->idem_key, *scope = c->scope;
    pagoflex_payment *pay = &c->pay;
    const pagoflex_flow_result res = c->res;
    pagoflex_transport transport = c->resp.transport;
    store_payment stored = c->op.row;
    enum MHD_Result ret;

    store_result sr = c->op.rc;
    if (sr == STORE_CONFLICT && res.provider_reference_id && !stored.provider_reference_id &&
        store_payment_keep_ref(ctx->store, pay->id, res.provider_reference_id, r->arena, &stored) != STORE_OK)
        stored = c->op.row;
    if (sr == STORE_OK)
        metrics_payment_outcome(r->connector, (int)res.state);
    if (sr == STORE_OK && res.state == PAGOFLEX_STATE_REQUIRES_ACTION && res.redirect_url &&
        store_payment_set_redirect(ctx->store, pay->id, res.redirect_url) == STORE_OK)
        sr = store_payment_get(ctx->store, pay->id, r->arena, &stored);
    if (sr == STORE_OK && res.state == PAGOFLEX_STATE_PROCESSING)
        store_recon_schedule(ctx->store, pay->id, ctx->cfg->retry_base_ms, res.error_code,
                             transport != PAGOFLEX_TRANSPORT_CONNECT, true);
    int orphans = 0;
    if ((sr == STORE_OK || sr == STORE_CONFLICT) && res.provider_reference_id && c->op.orphans_waiting &&
        store_orphan_apply(ctx->store, pl->desc->key, pl->account, res.provider_reference_id, &orphans) ==
            STORE_OK &&
        orphans > 0)
        sr = store_payment_get(ctx->store, pay->id, r->arena, &stored);
    if (sr == STORE_UNAVAILABLE)
        return api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "database_unavailable", NULL,
                         "payment %s was sent to the bank but its result could not be recorded; "
                         "GET /v1/payments/%s later for its state",
                         pay->id, pay->id);
    if (sr != STORE_OK && sr != STORE_CONFLICT)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                         "payment %s was sent to the bank but its result could not be recorded "
                         "(store error %d)",
                         pay->id, (int)sr);
    if (!idem_key)
        return api_reply(r, MHD_HTTP_CREATED, api_payment_json(&stored));
    char *text = api_dump(api_payment_json(&stored));
    if (!text)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    store_idem_complete(ctx->store, scope, idem_key, MHD_HTTP_CREATED, text);
    ret = api_reply_text(r, MHD_HTTP_CREATED, text, NULL, NULL);
    free(text);
    return ret;
}

/* A suspended POST /v1/payments runs again: its bank call is over, its
 * wait for another request's answer to its key, or a group commit. */
static enum MHD_Result api_payment_resumed(api_request *r)
{
    api_create *c = r->create;
    r->create = NULL;
    r->responded = true;
    enum MHD_Result ret;
    switch (c->waiting) {
    case API_CREATE_BANK:
        return api_payment_finish(r, c);
    case API_CREATE_INSERT:
        if (api_payment_claimed(r, c, c->op.rc, &ret))
            return ret;
        return api_payment_claim(r, c);
    case API_CREATE_RECORD:
        return api_payment_recorded(r, c);
    case API_CREATE_KEY:
    default:
        break;
    }
    c->waiting = API_CREATE_BANK;
    const idempotency_wait *w = &c->wait;
    if (w->verdict == IDEMPOTENCY_GONE)
        return api_payment_claim(r, c); /* the key expired meanwhile: claim it */
    return api_idempotent_answer(r, c, w->verdict, w->status, w->response, w->payment_id);
}

static json_t *api_history_json(const store_history_entry *e)
{
    return json_pack("{s:o, s:s, s:s, s:o, s:s}", "from",
                     e->from_state < 0 ? json_null() : json_string(payment_state_name((pagoflex_state)e->from_state)),
                     "to", payment_state_name(e->to_state), "source", e->source, "detail",
                     api_string_or_null(e->detail), "at", e->at);
}

/* Could `id` name a payment? 1 to 64 characters of [A-Za-z0-9_-] (ours are
 * "pay_" and 26 of [0-9a-z]). Anything else is answered 404 without a
 * query: bytes PostgreSQL would refuse as text never reach it. */
static bool api_payment_id_plausible(const char *id)
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

/* What GET /v1/payments/{id}[/events] check before reading: the API key,
 * the id's form, the database. True if the request may go on; otherwise
 * the reply was queued and *ret is its result. */
static bool api_payment_read_allowed(api_request *r, const char *id, enum MHD_Result *ret)
{
    api_auth auth = api_authorized(r);
    if (auth != API_AUTH_OK)
        *ret = api_auth_refused(r, auth);
    else if (!api_payment_id_plausible(id))
        *ret = api_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id",
                         "no payment with id '%s'; payment ids are pay_ followed by letters and digits",
                         api_shown(r, id, 64));
    else if (!api_db_ready(r->ctx))
        *ret = api_db_unavailable(r);
    else
        return true;
    return false;
}

static enum MHD_Result api_payment_events(api_request *r, const char *id)
{
    enum MHD_Result ret;
    if (!api_payment_read_allowed(r, id, &ret))
        return ret;
    store_history_entry *entries = NULL;
    size_t count = 0;
    store_result sr = store_payment_history_of(r->ctx->store, r->merchant_id, id, r->arena, &entries, &count);
    if (sr == STORE_NOT_FOUND)
        return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id", "no payment with id '%s'", id);
    if (sr == STORE_UNAVAILABLE)
        return api_db_unavailable(r);
    if (sr != STORE_OK)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "store error %d", (int)sr);
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(list, api_history_json(&entries[i]));
    return api_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:o}", "payment_id", id, "events", list));
}

static enum MHD_Result api_payment_get(api_request *r, const char *id)
{
    enum MHD_Result ret;
    if (!api_payment_read_allowed(r, id, &ret))
        return ret;
    store_payment p;
    store_result sr = store_payment_get_of(r->ctx->store, r->merchant_id, id, r->arena, &p);
    if (sr == STORE_NOT_FOUND)
        return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", "id", "no payment with id '%s'", id);
    if (sr == STORE_UNAVAILABLE)
        return api_db_unavailable(r);
    if (sr != STORE_OK)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "store error %d", (int)sr);
    return api_reply(r, MHD_HTTP_OK, api_payment_json(&p));
}

struct api_header_list {
    pagoflex_arena *arena;
    pagoflex_header *items;
    size_t count;
    size_t cap;
};

static enum MHD_Result api_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    (void)kind;
    struct api_header_list *l = cls;
    if (l->count == l->cap)
        return MHD_NO;
    l->items[l->count].name = key;
    l->items[l->count].value = value ? value : "";
    l->count++;
    return MHD_YES;
}

/* Is what a webhook brings text we can store: ids and codes printable
 * UTF-8, the message and the raw body UTF-8 without NUL? A connector may
 * parse bytes by hand; PostgreSQL would refuse them. */
static bool api_webhook_is_text(const pagoflex_webhook_event *ev, const unsigned char *body, size_t len)
{
    const char *names[] = {ev->event_id, ev->payment_id, ev->tx_id, ev->error_code};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i] && !textcheck_printable(names[i], strlen(names[i])))
            return false;
    if (ev->error_message && !textcheck_utf8(ev->error_message, strlen(ev->error_message)))
        return false;
    return textcheck_utf8((const char *)body, len);
}

/* A verified event for a bank id we do not know yet: keep it (202, so the
 * bank stops retrying) and apply it once the bank id is stored. */
static enum MHD_Result api_webhook_orphan(api_request *r, const registry_plugin *pl,
                                          const pagoflex_webhook_event *ev, const unsigned char *body)
{
    store *st = r->ctx->store;
    store_result sr = store_orphan_keep(st, pl->desc->key, pl->account, ev, body, r->body_len, r->arena);
    if (sr == STORE_UNAVAILABLE)
        return api_db_unavailable(r);
    if (sr == STORE_DUPLICATE)
        return api_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:s}", "result", "duplicate", "event_id", ev->event_id));
    if (sr != STORE_OK)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "store error %d", (int)sr);
    /* The bank id may have been stored between our lookup and the insert. */
    int applied = 0;
    store_orphan_apply(st, pl->desc->key, pl->account, ev->tx_id, &applied);
    log_info("webhook kept: connector=%s event=%s tx=%s (no payment with that bank id yet)%s", pl->desc->key,
             ev->event_id, ev->tx_id, applied ? "; applied at once" : "");
    return api_reply(r, MHD_HTTP_ACCEPTED,
                     json_pack("{s:s, s:s, s:s}", "result", applied ? "applied" : "stored", "event_id",
                               ev->event_id, "tx_id", ev->tx_id));
}

/* The answer to a 1.0 webhook whose apply returned sr (*p, applied). */
static enum MHD_Result api_webhook_answer(api_request *r, const registry_plugin *pl,
                                          const pagoflex_webhook_event *ev, const unsigned char *body,
                                          store_result sr, const store_payment *pp, bool applied)
{
    const store_payment p = *pp;
    switch (sr) {
    case STORE_OK: {
        if (applied)
            metrics_payment_outcome(r->connector, (int)p.state);
        log_debug("webhook %s: connector=%s event=%s payment=%s state=%s", applied ? "applied" : "ignored",
                  pl->desc->key, ev->event_id, p.id, payment_state_name(p.state));
        return api_reply(r, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:s, s:s}", "result", applied ? "applied" : "ignored",
                                   "event_id", ev->event_id, "payment_id", p.id, "status",
                                   payment_state_name(p.state)));
    }
    case STORE_DUPLICATE:
        return api_reply(r, MHD_HTTP_OK,
                         json_pack("{s:s, s:s}", "result", "duplicate", "event_id", ev->event_id));
    case STORE_NOT_FOUND:
        if (!ev->payment_id && ev->tx_id)
            return api_webhook_orphan(r, pl, ev, body);
        return api_error(r, MHD_HTTP_NOT_FOUND, "unknown_payment", NULL,
                         "no payment matches this webhook (ref %s, tx %s)",
                         ev->payment_id ? ev->payment_id : "-", ev->tx_id ? ev->tx_id : "-");
    case STORE_UNAVAILABLE:
        return api_db_unavailable(r);
    default:
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "store error %d", (int)sr);
    }
}

/* A 1.0 webhook in the group commit: the connection waits suspended. */
typedef struct api_webhook_wait {
    const registry_plugin *pl;
    pagoflex_webhook_event ev;
    const unsigned char *body;
    store_batch_op op;
} api_webhook_wait;

static enum MHD_Result api_webhook_committed(api_request *r, void *arg)
{
    api_webhook_wait *w = arg;
    if (w->op.rc == STORE_OK && w->op.orphans_waiting) {
        int n = 0; /* this event stored the bank id orphans wait for */
        store_orphan_apply(r->ctx->store, w->pl->desc->key, w->pl->account, w->op.row.provider_reference_id,
                           &n);
    }
    return api_webhook_answer(r, w->pl, &w->ev, w->body, w->op.rc, &w->op.row, w->op.applied);
}

static enum MHD_Result api_webhook_batch(api_request *r, const registry_plugin *pl,
                                         const pagoflex_webhook_event *ev, const unsigned char *body)
{
    api_webhook_wait *w = arena_alloc(r->arena, sizeof *w);
    if (!w)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    w->pl = pl;
    w->ev = *ev;
    w->body = body;
    if (!store_batch_webhook_init(&w->op, pl->desc->key, pl->account, &w->ev, body, r->body_len, r->arena))
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "store error %d",
                         (int)STORE_ERROR);
    w->op.done = api_resume;
    w->op.arg = r;
    api_req_suspend_fn(r, api_webhook_committed, w);
    if (!store_batch_submit(r->ctx->batch, &w->op)) {
        /* The batcher is closing: the pool does it, orphans included. */
        w->op.rc = store_webhook_apply(r->ctx->store, pl->desc->key, pl->account, &w->ev, body, r->body_len,
                                       r->arena, &w->op.row, &w->op.applied);
        w->op.orphans_waiting = false;
        api_resume(r);
    }
    return MHD_YES;
}

/* True if `rest` (after /webhooks/) is "<path>" or "<path>/<account>",
 * each segment non-empty. */
static bool api_webhook_route(const char *rest)
{
    const char *slash = strchr(rest, '/');
    return rest[0] && rest[0] != '/' && (!slash || (slash[1] && !strchr(slash + 1, '/')));
}

/* POST /webhooks/<path> (account "default") or /webhooks/<path>/<account>:
 * `rest` is what follows /webhooks/. The webhook is verified with that
 * account's state only, and finds only that account's payments and
 * refunds: a webhook signed with another account's secret is refused, and
 * one of another account's payment is not found. */
static enum MHD_Result api_webhook(api_request *r, const char *rest)
{
    api_context *ctx = r->ctx;
    const char *slash = strchr(rest, '/');
    const char *path = slash ? arena_strndup(r->arena, rest, (size_t)(slash - rest)) : rest;
    const char *account = slash ? slash + 1 : "default";
    if (!path)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    const registry_plugin *pl = registry_account_name_valid(account)
                                    ? registry_find_webhook_account(ctx->registry, path, account)
                                    : NULL;
    if (!pl && registry_find_webhook(ctx->registry, path))
        return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                         "no account %s of the connector at /webhooks/%s is loaded on this host",
                         api_shown(r, account, 40), api_shown(r, path, 40));
    if (!pl)
        return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no connector serves /webhooks/%s",
                         api_shown(r, path, 40));
    r->connector = metrics_connector(pl->desc->key);
    path = rest; /* from here on, the whole path the bank called (logs, 1.2 verification) */
    if (registry_uses_webhook12(pl)) {
        enum MHD_Result deep12;
        return api_json_too_deep(r, &deep12) ? deep12 : api_webhooks_v12(r, pl, path);
    }

    struct api_header_list headers = {.arena = r->arena, .cap = 128};
    headers.items = arena_alloc(r->arena, headers.cap * sizeof *headers.items);
    if (!headers.items)
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, api_collect_header, &headers);

    enum MHD_Result deep;
    if (api_json_too_deep(r, &deep))
        return deep;
    const unsigned char *body = (const unsigned char *)(r->body ? r->body : "");
    bankcall_enter(pl);
    int vrc = pl->desc->verify_webhook(pl->state, headers.items, headers.count, body, r->body_len, r->arena);
    bankcall_leave(pl);
    if (vrc != PAGOFLEX_OK) {
        unsigned long n = atomic_fetch_add(&ctx->webhook_bad_signature, 1) + 1;
        log_warn("webhook refused: connector=%s path=/webhooks/%s reason=signature bytes=%zu refused_total=%lu",
                 pl->desc->key, api_shown(r, path, 40), r->body_len, n);
        return api_error(r, MHD_HTTP_UNAUTHORIZED, "invalid_signature", NULL,
                         "webhook signature is missing, invalid or too old");
    }
    pagoflex_webhook_event ev = {0};
    bankcall_enter(pl);
    int prc = pl->desc->parse_webhook(pl->state, body, r->body_len, r->arena, &ev);
    bankcall_leave(pl);
    if (prc != PAGOFLEX_OK || !ev.event_id ||
        !*ev.event_id || (int)ev.state < 0 || (int)ev.state >= PAYMENT_STATE_COUNT)
        return api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_webhook", NULL,
                         "connector %s could not parse the webhook body", pl->desc->key);
    if (!ev.payment_id && !ev.tx_id)
        return api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_webhook", NULL,
                         "webhook names no payment (neither our reference nor a bank transaction id)");
    if (!api_webhook_is_text(&ev, body, r->body_len))
        return api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_webhook", NULL,
                         "the webhook body, or an id %s read from it, is not UTF-8 text (invalid bytes, NUL "
                         "or control characters); nothing was stored",
                         pl->desc->key);

    if (!api_db_ready(ctx))
        return api_db_unavailable(r);
    if (ctx->batch)
        return api_webhook_batch(r, pl, &ev, body);
    store_payment p;
    bool applied = false;
    store_result sr = store_webhook_apply(ctx->store, pl->desc->key, pl->account, &ev, body, r->body_len,
                                          r->arena, &p, &applied);
    return api_webhook_answer(r, pl, &ev, body, sr, &p, applied);
}

static enum MHD_Result api_connectors(api_request *r)
{
    json_t *list = json_array();
    registry *reg = r->ctx->registry;
    for (size_t i = 0; i < registry_count(reg); i++) {
        const registry_plugin *pl = registry_at(reg, i);
        char loaded[32];
        struct tm tm;
        gmtime_r(&pl->loaded_at, &tm);
        strftime(loaded, sizeof loaded, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char abi[16];
        snprintf(abi, sizeof abi, "%u.%u", (unsigned)pl->desc->abi_major, (unsigned)pl->desc->abi_minor);
        json_t *flows = json_array();
        for (int f = 0; f < PAGOFLEX_FLOW_COUNT; f++)
            if (registry_has_flow(pl, (pagoflex_flow)f))
                json_array_append_new(flows, json_string(registry_flow_name((pagoflex_flow)f)));
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o}", "key", pl->desc->key,
                            "account", pl->account, "version", pl->desc->version, "abi_version", abi,
                            "webhook_path", pl->desc->webhook_path, "file", api_shown(r, pl->file, 4096),
                            "sha256", pl->sha256, "loaded_at", loaded, "generation",
                            (json_int_t)r->ctx->generation, "last_error",
                            pl->last_error ? json_string(api_shown(r, pl->last_error, 4096)) : json_null(),
                            "flows", flows));
    }
    json_t *rejected = json_array();
    for (size_t i = 0; i < registry_rejected_count(reg); i++) {
        const registry_rejection *rj = registry_rejected_at(reg, i);
        json_array_append_new(rejected, json_pack("{s:s, s:s}", "file", api_shown(r, rj->file, 4096), "error",
                                                  api_shown(r, rj->reason, 4096)));
    }
    json_t *rejected_accounts = json_array();
    for (size_t i = 0; i < registry_account_rejected_count(reg); i++) {
        const registry_account_rejection *ra = registry_account_rejected_at(reg, i);
        json_array_append_new(rejected_accounts, json_pack("{s:s, s:s, s:s}", "plugin", ra->plugin, "account",
                                                           api_shown(r, ra->account, 64), "error",
                                                           api_shown(r, ra->reason, 4096)));
    }
    return api_reply(r, MHD_HTTP_OK,
                     json_pack("{s:o, s:o, s:o, s:I}", "connectors", list, "rejected", rejected,
                               "rejected_accounts", rejected_accounts, "generation",
                               (json_int_t)r->ctx->generation));
}

static enum MHD_Result api_healthz(api_request *r)
{
    bool db = store_ping(r->ctx->store);
    return api_reply(r, db ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                     json_pack("{s:s, s:s, s:I, s:I}", "status", db ? "ok" : "degraded", "database",
                               db ? "ok" : "unavailable", "connectors",
                               (json_int_t)registry_count(r->ctx->registry), "generation",
                               (json_int_t)r->ctx->generation));
}

/* Prometheus text; no API key, like /healthz (counts only, no payment data). */
static enum MHD_Result api_metrics(api_request *r)
{
    char *text = NULL;
    size_t len = 0;
    admin_refresh_db_gauges(r->ctx);
    if (metrics_render(&text, &len))
        return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory rendering metrics");
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    return api_queue(r, MHD_HTTP_OK, resp);
}

/* GET /openapi.yaml: the API reference (no API key: it is public). */
static enum MHD_Result api_openapi(api_request *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(api_openapi_yaml_len, (void *)api_openapi_yaml,
                                                                MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/yaml");
    return api_queue(r, MHD_HTTP_OK, resp);
}

/* A payment request counts as in flight from here until its answer is queued. */
static enum MHD_Result api_payment_create_counted(api_request *r)
{
    metrics_payment_begin();
    r->counted = true; /* until api_completed: the bank call may suspend it */
    return api_payment_create(r);
}

static enum MHD_Result api_method_not_allowed(api_request *r, const char *allowed)
{
    r->allow = allowed;
    return api_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL, "%s %s: use %s",
                     api_shown(r, r->method, 16), api_shown(r, r->url, 100), allowed);
}

static enum MHD_Result api_livez(api_request *r)
{
    return api_reply(r, MHD_HTTP_OK, admin_livez(r->ctx));
}

static enum MHD_Result api_readyz(api_request *r)
{
    json_t *body = NULL;
    unsigned status = admin_readyz(r->ctx, &body);
    return api_reply(r, status, body);
}

/* The probes, served on both listeners (load balancers probe the merchant
 * port). True when `url` is one; *ret is the answer. */
static bool api_probe_route(api_request *r, bool get, enum MHD_Result *ret)
{
    static const struct {
        const char *path;
        metrics_route route;
        enum MHD_Result (*fn)(api_request *);
    } probes[] = {{"/healthz", METRICS_ROUTE_HEALTHZ, api_healthz},
                  {"/livez", METRICS_ROUTE_LIVEZ, api_livez},
                  {"/readyz", METRICS_ROUTE_READYZ, api_readyz}};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        if (strcmp(r->url, probes[i].path) != 0)
            continue;
        r->route = get ? probes[i].route : METRICS_ROUTE_OTHER;
        *ret = get ? probes[i].fn(r) : api_method_not_allowed(r, "GET");
        return true;
    }
    return false;
}

/* The admin listener: metrics, connectors and the probes; nothing else. */
static enum MHD_Result api_admin_route(api_request *r)
{
    bool get = strcmp(r->method, "GET") == 0;
    enum MHD_Result ret;
    if (api_probe_route(r, get, &ret))
        return ret;
    if (strcmp(r->url, "/v1/connectors") == 0) {
        r->route = get ? METRICS_ROUTE_CONNECTORS : METRICS_ROUTE_OTHER;
        return get ? api_connectors(r) : api_method_not_allowed(r, "GET");
    }
    if (strcmp(r->url, "/metrics") == 0) {
        r->route = get ? METRICS_ROUTE_METRICS : METRICS_ROUTE_OTHER;
        return get ? api_metrics(r) : api_method_not_allowed(r, "GET");
    }
    return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                     "no route for %s %s on the admin listener (it serves /metrics, /v1/connectors, "
                     "/healthz, /livez, /readyz)",
                     api_shown(r, r->method, 16), api_shown(r, r->url, 100));
}

static enum MHD_Result api_route(api_request *r)
{
    const char *url = r->url;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    enum MHD_Result probe;
    if (r->too_large)
        return api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
                         "request body is over the limit of %zu bytes", r->ctx->cfg->max_body_bytes);
    if (r->admin)
        return api_admin_route(r);
    if (strcmp(url, "/openapi.yaml") == 0)
        return get ? api_openapi(r) : api_method_not_allowed(r, "GET");
    /* Only the lists take query parameters (issue 14: none is dropped unread). */
    bool list = get && (strcmp(url, "/v1/payments") == 0 || strcmp(url, "/v1/refunds") == 0);
    if (strncmp(url, "/v1/", 4) == 0 && !list && api_lists_known_query(r, NULL, &probe) != 0)
        return probe;
    if (strcmp(url, "/v1/payments") == 0 && post) {
        r->route = METRICS_ROUTE_PAYMENT_CREATE;
        return api_payment_create_counted(r);
    }
    if (strcmp(url, "/v1/payments") == 0) {
        r->route = get ? METRICS_ROUTE_PAYMENT_LIST : METRICS_ROUTE_OTHER;
        return get ? api_lists_payments(r) : api_method_not_allowed(r, "GET, POST");
    }
    if (strncmp(url, "/v1/payments/", 13) == 0 && url[13] && !strchr(url + 13, '/')) {
        r->route = get ? METRICS_ROUTE_PAYMENT_GET : METRICS_ROUTE_OTHER;
        return get ? api_payment_get(r, url + 13) : api_method_not_allowed(r, "GET");
    }
    if (strncmp(url, "/v1/payments/", 13) == 0 && url[13] != '/' && strchr(url + 13, '/')) {
        const char *slash = strchr(url + 13, '/');
        bool events = strcmp(slash, "/events") == 0;
        bool capture = strcmp(slash, "/capture") == 0, cancel = strcmp(slash, "/cancel") == 0;
        if ((events || capture || cancel) && slash - (url + 13) <= 64) {
            char *id = arena_strndup(r->arena, url + 13, (size_t)(slash - (url + 13)));
            if (!id)
                return api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
            if (events) {
                r->route = get ? METRICS_ROUTE_PAYMENT_EVENTS : METRICS_ROUTE_OTHER;
                return get ? api_payment_events(r, id) : api_method_not_allowed(r, "GET");
            }
            r->route = !post ? METRICS_ROUTE_OTHER : cancel ? METRICS_ROUTE_PAYMENT_CANCEL : METRICS_ROUTE_PAYMENT_CAPTURE;
            return post ? api_flows_payment_operation(r, id, cancel) : api_method_not_allowed(r, "POST");
        }
    }
    if (strcmp(url, "/v1/refunds") == 0) {
        r->route = post ? METRICS_ROUTE_REFUND_CREATE : get ? METRICS_ROUTE_REFUND_LIST : METRICS_ROUTE_OTHER;
        return post ? api_flows_refund_create(r) : get ? api_lists_refunds(r)
                                                      : api_method_not_allowed(r, "GET, POST");
    }
    if (strncmp(url, "/v1/refunds/", 12) == 0 && url[12] && !strchr(url + 12, '/')) {
        r->route = get ? METRICS_ROUTE_REFUND_GET : METRICS_ROUTE_OTHER;
        return get ? api_flows_refund_get(r, url + 12) : api_method_not_allowed(r, "GET");
    }
    if (strncmp(url, "/v1/webhook_endpoints", 21) == 0 && (url[21] == '\0' || url[21] == '/')) {
        r->route = METRICS_ROUTE_WEBHOOK_ENDPOINTS;
        return api_endpoints_route(r, r->method, url + 21);
    }
    if (strncmp(url, "/webhooks/", 10) == 0 && api_webhook_route(url + 10)) {
        r->route = post ? METRICS_ROUTE_WEBHOOK : METRICS_ROUTE_OTHER;
        return post ? api_webhook(r, url + 10) : api_method_not_allowed(r, "POST");
    }
    if (api_probe_route(r, get, &probe))
        return probe;
    if (strcmp(url, "/v1/connectors") == 0 || strcmp(url, "/metrics") == 0)
        return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                         "%s is served on the admin listener (admin_listen:admin_port), not on "
                         "the merchant port",
                         url);
    return api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no route for %s %s", api_shown(r, r->method, 16),
                     api_shown(r, url, 100));
}

/* ---- libmicrohttpd glue -------------------------------------------------- */

/* The id of a new request (X-Request-Id, or one made here) and its
 * client's traceparent, if valid. */
static void api_request_ids(api_request *r)
{
    const char *id = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    const char *tp = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "traceparent");
    reqid_accept(id, r->request_id);
    if (reqid_traceparent_valid(tp))
        snprintf(r->traceparent, sizeof r->traceparent, "%s", tp);
}

static enum MHD_Result api_access_request(api_listener *l, struct MHD_Connection *conn, const char *url,
                                          const char *method, const char *upload_data,
                                          size_t *upload_data_size, void **con_cls)
{
    api_context *ctx = l->ctx;
    api_request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->ctx = ctx;
        r->admin = l->admin;
        r->conn = conn;
        r->arena = arena_new();
        r->method = method;
        r->url = url;
        r->start_ns = metrics_now_ns();
        r->route = METRICS_ROUTE_OTHER;
        r->connector = METRICS_NO_CONNECTOR;
        api_request_ids(r);
        reqid_set_current(r->request_id, r->traceparent[0] ? r->traceparent : NULL);
        *con_cls = r;
        if (!r->arena)
            return MHD_NO;
        atomic_fetch_add(&ctx->requests, 1);
        atomic_fetch_add(&ctx->in_flight, 1);
        atomic_store(&ctx->last_activity_ms, api_now_ms());
        int header_count = 0;
        size_t header_bytes = 0;
        http_limits_header_totals(conn, &header_count, &header_bytes);
        if (header_count > ctx->cfg->max_headers || header_bytes > ctx->cfg->max_header_bytes) {
            r->responded = true;
            return api_error(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                             "request_header_fields_too_large", NULL,
                             "request has %d headers of %zu bytes; the limits are %d headers "
                             "and %zu bytes",
                             header_count, header_bytes, ctx->cfg->max_headers,
                             ctx->cfg->max_header_bytes);
        }
        /* A body far over the limit is refused before it is read (the
         * connection is then closed); one a little over is read and dropped,
         * so the client sees the 413 and keep-alive survives. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > 16 * ctx->cfg->max_body_bytes) {
            r->too_large = true;
            r->responded = true;
            return api_route(r);
        }
        return MHD_YES;
    }
    r->conn = conn;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->responded || r->too_large || r->body_len + n > r->ctx->cfg->max_body_bytes) {
            r->too_large = true;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 1024;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            char *p = realloc(r->body, cap);
            if (!p)
                return MHD_NO;
            r->body = p;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    if (r->create)
        return api_payment_resumed(r); /* after its bank call or its wait */
    if (r->resumed) {
        api_req_resumed_fn fn = r->resumed;
        r->resumed = NULL;
        return fn(r, r->resumed_arg);
    }
    if (r->flow) {
        struct api_flow *f = r->flow;
        r->flow = NULL;
        return api_flows_resumed(r, f);
    }
    if (r->responded)
        return MHD_YES;
    r->responded = true;
    return api_route(r);
}

/* Every callback of a request runs with its id current on the thread, so
 * its log lines and bank calls carry it (reqid.h). */
static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    api_request *r = *con_cls;
    if (r)
        reqid_set_current(r->request_id, r->traceparent[0] ? r->traceparent : NULL);
    enum MHD_Result ret = api_access_request(cls, conn, url, method, upload_data, upload_data_size, con_cls);
    reqid_set_current(NULL, NULL);
    return ret;
}

/* libmicrohttpd's own unescaping of the path and the query values, except
 * that %00 becomes DEL (0x7f) instead of ending the string early: so
 * "/healthz%00x" is not read as "/healthz", nor "pay_1%00x" as "pay_1".
 * No route, id or key takes a DEL. Returns the decoded length. */
static size_t api_unescape(void *cls, struct MHD_Connection *conn, char *text)
{
    (void)cls;
    (void)conn;
    size_t len = MHD_http_unescape(text);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0')
            text[i] = 0x7f;
    return len;
}

/* The request ended (the client hung up, or the daemon stopped) after its
 * bank call had answered, or its group commit had committed, but before
 * libmicrohttpd ran the request again: record the bank's answer now, or do
 * what follows the commit (a payment's follow-ups, a webhook's orphans and
 * its delivery's next events), exactly as the resumed request would have
 * (state, Idempotency-Key answer), with the reply dropped and on the pool
 * (nothing may suspend now). A payment row committed but not yet sent to
 * its bank is made due for the reconciler at once (no bank has it). A call still
 * out cannot end here: libmicrohttpd closes no suspended connection (it
 * refuses to stop with one), and the bank thread resumes every request it
 * answers, aborted ones included (bankq_stop). A wait for another
 * request's key leaves nothing to record: that request records it. */
static void api_record_unhandled(api_request *r)
{
    struct api_create *c = r->create;
    struct api_flow *f = r->flow;
    api_req_resumed_fn fn = r->resumed;
    r->create = NULL;
    r->flow = NULL;
    r->resumed = NULL;
    if (c && c->waiting == API_CREATE_INSERT && c->op.rc == STORE_OK) {
        /* Its row is committed and no bank has it (only when the group
         * commit refused the row, closing, and it was written here: a
         * committed batch starts the call itself): the reconciler sends it
         * at its next poll (not after recover_after_ms). */
        log_info("%s %s: the client was gone before payment %s went to the bank; the reconciler sends it now",
                 r->method, metrics_route_name(r->route), c->pay.id);
        store_recon_schedule(r->ctx->store, c->pay.id, 0, NULL, false, true);
    }
    if (c && c->waiting != API_CREATE_BANK && c->waiting != API_CREATE_RECORD)
        c = NULL;
    if (f && api_flows_waiting(f))
        f = NULL;
    if (!c && !f && !fn)
        return;
    r->gone = true;
    r->responded = true;
    log_info("%s %s: the client was gone when the bank answered or the write committed; recording the outcome",
             r->method, metrics_route_name(r->route));
    if (c && c->waiting == API_CREATE_RECORD)
        api_payment_recorded(r, c);
    else if (c)
        api_payment_finish(r, c);
    else if (f)
        api_flows_resumed(r, f);
    else
        fn(r, r->resumed_arg);
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    api_request *r = *con_cls;
    if (!r)
        return;
    reqid_set_current(r->request_id, r->traceparent[0] ? r->traceparent : NULL);
    api_record_unhandled(r);
    reqid_set_current(NULL, NULL);
    atomic_fetch_sub(&r->ctx->in_flight, 1);
    atomic_store(&r->ctx->last_activity_ms, api_now_ms());
    if (r->counted)
        metrics_payment_end();
    uint64_t elapsed = metrics_now_ns() - r->start_ns;
    metrics_request_done(r->route, r->connector, r->status, elapsed);
    if (r->route == METRICS_ROUTE_WEBHOOK && r->status >= 400)
        metrics_webhook_refused(r->connector, r->error_code);
    reqid_set_current(r->request_id, NULL);
    if (r->ctx->cfg->access_log)
        admin_access_log(r->method, metrics_route_name(r->route), r->status, elapsed, r->key_id,
                         r->merchant_id, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    reqid_set_current(NULL, NULL);
    arena_free(r->arena);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void api_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    api_context *ctx = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&ctx->open_connections, 1);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&ctx->open_connections, 1);
}

int api_listen(const char *address, int port, int *bound_port, char *err, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "listen address '%s' is not an IPv4 address", address);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s (is another pagoflexd running? set port or PAGOFLEX_PORT)",
                 address, port, strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    if (bound_port)
        *bound_port = ntohs(sa.sin_port);
    return fd;
}

void api_context_init(api_context *ctx, const config *cfg, store *st, registry *reg)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->store = st;
    ctx->registry = reg;
    ctx->admin_fd = -1;
    pthread_mutex_init(&ctx->schema_lock, NULL);
    atomic_init(&ctx->schema_ready, false);
    atomic_init(&ctx->webhook_bad_signature, 0);
    atomic_init(&ctx->requests, 0);
    atomic_init(&ctx->draining, false);
    atomic_init(&ctx->open_connections, 0);
    atomic_init(&ctx->in_flight, 0);
    atomic_init(&ctx->last_activity_ms, 0);
}

api_server *api_start(api_context *ctx, int fd, char *err, size_t errlen)
{
    api_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->ctx = ctx;
    srv->merchant = (api_listener){.ctx = ctx, .admin = false};
    srv->admin = (api_listener){.ctx = ctx, .admin = true};
    ctx->idem_waiter = idempotency_waiter_start(ctx->store, API_IDEM_POLL_MS);
    if (!ctx->idem_waiter) {
        snprintf(err, errlen, "cannot start the Idempotency-Key poller thread");
        free(srv);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, api_access, &srv->merchant, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ctx->cfg->threads, MHD_OPTION_NOTIFY_COMPLETED, api_completed,
        NULL, MHD_OPTION_NOTIFY_CONNECTION, api_connection, ctx, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ctx->cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)ctx->cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ctx->cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, http_limits_connection_memory(ctx->cfg->max_header_bytes),
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_UNESCAPE_CALLBACK, api_unescape, NULL,
        MHD_OPTION_END);
    /* The admin listener: a couple of threads, its connections not counted
     * in the drain (a scraper's keep-alive must not hold a stop up). */
    if (srv->daemon && ctx->admin_fd >= 0)
        srv->admin_daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, api_access, &srv->admin, MHD_OPTION_LISTEN_SOCKET,
            (MHD_socket)ctx->admin_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
            MHD_OPTION_NOTIFY_COMPLETED, api_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)ctx->cfg->connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, http_limits_connection_memory(ctx->cfg->max_header_bytes),
            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_UNESCAPE_CALLBACK, api_unescape,
            NULL, MHD_OPTION_END);
    if (!srv->daemon || (ctx->admin_fd >= 0 && !srv->admin_daemon)) {
        snprintf(err, errlen, "libmicrohttpd could not start on the %s socket",
                 srv->daemon ? "admin listener's" : "listening");
        if (srv->daemon)
            MHD_stop_daemon(srv->daemon);
        idempotency_waiter_free(ctx->idem_waiter);
        ctx->idem_waiter = NULL;
        free(srv);
        return NULL;
    }
    return srv;
}

void api_quiesce(api_server *srv)
{
    if (srv && srv->daemon)
        MHD_quiesce_daemon(srv->daemon);
    if (srv && srv->admin_daemon)
        MHD_quiesce_daemon(srv->admin_daemon);
}

static long long api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int api_drain(api_server *srv, int deadline_ms)
{
    if (!srv)
        return 0;
    api_context *ctx = srv->ctx;
    atomic_store(&ctx->draining, true);
    struct timespec tick = {.tv_nsec = 20 * 1000 * 1000};
    for (int waited = 0; waited < deadline_ms; waited += 20) {
        if (atomic_load(&ctx->open_connections) <= 0)
            return 0;
        if (atomic_load(&ctx->in_flight) <= 0 && api_now_ms() - atomic_load(&ctx->last_activity_ms) >= 1000)
            return 0;
        nanosleep(&tick, NULL);
    }
    /* Out of time: a request still waiting for another request's answer
     * to its key is told to retry now (409), not cut when the process ends. */
    idempotency_waiter_stop(ctx->idem_waiter);
    return atomic_load(&ctx->open_connections);
}

void api_stop(api_server *srv)
{
    if (!srv)
        return;
    api_context *ctx = srv->ctx;
    /* Requests still waiting on a key get their 409 now; let the threads
     * send those (a suspended connection must not outlive the daemon). */
    idempotency_waiter_stop(ctx->idem_waiter);
    struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};
    for (int waited = 0; atomic_load(&ctx->in_flight) > 0 && waited < 1000; waited += 10)
        nanosleep(&tick, NULL);
    if (srv->admin_daemon)
        MHD_stop_daemon(srv->admin_daemon);
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    idempotency_waiter_free(ctx->idem_waiter);
    ctx->idem_waiter = NULL;
    free(srv);
}

/* ---- for the routes of api_flows.c (see api_flows.h) ---------------------- */

api_context *api_req_ctx(api_request *r)
{
    return r->ctx;
}

struct MHD_Connection *api_req_conn(api_request *r)
{
    return r->conn;
}

pagoflex_arena *api_req_arena(api_request *r)
{
    return r->arena;
}

const char *api_req_body(api_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : "";
}

void api_req_set_connector(api_request *r, const char *key)
{
    r->connector = metrics_connector(key);
}

enum MHD_Result api_req_reply(api_request *r, unsigned status, json_t *doc)
{
    return api_reply(r, status, doc);
}

enum MHD_Result api_req_reply_text(api_request *r, unsigned status, const char *text,
                                   const char *hname, const char *hvalue)
{
    return api_reply_text(r, status, text, hname, hvalue);
}

enum MHD_Result api_req_reply_raw(api_request *r, unsigned status, const char *text, const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return api_queue(r, status, resp);
}

enum MHD_Result api_req_error(api_request *r, unsigned status, const char *code, const char *field,
                              const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return api_error(r, status, code, field, "%s", message);
}

enum MHD_Result api_req_db_unavailable(api_request *r)
{
    return api_db_unavailable(r);
}

void api_req_allow(api_request *r, const char *allowed)
{
    r->allow = allowed;
}

json_t *api_req_error_object(api_request *r, const char *code, const char *field, const char *message)
{
    r->error_code = code;
    return api_error_object(r, code, field, message);
}

bool api_req_authorized(api_request *r, enum MHD_Result *ret)
{
    api_auth a = api_authorized(r);
    if (a == API_AUTH_OK)
        return true;
    *ret = api_auth_refused(r, a);
    return false;
}

bool api_req_json_body(api_request *r, enum MHD_Result *ret)
{
    if (r->body_len == 0)
        return true;
    if (!api_json_content_type(r)) {
        *ret = api_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                         "send the body as Content-Type: application/json");
        return false;
    }
    return !api_json_too_deep(r, ret);
}

const char *api_req_merchant(api_request *r)
{
    return r->merchant_id;
}

const char *api_req_idempotency_scope(api_request *r, const char *route)
{
    const char *scope = api_idempotency_scope(r);
    return scope ? arena_printf(r->arena, "%s %s", scope, route) : NULL;
}

char *api_req_new_id(api_request *r, const char *prefix)
{
    return api_new_id(r->arena, prefix);
}

void api_req_suspend(api_request *r, struct api_flow *f)
{
    r->flow = f;
    MHD_suspend_connection(r->conn);
}

bool api_req_gone(api_request *r)
{
    return r->gone;
}

void api_req_suspend_fn(api_request *r, api_req_resumed_fn fn, void *arg)
{
    r->resumed = fn;
    r->resumed_arg = arg;
    MHD_suspend_connection(r->conn);
}

void api_req_resume(void *arg)
{
    api_resume(arg);
}
