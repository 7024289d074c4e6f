/* services.c - host services for plugins, on OpenSSL and the arena. */
#include "services.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "creds.h"
#include "currency.h"
#include "digest.h"
#include "jws.h"
#include "hex.h"
#include "log.h"
#include "stdwebhooks.h"
#include "urlenc.h"

static int64_t services_fixed_now;

static void svc_log(const pagoflex_host_services *host, pagoflex_log_level level,
                    const char *fmt, ...)
{
    const services_plugin *sp = (const services_plugin *)host;
    char who[80];
    snprintf(who, sizeof who, "plugin=%s", sp->name);
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, who, fmt, ap);
    va_end(ap);
}

static const char *svc_credential(const pagoflex_credentials *creds, const char *name)
{
    return creds_get(creds, name);
}

static const char *svc_setting(const pagoflex_credentials *creds, const char *name)
{
    return creds_get_setting(creds, name);
}

/* The creds handed to init belong to the host (registry.c): the arena is
 * recorded in them and taken over by the registry once init returns. */
static pagoflex_arena *svc_init_arena(const pagoflex_credentials *creds)
{
    return creds_init_arena((pagoflex_credentials *)creds);
}

static int svc_hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
                           unsigned char out[32])
{
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &len) || len != 32)
        return PAGOFLEX_ERR_INTERNAL;
    return PAGOFLEX_OK;
}

static int svc_hex_decode(const char *in, size_t len, unsigned char *out, size_t out_cap,
                          size_t *out_len)
{
    return hex_decode(in, len, out, out_cap, out_len) == 0 ? PAGOFLEX_OK : PAGOFLEX_ERR_INVALID;
}

static char *svc_base64_encode(pagoflex_arena *arena, const unsigned char *in, size_t len)
{
    if (len > (size_t)(1 << 30))
        return NULL;
    char *out = arena_alloc(arena, 4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

static int svc_base64_decode(pagoflex_arena *arena, const char *in, size_t len,
                             unsigned char **out, size_t *out_len)
{
    if (len % 4 || len > (size_t)(1 << 30))
        return PAGOFLEX_ERR_INVALID;
    unsigned char *buf = arena_alloc(arena, 3 * (len / 4) + 1);
    if (!buf)
        return PAGOFLEX_ERR_NOMEM;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
    if (n < 0)
        return PAGOFLEX_ERR_INVALID;
    /* EVP_DecodeBlock counts padding as zero bytes: take them off. */
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    *out = buf;
    *out_len = (size_t)n;
    return PAGOFLEX_OK;
}

static int svc_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

static void svc_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

static const char *svc_header_get(const pagoflex_header *headers, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (headers[i].name && strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

static int64_t svc_now(void)
{
    return services_fixed_now ? services_fixed_now : (int64_t)time(NULL);
}

int64_t services_now(void)
{
    return svc_now();
}

static char *svc_url_encode(pagoflex_arena *arena, const char *s, size_t len)
{
    return urlenc_encode(arena_alloc, arena, s, len);
}

static char *svc_form_encode(pagoflex_arena *arena, const pagoflex_header *pairs, size_t n)
{
    return urlenc_form_encode(arena_alloc, arena, pairs, n);
}

static int svc_form_decode(pagoflex_arena *arena, const char *s, size_t len,
                           pagoflex_header **pairs, size_t *n)
{
    return urlenc_form_decode(arena_alloc, arena, s, len, pairs, n);
}

static char *svc_amount_to_decimal(pagoflex_arena *arena, int64_t minor, const char *currency)
{
    return currency_amount_to_decimal(arena_alloc, arena, minor, currency);
}

static int svc_stdwebhooks_sign(pagoflex_arena *arena, const char *secret, const char *msg_id,
                                int64_t timestamp, const unsigned char *body, size_t body_len,
                                char **signature)
{
    return stdwh_sign(arena_alloc, arena, secret, msg_id, timestamp, body, body_len, signature);
}

void services_set_now(int64_t fixed_unix_seconds)
{
    services_fixed_now = fixed_unix_seconds;
}

void services_init(services_plugin *sp, const char *name)
{
    memset(sp, 0, sizeof *sp);
    snprintf(sp->name, sizeof sp->name, "%s", name ? name : "?");
    pagoflex_host_services *t = &sp->table;
    t->size = (uint32_t)sizeof *t;
    t->abi_major = PAGOFLEX_ABI_MAJOR;
    t->abi_minor = PAGOFLEX_ABI_MINOR;
    t->log = svc_log;
    t->credential = svc_credential;
    t->arena_alloc = arena_alloc;
    t->arena_strdup = arena_strdup;
    t->arena_strndup = arena_strndup;
    t->arena_printf = arena_printf;
    t->hmac_sha256 = svc_hmac_sha256;
    t->hex_encode = hex_encode;
    t->hex_decode = svc_hex_decode;
    t->base64_encode = svc_base64_encode;
    t->base64_decode = svc_base64_decode;
    t->ct_equal = svc_ct_equal;
    t->wipe = svc_wipe;
    t->header_get = svc_header_get;
    t->now = svc_now;
    t->setting = svc_setting;
    t->init_arena = svc_init_arena;
    t->url_encode = svc_url_encode;
    t->form_encode = svc_form_encode;
    t->form_decode = svc_form_decode;
    t->currency_exponent = currency_exponent;
    t->amount_to_decimal = svc_amount_to_decimal;
    t->amount_from_decimal = currency_amount_from_decimal;
    t->sha256 = digest_sha256;
    t->stdwebhooks_sign = svc_stdwebhooks_sign;
    t->stdwebhooks_verify = stdwh_verify;
    t->jws_verify = jws_verify;
}
