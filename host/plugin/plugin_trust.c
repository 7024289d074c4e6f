/* plugin_trust.c - which plugin files the host may load; see plugin_trust.h. */
#include "plugin_trust.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "secrets.h"

#define TRUST_DOMAIN "PAGOFLEX-PLUGIN-SIGNATURE-V1"
#define TRUST_DOMAIN_LEN (sizeof TRUST_DOMAIN - 1)
#define TRUST_HEADER "pagoflex-plugin-signature-v1"
#define TRUST_SIG_LEN 64
#define TRUST_ID_LEN 32
#define TRUST_MAX_SIG_FILE 4096
#define TRUST_MAX_KEY_FILE 16384

typedef struct trust_key {
    EVP_PKEY *pkey;
    unsigned char id[TRUST_ID_LEN];
    char *path;
} trust_key;

struct plugin_trust {
    bool require_signed;
    trust_key keys[PLUGIN_TRUST_MAX_KEYS];
    size_t count;
};

static void trust_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void trust_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int trust_problem(plugin_trust_problem *pb, const char *field, const char *expected,
                         const char *found, const char *fix_fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Fill *pb; always -1. */
static int trust_problem(plugin_trust_problem *pb, const char *field, const char *expected,
                         const char *found, const char *fix_fmt, ...)
{
    va_list ap;
    pb->field = field;
    snprintf(pb->expected, sizeof pb->expected, "%s", expected);
    snprintf(pb->found, sizeof pb->found, "%s", found);
    va_start(ap, fix_fmt);
    vsnprintf(pb->fix, sizeof pb->fix, fix_fmt, ap);
    va_end(ap);
    return -1;
}

static void trust_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int trust_unhex(const char *s, size_t len, unsigned char *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else
                return -1;
            v = v << 4 | d;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* SHA-256 of the raw public key: the key id written into .sig files. */
static int trust_key_id(EVP_PKEY *pkey, unsigned char id[TRUST_ID_LEN])
{
    unsigned char raw[64];
    size_t raw_len = sizeof raw;
    unsigned int md_len = 0;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1)
        return -1;
    if (!EVP_Digest(raw, raw_len, id, &md_len, EVP_sha256(), NULL) || md_len != TRUST_ID_LEN)
        return -1;
    return 0;
}

/* The message a plugin signature covers: domain || SHA-256(file). */
static int trust_message(const unsigned char *data, size_t len,
                         unsigned char msg[TRUST_DOMAIN_LEN + 32])
{
    unsigned int md_len = 0;
    memcpy(msg, TRUST_DOMAIN, TRUST_DOMAIN_LEN);
    if (!EVP_Digest(data, len, msg + TRUST_DOMAIN_LEN, &md_len, EVP_sha256(), NULL) ||
        md_len != 32)
        return -1;
    return 0;
}

/* Read a small file into a NUL-terminated malloc'd buffer. */
static int trust_read(const char *path, size_t max, bool secret, char **out, char *err,
                      size_t errlen)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (secrets_read_file(path, max, &buf, &len, err, errlen) != 0)
        return -1;
    if (secret) {
        struct stat st;
        if (stat(path, &st) != 0 || (st.st_mode & 077)) {
            OPENSSL_cleanse(buf, len);
            free(buf);
            trust_err(err, errlen, "private key %s is readable by group or others; run: chmod 600 %s",
                      path, path);
            return -1;
        }
    }
    *out = (char *)buf;
    return 0;
}

static EVP_PKEY *trust_load_pem(const char *path, bool private_key, char *err, size_t errlen)
{
    char *text = NULL;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    if (trust_read(path, TRUST_MAX_KEY_FILE, private_key, &text, err, errlen) != 0)
        goto fail;
    bio = BIO_new_mem_buf(text, -1);
    if (!bio) {
        trust_err(err, errlen, "out of memory reading %s", path);
        goto fail;
    }
    pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pkey) {
        trust_err(err, errlen, "%s is not a PEM %s key; make one with: pagoflex plugin keygen",
                  path, private_key ? "private" : "public");
        goto fail;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        trust_err(err, errlen, "%s is not an Ed25519 key; make one with: pagoflex plugin keygen",
                  path);
        EVP_PKEY_free(pkey);
        pkey = NULL;
        goto fail;
    }
fail:
    BIO_free(bio);
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    return pkey;
}

plugin_trust *plugin_trust_new(bool require_signed, const char *const *key_paths, size_t n,
                               char *err, size_t errlen)
{
    plugin_trust *t = calloc(1, sizeof *t);
    if (!t) {
        trust_err(err, errlen, "out of memory");
        goto fail;
    }
    t->require_signed = require_signed;
    if (n > PLUGIN_TRUST_MAX_KEYS) {
        trust_err(err, errlen, "trusted_keys lists %zu keys; at most %d are allowed", n,
                  PLUGIN_TRUST_MAX_KEYS);
        goto fail;
    }
    if (require_signed && n == 0) {
        trust_err(err, errlen, "require_signed_plugins is true but trusted_keys is empty; list "
                  "the public key files of your plugin signers");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        trust_key *k = &t->keys[t->count];
        k->pkey = trust_load_pem(key_paths[i], false, err, errlen);
        if (!k->pkey)
            goto fail;
        t->count++;
        k->path = strdup(key_paths[i]);
        if (!k->path || trust_key_id(k->pkey, k->id) != 0) {
            trust_err(err, errlen, "cannot read the public key %s (out of memory or OpenSSL error)",
                      key_paths[i]);
            goto fail;
        }
    }
    return t;
fail:
    plugin_trust_free(t);
    return NULL;
}

void plugin_trust_free(plugin_trust *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++) {
        EVP_PKEY_free(t->keys[i].pkey);
        free(t->keys[i].path);
    }
    free(t);
}

int plugin_trust_check_mode(const char *path, bool is_dir, plugin_trust_problem *pb)
{
    struct stat st;
    char found[128];
    const char *what = is_dir ? "plugin directory" : "plugin file";
    if (stat(path, &st) != 0) {
        return trust_problem(pb, "permissions", "an existing path", strerror(errno),
                             "check that %s %s exists", what, path);
    }
    uid_t me = geteuid();
    if (st.st_uid != 0 && st.st_uid != me) {
        snprintf(found, sizeof found, "owner uid %ld", (long)st.st_uid);
        return trust_problem(pb, "owner", "owned by root or the service user", found,
                             "%s %s belongs to another user, who could replace the code this "
                             "host runs; run: chown %ld %s (or chown root %s)",
                             what, path, (long)me, path, path);
    }
    if (st.st_mode & 022) {
        snprintf(found, sizeof found, "mode %04o", (unsigned)(st.st_mode & 07777));
        return trust_problem(pb, "permissions", "not writable by group or others", found,
                             "anyone who can write %s %s can run code in this host; run: "
                             "chmod go-w %s",
                             what, path, path);
    }
    return 0;
}

/* Parse a .sig file: key id and signature. */
static int trust_parse_sig(const char *text, unsigned char id[TRUST_ID_LEN],
                           unsigned char sig[TRUST_SIG_LEN])
{
    const char *p = text;
    size_t hl = strlen(TRUST_HEADER);
    if (strncmp(p, TRUST_HEADER, hl) != 0 || p[hl] != '\n')
        return -1;
    p += hl + 1;
    if (strncmp(p, "key-id: ", 8) != 0 || strlen(p + 8) < 2 * TRUST_ID_LEN + 1 ||
        p[8 + 2 * TRUST_ID_LEN] != '\n' || trust_unhex(p + 8, TRUST_ID_LEN, id) != 0)
        return -1;
    p += 8 + 2 * TRUST_ID_LEN + 1;
    if (strncmp(p, "signature: ", 11) != 0 || strlen(p + 11) < 2 * TRUST_SIG_LEN ||
        trust_unhex(p + 11, TRUST_SIG_LEN, sig) != 0)
        return -1;
    p += 11 + 2 * TRUST_SIG_LEN;
    while (*p == '\n' || *p == '\r' || *p == ' ')
        p++;
    return *p ? -1 : 0;
}

static int trust_check_signature(const plugin_trust *t, const char *path,
                                 const unsigned char *data, size_t len, plugin_trust_problem *pb)
{
    char *sig_path = NULL, *text = NULL;
    unsigned char id[TRUST_ID_LEN], sig[TRUST_SIG_LEN], msg[TRUST_DOMAIN_LEN + 32];
    char why[512], id_hex[2 * TRUST_ID_LEN + 1];
    EVP_MD_CTX *ctx = NULL;
    int rc = -1;

    if (asprintf(&sig_path, "%s%s", path, PLUGIN_TRUST_SIG_SUFFIX) < 0) {
        sig_path = NULL;
        trust_problem(pb, "signature", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (access(sig_path, F_OK) != 0) {
        trust_problem(pb, "signature", "a signature file", "no .sig",
                      "require_signed_plugins is on and %s is missing; sign the plugin with: "
                      "pagoflex plugin sign --key <signer.key> %s",
                      sig_path, path);
        goto fail;
    }
    plugin_trust_problem sig_pb;
    if (plugin_trust_check_mode(sig_path, false, &sig_pb) != 0) {
        *pb = sig_pb;
        pb->field = "signature";
        goto fail;
    }
    if (trust_read(sig_path, TRUST_MAX_SIG_FILE, false, &text, why, sizeof why) != 0) {
        trust_problem(pb, "signature", "a readable signature file", why,
                      "sign the plugin again with: pagoflex plugin sign");
        goto fail;
    }
    if (trust_parse_sig(text, id, sig) != 0) {
        trust_problem(pb, "signature", TRUST_HEADER, "bad signature (malformed .sig file)",
                      "sign the plugin again with: pagoflex plugin sign --key <signer.key> %s",
                      path);
        goto fail;
    }
    const trust_key *key = NULL;
    for (size_t i = 0; i < t->count; i++)
        if (memcmp(t->keys[i].id, id, TRUST_ID_LEN) == 0)
            key = &t->keys[i];
    trust_hex(id, TRUST_ID_LEN, id_hex);
    if (!key) {
        snprintf(why, sizeof why, "untrusted key (key id %.16s...)", id_hex);
        trust_problem(pb, "signature", "a key listed in trusted_keys", why,
                      "the plugin was signed by a key this host does not trust; add its public "
                      "key to trusted_keys or have a trusted signer sign %s",
                      path);
        goto fail;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || trust_message(data, len, msg) != 0 ||
        EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) != 1) {
        trust_problem(pb, "signature", "a verifiable signature", "OpenSSL error",
                      "check the OpenSSL installation");
        goto fail;
    }
    if (EVP_DigestVerify(ctx, sig, sizeof sig, msg, sizeof msg) != 1) {
        snprintf(why, sizeof why, "bad signature (key %s)", key->path);
        trust_problem(pb, "signature", "a valid Ed25519 signature of this file", why,
                      "the file changed after it was signed, or %s belongs to another file; "
                      "deploy the file that was signed, or sign this one",
                      sig_path);
        goto fail;
    }
    rc = 0;
fail:
    EVP_MD_CTX_free(ctx);
    free(sig_path);
    free(text);
    return rc;
}

int plugin_trust_check_file(const plugin_trust *t, const char *path, const unsigned char *data,
                            size_t len, plugin_trust_problem *pb)
{
    char *copy = strdup(path);
    int rc = -1;
    if (!copy) {
        trust_problem(pb, "permissions", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (plugin_trust_check_mode(dirname(copy), true, pb) != 0 ||
        plugin_trust_check_mode(path, false, pb) != 0)
        goto fail;
    if (t && t->require_signed && trust_check_signature(t, path, data, len, pb) != 0)
        goto fail;
    rc = 0;
fail:
    free(copy);
    return rc;
}

int plugin_trust_sign(const char *key_path, const unsigned char *data, size_t len,
                      char **sig_text, char *err, size_t errlen)
{
    EVP_PKEY *pkey = trust_load_pem(key_path, true, err, errlen);
    EVP_MD_CTX *ctx = NULL;
    unsigned char msg[TRUST_DOMAIN_LEN + 32], sig[TRUST_SIG_LEN], id[TRUST_ID_LEN];
    size_t sig_len = sizeof sig;
    char sig_hex[2 * TRUST_SIG_LEN + 1], id_hex[2 * TRUST_ID_LEN + 1];
    char *text = NULL;
    int rc = -1;
    if (!pkey)
        goto fail;
    ctx = EVP_MD_CTX_new();
    if (!ctx || trust_message(data, len, msg) != 0 || trust_key_id(pkey, id) != 0 ||
        EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof msg) != 1 || sig_len != TRUST_SIG_LEN) {
        trust_err(err, errlen, "Ed25519 signing failed (OpenSSL error)");
        goto fail;
    }
    trust_hex(sig, TRUST_SIG_LEN, sig_hex);
    trust_hex(id, TRUST_ID_LEN, id_hex);
    if (asprintf(&text, TRUST_HEADER "\nkey-id: %s\nsignature: %s\n", id_hex, sig_hex) < 0) {
        text = NULL;
        trust_err(err, errlen, "out of memory");
        goto fail;
    }
    *sig_text = text;
    rc = 0;
fail:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc;
}

/* The PEM text a BIO holds, as a malloc'd string. */
static char *trust_bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0)
        return NULL;
    return strndup(data, (size_t)n);
}

int plugin_trust_keygen(char **priv_pem, char **pub_pem, char key_id[65], char *err,
                        size_t errlen)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *priv = BIO_new(BIO_s_secmem()), *pub = BIO_new(BIO_s_mem());
    char *priv_text = NULL, *pub_text = NULL;
    unsigned char id[TRUST_ID_LEN];
    int rc = -1;
    if (!pkey || !priv || !pub || !PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_PUBKEY(pub, pkey) || trust_key_id(pkey, id) != 0) {
        trust_err(err, errlen, "Ed25519 key generation failed (OpenSSL error)");
        goto fail;
    }
    priv_text = trust_bio_text(priv);
    pub_text = trust_bio_text(pub);
    if (!priv_text || !pub_text) {
        trust_err(err, errlen, "out of memory");
        goto fail;
    }
    trust_hex(id, TRUST_ID_LEN, key_id);
    *priv_pem = priv_text;
    *pub_pem = pub_text;
    priv_text = pub_text = NULL;
    rc = 0;
fail:
    if (priv_text) {
        OPENSSL_cleanse(priv_text, strlen(priv_text));
        free(priv_text);
    }
    free(pub_text);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(pkey);
    return rc;
}
