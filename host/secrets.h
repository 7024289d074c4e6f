/* secrets.h - encrypted per-plugin credential files (AES-256-GCM).
 *
 * File format (all integers big-endian), documented in README "Credentials":
 *   offset 0  magic    8 bytes  "PGFXCRED"
 *          8  version  1 byte   1
 *          9  key id   8 bytes  first 8 bytes of SHA-256(master key)
 *         17  nonce   12 bytes  random per encryption
 *         29  ciphertext (n bytes), then the 16-byte GCM tag
 * Authenticated data: the 29 header bytes followed by the plugin name, so a
 * file cannot be moved to another plugin or have its header edited.
 * The plaintext is a libconfig document of string settings:
 *   BANCOX_API_KEY = "...";
 */
#ifndef PAGOFLEX_SECRETS_H
#define PAGOFLEX_SECRETS_H

#include <stddef.h>

#include "creds.h"

#define SECRETS_KEY_LEN 32
#define SECRETS_KEY_ID_LEN 8

typedef struct secrets_key {
    unsigned char bytes[SECRETS_KEY_LEN];
    unsigned char id[SECRETS_KEY_ID_LEN];
} secrets_key;

/* Read a master key file holding 64 hex digits (whitespace around allowed).
 * Refused if group or others may read it. 0 on success; on failure -1 and a
 * one-line reason in err (never the key). */
int secrets_key_from_file(const char *path, secrets_key *out, char *err, size_t errlen);

/* Parse 64 hex digits (e.g. the PAGOFLEX_MASTER_KEY environment variable). */
int secrets_key_from_hex(const char *hex, secrets_key *out, char *err, size_t errlen);

/* The master key from $PAGOFLEX_MASTER_KEY if set, else from key_file (or
 * $PAGOFLEX_MASTER_KEY_FILE when key_file is NULL). */
int secrets_key_load(const char *key_file, secrets_key *out, char *err, size_t errlen);

/* A fresh random key. 0 on success. */
int secrets_key_generate(secrets_key *out);

/* Wipe a key in place. */
void secrets_key_wipe(secrets_key *key);

/* Encrypt `plain` for `plugin`. *out is malloc'd (caller frees). */
int secrets_encrypt(const secrets_key *key, const char *plugin, const unsigned char *plain,
                    size_t plain_len, unsigned char **out, size_t *out_len, char *err,
                    size_t errlen);

/* Decrypt a file image for `plugin`. *plain is malloc'd, NUL-terminated; the
 * caller wipes (OPENSSL_cleanse) and frees it. Fails with a clear reason on a
 * short file, bad magic/version, a key id that is not this key's ("encrypted
 * under another master key"), or a failed tag ("wrong key, tampered file, or
 * a file of another plugin"). Never puts plaintext in err. */
int secrets_decrypt(const secrets_key *key, const char *plugin, const unsigned char *in,
                    size_t in_len, unsigned char **plain, size_t *plain_len, char *err,
                    size_t errlen);

/* Read `path`, decrypt it for `plugin`, parse it with config_read_string and
 * return its string settings as a credential set (caller frees with
 * creds_free). Plaintext buffers are wiped before returning. */
int secrets_load_credentials(const secrets_key *key, const char *path, const char *plugin,
                             pagoflex_credentials **out, char *err, size_t errlen);

#endif
