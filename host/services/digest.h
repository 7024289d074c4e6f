/* digest.h - SHA-256 and HMAC-SHA-256 over several parts, on OpenSSL EVP
 * (host service sha256; used by stdwebhooks). */
#ifndef PAGOFLEX_DIGEST_H
#define PAGOFLEX_DIGEST_H

#include <stddef.h>

/* SHA-256 of data[0..len) into out. PAGOFLEX_OK, or PAGOFLEX_ERR_INVALID
 * (data NULL with len > 0) / PAGOFLEX_ERR_INTERNAL (OpenSSL failed). */
int digest_sha256(const void *data, size_t len, unsigned char out[32]);

/* One part of a message digested piece by piece. */
typedef struct digest_part {
    const void *data;
    size_t len;
} digest_part;

/* HMAC-SHA-256 under key of the concatenation of the n parts, into out.
 * PAGOFLEX_OK or PAGOFLEX_ERR_INTERNAL; out is written only on success. */
int digest_hmac_sha256_parts(const void *key, size_t key_len, const digest_part *parts,
                             size_t n, unsigned char out[32]);

#endif
