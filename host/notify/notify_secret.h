/* notify_secret.h - the signing secrets of merchants' webhook endpoints.
 *
 * A secret is "whsec_" + base64 of 32 random bytes (the Standard Webhooks
 * form the official libraries take). The host must sign with it, so it is
 * stored retrievable: encrypted with the master key as a secrets.c file
 * image (AES-256-GCM), whose authenticated data is "webhook_endpoint:<id>",
 * so a ciphertext copied onto another endpoint's row does not decrypt.
 * During a master key rotation the previous key still opens what it sealed.
 */
#ifndef PAGOFLEX_NOTIFY_SECRET_H
#define PAGOFLEX_NOTIFY_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "secrets.h"

/* "whsec_" + 44 base64 characters + NUL. */
#define NOTIFY_SECRET_LEN (6 + 44)

/* The master keys a worker keeps for endpoint secrets. */
typedef struct notify_keys {
    secrets_key current;
    secrets_key previous;
    bool have_previous;
} notify_keys;

/* A fresh secret into out. 0, or -1 if the random generator fails. */
int notify_secret_new(char out[NOTIFY_SECRET_LEN + 1]);

/* Encrypt `secret` for endpoint `endpoint_id` under keys->current. *out is
 * malloc'd (caller frees). -1 with a reason in err (never the secret). */
int notify_secret_seal(const notify_keys *keys, const char *endpoint_id, const char *secret,
                       unsigned char **out, size_t *out_len, char *err, size_t errlen);

/* Decrypt a sealed secret of endpoint `endpoint_id` with whichever of the
 * keys sealed it into out (NUL-terminated). The caller wipes out
 * (OPENSSL_cleanse) after use. -1 with a reason in err. */
int notify_secret_open(const notify_keys *keys, const char *endpoint_id, const unsigned char *in,
                       size_t in_len, char out[NOTIFY_SECRET_LEN + 1], char *err, size_t errlen);

/* Re-seal a sealed secret under keys->current (opened with whichever key
 * sealed it). *out malloc'd (caller frees). -1 with a reason in err. */
int notify_secret_reseal(const notify_keys *keys, const char *endpoint_id, const unsigned char *in,
                         size_t in_len, unsigned char **out, size_t *out_len, char *err, size_t errlen);

#endif
