/* Unit tests: jws_verify through the host's services table. Keys are made
 * by the test with OpenSSL (EC P-256, RSA 2048), exported as JWKs, and the
 * JWS signed with OpenSSL here; plus the published RFC 7515 A.3 vector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "services.h"

static services_plugin sp;
static EVP_PKEY *ec_key, *ec_other, *rsa_key;
static char jwks[4096];

static void b64url(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

static void bn_param_b64url(EVP_PKEY *k, const char *name, size_t pad, char *out)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    assert_true(EVP_PKEY_get_bn_param(k, name, &bn));
    int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

static void ec_jwk(EVP_PKEY *k, const char *kid, char *out, size_t cap)
{
    char x[64], y[64];
    bn_param_b64url(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
    bn_param_b64url(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
    snprintf(out, cap, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"use\":\"sig\","
                       "\"x\":\"%s\",\"y\":\"%s\"}", kid, x, y);
}

static void rsa_jwk(EVP_PKEY *k, const char *kid, char *out, size_t cap)
{
    char n[400], e[16];
    bn_param_b64url(k, OSSL_PKEY_PARAM_RSA_N, 0, n);
    bn_param_b64url(k, OSSL_PKEY_PARAM_RSA_E, 0, e);
    snprintf(out, cap, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}", kid, n, e);
}

static int group_setup(void **state)
{
    (void)state;
    services_init(&sp, "test");
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!ec_key || !ec_other || !rsa_key)
        return -1;
    char a[512], b[1024];
    ec_jwk(ec_key, "ec-1", a, sizeof a);
    rsa_jwk(rsa_key, "rsa-1", b, sizeof b);
    snprintf(jwks, sizeof jwks, "{\"keys\":[%s,%s]}", a, b);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ec_other);
    EVP_PKEY_free(rsa_key);
    return 0;
}

/* Sign "<b64url(header)>.<payload part>" with key the JWS way; returns the
 * compact JWS (static buffer). detached: the middle part is left empty. */
static const char *sign(EVP_PKEY *key, const char *alg, const char *header_json,
                        const char *payload, int b64, int detached)
{
    static char jws[4096];
    char hdr[512], pl[1024], input[2048], sigb[1024];
    unsigned char sig[512];
    size_t sig_len = sizeof sig;
    b64url((const unsigned char *)header_json, strlen(header_json), hdr);
    if (b64)
        b64url((const unsigned char *)payload, strlen(payload), pl);
    else
        snprintf(pl, sizeof pl, "%s", payload);
    snprintf(input, sizeof input, "%s.%s", hdr, pl);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_true(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) > 0);
    if (strcmp(alg, "PS256") == 0) {
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
    }
    assert_true(EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, strlen(input)) > 0);
    EVP_MD_CTX_free(md);
    if (strcmp(alg, "ES256") == 0) { /* DER -> r||s */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        assert_non_null(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
        sig_len = 64;
        ECDSA_SIG_free(es);
    }
    b64url(sig, sig_len, sigb);
    snprintf(jws, sizeof jws, "%s.%s.%s", hdr, detached ? "" : pl, sigb);
    return jws;
}

static int verify(const char *jws, const char *detached_payload, const char *set)
{
    return sp.table.jws_verify(jws, (const unsigned char *)detached_payload,
                               detached_payload ? strlen(detached_payload) : 0,
                               (const unsigned char *)set, strlen(set));
}

#define PAYLOAD "{\"event\":\"payment.succeeded\",\"id\":\"pay_1\"}"

static void test_es256(void **state)
{
    (void)state;
    const char *h = "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}";
    assert_int_equal(verify(sign(ec_key, "ES256", h, PAYLOAD, 1, 0), NULL, jwks), PAGOFLEX_OK);
    assert_int_equal(verify(sign(ec_key, "ES256", h, PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_OK);
    /* Tampered payload, wrong key. */
    assert_int_equal(verify(sign(ec_key, "ES256", h, PAYLOAD, 1, 1), PAYLOAD " ", jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(sign(ec_other, "ES256", h, PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
}

static void test_rs256_ps256(void **state)
{
    (void)state;
    const char *rs = "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}";
    const char *ps = "{\"alg\":\"PS256\",\"kid\":\"rsa-1\"}";
    assert_int_equal(verify(sign(rsa_key, "RS256", rs, PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_OK);
    assert_int_equal(verify(sign(rsa_key, "PS256", ps, PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_OK);
    assert_int_equal(verify(sign(rsa_key, "PS256", ps, PAYLOAD, 1, 0), NULL, jwks), PAGOFLEX_OK);
    assert_int_equal(verify(sign(rsa_key, "RS256", rs, PAYLOAD, 1, 1), "{}", jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    /* A PKCS#1 v1.5 signature presented as PS256, and the other way round. */
    char jws[4096];
    snprintf(jws, sizeof jws, "%s", sign(rsa_key, "RS256", ps, PAYLOAD, 1, 1));
    assert_int_equal(verify(jws, PAYLOAD, jwks), PAGOFLEX_ERR_SIGNATURE);
    snprintf(jws, sizeof jws, "%s", sign(rsa_key, "PS256", rs, PAYLOAD, 1, 1));
    assert_int_equal(verify(jws, PAYLOAD, jwks), PAGOFLEX_ERR_SIGNATURE);
}

static void test_unencoded_payload(void **state)
{
    (void)state;
    const char *h = "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"b64\":false,\"crit\":[\"b64\"]}";
    assert_int_equal(verify(sign(ec_key, "ES256", h, PAYLOAD, 0, 1), PAYLOAD, jwks),
                     PAGOFLEX_OK);
    assert_int_equal(verify(sign(ec_key, "ES256", h, PAYLOAD, 0, 1), PAYLOAD "x", jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Signed over the raw payload but claiming b64 (or the reverse). */
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
                                 PAYLOAD, 0, 1), PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    /* "b64":false outside "crit", and unknown "crit" names, are refused. */
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-1\","
                                 "\"b64\":false}", PAYLOAD, 0, 1), PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-1\","
                                 "\"crit\":[\"exp\"],\"exp\":1}", PAYLOAD, 1, 1),
                            PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
}

static void test_keys_and_algs_refused(void **state)
{
    (void)state;
    /* Unknown kid: the host refetches the key set. */
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-9\"}",
                                 PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_ERR_KEY_UNKNOWN);
    /* alg that does not fit the key's type. */
    assert_int_equal(verify(sign(rsa_key, "RS256", "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}",
                                 PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}",
                                 PAYLOAD, 1, 1), PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    /* "none" (empty signature), HS256, missing alg. */
    char hdr[128], none[256];
    b64url((const unsigned char *)"{\"alg\":\"none\",\"kid\":\"ec-1\"}", 27, hdr);
    snprintf(none, sizeof none, "%s..", hdr);
    assert_int_equal(verify(none, PAYLOAD, jwks), PAGOFLEX_ERR_SIGNATURE);
    b64url((const unsigned char *)"{\"alg\":\"HS256\",\"kid\":\"ec-1\"}", 28, hdr);
    snprintf(none, sizeof none, "%s..AAAA", hdr);
    assert_int_equal(verify(none, PAYLOAD, jwks), PAGOFLEX_ERR_SIGNATURE);
    /* Key's own "alg" disagrees; no kid with two keys in the set. */
    char a[512], set[700];
    ec_jwk(ec_key, "ec-1", a, sizeof a);
    a[strlen(a) - 1] = '\0';
    snprintf(set, sizeof set, "{\"keys\":[%s,\"alg\":\"ES384\"}]}", a);
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
                                 PAYLOAD, 1, 1), PAYLOAD, set),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\"}", PAYLOAD, 1, 1),
                            PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Malformed: detached payload given but the JWS carries one; garbage. */
    assert_int_equal(verify(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
                                 PAYLOAD, 1, 0), PAYLOAD, jwks),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify("a.b", NULL, jwks), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify("a.b.c.d", NULL, jwks), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify("e30..AAAA", PAYLOAD, "not json"), PAGOFLEX_ERR_SIGNATURE);
}

/* RFC 7515 Appendix A.3: JWS using ECDSA P-256 SHA-256 (no kid: the set
 * has the one key). */
static void test_rfc7515_a3(void **state)
{
    (void)state;
    const char *set = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                      "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                      "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
    const char *jws = "eyJhbGciOiJFUzI1NiJ9"
                      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
                      "LmNvbS9pc19yb290Ijp0cnVlfQ"
                      ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ"
                      "xfKTUJqPP3-Kg6NU1Q";
    assert_int_equal(verify(jws, NULL, set), PAGOFLEX_OK);
    /* The same JWS with its payload detached. */
    const char *payload = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n"
                          " \"http://example.com/is_root\":true}";
    char detached[512];
    snprintf(detached, sizeof detached, "eyJhbGciOiJFUzI1NiJ9..%s", strrchr(jws, '.') + 1);
    assert_int_equal(verify(detached, payload, set), PAGOFLEX_OK);
    assert_int_equal(verify(detached, "{\"iss\":\"eve\"}", set), PAGOFLEX_ERR_SIGNATURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_es256),
        cmocka_unit_test(test_rs256_ps256),
        cmocka_unit_test(test_unencoded_payload),
        cmocka_unit_test(test_keys_and_algs_refused),
        cmocka_unit_test(test_rfc7515_a3),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
