/*
 * mercadopago.c - the MERCADOPAGO connector for Pagoflex: Mercado Pago's
 * Payments API (https://api.mercadopago.com, MP_BASE_URL), ABI 1.2.
 *
 *   AUTHORIZE     POST {base}/v1/payments {"transaction_amount" (decimal),
 *                 "description","external_reference" (our payment id),
 *                 "capture","token","payment_method_id"?,"installments",
 *                 "notification_url","payer":{"email"}, "callback_url"?}
 *   CAPTURE       PUT  {base}/v1/payments/{id} {"capture":true,"transaction_amount"}
 *   VOID          PUT  {base}/v1/payments/{id} {"status":"cancelled"}
 *   REFUND        POST {base}/v1/payments/{id}/refunds {"amount"} (partial, several)
 *   PAYMENT_SYNC  GET  {base}/v1/payments/{id}
 *   REFUND_SYNC   GET  {base}/v1/payments/{id}/refunds/{refund id}
 *
 * Every call carries Authorization: Bearer MP_ACCESS_TOKEN and every write
 * X-Idempotency-Key: in->operation_id. Amounts go out as JSON decimals made
 * by host->amount_to_decimal and come back through amount_from_decimal; an
 * amount whose decimal has more significant digits than a double keeps
 * (the API parses numbers as doubles) is refused before anything is sent.
 *
 * Errors are {"message","error","status","cause":[{"code","description"}]}.
 * The mapping is conservative: a timeout, 429, 5xx, 3xx, a 404 that is not
 * Mercado Pago's own JSON, or an unreadable answer is PROCESSING; FAILED is
 * a rejected payment or the API's own JSON refusal of the call.
 *
 * Webhooks: x-signature "ts=<ts>,v1=<hex>" where hex is HMAC-SHA256 under
 * MP_WEBHOOK_SECRET of the manifest "id:<data.id>;request-id:<x-request-id>;
 * ts:<ts>;" (data.id from the QUERY STRING, lower-cased when alphanumeric;
 * a part the request lacks is left out). The body names only the object
 * ({"action","type","data":{"id"}}): a "payment" notification is a look-up
 * (the host syncs the payment); other types are IGNORED.
 *
 * The 1.0 entry points and 1.1 sync are thin wrappers over the flows.
 * Everything returned is allocated in the call's arena.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <pagoflex/connector.h>

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MP_DEFAULT_BASE_URL "https://api.mercadopago.com"
#define MP_DEFAULT_PAYER_EMAIL "test_user@testuser.com"
#define MP_SIG_HEADER "x-signature"
#define MP_REQID_HEADER "x-request-id"
#define MP_TOLERANCE_S 300
#define MP_ID_MAX 128
#define MP_BODY_MAX (256 * 1024)
#define MP_DIGITS_MAX 15 /* significant digits a double carries exactly */

typedef struct mp_state {
    const pagoflex_host_services *host;
    char *token;       /* MP_ACCESS_TOKEN, wiped in fini */
    char *secret;      /* MP_WEBHOOK_SECRET, wiped in fini */
    char *auth;        /* "Bearer <token>", wiped in fini */
    char *base_url;    /* no trailing '/' */
    char *payer_email; /* MP_PAYER_EMAIL */
} mp_state;

static const char *const mp_required[] = {"MP_ACCESS_TOKEN", "MP_WEBHOOK_SECRET", NULL};
static const char *const mp_settings[] = {"MP_BASE_URL", "MP_PAYER_EMAIL", NULL};
/* The currencies of the countries Mercado Pago processes in. */
static const char *const mp_currencies[] = {"ARS", "BRL", "MXN", "CLP", "COP",
                                            "PEN", "UYU", NULL};

/* ---------------------------------------------------------------- helpers */

/* 1..MP_ID_MAX characters of [A-Za-z0-9_.:-]: safe in JSON, URLs, logs. */
static int mp_id_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > MP_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-' || c == ':'))
            return 0;
    }
    return 1;
}

/* obj[key] as an id: a well-formed string, or a non-negative integer (Mercado
 * Pago's payment and refund ids are numbers), in the arena; else NULL. */
static const char *mp_id_field(const pagoflex_host_services *host, pagoflex_arena *arena,
                               json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return host->arena_printf(arena, "%lld", (long long)json_integer_value(v));
    const char *s = json_string_value(v);
    return s && mp_id_ok(s) ? host->arena_strdup(arena, s) : NULL;
}

/* A JSON number (or numeric string) of `currency` as minor units; 0 when
 * absent or not exact in the currency. */
static int64_t mp_amount_of(const pagoflex_host_services *host, json_t *v, const char *currency)
{
    char buf[64];
    int64_t minor = 0;
    int exp = currency ? host->currency_exponent(currency) : -1;
    if (exp < 0)
        return 0;
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof buf, "%.*f", exp, json_real_value(v));
    else if (json_is_string(v) && strlen(json_string_value(v)) < sizeof buf)
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    else
        return 0;
    if (host->amount_from_decimal(buf, currency, &minor) != PAGOFLEX_OK || minor < 0)
        return 0;
    return minor;
}

/* The decimal form of `minor` for the request, or NULL when the currency is
 * unknown or the decimal has more significant digits than a double keeps. */
static const char *mp_decimal(const pagoflex_host_services *host, pagoflex_arena *arena,
                              int64_t minor, const char *currency)
{
    char *dec = minor > 0 ? host->amount_to_decimal(arena, minor, currency) : NULL;
    if (!dec)
        return NULL;
    size_t digits = 0;
    int lead = 1;
    for (const char *p = dec; *p; p++) {
        if (*p == '.')
            continue;
        if (*p == '0' && lead)
            continue;
        lead = 0;
        digits++;
    }
    return digits <= MP_DIGITS_MAX ? dec : NULL;
}

/* Dump obj (reference stolen) into the arena as a request body; the string
 * member "transaction_amount" or "amount" (a decimal we made) is written as a
 * bare JSON number. */
static int mp_body(const pagoflex_host_services *host, pagoflex_arena *arena, json_t *obj,
                   const char **body, size_t *len)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(obj);
    char *copy = s ? host->arena_strdup(arena, s) : NULL;
    free(s);
    if (!copy)
        return PAGOFLEX_ERR_NOMEM;
    static const char *const keys[] = {"\"transaction_amount\":\"", "\"amount\":\""};
    for (size_t k = 0; k < 2; k++) {
        char *at = strstr(copy, keys[k]);
        if (!at)
            continue;
        char *q1 = at + strlen(keys[k]) - 1; /* opening quote of the decimal */
        char *q2 = strchr(q1 + 1, '"');
        if (!q2)
            return PAGOFLEX_ERR_INTERNAL;
        memmove(q2, q2 + 1, strlen(q2 + 1) + 1);
        memmove(q1, q1 + 1, strlen(q1 + 1) + 1);
    }
    *body = copy;
    *len = strlen(copy);
    return PAGOFLEX_OK;
}

/* ------------------------------------------------------------ init / fini */

static void mp_wipe_free(const pagoflex_host_services *host, char *s)
{
    if (s) {
        host->wipe(s, strlen(s));
        free(s);
    }
}

static void mp_state_free(mp_state *st)
{
    if (!st)
        return;
    mp_wipe_free(st->host, st->token);
    mp_wipe_free(st->host, st->secret);
    mp_wipe_free(st->host, st->auth);
    free(st->base_url);
    free(st->payer_email);
    free(st);
}

/* A setting from the 1.2 settings, else from the credentials (1.1 host). */
static const char *mp_setting(const pagoflex_host_services *host,
                              const pagoflex_credentials *creds, const char *name)
{
    const char *v = NULL;
    if (PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, setting) && host->setting)
        v = host->setting(creds, name);
    if (!v || !*v)
        v = host->credential(creds, name);
    return v && *v ? v : NULL;
}

/* Copy the credentials and settings into a new state. PAGOFLEX_ERR_CREDENTIALS
 * when MP_ACCESS_TOKEN or MP_WEBHOOK_SECRET is missing or empty, or
 * MP_BASE_URL is not an http(s) URL (the log names it, never a value). */
static int mp_init(const pagoflex_host_services *host, const pagoflex_credentials *creds,
                   void **state)
{
    if (!host || !state || !PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, amount_from_decimal))
        return PAGOFLEX_ERR_INTERNAL;
    int rc = PAGOFLEX_ERR_NOMEM;
    mp_state *st = calloc(1, sizeof *st);
    if (!st)
        goto fail;
    st->host = host;
    const char *token = host->credential(creds, "MP_ACCESS_TOKEN");
    const char *secret = host->credential(creds, "MP_WEBHOOK_SECRET");
    if (!token || !*token || !secret || !*secret) {
        host->log(host, PAGOFLEX_LOG_ERROR, "credential %s is missing or empty",
                  !token || !*token ? "MP_ACCESS_TOKEN" : "MP_WEBHOOK_SECRET");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    if (strpbrk(token, "\r\n")) {
        host->log(host, PAGOFLEX_LOG_ERROR, "credential MP_ACCESS_TOKEN holds a line break");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    const char *base = mp_setting(host, creds, "MP_BASE_URL");
    const char *email = mp_setting(host, creds, "MP_PAYER_EMAIL");
    size_t alen = strlen(token) + 8;
    if (!(st->token = strdup(token)) || !(st->secret = strdup(secret)) ||
        !(st->auth = malloc(alen)) ||
        !(st->base_url = strdup(base ? base : MP_DEFAULT_BASE_URL)) ||
        !(st->payer_email = strdup(email ? email : MP_DEFAULT_PAYER_EMAIL)))
        goto fail;
    snprintf(st->auth, alen, "Bearer %s", token);
    size_t n = strlen(st->base_url);
    while (n > 0 && st->base_url[n - 1] == '/')
        st->base_url[--n] = '\0';
    if (strncmp(st->base_url, "http://", 7) != 0 && strncmp(st->base_url, "https://", 8) != 0) {
        host->log(host, PAGOFLEX_LOG_ERROR, "setting MP_BASE_URL must be an http(s) URL");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    *state = st;
    return PAGOFLEX_OK;
fail:
    mp_state_free(st);
    return rc;
}

static void mp_fini(void *state)
{
    mp_state_free(state);
}

/* ---------------------------------------------------------- flow_request */

static int mp_currency_ok(const char *currency)
{
    for (size_t i = 0; currency && mp_currencies[i]; i++)
        if (strcmp(currency, mp_currencies[i]) == 0)
            return 1;
    return 0;
}

/* The AUTHORIZE body. The token is Mercado Pago's card token; written
 * "<payment_method_id>:<card token>" (e.g. "master:ff80...") it also names
 * the payment method, which the API requires for cards. */
static json_t *mp_authorize_body(const mp_state *st, pagoflex_arena *arena,
                                 const pagoflex_flow_input *in, const char *dec)
{
    const pagoflex_host_services *host = st->host;
    const pagoflex_payment *p = in->payment;
    const char *tok = in->payment_method_token, *pm = NULL;
    const char *colon = tok ? strchr(tok, ':') : NULL;
    if (colon) {
        pm = host->arena_strndup(arena, tok, (size_t)(colon - tok));
        tok = colon + 1;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:i, s:s?, s:s?, s:{s:s}}", "transaction_amount",
                          dec, "description", p->description ? p->description : p->id,
                          "external_reference", p->id, "capture", in->capture, "installments",
                          1, "notification_url", p->webhook_url, "callback_url", in->return_url,
                          "payer", "email", st->payer_email);
    if (o && tok && *tok && json_object_set_new(o, "token", json_string(tok)) != 0)
        goto fail;
    if (o && pm && *pm && json_object_set_new(o, "payment_method_id", json_string(pm)) != 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* Describe in->flow's call. PAGOFLEX_ERR_UNSUPPORTED for a currency Mercado
 * Pago does not process or an unknown flow, PAGOFLEX_ERR_INVALID for an input
 * it cannot be asked with (bad id, no payment id to capture, an amount a
 * double cannot carry), PAGOFLEX_ERR_NOT_FOUND for a sync with no id yet. */
static int mp_flow_request(void *state, const pagoflex_flow_input *in, pagoflex_arena *arena,
                           pagoflex_http_request *out)
{
    const mp_state *st = state;
    if (!st || !in || !in->payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const pagoflex_payment *p = in->payment;
    const char *bank = p->provider_reference_id;
    pagoflex_http_request req = {.method = "POST", .timeout_ms = 20000};
    json_t *obj = NULL;
    if (!mp_id_ok(p->id) || !mp_id_ok(in->operation_id))
        return PAGOFLEX_ERR_INVALID;
    if (!mp_currency_ok(p->currency))
        return PAGOFLEX_ERR_UNSUPPORTED;
    switch (in->flow) {
    case PAGOFLEX_FLOW_AUTHORIZE: {
        const char *dec = mp_decimal(host, arena, p->amount, p->currency);
        if (!dec)
            return PAGOFLEX_ERR_INVALID;
        req.url = host->arena_printf(arena, "%s/v1/payments", st->base_url);
        if (!(obj = mp_authorize_body(st, arena, in, dec)))
            return PAGOFLEX_ERR_NOMEM;
        break;
    }
    case PAGOFLEX_FLOW_CAPTURE:
    case PAGOFLEX_FLOW_VOID: {
        if (!mp_id_ok(bank))
            return PAGOFLEX_ERR_INVALID;
        req.method = "PUT";
        req.url = host->arena_printf(arena, "%s/v1/payments/%s", st->base_url, bank);
        if (in->flow == PAGOFLEX_FLOW_CAPTURE) {
            const char *dec = mp_decimal(host, arena, in->amount, p->currency);
            if (!dec)
                return PAGOFLEX_ERR_INVALID;
            obj = json_pack("{s:b, s:s}", "capture", 1, "transaction_amount", dec);
        } else {
            obj = json_pack("{s:s}", "status", "cancelled");
        }
        break;
    }
    case PAGOFLEX_FLOW_REFUND: {
        const char *dec = mp_decimal(host, arena, in->amount, p->currency);
        if (!mp_id_ok(bank) || !dec)
            return PAGOFLEX_ERR_INVALID;
        req.url = host->arena_printf(arena, "%s/v1/payments/%s/refunds", st->base_url, bank);
        obj = json_pack("{s:s}", "amount", dec);
        break;
    }
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
    case PAGOFLEX_FLOW_REFUND_SYNC: {
        int pay = in->flow == PAGOFLEX_FLOW_PAYMENT_SYNC;
        const char *rid = in->refund_provider_reference_id;
        if (!bank || (!pay && !rid))
            return PAGOFLEX_ERR_NOT_FOUND; /* nothing to ask Mercado Pago by yet */
        if (!mp_id_ok(bank) || (!pay && !mp_id_ok(rid)))
            return PAGOFLEX_ERR_INVALID;
        req.method = "GET";
        req.url = pay ? host->arena_printf(arena, "%s/v1/payments/%s", st->base_url, bank)
                      : host->arena_printf(arena, "%s/v1/payments/%s/refunds/%s", st->base_url,
                                           bank, rid);
        break;
    }
    default:
        return PAGOFLEX_ERR_UNSUPPORTED;
    }
    pagoflex_header *h = host->arena_alloc(arena, 3 * sizeof *h);
    if (!req.url || !h) {
        json_decref(obj);
        return PAGOFLEX_ERR_NOMEM;
    }
    h[0] = (pagoflex_header){"Authorization", st->auth};
    req.headers = h;
    req.header_count = 1;
    if (obj) {
        const char *body = NULL;
        int rc = mp_body(host, arena, obj, &body, &req.body_len);
        if (rc != PAGOFLEX_OK)
            return rc;
        req.body = (const unsigned char *)body;
        h[1] = (pagoflex_header){"Content-Type", "application/json"};
        h[2] = (pagoflex_header){"X-Idempotency-Key", in->operation_id};
        req.header_count = 3;
    }
    *out = req;
    return PAGOFLEX_OK;
}

/* --------------------------------------------------------- flow_response */

/* A payment's Mercado Pago status as our state (AUTHORIZE, PAYMENT_SYNC). */
static pagoflex_state mp_payment_state(const char *s)
{
    static const struct {
        const char *status;
        pagoflex_state state;
    } map[] = {
        {"approved", PAGOFLEX_STATE_SUCCEEDED},
        {"authorized", PAGOFLEX_STATE_REQUIRES_CAPTURE},
        {"pending", PAGOFLEX_STATE_PENDING},
        {"in_process", PAGOFLEX_STATE_PENDING},
        /* Captured, then disputed, refunded or charged back: the payment was
         * paid; refunds and disputes are their own objects. */
        {"in_mediation", PAGOFLEX_STATE_SUCCEEDED},
        {"refunded", PAGOFLEX_STATE_SUCCEEDED},
        {"charged_back", PAGOFLEX_STATE_SUCCEEDED},
        {"rejected", PAGOFLEX_STATE_FAILED},
        {"cancelled", PAGOFLEX_STATE_CANCELED},
    };
    for (size_t i = 0; s && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].status) == 0)
            return map[i].state;
    return PAGOFLEX_STATE_PROCESSING;
}

/* A refund's status as our state. */
static pagoflex_state mp_refund_state(const char *s)
{
    if (!s)
        return PAGOFLEX_STATE_PROCESSING;
    if (strcmp(s, "approved") == 0)
        return PAGOFLEX_STATE_SUCCEEDED;
    if (strcmp(s, "in_process") == 0 || strcmp(s, "pending") == 0 ||
        strcmp(s, "authorized") == 0)
        return PAGOFLEX_STATE_PENDING;
    if (strcmp(s, "rejected") == 0 || strcmp(s, "cancelled") == 0)
        return PAGOFLEX_STATE_FAILED;
    return PAGOFLEX_STATE_PROCESSING;
}

/* The machine-readable code of an error answer: cause[0].code, else "error". */
static const char *mp_error_code(const pagoflex_host_services *host, pagoflex_arena *arena,
                                 json_t *j)
{
    json_t *cause = json_object_get(j, "cause");
    json_t *first = json_is_array(cause) ? json_array_get(cause, 0) : cause;
    const char *code = json_is_object(first) ? mp_id_field(host, arena, first, "code") : NULL;
    if (code)
        return host->arena_printf(arena, "mp_%s", code);
    code = mp_id_field(host, arena, j, "error");
    return code ? code : "mercadopago_refused";
}

/* A short human message from the answer, in the arena, or NULL. */
static const char *mp_message(const pagoflex_host_services *host, pagoflex_arena *arena,
                              json_t *j)
{
    const char *m = json_string_value(json_object_get(j, "message"));
    return m && strlen(m) < 512 ? host->arena_strdup(arena, m) : NULL;
}

/* Where the customer must go for a pending payment (3-D Secure challenge,
 * boleto, ticket), or NULL. */
static const char *mp_redirect(const pagoflex_host_services *host, pagoflex_arena *arena,
                               json_t *j)
{
    const char *url = json_string_value(
        json_object_get(json_object_get(j, "three_ds_info"), "external_resource_url"));
    if (!url)
        url = json_string_value(json_object_get(
            json_object_get(json_object_get(j, "point_of_interaction"), "transaction_data"),
            "ticket_url"));
    if (!url)
        url = json_string_value(
            json_object_get(json_object_get(j, "transaction_details"), "external_resource_url"));
    if (url && strncmp(url, "https://", 8) == 0 && strlen(url) < 2048)
        return host->arena_strdup(arena, url);
    return NULL;
}

/* Map the answer to in->flow's call. Never FAILED while Mercado Pago may
 * have done the operation. PAGOFLEX_ERR_NOT_FOUND only for a sync answered
 * 404 with Mercado Pago's own JSON error (a proxy's 404 is PROCESSING). */
static int mp_flow_response(void *state, const pagoflex_flow_input *in,
                            const pagoflex_http_response *resp, pagoflex_arena *arena,
                            pagoflex_flow_result *out)
{
    const mp_state *st = state;
    if (!st || !in || !in->payment || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const char *cur = in->payment->currency;
    pagoflex_flow f = in->flow;
    int sync = f == PAGOFLEX_FLOW_PAYMENT_SYNC || f == PAGOFLEX_FLOW_REFUND_SYNC;
    int status = resp->status, rc = PAGOFLEX_OK;
    pagoflex_state s = PAGOFLEX_STATE_PROCESSING; /* unless the answer proves more */
    const char *code = NULL, *msg = NULL, *ref = NULL, *redirect = NULL;
    int64_t amount = 0;
    json_t *j = NULL;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK || status < 200 || status == 429 ||
        status >= 500)
        goto done;
    if (resp->body && resp->body_len && resp->body_len <= MP_BODY_MAX)
        j = json_loadb((const char *)resp->body, resp->body_len, 0, NULL);
    if (!json_is_object(j))
        goto done; /* garbage, an HTML error page, an empty body: proves nothing */
    if (status >= 300) {
        /* Mercado Pago's own error: {"message","error","status",...}. */
        const char *err = json_string_value(json_object_get(j, "error"));
        json_t *est = json_object_get(j, "status");
        int own = err && json_is_integer(est) && json_integer_value(est) == status;
        if (!own)
            goto done;
        if (status == 404 && sync) {
            rc = PAGOFLEX_ERR_NOT_FOUND;
            goto done;
        }
        /* A definite refusal of the call: nothing was created or changed. A
         * 409 may be an idempotency key still in use: unknown. */
        if (!sync && (status == 400 || status == 401 || status == 402 || status == 403 ||
                      status == 422 || (status == 404 && f != PAGOFLEX_FLOW_AUTHORIZE))) {
            s = PAGOFLEX_STATE_FAILED;
            code = mp_error_code(host, arena, j);
            msg = mp_message(host, arena, j);
        }
        goto done;
    }
    const char *mst = json_string_value(json_object_get(j, "status"));
    const char *detail = json_string_value(json_object_get(j, "status_detail"));
    switch (f) {
    case PAGOFLEX_FLOW_AUTHORIZE:
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
        s = mp_payment_state(mst);
        if (s == PAGOFLEX_STATE_PENDING && (redirect = mp_redirect(host, arena, j)))
            s = PAGOFLEX_STATE_REQUIRES_ACTION;
        if (s == PAGOFLEX_STATE_FAILED || s == PAGOFLEX_STATE_CANCELED) {
            code = detail && mp_id_ok(detail) ? host->arena_strdup(arena, detail)
                                              : (s == PAGOFLEX_STATE_FAILED ? "rejected" : NULL);
        }
        if (s == PAGOFLEX_STATE_SUCCEEDED)
            amount = mp_amount_of(host, json_object_get(j, "transaction_amount"), cur);
        ref = mp_id_field(host, arena, j, "id");
        if (f == PAGOFLEX_FLOW_AUTHORIZE && !ref && s != PAGOFLEX_STATE_FAILED)
            s = PAGOFLEX_STATE_PROCESSING; /* nothing to follow it by */
        break;
    case PAGOFLEX_FLOW_CAPTURE:
        if (mst && strcmp(mst, "approved") == 0) {
            s = PAGOFLEX_STATE_SUCCEEDED;
            amount = mp_amount_of(host, json_object_get(j, "transaction_amount"), cur);
        }
        break;
    case PAGOFLEX_FLOW_VOID:
        if (mst && strcmp(mst, "cancelled") == 0)
            s = PAGOFLEX_STATE_SUCCEEDED;
        break;
    default: /* REFUND, REFUND_SYNC */
        s = mp_refund_state(mst);
        if (s == PAGOFLEX_STATE_FAILED)
            code = mst && mp_id_ok(mst) ? host->arena_printf(arena, "refund_%s", mst)
                                        : "refund_failed";
        amount = mp_amount_of(host, json_object_get(j, "amount"), cur);
        ref = mp_id_field(host, arena, j, "id");
        if (f == PAGOFLEX_FLOW_REFUND && !ref && s != PAGOFLEX_STATE_FAILED)
            s = PAGOFLEX_STATE_PROCESSING;
        break;
    }
done:
    json_decref(j);
    if (rc == PAGOFLEX_OK) {
        out->state = s;
        out->provider_reference_id = ref;
        out->error_code = code;
        out->error_message = msg;
        if (PAGOFLEX_HAS_FIELD(out, pagoflex_flow_result, redirect_url)) {
            out->amount = amount;
            out->redirect_url = redirect;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- webhooks */

/* The value of `name` in the query string, in the arena, or NULL. */
static const char *mp_query_get(const pagoflex_host_services *host, pagoflex_arena *arena,
                                const char *query, const char *name)
{
    pagoflex_header *pairs = NULL;
    size_t n = 0;
    if (!query || !*query ||
        host->form_decode(arena, query, strlen(query), &pairs, &n) != PAGOFLEX_OK)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (pairs[i].name && strcmp(pairs[i].name, name) == 0)
            return pairs[i].value;
    return NULL;
}

/* data.id as the manifest carries it: lower-cased when alphanumeric. */
static char *mp_manifest_id(pagoflex_arena *arena, const pagoflex_host_services *host,
                            const char *id)
{
    char *c = host->arena_strdup(arena, id);
    int alnum = 1;
    for (const char *p = id; *p; p++)
        alnum &= isalnum((unsigned char)*p) != 0;
    for (char *p = c; c && alnum && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return c;
}

/* Hex HMAC of the manifest of (data.id, request id, ts) into hex[65]; the
 * parts that are NULL are left out. PAGOFLEX_OK or an error. */
static int mp_sign(const mp_state *st, pagoflex_arena *arena, const char *id,
                   const char *request_id, const char *ts, char hex[65])
{
    const pagoflex_host_services *host = st->host;
    char *m = host->arena_printf(arena, "%s%s%s%s%s%sts:%s;", id ? "id:" : "", id ? id : "",
                                 id ? ";" : "", request_id ? "request-id:" : "",
                                 request_id ? request_id : "", request_id ? ";" : "", ts);
    unsigned char mac[32];
    if (!m)
        return PAGOFLEX_ERR_NOMEM;
    int rc = host->hmac_sha256(st->secret, strlen(st->secret), m, strlen(m), mac);
    if (rc == PAGOFLEX_OK)
        host->hex_encode(mac, sizeof mac, hex);
    host->wipe(mac, sizeof mac);
    return rc;
}

/* ts and v1 of an x-signature value into the arena; 0 when malformed. */
static int mp_parse_signature(const pagoflex_host_services *host, pagoflex_arena *arena,
                              const char *sig, const char **ts, const char **v1)
{
    *ts = *v1 = NULL;
    const char *p = sig;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (len > 3 && strncmp(p, "ts=", 3) == 0 && !*ts)
            *ts = host->arena_strndup(arena, p + 3, len - 3);
        else if (len > 3 && strncmp(p, "v1=", 3) == 0 && !*v1)
            *v1 = host->arena_strndup(arena, p + 3, len - 3);
        p = end ? end + 1 : NULL;
    }
    if (!*ts || !*v1 || strlen(*ts) > 20 || strlen(*v1) != 64)
        return 0;
    for (const char *c = *ts; *c; c++)
        if (!isdigit((unsigned char)*c))
            return 0;
    return 1;
}

/* 1 if hex v1 equals the manifest HMAC for id (which may be NULL). */
static int mp_matches(const mp_state *st, pagoflex_arena *arena, const char *id,
                      const char *rid, const char *ts, const unsigned char got[32])
{
    const pagoflex_host_services *host = st->host;
    char want[65];
    unsigned char wb[32];
    size_t wl = 0;
    if (mp_sign(st, arena, id, rid, ts, want) != PAGOFLEX_OK ||
        host->hex_decode(want, 64, wb, sizeof wb, &wl) != PAGOFLEX_OK || wl != 32)
        return 0;
    int ok = host->ct_equal(got, wb, sizeof wb);
    host->wipe(wb, sizeof wb);
    host->wipe(want, sizeof want);
    return ok;
}

/* PAGOFLEX_OK when x-signature's v1 is the HMAC of the manifest built from
 * the query's data.id (lower-cased if alphanumeric; the id as received is
 * also accepted, which the official SDK signs since 3.1), x-request-id and
 * ts, and ts (seconds, or milliseconds as in the docs' example) is within
 * MP_TOLERANCE_S of the host clock; else PAGOFLEX_ERR_SIGNATURE. The body is
 * not signed: one that is not a JSON object, or names another data.id than
 * the signed one, is refused too. */
static int mp_webhook_verify(void *state, const pagoflex_webhook_request *req,
                             pagoflex_arena *arena)
{
    const mp_state *st = state;
    if (!st || !req || (!req->body && req->body_len))
        return PAGOFLEX_ERR_SIGNATURE;
    const pagoflex_host_services *host = st->host;
    const char *sig = host->header_get(req->headers, req->header_count, MP_SIG_HEADER);
    const char *rid = host->header_get(req->headers, req->header_count, MP_REQID_HEADER);
    const char *id = mp_query_get(host, arena, req->query, "data.id");
    const char *ts = NULL, *v1 = NULL;
    unsigned char got[32];
    size_t gl = 0;
    json_t *j = req->body_len && req->body_len <= MP_BODY_MAX
                    ? json_loadb((const char *)req->body, req->body_len, 0, NULL)
                    : NULL;
    json_t *bid = json_object_get(json_object_get(j, "data"), "id");
    const char *bs = json_is_integer(bid) ? host->arena_printf(arena, "%lld",
                                                               (long long)json_integer_value(bid))
                                          : json_string_value(bid);
    if (bs)
        bs = host->arena_strdup(arena, bs);
    /* Mercado Pago does not sign the body; one that is not a JSON object
     * cannot be tied to the signed id and is refused. */
    int body_ok = req->body_len == 0 || json_is_object(j);
    json_decref(j);
    if (!body_ok)
        goto refused;
    if (rid && !*rid)
        rid = NULL;
    if (id && !*id)
        id = NULL;
    /* A 1.0 host hands no query string: the body's data.id then stands in,
     * bound by the same HMAC. */
    int from_body = !id && !(req->query && *req->query) && bs && *bs;
    if (from_body)
        id = bs;
    if (!sig || !mp_parse_signature(host, arena, sig, &ts, &v1) ||
        host->hex_decode(v1, 64, got, sizeof got, &gl) != PAGOFLEX_OK || gl != 32)
        goto refused;
    long long t = strtoll(ts, NULL, 10);
    if (t > 100000000000LL) /* milliseconds */
        t /= 1000;
    long long now = (long long)host->now();
    if (t < now - MP_TOLERANCE_S || t > now + MP_TOLERANCE_S)
        goto refused;
    const char *lower = id ? mp_manifest_id(arena, host, id) : NULL;
    if (id && !lower)
        return PAGOFLEX_ERR_NOMEM;
    int ok = mp_matches(st, arena, lower, rid, ts, got) ||
             (id && strcmp(lower, id) != 0 && mp_matches(st, arena, id, rid, ts, got));
    if (!ok)
        goto refused;
    /* The body is not signed: it may only repeat the signed id. */
    if (!bs || (id && strcmp(bs, id) == 0))
        return PAGOFLEX_OK;
refused:
    host->log(host, PAGOFLEX_LOG_WARN,
              "webhook refused: missing, stale or wrong x-signature for the query's data.id "
              "and x-request-id");
    return PAGOFLEX_ERR_SIGNATURE;
}

/* Parse a verified notification into its one event: a "payment" type is a
 * look-up of the payment data.id names (the host syncs it); any other type
 * is IGNORED. PAGOFLEX_ERR_INVALID on garbage or a payment notification
 * without an id. */
static int mp_webhook_parse(void *state, const pagoflex_webhook_request *req,
                            pagoflex_arena *arena, pagoflex_webhook_parsed *out)
{
    const mp_state *st = state;
    if (!st || !req || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int rc = PAGOFLEX_ERR_INVALID;
    json_t *j = NULL;
    pagoflex_event *ev = host->arena_alloc(arena, sizeof *ev);
    if (!ev)
        return PAGOFLEX_ERR_NOMEM;
    if (req->body && req->body_len && req->body_len <= MP_BODY_MAX)
        j = json_loadb((const char *)req->body, req->body_len, 0, NULL);
    if (!json_is_object(j))
        goto done;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        type = mp_query_get(host, arena, req->query, "type");
    if (!type)
        type = mp_query_get(host, arena, req->query, "topic"); /* the older IPN form */
    const char *action = json_string_value(json_object_get(j, "action"));
    const char *id = mp_query_get(host, arena, req->query, "data.id");
    if (!id)
        id = mp_id_field(host, arena, json_object_get(j, "data"), "id");
    if (!type || strlen(type) > 64 || (id && !mp_id_ok(id)))
        goto done;
    /* The notification's own id; else the delivery's request id. */
    const char *eid = mp_id_field(host, arena, j, "id");
    if (!eid) {
        const char *rid = host->header_get(req->headers, req->header_count, MP_REQID_HEADER);
        eid = rid && mp_id_ok(rid) ? host->arena_strdup(arena, rid) : NULL;
    }
    if (!eid && id)
        eid = host->arena_printf(arena, "%s:%s:%s", type, id, action ? "a" : "-");
    if (!eid)
        goto done;
    ev->event_id = eid;
    ev->type = host->arena_strdup(arena, action && strlen(action) <= 64 ? action : type);
    ev->kind = PAGOFLEX_EVENT_IGNORED;
    if (strcmp(type, "payment") == 0) {
        if (!id)
            goto done;
        ev->kind = PAGOFLEX_EVENT_PAYMENT;
        ev->look_up = 1;
        ev->state = PAGOFLEX_STATE_PROCESSING;
        ev->tx_id = host->arena_strdup(arena, id);
    }
    out->events = ev;
    out->event_count = 1;
    rc = PAGOFLEX_OK;
done:
    json_decref(j);
    return rc;
}

/* Test support: a notification of `e` signed at `now` the way Mercado Pago
 * signs. Mercado Pago sends only look-ups (a payment look-up needs tx_id) and
 * types we ignore: PAGOFLEX_ERR_UNSUPPORTED for anything else. */
static int mp_webhook_sample(void *state, const pagoflex_event *e, int64_t now,
                             pagoflex_arena *arena, pagoflex_webhook_request *out)
{
    const mp_state *st = state;
    if (!st || !e || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const char *type, *id;
    if (e->kind == PAGOFLEX_EVENT_PAYMENT && e->look_up && mp_id_ok(e->tx_id)) {
        type = "payment";
        id = e->tx_id;
    } else if (e->kind == PAGOFLEX_EVENT_IGNORED) {
        type = e->type && mp_id_ok(e->type) ? e->type : "merchant_order";
        id = "1";
    } else {
        return PAGOFLEX_ERR_UNSUPPORTED;
    }
    if (!mp_id_ok(e->event_id))
        return PAGOFLEX_ERR_UNSUPPORTED;
    const char *body = NULL;
    size_t body_len = 0;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:{s:s}}", "id", e->event_id, "type", type,
                          "action", strcmp(type, "payment") == 0 ? "payment.updated" : type,
                          "api_version", "v1", "live_mode", 0, "data", "id", id);
    int rc = mp_body(host, arena, o, &body, &body_len);
    if (rc != PAGOFLEX_OK)
        return rc;
    const char *rid = host->arena_printf(arena, "req-%s", e->event_id);
    const char *ts = host->arena_printf(arena, "%lld", (long long)now);
    const char *qid = host->url_encode(arena, id, strlen(id));
    const char *qtype = host->url_encode(arena, type, strlen(type));
    const char *lower = mp_manifest_id(arena, host, id);
    pagoflex_header *h = host->arena_alloc(arena, 3 * sizeof *h);
    char hex[65];
    if (!rid || !ts || !qid || !qtype || !lower || !h)
        return PAGOFLEX_ERR_NOMEM;
    if ((rc = mp_sign(st, arena, lower, rid, ts, hex)) != PAGOFLEX_OK)
        return rc;
    h[0] = (pagoflex_header){"Content-Type", "application/json"};
    h[1] = (pagoflex_header){"x-request-id", rid};
    h[2] = (pagoflex_header){"x-signature", host->arena_printf(arena, "ts=%s,v1=%s", ts, hex)};
    out->method = "POST";
    out->path = "/webhooks/mercadopago";
    out->query = host->arena_printf(arena, "data.id=%s&type=%s", qid, qtype);
    out->headers = h;
    out->header_count = 3;
    out->body = (const unsigned char *)body;
    out->body_len = body_len;
    return h[2].value && out->query ? PAGOFLEX_OK : PAGOFLEX_ERR_NOMEM;
}

/* ------------------------------------------- 1.0 / 1.1 hosts: thin wrappers */

static pagoflex_flow_input mp_old_input(const pagoflex_payment *p, pagoflex_flow flow)
{
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in, .flow = flow, .payment = p,
                              .operation_id = p ? p->id : NULL, .capture = 1};
    return in;
}

/* A 1.0/1.1 host knows no authorize-only payment and cannot redirect: those
 * answers stay unknown there (the host syncs); CANCELED is final. */
static int mp_old_result(const pagoflex_flow_result *r, int sync, pagoflex_payment_result *out)
{
    pagoflex_state s = r->state;
    if (s == PAGOFLEX_STATE_REQUIRES_CAPTURE || s == PAGOFLEX_STATE_REQUIRES_ACTION)
        s = PAGOFLEX_STATE_PROCESSING;
    if (sync && s == PAGOFLEX_STATE_CANCELED)
        s = PAGOFLEX_STATE_FAILED;
    out->state = s;
    out->provider_reference_id = r->provider_reference_id;
    out->error_code = r->error_code;
    out->error_message = r->error_message;
    return PAGOFLEX_OK;
}

static int mp_build_request(void *state, const pagoflex_payment *p, pagoflex_arena *arena,
                            pagoflex_http_request *out)
{
    pagoflex_flow_input in = mp_old_input(p, PAGOFLEX_FLOW_AUTHORIZE);
    return mp_flow_request(state, &in, arena, out);
}

static int mp_handle_response(void *state, const pagoflex_payment *p,
                              const pagoflex_http_response *resp, pagoflex_arena *arena,
                              pagoflex_payment_result *out)
{
    pagoflex_flow_input in = mp_old_input(p, PAGOFLEX_FLOW_AUTHORIZE);
    pagoflex_flow_result r = {.size = (uint32_t)sizeof r};
    int rc = mp_flow_response(state, &in, resp, arena, &r);
    return rc == PAGOFLEX_OK ? mp_old_result(&r, 0, out) : rc;
}

static int mp_sync_request(void *state, const pagoflex_payment *p, pagoflex_arena *arena,
                           pagoflex_http_request *out)
{
    pagoflex_flow_input in = mp_old_input(p, PAGOFLEX_FLOW_PAYMENT_SYNC);
    return mp_flow_request(state, &in, arena, out);
}

static int mp_sync_response(void *state, const pagoflex_payment *p,
                            const pagoflex_http_response *resp, pagoflex_arena *arena,
                            pagoflex_payment_result *out)
{
    pagoflex_flow_input in = mp_old_input(p, PAGOFLEX_FLOW_PAYMENT_SYNC);
    pagoflex_flow_result r = {.size = (uint32_t)sizeof r};
    int rc = mp_flow_response(state, &in, resp, arena, &r);
    return rc == PAGOFLEX_OK ? mp_old_result(&r, 1, out) : rc;
}

/* A 1.0 host hands no query string: the body's data.id stands in for the
 * query's (see mp_webhook_verify). */
static int mp_verify_webhook(void *state, const pagoflex_header *headers, size_t header_count,
                             const unsigned char *body, size_t body_len, pagoflex_arena *arena)
{
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                    .path = "/webhooks/mercadopago", .query = "",
                                    .headers = headers, .header_count = header_count,
                                    .body = body, .body_len = body_len};
    return mp_webhook_verify(state, &req, arena);
}

/* A 1.0 host takes an event with a state; Mercado Pago's are look-ups only:
 * a payment notification proves only that Mercado Pago has the payment, so
 * it is PENDING there (never a final state; the host's sync settles it).
 * Other types: PAGOFLEX_ERR_UNSUPPORTED. */
static int mp_parse_webhook(void *state, const unsigned char *body, size_t body_len,
                            pagoflex_arena *arena, pagoflex_webhook_event *out)
{
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                    .path = "/webhooks/mercadopago", .query = "",
                                    .body = body, .body_len = body_len};
    pagoflex_webhook_parsed parsed = {.size = (uint32_t)sizeof parsed};
    int rc = mp_webhook_parse(state, &req, arena, &parsed);
    if (rc != PAGOFLEX_OK)
        return rc;
    const pagoflex_event *e = &parsed.events[0];
    if (e->kind != PAGOFLEX_EVENT_PAYMENT)
        return PAGOFLEX_ERR_UNSUPPORTED;
    pagoflex_webhook_event ev = {.event_id = e->event_id, .tx_id = e->tx_id,
                                 .state = PAGOFLEX_STATE_PENDING};
    *out = ev;
    return PAGOFLEX_OK;
}

/* ------------------------------------------------------------- descriptor */

static const struct pagoflex_connector mp_connector = {
    PAGOFLEX_CONNECTOR_HEADER,
    .key = "MERCADOPAGO",
    .webhook_path = "mercadopago",
    .version = "0.1.0",
    .required_credentials = mp_required,
    .currencies = mp_currencies,
    .init = mp_init,
    .fini = mp_fini,
    .execute_request = NULL,
    .build_request = mp_build_request,
    .handle_response = mp_handle_response,
    .verify_webhook = mp_verify_webhook,
    .parse_webhook = mp_parse_webhook,
    .sync_request = mp_sync_request,
    .sync_response = mp_sync_response,
    .flows = PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_CAPTURE) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_VOID) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_PAYMENT_SYNC) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND_SYNC),
    .flow_request = mp_flow_request,
    .flow_response = mp_flow_response,
    .webhook_verify = mp_webhook_verify,
    .webhook_parse = mp_webhook_parse,
    .webhook_sample = mp_webhook_sample,
    .settings = mp_settings,
};

PAGOFLEX_DEFINE_CONNECTOR(mp_connector)
