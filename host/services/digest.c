/* digest.c - SHA-256 and HMAC-SHA-256 with OpenSSL 3's EVP interfaces. */
#include "digest.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <pagoflex/connector.h>

int digest_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if ((!data && len) || !out)
        return PAGOFLEX_ERR_INVALID;
    if (!EVP_Digest(len ? data : "", len, out, &n, EVP_sha256(), NULL) || n != 32)
        return PAGOFLEX_ERR_INTERNAL;
    return PAGOFLEX_OK;
}

int digest_hmac_sha256_parts(const void *key, size_t key_len, const digest_part *parts,
                             size_t n, unsigned char out[32])
{
    int rc = PAGOFLEX_ERR_INTERNAL;
    unsigned char mac[32];
    size_t mac_len = 0;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    static const unsigned char empty_key[1];
    if (!ctx || !EVP_MAC_init(ctx, key_len ? key : empty_key, key_len, params))
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        if (parts[i].len && !EVP_MAC_update(ctx, parts[i].data, parts[i].len))
            goto cleanup;
    if (!EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) || mac_len != sizeof mac)
        goto cleanup;
    for (size_t i = 0; i < sizeof mac; i++)
        out[i] = mac[i];
    rc = PAGOFLEX_OK;
cleanup:
    OPENSSL_cleanse(mac, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return rc;
}
