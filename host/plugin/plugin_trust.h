/* plugin_trust.h - which plugin files the host may load (like sshd's StrictModes).
 *
 * Whoever can write a plugin file, or the directory that holds it, runs code
 * inside pagoflexd with its bank credentials. So, before a plugin is copied
 * and dlopen'd, the registry asks this module:
 *   - the plugin file and its directory must be owned by root or by the
 *     effective user of the process, and writable by neither group nor others;
 *   - when signatures are required, <file>.sig must hold an Ed25519 signature
 *     of the file's bytes by one of the trusted public keys.
 *
 * Signature file (<plugin>.so.sig, text, written by `pagoflex plugin sign`):
 *   pagoflex-plugin-signature-v1
 *   key-id: <64 hex digits: SHA-256 of the raw 32-byte Ed25519 public key>
 *   signature: <128 hex digits>
 * The signed message is the 28 bytes "PAGOFLEX-PLUGIN-SIGNATURE-V1" followed
 * by the 32-byte SHA-256 of the plugin file (a domain prefix, so a signature
 * made for anything else never verifies as a plugin signature).
 *
 * No OpenSSL type appears in this header.
 */
#ifndef PAGOFLEX_PLUGIN_TRUST_H
#define PAGOFLEX_PLUGIN_TRUST_H

#include <stdbool.h>
#include <stddef.h>

#define PLUGIN_TRUST_SIG_SUFFIX ".sig"
#define PLUGIN_TRUST_MAX_KEYS 32

/* Why a file was refused, in the registry's rejection terms. */
typedef struct plugin_trust_problem {
    const char *field;  /* "permissions", "owner" or "signature" */
    char expected[160];
    char found[512];
    char fix[768];
} plugin_trust_problem;

typedef struct plugin_trust plugin_trust;

/* The signature policy: when require_signed is true, only files signed by
 * one of the n public keys (PEM files, Ed25519) load. Every key file must
 * load and be Ed25519; require_signed with no key is refused too. NULL with
 * a one-line reason in err on failure. Free with plugin_trust_free. */
plugin_trust *plugin_trust_new(bool require_signed, const char *const *key_paths, size_t n,
                               char *err, size_t errlen);

/* Free a policy. NULL is a no-op. */
void plugin_trust_free(plugin_trust *t);

/* Ownership and mode of `path` (a directory when is_dir): owned by root or
 * the effective uid, not writable by group or others. 0 if fine; -1 with
 * *pb filled (naming the path and the chmod/chown that fixes it). */
int plugin_trust_check_mode(const char *path, bool is_dir, plugin_trust_problem *pb);

/* Everything about plugin file `path` whose bytes (as read for loading) are
 * data/len: its mode and owner, those of its directory, and, when `t`
 * requires signatures, its signature over exactly these bytes. `t` may be
 * NULL (no signature policy). 0 if it may load; -1 with *pb filled. */
int plugin_trust_check_file(const plugin_trust *t, const char *path, const unsigned char *data,
                            size_t len, plugin_trust_problem *pb);

/* Sign data/len with the Ed25519 private key in PEM file key_path (which
 * group and others must not be able to read). *sig_text (malloc'd, caller
 * frees) is the content of the .sig file. -1 with a reason in err. */
int plugin_trust_sign(const char *key_path, const unsigned char *data, size_t len,
                      char **sig_text, char *err, size_t errlen);

/* A new Ed25519 key pair as PEM text: *priv_pem (PKCS#8; caller wipes and
 * frees) and *pub_pem (SubjectPublicKeyInfo; caller frees); *key_id gets
 * the 64 hex digits of its key id. -1 with a reason in err. */
int plugin_trust_keygen(char **priv_pem, char **pub_pem, char key_id[65], char *err,
                        size_t errlen);

#endif
