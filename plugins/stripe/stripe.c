/*
 * stripe.c - the Stripe (PaymentIntents) connector for Pagoflex, ABI 1.2.
 *
 * Built out of tree against the installed SDK (find_package(PagoflexSDK)).
 * Every call is form-encoded (application/x-www-form-urlencoded, nested
 * parameters as metadata[k]=v), authenticated with
 * "Authorization: Bearer <STRIPE_SECRET_KEY>" and, for every POST, made
 * idempotent with "Idempotency-Key: <operation id>":
 *
 *   AUTHORIZE     POST /v1/payment_intents  amount, currency (lower case),
 *                 capture_method=automatic|manual, payment_method_types[]=card,
 *                 metadata[pagoflex_payment_id]; with a card token also
 *                 confirm=true, payment_method=pm_... (or payment_method_data
 *                 for a tok_... token) and return_url
 *   CAPTURE       POST /v1/payment_intents/{pi}/capture  amount_to_capture
 *   VOID          POST /v1/payment_intents/{pi}/cancel
 *   REFUND        POST /v1/refunds  payment_intent, amount, reason?,
 *                 metadata[pagoflex_refund_id], metadata[pagoflex_payment_id]
 *   PAYMENT_SYNC  GET  /v1/payment_intents/{pi}
 *   REFUND_SYNC   GET  /v1/refunds/{re}
 *
 * Amounts: ours are ISO 4217 minor units; Stripe's are its own "smallest
 * unit", which differs for some currencies (README.md, "Currencies"). What
 * cannot be expressed exactly is refused with PAGOFLEX_ERR_UNSUPPORTED.
 *
 * Answers map conservatively: only Stripe's own definite refusal is
 * FAILED; a timeout, 429, 5xx, api_error, idempotency_error, 409 or an
 * unreadable body is PROCESSING.
 *
 * Webhooks: Stripe-Signature "t=<unix>,v1=<hex>[,v1=<hex>...]", the hex
 * HMAC-SHA256 of "<t>.<raw body>" under STRIPE_WEBHOOK_SECRET (the whole
 * "whsec_..." string is the key); any v1 may match (secret rotation); t
 * within 300 s of the host's clock. One event per delivery.
 *
 * Everything returned lives in the call's arena. No library type crosses
 * the boundary; the plugin links against no host symbol.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <pagoflex/connector.h>

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define STRIPE_DEFAULT_BASE_URL "https://api.stripe.com"
#define STRIPE_SIG_HEADER "Stripe-Signature"
#define STRIPE_TOLERANCE_S 300
#define STRIPE_ID_MAX 255
#define STRIPE_BODY_MAX (1024 * 1024)
#define STRIPE_SIG_MAX 16   /* v1 entries looked at in one header */
#define STRIPE_REFUNDS_MAX 100
#define STRIPE_PAIRS_MAX 16

typedef struct stripe_state {
    const pagoflex_host_services *host;
    char *secret_key;     /* STRIPE_SECRET_KEY, wiped in fini */
    char *webhook_secret; /* STRIPE_WEBHOOK_SECRET, wiped in fini */
    char *auth;           /* "Bearer <key>", wiped in fini */
    char *base_url;       /* no trailing '/' */
} stripe_state;

static const char *const stripe_required[] = {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
                                              NULL};
static const char *const stripe_settings[] = {"STRIPE_BASE_URL", NULL};

/* ------------------------------------------------------------- currencies */

/* Stripe's zero-decimal currencies (docs.stripe.com/currencies#zero-decimal). */
static const char *const stripe_zero_decimal[] = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF",
                                                  "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                                                  "VUV", "XAF", "XOF", "XPF", NULL};
/* Three-decimal currencies: the last digit must be 0 (#three-decimal). */
static const char *const stripe_three_decimal[] = {"BHD", "JOD", "KWD", "OMR", "TND", NULL};

static int stripe_in(const char *const *list, const char *cur)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], cur) == 0)
            return 1;
    return 0;
}

/* The exponent of Stripe's API unit for cur (ISK stays two-decimal in the
 * API though only whole krónur are charged). */
static int stripe_exponent(const char *cur)
{
    if (stripe_in(stripe_zero_decimal, cur))
        return 0;
    if (stripe_in(stripe_three_decimal, cur))
        return 3;
    return 2;
}

static int64_t stripe_pow10(int n)
{
    int64_t p = 1;
    while (n-- > 0)
        p *= 10;
    return p;
}

/* Our ISO minor amount in Stripe's unit into *out. PAGOFLEX_ERR_UNSUPPORTED
 * for an unknown currency or an amount Stripe cannot take exactly. */
static int stripe_to_api(const pagoflex_host_services *host, const char *cur, int64_t minor,
                         int64_t *out)
{
    int iso = cur ? host->currency_exponent(cur) : -1;
    if (iso < 0 || iso > 4 || minor <= 0)
        return PAGOFLEX_ERR_UNSUPPORTED;
    int se = stripe_exponent(cur);
    int64_t v;
    if (se >= iso) {
        int64_t f = stripe_pow10(se - iso);
        if (minor > INT64_MAX / f)
            return PAGOFLEX_ERR_UNSUPPORTED;
        v = minor * f;
    } else {
        int64_t f = stripe_pow10(iso - se);
        if (minor % f != 0)
            return PAGOFLEX_ERR_UNSUPPORTED; /* e.g. MGA with ariary fractions */
        v = minor / f;
    }
    /* ISK: whole krónur only (multiples of 100); three-decimal: last digit 0. */
    if ((strcmp(cur, "ISK") == 0 && v % 100 != 0) || (se == 3 && v % 10 != 0))
        return PAGOFLEX_ERR_UNSUPPORTED;
    *out = v;
    return PAGOFLEX_OK;
}

/* Stripe's amount in cur back to ISO minor units; 0 when it cannot be
 * said exactly (or is absent). */
static int64_t stripe_from_api(const pagoflex_host_services *host, const char *cur,
                               json_int_t v)
{
    char up[4];
    if (!cur || strlen(cur) != 3 || v <= 0)
        return 0;
    for (int i = 0; i < 3; i++)
        up[i] = (char)toupper((unsigned char)cur[i]);
    up[3] = '\0';
    int iso = host->currency_exponent(up);
    if (iso < 0 || iso > 4)
        return 0;
    int se = stripe_exponent(up);
    if (iso >= se) {
        int64_t f = stripe_pow10(iso - se);
        return v > INT64_MAX / f ? 0 : (int64_t)v * f;
    }
    int64_t f = stripe_pow10(se - iso);
    return v % f == 0 ? (int64_t)(v / f) : 0;
}

/* ---------------------------------------------------------------- helpers */

/* 1..STRIPE_ID_MAX characters of [A-Za-z0-9_.-]: safe in URLs and logs. */
static int stripe_id_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > STRIPE_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static const char *stripe_id_field(const pagoflex_host_services *host, pagoflex_arena *arena,
                                   json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && stripe_id_ok(s) ? host->arena_strdup(arena, s) : NULL;
}

static int stripe_streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* ------------------------------------------------------------ init / fini */

static void stripe_wipe_free(const pagoflex_host_services *host, char *s)
{
    if (s) {
        host->wipe(s, strlen(s));
        free(s);
    }
}

static void stripe_state_free(stripe_state *st)
{
    if (!st)
        return;
    stripe_wipe_free(st->host, st->secret_key);
    stripe_wipe_free(st->host, st->webhook_secret);
    stripe_wipe_free(st->host, st->auth);
    free(st->base_url);
    free(st);
}

/* Copy the credentials and the STRIPE_BASE_URL setting (a setting, else a
 * credential of that name, else api.stripe.com) into a new state.
 * PAGOFLEX_ERR_CREDENTIALS when a key is missing or the URL is not http(s)
 * (the log names what, never a value). */
static int stripe_init(const pagoflex_host_services *host, const pagoflex_credentials *creds,
                       void **state)
{
    if (!host || !state || !PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, currency_exponent) ||
        !host->currency_exponent || !host->form_encode)
        return PAGOFLEX_ERR_INTERNAL;
    int rc = PAGOFLEX_ERR_NOMEM;
    stripe_state *st = calloc(1, sizeof *st);
    if (!st)
        goto fail;
    st->host = host;
    const char *key = host->credential(creds, "STRIPE_SECRET_KEY");
    const char *wh = host->credential(creds, "STRIPE_WEBHOOK_SECRET");
    if (!key || !*key || !wh || !*wh) {
        host->log(host, PAGOFLEX_LOG_ERROR, "credential %s is missing or empty",
                  !key || !*key ? "STRIPE_SECRET_KEY" : "STRIPE_WEBHOOK_SECRET");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    const char *base = host->setting ? host->setting(creds, "STRIPE_BASE_URL") : NULL;
    if (!base || !*base)
        base = host->credential(creds, "STRIPE_BASE_URL");
    size_t kl = strlen(key);
    if (!(st->secret_key = strdup(key)) || !(st->webhook_secret = strdup(wh)) ||
        !(st->auth = malloc(kl + 8)) ||
        !(st->base_url = strdup(base && *base ? base : STRIPE_DEFAULT_BASE_URL)))
        goto fail;
    memcpy(st->auth, "Bearer ", 7);
    memcpy(st->auth + 7, key, kl + 1);
    size_t n = strlen(st->base_url);
    while (n > 0 && st->base_url[n - 1] == '/')
        st->base_url[--n] = '\0';
    if (strncmp(st->base_url, "http://", 7) != 0 && strncmp(st->base_url, "https://", 8) != 0) {
        host->log(host, PAGOFLEX_LOG_ERROR, "setting STRIPE_BASE_URL must be an http(s) URL");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    *state = st;
    return PAGOFLEX_OK;
fail:
    stripe_state_free(st);
    return rc;
}

static void stripe_fini(void *state)
{
    stripe_state_free(state);
}

/* ---------------------------------------------------------- flow_request */

typedef struct stripe_form {
    pagoflex_header pairs[STRIPE_PAIRS_MAX];
    size_t n;
} stripe_form;

static void stripe_add(stripe_form *f, const char *name, const char *value)
{
    if (value && f->n < STRIPE_PAIRS_MAX)
        f->pairs[f->n++] = (pagoflex_header){name, value};
}

/* Describe in->flow's call. PAGOFLEX_ERR_UNSUPPORTED for a currency or an
 * amount Stripe cannot take exactly or an unknown flow; PAGOFLEX_ERR_INVALID
 * for a malformed id or no Stripe id to act on; PAGOFLEX_ERR_NOT_FOUND for
 * a sync with nothing to ask by yet. */
static int stripe_flow_request(void *state, const pagoflex_flow_input *in,
                               pagoflex_arena *arena, pagoflex_http_request *out)
{
    const stripe_state *st = state;
    if (!st || !in || !in->payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const pagoflex_payment *p = in->payment;
    const char *pi = p->provider_reference_id;
    pagoflex_http_request req = {.method = "POST", .timeout_ms = 30000};
    stripe_form f = {.n = 0};
    int64_t amount = 0;
    int rc;
    if (!stripe_id_ok(p->id) || !stripe_id_ok(in->operation_id))
        return PAGOFLEX_ERR_INVALID;
    switch (in->flow) {
    case PAGOFLEX_FLOW_AUTHORIZE: {
        if ((rc = stripe_to_api(host, p->currency, p->amount, &amount)) != PAGOFLEX_OK)
            return rc;
        char *cur = host->arena_strdup(arena, p->currency);
        if (!cur)
            return PAGOFLEX_ERR_NOMEM;
        for (char *c = cur; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        req.url = host->arena_printf(arena, "%s/v1/payment_intents", st->base_url);
        stripe_add(&f, "amount", host->arena_printf(arena, "%lld", (long long)amount));
        stripe_add(&f, "currency", cur);
        stripe_add(&f, "capture_method", in->capture ? "automatic" : "manual");
        stripe_add(&f, "payment_method_types[]", "card");
        stripe_add(&f, "metadata[pagoflex_payment_id]", p->id);
        stripe_add(&f, "metadata[pagoflex_reference]", p->reference);
        stripe_add(&f, "description", p->description);
        const char *tok = in->payment_method_token;
        if (tok) {
            /* A PaymentMethod id is confirmed as is; a legacy card token
             * (tok_...) goes in payment_method_data. Without a token the
             * customer confirms client-side (Stripe.js) and webhooks tell. */
            if (!stripe_id_ok(tok))
                return PAGOFLEX_ERR_INVALID;
            stripe_add(&f, "confirm", "true");
            if (strncmp(tok, "tok_", 4) == 0) {
                stripe_add(&f, "payment_method_data[type]", "card");
                stripe_add(&f, "payment_method_data[card][token]", tok);
            } else {
                stripe_add(&f, "payment_method", tok);
            }
            stripe_add(&f, "return_url", in->return_url);
        }
        break;
    }
    case PAGOFLEX_FLOW_CAPTURE:
        if (!stripe_id_ok(pi))
            return PAGOFLEX_ERR_INVALID;
        if ((rc = stripe_to_api(host, p->currency, in->amount, &amount)) != PAGOFLEX_OK)
            return rc;
        req.url = host->arena_printf(arena, "%s/v1/payment_intents/%s/capture", st->base_url, pi);
        stripe_add(&f, "amount_to_capture", host->arena_printf(arena, "%lld", (long long)amount));
        break;
    case PAGOFLEX_FLOW_VOID:
        if (!stripe_id_ok(pi))
            return PAGOFLEX_ERR_INVALID;
        req.url = host->arena_printf(arena, "%s/v1/payment_intents/%s/cancel", st->base_url, pi);
        break;
    case PAGOFLEX_FLOW_REFUND:
        if (!stripe_id_ok(pi))
            return PAGOFLEX_ERR_INVALID;
        if ((rc = stripe_to_api(host, p->currency, in->amount, &amount)) != PAGOFLEX_OK)
            return rc;
        req.url = host->arena_printf(arena, "%s/v1/refunds", st->base_url);
        stripe_add(&f, "payment_intent", pi);
        stripe_add(&f, "amount", host->arena_printf(arena, "%lld", (long long)amount));
        /* Stripe takes three reasons; anything else is kept as metadata. */
        if (stripe_streq(in->reason, "duplicate") || stripe_streq(in->reason, "fraudulent") ||
            stripe_streq(in->reason, "requested_by_customer"))
            stripe_add(&f, "reason", in->reason);
        else if (in->reason)
            stripe_add(&f, "metadata[pagoflex_reason]", in->reason);
        stripe_add(&f, "metadata[pagoflex_refund_id]",
                   in->refund_id ? in->refund_id : in->operation_id);
        stripe_add(&f, "metadata[pagoflex_payment_id]", p->id);
        break;
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
    case PAGOFLEX_FLOW_REFUND_SYNC: {
        int pay = in->flow == PAGOFLEX_FLOW_PAYMENT_SYNC;
        const char *id = pay ? pi : in->refund_provider_reference_id;
        if (!id)
            return PAGOFLEX_ERR_NOT_FOUND; /* nothing to ask Stripe by yet */
        if (!stripe_id_ok(id))
            return PAGOFLEX_ERR_INVALID;
        req.method = "GET";
        req.url = host->arena_printf(arena, "%s/v1/%s/%s", st->base_url,
                                     pay ? "payment_intents" : "refunds", id);
        break;
    }
    default:
        return PAGOFLEX_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; i < f.n; i++)
        if (!f.pairs[i].value)
            return PAGOFLEX_ERR_NOMEM;
    pagoflex_header *h = host->arena_alloc(arena, 3 * sizeof *h);
    if (!req.url || !h)
        return PAGOFLEX_ERR_NOMEM;
    h[0] = (pagoflex_header){"Authorization", st->auth};
    req.header_count = 1;
    if (strcmp(req.method, "POST") == 0) {
        const char *body = f.n ? host->form_encode(arena, f.pairs, f.n) : "";
        if (!body)
            return PAGOFLEX_ERR_NOMEM;
        h[1] = (pagoflex_header){"Idempotency-Key", in->operation_id};
        h[2] = (pagoflex_header){"Content-Type", "application/x-www-form-urlencoded"};
        req.header_count = 3;
        req.body = (const unsigned char *)body;
        req.body_len = strlen(body);
    }
    req.headers = h;
    *out = req;
    return PAGOFLEX_OK;
}

/* --------------------------------------------------------- flow_response */

/* The payment's state from a PaymentIntent object (AUTHORIZE, SYNC). */
static pagoflex_state stripe_pi_state(json_t *pi)
{
    const char *s = json_string_value(json_object_get(pi, "status"));
    if (!s)
        return PAGOFLEX_STATE_PROCESSING;
    if (strcmp(s, "succeeded") == 0)
        return PAGOFLEX_STATE_SUCCEEDED;
    if (strcmp(s, "requires_capture") == 0)
        return PAGOFLEX_STATE_REQUIRES_CAPTURE;
    if (strcmp(s, "requires_action") == 0)
        return PAGOFLEX_STATE_REQUIRES_ACTION;
    if (strcmp(s, "canceled") == 0)
        return PAGOFLEX_STATE_CANCELED;
    if (strcmp(s, "processing") == 0 || strcmp(s, "requires_confirmation") == 0)
        return PAGOFLEX_STATE_PENDING;
    if (strcmp(s, "requires_payment_method") == 0)
        /* After a failed attempt (a decline, a failed 3DS) the intent waits
         * for another method: this attempt is a definite no. Before any
         * attempt the customer has yet to pay (client-side confirmation). */
        return json_is_object(json_object_get(pi, "last_payment_error")) ? PAGOFLEX_STATE_FAILED
                                                                         : PAGOFLEX_STATE_PENDING;
    return PAGOFLEX_STATE_PROCESSING;
}

/* The refund's state from a Refund object. */
static pagoflex_state stripe_refund_state(json_t *re)
{
    const char *s = json_string_value(json_object_get(re, "status"));
    if (!s)
        return PAGOFLEX_STATE_PROCESSING;
    if (strcmp(s, "succeeded") == 0)
        return PAGOFLEX_STATE_SUCCEEDED;
    if (strcmp(s, "pending") == 0 || strcmp(s, "requires_action") == 0)
        return PAGOFLEX_STATE_PENDING;
    if (strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0)
        return PAGOFLEX_STATE_FAILED;
    return PAGOFLEX_STATE_PROCESSING;
}

/* The machine code of a Stripe error or a PaymentIntent's last error:
 * decline_code, else code, else type. */
static const char *stripe_err_code(const pagoflex_host_services *host, pagoflex_arena *arena,
                                   json_t *err)
{
    const char *c = stripe_id_field(host, arena, err, "decline_code");
    if (!c)
        c = stripe_id_field(host, arena, err, "code");
    if (!c)
        c = stripe_id_field(host, arena, err, "type");
    return c;
}

static const char *stripe_err_message(const pagoflex_host_services *host, pagoflex_arena *arena,
                                      json_t *err)
{
    const char *m = json_string_value(json_object_get(err, "message"));
    return m ? host->arena_strndup(arena, m, 300) : NULL;
}

/* Map Stripe's answer to in->flow's call (see pagoflex_flow_result). Never
 * FAILED while Stripe may have done the operation; PAGOFLEX_ERR_NOT_FOUND
 * only for a sync Stripe answers 404 invalid_request_error resource_missing. */
static int stripe_flow_response(void *state, const pagoflex_flow_input *in,
                                const pagoflex_http_response *resp, pagoflex_arena *arena,
                                pagoflex_flow_result *out)
{
    const stripe_state *st = state;
    if (!st || !in || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    pagoflex_flow flow = in->flow;
    int sync = flow == PAGOFLEX_FLOW_PAYMENT_SYNC || flow == PAGOFLEX_FLOW_REFUND_SYNC;
    int refund = flow == PAGOFLEX_FLOW_REFUND || flow == PAGOFLEX_FLOW_REFUND_SYNC;
    int status = resp->status, rc = PAGOFLEX_OK;
    pagoflex_state s = PAGOFLEX_STATE_PROCESSING; /* unless the answer proves more */
    const char *code = NULL, *msg = NULL, *ref = NULL, *redirect = NULL;
    int64_t amount = 0;
    json_t *j = NULL;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK || status < 200 || status == 429 ||
        status >= 500)
        goto done;
    if (resp->body && resp->body_len && resp->body_len <= STRIPE_BODY_MAX)
        j = json_loadb((const char *)resp->body, resp->body_len, 0, NULL);
    if (!json_is_object(j))
        goto done; /* garbage, a proxy's HTML page, an empty body: proves nothing */
    if (status >= 300) {
        json_t *err = json_object_get(j, "error");
        const char *type = json_string_value(json_object_get(err, "type"));
        if (!json_is_object(err) || !type)
            goto done; /* not Stripe's own words */
        const char *ecode = json_string_value(json_object_get(err, "code"));
        if (sync) {
            if (status == 404 && strcmp(type, "invalid_request_error") == 0 &&
                stripe_streq(ecode, "resource_missing"))
                rc = PAGOFLEX_ERR_NOT_FOUND;
            goto done; /* any other refusal of a read says nothing of the object */
        }
        /* api_error: Stripe's own trouble; idempotency_error (400) and 409:
         * the key was used before or is in use: the first attempt may have
         * worked. Only a refusal of this very request is a definite no. */
        if (strcmp(type, "card_error") != 0 && strcmp(type, "invalid_request_error") != 0)
            goto done;
        if (status != 400 && status != 401 && status != 402 && status != 403 && status != 404)
            goto done;
        s = PAGOFLEX_STATE_FAILED;
        code = stripe_err_code(host, arena, err);
        if (!code)
            code = "stripe_refused";
        msg = stripe_err_message(host, arena, err);
        if (flow == PAGOFLEX_FLOW_AUTHORIZE)
            ref = stripe_id_field(host, arena, json_object_get(err, "payment_intent"), "id");
        goto done;
    }
    const char *object = json_string_value(json_object_get(j, "object"));
    const char *cur = json_string_value(json_object_get(j, "currency"));
    if (refund) {
        if (!stripe_streq(object, "refund"))
            goto done;
        s = stripe_refund_state(j);
        ref = stripe_id_field(host, arena, j, "id");
        amount = stripe_from_api(host, cur, json_integer_value(json_object_get(j, "amount")));
        if (s == PAGOFLEX_STATE_FAILED) {
            code = stripe_id_field(host, arena, j, "failure_reason");
            if (!code)
                code = "refund_failed";
        }
        goto done;
    }
    if (!stripe_streq(object, "payment_intent"))
        goto done;
    pagoflex_state ps = stripe_pi_state(j);
    amount = stripe_from_api(host, cur, json_integer_value(json_object_get(j, "amount_received")));
    switch (flow) {
    case PAGOFLEX_FLOW_CAPTURE:
        s = ps == PAGOFLEX_STATE_SUCCEEDED ? PAGOFLEX_STATE_SUCCEEDED
            : ps == PAGOFLEX_STATE_PENDING ? PAGOFLEX_STATE_PENDING
                                           : PAGOFLEX_STATE_PROCESSING;
        break;
    case PAGOFLEX_FLOW_VOID:
        s = ps == PAGOFLEX_STATE_CANCELED ? PAGOFLEX_STATE_SUCCEEDED : PAGOFLEX_STATE_PROCESSING;
        amount = 0;
        break;
    default: /* AUTHORIZE, PAYMENT_SYNC */
        s = ps;
        ref = stripe_id_field(host, arena, j, "id");
        if (s == PAGOFLEX_STATE_REQUIRES_ACTION) {
            json_t *na = json_object_get(j, "next_action");
            const char *url = json_string_value(
                json_object_get(json_object_get(na, "redirect_to_url"), "url"));
            if (stripe_streq(json_string_value(json_object_get(na, "type")), "redirect_to_url") &&
                url && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) &&
                strlen(url) < 2048)
                redirect = host->arena_strdup(arena, url);
            if (!redirect)
                s = PAGOFLEX_STATE_PROCESSING; /* use_stripe_sdk etc.: nowhere to send them */
        }
        if (s == PAGOFLEX_STATE_FAILED) {
            json_t *lpe = json_object_get(j, "last_payment_error");
            code = stripe_err_code(host, arena, lpe);
            msg = stripe_err_message(host, arena, lpe);
            if (!code)
                code = "payment_failed";
        }
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

/* Raw HMAC-SHA256 of "<t>.<body>" under the webhook secret into mac. */
static int stripe_mac(const stripe_state *st, pagoflex_arena *arena, const char *t, size_t tl,
                      const unsigned char *body, size_t body_len, unsigned char mac[32])
{
    const pagoflex_host_services *host = st->host;
    unsigned char *msg = host->arena_alloc(arena, tl + 1 + body_len + 1);
    if (!msg)
        return PAGOFLEX_ERR_NOMEM;
    memcpy(msg, t, tl);
    msg[tl] = '.';
    if (body_len)
        memcpy(msg + tl + 1, body, body_len);
    return host->hmac_sha256(st->webhook_secret, strlen(st->webhook_secret), msg,
                             tl + 1 + body_len, mac);
}

/* PAGOFLEX_OK when Stripe-Signature has t within STRIPE_TOLERANCE_S of the
 * host clock and at least one v1 that is the HMAC of "<t>.<body>"; else
 * PAGOFLEX_ERR_SIGNATURE. Every v1 is compared in constant time. */
static int stripe_webhook_verify(void *state, const pagoflex_webhook_request *req,
                                 pagoflex_arena *arena)
{
    const stripe_state *st = state;
    if (!st || !req || !arena || (!req->body && req->body_len))
        return PAGOFLEX_ERR_SIGNATURE;
    const pagoflex_host_services *host = st->host;
    const char *hdr = host->header_get(req->headers, req->header_count, STRIPE_SIG_HEADER);
    const char *t = NULL;
    size_t tl = 0;
    const char *sigs[STRIPE_SIG_MAX];
    size_t nsig = 0;
    if (!hdr || strlen(hdr) > 4096)
        goto refused;
    for (const char *p = hdr; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 2 && p[0] == 't' && p[1] == '=' && !t) {
            t = p + 2;
            tl = len - 2;
        } else if (len == 3 + 64 && strncmp(p, "v1=", 3) == 0 && nsig < STRIPE_SIG_MAX) {
            sigs[nsig++] = p + 3;
        }
        p += len + (end ? 1 : 0);
    }
    if (!t || tl > 18 || nsig == 0)
        goto refused;
    long long ts = 0;
    for (size_t i = 0; i < tl; i++) {
        if (!isdigit((unsigned char)t[i]))
            goto refused;
        ts = ts * 10 + (t[i] - '0');
    }
    long long now = (long long)host->now();
    if (ts < now - STRIPE_TOLERANCE_S || ts > now + STRIPE_TOLERANCE_S)
        goto refused;
    unsigned char want[32], got[32];
    int rc = stripe_mac(st, arena, t, tl, req->body, req->body_len, want);
    if (rc != PAGOFLEX_OK)
        return PAGOFLEX_ERR_INTERNAL;
    int ok = 0;
    for (size_t i = 0; i < nsig; i++) {
        size_t gl = 0;
        if (host->hex_decode(sigs[i], 64, got, sizeof got, &gl) == PAGOFLEX_OK && gl == 32)
            ok |= host->ct_equal(got, want, sizeof want);
    }
    host->wipe(want, sizeof want);
    if (ok)
        return PAGOFLEX_OK;
refused:
    host->log(host, PAGOFLEX_LOG_WARN,
              "webhook refused: missing, stale or wrong " STRIPE_SIG_HEADER
              " (check STRIPE_WEBHOOK_SECRET is this endpoint's signing secret)");
    return PAGOFLEX_ERR_SIGNATURE;
}

typedef struct stripe_type {
    const char *type;
    pagoflex_event_kind kind;
    int look_up;
    pagoflex_state state; /* PROCESSING: from the object's status */
} stripe_type;

static const stripe_type stripe_types[] = {
    {"payment_intent.succeeded", PAGOFLEX_EVENT_PAYMENT, 0, PAGOFLEX_STATE_SUCCEEDED},
    {"payment_intent.payment_failed", PAGOFLEX_EVENT_PAYMENT, 0, PAGOFLEX_STATE_FAILED},
    {"payment_intent.amount_capturable_updated", PAGOFLEX_EVENT_PAYMENT, 0,
     PAGOFLEX_STATE_REQUIRES_CAPTURE},
    {"payment_intent.canceled", PAGOFLEX_EVENT_PAYMENT, 0, PAGOFLEX_STATE_CANCELED},
    {"payment_intent.processing", PAGOFLEX_EVENT_PAYMENT, 0, PAGOFLEX_STATE_PENDING},
    /* The event carries no redirect we could hand on: the host syncs. */
    {"payment_intent.requires_action", PAGOFLEX_EVENT_PAYMENT, 1, PAGOFLEX_STATE_PROCESSING},
    {"refund.created", PAGOFLEX_EVENT_REFUND, 0, PAGOFLEX_STATE_PROCESSING},
    {"refund.updated", PAGOFLEX_EVENT_REFUND, 0, PAGOFLEX_STATE_PROCESSING},
    {"charge.refund.updated", PAGOFLEX_EVENT_REFUND, 0, PAGOFLEX_STATE_PROCESSING},
    {"refund.failed", PAGOFLEX_EVENT_REFUND, 0, PAGOFLEX_STATE_FAILED},
};

/* A refund object into ev (kind REFUND). PAGOFLEX_ERR_INVALID when it
 * names no refund. */
static int stripe_refund_event(const pagoflex_host_services *host, pagoflex_arena *arena,
                               json_t *re, pagoflex_state forced, pagoflex_event *ev)
{
    json_t *md = json_object_get(re, "metadata");
    ev->kind = PAGOFLEX_EVENT_REFUND;
    ev->refund_provider_reference_id = stripe_id_field(host, arena, re, "id");
    ev->refund_id = stripe_id_field(host, arena, md, "pagoflex_refund_id");
    ev->payment_id = stripe_id_field(host, arena, md, "pagoflex_payment_id");
    ev->tx_id = stripe_id_field(host, arena, re, "payment_intent");
    ev->state = forced != PAGOFLEX_STATE_PROCESSING ? forced : stripe_refund_state(re);
    ev->amount = stripe_from_api(host, json_string_value(json_object_get(re, "currency")),
                                 json_integer_value(json_object_get(re, "amount")));
    if (ev->state == PAGOFLEX_STATE_FAILED) {
        ev->error_code = stripe_id_field(host, arena, re, "failure_reason");
        if (!ev->error_code)
            ev->error_code = "refund_failed";
    }
    return ev->refund_provider_reference_id || ev->refund_id ? PAGOFLEX_OK
                                                             : PAGOFLEX_ERR_INVALID;
}

/* Parse a verified delivery (one Stripe Event) into its events.
 * charge.refunded names each of the charge's refunds it lists; a type not
 * handled is IGNORED. PAGOFLEX_ERR_INVALID on garbage or an event that
 * names no object. */
static int stripe_webhook_parse(void *state, const pagoflex_webhook_request *req,
                                pagoflex_arena *arena, pagoflex_webhook_parsed *out)
{
    const stripe_state *st = state;
    if (!st || !req || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int rc = PAGOFLEX_ERR_INVALID;
    json_t *j = NULL;
    if (!req->body || !req->body_len || req->body_len > STRIPE_BODY_MAX)
        return PAGOFLEX_ERR_INVALID;
    j = json_loadb((const char *)req->body, req->body_len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *evt = stripe_id_field(host, arena, j, "id");
    json_t *obj = json_object_get(json_object_get(j, "data"), "object");
    if (!evt || !type || strlen(type) > 100 || !json_is_object(obj))
        goto done;
    const char *type_copy = host->arena_strdup(arena, type);
    pagoflex_event *evs = NULL;
    size_t n = 1;
    if (strcmp(type, "charge.refunded") == 0) {
        json_t *list = json_object_get(json_object_get(obj, "refunds"), "data");
        n = json_array_size(list);
        if (n > STRIPE_REFUNDS_MAX)
            goto done;
        if (n == 0) {
            /* API versions since 2022-11-15 do not list the refunds here;
             * refund.updated / charge.refund.updated name them. */
            n = 1;
            if (!(evs = host->arena_alloc(arena, sizeof *evs)))
                goto nomem;
            evs[0] = (pagoflex_event){.event_id = evt, .kind = PAGOFLEX_EVENT_IGNORED,
                                      .type = type_copy};
        } else {
            if (!(evs = host->arena_alloc(arena, n * sizeof *evs)))
                goto nomem;
            for (size_t i = 0; i < n; i++) {
                pagoflex_event *e = &evs[i];
                json_t *re = json_array_get(list, i);
                e->type = type_copy;
                if ((rc = stripe_refund_event(host, arena, re, PAGOFLEX_STATE_PROCESSING, e)) !=
                    PAGOFLEX_OK)
                    goto done;
                if (!e->tx_id) /* the charge names the intent */
                    e->tx_id = stripe_id_field(host, arena, obj, "payment_intent");
                /* One Stripe event, several refunds: one id per refund. */
                e->event_id = n == 1 ? evt
                                     : host->arena_printf(arena, "%s:%s", evt,
                                                          e->refund_provider_reference_id
                                                              ? e->refund_provider_reference_id
                                                              : e->refund_id);
                if (!e->event_id)
                    goto nomem;
            }
        }
    } else {
        if (!(evs = host->arena_alloc(arena, sizeof *evs)))
            goto nomem;
        pagoflex_event *e = &evs[0];
        e->event_id = evt;
        e->type = type_copy;
        e->kind = PAGOFLEX_EVENT_IGNORED; /* a type we do not handle: acknowledged */
        const stripe_type *t = NULL;
        for (size_t i = 0; i < sizeof stripe_types / sizeof stripe_types[0]; i++)
            if (strcmp(type, stripe_types[i].type) == 0)
                t = &stripe_types[i];
        if (t && t->kind == PAGOFLEX_EVENT_REFUND) {
            if ((rc = stripe_refund_event(host, arena, obj, t->state, e)) != PAGOFLEX_OK)
                goto done;
        } else if (t) {
            e->kind = PAGOFLEX_EVENT_PAYMENT;
            e->look_up = t->look_up;
            e->state = t->state;
            e->tx_id = stripe_id_field(host, arena, obj, "id");
            e->payment_id = stripe_id_field(host, arena, json_object_get(obj, "metadata"),
                                            "pagoflex_payment_id");
            if (!e->tx_id && !e->payment_id)
                goto done;
            const char *cur = json_string_value(json_object_get(obj, "currency"));
            if (t->state == PAGOFLEX_STATE_SUCCEEDED)
                e->amount = stripe_from_api(host, cur,
                                            json_integer_value(json_object_get(obj, "amount_received")));
            if (t->state == PAGOFLEX_STATE_FAILED) {
                json_t *lpe = json_object_get(obj, "last_payment_error");
                e->error_code = stripe_err_code(host, arena, lpe);
                e->error_message = stripe_err_message(host, arena, lpe);
                if (!e->error_code)
                    e->error_code = "payment_failed";
            }
        }
    }
    if (!type_copy)
        goto nomem;
    out->events = evs;
    out->event_count = n;
    rc = PAGOFLEX_OK;
    goto done;
nomem:
    rc = PAGOFLEX_ERR_NOMEM;
done:
    json_decref(j);
    return rc;
}

/* Test support (plugin check, webhook verify, the test kit): a Stripe
 * Event delivery for `e`, signed at `now` as Stripe signs.
 * PAGOFLEX_ERR_UNSUPPORTED for an event Stripe never sends. */
static int stripe_webhook_sample(void *state, const pagoflex_event *e, int64_t now,
                                 pagoflex_arena *arena, pagoflex_webhook_request *out)
{
    const stripe_state *st = state;
    if (!st || !e || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const char *type = NULL, *status = NULL;
    json_t *obj = NULL;
    if (!stripe_id_ok(e->event_id))
        return PAGOFLEX_ERR_UNSUPPORTED;
    if (e->kind == PAGOFLEX_EVENT_IGNORED) {
        type = e->type ? e->type : "customer.created";
        obj = json_pack("{s:s, s:s}", "id", "cus_sample", "object", "customer");
    } else if (e->kind == PAGOFLEX_EVENT_PAYMENT) {
        if (e->look_up) {
            type = "payment_intent.requires_action";
            status = "requires_action";
        } else {
            switch (e->state) {
            case PAGOFLEX_STATE_SUCCEEDED:
                type = "payment_intent.succeeded", status = "succeeded";
                break;
            case PAGOFLEX_STATE_FAILED:
                type = "payment_intent.payment_failed", status = "requires_payment_method";
                break;
            case PAGOFLEX_STATE_REQUIRES_CAPTURE:
                type = "payment_intent.amount_capturable_updated", status = "requires_capture";
                break;
            case PAGOFLEX_STATE_CANCELED:
                type = "payment_intent.canceled", status = "canceled";
                break;
            case PAGOFLEX_STATE_PENDING:
                type = "payment_intent.processing", status = "processing";
                break;
            default:
                return PAGOFLEX_ERR_UNSUPPORTED;
            }
        }
        int64_t amt = e->amount > 0 ? e->amount : 1050;
        obj = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:{s:s?}}", "id",
                        e->tx_id ? e->tx_id : "pi_sample", "object", "payment_intent", "status",
                        status, "amount", (json_int_t)amt, "amount_received",
                        (json_int_t)(e->state == PAGOFLEX_STATE_SUCCEEDED ? amt : 0), "currency",
                        "usd", "metadata", "pagoflex_payment_id", e->payment_id);
        if (obj && e->state == PAGOFLEX_STATE_FAILED && !e->look_up)
            json_object_set_new(obj, "last_payment_error",
                                json_pack("{s:s, s:s, s:s}", "type", "card_error", "code",
                                          "card_declined", "decline_code",
                                          e->error_code ? e->error_code : "generic_decline"));
    } else {
        if (e->look_up)
            return PAGOFLEX_ERR_UNSUPPORTED; /* Stripe's refund events carry the refund */
        type = "refund.updated";
        status = e->state == PAGOFLEX_STATE_SUCCEEDED ? "succeeded"
                 : e->state == PAGOFLEX_STATE_FAILED  ? "failed"
                 : e->state == PAGOFLEX_STATE_PENDING ? "pending"
                                                      : NULL;
        if (!status)
            return PAGOFLEX_ERR_UNSUPPORTED;
        if (e->state == PAGOFLEX_STATE_FAILED)
            type = "refund.failed";
        obj = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?, s:{s:s?, s:s?}}", "id",
                        e->refund_provider_reference_id ? e->refund_provider_reference_id
                                                        : "re_sample",
                        "object", "refund", "status", status, "amount",
                        (json_int_t)(e->amount > 0 ? e->amount : 500), "currency", "usd",
                        "payment_intent", e->tx_id, "metadata", "pagoflex_refund_id",
                        e->refund_id, "pagoflex_payment_id", e->payment_id);
    }
    json_t *ev = obj ? json_pack("{s:s, s:s, s:s, s:I, s:b, s:{s:o}}", "id", e->event_id, "object",
                                 "event", "type", type, "created", (json_int_t)now, "livemode", 0,
                                 "data", "object", obj)
                     : NULL;
    char *s = ev ? json_dumps(ev, JSON_INDENT(2)) : NULL;
    json_decref(ev);
    char *body = s ? host->arena_strdup(arena, s) : NULL;
    free(s);
    char *ts = host->arena_printf(arena, "%lld", (long long)now);
    pagoflex_header *h = host->arena_alloc(arena, 2 * sizeof *h);
    char *hex = host->arena_alloc(arena, 65);
    if (!body || !ts || !h || !hex)
        return PAGOFLEX_ERR_NOMEM;
    unsigned char mac[32];
    if (stripe_mac(st, arena, ts, strlen(ts), (const unsigned char *)body, strlen(body), mac) !=
        PAGOFLEX_OK)
        return PAGOFLEX_ERR_NOMEM;
    host->hex_encode(mac, sizeof mac, hex);
    host->wipe(mac, sizeof mac);
    h[0] = (pagoflex_header){"Content-Type", "application/json; charset=utf-8"};
    h[1] = (pagoflex_header){STRIPE_SIG_HEADER, host->arena_printf(arena, "t=%s,v1=%s", ts, hex)};
    if (!h[1].value)
        return PAGOFLEX_ERR_NOMEM;
    out->method = "POST";
    out->path = "/webhooks/stripe";
    out->query = "";
    out->headers = h;
    out->header_count = 2;
    out->body = (const unsigned char *)body;
    out->body_len = strlen(body);
    return PAGOFLEX_OK;
}

/* ------------------------------------------- 1.0 / 1.1 hosts: thin wrappers */

/* An old host hands no card token: the PaymentIntent is created for the
 * customer to confirm client-side, and its webhooks settle it. */
static pagoflex_flow_input stripe_old_input(const pagoflex_payment *p, pagoflex_flow flow)
{
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in, .flow = flow, .payment = p,
                              .operation_id = p ? p->id : NULL, .capture = 1};
    return in;
}

static int stripe_old_result(const pagoflex_flow_result *r, int sync, pagoflex_payment_result *out)
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

static int stripe_build_request(void *state, const pagoflex_payment *p, pagoflex_arena *arena,
                                pagoflex_http_request *out)
{
    pagoflex_flow_input in = stripe_old_input(p, PAGOFLEX_FLOW_AUTHORIZE);
    return stripe_flow_request(state, &in, arena, out);
}

static int stripe_handle_response(void *state, const pagoflex_payment *p,
                                  const pagoflex_http_response *resp, pagoflex_arena *arena,
                                  pagoflex_payment_result *out)
{
    pagoflex_flow_input in = stripe_old_input(p, PAGOFLEX_FLOW_AUTHORIZE);
    pagoflex_flow_result r = {.size = (uint32_t)sizeof r};
    int rc = stripe_flow_response(state, &in, resp, arena, &r);
    return rc == PAGOFLEX_OK ? stripe_old_result(&r, 0, out) : rc;
}

static int stripe_sync_request(void *state, const pagoflex_payment *p, pagoflex_arena *arena,
                               pagoflex_http_request *out)
{
    pagoflex_flow_input in = stripe_old_input(p, PAGOFLEX_FLOW_PAYMENT_SYNC);
    return stripe_flow_request(state, &in, arena, out);
}

static int stripe_sync_response(void *state, const pagoflex_payment *p,
                                const pagoflex_http_response *resp, pagoflex_arena *arena,
                                pagoflex_payment_result *out)
{
    pagoflex_flow_input in = stripe_old_input(p, PAGOFLEX_FLOW_PAYMENT_SYNC);
    pagoflex_flow_result r = {.size = (uint32_t)sizeof r};
    int rc = stripe_flow_response(state, &in, resp, arena, &r);
    return rc == PAGOFLEX_OK ? stripe_old_result(&r, 1, out) : rc;
}

static int stripe_verify_webhook(void *state, const pagoflex_header *headers,
                                 size_t header_count, const unsigned char *body,
                                 size_t body_len, pagoflex_arena *arena)
{
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                    .path = "/webhooks/stripe", .query = "", .headers = headers,
                                    .header_count = header_count, .body = body,
                                    .body_len = body_len};
    return stripe_webhook_verify(state, &req, arena);
}

/* A 1.0 host takes one payment event with a final or pending state;
 * PAGOFLEX_ERR_UNSUPPORTED for anything else (the host acknowledges it). */
static int stripe_parse_webhook(void *state, const unsigned char *body, size_t body_len,
                                pagoflex_arena *arena, pagoflex_webhook_event *out)
{
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                    .path = "/webhooks/stripe", .query = "", .body = body,
                                    .body_len = body_len};
    pagoflex_webhook_parsed parsed = {.size = (uint32_t)sizeof parsed};
    int rc = stripe_webhook_parse(state, &req, arena, &parsed);
    if (rc != PAGOFLEX_OK)
        return rc;
    for (size_t i = 0; i < parsed.event_count; i++) {
        const pagoflex_event *e = &parsed.events[i];
        if (e->kind != PAGOFLEX_EVENT_PAYMENT || e->look_up ||
            e->state == PAGOFLEX_STATE_REQUIRES_CAPTURE)
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

static const struct pagoflex_connector stripe_connector = {
    PAGOFLEX_CONNECTOR_HEADER,
    .key = "STRIPE",
    .webhook_path = "stripe",
    .version = "1.0.0",
    .required_credentials = stripe_required,
    .currencies = NULL, /* any Stripe takes exactly; flow_request refuses the rest */
    .init = stripe_init,
    .fini = stripe_fini,
    .execute_request = NULL,
    .build_request = stripe_build_request,
    .handle_response = stripe_handle_response,
    .verify_webhook = stripe_verify_webhook,
    .parse_webhook = stripe_parse_webhook,
    .sync_request = stripe_sync_request,
    .sync_response = stripe_sync_response,
    .flows = PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_CAPTURE) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_VOID) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_PAYMENT_SYNC) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND_SYNC),
    .flow_request = stripe_flow_request,
    .flow_response = stripe_flow_response,
    .webhook_verify = stripe_webhook_verify,
    .webhook_parse = stripe_webhook_parse,
    .webhook_sample = stripe_webhook_sample,
    .settings = stripe_settings,
};

PAGOFLEX_DEFINE_CONNECTOR(stripe_connector)
