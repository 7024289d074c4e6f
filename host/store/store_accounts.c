/* store_accounts.c - which connector account each merchant uses (migration 11). */
#include "store_accounts.h"

#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store_internal.h"

#define STORE_ACCOUNT_MAX 32

/* $1 merchant, $2 connector. */
static const char sql_resolve[] = "SELECT " STORE_ACCOUNT_OF("$1::text", "$2::text");

/* $1 merchant, $2 connector, $3 account. No row: no such merchant. */
static const char sql_bind[] =
    "INSERT INTO connector_accounts (merchant_id, connector, account)"
    " SELECT m.id, $2::text, $3::text FROM merchants m WHERE m.id = $1::text"
    " ON CONFLICT (merchant_id, connector) DO UPDATE SET account = EXCLUDED.account, created_at = now()"
    " RETURNING account";

static const char sql_unbind[] =
    "DELETE FROM connector_accounts WHERE merchant_id = $1::text AND connector = $2::text RETURNING account";

/* $1 merchant or NULL for all. */
static const char sql_list[] = "SELECT merchant_id, connector, account, " TS(
    "created_at") " FROM connector_accounts WHERE $1::text IS NULL OR merchant_id = $1::text"
                  " ORDER BY merchant_id, connector";

static bool account_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool connector_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool name_ok(const char *s, bool (*ok)(int))
{
    size_t n = s ? strnlen(s, STORE_ACCOUNT_MAX + 1) : 0;
    if (n == 0 || n > STORE_ACCOUNT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)s[i]))
            return false;
    return true;
}

bool store_account_name_valid(const char *account)
{
    return name_ok(account, account_char);
}

store_result store_account_resolve(store *s, const char *merchant_id, const char *connector,
                                   pagoflex_arena *arena, const char **account)
{
    PGresult *r = NULL;
    bool oom = false;
    const char *const params[] = {merchant_id, connector};
    store_result rc = store_run(s, "connector account resolve", sql_resolve, 2, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    const char *a = store_row_text(r, 0, 0, arena, &oom);
    if (oom) {
        rc = STORE_ERROR;
        goto fail;
    }
    *account = a;
fail:
    PQclear(r);
    return rc;
}

/* Run a statement that writes one binding; STORE_NOT_FOUND when it returns no row. */
static store_result account_write(store *s, const char *what, const char *sql, int n,
                                  const char *const *params)
{
    PGresult *r = NULL;
    store_result rc = store_run(s, what, sql, n, params, false, &r);
    if (rc == STORE_OK) {
        metrics_db_commit();
        if (PQntuples(r) != 1)
            rc = STORE_NOT_FOUND;
    }
    PQclear(r);
    return rc;
}

store_result store_account_bind(store *s, const char *merchant_id, const char *connector, const char *account)
{
    if (!merchant_id || !name_ok(connector, connector_char) || !store_account_name_valid(account)) {
        log_error("store: connector account binding with an invalid connector key or account name");
        return STORE_ERROR;
    }
    const char *const params[] = {merchant_id, connector, account};
    return account_write(s, "connector account bind", sql_bind, 3, params);
}

store_result store_account_unbind(store *s, const char *merchant_id, const char *connector)
{
    const char *const params[] = {merchant_id, connector};
    return account_write(s, "connector account unbind", sql_unbind, 2, params);
}

static store_result binding_from_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    store_account_binding b = {0};
    bool oom = false;
    b.merchant_id = store_row_text(r, row, 0, arena, &oom);
    b.connector = store_row_text(r, row, 1, arena, &oom);
    b.account = store_row_text(r, row, 2, arena, &oom);
    b.created_at = store_row_text(r, row, 3, arena, &oom);
    if (oom)
        return STORE_ERROR;
    *(store_account_binding *)out = b;
    return STORE_OK;
}

store_result store_account_list(store *s, const char *merchant_id, pagoflex_arena *arena,
                                store_account_binding **items, size_t *count)
{
    const char *const params[] = {merchant_id};
    return store_run_rows(s, "connector account list", sql_list, 1, params, arena, sizeof **items,
                          binding_from_row, (void **)items, count);
}
