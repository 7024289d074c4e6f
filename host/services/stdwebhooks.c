/* stdwebhooks.c - Standard Webhooks ("v1" HMAC-SHA256 scheme). */
#include "stdwebhooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "digest.h"

#define STDWH_PREFIX "whsec_"
#define STDWH_MAC_B64_LEN 44 /* base64 of 32 bytes */

/* Decode standard base64 (with padding) in[0..len) into out, which holds
 * at least 3*len/4 bytes; the decoded length, or -1 when not base64. */
static long stdwh_b64_decode(const char *in, size_t len, unsigned char *out)
{
    if (len == 0 || len % 4 || len > (1u << 20))
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    if (in[len - 1] == '=')
        n--;
    if (in[len - 2] == '=')
        n--;
    return n;
}

/* Decode the secret into a malloc'd key (wipe and free it). -1 if bad. */
static int stdwh_key(const char *secret, unsigned char **key, size_t *key_len)
{
    if (!secret)
        return -1;
    if (strncmp(secret, STDWH_PREFIX, strlen(STDWH_PREFIX)) == 0)
        secret += strlen(STDWH_PREFIX);
    size_t len = strlen(secret);
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    long n = stdwh_b64_decode(secret, len, buf);
    if (n <= 0) {
        OPENSSL_cleanse(buf, len / 4 * 3 + 1);
        free(buf);
        return -1;
    }
    *key = buf;
    *key_len = (size_t)n;
    return 0;
}

static void stdwh_key_free(unsigned char *key, size_t key_len)
{
    if (key) {
        OPENSSL_cleanse(key, key_len);
        free(key);
    }
}

static int stdwh_mac(const unsigned char *key, size_t key_len, const char *msg_id,
                     const char *timestamp, const unsigned char *body, size_t body_len,
                     unsigned char mac[32])
{
    const digest_part parts[] = {
        {msg_id, strlen(msg_id)}, {".", 1}, {timestamp, strlen(timestamp)}, {".", 1},
        {body, body_len},
    };
    return digest_hmac_sha256_parts(key, key_len, parts, sizeof parts / sizeof parts[0], mac);
}

int stdwh_sign(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *secret,
               const char *msg_id, int64_t timestamp, const unsigned char *body,
               size_t body_len, char **signature)
{
    unsigned char *key = NULL, mac[32];
    size_t key_len = 0;
    char ts[24];
    int rc = PAGOFLEX_ERR_INVALID;
    if (!msg_id || timestamp < 0 || (!body && body_len) || !signature)
        return PAGOFLEX_ERR_INVALID;
    if (stdwh_key(secret, &key, &key_len) != 0)
        return PAGOFLEX_ERR_INVALID;
    snprintf(ts, sizeof ts, "%" PRId64, timestamp);
    if ((rc = stdwh_mac(key, key_len, msg_id, ts, body, body_len, mac)) != PAGOFLEX_OK)
        goto cleanup;
    char *out = alloc(arena, 3 + STDWH_MAC_B64_LEN + 1);
    if (!out) {
        rc = PAGOFLEX_ERR_NOMEM;
        goto cleanup;
    }
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, sizeof mac);
    *signature = out;
    rc = PAGOFLEX_OK;
cleanup:
    OPENSSL_cleanse(mac, sizeof mac);
    stdwh_key_free(key, key_len);
    return rc;
}

static const char *stdwh_header(const pagoflex_header *headers, size_t count, const char *name)
{
    for (size_t i = 0; headers && i < count; i++)
        if (headers[i].name && headers[i].value && strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

/* Strict decimal Unix time: 1 to 18 digits, nothing else. */
static int stdwh_parse_time(const char *s, int64_t *out)
{
    size_t len = strlen(s);
    int64_t v = 0;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int stdwh_verify(const char *secret, const pagoflex_header *headers, size_t header_count,
                 const unsigned char *body, size_t body_len, int64_t now,
                 int64_t tolerance_s)
{
    const char *id = stdwh_header(headers, header_count, "webhook-id");
    const char *ts = stdwh_header(headers, header_count, "webhook-timestamp");
    const char *sigs = stdwh_header(headers, header_count, "webhook-signature");
    unsigned char *key = NULL, mac[32], got[STDWH_MAC_B64_LEN];
    size_t key_len = 0;
    int64_t when = 0;
    int rc = PAGOFLEX_ERR_SIGNATURE;
    if (!id || !*id || !ts || !sigs || (!body && body_len) || tolerance_s < 0)
        return PAGOFLEX_ERR_SIGNATURE;
    if (stdwh_parse_time(ts, &when) != 0 || when > now + tolerance_s ||
        when < now - tolerance_s)
        return PAGOFLEX_ERR_SIGNATURE;
    if (stdwh_key(secret, &key, &key_len) != 0)
        return PAGOFLEX_ERR_SIGNATURE;
    if (stdwh_mac(key, key_len, id, ts, body, body_len, mac) != PAGOFLEX_OK)
        goto cleanup;
    /* Every candidate is decoded and compared, so the time taken does not
     * tell which one (or how much of one) matched. */
    int matched = 0;
    const char *p = sigs;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 3 + STDWH_MAC_B64_LEN && strncmp(p, "v1,", 3) == 0 &&
            stdwh_b64_decode(p + 3, STDWH_MAC_B64_LEN, got) == 32)
            matched |= CRYPTO_memcmp(got, mac, sizeof mac) == 0;
        p += len;
    }
    rc = matched ? PAGOFLEX_OK : PAGOFLEX_ERR_SIGNATURE;
cleanup:
    OPENSSL_cleanse(mac, sizeof mac);
    OPENSSL_cleanse(got, sizeof got);
    stdwh_key_free(key, key_len);
    return rc;
}
