/*
 * banco_x.c - the Banco X connector (see /work/shared/banco_x_api.md).
 *
 * Banco X accepts a payment at once (POST /pay) and reports the result later
 * through a webhook signed with HMAC-SHA256. This plugin only describes the
 * HTTP call (the host's libcurl executor performs it), maps the answer to a
 * payment state, and verifies and parses webhooks.
 *
 * Everything host-side comes through the pagoflex_host_services table given
 * to init; the plugin links against no host symbol. Jansson is used
 * internally only. The state built by init is read-only afterwards, so every
 * entry point may run concurrently on several threads.
 */
#include <pagoflex/connector.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define BX_DEFAULT_BASE_URL "https://api.bancox.com"
#define BX_BASE_URL_MAX 2048
#define BX_TIMEOUT_MS_MAX 600000L
#define BX_DESCRIPTION_MAX_CHARS 140
#define BX_ID_MAX 128          /* longest payment id / bank id we accept */
#define BX_TEXT_MAX_CHARS 200  /* longest bank error text we keep */
#define BX_JSON_MAX (64 * 1024) /* bank answers and webhooks are small */
#define BX_SIG_HEADER "X-BancoX-Signature"
#define BX_SIG_HEADER_MAX 1024
#define BX_SIG_MAX_V1 8
#define BX_SIG_TOLERANCE_S 300
#define BX_MSG_MAX 512

typedef struct bx_state {
    const pagoflex_host_services *host;
    char *api_key;
    char *secret;
    char *secret_prev; /* NULL unless a secret rotation is in progress */
    char *base_url;    /* no trailing '/' */
    long timeout_ms;   /* 0: the host's default */
} bx_state;

/* A parsed X-BancoX-Signature header; pointers into the header value. */
typedef struct bx_sig {
    const char *t;
    size_t t_len;
    int64_t ts;
    const char *v1[BX_SIG_MAX_V1];
    size_t v1_len[BX_SIG_MAX_V1];
    size_t v1_count;
} bx_sig;

static const char *const bx_required[] = {"BANCOX_API_KEY", "BANCOX_SECRET", NULL};
static const char *const bx_currencies[] = {"ARS", "BRL", "CLP", "COP", "MXN",
                                            "PEN", "USD", "UYU", NULL};

/* ---------------------------------------------------------------- helpers */

/* True when s[0..len) is 1..max bytes of printable ASCII without spaces:
 * safe in an HTTP header value, a URL path and a log line. */
static int bx_token_ok(const char *s, size_t len, size_t max)
{
    if (!s || len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* Length in bytes of one UTF-8 sequence starting at p[0] (at most `avail`
 * bytes readable), or 0 if it is not a valid, shortest-form sequence. */
static size_t bx_utf8_seq(const unsigned char *p, size_t avail)
{
    size_t n;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t k = 1; k < n; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0; /* overlong, surrogate, or beyond U+10FFFF */
    return n;
}

/* Byte length of the first `max_chars` characters of the UTF-8 text
 * s[0..len), never cutting a multi-byte sequence. -1 if the part kept is
 * not valid UTF-8. */
static int bx_utf8_prefix(const char *s, size_t len, size_t max_chars, size_t *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (size_t chars = 0; i < len && chars < max_chars; chars++) {
        size_t n = bx_utf8_seq(p + i, len - i);
        if (n == 0)
            return -1;
        i += n;
    }
    *out = i;
    return 0;
}

static int bx_currency_supported(const char *currency)
{
    if (!currency)
        return 0;
    for (size_t i = 0; bx_currencies[i]; i++)
        if (strcmp(currency, bx_currencies[i]) == 0)
            return 1;
    return 0;
}

/* Copy of a Jansson string value into the arena, or NULL when `v` is not a
 * string, is empty, holds a NUL byte or is longer than `max` bytes. */
static const char *bx_json_text(const pagoflex_host_services *host, pagoflex_arena *arena,
                                const json_t *v, size_t max)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || len > max || strlen(s) != len)
        return NULL;
    return host->arena_strndup(arena, s, len);
}

/* The bank's free text (a reason or an error), shortened to
 * BX_TEXT_MAX_CHARS characters and with control characters replaced by
 * spaces, in the arena; NULL when `v` is not a usable string. */
static const char *bx_bank_text(const pagoflex_host_services *host, pagoflex_arena *arena,
                                const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    const char *s = json_string_value(v);
    size_t n;
    if (bx_utf8_prefix(s, json_string_length(v), BX_TEXT_MAX_CHARS, &n) != 0)
        return NULL;
    char *out = host->arena_strndup(arena, s, n);
    if (!out)
        return NULL;
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    return out;
}

/* Parse a JSON object of at most BX_JSON_MAX bytes; NULL on anything else
 * (empty, too big, not JSON, not UTF-8, not an object). Caller decrefs. */
static json_t *bx_json_object(const unsigned char *body, size_t len)
{
    if (!body || len == 0 || len > BX_JSON_MAX)
        return NULL;
    json_error_t err;
    json_t *o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
    if (o && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Fill *out (all strings in the arena). The message is printf-formatted. */
static int bx_result(const pagoflex_host_services *host, pagoflex_arena *arena,
                     pagoflex_payment_result *out, pagoflex_state state, const char *ref,
                     const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static int bx_result(const pagoflex_host_services *host, pagoflex_arena *arena,
                     pagoflex_payment_result *out, pagoflex_state state, const char *ref,
                     const char *code, const char *fmt, ...)
{
    pagoflex_payment_result r = {.state = state, .provider_reference_id = ref};
    if (code) {
        r.error_code = host->arena_strdup(arena, code);
        if (!r.error_code)
            goto fail;
    }
    if (fmt) {
        char msg[BX_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        r.error_message = host->arena_strdup(arena, msg);
        if (!r.error_message)
            goto fail;
    }
    *out = r;
    return PAGOFLEX_OK;
fail:
    return PAGOFLEX_ERR_NOMEM;
}

/* ------------------------------------------------------------ init / fini */

static void bx_free_secret(const pagoflex_host_services *host, char *s)
{
    if (!s)
        return;
    host->wipe(s, strlen(s));
    free(s);
}

static void bx_state_free(bx_state *st)
{
    if (!st)
        return;
    bx_free_secret(st->host, st->api_key);
    bx_free_secret(st->host, st->secret);
    bx_free_secret(st->host, st->secret_prev);
    free(st->base_url);
    free(st);
}

/* Copy credential `name`, which must be present and non-empty. */
static int bx_copy_required(const pagoflex_host_services *host,
                            const pagoflex_credentials *creds, const char *name, char **out)
{
    const char *v = creds ? host->credential(creds, name) : NULL;
    if (!v || !*v) {
        host->log(host, PAGOFLEX_LOG_ERROR,
                  "credential %s is %s; add it to the banco_x credentials file", name,
                  v ? "empty" : "missing");
        return PAGOFLEX_ERR_CREDENTIALS;
    }
    *out = strdup(v);
    return *out ? PAGOFLEX_OK : PAGOFLEX_ERR_NOMEM;
}

/* Copy credential `name` if it is set and non-empty; *out stays NULL if not. */
static int bx_copy_optional(const pagoflex_host_services *host,
                            const pagoflex_credentials *creds, const char *name, char **out)
{
    const char *v = creds ? host->credential(creds, name) : NULL;
    *out = NULL;
    if (!v || !*v)
        return PAGOFLEX_OK;
    *out = strdup(v);
    return *out ? PAGOFLEX_OK : PAGOFLEX_ERR_NOMEM;
}

static int bx_init_base_url(bx_state *st, const pagoflex_credentials *creds)
{
    const pagoflex_host_services *host = st->host;
    int rc = bx_copy_optional(host, creds, "BANCOX_BASE_URL", &st->base_url);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (!st->base_url && !(st->base_url = strdup(BX_DEFAULT_BASE_URL)))
        return PAGOFLEX_ERR_NOMEM;
    size_t len = strlen(st->base_url);
    while (len > 0 && st->base_url[len - 1] == '/')
        st->base_url[--len] = '\0';
    size_t scheme = strncmp(st->base_url, "http://", 7) == 0    ? 7
                    : strncmp(st->base_url, "https://", 8) == 0 ? 8
                                                                : 0;
    if (!scheme || len <= scheme || !bx_token_ok(st->base_url, len, BX_BASE_URL_MAX)) {
        host->log(host, PAGOFLEX_LOG_ERROR,
                  "credential BANCOX_BASE_URL must be an http:// or https:// URL without "
                  "spaces, e.g. %s",
                  BX_DEFAULT_BASE_URL);
        return PAGOFLEX_ERR_CREDENTIALS;
    }
    return PAGOFLEX_OK;
}

static int bx_init_timeout(bx_state *st, const pagoflex_credentials *creds)
{
    const char *v = creds ? st->host->credential(creds, "BANCOX_TIMEOUT_MS") : NULL;
    if (!v || !*v)
        return PAGOFLEX_OK;
    char *end = NULL;
    errno = 0;
    long ms = strtol(v, &end, 10);
    if (errno || *end || ms < 1 || ms > BX_TIMEOUT_MS_MAX) {
        st->host->log(st->host, PAGOFLEX_LOG_ERROR,
                      "credential BANCOX_TIMEOUT_MS is \"%.32s\"; expected milliseconds from "
                      "1 to %ld",
                      v, BX_TIMEOUT_MS_MAX);
        return PAGOFLEX_ERR_CREDENTIALS;
    }
    st->timeout_ms = ms;
    return PAGOFLEX_OK;
}

/*
 * Copy the credentials Banco X needs into a new state (*state).
 * Required: BANCOX_API_KEY, BANCOX_SECRET. Optional: BANCOX_SECRET_PREVIOUS
 * (also accepted on webhooks during a rotation), BANCOX_BASE_URL (default
 * https://api.bancox.com), BANCOX_TIMEOUT_MS.
 * On error nothing is allocated, *state is untouched, and one log line names
 * the credential at fault (never its value, except the non-secret timeout):
 * PAGOFLEX_ERR_CREDENTIALS for a missing or unusable one, PAGOFLEX_ERR_NOMEM.
 */
static int bx_init(const pagoflex_host_services *host, const pagoflex_credentials *creds,
                   void **state)
{
    if (!host || !state || !PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, now))
        return PAGOFLEX_ERR_INTERNAL;
    int rc = PAGOFLEX_ERR_NOMEM;
    bx_state *st = calloc(1, sizeof *st);
    if (!st)
        goto fail;
    st->host = host;
    if ((rc = bx_copy_required(host, creds, "BANCOX_API_KEY", &st->api_key)) ||
        (rc = bx_copy_required(host, creds, "BANCOX_SECRET", &st->secret)) ||
        (rc = bx_copy_optional(host, creds, "BANCOX_SECRET_PREVIOUS", &st->secret_prev)) ||
        (rc = bx_init_base_url(st, creds)) || (rc = bx_init_timeout(st, creds)))
        goto fail;
    if (!bx_token_ok(st->api_key, strlen(st->api_key), 4096)) {
        host->log(host, PAGOFLEX_LOG_ERROR,
                  "credential BANCOX_API_KEY holds a space or control character; it cannot "
                  "be sent in an HTTP header");
        rc = PAGOFLEX_ERR_CREDENTIALS;
        goto fail;
    }
    host->log(host, PAGOFLEX_LOG_INFO, "banco_x ready: base URL %s%s", st->base_url,
              st->secret_prev ? ", previous webhook secret also accepted" : "");
    *state = st;
    return PAGOFLEX_OK;
fail:
    bx_state_free(st);
    return rc;
}

/* Wipe the copied secrets and free the state. NULL is a no-op. */
static void bx_fini(void *state)
{
    bx_state_free(state);
}

/* ---------------------------------------------------------- build_request */

static int bx_set(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : -1;
}

/* JSON body of POST /pay, dumped into the arena. */
static int bx_build_body(const bx_state *st, const pagoflex_payment *p, pagoflex_arena *arena,
                         const unsigned char **body, size_t *body_len)
{
    int rc = PAGOFLEX_ERR_NOMEM;
    json_t *o = json_object();
    if (!o || bx_set(o, "amount", json_integer((json_int_t)p->amount)) ||
        bx_set(o, "currency", json_string(p->currency)) ||
        bx_set(o, "ref", json_string(p->id)) ||
        bx_set(o, "callback_url", json_string(p->webhook_url)))
        goto fail;
    if (p->description && *p->description) {
        size_t n;
        if (bx_utf8_prefix(p->description, strlen(p->description), BX_DESCRIPTION_MAX_CHARS,
                           &n) != 0) {
            st->host->log(st->host, PAGOFLEX_LOG_WARN,
                          "payment %s: description is not valid UTF-8", p->id);
            rc = PAGOFLEX_ERR_INVALID;
            goto fail;
        }
        if (bx_set(o, "description", json_stringn(p->description, n)))
            goto fail;
    }
    size_t len = json_dumpb(o, NULL, 0, JSON_COMPACT);
    if (len == 0)
        goto fail;
    char *buf = st->host->arena_alloc(arena, len + 1);
    if (!buf || json_dumpb(o, buf, len, JSON_COMPACT) != len)
        goto fail;
    json_decref(o);
    *body = (const unsigned char *)buf;
    *body_len = len;
    return PAGOFLEX_OK;
fail:
    json_decref(o);
    return rc;
}

/* Refuse a payment Banco X cannot take, saying why. */
static int bx_check_payment(const bx_state *st, const pagoflex_payment *p)
{
    const pagoflex_host_services *host = st->host;
    if (!p->id || !bx_token_ok(p->id, strlen(p->id), BX_ID_MAX)) {
        host->log(host, PAGOFLEX_LOG_ERROR,
                  "payment id missing or not 1-%d printable ASCII characters", BX_ID_MAX);
        return PAGOFLEX_ERR_INVALID;
    }
    if (p->amount <= 0) {
        host->log(host, PAGOFLEX_LOG_ERROR, "payment %s: amount %lld must be > 0", p->id,
                  (long long)p->amount);
        return PAGOFLEX_ERR_INVALID;
    }
    if (!p->webhook_url || !*p->webhook_url) {
        host->log(host, PAGOFLEX_LOG_ERROR, "payment %s: no webhook_url for callback_url",
                  p->id);
        return PAGOFLEX_ERR_INVALID;
    }
    if (!bx_currency_supported(p->currency)) {
        host->log(host, PAGOFLEX_LOG_WARN,
                  "payment %s: currency %.8s not supported by Banco X (ARS BRL CLP COP MXN "
                  "PEN USD UYU)",
                  p->id, p->currency ? p->currency : "(none)");
        return PAGOFLEX_ERR_UNSUPPORTED;
    }
    return PAGOFLEX_OK;
}

/*
 * Describe POST {base}/pay for `payment`: Bearer API key, JSON body, and the
 * payment id as Idempotency-Key so a retry never charges twice.
 * Everything in *out lives in `arena`. *out is written only on success.
 * PAGOFLEX_ERR_UNSUPPORTED for a currency Banco X does not take,
 * PAGOFLEX_ERR_INVALID for a malformed payment, PAGOFLEX_ERR_NOMEM.
 */
static int bx_build_request(void *state, const pagoflex_payment *payment,
                            pagoflex_arena *arena, pagoflex_http_request *out)
{
    const bx_state *st = state;
    if (!st || !payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int rc = bx_check_payment(st, payment);
    if (rc != PAGOFLEX_OK)
        goto fail;
    pagoflex_http_request req = {.method = "POST", .timeout_ms = st->timeout_ms};
    pagoflex_header *h = host->arena_alloc(arena, 3 * sizeof *h);
    rc = PAGOFLEX_ERR_NOMEM;
    if (!h)
        goto fail;
    h[0].name = "Authorization";
    h[0].value = host->arena_printf(arena, "Bearer %s", st->api_key);
    h[1].name = "Content-Type";
    h[1].value = "application/json";
    h[2].name = "Idempotency-Key";
    h[2].value = host->arena_strdup(arena, payment->id);
    req.url = host->arena_printf(arena, "%s/pay", st->base_url);
    if (!h[0].value || !h[2].value || !req.url)
        goto fail;
    req.headers = h;
    req.header_count = 3;
    if ((rc = bx_build_body(st, payment, arena, &req.body, &req.body_len)) != PAGOFLEX_OK)
        goto fail;
    *out = req;
    return PAGOFLEX_OK;
fail:
    return rc;
}

/* -------------------------------------------------------- handle_response */

/* Answers after which the bank may still take the payment (or has). */
static int bx_status_transient(int status)
{
    /* 408: request not fully received; 409: a request with the same
     * Idempotency-Key is still in flight at the bank; 425 and 429: come back
     * later; 5xx: the bank's trouble. None of them is a final "no". */
    return status == 408 || status == 409 || status == 425 || status == 429 || status >= 500;
}

static int bx_on_transport(const bx_state *st, const pagoflex_http_response *resp,
                           pagoflex_arena *arena, pagoflex_payment_result *out)
{
    const pagoflex_host_services *host = st->host;
    switch (resp->transport) {
    case PAGOFLEX_TRANSPORT_TIMEOUT:
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_timeout",
                         "no answer from Banco X before the timeout; it may have taken the "
                         "payment, which will be synced");
    case PAGOFLEX_TRANSPORT_CONNECT:
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unreachable",
                         "could not connect to Banco X at %s; the payment will be retried",
                         st->base_url);
    default:
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unreachable",
                         "the connection to Banco X failed before an answer; the payment "
                         "will be retried or synced");
    }
}

static int bx_bad_response(const bx_state *st, int status, pagoflex_arena *arena,
                           pagoflex_payment_result *out)
{
    return bx_result(st->host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_bad_response",
                     "Banco X answered HTTP %d with an unexpected body; the outcome is "
                     "unknown, the payment will be synced",
                     status);
}

/* 200: {"status":"OK","id":...} or {"status":"REJECTED","id":...,"reason":...}. */
static int bx_on_200(const bx_state *st, const pagoflex_http_response *resp,
                     pagoflex_arena *arena, pagoflex_payment_result *out)
{
    const pagoflex_host_services *host = st->host;
    int rc;
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *status = o ? json_string_value(json_object_get(o, "status")) : NULL;
    const json_t *idv = o ? json_object_get(o, "id") : NULL;
    const char *id = NULL;
    if (json_is_string(idv) && bx_token_ok(json_string_value(idv), json_string_length(idv),
                                           BX_ID_MAX)) {
        if (!(id = host->arena_strdup(arena, json_string_value(idv)))) {
            rc = PAGOFLEX_ERR_NOMEM;
            goto fail;
        }
    }
    if (status && strcmp(status, "OK") == 0 && id) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PENDING, id, NULL, NULL);
    } else if (status && strcmp(status, "REJECTED") == 0) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, id, "rejected", "%s",
                       reason ? reason : "Banco X rejected the payment without a reason");
    } else {
        rc = bx_bad_response(st, 200, arena, out);
    }
fail:
    json_decref(o);
    return rc;
}

/* 4xx that is our fault: the payment failed, keep the bank's error text. */
static int bx_on_client_error(const bx_state *st, const pagoflex_http_response *resp,
                              pagoflex_arena *arena, pagoflex_payment_result *out)
{
    const pagoflex_host_services *host = st->host;
    int status = resp->status;
    if (status == 401)
        return bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, NULL, "bank_auth",
                         "Banco X refused our API key; check BANCOX_API_KEY");
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *text = o ? bx_bank_text(host, arena, json_object_get(o, "error")) : NULL;
    int rc;
    if (status == 422)
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, NULL, "bank_invalid_request",
                       "%s", text ? text : "Banco X refused the request as invalid (HTTP 422)");
    else
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, NULL, "bank_client_error",
                       "Banco X refused the request with HTTP %d%s%s", status,
                       text ? ": " : "", text ? text : "");
    json_decref(o);
    return rc;
}

/*
 * Map Banco X's answer to a payment state (strings of *out in `arena`):
 * transport failure -> PROCESSING (bank_timeout / bank_unreachable);
 * 408, 409, 425, 429, 5xx -> PROCESSING (bank_unavailable);
 * 200 OK -> PENDING with the bank id; 200 REJECTED -> FAILED (rejected,
 * the bank's reason); 401 -> FAILED (bank_auth); 422 -> FAILED
 * (bank_invalid_request); other 4xx -> FAILED (bank_client_error);
 * anything else, or a body that is not the expected JSON -> PROCESSING
 * (bank_bad_response): never FAILED while the bank may have the payment.
 * Any body is safe (empty, huge, not JSON, not UTF-8). *out is written only
 * on success; PAGOFLEX_ERR_NOMEM or PAGOFLEX_ERR_INVALID otherwise.
 */
static int bx_handle_response(void *state, const pagoflex_payment *payment,
                              const pagoflex_http_response *resp, pagoflex_arena *arena,
                              pagoflex_payment_result *out)
{
    const bx_state *st = state;
    (void)payment;
    if (!st || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK)
        return bx_on_transport(st, resp, arena, out);
    int status = resp->status;
    if (bx_status_transient(status))
        return bx_result(st->host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL,
                         "bank_unavailable",
                         "Banco X answered HTTP %d; the payment will be retried or synced",
                         status);
    if (status == 200)
        return bx_on_200(st, resp, arena, out);
    if (status >= 400 && status < 500)
        return bx_on_client_error(st, resp, arena, out);
    return bx_bad_response(st, status, arena, out);
}

/* ------------------------------------------------------------------ sync */

/*
 * Describe GET {base}/pay/{provider_reference_id} (ABI 1.1). Everything in
 * *out lives in `arena`; *out is written only on success.
 * PAGOFLEX_ERR_NOT_FOUND when the payment has no bank id yet (the host
 * re-sends POST /pay instead, safe under its Idempotency-Key);
 * PAGOFLEX_ERR_INVALID for an id unsafe in a URL; PAGOFLEX_ERR_NOMEM.
 */
static int bx_sync_request(void *state, const pagoflex_payment *payment, pagoflex_arena *arena,
                           pagoflex_http_request *out)
{
    const bx_state *st = state;
    if (!st || !payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    const char *ref = payment->provider_reference_id;
    if (!ref || !*ref)
        return PAGOFLEX_ERR_NOT_FOUND;
    if (!bx_token_ok(ref, strlen(ref), BX_ID_MAX) || strpbrk(ref, "/?#%")) {
        host->log(host, PAGOFLEX_LOG_ERROR, "payment %s: bank id is not a safe URL segment",
                  payment->id ? payment->id : "(null)");
        return PAGOFLEX_ERR_INVALID;
    }
    pagoflex_http_request req = {.method = "GET", .timeout_ms = st->timeout_ms};
    pagoflex_header *h = host->arena_alloc(arena, sizeof *h);
    if (!h)
        return PAGOFLEX_ERR_NOMEM;
    h[0].name = "Authorization";
    h[0].value = host->arena_printf(arena, "Bearer %s", st->api_key);
    req.url = host->arena_printf(arena, "%s/pay/%s", st->base_url, ref);
    if (!h[0].value || !req.url)
        return PAGOFLEX_ERR_NOMEM;
    req.headers = h;
    req.header_count = 1;
    *out = req;
    return PAGOFLEX_OK;
}

/* True when a 404 body is Banco X's own {"error":"not_found"}: the bank
 * says it has no such payment. Any other 404 (a misrouted base URL, a
 * proxy, another service) says nothing about the payment. */
static int bx_is_not_found(const pagoflex_http_response *resp)
{
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *error = o ? json_string_value(json_object_get(o, "error")) : NULL;
    int yes = error && strcmp(error, "not_found") == 0;
    json_decref(o);
    return yes;
}

/*
 * Map the answer to GET /pay/{id} (ABI 1.1): 200 PENDING -> PENDING,
 * APPROVED -> SUCCEEDED, DECLINED -> FAILED ("declined", the bank's reason);
 * 404 {"error":"not_found"} -> PAGOFLEX_ERR_NOT_FOUND; a 404 with any other
 * body -> PROCESSING (bank_bad_response: not Banco X's answer); transport
 * failure, 408/409/425/429, 5xx, another status or an unexpected body ->
 * PROCESSING (nothing learned). *out (strings in `arena`) is written only
 * on PAGOFLEX_OK.
 */
static int bx_sync_response(void *state, const pagoflex_payment *payment,
                            const pagoflex_http_response *resp, pagoflex_arena *arena,
                            pagoflex_payment_result *out)
{
    const bx_state *st = state;
    if (!st || !payment || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK)
        return bx_on_transport(st, resp, arena, out);
    if (resp->status == 404)
        return bx_is_not_found(resp) ? PAGOFLEX_ERR_NOT_FOUND : bx_bad_response(st, 404, arena, out);
    if (resp->status != 200)
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unavailable",
                         "Banco X answered HTTP %d to a status query; the payment will be "
                         "synced again",
                         resp->status);
    int rc;
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *status = o ? json_string_value(json_object_get(o, "status")) : NULL;
    const char *ref = payment->provider_reference_id;
    if (status && strcmp(status, "PENDING") == 0) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PENDING, ref, NULL, NULL);
    } else if (status && strcmp(status, "APPROVED") == 0) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_SUCCEEDED, ref, NULL, NULL);
    } else if (status && strcmp(status, "DECLINED") == 0) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, ref, "declined", "%s",
                       reason ? reason : "Banco X declined the payment");
    } else {
        rc = bx_bad_response(st, 200, arena, out);
    }
    json_decref(o);
    return rc;
}

/* --------------------------------------------------------- verify_webhook */

/* Drop spaces and tabs at both ends of [*b, *e). */
static void bx_trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/* Unix seconds: 1 to 18 decimal digits. */
static int bx_parse_ts(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* One "key=value" item of the signature header. Unknown keys are skipped
 * (future schemes); a second t, a ninth v1 or an item without '=' is
 * garbage. */
static int bx_sig_item(const char *b, const char *e, bx_sig *sig)
{
    bx_trim(&b, &e);
    if (b == e)
        return 0; /* empty item: ",," or a trailing comma */
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (!eq)
        return -1;
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    bx_trim(&kb, &ke);
    bx_trim(&vb, &ve);
    size_t klen = (size_t)(ke - kb), vlen = (size_t)(ve - vb);
    if (klen == 1 && kb[0] == 't') {
        if (sig->t || bx_parse_ts(vb, vlen, &sig->ts) != 0)
            return -1;
        sig->t = vb;
        sig->t_len = vlen;
    } else if (klen == 2 && memcmp(kb, "v1", 2) == 0) {
        if (sig->v1_count == BX_SIG_MAX_V1)
            return -1;
        sig->v1[sig->v1_count] = vb;
        sig->v1_len[sig->v1_count++] = vlen;
    }
    return 0;
}

/* Parse "t=<seconds>,v1=<hex>[,v1=<hex>...]"; 0 when it has one t and at
 * least one v1, -1 for anything else. */
static int bx_sig_parse(const char *header, bx_sig *sig)
{
    memset(sig, 0, sizeof *sig);
    size_t len = strnlen(header, BX_SIG_HEADER_MAX + 1);
    if (len == 0 || len > BX_SIG_HEADER_MAX)
        return -1;
    const char *p = header, *end = header + len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (bx_sig_item(p, comma ? comma : end, sig) != 0)
            return -1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return sig->t && sig->v1_count > 0 ? 0 : -1;
}

/* 1 if any v1 entry equals one of the expected MACs. Every entry is
 * compared against every MAC in constant time, with no early exit. */
static int bx_sig_match(const pagoflex_host_services *host, const bx_sig *sig,
                        const unsigned char mac[][32], size_t mac_count)
{
    int ok = 0;
    for (size_t i = 0; i < sig->v1_count; i++) {
        unsigned char got[32];
        size_t got_len = 0;
        if (sig->v1_len[i] != 64 ||
            host->hex_decode(sig->v1[i], 64, got, sizeof got, &got_len) != PAGOFLEX_OK ||
            got_len != 32)
            continue; /* malformed entry: can match nothing */
        for (size_t k = 0; k < mac_count; k++)
            ok |= host->ct_equal(got, mac[k], 32);
    }
    return ok;
}

static int bx_sig_refuse(const pagoflex_host_services *host, const char *why)
{
    host->log(host, PAGOFLEX_LOG_WARN, "webhook refused: %s", why);
    return PAGOFLEX_ERR_SIGNATURE;
}

/*
 * Check X-BancoX-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...], each
 * v1 the HMAC-SHA256 of "<t>.<raw body>" under BANCOX_SECRET (or
 * BANCOX_SECRET_PREVIOUS if set). Any one matching v1 suffices; t must be
 * within 300 s of host->now(). PAGOFLEX_OK, or PAGOFLEX_ERR_SIGNATURE for a
 * missing, malformed (over 1 KiB, over 8 v1), stale or wrong signature;
 * PAGOFLEX_ERR_NOMEM. The signed bytes are assembled in `arena`.
 */
static int bx_verify_webhook(void *state, const pagoflex_header *headers, size_t header_count,
                             const unsigned char *body, size_t body_len, pagoflex_arena *arena)
{
    const bx_state *st = state;
    if (!st || !arena || (!body && body_len))
        return PAGOFLEX_ERR_SIGNATURE;
    const pagoflex_host_services *host = st->host;
    unsigned char mac[2][32];
    size_t mac_count = 0;
    int rc = PAGOFLEX_ERR_SIGNATURE;
    const char *header = headers ? host->header_get(headers, header_count, BX_SIG_HEADER) : NULL;
    bx_sig sig;
    if (!header)
        return bx_sig_refuse(host, "no " BX_SIG_HEADER " header");
    if (bx_sig_parse(header, &sig) != 0)
        return bx_sig_refuse(host, BX_SIG_HEADER " is not t=<seconds>,v1=<hex>[,v1=...] "
                                   "(at most 8 v1, 1 KiB)");
    int64_t skew = host->now() - sig.ts;
    if (skew > BX_SIG_TOLERANCE_S || skew < -BX_SIG_TOLERANCE_S) {
        host->log(host, PAGOFLEX_LOG_WARN,
                  "webhook refused: timestamp %lld is %lld s from our clock (limit %d s); "
                  "check the clock or a replay",
                  (long long)sig.ts, (long long)skew, BX_SIG_TOLERANCE_S);
        return PAGOFLEX_ERR_SIGNATURE;
    }
    if (body_len > SIZE_MAX - sig.t_len - 1)
        return PAGOFLEX_ERR_SIGNATURE;
    size_t msg_len = sig.t_len + 1 + body_len;
    unsigned char *msg = host->arena_alloc(arena, msg_len);
    rc = PAGOFLEX_ERR_NOMEM;
    if (!msg)
        goto fail;
    memcpy(msg, sig.t, sig.t_len);
    msg[sig.t_len] = '.';
    if (body_len)
        memcpy(msg + sig.t_len + 1, body, body_len);
    rc = PAGOFLEX_ERR_INTERNAL;
    if (host->hmac_sha256(st->secret, strlen(st->secret), msg, msg_len, mac[mac_count++]))
        goto fail;
    if (st->secret_prev && host->hmac_sha256(st->secret_prev, strlen(st->secret_prev), msg,
                                             msg_len, mac[mac_count++]))
        goto fail;
    rc = bx_sig_match(host, &sig, (const unsigned char(*)[32])mac, mac_count)
             ? PAGOFLEX_OK
             : bx_sig_refuse(host, "no v1 signature matches (wrong secret or altered body)");
fail:
    host->wipe(mac, sizeof mac);
    return rc;
}

/* ---------------------------------------------------------- parse_webhook */

/*
 * Parse a verified webhook body {"event_id","tx_id","ref","status",...}:
 * APPROVED -> SUCCEEDED, DECLINED -> FAILED (error_code "declined").
 * event_id is required; tx_id and ref (-> payment_id) are optional strings.
 * Strings of *out live in `arena`; *out is written only on success.
 * PAGOFLEX_ERR_INVALID for anything else, PAGOFLEX_ERR_NOMEM.
 */
static int bx_parse_webhook(void *state, const unsigned char *body, size_t body_len,
                            pagoflex_arena *arena, pagoflex_webhook_event *out)
{
    const bx_state *st = state;
    if (!st || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int rc = PAGOFLEX_ERR_INVALID;
    pagoflex_webhook_event ev = {0};
    json_t *o = bx_json_object(body, body_len);
    if (!o)
        goto fail;
    const json_t *tx = json_object_get(o, "tx_id"), *ref = json_object_get(o, "ref");
    const char *status = json_string_value(json_object_get(o, "status"));
    ev.event_id = bx_json_text(host, arena, json_object_get(o, "event_id"), BX_ID_MAX);
    if (!ev.event_id || !status)
        goto fail;
    if (tx && !json_is_null(tx) && !(ev.tx_id = bx_json_text(host, arena, tx, BX_ID_MAX)))
        goto fail;
    if (ref && !json_is_null(ref) &&
        !(ev.payment_id = bx_json_text(host, arena, ref, BX_ID_MAX)))
        goto fail;
    if (strcmp(status, "APPROVED") == 0) {
        ev.state = PAGOFLEX_STATE_SUCCEEDED;
    } else if (strcmp(status, "DECLINED") == 0) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        ev.state = PAGOFLEX_STATE_FAILED;
        ev.error_code = host->arena_strdup(arena, "declined");
        ev.error_message =
            reason ? reason : host->arena_strdup(arena, "Banco X declined the payment");
        rc = PAGOFLEX_ERR_NOMEM;
        if (!ev.error_code || !ev.error_message)
            goto fail;
    } else {
        goto fail;
    }
    json_decref(o);
    *out = ev;
    return PAGOFLEX_OK;
fail:
    if (rc == PAGOFLEX_ERR_INVALID)
        host->log(host, PAGOFLEX_LOG_WARN,
                  "webhook body is not a Banco X event (JSON object with event_id and status "
                  "APPROVED or DECLINED)");
    json_decref(o);
    return rc;
}

/* ------------------------------------------------------------- descriptor */

static const struct pagoflex_connector bx_connector = {
    PAGOFLEX_CONNECTOR_HEADER,
    .key = "BANCO_X",
    .webhook_path = "bancox",
    .version = "1.1.0",
    .required_credentials = bx_required,
    .currencies = bx_currencies,
    .init = bx_init,
    .fini = bx_fini,
    .build_request = bx_build_request,
    .execute_request = NULL, /* the host's libcurl executor runs it */
    .handle_response = bx_handle_response,
    .verify_webhook = bx_verify_webhook,
    .parse_webhook = bx_parse_webhook,
    .sync_request = bx_sync_request,
    .sync_response = bx_sync_response,
};

/* The plugin's only exported symbol: returns the constant descriptor. */
PAGOFLEX_DEFINE_CONNECTOR(bx_connector)
