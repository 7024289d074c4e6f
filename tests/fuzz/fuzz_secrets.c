/* fuzz_secrets - credential files: secrets_decrypt on the input as a file
 * image, and secrets_parse_credentials on the input as a plaintext (also
 * after an encrypt/decrypt round trip, which must give it back). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secrets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static secrets_key key;
    static int ready;
    char err[512];
    if (!ready) {
        if (secrets_key_from_hex("000102030405060708090a0b0c0d0e0f"
                                 "101112131415161718191a1b1c1d1e1f", &key, err, sizeof err) != 0)
            abort();
        ready = 1;
    }
    unsigned char *plain = NULL, *enc = NULL;
    size_t plain_len = 0, enc_len = 0;
    pagoflex_credentials *creds = NULL;
    if (secrets_decrypt(&key, "banco_x", data, size, &plain, &plain_len, err, sizeof err) == 0) {
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
        plain = NULL;
    }
    if (secrets_parse_credentials((const char *)data, size, &creds, err, sizeof err) == 0)
        creds_free(creds);
    if (size <= SECRETS_MAX_PLAIN &&
        secrets_encrypt(&key, "banco_x", data, size, &enc, &enc_len, err, sizeof err) == 0) {
        if (secrets_decrypt(&key, "banco_x", enc, enc_len, &plain, &plain_len, err, sizeof err) != 0 ||
            plain_len != size || (size && memcmp(plain, data, size) != 0))
            abort(); /* a round trip must give the plaintext back */
        free(plain);
        free(enc);
    }
    return 0;
}
