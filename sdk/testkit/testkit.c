/* testkit.c - a stand-in host for connector unit tests (see
 * pagoflex/testkit.h). The 1.2 services (encodings, currencies, Standard
 * Webhooks, JWS) are the host's own modules, compiled into the kit's
 * archive; everything else here is the kit's own. A plugin author needs the
 * installed SDK, libcrypto, libcurl and Jansson. */
#include <pagoflex/testkit.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "currency.h"
#include "digest.h"
#include "jws.h"
#include "stdwebhooks.h"
#include "urlenc.h"

#define TESTKIT_MAX_CREDENTIALS 64
#define TESTKIT_LOG_MAX 1024

/* One malloc'd block of the arena; data follows the (aligned) header. */
typedef struct testkit_block {
    struct testkit_block *next;
    size_t size;
    max_align_t align_;
} testkit_block;

struct pagoflex_arena {
    testkit_block *blocks;
};

struct pagoflex_credentials {
    size_t count;
    char *names[TESTKIT_MAX_CREDENTIALS];
    char *values[TESTKIT_MAX_CREDENTIALS];
    /* 1.2: non-secret settings (host->setting) and the arena host->init_arena
     * hands out, kept until pagoflex_testkit_free (it outlives reset). */
    size_t setting_count;
    char *setting_names[TESTKIT_MAX_CREDENTIALS];
    char *setting_values[TESTKIT_MAX_CREDENTIALS];
    struct pagoflex_arena init_arena;
};

struct pagoflex_testkit {
    pagoflex_host_services table; /* first: a plugin's `host` is the kit */
    struct pagoflex_arena arena;
    struct pagoflex_credentials creds;
    int quiet;
    size_t log_counts[4];
    char last_log[TESTKIT_LOG_MAX];
    unsigned long next_payment;
};

static int64_t testkit_fixed_now;

/* ---- arena ------------------------------------------------------------ */

static void *testkit_arena_alloc(pagoflex_arena *arena, size_t size)
{
    if (!arena || size > SIZE_MAX / 2)
        return NULL;
    testkit_block *b = calloc(1, sizeof *b + (size ? size : 1));
    if (!b)
        return NULL;
    b->size = size;
    b->next = arena->blocks;
    arena->blocks = b;
    return b + 1;
}

static char *testkit_arena_strndup(pagoflex_arena *arena, const char *s, size_t n)
{
    if (!s)
        return NULL;
    size_t len = strnlen(s, n);
    char *out = testkit_arena_alloc(arena, len + 1);
    if (out)
        memcpy(out, s, len);
    return out;
}

static char *testkit_arena_strdup(pagoflex_arena *arena, const char *s)
{
    return s ? testkit_arena_strndup(arena, s, strlen(s)) : NULL;
}

static char *testkit_arena_vprintf(pagoflex_arena *arena, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    char *out = testkit_arena_alloc(arena, (size_t)n + 1);
    if (out && vsnprintf(out, (size_t)n + 1, fmt, ap) != n)
        return NULL;
    return out;
}

static char *testkit_arena_printf(pagoflex_arena *arena, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = testkit_arena_vprintf(arena, fmt, ap);
    va_end(ap);
    return out;
}

static void testkit_arena_clear(pagoflex_arena *arena)
{
    testkit_block *b = arena->blocks;
    while (b) {
        testkit_block *next = b->next;
        free(b);
        b = next;
    }
    arena->blocks = NULL;
}

/* ---- services --------------------------------------------------------- */

static void testkit_log(const pagoflex_host_services *host, pagoflex_log_level level,
                        const char *fmt, ...)
{
    pagoflex_testkit *tk = (pagoflex_testkit *)host;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    int lv = (int)level;
    if (lv < 0 || lv > 3)
        lv = 3;
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(tk->last_log, sizeof tk->last_log, fmt, ap) < 0)
        tk->last_log[0] = '\0';
    va_end(ap);
    tk->log_counts[lv]++;
    if (!tk->quiet)
        fprintf(stderr, "testkit: plugin %s: %s\n", names[lv], tk->last_log);
}

static const char *testkit_credential(const pagoflex_credentials *creds, const char *name)
{
    for (size_t i = 0; creds && name && i < creds->count; i++)
        if (strcmp(creds->names[i], name) == 0)
            return creds->values[i];
    return NULL;
}

static const char *testkit_setting(const pagoflex_credentials *creds, const char *name)
{
    for (size_t i = 0; creds && name && i < creds->setting_count; i++)
        if (strcmp(creds->setting_names[i], name) == 0)
            return creds->setting_values[i];
    return NULL;
}

/* The kit's credentials are its own (pagoflex_testkit_credentials). */
static pagoflex_arena *testkit_init_arena(const pagoflex_credentials *creds)
{
    return creds ? &((struct pagoflex_credentials *)creds)->init_arena : NULL;
}

static int testkit_hmac(const void *key, size_t key_len, const void *data, size_t data_len,
                        unsigned char out[32])
{
    unsigned int len = 0;
    if (key_len > 0x7fffffff ||
        !HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &len) || len != 32)
        return PAGOFLEX_ERR_INTERNAL;
    return PAGOFLEX_OK;
}

static void testkit_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int testkit_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int testkit_hex_decode(const char *in, size_t len, unsigned char *out, size_t out_cap,
                              size_t *out_len)
{
    if (len % 2 || len / 2 > out_cap)
        return PAGOFLEX_ERR_INVALID;
    for (size_t i = 0; i < len; i += 2) {
        int hi = testkit_hex_digit(in[i]), lo = testkit_hex_digit(in[i + 1]);
        if (hi < 0 || lo < 0)
            return PAGOFLEX_ERR_INVALID;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = len / 2;
    return PAGOFLEX_OK;
}

static char *testkit_base64_encode(pagoflex_arena *arena, const unsigned char *in, size_t len)
{
    if (len > (size_t)(1 << 30))
        return NULL;
    char *out = testkit_arena_alloc(arena, 4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

static int testkit_base64_decode(pagoflex_arena *arena, const char *in, size_t len,
                                 unsigned char **out, size_t *out_len)
{
    if (len % 4 || len > (size_t)(1 << 30))
        return PAGOFLEX_ERR_INVALID;
    unsigned char *buf = testkit_arena_alloc(arena, 3 * (len / 4) + 1);
    if (!buf)
        return PAGOFLEX_ERR_NOMEM;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
    if (n < 0)
        return PAGOFLEX_ERR_INVALID;
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    *out = buf;
    *out_len = (size_t)n;
    return PAGOFLEX_OK;
}

static int testkit_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

static void testkit_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

static const char *testkit_header_get(const pagoflex_header *headers, size_t count,
                                      const char *name)
{
    for (size_t i = 0; headers && name && i < count; i++)
        if (headers[i].name && strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

static int64_t testkit_now(void)
{
    return testkit_fixed_now ? testkit_fixed_now : (int64_t)time(NULL);
}

/* 1.2 services: the host's implementations on the kit's arena. */

static char *testkit_url_encode(pagoflex_arena *arena, const char *s, size_t len)
{
    return urlenc_encode(testkit_arena_alloc, arena, s, len);
}

static char *testkit_form_encode(pagoflex_arena *arena, const pagoflex_header *pairs, size_t n)
{
    return urlenc_form_encode(testkit_arena_alloc, arena, pairs, n);
}

static int testkit_form_decode(pagoflex_arena *arena, const char *s, size_t len,
                               pagoflex_header **pairs, size_t *n)
{
    return urlenc_form_decode(testkit_arena_alloc, arena, s, len, pairs, n);
}

static char *testkit_amount_to_decimal(pagoflex_arena *arena, int64_t minor, const char *currency)
{
    return currency_amount_to_decimal(testkit_arena_alloc, arena, minor, currency);
}

static int testkit_stdwebhooks_sign(pagoflex_arena *arena, const char *secret,
                                    const char *msg_id, int64_t timestamp,
                                    const unsigned char *body, size_t body_len,
                                    char **signature)
{
    return stdwh_sign(testkit_arena_alloc, arena, secret, msg_id, timestamp, body, body_len,
                      signature);
}

/* ---- the kit ---------------------------------------------------------- */

pagoflex_testkit *pagoflex_testkit_new(void)
{
    pagoflex_testkit *tk = calloc(1, sizeof *tk);
    if (!tk)
        return NULL;
    pagoflex_host_services *t = &tk->table;
    t->size = (uint32_t)sizeof *t;
    t->abi_major = PAGOFLEX_ABI_MAJOR;
    t->abi_minor = PAGOFLEX_ABI_MINOR;
    t->log = testkit_log;
    t->credential = testkit_credential;
    t->arena_alloc = testkit_arena_alloc;
    t->arena_strdup = testkit_arena_strdup;
    t->arena_strndup = testkit_arena_strndup;
    t->arena_printf = testkit_arena_printf;
    t->hmac_sha256 = testkit_hmac;
    t->hex_encode = testkit_hex_encode;
    t->hex_decode = testkit_hex_decode;
    t->base64_encode = testkit_base64_encode;
    t->base64_decode = testkit_base64_decode;
    t->ct_equal = testkit_ct_equal;
    t->wipe = testkit_wipe;
    t->header_get = testkit_header_get;
    t->now = testkit_now;
    t->url_encode = testkit_url_encode;
    t->form_encode = testkit_form_encode;
    t->form_decode = testkit_form_decode;
    t->currency_exponent = currency_exponent;
    t->amount_to_decimal = testkit_amount_to_decimal;
    t->amount_from_decimal = currency_amount_from_decimal;
    t->setting = testkit_setting;
    t->init_arena = testkit_init_arena;
    t->sha256 = digest_sha256;
    t->stdwebhooks_sign = testkit_stdwebhooks_sign;
    t->stdwebhooks_verify = stdwh_verify;
    t->jws_verify = jws_verify;
    return tk;
}

void pagoflex_testkit_free(pagoflex_testkit *tk)
{
    if (!tk)
        return;
    for (size_t i = 0; i < tk->creds.count; i++) {
        OPENSSL_cleanse(tk->creds.values[i], strlen(tk->creds.values[i]));
        free(tk->creds.values[i]);
        free(tk->creds.names[i]);
    }
    for (size_t i = 0; i < tk->creds.setting_count; i++) {
        free(tk->creds.setting_values[i]);
        free(tk->creds.setting_names[i]);
    }
    testkit_arena_clear(&tk->creds.init_arena);
    testkit_arena_clear(&tk->arena);
    free(tk);
}

const pagoflex_host_services *pagoflex_testkit_host(pagoflex_testkit *tk)
{
    return &tk->table;
}

pagoflex_arena *pagoflex_testkit_arena(pagoflex_testkit *tk)
{
    return &tk->arena;
}

void pagoflex_testkit_reset(pagoflex_testkit *tk)
{
    testkit_arena_clear(&tk->arena);
}

pagoflex_credentials *pagoflex_testkit_credentials(pagoflex_testkit *tk)
{
    return &tk->creds;
}

int pagoflex_testkit_credential_set(pagoflex_testkit *tk, const char *name, const char *value)
{
    struct pagoflex_credentials *c = &tk->creds;
    char *v = NULL, *n = NULL;
    size_t i = 0;
    if (!name || !value)
        goto fail;
    while (i < c->count && strcmp(c->names[i], name) != 0)
        i++;
    if (i == TESTKIT_MAX_CREDENTIALS || !(v = strdup(value)))
        goto fail;
    if (i < c->count) {
        OPENSSL_cleanse(c->values[i], strlen(c->values[i]));
        free(c->values[i]);
        c->values[i] = v;
        return 0;
    }
    if (!(n = strdup(name)))
        goto fail;
    c->names[i] = n;
    c->values[i] = v;
    c->count++;
    return 0;
fail:
    free(v);
    free(n);
    return -1;
}

int pagoflex_testkit_setting_set(pagoflex_testkit *tk, const char *name, const char *value)
{
    struct pagoflex_credentials *c = &tk->creds;
    size_t i = 0;
    char *v = value ? strdup(value) : NULL;
    if (!name || !v)
        goto fail;
    while (i < c->setting_count && strcmp(c->setting_names[i], name) != 0)
        i++;
    if (i < c->setting_count) {
        free(c->setting_values[i]);
        c->setting_values[i] = v;
        return 0;
    }
    if (i == TESTKIT_MAX_CREDENTIALS || !(c->setting_names[i] = strdup(name)))
        goto fail;
    c->setting_values[i] = v;
    c->setting_count++;
    return 0;
fail:
    free(v);
    return -1;
}

void pagoflex_testkit_set_now(int64_t unix_seconds)
{
    testkit_fixed_now = unix_seconds;
}

void pagoflex_testkit_quiet(pagoflex_testkit *tk, int quiet)
{
    tk->quiet = quiet;
}

size_t pagoflex_testkit_log_count(const pagoflex_testkit *tk, pagoflex_log_level level)
{
    size_t n = 0;
    for (int i = (int)level < 0 ? 0 : (int)level; i < 4; i++)
        n += tk->log_counts[i];
    return n;
}

const char *pagoflex_testkit_last_log(const pagoflex_testkit *tk)
{
    return tk->last_log;
}

pagoflex_payment pagoflex_testkit_payment(pagoflex_testkit *tk, int64_t amount,
                                          const char *currency)
{
    unsigned long n = ++tk->next_payment;
    pagoflex_payment p = {
        .id = testkit_arena_printf(&tk->arena, "pay_test_%lu", n),
        .amount = amount,
        .currency = testkit_arena_strdup(&tk->arena, currency),
        .reference = testkit_arena_printf(&tk->arena, "order-%lu", n),
        .webhook_url = "https://pagoflex.test/webhooks/test",
    };
    return p;
}

pagoflex_http_response pagoflex_testkit_response_bytes(pagoflex_testkit *tk, int status,
                                                       const void *body, size_t len)
{
    pagoflex_http_response r = {.transport = PAGOFLEX_TRANSPORT_OK, .status = status};
    unsigned char *copy = testkit_arena_alloc(&tk->arena, len + 1);
    if (!copy)
        return r;
    if (len)
        memcpy(copy, body, len);
    r.body = copy;
    r.body_len = len;
    return r;
}

pagoflex_http_response pagoflex_testkit_response(pagoflex_testkit *tk, int status,
                                                 const char *body)
{
    return pagoflex_testkit_response_bytes(tk, status, body ? body : "", body ? strlen(body) : 0);
}

pagoflex_http_response pagoflex_testkit_transport_failure(pagoflex_transport transport)
{
    pagoflex_http_response r = {.transport = transport};
    return r;
}

pagoflex_testkit_webhook pagoflex_testkit_webhook_new(pagoflex_testkit *tk, const char *body)
{
    pagoflex_testkit_webhook wh = {.header_count = 0};
    size_t len = body ? strlen(body) : 0;
    wh.body = (const unsigned char *)testkit_arena_strndup(&tk->arena, body ? body : "", len);
    wh.body_len = wh.body ? len : 0;
    return wh;
}

int pagoflex_testkit_webhook_header(pagoflex_testkit *tk, pagoflex_testkit_webhook *wh,
                                    const char *name, const char *value)
{
    size_t max = sizeof wh->headers / sizeof wh->headers[0];
    if (wh->header_count >= max)
        return -1;
    pagoflex_header h = {testkit_arena_strdup(&tk->arena, name),
                         testkit_arena_strdup(&tk->arena, value)};
    if (!h.name || !h.value)
        return -1;
    wh->headers[wh->header_count++] = h;
    return 0;
}

char *pagoflex_testkit_hmac_hex(pagoflex_testkit *tk, const char *secret, const void *data,
                                size_t len)
{
    unsigned char mac[32];
    char *out = testkit_arena_alloc(&tk->arena, 65);
    if (!out || !secret || testkit_hmac(secret, strlen(secret), data, len, mac) != PAGOFLEX_OK)
        return NULL;
    testkit_hex_encode(mac, sizeof mac, out);
    return out;
}

char *pagoflex_testkit_sign_bancox(pagoflex_testkit *tk, const char *secret, int64_t t,
                                   const void *body, size_t len)
{
    char ts[24];
    int n = snprintf(ts, sizeof ts, "%lld", (long long)t);
    if (n < 0 || (size_t)n >= sizeof ts || len > SIZE_MAX - (size_t)n - 1)
        return NULL;
    unsigned char *msg = testkit_arena_alloc(&tk->arena, (size_t)n + 1 + len);
    if (!msg)
        return NULL;
    memcpy(msg, ts, (size_t)n);
    msg[n] = '.';
    if (len)
        memcpy(msg + n + 1, body, len);
    const char *hex = pagoflex_testkit_hmac_hex(tk, secret, msg, (size_t)n + 1 + len);
    return hex ? testkit_arena_printf(&tk->arena, "t=%s,v1=%s", ts, hex) : NULL;
}

/* ---- ABI 1.2 helpers -------------------------------------------------- */

pagoflex_flow_input pagoflex_testkit_flow_input(pagoflex_testkit *tk, pagoflex_flow flow,
                                                const pagoflex_payment *payment)
{
    pagoflex_flow_input in = {.size = (uint32_t)sizeof in, .flow = flow};
    pagoflex_arena *a = &tk->arena;
    unsigned long n = ++tk->next_payment;
    pagoflex_payment *p = payment ? testkit_arena_alloc(a, sizeof *p) : NULL;
    if (!p)
        return in;
    *p = *payment;
    if (flow != PAGOFLEX_FLOW_AUTHORIZE && !p->provider_reference_id &&
        !(p->provider_reference_id = testkit_arena_printf(a, "tx_test_%lu", n)))
        return in;
    in.request_id = testkit_arena_printf(a, "req_test_%lu", n);
    switch (flow) {
    case PAGOFLEX_FLOW_AUTHORIZE:
        in.operation_id = p->id;
        in.capture = 1;
        in.return_url = "https://merchant.test/return";
        in.payment_method_type = "card_token";
        in.payment_method_token = "tok_test_visa";
        break;
    case PAGOFLEX_FLOW_CAPTURE:
        in.operation_id = testkit_arena_printf(a, "cap_test_%lu", n);
        in.amount = p->amount;
        break;
    case PAGOFLEX_FLOW_VOID:
        in.operation_id = testkit_arena_printf(a, "void_test_%lu", n);
        break;
    case PAGOFLEX_FLOW_REFUND:
    case PAGOFLEX_FLOW_REFUND_SYNC:
        in.operation_id = in.refund_id = testkit_arena_printf(a, "ref_test_%lu", n);
        in.amount = flow == PAGOFLEX_FLOW_REFUND ? p->amount : 0;
        in.amount_captured = p->amount;
        in.reason = "requested_by_customer";
        if (flow == PAGOFLEX_FLOW_REFUND_SYNC &&
            !(in.refund_provider_reference_id = testkit_arena_printf(a, "rf_test_%lu", n)))
            return in;
        break;
    default: /* PAYMENT_SYNC */
        in.operation_id = p->id;
        break;
    }
    if (in.operation_id && in.request_id)
        in.payment = p;
    return in;
}

int pagoflex_testkit_run_flow(pagoflex_testkit *tk, const pagoflex_connector *c, void *state,
                              const pagoflex_flow_input *in, const pagoflex_http_response *resp,
                              pagoflex_http_request *request, pagoflex_flow_result *result)
{
    pagoflex_http_request req = {0};
    if (!c || !in || !resp || !result ||
        !PAGOFLEX_HAS_FIELD(c, pagoflex_connector, flow_response) || !c->flow_request ||
        !c->flow_response || (unsigned)in->flow >= PAGOFLEX_FLOW_COUNT ||
        !(c->flows & PAGOFLEX_FLOW_BIT(in->flow)))
        return PAGOFLEX_ERR_UNSUPPORTED;
    int rc = c->flow_request(state, in, &tk->arena, &req);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (request)
        *request = req;
    memset(result, 0, sizeof *result);
    result->size = (uint32_t)sizeof *result;
    return c->flow_response(state, in, resp, &tk->arena, result);
}

int pagoflex_testkit_webhook_roundtrip(pagoflex_testkit *tk, const pagoflex_connector *c,
                                       void *state, const pagoflex_event *event,
                                       pagoflex_webhook_request *request,
                                       pagoflex_webhook_parsed *parsed)
{
    pagoflex_webhook_request req;
    if (!c || !event || !parsed || !PAGOFLEX_HAS_FIELD(c, pagoflex_connector, webhook_sample) ||
        !c->webhook_sample || !c->webhook_verify || !c->webhook_parse)
        return PAGOFLEX_ERR_UNSUPPORTED;
    memset(&req, 0, sizeof req);
    req.size = (uint32_t)sizeof req;
    int rc = c->webhook_sample(state, event, testkit_now(), &tk->arena, &req);
    if (rc != PAGOFLEX_OK)
        return rc;
    if (request)
        *request = req;
    if ((rc = c->webhook_verify(state, &req, &tk->arena)) != PAGOFLEX_OK)
        return rc;
    memset(parsed, 0, sizeof *parsed);
    parsed->size = (uint32_t)sizeof *parsed;
    return c->webhook_parse(state, &req, &tk->arena, parsed);
}

/* Change one byte so that it stays printable and differs. */
static void testkit_flip(unsigned char *b)
{
    *b = (unsigned char)(*b == 'A' ? 'B' : *b == '0' ? '1' : (*b ^ 0x01));
}

pagoflex_webhook_request pagoflex_testkit_webhook_tampered(pagoflex_testkit *tk,
                                                           const pagoflex_webhook_request *req,
                                                           size_t body_byte, const char *header)
{
    pagoflex_webhook_request out = *req;
    pagoflex_arena *a = &tk->arena;
    unsigned char *body = testkit_arena_alloc(a, req->body_len + 1);
    pagoflex_header *h = testkit_arena_alloc(a, (req->header_count + 1) * sizeof *h);
    if (!body || !h)
        return out;
    if (req->body_len)
        memcpy(body, req->body, req->body_len);
    for (size_t i = 0; i < req->header_count; i++) {
        h[i].name = req->headers[i].name;
        h[i].value = testkit_arena_strdup(a, req->headers[i].value);
        if (req->headers[i].value && !h[i].value)
            return out;
    }
    out.body = body;
    out.headers = h;
    if (!header) {
        if (body_byte < req->body_len)
            testkit_flip(&body[body_byte]);
        return out;
    }
    for (size_t i = 0; i < req->header_count; i++) {
        size_t vl = h[i].value ? strlen(h[i].value) : 0;
        if (h[i].name && strcasecmp(h[i].name, header) == 0 && vl) {
            testkit_flip((unsigned char *)&h[i].value[vl - 1]);
            break;
        }
    }
    return out;
}
