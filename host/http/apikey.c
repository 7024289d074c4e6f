/* apikey.c - API keys kept in PostgreSQL as SHA-256 hashes only; see apikey.h. */
#include "apikey.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "arena.h"
#include "store_merchant.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static void apikey_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int apikey_hash(const char *key, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(key, strlen(key), out, &n, EVP_sha256(), NULL) && n == 32 ? 0 : -1;
}

int apikey_prefix_of(const char *key, char prefix_out[APIKEY_PREFIX_LEN + 1])
{
    if (!key || strnlen(key, APIKEY_LEN + 1) != APIKEY_LEN ||
        strncmp(key, APIKEY_TAG, 4) != 0 || key[APIKEY_PREFIX_LEN] != '_')
        return -1;
    for (size_t i = 4; i < APIKEY_PREFIX_LEN; i++)
        if (!islower((unsigned char)key[i]) && !isdigit((unsigned char)key[i]))
            return -1;
    memcpy(prefix_out, key, APIKEY_PREFIX_LEN);
    prefix_out[APIKEY_PREFIX_LEN] = '\0';
    return 0;
}

/* A fresh key and its prefix. */
static int apikey_make(apikey_created *k)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char raw[APIKEY_ID_CHARS + APIKEY_SECRET_HEX / 2];
    int rc = -1;
    if (RAND_bytes(raw, sizeof raw) != 1)
        goto fail;
    memcpy(k->key, APIKEY_TAG, 4);
    for (size_t i = 0; i < APIKEY_ID_CHARS; i++)
        k->key[4 + i] = alphabet[raw[i] % 36]; /* slight bias: the prefix is not secret */
    k->key[APIKEY_PREFIX_LEN] = '_';
    apikey_hex(raw + APIKEY_ID_CHARS, APIKEY_SECRET_HEX / 2, k->key + APIKEY_PREFIX_LEN + 1);
    memcpy(k->prefix, k->key, APIKEY_PREFIX_LEN);
    k->prefix[APIKEY_PREFIX_LEN] = '\0';
    rc = 0;
fail:
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

static int apikey_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > APIKEY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

/* $1 name, $2 prefix, $3 hash (hex), $4 merchant: the key of an active
 * merchant; no row when there is none with that id. */
static const char sql_key_insert[] =
    "INSERT INTO api_keys (name, prefix, hash, merchant_id)"
    " SELECT $1::text, $2::text, decode($3::text, 'hex'), m.id FROM merchants m"
    " WHERE m.id = $4::text AND m.disabled_at IS NULL RETURNING id";

/* The same, with $5 the name of merchant $4, made in the same statement:
 * a merchant never exists without its first key. */
static const char sql_merchant_insert[] =
    "WITH m AS (INSERT INTO merchants (id, name) VALUES ($4::text, $5::text) RETURNING id)"
    " INSERT INTO api_keys (name, prefix, hash, merchant_id)"
    " SELECT $1::text, $2::text, decode($3::text, 'hex'), m.id FROM m RETURNING id";

/* Draw a key (and, when merchant_name is set, a merchant id into
 * merchant_id) and insert it; a collision of either is retried with new
 * ones. On STORE_OK *out is the key. */
static store_result apikey_insert(store *s, char *merchant_id, const char *merchant_name, const char *name,
                                  apikey_created *out, char *err, size_t errlen)
{
    apikey_created k;
    unsigned char hash[32];
    char hash_hex[65];
    store_result rc = STORE_ERROR;
    pagoflex_arena *arena = arena_new();
    memset(&k, 0, sizeof k);
    if (!arena) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!apikey_name_ok(name)) {
        snprintf(err, errlen, "the key name must be 1 to %d printable characters", APIKEY_NAME_MAX);
        goto fail;
    }
    /* A prefix collision (62 bits) is all but impossible; retry anyway. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (apikey_make(&k) != 0 || apikey_hash(k.key, hash) != 0 ||
            (merchant_name && store_merchant_new_id(merchant_id) != 0)) {
            snprintf(err, errlen, "the OpenSSL random generator or SHA-256 failed");
            rc = STORE_ERROR;
            goto fail;
        }
        apikey_hex(hash, sizeof hash, hash_hex);
        const char *const params[] = {name, k.prefix, hash_hex, merchant_id, merchant_name};
        store_rows rows;
        rc = store_query(s, merchant_name ? "merchant create" : "apikey create",
                         merchant_name ? sql_merchant_insert : sql_key_insert, merchant_name ? 5 : 4, params,
                         arena, &rows);
        if (rc == STORE_DUPLICATE)
            continue;
        if (rc == STORE_OK && rows.rows == 0) {
            snprintf(err, errlen,
                     "no active merchant '%.44s' (unknown or disabled); see: pagoflex merchant list",
                     merchant_id);
            rc = STORE_NOT_FOUND;
            goto fail;
        }
        if (rc != STORE_OK || rows.rows != 1 || !rows.cells[0]) {
            snprintf(err, errlen, "the key could not be stored (%s)",
                     rc == STORE_UNAVAILABLE ? "database unreachable" : "database error");
            if (rc == STORE_OK)
                rc = STORE_ERROR;
            goto fail;
        }
        k.id = strtoll(rows.cells[0], NULL, 10);
        *out = k;
        goto fail; /* done: clean up */
    }
    snprintf(err, errlen, "could not draw an unused key prefix; retry");
    rc = STORE_ERROR;
fail:
    OPENSSL_cleanse(&k, sizeof k);
    OPENSSL_cleanse(hash_hex, sizeof hash_hex);
    arena_free(arena);
    return rc;
}

store_result apikey_create(store *s, const char *merchant_id, const char *name, apikey_created *out,
                           char *err, size_t errlen)
{
    char id[APIKEY_MERCHANT_MAX + 1];
    snprintf(id, sizeof id, "%s", merchant_id ? merchant_id : APIKEY_DEFAULT_MERCHANT);
    if (merchant_id && strlen(merchant_id) > APIKEY_MERCHANT_MAX) {
        snprintf(err, errlen, "no active merchant '%.44s...'; see: pagoflex merchant list", merchant_id);
        return STORE_NOT_FOUND;
    }
    return apikey_insert(s, id, NULL, name, out, err, errlen);
}

store_result apikey_create_merchant(store *s, const char *merchant_name, const char *key_name,
                                    char merchant_id_out[STORE_MERCHANT_ID_LEN + 1], apikey_created *out,
                                    char *err, size_t errlen)
{
    char id[STORE_MERCHANT_ID_LEN + 1] = "";
    if (!store_merchant_name_ok(merchant_name)) {
        snprintf(err, errlen, "the merchant name must be 1 to %d bytes without control characters",
                 STORE_MERCHANT_NAME_MAX);
        return STORE_ERROR;
    }
    store_result rc = apikey_insert(s, id, merchant_name, key_name, out, err, errlen);
    if (rc == STORE_OK)
        memcpy(merchant_id_out, id, sizeof id);
    return rc;
}

store_result apikey_verify(store *s, const char *key, bool *valid,
                           char merchant_out[APIKEY_MERCHANT_MAX + 1])
{
    char prefix[APIKEY_PREFIX_LEN + 1];
    unsigned char want[32], stored[32];
    store_rows rows;
    store_result rc = STORE_OK;
    pagoflex_arena *arena = NULL;
    *valid = false;
    merchant_out[0] = '\0';
    if (apikey_prefix_of(key, prefix) != 0 || apikey_hash(key, want) != 0)
        goto fail;
    arena = arena_new();
    if (!arena) {
        rc = STORE_ERROR;
        goto fail;
    }
    const char *const params[] = {prefix};
    rc = store_query(s, "apikey verify",
                     "SELECT encode(k.hash, 'hex'), k.merchant_id FROM api_keys k"
                     " JOIN merchants m ON m.id = k.merchant_id"
                     " WHERE k.prefix = $1::text AND k.revoked_at IS NULL AND m.disabled_at IS NULL",
                     1, params, arena, &rows);
    if (rc != STORE_OK || rows.rows != 1 || !rows.cells[0] ||
        strlen(rows.cells[0]) != 2 * sizeof stored || !rows.cells[1] ||
        strlen(rows.cells[1]) > APIKEY_MERCHANT_MAX)
        goto fail;
    for (size_t i = 0; i < sizeof stored; i++) {
        unsigned v = 0;
        if (sscanf(rows.cells[0] + 2 * i, "%2x", &v) != 1)
            goto fail;
        stored[i] = (unsigned char)v;
    }
    *valid = CRYPTO_memcmp(want, stored, sizeof want) == 0;
    if (*valid)
        snprintf(merchant_out, APIKEY_MERCHANT_MAX + 1, "%s", rows.cells[1]);
fail:
    OPENSSL_cleanse(want, sizeof want);
    arena_free(arena);
    return rc;
}

store_result apikey_list(store *s, pagoflex_arena *arena, apikey_info **out, size_t *count)
{
    store_rows rows;
    store_result rc = store_query(s, "apikey list",
                                  "SELECT id, name, prefix, " TS("created_at") ", " TS(
                                      "revoked_at") ", merchant_id FROM api_keys ORDER BY id",
                                  0, NULL, arena, &rows);
    if (rc != STORE_OK)
        return rc;
    apikey_info *list = rows.rows ? arena_alloc(arena, rows.rows * sizeof *list) : NULL;
    if (rows.rows && !list)
        return STORE_ERROR;
    for (size_t i = 0; i < rows.rows; i++) {
        const char **c = rows.cells + i * rows.cols;
        list[i] = (apikey_info){.id = strtoll(c[0], NULL, 10),
                                .name = c[1],
                                .prefix = c[2],
                                .created_at = c[3],
                                .revoked_at = c[4],
                                .merchant_id = c[5]};
    }
    *out = list;
    *count = rows.rows;
    return STORE_OK;
}

store_result apikey_revoke(store *s, const char *which, pagoflex_arena *arena,
                           const char **revoked_at)
{
    store_rows rows;
    const char *const params[] = {which};
    /* By id when `which` is all digits, else by prefix; both bound. */
    store_result rc = store_query(
        s, "apikey revoke",
        "WITH k AS (SELECT id FROM api_keys WHERE (CASE WHEN $1::text ~ '^[0-9]{1,18}$'"
        " THEN id = $1::text::bigint ELSE false END) OR prefix = $1::text),"
        " u AS (UPDATE api_keys SET revoked_at = now() WHERE id IN (SELECT id FROM k)"
        " AND revoked_at IS NULL RETURNING revoked_at)"
        " SELECT (SELECT count(*) FROM k), (SELECT " TS("revoked_at") " FROM u LIMIT 1)",
        1, params, arena, &rows);
    if (rc != STORE_OK)
        return rc;
    if (rows.rows != 1 || !rows.cells[0])
        return STORE_ERROR;
    if (strcmp(rows.cells[0], "0") == 0)
        return STORE_NOT_FOUND;
    if (!rows.cells[1])
        return STORE_CONFLICT;
    *revoked_at = rows.cells[1];
    return STORE_OK;
}
