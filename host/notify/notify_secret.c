/* notify_secret.c - endpoint signing secrets, made and sealed. */
#include "notify_secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define NOTIFY_SECRET_BYTES 32

int notify_secret_new(char out[NOTIFY_SECRET_LEN + 1])
{
    unsigned char raw[NOTIFY_SECRET_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

/* The authenticated data that binds a sealed secret to its endpoint. */
static int secret_binding(const char *endpoint_id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "webhook_endpoint:%s", endpoint_id ? endpoint_id : "");
    return n > 0 && (size_t)n < cap && endpoint_id && *endpoint_id ? 0 : -1;
}

int notify_secret_seal(const notify_keys *keys, const char *endpoint_id, const char *secret,
                       unsigned char **out, size_t *out_len, char *err, size_t errlen)
{
    char binding[128];
    if (secret_binding(endpoint_id, binding, sizeof binding)) {
        snprintf(err, errlen, "endpoint id is empty or too long");
        return -1;
    }
    return secrets_encrypt(&keys->current, binding, (const unsigned char *)secret, strlen(secret), out,
                           out_len, err, errlen);
}

int notify_secret_reseal(const notify_keys *keys, const char *endpoint_id, const unsigned char *in,
                         size_t in_len, unsigned char **out, size_t *out_len, char *err, size_t errlen)
{
    char secret[NOTIFY_SECRET_LEN + 1];
    if (notify_secret_open(keys, endpoint_id, in, in_len, secret, err, errlen))
        return -1;
    int rc = notify_secret_seal(keys, endpoint_id, secret, out, out_len, err, errlen);
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

int notify_secret_open(const notify_keys *keys, const char *endpoint_id, const unsigned char *in,
                       size_t in_len, char out[NOTIFY_SECRET_LEN + 1], char *err, size_t errlen)
{
    char binding[128];
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    if (secret_binding(endpoint_id, binding, sizeof binding)) {
        snprintf(err, errlen, "endpoint id is empty or too long");
        return -1;
    }
    const secrets_key *candidates[2] = {&keys->current, keys->have_previous ? &keys->previous : NULL};
    const secrets_key *key = secrets_key_for_file(candidates, 2, in, in_len);
    if (!key) {
        snprintf(err, errlen, "the endpoint secret is sealed under a master key this host does not hold");
        return -1;
    }
    if (secrets_decrypt(key, binding, in, in_len, &plain, &plain_len, err, errlen))
        return -1;
    int rc = -1;
    if (plain_len == NOTIFY_SECRET_LEN && memchr(plain, '\0', plain_len) == NULL) {
        memcpy(out, plain, plain_len);
        out[plain_len] = '\0';
        rc = 0;
    } else {
        snprintf(err, errlen, "the endpoint secret decrypts to something that is not a whsec_ secret");
    }
    OPENSSL_cleanse(plain, plain_len);
    free(plain);
    return rc;
}
