/* store_idem.c - Idempotency-Key records of POST /v1/payments in PostgreSQL. */
#include "store_idem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"

/* $1 scope, $2 key, $3 hash, $4 ttl s, $5 id, $6 connector, $7 amount, $8
 * currency, $9 reference, $10 description, $11 capture method, $12 return
 * url, $13 payment method type, $14 its token, $15 merchant, $16 the connector
 * account the bank request was built with, $17 metadata. One row: whether $16 is still
 * the merchant's account for the connector (else nothing is written, the
 * key included), then the payment (NULLs: a live key exists). */
static const char sql_claim[] =
    "WITH a AS MATERIALIZED ("
    " SELECT " STORE_ACCOUNT_OF("$15::text", "$6::text") " AS account"
    "), k AS ("
    " INSERT INTO idempotency_keys AS k (scope, key, request_hash, payment_id, expires_at)"
    " SELECT $1::text, $2::text, $3::text, $5::text, now() + $4::bigint * interval '1 second'"
    " FROM a WHERE a.account = $16::text"
    " ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
    " payment_id = EXCLUDED.payment_id, status = NULL, response = NULL, created_at = now(),"
    " expires_at = EXCLUDED.expires_at"
    " WHERE k.expires_at <= now()"
    " RETURNING k.payment_id"
    "), p AS ("
    " INSERT INTO payments (id, connector, amount, currency, state, reference, description,"
    " capture_method, return_url, payment_method_type, payment_method_token, merchant_id,"
    " connector_account, metadata)"
    " SELECT k.payment_id, $6::text, $7::bigint, $8::text, 'created', $9::text, $10::text,"
    " $11::text, $12::text, $13::text, $14::text, $15::text, $16::text, $17::jsonb FROM k"
    " RETURNING *"
    "), h AS ("
    " INSERT INTO payment_history (payment_id, from_state, to_state, source)"
    " SELECT id, NULL, state, 'api' FROM p"
    ") SELECT COALESCE(a.account = $16::text, false), " PAYMENT_COLS("p") " FROM a LEFT JOIN p ON true";

/* $1 scope, $2 key, $3 stale ms. */
static const char sql_get[] =
    "SELECT request_hash, status, response, payment_id,"
    " status IS NULL AND created_at + $3::bigint * interval '1 millisecond' <= now()"
    " FROM idempotency_keys WHERE scope = $1::text AND key = $2::text AND expires_at > now()";

static const char sql_complete[] =
    "UPDATE idempotency_keys SET status = $3::int, response = $4::text"
    " WHERE scope = $1::text AND key = $2::text AND status IS NULL";

store_result store_idem_create_payment(store *s, const char *scope, const char *key,
                                       const char *request_hash, long ttl_s,
                                       const store_payment *p, pagoflex_arena *arena,
                                       store_payment *out)
{
    PGresult *r = NULL;
    char ttl[24], amount[24];
    store_result rc = STORE_ERROR;
    const char *params[17] = {scope, key, request_hash, ttl};
    if (!scope || !key || !request_hash) {
        log_error("store: idempotent payment insert without scope, key or hash");
        goto fail;
    }
    if (!store_payment_insert_params(p, amount, params + 4))
        goto fail;
    snprintf(ttl, sizeof ttl, "%ld", ttl_s);
    rc = store_run(s, "idempotent payment insert", sql_claim, 17, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    if (PQntuples(r) != 1 || PQgetvalue(r, 0, 0)[0] != 't')
        rc = STORE_CONFLICT;
    else if (PQgetisnull(r, 0, 1))
        rc = STORE_DUPLICATE;
    else
        rc = store_payment_from_row(r, 0, 1, arena, out);

fail:
    PQclear(r);
    return rc;
}

store_result store_idem_get(store *s, const char *scope, const char *key, long stale_ms,
                            pagoflex_arena *arena, store_idem_key *out)
{
    PGresult *r = NULL;
    char stale[24];
    bool oom = false;
    snprintf(stale, sizeof stale, "%ld", stale_ms);
    const char *const params[] = {scope, key, stale};
    store_result rc = store_run(s, "idempotency key get", sql_get, 3, params, false, &r);
    if (rc != STORE_OK)
        goto fail;
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto fail;
    }
    store_idem_key k = {0};
    k.request_hash = store_row_text(r, 0, 0, arena, &oom);
    k.status = PQgetisnull(r, 0, 1) ? 0 : atoi(PQgetvalue(r, 0, 1));
    k.response = store_row_text(r, 0, 2, arena, &oom);
    k.payment_id = store_row_text(r, 0, 3, arena, &oom);
    k.stale = PQgetvalue(r, 0, 4)[0] == 't';
    if (oom) {
        rc = STORE_ERROR;
        goto fail;
    }
    *out = k;

fail:
    PQclear(r);
    return rc;
}

store_result store_idem_complete(store *s, const char *scope, const char *key, int status,
                                 const char *response)
{
    PGresult *r = NULL;
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    const char *const params[] = {scope, key, st, response};
    store_result rc = store_run(s, "idempotency key complete", sql_complete, 4, params, false, &r);
    if (rc == STORE_OK && atoi(PQcmdTuples(r)) != 1)
        rc = STORE_CONFLICT;
    PQclear(r);
    return rc;
}

/* $1 scope, $2 key, $3 hash, $4 ttl s, $5 object id. */
static const char sql_claim_key[] =
    "INSERT INTO idempotency_keys AS k (scope, key, request_hash, payment_id, expires_at)"
    " VALUES ($1::text, $2::text, $3::text, $5::text, now() + $4::bigint * interval '1 second')"
    " ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
    " payment_id = EXCLUDED.payment_id, status = NULL, response = NULL, created_at = now(),"
    " expires_at = EXCLUDED.expires_at"
    " WHERE k.expires_at <= now()"
    " RETURNING k.payment_id";

store_result store_idem_claim(store *s, const char *scope, const char *key,
                              const char *request_hash, long ttl_s, const char *object_id)
{
    PGresult *r = NULL;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_s);
    const char *const params[] = {scope, key, request_hash, ttl, object_id};
    store_result rc = store_run(s, "idempotency key claim", sql_claim_key, 5, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) != 1)
        rc = STORE_DUPLICATE;
    PQclear(r);
    return rc;
}

/* $1 scope, $2 key, $3 hash, $4 stale ms. */
static const char sql_takeover[] =
    "UPDATE idempotency_keys SET created_at = now()"
    " WHERE scope = $1::text AND key = $2::text AND request_hash IN ($3::text, $5::text) AND status IS NULL"
    " AND expires_at > now() AND created_at + $4::bigint * interval '1 millisecond' <= now()"
    " RETURNING payment_id";

store_result store_idem_takeover(store *s, const char *scope, const char *key, const char *request_hash,
                                 const char *other_hash, long stale_ms)
{
    PGresult *r = NULL;
    char stale[24];
    snprintf(stale, sizeof stale, "%ld", stale_ms);
    const char *const params[] = {scope, key, request_hash, stale, other_hash ? other_hash : request_hash};
    store_result rc = store_run(s, "idempotency key takeover", sql_takeover, 5, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) != 1)
        rc = STORE_CONFLICT;
    PQclear(r);
    return rc;
}
