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
 * The plaintext is a libconfig document of top-level string settings only:
 *   BANCOX_API_KEY = "...";
 * `@include` directives are refused (the plaintext must be self-contained).
 *
 * Master key: 32 bytes, written as 64 hex digits, either in a key file (a
 * regular file that neither group nor others may access: mode 0600 or 0400)
 * or in $PAGOFLEX_MASTER_KEY.
 *
 * Every error is one actionable line written into err; no error ever holds a
 * key, a plaintext, or a credential value.
 */
#ifndef PAGOFLEX_SECRETS_H
#define PAGOFLEX_SECRETS_H

#include <stddef.h>

#include "creds.h"

#define SECRETS_KEY_LEN 32
#define SECRETS_KEY_ID_LEN 8

#define SECRETS_MAGIC "PGFXCRED"
#define SECRETS_MAGIC_LEN 8
#define SECRETS_VERSION 1
#define SECRETS_NONCE_LEN 12
#define SECRETS_TAG_LEN 16
#define SECRETS_HEADER_LEN (SECRETS_MAGIC_LEN + 1 + SECRETS_KEY_ID_LEN + SECRETS_NONCE_LEN)
/* Largest encrypted file (and so plaintext) the host reads. */
#define SECRETS_MAX_FILE (1024 * 1024)
#define SECRETS_MAX_PLAIN (SECRETS_MAX_FILE - SECRETS_HEADER_LEN - SECRETS_TAG_LEN)
/* Longest plugin name accepted as authenticated data. */
#define SECRETS_MAX_PLUGIN_NAME 255

#define SECRETS_ENV_KEY "PAGOFLEX_MASTER_KEY"
#define SECRETS_ENV_KEY_FILE "PAGOFLEX_MASTER_KEY_FILE"

typedef struct secrets_key {
    unsigned char bytes[SECRETS_KEY_LEN];
    unsigned char id[SECRETS_KEY_ID_LEN];
} secrets_key;

/* Read a master key file holding 64 hex digits (whitespace around allowed).
 * Refused if it is not a regular file or if group or others have any access
 * to it (st_mode & 077). 0 on success; on failure -1, *out untouched and a
 * one-line reason in err (never the key). */
int secrets_key_from_file(const char *path, secrets_key *out, char *err, size_t errlen);

/* Parse 64 hex digits (whitespace around allowed), e.g. the
 * PAGOFLEX_MASTER_KEY environment variable, and compute the key id.
 * 0 on success; on failure -1, *out untouched and a reason in err that
 * names lengths and positions only, never the digits. */
int secrets_key_from_hex(const char *hex, secrets_key *out, char *err, size_t errlen);

/* The master key from $PAGOFLEX_MASTER_KEY if set and non-empty, else from
 * key_file (or $PAGOFLEX_MASTER_KEY_FILE when key_file is NULL). 0 on
 * success; -1 with a reason in err (which names the source) on failure,
 * including when no source is given at all. */
int secrets_key_load(const char *key_file, secrets_key *out, char *err, size_t errlen);

/* A fresh random key (RAND_bytes) with its id. 0 on success, -1 if the
 * random generator fails (*out is then wiped). */
int secrets_key_generate(secrets_key *out);

/* The key id as 16 lower-case hex digits plus NUL (safe to print). */
void secrets_key_id_hex(const secrets_key *key, char out[2 * SECRETS_KEY_ID_LEN + 1]);

/* Wipe a key in place. NULL is a no-op. */
void secrets_key_wipe(secrets_key *key);

/* The name the credentials file of (plugin, account) is encrypted for,
 * i.e. the `plugin` argument of the calls below (its authenticated data):
 * the plugin name for account "default" (or NULL), "<plugin>/<account>"
 * for any other account, so a file cannot be moved to another account of
 * the same plugin either ('/' is in no plugin or account name). 0, or -1
 * when it does not fit in `cap`. */
int secrets_binding_name(const char *plugin, const char *account, char *out, size_t cap);

/* Encrypt `plain` for `plugin` into a complete file image. *out is
 * malloc'd (caller frees; it holds no secret in clear). On failure -1,
 * *out and *out_len untouched, reason in err. */
int secrets_encrypt(const secrets_key *key, const char *plugin, const unsigned char *plain,
                    size_t plain_len, unsigned char **out, size_t *out_len, char *err,
                    size_t errlen);

/* Decrypt a file image for `plugin`. *plain is malloc'd, NUL-terminated; the
 * caller wipes (OPENSSL_cleanse) and frees it. Fails with a clear reason on a
 * short file, bad magic/version, a key id that is not this key's ("encrypted
 * under another master key"), or a failed tag ("wrong key, tampered file, or
 * a file of another plugin"). Never puts plaintext in err. On failure
 * *plain and *plain_len are untouched and no decrypted byte survives. */
int secrets_decrypt(const secrets_key *key, const char *plugin, const unsigned char *in,
                    size_t in_len, unsigned char **plain, size_t *plain_len, char *err,
                    size_t errlen);

/* Parse a plaintext credentials document (`len` bytes, need not be
 * NUL-terminated) and return its top-level string settings as a set
 * (caller frees with creds_free). Refuses a NUL byte, an `@include`, a
 * syntax error (the message gives the line) and any setting that is not a
 * string (the message names the setting, never its value). The internal
 * NUL-terminated copy is wiped; libconfig's own copies are not (see
 * secrets.c). On failure -1, *out untouched. */
int secrets_parse_credentials(const char *text, size_t len, pagoflex_credentials **out,
                              char *err, size_t errlen);

/* Read a whole regular file of at most `max` bytes into a malloc'd buffer
 * (caller frees, and wipes first if the content is secret; NUL-terminated
 * for convenience, the NUL not counted in *len). Never reallocates, so no
 * stray copy is left behind. "-" is not special. On failure -1, outputs
 * untouched, partial data wiped. */
int secrets_read_file(const char *path, size_t max, unsigned char **out, size_t *len, char *err,
                      size_t errlen);

/* Read `path`, decrypt it for `plugin`, parse it with config_read_string and
 * return its string settings as a credential set (caller frees with
 * creds_free). Plaintext buffers are wiped before returning. Errors are
 * prefixed with the path. */
int secrets_load_credentials(const secrets_key *key, const char *path, const char *plugin,
                             pagoflex_credentials **out, char *err, size_t errlen);

/* The key of `keys` (n entries, NULL entries skipped) whose id matches the
 * key id in the header of the file image `in`, or NULL if none does or the
 * image is too short to have a header. Used during a master key rotation,
 * when the host holds the new and the previous key. */
const secrets_key *secrets_key_for_file(const secrets_key *const *keys, size_t n,
                                        const unsigned char *in, size_t in_len);

/* secrets_load_credentials() with a choice of keys: the one whose id the
 * file's header names is used (secrets_key_for_file). When none matches,
 * the error names the file's key id and every configured key id. keys[0]
 * must not be NULL. */
int secrets_load_credentials_keys(const secrets_key *const *keys, size_t n, const char *path,
                                  const char *plugin, pagoflex_credentials **out, char *err,
                                  size_t errlen);

#endif
