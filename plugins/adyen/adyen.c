/*
 * adyen.c - the ADYEN connector for Pagoflex: Adyen's Checkout API (v71),
 * built against the installed SDK like any third-party plugin.
 *
 *   AUTHORIZE  POST {base}/payments {"merchantAccount","amount":{"value",
 *              "currency"},"reference":<payment id>,"paymentMethod",
 *              "returnUrl", "captureDelayHours":0 | "additionalData":
 *              {"manualCapture":"true"}, "metadata":{"pagoflexCapture"}}
 *   CAPTURE    POST {base}/payments/{pspReference}/captures {"merchantAccount",
 *              "amount","reference":<payment id>}
 *   VOID       POST {base}/payments/{pspReference}/cancels {"merchantAccount",
 *              "reference":<payment id>}
 *   REFUND     POST {base}/payments/{pspReference}/refunds {"merchantAccount",
 *              "amount","reference":<refund id>,"merchantRefundReason"?}
 *
 * Every call carries X-API-Key: ADYEN_API_KEY and Idempotency-Key:
 * in->operation_id. Captures, cancels and refunds answer 201 {"status":
 * "received"}: the outcome comes only by webhook (CAPTURE, CANCELLATION,
 * REFUND items), so those flows answer PENDING, never SUCCEEDED. Adyen has
 * no plain GET for a payment or a refund: there is no PAYMENT_SYNC or
 * REFUND_SYNC flow; the host waits for the webhook.
 *
 * Amounts are sent in Adyen's minor units, which follow ISO 4217 except
 * for CLP and ISK (2 decimals at Adyen, 0 in ISO) and CVE and IDR (0 at
 * Adyen, 2 in ISO): see adyen_exponent.
 *
 * Webhooks: {"live":"false","notificationItems":[{"NotificationRequestItem":
 * {...}}, ...]}, several items per POST. Each item carries
 * additionalData.hmacSignature = base64 HMAC-SHA256, under the hex-decoded
 * ADYEN_HMAC_KEY (or ADYEN_HMAC_KEY_PREVIOUS during a key change), of
 * "pspReference:originalReference:merchantAccountCode:merchantReference:
 * value:currency:eventCode:success" (missing fields empty, no escaping: the
 * way @adyen/api-library's HmacValidator.getDataToSign builds it). One item
 * that fails refuses the whole delivery. Optional Basic auth
 * (ADYEN_WEBHOOK_USERNAME/ADYEN_WEBHOOK_PASSWORD). The answer is the body
 * "[accepted]", which Adyen requires.
 *
 * Everything returned is allocated in the call's arena. No library type
 * crosses the boundary; the plugin links against no host symbol.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <pagoflex/connector.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define ADYEN_DEFAULT_BASE_URL "https://checkout-test.adyen.com/v71"
#define ADYEN_ID_MAX 128
#define ADYEN_BODY_MAX (256 * 1024)
#define ADYEN_ITEMS_MAX 100
#define ADYEN_KEY_MAX 64 /* bytes of a decoded HMAC key */
#define ADYEN_ANSWER "[accepted]"

typedef struct adyen_state {
    const pagoflex_host_services *host;
    char *api_key;          /* ADYEN_API_KEY, wiped in fini */
    char *merchant;         /* ADYEN_MERCHANT_ACCOUNT */
    char *base_url;         /* no trailing '/' */
    char *return_url;       /* ADYEN_RETURN_URL, or NULL */
    char *basic;            /* "Basic <b64(user:pass)>" or NULL, wiped in fini */
    unsigned char key[ADYEN_KEY_MAX], prev[ADYEN_KEY_MAX];
    size_t key_len, prev_len; /* prev_len 0: no previous key */
} adyen_state;

static const char *const adyen_required[] = {"ADYEN_API_KEY", "ADYEN_HMAC_KEY", NULL};
static const char *const adyen_settings[] = {"ADYEN_BASE_URL", "ADYEN_MERCHANT_ACCOUNT",
                                             "ADYEN_RETURN_URL", NULL};

/* ---------------------------------------------------------------- helpers */

/* 1..ADYEN_ID_MAX characters of [A-Za-z0-9_.-]: safe in JSON, URLs, logs. */
static int adyen_id_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > ADYEN_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* The string "key" of obj copied into the arena if it is a well-formed id. */
static const char *adyen_id_field(const pagoflex_host_services *host, pagoflex_arena *arena,
                                  json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && adyen_id_ok(s) ? host->arena_strdup(arena, s) : NULL;
}

/* A printable copy (at most 200 bytes, controls and quotes dropped) of a
 * free-text string the PSP sent, or NULL. */
static const char *adyen_text(const pagoflex_host_services *host, pagoflex_arena *arena,
                              const char *s)
{
    if (!s || !*s)
        return NULL;
    size_t n = strlen(s) > 200 ? 200 : strlen(s), k = 0;
    char *out = host->arena_alloc(arena, n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f && s[i] != '"' && s[i] != '\\')
            out[k++] = s[i];
    return k ? out : NULL;
}

/* Dump obj (reference stolen) into the arena. */
static int adyen_body(const pagoflex_host_services *host, pagoflex_arena *arena, json_t *obj,
                      const char **body, size_t *len)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    char *copy = s ? host->arena_strdup(arena, s) : NULL;
    free(s);
    if (!copy)
        return PAGOFLEX_ERR_NOMEM;
    *body = copy;
    *len = strlen(copy);
    return PAGOFLEX_OK;
}

/* Adyen's number of decimals for `currency` (its "Currency codes" page: ISO
 * 4217 except CLP 2, ISK 2, CVE 0, IDR 0), or -1 for an unknown code. */
static int adyen_exponent(const pagoflex_host_services *host, const char *currency)
{
    static const struct {
        const char *code;
        int exp;
    } differs[] = {{"CLP", 2}, {"ISK", 2}, {"CVE", 0}, {"IDR", 0}};
    if (!currency || strlen(currency) != 3)
        return -1;
    for (size_t i = 0; i < sizeof differs / sizeof differs[0]; i++)
        if (strcmp(currency, differs[i].code) == 0)
            return differs[i].exp;
    return host->currency_exponent(currency);
}

/* ISO minor units -> Adyen's value. PAGOFLEX_ERR_UNSUPPORTED for an unknown
 * currency, PAGOFLEX_ERR_INVALID for an amount Adyen cannot express (IDR
 * 1050 = 10.50 with 0 decimals at Adyen) or an overflow. */
static int adyen_to_value(const pagoflex_host_services *host, int64_t minor, const char *currency,
                          int64_t *value)
{
    int iso = currency ? host->currency_exponent(currency) : -1;
    int ad = adyen_exponent(host, currency);
    if (iso < 0 || ad < 0)
        return PAGOFLEX_ERR_UNSUPPORTED;
    int64_t v = minor;
    for (int i = iso; i < ad; i++) {
        if (v > INT64_MAX / 10 || v < -INT64_MAX / 10)
            return PAGOFLEX_ERR_INVALID;
        v *= 10;
    }
    for (int i = ad; i < iso; i++) {
        if (v % 10 != 0)
            return PAGOFLEX_ERR_INVALID;
        v /= 10;
    }
    *value = v;
    return PAGOFLEX_OK;
}

/* Adyen's value -> ISO minor units; 0 when it cannot be said exactly. */
static int64_t adyen_from_value(const pagoflex_host_services *host, int64_t value,
                                const char *currency)
{
    int iso = currency ? host->currency_exponent(currency) : -1;
    int ad = adyen_exponent(host, currency);
    if (iso < 0 || ad < 0 || value <= 0)
        return 0;
    for (int i = ad; i < iso; i++) {
        if (value > INT64_MAX / 10)
            return 0;
        value *= 10;
    }
    for (int i = iso; i < ad; i++) {
        if (value % 10 != 0)
            return 0;
        value /= 10;
    }
    return value;
}

/* ------------------------------------------------------------ init / fini */

static void adyen_free_secret(const pagoflex_host_services *host, char *s)
{
    if (s) {
        host->wipe(s, strlen(s));
        free(s);
    }
}

static void adyen_state_free(adyen_state *st)
{
    if (!st)
        return;
    adyen_free_secret(st->host, st->api_key);
    adyen_free_secret(st->host, st->basic);
    free(st->merchant);
    free(st->base_url);
    free(st->return_url);
    st->host->wipe(st->key, sizeof st->key);
    st->host->wipe(st->prev, sizeof st->prev);
    free(st);
}

/* A setting from the host configuration (1.2 host), else a credential of
 * that name (1.1 host), else NULL. */
static const char *adyen_setting(const pagoflex_host_services *host,
                                 const pagoflex_credentials *creds, const char *name)
{
    const char *v = NULL;
    if (PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, setting) && host->setting)
        v = host->setting(creds, name);
    if (!v || !*v)
        v = host->credential(creds, name);
    return v && *v ? v : NULL;
}

/* Decode a hex HMAC key credential into out. 0, or -1 when it is not
 * 2..2*ADYEN_KEY_MAX hex digits. */
static int adyen_hex_key(const pagoflex_host_services *host, const char *hex,
                         unsigned char *out, size_t *len)
{
    size_t n = strlen(hex);
    if (n < 2 || n > 2 * ADYEN_KEY_MAX || n % 2)
        return -1;
    return host->hex_decode(hex, n, out, ADYEN_KEY_MAX, len) == PAGOFLEX_OK ? 0 : -1;
}

/* Copy credentials and settings into a new state. PAGOFLEX_ERR_CREDENTIALS
 * when ADYEN_API_KEY, ADYEN_HMAC_KEY (hex) or ADYEN_MERCHANT_ACCOUNT is
 * missing or malformed, or ADYEN_BASE_URL is not http(s); the log names
 * what, never a value. */
static int adyen_init(const pagoflex_host_services *host, const pagoflex_credentials *creds,
                      void **state)
{
    if (!host || !state || !PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, currency_exponent))
        return PAGOFLEX_ERR_INTERNAL;
    int rc = PAGOFLEX_ERR_NOMEM;
    adyen_state *st = calloc(1, sizeof *st);
    if (!st)
        goto fail;
    st->host = host;
    const char *api = host->credential(creds, "ADYEN_API_KEY");
    const char *hmac = host->credential(creds, "ADYEN_HMAC_KEY");
    const char *prev = host->credential(creds, "ADYEN_HMAC_KEY_PREVIOUS");
    const char *merchant = adyen_setting(host, creds, "ADYEN_MERCHANT_ACCOUNT");
    const char *base = adyen_setting(host, creds, "ADYEN_BASE_URL");
    const char *ret = adyen_setting(host, creds, "ADYEN_RETURN_URL");
    const char *user = host->credential(creds, "ADYEN_WEBHOOK_USERNAME");
    const char *pass = host->credential(creds, "ADYEN_WEBHOOK_PASSWORD");
    const char *bad = !api || !*api           ? "credential ADYEN_API_KEY is missing or empty"
                      : !hmac || !*hmac       ? "credential ADYEN_HMAC_KEY is missing or empty"
                      : !merchant             ? "setting ADYEN_MERCHANT_ACCOUNT is missing"
                      : !adyen_id_ok(merchant) ? "setting ADYEN_MERCHANT_ACCOUNT is not a "
                                                 "merchant account name ([A-Za-z0-9_.-])"
                      : (user && *user) != (pass && *pass)
                          ? "set both ADYEN_WEBHOOK_USERNAME and ADYEN_WEBHOOK_PASSWORD, or neither"
                          : NULL;
    if (!bad && adyen_hex_key(host, hmac, st->key, &st->key_len) != 0)
        bad = "credential ADYEN_HMAC_KEY must be the hex key from the Customer Area";
    if (!bad && prev && *prev && adyen_hex_key(host, prev, st->prev, &st->prev_len) != 0)
        bad = "credential ADYEN_HMAC_KEY_PREVIOUS must be a hex key";
    if (bad) {
        host->log(host, PAGOFLEX_LOG_ERROR, "%s", bad);
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    if (!(st->api_key = strdup(api)) || !(st->merchant = strdup(merchant)) ||
        !(st->base_url = strdup(base ? base : ADYEN_DEFAULT_BASE_URL)) ||
        (ret && !(st->return_url = strdup(ret))))
        goto fail;
    if (user && *user) {
        pagoflex_arena *a = host->init_arena ? host->init_arena(creds) : NULL;
        char *up = a ? host->arena_printf(a, "%s:%s", user, pass) : NULL;
        char *b64 = up ? host->base64_encode(a, (const unsigned char *)up, strlen(up)) : NULL;
        if (up)
            host->wipe(up, strlen(up));
        if (!b64)
            goto fail;
        size_t bl = strlen(b64);
        if (!(st->basic = malloc(bl + 7)))
            goto fail;
        memcpy(st->basic, "Basic ", 6);
        memcpy(st->basic + 6, b64, bl + 1);
        host->wipe(b64, bl);
    }
    size_t n = strlen(st->base_url);
    while (n > 0 && st->base_url[n - 1] == '/')
        st->base_url[--n] = '\0';
    if (strncmp(st->base_url, "http://", 7) != 0 && strncmp(st->base_url, "https://", 8) != 0) {
        host->log(host, PAGOFLEX_LOG_ERROR, "setting ADYEN_BASE_URL must be an http(s) URL");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    *state = st;
    return PAGOFLEX_OK;
fail:
    adyen_state_free(st);
    return rc;
}

static void adyen_fini(void *state)
{
    adyen_state_free(state);
}

/* ---------------------------------------------------------- flow_request */

/* Adyen's merchantRefundReason for our reason, or NULL. */
static const char *adyen_refund_reason(const char *reason)
{
    if (!reason)
        return NULL;
    if (strcmp(reason, "requested_by_customer") == 0)
        return "CUSTOMER REQUEST";
    if (strcmp(reason, "fraudulent") == 0)
        return "FRAUD";
    if (strcmp(reason, "duplicate") == 0)
        return "DUPLICATE";
    return "OTHER";
}

/* The paymentMethod object for the token: a JSON object (Adyen Web's
 * state.data.paymentMethod, encrypted card fields or another method) is
 * sent as is; any other token is a storedPaymentMethodId. NULL when the
 * token is neither. */
static json_t *adyen_payment_method(const char *token, int *stored)
{
    *stored = 0;
    if (!token || !*token)
        return NULL;
    if (token[0] == '{') {
        json_t *pm = json_loads(token, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(pm) && json_is_string(json_object_get(pm, "type")))
            return pm;
        json_decref(pm);
        return NULL;
    }
    if (!adyen_id_ok(token))
        return NULL;
    *stored = 1;
    return json_pack("{s:s, s:s}", "type", "scheme", "storedPaymentMethodId", token);
}

/* Describe in->flow's call. PAGOFLEX_ERR_UNSUPPORTED for an unknown
 * currency or a flow Adyen has no call for (syncs), PAGOFLEX_ERR_INVALID for
 * an input Adyen cannot be asked with (bad id, no pspReference, no return
 * URL, no usable token, an amount Adyen cannot express). */
static int adyen_flow_request(void *state, const pagoflex_flow_input *in,
                              pagoflex_arena *arena, pagoflex_http_request *out)
{
    const adyen_state *st = state;
    if (!st || !in || !in->payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const pagoflex_payment *p = in->payment;
    const char *psp = p->provider_reference_id;
    pagoflex_http_request req = {.method = "POST", .timeout_ms = 30000};
    json_t *obj = NULL;
    int64_t value = 0;
    int rc;
    if (!adyen_id_ok(p->id) || !adyen_id_ok(in->operation_id))
        return PAGOFLEX_ERR_INVALID;
    switch (in->flow) {
    case PAGOFLEX_FLOW_AUTHORIZE: {
        if (p->amount <= 0)
            return PAGOFLEX_ERR_INVALID;
        if ((rc = adyen_to_value(host, p->amount, p->currency, &value)) != PAGOFLEX_OK)
            return rc;
        const char *ret = in->return_url ? in->return_url : st->return_url;
        int stored = 0;
        json_t *pm = adyen_payment_method(in->payment_method_token, &stored);
        if (!ret || !pm) {
            json_decref(pm);
            return PAGOFLEX_ERR_INVALID;
        }
        req.url = host->arena_printf(arena, "%s/payments", st->base_url);
        obj = json_pack("{s:s, s:{s:I, s:s}, s:s, s:o, s:s, s:{s:s}}", "merchantAccount",
                        st->merchant, "amount", "value", (json_int_t)value, "currency",
                        p->currency, "reference", p->id, "paymentMethod", pm, "returnUrl", ret,
                        "metadata", "pagoflexCapture", in->capture ? "auto" : "manual");
        if (obj && in->capture)
            json_object_set_new(obj, "captureDelayHours", json_integer(0));
        else if (obj)
            json_object_set_new(obj, "additionalData", json_pack("{s:s}", "manualCapture", "true"));
        if (obj && stored) {
            /* A stored card is charged card-on-file under the shopper it was
             * stored for; the contract has no shopper id, so the merchant
             * reference (or the payment id) stands for it. */
            json_object_set_new(obj, "shopperReference",
                                json_string(p->reference && adyen_id_ok(p->reference)
                                                ? p->reference
                                                : p->id));
            json_object_set_new(obj, "shopperInteraction", json_string("ContAuth"));
            json_object_set_new(obj, "recurringProcessingModel", json_string("CardOnFile"));
        }
        break;
    }
    case PAGOFLEX_FLOW_CAPTURE:
    case PAGOFLEX_FLOW_REFUND: {
        int capture = in->flow == PAGOFLEX_FLOW_CAPTURE;
        if (!adyen_id_ok(psp) || in->amount <= 0)
            return PAGOFLEX_ERR_INVALID;
        if ((rc = adyen_to_value(host, in->amount, p->currency, &value)) != PAGOFLEX_OK)
            return rc;
        const char *ref = capture ? p->id : in->refund_id ? in->refund_id : in->operation_id;
        if (!adyen_id_ok(ref))
            return PAGOFLEX_ERR_INVALID;
        req.url = host->arena_printf(arena, "%s/payments/%s/%s", st->base_url, psp,
                                     capture ? "captures" : "refunds");
        obj = json_pack("{s:s, s:{s:I, s:s}, s:s}", "merchantAccount", st->merchant, "amount",
                        "value", (json_int_t)value, "currency", p->currency, "reference", ref);
        const char *why = capture ? NULL : adyen_refund_reason(in->reason);
        if (obj && why)
            json_object_set_new(obj, "merchantRefundReason", json_string(why));
        break;
    }
    case PAGOFLEX_FLOW_VOID:
        if (!adyen_id_ok(psp))
            return PAGOFLEX_ERR_INVALID;
        req.url = host->arena_printf(arena, "%s/payments/%s/cancels", st->base_url, psp);
        obj = json_pack("{s:s, s:s}", "merchantAccount", st->merchant, "reference", p->id);
        break;
    default:
        /* No PAYMENT_SYNC/REFUND_SYNC: Adyen has no GET for a payment or a
         * refund; the outcome comes by webhook. */
        return PAGOFLEX_ERR_UNSUPPORTED;
    }
    pagoflex_header *h = host->arena_alloc(arena, 3 * sizeof *h);
    const char *body = NULL;
    if (!req.url || !h) {
        json_decref(obj);
        return PAGOFLEX_ERR_NOMEM;
    }
    if ((rc = adyen_body(host, arena, obj, &body, &req.body_len)) != PAGOFLEX_OK)
        return rc;
    h[0] = (pagoflex_header){"X-API-Key", st->api_key};
    h[1] = (pagoflex_header){"Idempotency-Key", in->operation_id};
    h[2] = (pagoflex_header){"Content-Type", "application/json"};
    req.headers = h;
    req.header_count = 3;
    req.body = (const unsigned char *)body;
    *out = req;
    return PAGOFLEX_OK;
}

/* --------------------------------------------------------- flow_response */

/* The payment state a /payments resultCode means (capture: whether the
 * payment was created with automatic capture). */
static pagoflex_state adyen_result_state(const char *code, int capture)
{
    if (!code)
        return PAGOFLEX_STATE_PROCESSING;
    if (strcmp(code, "Authorised") == 0)
        return capture ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_REQUIRES_CAPTURE;
    if (strcmp(code, "Refused") == 0)
        return PAGOFLEX_STATE_FAILED;
    if (strcmp(code, "Cancelled") == 0)
        return PAGOFLEX_STATE_CANCELED;
    /* Error: Adyen could not process it; the AUTHORISATION webhook
     * (success false) settles it. Pending/Received: the result comes by
     * webhook. */
    if (strcmp(code, "Error") == 0 || strcmp(code, "Pending") == 0 ||
        strcmp(code, "Received") == 0)
        return PAGOFLEX_STATE_PENDING;
    if (strcmp(code, "RedirectShopper") == 0 || strcmp(code, "IdentifyShopper") == 0 ||
        strcmp(code, "ChallengeShopper") == 0 || strcmp(code, "PresentToShopper") == 0)
        return PAGOFLEX_STATE_REQUIRES_ACTION;
    return PAGOFLEX_STATE_PROCESSING;
}

/* Map Adyen's answer to in->flow's call. Never FAILED while Adyen may have
 * done the operation: timeouts, 429, 5xx, 3xx, garbage, an idempotency
 * conflict (errorCode 704, or 409) and unknown resultCodes are PROCESSING. */
static int adyen_flow_response(void *state, const pagoflex_flow_input *in,
                               const pagoflex_http_response *resp, pagoflex_arena *arena,
                               pagoflex_flow_result *out)
{
    const adyen_state *st = state;
    if (!st || !in || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int status = resp->status;
    pagoflex_state s = PAGOFLEX_STATE_PROCESSING; /* unless the answer proves more */
    const char *code = NULL, *msg = NULL, *ref = NULL, *redirect = NULL;
    json_t *j = NULL;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK || status < 200 || status == 429 ||
        status >= 500)
        goto done;
    if (resp->body && resp->body_len && resp->body_len <= ADYEN_BODY_MAX)
        j = json_loadb((const char *)resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j))
        goto done; /* an HTML error page, an empty body: proves nothing */
    if (status >= 300) {
        /* Adyen's own error object: {"status","errorCode","message",
         * "errorType"}. A validation, security or configuration refusal
         * means nothing was done; 704 is "request already processed or in
         * progress" (the same Idempotency-Key still running): unknown. */
        const char *ec = json_string_value(json_object_get(j, "errorCode"));
        const char *et = json_string_value(json_object_get(j, "errorType"));
        int refused = status == 400 || status == 401 || status == 403 || status == 422;
        if (ec && et && refused && strcmp(ec, "704") != 0) {
            s = PAGOFLEX_STATE_FAILED;
            code = adyen_id_ok(ec) ? host->arena_printf(arena, "adyen_%s", ec) : "adyen_error";
            msg = adyen_text(host, arena, json_string_value(json_object_get(j, "message")));
        }
        goto done;
    }
    if (in->flow == PAGOFLEX_FLOW_AUTHORIZE) {
        const char *rcode = json_string_value(json_object_get(j, "resultCode"));
        s = adyen_result_state(rcode, in->capture);
        ref = adyen_id_field(host, arena, j, "pspReference");
        if (s == PAGOFLEX_STATE_FAILED || (rcode && strcmp(rcode, "Error") == 0)) {
            code = strcmp(rcode, "Error") == 0 ? "error" : "refused";
            msg = adyen_text(host, arena, json_string_value(json_object_get(j, "refusalReason")));
        }
        if (s == PAGOFLEX_STATE_REQUIRES_ACTION) {
            json_t *action = json_object_get(j, "action");
            const char *url = json_string_value(json_object_get(action, "url"));
            const char *method = json_string_value(json_object_get(action, "method"));
            if (url && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) &&
                strlen(url) < 2048 && !(method && strcmp(method, "POST") == 0))
                redirect = host->arena_strdup(arena, url);
            /* A native 3DS2 or a POST redirect: the shopper must act in
             * Adyen's client SDK, which we cannot hand over; the webhook
             * (or the authorisation expiring) settles it. */
            if (!redirect)
                s = PAGOFLEX_STATE_PENDING;
        }
    } else {
        const char *rs = json_string_value(json_object_get(j, "status"));
        if (rs && strcmp(rs, "received") == 0)
            s = PAGOFLEX_STATE_PENDING; /* the outcome comes only by webhook */
        if (in->flow == PAGOFLEX_FLOW_REFUND)
            ref = adyen_id_field(host, arena, j, "pspReference");
    }
done:
    json_decref(j);
    out->state = s;
    out->provider_reference_id = ref;
    out->error_code = code;
    out->error_message = msg;
    if (PAGOFLEX_HAS_FIELD(out, pagoflex_flow_result, redirect_url)) {
        out->amount = 0; /* Adyen says nothing is captured or refunded yet */
        out->redirect_url = redirect;
    }
    return PAGOFLEX_OK;
}

/* ---------------------------------------------------------------- webhooks */

/* The string Adyen signs for an item, in the arena: the eight fields joined
 * by ':' (missing ones empty, values as they are, no escaping, as
 * @adyen/api-library's HmacValidator does). NULL on a malformed item. */
static char *adyen_signed_data(const pagoflex_host_services *host, pagoflex_arena *arena,
                               json_t *item)
{
    static const char *const keys[] = {"pspReference", "originalReference",
                                       "merchantAccountCode", "merchantReference"};
    const char *f[8] = {0};
    char num[32] = "";
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(item, keys[i]);
        if (v && !json_is_string(v))
            return NULL;
        f[i] = v ? json_string_value(v) : "";
    }
    json_t *amount = json_object_get(item, "amount");
    json_t *value = json_object_get(amount, "value");
    json_t *cur = json_object_get(amount, "currency");
    if (!json_is_object(amount) || (cur && !json_is_string(cur)))
        return NULL;
    if (json_is_integer(value))
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(value));
    else if (json_is_string(value) && strlen(json_string_value(value)) < sizeof num)
        snprintf(num, sizeof num, "%s", json_string_value(value));
    else if (value)
        return NULL;
    f[4] = num;
    f[5] = cur ? json_string_value(cur) : "";
    json_t *ev = json_object_get(item, "eventCode");
    json_t *ok = json_object_get(item, "success");
    if (!json_is_string(ev) || (ok && !json_is_string(ok)))
        return NULL;
    f[6] = json_string_value(ev);
    f[7] = ok ? json_string_value(ok) : "";
    return host->arena_printf(arena, "%s:%s:%s:%s:%s:%s:%s:%s", f[0], f[1], f[2], f[3], f[4],
                              f[5], f[6], f[7]);
}

/* base64 HMAC-SHA256 of data under key, in the arena, or NULL. */
static char *adyen_hmac_b64(const pagoflex_host_services *host, pagoflex_arena *arena,
                            const unsigned char *key, size_t key_len, const char *data)
{
    unsigned char mac[32];
    if (host->hmac_sha256(key, key_len, data, strlen(data), mac) != PAGOFLEX_OK)
        return NULL;
    char *b64 = host->base64_encode(arena, mac, sizeof mac);
    host->wipe(mac, sizeof mac);
    return b64;
}

/* 1 when the item's hmacSignature is the HMAC of its signed data under the
 * current or the previous key (constant-time compare), else 0. */
static int adyen_item_ok(const adyen_state *st, pagoflex_arena *arena, json_t *item)
{
    const pagoflex_host_services *host = st->host;
    const char *sig =
        json_string_value(json_object_get(json_object_get(item, "additionalData"), "hmacSignature"));
    char *data = json_is_object(item) ? adyen_signed_data(host, arena, item) : NULL;
    unsigned char *got = NULL;
    size_t got_len = 0;
    if (!sig || !data || strlen(sig) > 128 ||
        host->base64_decode(arena, sig, strlen(sig), &got, &got_len) != PAGOFLEX_OK ||
        got_len != 32)
        return 0;
    int ok = 0;
    for (int k = 0; k < 2; k++) {
        const unsigned char *key = k ? st->prev : st->key;
        size_t kl = k ? st->prev_len : st->key_len;
        if (!kl)
            continue;
        unsigned char want[32];
        if (host->hmac_sha256(key, kl, data, strlen(data), want) != PAGOFLEX_OK)
            return 0;
        ok |= host->ct_equal(got, want, sizeof want);
        host->wipe(want, sizeof want);
    }
    return ok;
}

/* The items of a delivery (borrowed from j), or NULL when it is not
 * Adyen's shape or has 0 or more than ADYEN_ITEMS_MAX items. */
static json_t *adyen_items(json_t *j)
{
    json_t *items = json_object_get(j, "notificationItems");
    size_t n = json_array_size(items);
    return json_is_array(items) && n > 0 && n <= ADYEN_ITEMS_MAX ? items : NULL;
}

/* PAGOFLEX_OK when Basic auth (if configured) matches and every item's HMAC
 * is valid; one bad item refuses the whole delivery. Else
 * PAGOFLEX_ERR_SIGNATURE. Adyen signs no timestamp: there is no replay
 * window to check (duplicates are absorbed by event id). */
static int adyen_webhook_verify(void *state, const pagoflex_webhook_request *req,
                                pagoflex_arena *arena)
{
    const adyen_state *st = state;
    if (!st || !req || !arena || !req->body || !req->body_len || req->body_len > ADYEN_BODY_MAX)
        return PAGOFLEX_ERR_SIGNATURE;
    const pagoflex_host_services *host = st->host;
    int rc = PAGOFLEX_ERR_SIGNATURE;
    if (st->basic) {
        const char *auth = host->header_get(req->headers, req->header_count, "Authorization");
        size_t bl = strlen(st->basic);
        if (!auth || strlen(auth) != bl || !host->ct_equal(auth, st->basic, bl)) {
            host->log(host, PAGOFLEX_LOG_WARN, "webhook refused: missing or wrong Basic auth");
            return PAGOFLEX_ERR_SIGNATURE;
        }
    }
    json_t *j = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *items = adyen_items(j);
    for (size_t i = 0; items && i < json_array_size(items); i++) {
        json_t *item = json_object_get(json_array_get(items, i), "NotificationRequestItem");
        if (!adyen_item_ok(st, arena, item)) {
            host->log(host, PAGOFLEX_LOG_WARN,
                      "webhook refused: notification item %zu has a missing or wrong "
                      "additionalData.hmacSignature (check ADYEN_HMAC_KEY)", i);
            goto done;
        }
    }
    if (items)
        rc = PAGOFLEX_OK;
    else
        host->log(host, PAGOFLEX_LOG_WARN, "webhook refused: not an Adyen notification body");
done:
    json_decref(j);
    return rc;
}

/* Does the item's operations array name op? */
static int adyen_has_operation(json_t *item, const char *op)
{
    json_t *ops = json_object_get(item, "operations");
    for (size_t i = 0; i < json_array_size(ops); i++) {
        const char *s = json_string_value(json_array_get(ops, i));
        if (s && strcmp(s, op) == 0)
            return 1;
    }
    return 0;
}

/* One item into ev. PAGOFLEX_ERR_INVALID when it lacks a pspReference or an
 * eventCode, or a handled event names no object. */
static int adyen_event(const adyen_state *st, pagoflex_arena *arena, json_t *item,
                       pagoflex_event *ev)
{
    const pagoflex_host_services *host = st->host;
    const char *psp = adyen_id_field(host, arena, item, "pspReference");
    const char *code = json_string_value(json_object_get(item, "eventCode"));
    const char *success = json_string_value(json_object_get(item, "success"));
    const char *mac = json_string_value(json_object_get(item, "merchantAccountCode"));
    if (!psp || !code || !adyen_id_ok(code) || strlen(code) > 64)
        return PAGOFLEX_ERR_INVALID;
    int ok = success && strcmp(success, "true") == 0;
    const char *orig = adyen_id_field(host, arena, item, "originalReference");
    const char *mref = adyen_id_field(host, arena, item, "merchantReference");
    json_t *amount = json_object_get(item, "amount");
    json_int_t v = json_integer_value(json_object_get(amount, "value"));
    const char *cur = json_string_value(json_object_get(amount, "currency"));
    const char *reason = adyen_text(host, arena, json_string_value(json_object_get(item, "reason")));
    ev->type = host->arena_strdup(arena, code);
    ev->kind = PAGOFLEX_EVENT_IGNORED;
    /* Adyen has no event id. The pspReference names the payment
     * (AUTHORISATION) or the modification (CAPTURE, CANCELLATION, REFUND);
     * CAPTURE_FAILED and REFUND_FAILED reuse the modification's, and other
     * codes (PENDING, CHARGEBACK, ...) the payment's, so they get the code
     * appended. Adyen's retries of one item keep its fields: same id. */
    int primary = strcmp(code, "AUTHORISATION") == 0 || strcmp(code, "CAPTURE") == 0 ||
                  strcmp(code, "CANCELLATION") == 0 || strcmp(code, "REFUND") == 0;
    ev->event_id = primary ? psp : host->arena_printf(arena, "%s.%s", psp, code);
    if (!ev->type || !ev->event_id)
        return PAGOFLEX_ERR_NOMEM;
    if (mac && strcmp(mac, st->merchant) != 0)
        return PAGOFLEX_OK; /* another merchant account of the company: not ours */
    int64_t minor = adyen_from_value(host, (int64_t)v, cur);
    if (strcmp(code, "AUTHORISATION") == 0) {
        ev->kind = PAGOFLEX_EVENT_PAYMENT;
        ev->tx_id = psp;
        ev->payment_id = mref;
        if (ok) {
            /* Whether Adyen captures by itself: the metadata we sent on
             * /payments, echoed in additionalData; without it, only an
             * authorisation is proven. */
            const char *mode = json_string_value(json_object_get(
                json_object_get(item, "additionalData"), "metadata.pagoflexCapture"));
            int autocap = mode ? strcmp(mode, "auto") == 0 : !adyen_has_operation(item, "CAPTURE");
            ev->state = autocap ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_REQUIRES_CAPTURE;
            ev->amount = autocap ? minor : 0;
        } else {
            ev->state = PAGOFLEX_STATE_FAILED;
            ev->error_code = "refused";
            ev->error_message = reason;
        }
    } else if (strcmp(code, "CAPTURE") == 0 || strcmp(code, "CAPTURE_FAILED") == 0 ||
               strcmp(code, "CANCELLATION") == 0) {
        int cancel = code[1] == 'A' && code[2] == 'N';
        int done = ok && strcmp(code, "CAPTURE_FAILED") != 0;
        ev->kind = PAGOFLEX_EVENT_PAYMENT;
        ev->tx_id = orig;
        ev->payment_id = mref;
        /* A capture or cancel Adyen refused leaves the authorisation held. */
        ev->state = !done ? PAGOFLEX_STATE_REQUIRES_CAPTURE
                    : cancel ? PAGOFLEX_STATE_CANCELED
                             : PAGOFLEX_STATE_SUCCEEDED;
        ev->amount = done && !cancel ? minor : 0;
        if (!done) {
            ev->error_code = cancel ? "cancel_failed" : "capture_failed";
            ev->error_message = reason;
        }
    } else if (strcmp(code, "REFUND") == 0 || strcmp(code, "REFUND_FAILED") == 0) {
        int done = ok && strcmp(code, "REFUND") == 0;
        ev->kind = PAGOFLEX_EVENT_REFUND;
        ev->tx_id = orig;
        ev->refund_provider_reference_id = psp;
        ev->refund_id = mref; /* the reference we sent on /refunds */
        ev->state = done ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_FAILED;
        ev->amount = minor;
        if (!done) {
            ev->error_code = "refund_failed";
            ev->error_message = reason;
        }
    }
    if (ev->kind == PAGOFLEX_EVENT_PAYMENT && !ev->payment_id && !ev->tx_id)
        return PAGOFLEX_ERR_INVALID;
    return PAGOFLEX_OK;
}

/* Parse a verified delivery into one event per item and ask for the
 * "[accepted]" answer Adyen requires. PAGOFLEX_ERR_INVALID on garbage. */
static int adyen_webhook_parse(void *state, const pagoflex_webhook_request *req,
                               pagoflex_arena *arena, pagoflex_webhook_parsed *out)
{
    const adyen_state *st = state;
    if (!st || !req || !arena || !out || !req->body || !req->body_len ||
        req->body_len > ADYEN_BODY_MAX)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int rc = PAGOFLEX_ERR_INVALID;
    json_t *j = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *items = adyen_items(j);
    size_t n = json_array_size(items);
    pagoflex_event *evs = items ? host->arena_alloc(arena, n * sizeof *evs) : NULL;
    if (!items)
        goto done;
    if (!evs) {
        rc = PAGOFLEX_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_object_get(json_array_get(items, i), "NotificationRequestItem");
        if ((rc = adyen_event(st, arena, item, &evs[i])) != PAGOFLEX_OK)
            goto done;
    }
    out->events = evs;
    out->event_count = n;
    if (PAGOFLEX_HAS_FIELD(out, pagoflex_webhook_parsed, answer_body_len)) {
        out->answer_status = 200;
        out->answer_content_type = "text/plain";
        out->answer_body = (const unsigned char *)ADYEN_ANSWER;
        out->answer_body_len = strlen(ADYEN_ANSWER);
    }
    rc = PAGOFLEX_OK;
done:
    json_decref(j);
    return rc;
}

/* The eventCode and success webhook_sample writes for e, or NULL when
 * Adyen never sends such an event (look-ups, other states). */
static const char *adyen_sample_code(const pagoflex_event *e, int *success)
{
    *success = 1;
    if (e->look_up || e->kind == PAGOFLEX_EVENT_IGNORED)
        return NULL; /* Adyen's other codes get an id webhook_sample cannot give back */
    if (e->kind == PAGOFLEX_EVENT_REFUND) {
        *success = e->state == PAGOFLEX_STATE_SUCCEEDED;
        return e->state == PAGOFLEX_STATE_SUCCEEDED || e->state == PAGOFLEX_STATE_FAILED
                   ? "REFUND"
                   : NULL;
    }
    switch (e->state) {
    case PAGOFLEX_STATE_SUCCEEDED:
        return "CAPTURE";
    case PAGOFLEX_STATE_CANCELED:
        return "CANCELLATION";
    case PAGOFLEX_STATE_REQUIRES_CAPTURE:
        return "AUTHORISATION";
    case PAGOFLEX_STATE_FAILED:
        *success = 0;
        return "AUTHORISATION";
    default:
        return NULL;
    }
}

/* Test support: a one-item delivery of e, signed with ADYEN_HMAC_KEY (and
 * Basic auth when configured). The item's pspReference is e->event_id (the
 * id the parser gives back); CAPTURE, CANCELLATION and REFUND items name the
 * payment by originalReference = e->tx_id. Amounts are written in EUR. */
static int adyen_webhook_sample(void *state, const pagoflex_event *e, int64_t now,
                                pagoflex_arena *arena, pagoflex_webhook_request *out)
{
    const adyen_state *st = state;
    (void)now; /* Adyen signs no time */
    if (!st || !e || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int success = 1;
    const char *code = adyen_sample_code(e, &success);
    int auth = code && strcmp(code, "AUTHORISATION") == 0;
    const char *mref = e->kind == PAGOFLEX_EVENT_REFUND ? e->refund_id : e->payment_id;
    if (!code || !adyen_id_ok(e->event_id) || (!auth && e->tx_id && !adyen_id_ok(e->tx_id)) ||
        (mref && !adyen_id_ok(mref)))
        return PAGOFLEX_ERR_UNSUPPORTED;
    /* Signed fields first and unsigned ones (eventDate, reason) last, so
     * most of the body is covered by the HMAC. */
    json_t *item = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}, s:s, s:s}", "eventCode", code,
                             "success", success ? "true" : "false", "pspReference", e->event_id,
                             "amount", "value", (json_int_t)(e->amount > 0 ? e->amount : 0),
                             "currency", "EUR", "merchantAccountCode", st->merchant,
                             "merchantReference", mref ? mref : "");
    if (item && !auth && e->tx_id)
        json_object_set_new(item, "originalReference", json_string(e->tx_id));
    const char *data = item ? adyen_signed_data(host, arena, item) : NULL;
    const char *sig = data ? adyen_hmac_b64(host, arena, st->key, st->key_len, data) : NULL;
    json_t *ad = sig ? json_pack("{s:s}", "hmacSignature", sig) : NULL;
    if (ad && auth && success)
        json_object_set_new(ad, "metadata.pagoflexCapture", json_string("manual"));
    /* json_object_set_new steals ad even when it fails. */
    int built = ad && json_object_set_new(item, "additionalData", ad) == 0;
    if (built && !success && e->error_code)
        json_object_set_new(item, "reason", json_string(e->error_code));
    if (built)
        json_object_set_new(item, "eventDate", json_string("2026-01-01T00:00:00+01:00"));
    if (!built) {
        json_decref(item);
        return PAGOFLEX_ERR_NOMEM;
    }
    const char *body = NULL;
    size_t body_len = 0;
    int rc = adyen_body(host, arena,
                        json_pack("{s:s, s:[{s:o}]}", "live", "false", "notificationItems",
                                  "NotificationRequestItem", item),
                        &body, &body_len);
    if (rc != PAGOFLEX_OK)
        return rc;
    pagoflex_header *h = host->arena_alloc(arena, 2 * sizeof *h);
    if (!h)
        return PAGOFLEX_ERR_NOMEM;
    h[0] = (pagoflex_header){"Content-Type", "application/json"};
    if (st->basic)
        h[1] = (pagoflex_header){"Authorization", host->arena_strdup(arena, st->basic)};
    if (st->basic && !h[1].value)
        return PAGOFLEX_ERR_NOMEM;
    out->method = "POST";
    out->path = "/webhooks/adyen";
    out->query = "";
    out->headers = h;
    out->header_count = st->basic ? 2 : 1;
    out->body = (const unsigned char *)body;
    out->body_len = body_len;
    return PAGOFLEX_OK;
}

/* ------------------------------------------- 1.0 / 1.1 hosts: thin wrappers */

static pagoflex_flow_input adyen_old_input(const pagoflex_payment *p)
{
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in, .flow = PAGOFLEX_FLOW_AUTHORIZE,
                              .payment = p, .operation_id = p ? p->id : NULL, .capture = 1};
    return in;
}

/* A 1.0 host creates with automatic capture and no payment method of its
 * own: the token then comes from nowhere, so build_request can only work
 * with ADYEN_RETURN_URL set and a payment whose reference is a stored
 * payment method id (documented in README.md). */
static int adyen_build_request(void *state, const pagoflex_payment *p, pagoflex_arena *arena,
                               pagoflex_http_request *out)
{
    pagoflex_flow_input in = adyen_old_input(p);
    in.payment_method_token = p ? p->reference : NULL;
    return adyen_flow_request(state, &in, arena, out);
}

/* A 1.0 host cannot redirect: REQUIRES_ACTION stays unknown there. */
static int adyen_handle_response(void *state, const pagoflex_payment *p,
                                 const pagoflex_http_response *resp, pagoflex_arena *arena,
                                 pagoflex_payment_result *out)
{
    pagoflex_flow_input in = adyen_old_input(p);
    pagoflex_flow_result r = {.size = (uint32_t)sizeof r};
    int rc = adyen_flow_response(state, &in, resp, arena, &r);
    if (rc != PAGOFLEX_OK)
        return rc;
    out->state = r.state == PAGOFLEX_STATE_REQUIRES_ACTION || r.state ==
                 PAGOFLEX_STATE_REQUIRES_CAPTURE ? PAGOFLEX_STATE_PROCESSING : r.state;
    out->provider_reference_id = r.provider_reference_id;
    out->error_code = r.error_code;
    out->error_message = r.error_message;
    return PAGOFLEX_OK;
}

static int adyen_verify_webhook(void *state, const pagoflex_header *headers,
                                size_t header_count, const unsigned char *body, size_t body_len,
                                pagoflex_arena *arena)
{
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                    .path = "/webhooks/adyen", .query = "", .headers = headers,
                                    .header_count = header_count, .body = body,
                                    .body_len = body_len};
    return adyen_webhook_verify(state, &req, arena);
}

/* A 1.0 host takes one payment event: the first with a final state. */
static int adyen_parse_webhook(void *state, const unsigned char *body, size_t body_len,
                               pagoflex_arena *arena, pagoflex_webhook_event *out)
{
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                    .path = "/webhooks/adyen", .query = "", .body = body,
                                    .body_len = body_len};
    pagoflex_webhook_parsed parsed = {.size = (uint32_t)sizeof parsed};
    int rc = adyen_webhook_parse(state, &req, arena, &parsed);
    if (rc != PAGOFLEX_OK)
        return rc;
    for (size_t i = 0; i < parsed.event_count; i++) {
        const pagoflex_event *e = &parsed.events[i];
        if (e->kind != PAGOFLEX_EVENT_PAYMENT || e->state == PAGOFLEX_STATE_REQUIRES_CAPTURE)
            continue;
        pagoflex_webhook_event ev = {.event_id = e->event_id, .tx_id = e->tx_id,
                                     .payment_id = e->payment_id, .state = e->state,
                                     .error_code = e->error_code,
                                     .error_message = e->error_message};
        *out = ev;
        return PAGOFLEX_OK;
    }
    return PAGOFLEX_ERR_UNSUPPORTED;
}

/* ------------------------------------------------------------- descriptor */

static const struct pagoflex_connector adyen_connector = {
    PAGOFLEX_CONNECTOR_HEADER,
    .key = "ADYEN",
    .webhook_path = "adyen",
    .version = "0.1.0",
    .required_credentials = adyen_required,
    .currencies = NULL, /* any currency Adyen and ISO 4217 both know */
    .init = adyen_init,
    .fini = adyen_fini,
    .build_request = adyen_build_request,
    .handle_response = adyen_handle_response,
    .verify_webhook = adyen_verify_webhook,
    .parse_webhook = adyen_parse_webhook,
    .flows = PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_CAPTURE) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_VOID) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND),
    .flow_request = adyen_flow_request,
    .flow_response = adyen_flow_response,
    .webhook_verify = adyen_webhook_verify,
    .webhook_parse = adyen_webhook_parse,
    .webhook_sample = adyen_webhook_sample,
    .settings = adyen_settings,
};

PAGOFLEX_DEFINE_CONNECTOR(adyen_connector)
