/* store_merchant.c - merchant accounts in PostgreSQL; see store_merchant.h. */
#include "store_merchant.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "arena.h"
#include "log.h"
#include "store_internal.h"

int store_merchant_new_id(char out[STORE_MERCHANT_ID_LEN + 1])
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char raw[STORE_MERCHANT_ID_CHARS];
    out[0] = '\0';
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    memcpy(out, "mer_", 4);
    for (size_t i = 0; i < STORE_MERCHANT_ID_CHARS; i++)
        out[4 + i] = alphabet[raw[i] % 36]; /* bias of 256 % 36 is harmless for ids */
    out[STORE_MERCHANT_ID_LEN] = '\0';
    return 0;
}

bool store_merchant_name_ok(const char *name)
{
    size_t n = name ? strnlen(name, STORE_MERCHANT_NAME_MAX + 1) : 0;
    if (n == 0 || n > STORE_MERCHANT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

#define MERCHANT_COLS "id, name, " TS("created_at") ", " TS("disabled_at")

static store_result merchant_from_row(const PGresult *r, int row, pagoflex_arena *arena, void *item)
{
    bool oom = false;
    store_merchant m = {
        .id = store_row_text(r, row, 0, arena, &oom),
        .name = store_row_text(r, row, 1, arena, &oom),
        .created_at = store_row_text(r, row, 2, arena, &oom),
        .disabled_at = store_row_text(r, row, 3, arena, &oom),
    };
    if (oom || !m.id || !m.name) {
        log_error("store: cannot read a merchant row (out of memory)");
        return STORE_ERROR;
    }
    *(store_merchant *)item = m;
    return STORE_OK;
}

store_result store_merchant_list(store *s, pagoflex_arena *arena, store_merchant **out, size_t *count)
{
    void *items = NULL;
    size_t n = 0;
    store_result rc =
        store_run_rows(s, "merchant list", "SELECT " MERCHANT_COLS " FROM merchants ORDER BY created_at, id",
                       0, NULL, arena, sizeof(store_merchant), merchant_from_row, &items, &n);
    if (rc == STORE_OK) {
        *out = items;
        *count = n;
    }
    return rc;
}

store_result store_merchant_get(store *s, const char *id, pagoflex_arena *arena, store_merchant *out)
{
    const char *const params[] = {id};
    void *items = NULL;
    size_t n = 0;
    store_result rc =
        store_run_rows(s, "merchant get", "SELECT " MERCHANT_COLS " FROM merchants WHERE id = $1::text", 1,
                       params, arena, sizeof(store_merchant), merchant_from_row, &items, &n);
    if (rc != STORE_OK)
        return rc;
    if (n != 1)
        return STORE_NOT_FOUND;
    *out = *(store_merchant *)items;
    return STORE_OK;
}

/* $1 id. One row when the merchant exists: the time it is disabled at, and
 * whether this statement disabled it. */
static const char sql_disable[] =
    "WITH u AS (UPDATE merchants SET disabled_at = now() WHERE id = $1::text AND disabled_at IS NULL"
    " RETURNING disabled_at)"
    " SELECT " TS(
        "COALESCE((SELECT disabled_at FROM u), m.disabled_at)") ", EXISTS (SELECT 1 FROM u)"
                                                                " FROM merchants m WHERE m.id = $1::text";

store_result store_merchant_disable(store *s, const char *id, pagoflex_arena *arena, const char **disabled_at)
{
    PGresult *r = NULL;
    const char *const params[] = {id};
    if (!id || strcmp(id, STORE_MERCHANT_DEFAULT) == 0)
        return STORE_ERROR;
    store_result rc = store_run(s, "merchant disable", sql_disable, 1, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    bool oom = false;
    const char *at = store_row_text(r, 0, 0, arena, &oom);
    if (oom || !at) {
        rc = STORE_ERROR;
        goto fail;
    }
    *disabled_at = at;
    rc = PQgetvalue(r, 0, 1)[0] == 't' ? STORE_OK : STORE_CONFLICT;
fail:
    PQclear(r);
    return rc;
}
