/* jws.c - compact JWS verification with OpenSSL 3 EVP (keys built from JWK
 * parameters with EVP_PKEY_fromdata) and Jansson. */
#include "jws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <pagoflex/connector.h>

#define JWS_MAX_LEN (1u << 24)

typedef enum { JWS_ES256, JWS_RS256, JWS_PS256 } jws_alg;

/* Decode base64url without padding (RFC 7515 section 2) into a malloc'd
 * buffer. 0 on success, -1 on a character outside the alphabet, padding, a
 * length that cannot be base64 or allocation failure. */
static int jws_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    if (len % 4 == 1 || len > JWS_MAX_LEN)
        return -1;
    size_t padded = (len + 3) / 4 * 4;
    char *std = malloc(padded + 1);
    unsigned char *buf = malloc(padded / 4 * 3 + 1);
    int rc = -1;
    if (!std || !buf)
        goto cleanup;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            goto cleanup;
        std[i] = c;
    }
    for (size_t i = len; i < padded; i++)
        std[i] = '=';
    int n = padded ? EVP_DecodeBlock(buf, (unsigned char *)std, (int)padded) : 0;
    if (n < 0)
        goto cleanup;
    *out_len = (size_t)n - (padded - len);
    *out = buf;
    buf = NULL;
    rc = 0;
cleanup:
    free(std);
    free(buf);
    return rc;
}

/* base64url without padding of in, NUL-terminated, malloc'd; NULL on failure. */
static char *jws_b64url_encode(const unsigned char *in, size_t len)
{
    if (len > JWS_MAX_LEN)
        return NULL;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* A base64url JWK member decoded into a malloc'd buffer; -1 if absent or bad. */
static int jws_member(json_t *jwk, const char *name, unsigned char **out, size_t *len)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    return s ? jws_b64url_decode(s, strlen(s), out, len) : -1;
}

static EVP_PKEY *jws_ec_key(json_t *jwk)
{
    unsigned char *x = NULL, *y = NULL, pub[65];
    size_t x_len = 0, y_len = 0;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0 || json_object_get(jwk, "d"))
        return NULL; /* P-256 only; never accept a private key as a key set entry */
    if (jws_member(jwk, "x", &x, &x_len) != 0 || jws_member(jwk, "y", &y, &y_len) != 0 ||
        x_len != 32 || y_len != 32)
        goto cleanup;
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub),
        OSSL_PARAM_construct_end(),
    };
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
cleanup:
    EVP_PKEY_CTX_free(ctx);
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *jws_rsa_key(json_t *jwk)
{
    unsigned char *n = NULL, *e = NULL;
    size_t n_len = 0, e_len = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    if (json_object_get(jwk, "d"))
        return NULL;
    if (jws_member(jwk, "n", &n, &n_len) != 0 || jws_member(jwk, "e", &e, &e_len) != 0 ||
        n_len < 256 || n_len > 1024 || e_len == 0 || e_len > 8)
        goto cleanup;
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    if (!bn_n || !bn_e || BN_num_bits(bn_n) < 2048 || !(bld = OSSL_PARAM_BLD_new()) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)))
        goto cleanup;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
cleanup:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

/* The JWS signature of ES256 is r||s (32 bytes each); OpenSSL wants DER. */
static int jws_ecdsa_der(const unsigned char *sig, size_t len, unsigned char **der,
                         size_t *der_len)
{
    if (len != 64)
        return -1;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    int rc = -1;
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        goto cleanup;
    }
    unsigned char *out = NULL;
    int n = i2d_ECDSA_SIG(es, &out);
    if (n > 0) {
        *der = out;
        *der_len = (size_t)n;
        rc = 0;
    }
cleanup:
    ECDSA_SIG_free(es);
    return rc;
}

static int jws_check(EVP_PKEY *pkey, jws_alg alg, const unsigned char *input, size_t input_len,
                     const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    int ok = 0;
    if (!md || EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey) <= 0)
        goto cleanup;
    if (alg == JWS_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0))
        goto cleanup;
    if (alg == JWS_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto cleanup;
    if (alg == JWS_ES256) {
        size_t der_len = 0;
        if (jws_ecdsa_der(sig, sig_len, &der, &der_len) != 0)
            goto cleanup;
        ok = EVP_DigestVerify(md, der, der_len, input, input_len) == 1;
    } else {
        ok = sig_len == (size_t)EVP_PKEY_get_size(pkey) &&
             EVP_DigestVerify(md, sig, sig_len, input, input_len) == 1;
    }
cleanup:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return ok;
}

/* "crit" may only name "b64" (RFC 7515 4.1.11: unknown ones are refused);
 * "b64":false must be in it (RFC 7797 6). Sets *b64. 0 if acceptable. */
static int jws_header_flags(json_t *header, int *b64)
{
    json_t *crit = json_object_get(header, "crit"), *v = json_object_get(header, "b64");
    int b64_crit = 0;
    if (crit) {
        size_t i;
        json_t *name;
        if (!json_is_array(crit) || json_array_size(crit) == 0)
            return -1;
        json_array_foreach(crit, i, name) {
            if (!json_is_string(name) || strcmp(json_string_value(name), "b64") != 0)
                return -1;
            b64_crit = 1;
        }
    }
    if (v && !json_is_boolean(v))
        return -1;
    *b64 = !v || json_is_true(v);
    return *b64 || b64_crit ? 0 : -1;
}

int jws_verify(const char *jws, const unsigned char *payload, size_t payload_len,
               const unsigned char *jwks, size_t jwks_len)
{
    int rc = PAGOFLEX_ERR_SIGNATURE;
    unsigned char *hdr_raw = NULL, *sig = NULL, *input = NULL;
    size_t hdr_len = 0, sig_len = 0, input_len = 0;
    char *payload_b64 = NULL;
    json_t *header = NULL, *set = NULL;
    EVP_PKEY *pkey = NULL;
    jws_alg alg;
    int b64 = 1;
    if (!jws || !jwks || strlen(jws) > JWS_MAX_LEN || jwks_len > JWS_MAX_LEN ||
        (!payload && payload_len))
        return PAGOFLEX_ERR_SIGNATURE;
    const char *dot1 = strchr(jws, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
        goto cleanup;
    if (jws_b64url_decode(jws, (size_t)(dot1 - jws), &hdr_raw, &hdr_len) != 0 ||
        jws_b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig, &sig_len) != 0)
        goto cleanup;
    if (!(header = json_loadb((const char *)hdr_raw, hdr_len, JSON_REJECT_DUPLICATES, NULL)) ||
        !json_is_object(header) || jws_header_flags(header, &b64) != 0)
        goto cleanup;
    const char *alg_name = json_string_value(json_object_get(header, "alg"));
    const char *kid = json_string_value(json_object_get(header, "kid"));
    if (!alg_name)
        goto cleanup;
    if (strcmp(alg_name, "ES256") == 0)
        alg = JWS_ES256;
    else if (strcmp(alg_name, "RS256") == 0)
        alg = JWS_RS256;
    else if (strcmp(alg_name, "PS256") == 0)
        alg = JWS_PS256;
    else
        goto cleanup; /* "none", HS256 and everything else */

    /* The key, by kid. */
    set = json_loadb((const char *)jwks, jwks_len, 0, NULL);
    json_t *keys = json_object_get(set, "keys"), *jwk = NULL, *k;
    size_t i;
    if (!json_is_array(keys))
        goto cleanup;
    json_array_foreach(keys, i, k) {
        const char *id = json_string_value(json_object_get(k, "kid"));
        if (kid && id && strcmp(id, kid) == 0) {
            jwk = k;
            break;
        }
    }
    /* No kid (RFC 7515 A.3 has none): only a set of exactly one key says
     * which key it is. */
    if (!kid && json_array_size(keys) == 1)
        jwk = json_array_get(keys, 0);
    else if (!kid)
        goto cleanup;
    if (!jwk) {
        rc = PAGOFLEX_ERR_KEY_UNKNOWN;
        goto cleanup;
    }
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *key_alg = json_string_value(json_object_get(jwk, "alg"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    if (!kty || (key_alg && strcmp(key_alg, alg_name) != 0) || (use && strcmp(use, "sig") != 0))
        goto cleanup;
    if (alg == JWS_ES256)
        pkey = strcmp(kty, "EC") == 0 ? jws_ec_key(jwk) : NULL;
    else
        pkey = strcmp(kty, "RSA") == 0 ? jws_rsa_key(jwk) : NULL;
    if (!pkey)
        goto cleanup;

    /* The signing input: ASCII(header) '.' payload as the JWS carries it. */
    const unsigned char *pl = (const unsigned char *)dot1 + 1;
    size_t pl_len = (size_t)(dot2 - dot1 - 1);
    if (payload) {
        if (pl_len != 0)
            goto cleanup; /* detached means an empty middle part */
        if (b64) {
            if (!(payload_b64 = jws_b64url_encode(payload, payload_len)))
                goto cleanup;
            pl = (const unsigned char *)payload_b64;
            pl_len = strlen(payload_b64);
        } else {
            pl = payload;
            pl_len = payload_len;
        }
    }
    size_t h_len = (size_t)(dot1 - jws);
    input_len = h_len + 1 + pl_len;
    if (!(input = malloc(input_len + 1)))
        goto cleanup;
    memcpy(input, jws, h_len);
    input[h_len] = '.';
    if (pl_len)
        memcpy(input + h_len + 1, pl, pl_len);
    if (jws_check(pkey, alg, input, input_len, sig, sig_len))
        rc = PAGOFLEX_OK;
cleanup:
    EVP_PKEY_free(pkey);
    json_decref(header);
    json_decref(set);
    free(hdr_raw);
    free(sig);
    free(input);
    free(payload_b64);
    return rc;
}
