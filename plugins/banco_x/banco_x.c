/*
 * banco_x.c - the Banco X connector (see /work/shared/banco_x_api.md).
 *
 * Banco X accepts a payment at once (POST /pay) and reports the result later
 * through a webhook signed with HMAC-SHA256. This plugin only describes the
 * HTTP calls (the host's libcurl executor performs them), maps the answers,
 * and verifies and parses webhooks.
 *
 * ABI 1.2: every flow of API v1.1 (authorize, capture, void, refund,
 * payment sync, refund sync) through flow_request/flow_response, 1.2
 * webhooks (payment, refund and ignored events) and webhook_sample. The
 * 1.0/1.1 entry points are thin wrappers over the same code (authorize
 * with Banco X's default capture, payment sync, payment webhooks), so the
 * plugin still runs on a 1.1 host.
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
#include <time.h>

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

/* A flow's verdict before it is copied into the host's struct. */
typedef struct bx_verdict {
    pagoflex_state state;
    const char *ref; /* provider_reference_id */
    const char *code;
    const char *msg;
    int64_t amount;           /* 0: not said */
    const char *redirect_url; /* REQUIRES_ACTION */
} bx_verdict;

/* Fill *out (all strings in the arena). The message is printf-formatted. */
static int bx_result(const pagoflex_host_services *host, pagoflex_arena *arena,
                     bx_verdict *out, pagoflex_state state, const char *ref,
                     const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static int bx_result(const pagoflex_host_services *host, pagoflex_arena *arena,
                     bx_verdict *out, pagoflex_state state, const char *ref,
                     const char *code, const char *fmt, ...)
{
    bx_verdict r = {.state = state, .ref = ref};
    if (code) {
        r.code = host->arena_strdup(arena, code);
        if (!r.code)
            goto fail;
    }
    if (fmt) {
        char msg[BX_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        r.msg = host->arena_strdup(arena, msg);
        if (!r.msg)
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

/* ------------------------------------------------------- bank requests */

static int bx_set(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : -1;
}

/* True when s is a bank id or key we may put in a URL path segment. */
static int bx_segment_ok(const char *s)
{
    return s && bx_token_ok(s, strlen(s), BX_ID_MAX) && !strpbrk(s, "/?#%\\") &&
           strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* True when s is an http:// or https:// URL safe in a JSON body and a
 * Location header (no spaces or control characters, at most 2048 bytes). */
static int bx_url_ok(const char *s)
{
    if (!s || (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
        return 0;
    return bx_token_ok(s, strlen(s), BX_BASE_URL_MAX);
}

/* A card token as Banco X's tokenizer makes them: "tok_" + 1..124 of
 * [A-Za-z0-9_-]. */
static int bx_card_token_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len < 5 || len > 128 || strncmp(s, "tok_", 4) != 0)
        return 0;
    for (size_t i = 4; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/*
 * Describe `method` {base}`path` into *req: Bearer API key; with a body
 * (which is dumped into the arena, compact), Content-Type and, when
 * idem_key is set, Idempotency-Key. *req is written only on success.
 */
static int bx_http(const bx_state *st, pagoflex_arena *arena, const char *method,
                   const char *path, const char *idem_key, const json_t *body,
                   pagoflex_http_request *req)
{
    const pagoflex_host_services *host = st->host;
    pagoflex_http_request r = {.method = method, .timeout_ms = st->timeout_ms};
    pagoflex_header *h = host->arena_alloc(arena, 3 * sizeof *h);
    if (!h)
        return PAGOFLEX_ERR_NOMEM;
    size_t n = 0;
    h[n].name = "Authorization";
    if (!(h[n++].value = host->arena_printf(arena, "Bearer %s", st->api_key)))
        return PAGOFLEX_ERR_NOMEM;
    if (body) {
        h[n].name = "Content-Type";
        h[n++].value = "application/json";
        if (idem_key) {
            h[n].name = "Idempotency-Key";
            if (!(h[n++].value = host->arena_strdup(arena, idem_key)))
                return PAGOFLEX_ERR_NOMEM;
        }
        size_t len = json_dumpb(body, NULL, 0, JSON_COMPACT);
        char *buf = len ? host->arena_alloc(arena, len + 1) : NULL;
        if (!buf || json_dumpb(body, buf, len, JSON_COMPACT) != len)
            return PAGOFLEX_ERR_NOMEM;
        r.body = (const unsigned char *)buf;
        r.body_len = len;
    }
    if (!(r.url = host->arena_printf(arena, "%s%s", st->base_url, path)))
        return PAGOFLEX_ERR_NOMEM;
    r.headers = h;
    r.header_count = n;
    *req = r;
    return PAGOFLEX_OK;
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

/* The optional AUTHORIZE fields of POST /pay: capture (unless `legacy`,
 * the 1.0/1.1 body, where Banco X's default true applies), card_token,
 * return_url. */
static int bx_authorize_extras(const bx_state *st, const pagoflex_flow_input *in, int legacy,
                               json_t *o)
{
    const pagoflex_host_services *host = st->host;
    const char *id = in->payment->id;
    if (legacy)
        return PAGOFLEX_OK;
    if (bx_set(o, "capture", json_boolean(in->capture)))
        return PAGOFLEX_ERR_NOMEM;
    if (in->payment_method_type) {
        if (strcmp(in->payment_method_type, "card_token") != 0) {
            host->log(host, PAGOFLEX_LOG_WARN,
                      "payment %s: payment method type \"%.32s\" is not supported by Banco X "
                      "(only card_token)",
                      id, in->payment_method_type);
            return PAGOFLEX_ERR_UNSUPPORTED;
        }
        if (!bx_card_token_ok(in->payment_method_token)) {
            host->log(host, PAGOFLEX_LOG_ERROR,
                      "payment %s: card token must be tok_ followed by 1-124 of "
                      "[A-Za-z0-9_-], from Banco X's tokenizer",
                      id);
            return PAGOFLEX_ERR_INVALID;
        }
        if (bx_set(o, "card_token", json_string(in->payment_method_token)))
            return PAGOFLEX_ERR_NOMEM;
    }
    if (in->return_url) {
        if (!bx_url_ok(in->return_url)) {
            host->log(host, PAGOFLEX_LOG_ERROR,
                      "payment %s: return_url must be an http:// or https:// URL without "
                      "spaces, at most %d bytes",
                      id, BX_BASE_URL_MAX);
            return PAGOFLEX_ERR_INVALID;
        }
        if (bx_set(o, "return_url", json_string(in->return_url)))
            return PAGOFLEX_ERR_NOMEM;
    }
    return PAGOFLEX_OK;
}

/* POST /pay: the payment id (or the operation id the host gives) is the
 * Idempotency-Key, so a re-send never charges twice. */
static int bx_authorize_request(const bx_state *st, const pagoflex_flow_input *in, int legacy,
                                pagoflex_arena *arena, pagoflex_http_request *out)
{
    const pagoflex_payment *p = in->payment;
    const char *key = in->operation_id ? in->operation_id : p->id;
    int rc = bx_check_payment(st, p);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (!bx_token_ok(key, strlen(key), BX_ID_MAX)) {
        st->host->log(st->host, PAGOFLEX_LOG_ERROR,
                      "payment %s: operation id is not 1-%d printable ASCII characters", p->id,
                      BX_ID_MAX);
        return PAGOFLEX_ERR_INVALID;
    }
    rc = PAGOFLEX_ERR_NOMEM;
    json_t *o = json_object();
    if (!o || bx_set(o, "amount", json_integer((json_int_t)p->amount)) ||
        bx_set(o, "currency", json_string(p->currency)) ||
        bx_set(o, "ref", json_string(p->id)) ||
        bx_set(o, "callback_url", json_string(p->webhook_url)))
        goto done;
    if (p->description && *p->description) {
        size_t n;
        if (bx_utf8_prefix(p->description, strlen(p->description), BX_DESCRIPTION_MAX_CHARS,
                           &n) != 0) {
            st->host->log(st->host, PAGOFLEX_LOG_WARN,
                          "payment %s: description is not valid UTF-8", p->id);
            rc = PAGOFLEX_ERR_INVALID;
            goto done;
        }
        if (bx_set(o, "description", json_stringn(p->description, n)))
            goto done;
    }
    if ((rc = bx_authorize_extras(st, in, legacy, o)) != PAGOFLEX_OK)
        goto done;
    rc = bx_http(st, arena, "POST", "/pay", key, o, out);
done:
    json_decref(o);
    return rc;
}

/* The bank's id of the payment, for a URL; PAGOFLEX_ERR_INVALID (with a
 * log line) when it is missing or unsafe. */
static int bx_bank_id(const bx_state *st, const pagoflex_payment *p, const char *flow,
                      const char **out)
{
    const char *ref = p->provider_reference_id;
    if (!bx_segment_ok(ref)) {
        st->host->log(st->host, PAGOFLEX_LOG_ERROR,
                      "payment %s: %s needs Banco X's payment id, which is %s",
                      p->id ? p->id : "(null)", flow,
                      ref && *ref ? "not a safe URL segment" : "not known yet");
        return PAGOFLEX_ERR_INVALID;
    }
    *out = ref;
    return PAGOFLEX_OK;
}

/* An operation id used as Idempotency-Key. */
static int bx_key_ok(const bx_state *st, const char *key, const char *flow)
{
    if (key && bx_token_ok(key, strlen(key), BX_ID_MAX))
        return 1;
    st->host->log(st->host, PAGOFLEX_LOG_ERROR,
                  "%s: operation id missing or not 1-%d printable ASCII characters", flow,
                  BX_ID_MAX);
    return 0;
}

/* POST /pay/{id}/capture {"amount":N} and POST /pay/{id}/void {}. */
static int bx_op_request(const bx_state *st, const pagoflex_flow_input *in,
                         pagoflex_arena *arena, pagoflex_http_request *out)
{
    int capture = in->flow == PAGOFLEX_FLOW_CAPTURE;
    const char *flow = capture ? "capture" : "void";
    const char *id;
    int rc = bx_bank_id(st, in->payment, flow, &id);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (!bx_key_ok(st, in->operation_id, flow))
        return PAGOFLEX_ERR_INVALID;
    if (capture && in->amount <= 0) {
        st->host->log(st->host, PAGOFLEX_LOG_ERROR, "capture %s: amount %lld must be > 0",
                      in->operation_id, (long long)in->amount);
        return PAGOFLEX_ERR_INVALID;
    }
    const char *path = st->host->arena_printf(arena, "/pay/%s/%s", id, flow);
    json_t *o = json_object();
    rc = PAGOFLEX_ERR_NOMEM;
    if (!path || !o || (capture && bx_set(o, "amount", json_integer((json_int_t)in->amount))))
        goto done;
    rc = bx_http(st, arena, "POST", path, in->operation_id, o, out);
done:
    json_decref(o);
    return rc;
}

/* POST /refunds: the refund id is both `ref` and the Idempotency-Key. */
static int bx_refund_request(const bx_state *st, const pagoflex_flow_input *in,
                             pagoflex_arena *arena, pagoflex_http_request *out)
{
    const pagoflex_payment *p = in->payment;
    const char *tx;
    const char *refund_id = in->refund_id ? in->refund_id : in->operation_id;
    int rc = bx_bank_id(st, p, "refund", &tx);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (!bx_key_ok(st, refund_id, "refund"))
        return PAGOFLEX_ERR_INVALID;
    if (in->amount <= 0 || !p->webhook_url || !*p->webhook_url) {
        st->host->log(st->host, PAGOFLEX_LOG_ERROR,
                      "refund %s: %s", refund_id,
                      in->amount <= 0 ? "amount must be > 0" : "no webhook_url for callback_url");
        return PAGOFLEX_ERR_INVALID;
    }
    json_t *o = json_object();
    rc = PAGOFLEX_ERR_NOMEM;
    if (!o || bx_set(o, "tx_id", json_string(tx)) ||
        bx_set(o, "amount", json_integer((json_int_t)in->amount)) ||
        bx_set(o, "ref", json_string(refund_id)) ||
        bx_set(o, "callback_url", json_string(p->webhook_url)))
        goto done;
    rc = bx_http(st, arena, "POST", "/refunds", refund_id, o, out);
done:
    json_decref(o);
    return rc;
}

/* GET /pay/{id} or GET /refunds/{id}: PAGOFLEX_ERR_NOT_FOUND when there is
 * no bank id to ask by yet, PAGOFLEX_ERR_INVALID for one unsafe in a URL. */
static int bx_sync_req(const bx_state *st, const char *what, const char *id,
                       pagoflex_arena *arena, pagoflex_http_request *out)
{
    if (!id || !*id)
        return PAGOFLEX_ERR_NOT_FOUND;
    if (!bx_segment_ok(id)) {
        st->host->log(st->host, PAGOFLEX_LOG_ERROR,
                      "%s sync: Banco X's id is not a safe URL segment", what);
        return PAGOFLEX_ERR_INVALID;
    }
    const char *path = st->host->arena_printf(
        arena, "%s/%s", strcmp(what, "refund") == 0 ? "/refunds" : "/pay", id);
    if (!path)
        return PAGOFLEX_ERR_NOMEM;
    return bx_http(st, arena, "GET", path, NULL, NULL, out);
}

/* ------------------------------------------------------- bank answers */

/* Answers after which the bank may still do the operation (or has). */
static int bx_status_transient(int status)
{
    /* 408: request not fully received; 409: a request with the same
     * Idempotency-Key is still in flight at the bank; 425 and 429: come back
     * later; 5xx: the bank's trouble. None of them is a final "no". */
    return status == 408 || status == 409 || status == 425 || status == 429 || status >= 500;
}

static int bx_on_transport(const bx_state *st, const pagoflex_http_response *resp,
                           pagoflex_arena *arena, bx_verdict *out)
{
    const pagoflex_host_services *host = st->host;
    switch (resp->transport) {
    case PAGOFLEX_TRANSPORT_TIMEOUT:
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_timeout",
                         "no answer from Banco X before the timeout; it may have done the "
                         "operation, which will be retried or synced");
    case PAGOFLEX_TRANSPORT_CONNECT:
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unreachable",
                         "could not connect to Banco X at %s; the operation will be retried",
                         st->base_url);
    default:
        return bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unreachable",
                         "the connection to Banco X failed before an answer; the operation "
                         "will be retried or synced");
    }
}

static int bx_unavailable(const bx_state *st, int status, pagoflex_arena *arena,
                          bx_verdict *out)
{
    return bx_result(st->host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unavailable",
                     "Banco X answered HTTP %d; the operation will be retried or synced",
                     status);
}

static int bx_bad_response(const bx_state *st, int status, pagoflex_arena *arena,
                           bx_verdict *out)
{
    return bx_result(st->host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_bad_response",
                     "Banco X answered HTTP %d with an unexpected body; the outcome is "
                     "unknown, it will be synced",
                     status);
}

/* A bank id in the answer: a printable string of at most BX_ID_MAX
 * bytes, copied into the arena; NULL otherwise. */
static const char *bx_answer_id(const pagoflex_host_services *host, pagoflex_arena *arena,
                                const json_t *v)
{
    if (!json_is_string(v) ||
        !bx_token_ok(json_string_value(v), json_string_length(v), BX_ID_MAX))
        return NULL;
    return host->arena_strdup(arena, json_string_value(v));
}

/* An amount in the answer: an integer > 0, else 0 ("not said"). */
static int64_t bx_answer_amount(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
}

/* The value of "status" in an answer, or NULL. */
static const char *bx_status_of(const json_t *o)
{
    return o ? json_string_value(json_object_get(o, "status")) : NULL;
}

static int bx_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* True when a 404 body is Banco X's own {"error":"not_found"}: the bank
 * says it has no such object. Any other 404 (a misrouted base URL, a
 * proxy, another service) says nothing. */
static int bx_is_not_found(const pagoflex_http_response *resp)
{
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *error = o ? json_string_value(json_object_get(o, "error")) : NULL;
    int yes = error && strcmp(error, "not_found") == 0;
    json_decref(o);
    return yes;
}

/* 4xx that is our fault: the bank refused the request before taking it;
 * keep the bank's error text. */
static int bx_on_client_error(const bx_state *st, const pagoflex_http_response *resp,
                              const char *code_422, pagoflex_arena *arena, bx_verdict *out)
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
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, NULL, code_422, "%s",
                       text ? text : "Banco X refused the request as invalid (HTTP 422)");
    else if (text)
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, NULL, "bank_client_error",
                       "Banco X refused the request with HTTP %d: %s", status, text);
    else /* not Banco X's own {"error": ...}: a proxy or a misrouted URL proves nothing */
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_bad_response",
                       "HTTP %d without Banco X's JSON error (a proxy or a wrong base URL?); "
                       "the outcome is unknown", status);
    json_decref(o);
    return rc;
}

/* AUTHORIZE 200: OK -> PENDING, REJECTED -> FAILED (the reason),
 * ACTION_REQUIRED -> REQUIRES_ACTION (redirect_url); anything else proves
 * nothing. */
static int bx_authorize_200(const bx_state *st, const pagoflex_http_response *resp,
                            pagoflex_arena *arena, bx_verdict *out)
{
    const pagoflex_host_services *host = st->host;
    int rc;
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *status = bx_status_of(o);
    const char *id = o ? bx_answer_id(host, arena, json_object_get(o, "id")) : NULL;
    const json_t *url = o ? json_object_get(o, "redirect_url") : NULL;
    if (bx_is(status, "OK") && id) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PENDING, id, NULL, NULL);
    } else if (bx_is(status, "REJECTED")) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, id, "rejected", "%s",
                       reason ? reason : "Banco X rejected the payment without a reason");
    } else if (bx_is(status, "ACTION_REQUIRED") && id && bx_url_ok(json_string_value(url))) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_REQUIRES_ACTION, id, NULL, NULL);
        if (rc == PAGOFLEX_OK &&
            !(out->redirect_url = host->arena_strdup(arena, json_string_value(url))))
            rc = PAGOFLEX_ERR_NOMEM;
    } else {
        rc = bx_bad_response(st, 200, arena, out);
    }
    json_decref(o);
    return rc;
}

/*
 * AUTHORIZE (POST /pay): transport failure, 408/409/425/429, 5xx ->
 * PROCESSING; 200 as bx_authorize_200; 401 -> FAILED (bank_auth); 422 ->
 * FAILED (bank_invalid_request); other 4xx -> FAILED (bank_client_error);
 * anything else -> PROCESSING (bank_bad_response).
 */
static int bx_authorize_map(const bx_state *st, const pagoflex_http_response *resp,
                            pagoflex_arena *arena, bx_verdict *out)
{
    if (resp->transport != PAGOFLEX_TRANSPORT_OK)
        return bx_on_transport(st, resp, arena, out);
    int status = resp->status;
    if (bx_status_transient(status))
        return bx_unavailable(st, status, arena, out);
    if (status == 200)
        return bx_authorize_200(st, resp, arena, out);
    if (status >= 400 && status < 500)
        return bx_on_client_error(st, resp, "bank_invalid_request", arena, out);
    return bx_bad_response(st, status, arena, out);
}

/*
 * CAPTURE and VOID: 200 CAPTURED / VOIDED -> SUCCEEDED (capture: amount =
 * captured); 409 not_capturable / not_voidable -> FAILED with that code and
 * the payment's status; 404 {"error":"not_found"} -> FAILED
 * (payment_not_found); 401 -> FAILED (bank_auth); 422 -> FAILED
 * (invalid_amount for a capture); 409 with another body, 408/425/429, 5xx,
 * transport failures and anything else -> PROCESSING.
 */
static int bx_op_map(const bx_state *st, const pagoflex_flow_input *in,
                     const pagoflex_http_response *resp, pagoflex_arena *arena, bx_verdict *out)
{
    const pagoflex_host_services *host = st->host;
    int capture = in->flow == PAGOFLEX_FLOW_CAPTURE;
    const char *done = capture ? "CAPTURED" : "VOIDED";
    const char *refusal = capture ? "not_capturable" : "not_voidable";
    const char *ref = in->payment->provider_reference_id;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK)
        return bx_on_transport(st, resp, arena, out);
    int status = resp->status, rc;
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *error = o ? json_string_value(json_object_get(o, "error")) : NULL;
    if (status == 200 && bx_is(bx_status_of(o), done)) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_SUCCEEDED, ref, NULL, NULL);
        if (capture)
            out->amount = bx_answer_amount(json_object_get(o, "captured"));
    } else if (status == 409 && bx_is(error, refusal)) {
        const char *now = bx_bank_text(host, arena, json_object_get(o, "status"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, ref, refusal,
                       "Banco X cannot %s the payment: it is %s", capture ? "capture" : "void",
                       now ? now : "in another status");
    } else if (status == 404 && bx_is(error, "not_found")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, ref, "payment_not_found",
                       "Banco X does not know payment %s", ref);
    } else if (bx_status_transient(status)) {
        rc = bx_unavailable(st, status, arena, out);
    } else if (status == 401 || status == 422) {
        rc = bx_on_client_error(st, resp, capture ? "invalid_amount" : "bank_invalid_request",
                                arena, out);
    } else {
        rc = bx_bad_response(st, status, arena, out);
    }
    json_decref(o);
    return rc;
}

/*
 * REFUND (POST /refunds): 200 OK -> PENDING with the rf_ id; 200 REJECTED
 * -> FAILED (rejected, the reason); 401 -> FAILED (bank_auth); 422 ->
 * FAILED (bank_invalid_request, the bank's text); transient and anything
 * else -> PROCESSING.
 */
static int bx_refund_map(const bx_state *st, const pagoflex_http_response *resp,
                         pagoflex_arena *arena, bx_verdict *out)
{
    const pagoflex_host_services *host = st->host;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK)
        return bx_on_transport(st, resp, arena, out);
    int status = resp->status;
    if (bx_status_transient(status))
        return bx_unavailable(st, status, arena, out);
    if (status == 401 || status == 422)
        return bx_on_client_error(st, resp, "bank_invalid_request", arena, out);
    if (status != 200)
        return bx_bad_response(st, status, arena, out);
    int rc;
    json_t *o = bx_json_object(resp->body, resp->body_len);
    const char *s = bx_status_of(o);
    const char *id = o ? bx_answer_id(host, arena, json_object_get(o, "id")) : NULL;
    if (bx_is(s, "OK") && id) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PENDING, id, NULL, NULL);
    } else if (bx_is(s, "REJECTED")) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, id, "rejected", "%s",
                       reason ? reason : "Banco X rejected the refund without a reason");
    } else {
        rc = bx_bad_response(st, 200, arena, out);
    }
    json_decref(o);
    return rc;
}

/* The common part of both syncs: PAGOFLEX_ERR_NOT_FOUND for Banco X's own
 * 404, PROCESSING for anything that is not a 200 JSON object, else 0 with
 * *o set (caller decrefs) and nothing written. */
static int bx_sync_common(const bx_state *st, const pagoflex_http_response *resp,
                          pagoflex_arena *arena, bx_verdict *out, json_t **o, int *rc)
{
    *o = NULL;
    if (resp->transport != PAGOFLEX_TRANSPORT_OK)
        *rc = bx_on_transport(st, resp, arena, out);
    else if (resp->status == 404)
        *rc = bx_is_not_found(resp) ? PAGOFLEX_ERR_NOT_FOUND : bx_bad_response(st, 404, arena, out);
    else if (resp->status != 200)
        *rc = bx_result(st->host, arena, out, PAGOFLEX_STATE_PROCESSING, NULL, "bank_unavailable",
                        "Banco X answered HTTP %d to a status query; it will be synced again",
                        resp->status);
    else if (!(*o = bx_json_object(resp->body, resp->body_len)))
        *rc = bx_bad_response(st, 200, arena, out);
    else
        return 0;
    return -1;
}

/*
 * PAYMENT_SYNC (GET /pay/{id}): PENDING -> PENDING, ACTION_REQUIRED ->
 * REQUIRES_ACTION (redirect_url if given), AUTHORIZED -> REQUIRES_CAPTURE,
 * APPROVED/CAPTURED -> SUCCEEDED (amount = captured), VOIDED -> CANCELED,
 * DECLINED -> FAILED (declined, the reason); 404 {"error":"not_found"} ->
 * PAGOFLEX_ERR_NOT_FOUND; anything else -> PROCESSING.
 */
static int bx_payment_sync_map(const bx_state *st, const pagoflex_payment *p,
                               const pagoflex_http_response *resp, pagoflex_arena *arena,
                               bx_verdict *out)
{
    const pagoflex_host_services *host = st->host;
    json_t *o;
    int rc;
    if (bx_sync_common(st, resp, arena, out, &o, &rc) != 0)
        return rc;
    const char *s = bx_status_of(o), *ref = p->provider_reference_id;
    if (bx_is(s, "PENDING")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PENDING, ref, NULL, NULL);
    } else if (bx_is(s, "ACTION_REQUIRED")) {
        const char *url = json_string_value(json_object_get(o, "redirect_url"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_REQUIRES_ACTION, ref, NULL, NULL);
        if (rc == PAGOFLEX_OK && bx_url_ok(url) &&
            !(out->redirect_url = host->arena_strdup(arena, url)))
            rc = PAGOFLEX_ERR_NOMEM;
    } else if (bx_is(s, "AUTHORIZED")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_REQUIRES_CAPTURE, ref, NULL, NULL);
    } else if (bx_is(s, "APPROVED") || bx_is(s, "CAPTURED")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_SUCCEEDED, ref, NULL, NULL);
        out->amount = bx_answer_amount(json_object_get(o, "captured"));
    } else if (bx_is(s, "VOIDED")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_CANCELED, ref, "voided",
                       "Banco X voided the authorization");
    } else if (bx_is(s, "DECLINED")) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, ref, "declined", "%s",
                       reason ? reason : "Banco X declined the payment");
    } else {
        rc = bx_bad_response(st, 200, arena, out);
    }
    json_decref(o);
    return rc;
}

/*
 * REFUND_SYNC (GET /refunds/{id}): PENDING -> PENDING, REFUNDED ->
 * SUCCEEDED (amount), REFUND_FAILED -> FAILED (refund_failed, the reason);
 * 404 {"error":"not_found"} -> PAGOFLEX_ERR_NOT_FOUND; else PROCESSING.
 */
static int bx_refund_sync_map(const bx_state *st, const pagoflex_flow_input *in,
                              const pagoflex_http_response *resp, pagoflex_arena *arena,
                              bx_verdict *out)
{
    const pagoflex_host_services *host = st->host;
    json_t *o;
    int rc;
    if (bx_sync_common(st, resp, arena, out, &o, &rc) != 0)
        return rc;
    const char *s = bx_status_of(o), *ref = in->refund_provider_reference_id;
    if (bx_is(s, "PENDING")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_PENDING, ref, NULL, NULL);
    } else if (bx_is(s, "REFUNDED")) {
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_SUCCEEDED, ref, NULL, NULL);
        out->amount = bx_answer_amount(json_object_get(o, "amount"));
    } else if (bx_is(s, "REFUND_FAILED")) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        rc = bx_result(host, arena, out, PAGOFLEX_STATE_FAILED, ref, "refund_failed", "%s",
                       reason ? reason : "Banco X could not refund the payment");
    } else {
        rc = bx_bad_response(st, 200, arena, out);
    }
    json_decref(o);
    return rc;
}

/* ---------------------------------------------------------- flows (1.2) */

/* True when the host's flow input is complete enough to read. */
static int bx_input_ok(const pagoflex_flow_input *in)
{
    return in && PAGOFLEX_HAS_FIELD(in, pagoflex_flow_input, reason) && in->payment;
}

/*
 * Describe the bank call of in->flow (ABI 1.2): AUTHORIZE POST /pay,
 * CAPTURE POST /pay/{id}/capture, VOID POST /pay/{id}/void, REFUND POST
 * /refunds (Idempotency-Key: the operation id, the refund id for refunds),
 * PAYMENT_SYNC GET /pay/{id}, REFUND_SYNC GET /refunds/{rf_id}. Everything
 * in *out lives in `arena`; *out is written only on success.
 * PAGOFLEX_ERR_UNSUPPORTED (currency, payment method),
 * PAGOFLEX_ERR_INVALID (malformed input, no bank id for capture, void or
 * refund), PAGOFLEX_ERR_NOT_FOUND (syncs: no bank id yet),
 * PAGOFLEX_ERR_NOMEM.
 */
static int bx_flow_request(void *state, const pagoflex_flow_input *in, pagoflex_arena *arena,
                           pagoflex_http_request *out)
{
    const bx_state *st = state;
    if (!st || !bx_input_ok(in) || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    switch (in->flow) {
    case PAGOFLEX_FLOW_AUTHORIZE:
        return bx_authorize_request(st, in, 0, arena, out);
    case PAGOFLEX_FLOW_CAPTURE:
    case PAGOFLEX_FLOW_VOID:
        return bx_op_request(st, in, arena, out);
    case PAGOFLEX_FLOW_REFUND:
        return bx_refund_request(st, in, arena, out);
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
        return bx_sync_req(st, "payment", in->payment->provider_reference_id, arena, out);
    case PAGOFLEX_FLOW_REFUND_SYNC:
        return bx_sync_req(st, "refund", in->refund_provider_reference_id, arena, out);
    }
    return PAGOFLEX_ERR_UNSUPPORTED;
}

/*
 * Map the bank's answer to in->flow's request (ABI 1.2; the mappings are
 * above each bx_*_map). Never FAILED for a timeout, a connection error,
 * 429 or 5xx. *out (strings in `arena`) is written only on PAGOFLEX_OK,
 * fields the host's struct lacks left alone; PAGOFLEX_ERR_NOT_FOUND (syncs:
 * Banco X's own 404), PAGOFLEX_ERR_INVALID, PAGOFLEX_ERR_NOMEM otherwise.
 */
static int bx_flow_response(void *state, const pagoflex_flow_input *in,
                            const pagoflex_http_response *resp, pagoflex_arena *arena,
                            pagoflex_flow_result *out)
{
    const bx_state *st = state;
    if (!st || !bx_input_ok(in) || !resp || !arena || !out ||
        !PAGOFLEX_HAS_FIELD(out, pagoflex_flow_result, error_message))
        return PAGOFLEX_ERR_INVALID;
    bx_verdict v = {0};
    int rc = PAGOFLEX_ERR_UNSUPPORTED;
    switch (in->flow) {
    case PAGOFLEX_FLOW_AUTHORIZE:
        rc = bx_authorize_map(st, resp, arena, &v);
        break;
    case PAGOFLEX_FLOW_CAPTURE:
    case PAGOFLEX_FLOW_VOID:
        rc = bx_op_map(st, in, resp, arena, &v);
        break;
    case PAGOFLEX_FLOW_REFUND:
        rc = bx_refund_map(st, resp, arena, &v);
        break;
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
        rc = bx_payment_sync_map(st, in->payment, resp, arena, &v);
        break;
    case PAGOFLEX_FLOW_REFUND_SYNC:
        rc = bx_refund_sync_map(st, in, resp, arena, &v);
        break;
    }
    if (rc != PAGOFLEX_OK)
        return rc;
    out->state = v.state;
    out->provider_reference_id = v.ref;
    out->error_code = v.code;
    out->error_message = v.msg;
    if (PAGOFLEX_HAS_FIELD(out, pagoflex_flow_result, amount))
        out->amount = v.amount;
    if (PAGOFLEX_HAS_FIELD(out, pagoflex_flow_result, redirect_url))
        out->redirect_url = v.redirect_url;
    return PAGOFLEX_OK;
}

/* ------------------------------------------- 1.0 / 1.1 entry points */

/* Fill a 1.0 result from a verdict, in the states a 1.0/1.1 host knows
 * for a payment it always captures: REQUIRES_ACTION and REQUIRES_CAPTURE
 * (the bank holds it, the result comes by webhook) -> PENDING; CANCELED
 * (voided: no money moved) -> FAILED. */
static int bx_legacy_out(const bx_state *st, pagoflex_arena *arena, const bx_verdict *v,
                         pagoflex_payment_result *out)
{
    pagoflex_payment_result r = {.state = v->state, .provider_reference_id = v->ref,
                                 .error_code = v->code, .error_message = v->msg};
    if (v->state == PAGOFLEX_STATE_REQUIRES_ACTION || v->state == PAGOFLEX_STATE_REQUIRES_CAPTURE) {
        r.state = PAGOFLEX_STATE_PENDING;
    } else if (v->state == PAGOFLEX_STATE_CANCELED) {
        r.state = PAGOFLEX_STATE_FAILED;
        if (!r.error_code && !(r.error_code = st->host->arena_strdup(arena, "voided")))
            return PAGOFLEX_ERR_NOMEM;
    }
    *out = r;
    return PAGOFLEX_OK;
}

/* The flow input a 1.0/1.1 host implies: the payment, captured at once. */
static pagoflex_flow_input bx_legacy_input(pagoflex_flow flow, const pagoflex_payment *p)
{
    return (pagoflex_flow_input){.size = sizeof(pagoflex_flow_input), .flow = flow,
                                 .payment = p, .operation_id = p->id, .capture = 1};
}

/*
 * 1.0 build_request: POST {base}/pay for `payment` with the v1 body
 * (amount, currency, ref, callback_url, description; Banco X captures by
 * default) and the payment id as Idempotency-Key. *out (in `arena`) is
 * written only on success. PAGOFLEX_ERR_UNSUPPORTED for a currency Banco X
 * does not take, PAGOFLEX_ERR_INVALID for a malformed payment,
 * PAGOFLEX_ERR_NOMEM.
 */
static int bx_build_request(void *state, const pagoflex_payment *payment,
                            pagoflex_arena *arena, pagoflex_http_request *out)
{
    const bx_state *st = state;
    if (!st || !payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    pagoflex_flow_input in = bx_legacy_input(PAGOFLEX_FLOW_AUTHORIZE, payment);
    return bx_authorize_request(st, &in, 1, arena, out);
}

/*
 * 1.0 handle_response: the AUTHORIZE mapping (bx_authorize_map), in 1.0
 * states (bx_legacy_out). Any body is safe. *out (strings in `arena`) is
 * written only on success; PAGOFLEX_ERR_NOMEM or PAGOFLEX_ERR_INVALID.
 */
static int bx_handle_response(void *state, const pagoflex_payment *payment,
                              const pagoflex_http_response *resp, pagoflex_arena *arena,
                              pagoflex_payment_result *out)
{
    const bx_state *st = state;
    (void)payment;
    if (!st || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    bx_verdict v = {0};
    int rc = bx_authorize_map(st, resp, arena, &v);
    return rc == PAGOFLEX_OK ? bx_legacy_out(st, arena, &v, out) : rc;
}

/*
 * 1.1 sync_request: GET {base}/pay/{provider_reference_id}. *out (in
 * `arena`) is written only on success. PAGOFLEX_ERR_NOT_FOUND when the
 * payment has no bank id yet (the host re-sends POST /pay instead, safe
 * under its Idempotency-Key); PAGOFLEX_ERR_INVALID for an id unsafe in a
 * URL; PAGOFLEX_ERR_NOMEM.
 */
static int bx_sync_request(void *state, const pagoflex_payment *payment, pagoflex_arena *arena,
                           pagoflex_http_request *out)
{
    const bx_state *st = state;
    if (!st || !payment || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    return bx_sync_req(st, "payment", payment->provider_reference_id, arena, out);
}

/*
 * 1.1 sync_response: the PAYMENT_SYNC mapping (bx_payment_sync_map) in 1.0
 * states (bx_legacy_out): PENDING, SUCCEEDED, FAILED or PROCESSING;
 * PAGOFLEX_ERR_NOT_FOUND for Banco X's own 404 {"error":"not_found"}, a
 * 404 with any other body is PROCESSING. *out (strings in `arena`) is
 * written only on PAGOFLEX_OK.
 */
static int bx_sync_response(void *state, const pagoflex_payment *payment,
                            const pagoflex_http_response *resp, pagoflex_arena *arena,
                            pagoflex_payment_result *out)
{
    const bx_state *st = state;
    if (!st || !payment || !resp || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    bx_verdict v = {0};
    int rc = bx_payment_sync_map(st, payment, resp, arena, &v);
    return rc == PAGOFLEX_OK ? bx_legacy_out(st, arena, &v, out) : rc;
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

/* 1.2 webhook_verify: the same check over the whole request. */
static int bx_webhook_verify(void *state, const pagoflex_webhook_request *req,
                             pagoflex_arena *arena)
{
    if (!req || !PAGOFLEX_HAS_FIELD(req, pagoflex_webhook_request, body_len))
        return PAGOFLEX_ERR_SIGNATURE;
    return bx_verify_webhook(state, req->headers, req->header_count, req->body, req->body_len,
                             arena);
}

/* ---------------------------------------------------------- parse_webhook */

/* An optional id field: absent or null leaves *out NULL; anything but a
 * usable string is garbage (-1). */
static int bx_opt_id(const pagoflex_host_services *host, pagoflex_arena *arena, const json_t *o,
                     const char *key, const char **out)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    return (*out = bx_json_text(host, arena, v, BX_ID_MAX)) ? 0 : -1;
}

/* Payment event statuses: APPROVED/CAPTURED -> SUCCEEDED (amount),
 * AUTHORIZED -> REQUIRES_CAPTURE, VOIDED -> CANCELED, DECLINED -> FAILED. */
static int bx_payment_event(const pagoflex_host_services *host, pagoflex_arena *arena,
                            const json_t *o, const char *status, pagoflex_event *ev)
{
    ev->kind = PAGOFLEX_EVENT_PAYMENT;
    if (bx_opt_id(host, arena, o, "tx_id", &ev->tx_id) ||
        bx_opt_id(host, arena, o, "ref", &ev->payment_id))
        return PAGOFLEX_ERR_INVALID;
    if (bx_is(status, "APPROVED") || bx_is(status, "CAPTURED")) {
        ev->state = PAGOFLEX_STATE_SUCCEEDED;
        ev->amount = bx_answer_amount(json_object_get(o, "amount"));
    } else if (bx_is(status, "AUTHORIZED")) {
        ev->state = PAGOFLEX_STATE_REQUIRES_CAPTURE;
    } else if (bx_is(status, "VOIDED")) {
        ev->state = PAGOFLEX_STATE_CANCELED;
    } else if (bx_is(status, "DECLINED")) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        ev->state = PAGOFLEX_STATE_FAILED;
        ev->error_code = host->arena_strdup(arena, "declined");
        ev->error_message =
            reason ? reason : host->arena_strdup(arena, "Banco X declined the payment");
        if (!ev->error_code || !ev->error_message)
            return PAGOFLEX_ERR_NOMEM;
    } else {
        return PAGOFLEX_ERR_INVALID;
    }
    return PAGOFLEX_OK;
}

/* Refund event statuses: REFUNDED -> SUCCEEDED (amount), REFUND_FAILED ->
 * FAILED. `ref` is our refund id, `refund_id` the bank's. */
static int bx_refund_event(const pagoflex_host_services *host, pagoflex_arena *arena,
                           const json_t *o, const char *status, pagoflex_event *ev)
{
    ev->kind = PAGOFLEX_EVENT_REFUND;
    if (bx_opt_id(host, arena, o, "tx_id", &ev->tx_id) ||
        bx_opt_id(host, arena, o, "ref", &ev->refund_id) ||
        bx_opt_id(host, arena, o, "refund_id", &ev->refund_provider_reference_id) ||
        (!ev->refund_id && !ev->refund_provider_reference_id))
        return PAGOFLEX_ERR_INVALID;
    ev->amount = bx_answer_amount(json_object_get(o, "amount"));
    if (bx_is(status, "REFUNDED")) {
        ev->state = PAGOFLEX_STATE_SUCCEEDED;
    } else if (bx_is(status, "REFUND_FAILED")) {
        const char *reason = bx_bank_text(host, arena, json_object_get(o, "reason"));
        ev->state = PAGOFLEX_STATE_FAILED;
        ev->error_code = host->arena_strdup(arena, "refund_failed");
        ev->error_message =
            reason ? reason : host->arena_strdup(arena, "Banco X could not refund the payment");
        if (!ev->error_code || !ev->error_message)
            return PAGOFLEX_ERR_NOMEM;
    } else {
        return PAGOFLEX_ERR_INVALID;
    }
    return PAGOFLEX_OK;
}

/*
 * Parse a verified webhook body into one event (strings in `arena`):
 * `type` missing, null or "payment" -> bx_payment_event, "refund" ->
 * bx_refund_event, any other string -> PAGOFLEX_EVENT_IGNORED with its
 * event_id and type. event_id is required. *ev is written only on
 * success; PAGOFLEX_ERR_INVALID (logged) for anything else, NOMEM.
 */
static int bx_parse_event(const bx_state *st, const unsigned char *body, size_t body_len,
                          pagoflex_arena *arena, pagoflex_event *out)
{
    const pagoflex_host_services *host = st->host;
    int rc = PAGOFLEX_ERR_INVALID;
    pagoflex_event ev = {0};
    json_t *o = bx_json_object(body, body_len);
    if (!o || !(ev.event_id = bx_json_text(host, arena, json_object_get(o, "event_id"),
                                           BX_ID_MAX)))
        goto fail;
    const json_t *type = json_object_get(o, "type");
    const char *status = json_string_value(json_object_get(o, "status"));
    if (type && !json_is_null(type) &&
        !(ev.type = bx_json_text(host, arena, type, BX_ID_MAX)))
        goto fail;
    if (!ev.type || strcmp(ev.type, "payment") == 0) {
        rc = status ? bx_payment_event(host, arena, o, status, &ev) : PAGOFLEX_ERR_INVALID;
    } else if (strcmp(ev.type, "refund") == 0) {
        rc = status ? bx_refund_event(host, arena, o, status, &ev) : PAGOFLEX_ERR_INVALID;
    } else {
        ev.kind = PAGOFLEX_EVENT_IGNORED;
        rc = PAGOFLEX_OK;
    }
    if (rc != PAGOFLEX_OK)
        goto fail;
    json_decref(o);
    *out = ev;
    return PAGOFLEX_OK;
fail:
    if (rc == PAGOFLEX_ERR_INVALID)
        host->log(host, PAGOFLEX_LOG_WARN,
                  "webhook body is not a Banco X event (JSON object with event_id, and for "
                  "type payment or refund a status Banco X documents)");
    json_decref(o);
    return rc;
}

/*
 * 1.0 parse_webhook: a payment event (bx_parse_event) in 1.0 terms:
 * APPROVED/CAPTURED -> SUCCEEDED, DECLINED -> FAILED ("declined"), VOIDED
 * -> FAILED ("voided"). tx_id and ref are optional. A refund, an ignored
 * type or AUTHORIZED (a 1.1 host never authorizes only) is
 * PAGOFLEX_ERR_INVALID. *out (strings in `arena`) is written only on
 * success; PAGOFLEX_ERR_NOMEM.
 */
static int bx_parse_webhook(void *state, const unsigned char *body, size_t body_len,
                            pagoflex_arena *arena, pagoflex_webhook_event *out)
{
    const bx_state *st = state;
    if (!st || !arena || !out)
        return PAGOFLEX_ERR_INVALID;
    pagoflex_event ev;
    int rc = bx_parse_event(st, body, body_len, arena, &ev);
    if (rc != PAGOFLEX_OK)
        return rc;
    pagoflex_webhook_event r = {.event_id = ev.event_id, .tx_id = ev.tx_id,
                                .payment_id = ev.payment_id, .state = ev.state,
                                .error_code = ev.error_code, .error_message = ev.error_message};
    if (ev.kind != PAGOFLEX_EVENT_PAYMENT || ev.state == PAGOFLEX_STATE_REQUIRES_CAPTURE) {
        st->host->log(st->host, PAGOFLEX_LOG_WARN,
                      "webhook %s: a %s event this host version cannot apply", ev.event_id,
                      ev.kind == PAGOFLEX_EVENT_PAYMENT ? "payment AUTHORIZED"
                                                        : ev.type ? ev.type : "?");
        return PAGOFLEX_ERR_INVALID;
    }
    if (ev.state == PAGOFLEX_STATE_CANCELED) {
        r.state = PAGOFLEX_STATE_FAILED;
        if (!(r.error_code = st->host->arena_strdup(arena, "voided")))
            return PAGOFLEX_ERR_NOMEM;
    }
    *out = r;
    return PAGOFLEX_OK;
}

/*
 * 1.2 webhook_parse: one Banco X delivery carries one event
 * (bx_parse_event); an unknown type is an IGNORED event, never an error.
 * The answer is the host's default. Strings and the event array live in
 * `arena`; *out is written only on success. PAGOFLEX_ERR_INVALID for
 * garbage, PAGOFLEX_ERR_NOMEM.
 */
static int bx_webhook_parse(void *state, const pagoflex_webhook_request *req,
                            pagoflex_arena *arena, pagoflex_webhook_parsed *out)
{
    const bx_state *st = state;
    if (!st || !req || !PAGOFLEX_HAS_FIELD(req, pagoflex_webhook_request, body_len) || !arena ||
        !out || !PAGOFLEX_HAS_FIELD(out, pagoflex_webhook_parsed, event_count))
        return PAGOFLEX_ERR_INVALID;
    pagoflex_event *ev = st->host->arena_alloc(arena, sizeof *ev);
    if (!ev)
        return PAGOFLEX_ERR_NOMEM;
    int rc = bx_parse_event(st, req->body, req->body_len, arena, ev);
    if (rc != PAGOFLEX_OK)
        return rc;
    out->events = ev;
    out->event_count = 1;
    return PAGOFLEX_OK;
}

/* ---------------------------------------------------------- webhook_sample */

/* Banco X's webhook status for an event's state, or NULL. */
static const char *bx_sample_status(const pagoflex_event *ev)
{
    if (ev->kind == PAGOFLEX_EVENT_REFUND)
        return ev->state == PAGOFLEX_STATE_SUCCEEDED ? "REFUNDED"
               : ev->state == PAGOFLEX_STATE_FAILED  ? "REFUND_FAILED"
                                                     : NULL;
    switch (ev->state) {
    case PAGOFLEX_STATE_SUCCEEDED:
        return "APPROVED";
    case PAGOFLEX_STATE_REQUIRES_CAPTURE:
        return "AUTHORIZED";
    case PAGOFLEX_STATE_CANCELED:
        return "VOIDED";
    case PAGOFLEX_STATE_FAILED:
        return "DECLINED";
    default:
        return NULL;
    }
}

/* Set key to the string s when s is set. */
static int bx_set_opt(json_t *o, const char *key, const char *s)
{
    return s ? bx_set(o, key, json_string(s)) : 0;
}

/* The JSON body Banco X would send for `ev` at `now` (caller decrefs), or
 * NULL with *rc set. */
static json_t *bx_sample_body(const pagoflex_event *ev, int64_t now, int *rc)
{
    const char *status = ev->kind == PAGOFLEX_EVENT_IGNORED ? NULL : bx_sample_status(ev);
    *rc = PAGOFLEX_ERR_UNSUPPORTED;
    if (!ev->event_id || (ev->kind != PAGOFLEX_EVENT_IGNORED && !status))
        return NULL;
    char when[32];
    time_t t = (time_t)now;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return NULL;
    *rc = PAGOFLEX_ERR_NOMEM;
    json_t *o = json_object();
    if (!o || bx_set(o, "event_id", json_string(ev->event_id)))
        goto fail;
    if (ev->kind == PAGOFLEX_EVENT_IGNORED) {
        if (bx_set(o, "type", json_string(ev->type ? ev->type : "dispute")))
            goto fail;
    } else if (ev->kind == PAGOFLEX_EVENT_REFUND) {
        if (bx_set(o, "type", json_string("refund")) ||
            bx_set_opt(o, "refund_id", ev->refund_provider_reference_id) ||
            bx_set_opt(o, "ref", ev->refund_id) || bx_set_opt(o, "tx_id", ev->tx_id))
            goto fail;
    } else if (bx_set(o, "type", json_string("payment")) || bx_set_opt(o, "tx_id", ev->tx_id) ||
               bx_set_opt(o, "ref", ev->payment_id)) {
        goto fail;
    }
    if (bx_set_opt(o, "status", status) ||
        (ev->amount > 0 && bx_set(o, "amount", json_integer((json_int_t)ev->amount))) ||
        bx_set(o, "currency", json_string("ARS")) ||
        bx_set(o, "occurred_at", json_string(when)))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/*
 * Test support (ABI 1.2): the webhook request Banco X would send for
 * `event` at `now`: POST /webhooks/bancox, the contract's JSON body for the
 * event's kind, Content-Type and X-BancoX-Signature t=<now>,v1=<HMAC under
 * BANCOX_SECRET>. Everything in *out lives in `arena`; *out is written only
 * on success. PAGOFLEX_ERR_UNSUPPORTED for an event Banco X never sends
 * (no event_id, a state without a Banco X status), PAGOFLEX_ERR_NOMEM,
 * PAGOFLEX_ERR_INTERNAL when the HMAC fails.
 */
static int bx_webhook_sample(void *state, const pagoflex_event *event, int64_t now,
                             pagoflex_arena *arena, pagoflex_webhook_request *out)
{
    const bx_state *st = state;
    if (!st || !event || !arena || !out || now < 0)
        return PAGOFLEX_ERR_INVALID;
    const pagoflex_host_services *host = st->host;
    int rc;
    json_t *o = bx_sample_body(event, now, &rc);
    if (!o)
        return rc;
    unsigned char mac[32];
    char hex[65];
    rc = PAGOFLEX_ERR_NOMEM;
    size_t len = json_dumpb(o, NULL, 0, JSON_COMPACT);
    char *ts = host->arena_printf(arena, "%lld", (long long)now);
    char *body = len && ts ? host->arena_alloc(arena, len + 1) : NULL;
    char *msg = body ? host->arena_alloc(arena, strlen(ts) + 1 + len) : NULL;
    pagoflex_header *h = host->arena_alloc(arena, 2 * sizeof *h);
    if (!msg || !h || json_dumpb(o, body, len, JSON_COMPACT) != len)
        goto done;
    size_t tl = strlen(ts);
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    rc = PAGOFLEX_ERR_INTERNAL;
    if (host->hmac_sha256(st->secret, strlen(st->secret), msg, tl + 1 + len, mac) != PAGOFLEX_OK)
        goto done;
    host->hex_encode(mac, sizeof mac, hex);
    h[0].name = "Content-Type";
    h[0].value = "application/json";
    h[1].name = BX_SIG_HEADER;
    rc = PAGOFLEX_ERR_NOMEM;
    if (!(h[1].value = host->arena_printf(arena, "t=%s,v1=%s", ts, hex)))
        goto done;
    *out = (pagoflex_webhook_request){.size = sizeof(pagoflex_webhook_request),
                                      .method = "POST", .path = "/webhooks/bancox",
                                      .query = "", .headers = h, .header_count = 2,
                                      .body = (const unsigned char *)body, .body_len = len};
    rc = PAGOFLEX_OK;
done:
    host->wipe(mac, sizeof mac);
    json_decref(o);
    return rc;
}

/* ------------------------------------------------------------- descriptor */

static const struct pagoflex_connector bx_connector = {
    PAGOFLEX_CONNECTOR_HEADER,
    .key = "BANCO_X",
    .webhook_path = "bancox",
    .version = "1.2.0",
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
    .flows = PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_CAPTURE) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_VOID) | PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_PAYMENT_SYNC) |
             PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND_SYNC),
    .flow_request = bx_flow_request,
    .flow_response = bx_flow_response,
    .webhook_verify = bx_webhook_verify,
    .webhook_parse = bx_webhook_parse,
    .webhook_sample = bx_webhook_sample,
    .settings = NULL, /* the base URL stays the BANCOX_BASE_URL credential */
};

/* The plugin's only exported symbol: returns the constant descriptor. */
PAGOFLEX_DEFINE_CONNECTOR(bx_connector)
