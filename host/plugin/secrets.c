/* secrets.c - encrypted per-plugin credential files (AES-256-GCM).
 *
 * See secrets.h for the file format. Rules kept throughout this file:
 * - a buffer that held a key or plaintext is wiped with OPENSSL_cleanse
 *   before it is freed or goes out of scope;
 * - no error message carries a key, a plaintext or a credential value; it
 *   names lengths, positions, setting names, key ids and paths only;
 * - outputs are written only on success.
 */
#include "secrets.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hex.h"

#define SECRETS_KEY_HEX_LEN (2 * SECRETS_KEY_LEN)
/* A key file is 64 digits plus whitespace; anything much larger is wrong. */
#define SECRETS_MAX_KEY_FILE 4096

enum { GCM_OK = 0, GCM_FAIL = -1, GCM_AUTH = -2 };

static void secrets_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void secrets_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Prefix an error already in err with "<prefix>: ". */
static void secrets_err_prefix(char *err, size_t errlen, const char *prefix)
{
    if (!err || errlen == 0)
        return;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", err);
    snprintf(err, errlen, "%s: %s", prefix, tmp);
}

/* Key id: the first 8 bytes of SHA-256(key bytes). */
static int secrets_key_compute_id(secrets_key *key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int rc = -1;
    if (!EVP_Digest(key->bytes, SECRETS_KEY_LEN, md, &md_len, EVP_sha256(), NULL))
        goto fail;
    if (md_len < SECRETS_KEY_ID_LEN)
        goto fail;
    memcpy(key->id, md, SECRETS_KEY_ID_LEN);
    rc = 0;
fail:
    OPENSSL_cleanse(md, sizeof md);
    return rc;
}

void secrets_key_wipe(secrets_key *key)
{
    if (key)
        OPENSSL_cleanse(key, sizeof *key);
}

void secrets_key_id_hex(const secrets_key *key, char out[2 * SECRETS_KEY_ID_LEN + 1])
{
    hex_encode(key->id, SECRETS_KEY_ID_LEN, out);
}

int secrets_key_from_hex(const char *hex, secrets_key *out, char *err, size_t errlen)
{
    secrets_key key;
    int rc = -1;
    memset(&key, 0, sizeof key);
    if (!hex) {
        secrets_err(err, errlen, "master key is missing; generate one with: pagoflex secrets keygen");
        goto fail;
    }
    size_t start = 0, end = strlen(hex);
    while (start < end && isspace((unsigned char)hex[start]))
        start++;
    while (end > start && isspace((unsigned char)hex[end - 1]))
        end--;
    if (end - start != SECRETS_KEY_HEX_LEN) {
        secrets_err(err, errlen,
                    "master key must be %d hex digits (32 bytes), found %zu characters; "
                    "generate one with: pagoflex secrets keygen",
                    SECRETS_KEY_HEX_LEN, end - start);
        goto fail;
    }
    for (size_t i = 0; i < SECRETS_KEY_LEN; i++) {
        int hi = hex_digit((unsigned char)hex[start + 2 * i]);
        int lo = hex_digit((unsigned char)hex[start + 2 * i + 1]);
        if (hi < 0 || lo < 0) {
            secrets_err(err, errlen,
                        "master key has a character that is not a hex digit at position %zu; "
                        "it must be %d hex digits (0-9, a-f)",
                        2 * i + (hi < 0 ? 1 : 2), SECRETS_KEY_HEX_LEN);
            goto fail;
        }
        key.bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    if (secrets_key_compute_id(&key) != 0) {
        secrets_err(err, errlen, "cannot compute the master key id (OpenSSL SHA-256 failed)");
        goto fail;
    }
    *out = key;
    rc = 0;
fail:
    secrets_key_wipe(&key);
    return rc;
}

int secrets_key_from_file(const char *path, secrets_key *out, char *err, size_t errlen)
{
    char buf[SECRETS_MAX_KEY_FILE + 1];
    size_t len = 0;
    int fd = -1, rc = -1;
    struct stat st;

    /* O_NONBLOCK: a FIFO at the path must not hang us before fstat refuses it. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        secrets_err(err, errlen, "cannot open master key file %s: %s; check the path", path,
                    strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        secrets_err(err, errlen, "cannot stat master key file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        secrets_err(err, errlen, "master key file %s is not a regular file; point to the file "
                    "written by: pagoflex secrets keygen --out FILE", path);
        goto fail;
    }
    if (st.st_mode & 077) {
        secrets_err(err, errlen,
                    "master key file %s is readable by group or others (mode %04o); "
                    "run: chmod 600 %s",
                    path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size > SECRETS_MAX_KEY_FILE) {
        secrets_err(err, errlen,
                    "master key file %s is %lld bytes; it must hold only %d hex digits", path,
                    (long long)st.st_size, SECRETS_KEY_HEX_LEN);
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            secrets_err(err, errlen, "cannot read master key file %s: %s", path,
                        strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        secrets_err(err, errlen, "master key file %s holds a NUL byte; it must hold only %d hex "
                    "digits", path, SECRETS_KEY_HEX_LEN);
        goto fail;
    }
    if (secrets_key_from_hex(buf, out, err, errlen) != 0) {
        char where[600];
        snprintf(where, sizeof where, "master key file %s", path);
        secrets_err_prefix(err, errlen, where);
        goto fail;
    }
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int secrets_key_load(const char *key_file, secrets_key *out, char *err, size_t errlen)
{
    const char *env = getenv(SECRETS_ENV_KEY);
    if (env && *env) {
        if (secrets_key_from_hex(env, out, err, errlen) != 0) {
            secrets_err_prefix(err, errlen, "$" SECRETS_ENV_KEY);
            return -1;
        }
        return 0;
    }
    if (!key_file || !*key_file)
        key_file = getenv(SECRETS_ENV_KEY_FILE);
    if (!key_file || !*key_file) {
        secrets_err(err, errlen,
                    "no master key given; name a master key file or set $" SECRETS_ENV_KEY_FILE
                    " (or $" SECRETS_ENV_KEY ")");
        return -1;
    }
    return secrets_key_from_file(key_file, out, err, errlen);
}

int secrets_key_generate(secrets_key *out)
{
    if (RAND_bytes(out->bytes, SECRETS_KEY_LEN) != 1 || secrets_key_compute_id(out) != 0) {
        secrets_key_wipe(out);
        return -1;
    }
    return 0;
}

int secrets_binding_name(const char *plugin, const char *account, char *out, size_t cap)
{
    int n = !account || strcmp(account, "default") == 0 ? snprintf(out, cap, "%s", plugin)
                                                        : snprintf(out, cap, "%s/%s", plugin, account);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int secrets_check_plugin(const char *plugin, char *err, size_t errlen)
{
    if (!plugin || !*plugin) {
        secrets_err(err, errlen, "plugin name is empty; give the plugin the file belongs to");
        return -1;
    }
    if (strlen(plugin) > SECRETS_MAX_PLUGIN_NAME) {
        secrets_err(err, errlen, "plugin name is longer than %d characters",
                    SECRETS_MAX_PLUGIN_NAME);
        return -1;
    }
    return 0;
}

/* One AES-256-GCM pass over `in` (in_len <= SECRETS_MAX_PLAIN). Encrypting
 * writes `tag`; decrypting checks it. AAD = header || plugin. Returns GCM_OK,
 * GCM_AUTH (tag mismatch; `out` is wiped) or GCM_FAIL (OpenSSL error). */
static int secrets_gcm(int encrypt, const secrets_key *key, const unsigned char *header,
                       const char *plugin, const unsigned char *in, size_t in_len,
                       unsigned char *out, unsigned char tag[SECRETS_TAG_LEN])
{
    const unsigned char *nonce = header + SECRETS_HEADER_LEN - SECRETS_NONCE_LEN;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, rc = GCM_FAIL;
    if (!ctx)
        goto fail;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SECRETS_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key->bytes, nonce, encrypt) != 1)
        goto fail;
    if (EVP_CipherUpdate(ctx, NULL, &len, header, SECRETS_HEADER_LEN) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)plugin, (int)strlen(plugin)) != 1)
        goto fail;
    if (in_len > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)in_len) != 1)
        goto fail;
    if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SECRETS_TAG_LEN, tag) != 1)
        goto fail;
    if (EVP_CipherFinal_ex(ctx, out + (in_len > 0 ? (size_t)len : 0), &len) != 1) {
        rc = encrypt ? GCM_FAIL : GCM_AUTH;
        goto fail;
    }
    if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SECRETS_TAG_LEN, tag) != 1)
        goto fail;
    rc = GCM_OK;
fail:
    if (rc != GCM_OK && !encrypt && in_len > 0)
        OPENSSL_cleanse(out, in_len); /* GCM releases plaintext before the tag check */
    EVP_CIPHER_CTX_free(ctx); /* cleanses the expanded key schedule */
    return rc;
}

int secrets_encrypt(const secrets_key *key, const char *plugin, const unsigned char *plain,
                    size_t plain_len, unsigned char **out, size_t *out_len, char *err,
                    size_t errlen)
{
    unsigned char *buf = NULL;
    size_t total = SECRETS_HEADER_LEN + plain_len + SECRETS_TAG_LEN;
    int rc = -1;
    if (secrets_check_plugin(plugin, err, errlen) != 0)
        goto fail;
    if (plain_len > SECRETS_MAX_PLAIN) {
        secrets_err(err, errlen, "credentials are %zu bytes; at most %d are allowed", plain_len,
                    SECRETS_MAX_PLAIN);
        goto fail;
    }
    buf = malloc(total);
    if (!buf) {
        secrets_err(err, errlen, "out of memory encrypting %zu bytes", plain_len);
        goto fail;
    }
    memcpy(buf, SECRETS_MAGIC, SECRETS_MAGIC_LEN);
    buf[SECRETS_MAGIC_LEN] = SECRETS_VERSION;
    memcpy(buf + SECRETS_MAGIC_LEN + 1, key->id, SECRETS_KEY_ID_LEN);
    if (RAND_bytes(buf + SECRETS_HEADER_LEN - SECRETS_NONCE_LEN, SECRETS_NONCE_LEN) != 1) {
        secrets_err(err, errlen, "cannot draw a random nonce (OpenSSL RAND_bytes failed)");
        goto fail;
    }
    if (secrets_gcm(1, key, buf, plugin, plain, plain_len, buf + SECRETS_HEADER_LEN,
                    buf + SECRETS_HEADER_LEN + plain_len) != GCM_OK) {
        secrets_err(err, errlen, "AES-256-GCM encryption failed (OpenSSL error)");
        goto fail;
    }
    *out = buf;
    *out_len = total;
    buf = NULL;
    rc = 0;
fail:
    free(buf);
    return rc;
}

/* The header checks, in the order an operator can act on them. */
static int secrets_check_header(const secrets_key *key, const unsigned char *in, size_t in_len,
                                char *err, size_t errlen)
{
    size_t cmp = in_len < SECRETS_MAGIC_LEN ? in_len : SECRETS_MAGIC_LEN;
    if (in_len == 0 || memcmp(in, SECRETS_MAGIC, cmp) != 0) {
        secrets_err(err, errlen,
                    "not a Pagoflex credentials file (bad magic); create it with: "
                    "pagoflex secrets encrypt");
        return -1;
    }
    if (in_len < SECRETS_HEADER_LEN + SECRETS_TAG_LEN) {
        secrets_err(err, errlen,
                    "file too short (%zu bytes, a credentials file has at least %d): truncated; "
                    "restore it from a backup or encrypt it again",
                    in_len, SECRETS_HEADER_LEN + SECRETS_TAG_LEN);
        return -1;
    }
    if (in[SECRETS_MAGIC_LEN] != SECRETS_VERSION) {
        secrets_err(err, errlen,
                    "unsupported version %u (this build reads version %d); use a matching "
                    "pagoflex or encrypt the file again",
                    (unsigned)in[SECRETS_MAGIC_LEN], SECRETS_VERSION);
        return -1;
    }
    const unsigned char *id = in + SECRETS_MAGIC_LEN + 1;
    if (CRYPTO_memcmp(id, key->id, SECRETS_KEY_ID_LEN) != 0) {
        char file_id[2 * SECRETS_KEY_ID_LEN + 1], our_id[2 * SECRETS_KEY_ID_LEN + 1];
        hex_encode(id, SECRETS_KEY_ID_LEN, file_id);
        secrets_key_id_hex(key, our_id);
        secrets_err(err, errlen,
                    "encrypted under another master key (key id %s, this key is %s); "
                    "use the master key it was encrypted with",
                    file_id, our_id);
        return -1;
    }
    return 0;
}

int secrets_decrypt(const secrets_key *key, const char *plugin, const unsigned char *in,
                    size_t in_len, unsigned char **plain, size_t *plain_len, char *err,
                    size_t errlen)
{
    unsigned char *buf = NULL;
    unsigned char tag[SECRETS_TAG_LEN];
    size_t n = 0;
    int rc = -1;
    if (secrets_check_plugin(plugin, err, errlen) != 0)
        goto fail;
    if (secrets_check_header(key, in, in_len, err, errlen) != 0)
        goto fail;
    n = in_len - SECRETS_HEADER_LEN - SECRETS_TAG_LEN;
    if (n > SECRETS_MAX_PLAIN) {
        secrets_err(err, errlen, "file is %zu bytes; at most %d are allowed", in_len,
                    SECRETS_MAX_FILE);
        goto fail;
    }
    buf = malloc(n + 1);
    if (!buf) {
        secrets_err(err, errlen, "out of memory decrypting %zu bytes", n);
        goto fail;
    }
    memcpy(tag, in + SECRETS_HEADER_LEN + n, SECRETS_TAG_LEN);
    int g = secrets_gcm(0, key, in, plugin, in + SECRETS_HEADER_LEN, n, buf, tag);
    if (g == GCM_AUTH) {
        secrets_err(err, errlen,
                    "authentication failed: wrong master key, tampered file, or a file of "
                    "another plugin (this file is bound to the plugin it was encrypted for, "
                    "not necessarily '%s')",
                    plugin);
        goto fail;
    }
    if (g != GCM_OK) {
        secrets_err(err, errlen, "AES-256-GCM decryption failed (OpenSSL error)");
        goto fail;
    }
    buf[n] = '\0';
    *plain = buf;
    *plain_len = n;
    buf = NULL;
    rc = 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, n + 1);
        free(buf);
    }
    return rc;
}

/* An `@include` at the start of a line (after blanks), as libconfig's
 * scanner recognises it. A match inside a multi-line string is refused too,
 * which is the safe side. */
static int secrets_has_include(const char *text)
{
    for (const char *line = text; line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        while (*line == ' ' || *line == '\t' || *line == '\r')
            line++;
        if (strncmp(line, "@include", 8) == 0)
            return 1;
    }
    return 0;
}

static const char *secrets_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT: return "an integer";
    case CONFIG_TYPE_INT64: return "a 64-bit integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "a non-string value";
    }
}

/* Collect the root's string settings. The set is built apart and handed
 * over only when every setting passed. */
static int secrets_collect(const config_t *cfg, pagoflex_credentials **out, char *err,
                           size_t errlen)
{
    pagoflex_credentials *creds = creds_new();
    config_setting_t *root = config_root_setting(cfg);
    int rc = -1;
    if (!creds) {
        secrets_err(err, errlen, "out of memory reading credentials");
        goto fail;
    }
    int count = root ? config_setting_length(root) : 0;
    for (int i = 0; i < count; i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        int type = config_setting_type(s);
        if (type != CONFIG_TYPE_STRING) {
            secrets_err(err, errlen,
                        "setting %s is %s, not a string; write it as %s = \"...\";",
                        name ? name : "(unnamed)", secrets_type_name(type),
                        name ? name : "NAME");
            goto fail;
        }
        const char *value = config_setting_get_string(s);
        if (!name || !value || creds_set(creds, name, value) != 0) {
            secrets_err(err, errlen, "out of memory storing credential %s",
                        name ? name : "(unnamed)");
            goto fail;
        }
    }
    *out = creds;
    creds = NULL;
    rc = 0;
fail:
    creds_free(creds);
    return rc;
}

/* libconfig copies the text it parses (flex's scan buffer) and every string
 * value into its own heap blocks, and config_destroy frees them without
 * wiping; libconfig offers no allocator hook to change that. We keep the
 * config object alive only for the duration of this call so those copies
 * are released at once, and wipe every copy we own ourselves. */
int secrets_parse_credentials(const char *text, size_t len, pagoflex_credentials **out,
                              char *err, size_t errlen)
{
    char *copy = NULL;
    config_t cfg;
    int have_cfg = 0, rc = -1;
    if (memchr(text, '\0', len)) {
        secrets_err(err, errlen, "credentials contain a NUL byte; they must be a libconfig text "
                    "of NAME = \"value\"; lines");
        goto fail;
    }
    copy = malloc(len + 1);
    if (!copy) {
        secrets_err(err, errlen, "out of memory reading %zu bytes of credentials", len);
        goto fail;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (secrets_has_include(copy)) {
        secrets_err(err, errlen, "credentials use @include, which is not allowed; put every "
                    "setting in the one file");
        goto fail;
    }
    config_init(&cfg);
    have_cfg = 1;
    if (config_read_string(&cfg, copy) != CONFIG_TRUE) {
        const char *what = config_error_text(&cfg);
        secrets_err(err, errlen, "libconfig %s at line %d; fix the syntax (NAME = \"value\";)",
                    what ? what : "parse error", config_error_line(&cfg));
        goto fail;
    }
    if (secrets_collect(&cfg, out, err, errlen) != 0)
        goto fail;
    rc = 0;
fail:
    if (have_cfg)
        config_destroy(&cfg);
    if (copy) {
        OPENSSL_cleanse(copy, len + 1);
        free(copy);
    }
    return rc;
}

int secrets_read_file(const char *path, size_t max, unsigned char **out, size_t *len, char *err,
                      size_t errlen)
{
    unsigned char *buf = NULL;
    size_t got = 0, cap = 0;
    struct stat st;
    int fd = -1, rc = -1;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        secrets_err(err, errlen, "cannot open %s: %s; check the path", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        secrets_err(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        secrets_err(err, errlen, "%s is not a regular file", path);
        goto fail;
    }
    if ((unsigned long long)st.st_size > max) {
        secrets_err(err, errlen, "%s is %lld bytes; at most %zu are allowed", path,
                    (long long)st.st_size, max);
        goto fail;
    }
    /* Read what fstat promised, then make sure nothing follows: no realloc,
     * so no stray unwiped copy when the content is a plaintext. */
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        secrets_err(err, errlen, "out of memory reading %s", path);
        goto fail;
    }
    for (;;) {
        unsigned char extra;
        int full = got + 1 == cap;
        ssize_t n = full ? read(fd, &extra, 1) : read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            secrets_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (full) {
            OPENSSL_cleanse(&extra, 1);
            secrets_err(err, errlen, "%s changed while being read; try again", path);
            goto fail;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    if (buf) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    return rc;
}

const secrets_key *secrets_key_for_file(const secrets_key *const *keys, size_t n,
                                        const unsigned char *in, size_t in_len)
{
    if (in_len < SECRETS_HEADER_LEN || memcmp(in, SECRETS_MAGIC, SECRETS_MAGIC_LEN) != 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (keys[i] && memcmp(in + SECRETS_MAGIC_LEN + 1, keys[i]->id, SECRETS_KEY_ID_LEN) == 0)
            return keys[i];
    return NULL;
}

/* "id1, id2" of the configured keys, for an error. */
static void secrets_key_ids(const secrets_key *const *keys, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        if (!keys[i])
            continue;
        char id[2 * SECRETS_KEY_ID_LEN + 1];
        secrets_key_id_hex(keys[i], id);
        int w = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", id);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
}

int secrets_load_credentials_keys(const secrets_key *const *keys, size_t n, const char *path,
                                  const char *plugin, pagoflex_credentials **out, char *err,
                                  size_t errlen)
{
    unsigned char *file = NULL, *plain = NULL;
    size_t file_len = 0, plain_len = 0;
    int rc = -1;
    char where[600];
    snprintf(where, sizeof where, "credentials file %s", path);
    if (secrets_read_file(path, SECRETS_MAX_FILE, &file, &file_len, err, errlen) != 0)
        goto fail; /* the message already names the path */
    const secrets_key *key = secrets_key_for_file(keys, n, file, file_len);
    if (!key && n > 1 && file_len >= SECRETS_HEADER_LEN &&
        memcmp(file, SECRETS_MAGIC, SECRETS_MAGIC_LEN) == 0) {
        char file_id[2 * SECRETS_KEY_ID_LEN + 1], ids[128];
        hex_encode(file + SECRETS_MAGIC_LEN + 1, SECRETS_KEY_ID_LEN, file_id);
        secrets_key_ids(keys, n, ids, sizeof ids);
        secrets_err(err, errlen,
                    "%s: encrypted under another master key (key id %s, configured keys are %s); "
                    "configure the key it was encrypted with",
                    where, file_id, ids);
        goto fail;
    }
    if (!key)
        key = keys[0]; /* its checks give the precise reason */
    if (secrets_decrypt(key, plugin, file, file_len, &plain, &plain_len, err, errlen) != 0) {
        secrets_err_prefix(err, errlen, where);
        goto fail;
    }
    if (secrets_parse_credentials((const char *)plain, plain_len, out, err, errlen) != 0) {
        secrets_err_prefix(err, errlen, where);
        goto fail;
    }
    rc = 0;
fail:
    free(file);
    if (plain) {
        OPENSSL_cleanse(plain, plain_len + 1);
        free(plain);
    }
    return rc;
}

int secrets_load_credentials(const secrets_key *key, const char *path, const char *plugin,
                             pagoflex_credentials **out, char *err, size_t errlen)
{
    const secrets_key *keys[1] = {key};
    return secrets_load_credentials_keys(keys, 1, path, plugin, out, err, errlen);
}
