/* store_notify.c - webhook endpoints, their deliveries and the notifier's
 * claims in PostgreSQL (migration 12). */
#include "store_notify.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "hex.h"
#include "log.h"
#include "store_internal.h"

/* clang-format off: SQL text reads better as written */
/* The columns read into a store_endpoint (secrets aside), from alias `t`. */
#define ENDPOINT_COLS(t)                                                                                     \
    t ".id, " t ".merchant_id, " t ".url, " t ".description, array_to_json(" t ".events)::text, " TS(        \
        t ".created_at") ", " TS(t ".updated_at") ", CASE WHEN " t ".previous_secret_enc IS NOT NULL"        \
                                                  " AND " t ".previous_secret_expires_at > now() THEN " TS(  \
                                                      t ".previous_secret_expires_at") " END"
#define ENDPOINT_NCOLS 8

/* The columns read into a store_delivery: d a delivery, ev its event. */
#define DELIVERY_COLS                                                                                                   \
    "d.id, d.event_id, ev.type, d.endpoint_id, d.status, d.attempts, COALESCE(d.last_http_status, 0), "                 \
    "d.last_error, CASE WHEN d.status = 'pending' THEN " TS("GREATEST(d.next_attempt_at, d.leased_until)") " END, " TS( \
        "d.created_at") ", " TS("d.updated_at") ", " TS("d.delivered_at")
/* clang-format on */

static store_result endpoint_from_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    store_endpoint e = {0};
    bool oom = false;
    e.id = store_row_text(r, row, 0, arena, &oom);
    e.merchant_id = store_row_text(r, row, 1, arena, &oom);
    e.url = store_row_text(r, row, 2, arena, &oom);
    e.description = store_row_text(r, row, 3, arena, &oom);
    e.events_json = store_row_text(r, row, 4, arena, &oom);
    e.created_at = store_row_text(r, row, 5, arena, &oom);
    e.updated_at = store_row_text(r, row, 6, arena, &oom);
    e.previous_secret_expires_at = store_row_text(r, row, 7, arena, &oom);
    if (oom) {
        log_error("store: cannot read a webhook endpoint row (out of memory)");
        return STORE_ERROR;
    }
    *(store_endpoint *)out = e;
    return STORE_OK;
}

/* Read the DELIVERY_COLS of row `row`, from column `col` on, into *out
 * (written on STORE_OK only). STORE_ERROR when out of memory. */
static store_result delivery_from_cols(const PGresult *r, int row, int col, pagoflex_arena *arena,
                                       store_delivery *out)
{
    store_delivery d = {0};
    bool oom = false;
    d.id = store_row_text(r, row, col + 0, arena, &oom);
    d.event_id = store_row_text(r, row, col + 1, arena, &oom);
    d.event_type = store_row_text(r, row, col + 2, arena, &oom);
    d.endpoint_id = store_row_text(r, row, col + 3, arena, &oom);
    d.status = store_row_text(r, row, col + 4, arena, &oom);
    d.attempts = atoi(PQgetvalue(r, row, col + 5));
    d.last_http_status = atoi(PQgetvalue(r, row, col + 6));
    d.last_error = store_row_text(r, row, col + 7, arena, &oom);
    d.next_attempt_at = store_row_text(r, row, col + 8, arena, &oom);
    d.created_at = store_row_text(r, row, col + 9, arena, &oom);
    d.updated_at = store_row_text(r, row, col + 10, arena, &oom);
    d.delivered_at = store_row_text(r, row, col + 11, arena, &oom);
    if (oom)
        return STORE_ERROR;
    *out = d;
    return STORE_OK;
}

static store_result delivery_from_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    store_result rc = delivery_from_cols(r, row, 0, arena, out);
    if (rc != STORE_OK)
        log_error("store: cannot read a delivery row (out of memory)");
    return rc;
}

/* Decode the hex of a bytea column into the arena; NULL for SQL NULL.
 * -1 on OOM or bad hex. */
static int bytes_from_hex(const PGresult *r, int row, int col, pagoflex_arena *arena,
                          const unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (PQgetisnull(r, row, col))
        return 0;
    const char *hex = PQgetvalue(r, row, col);
    size_t n = strlen(hex) / 2;
    unsigned char *buf = arena_alloc(arena, n + 1);
    if (!buf || hex_decode(hex, strlen(hex), buf, n + 1, len) != 0)
        return -1;
    *out = buf;
    return 0;
}

/* Decode an endpoint's two sealed secrets, columns `col` (secret_enc) and
 * col + 1 (previous_secret_enc), into *e. -1 on OOM or bad hex. */
static int secrets_from_row(const PGresult *r, int row, int col, pagoflex_arena *arena, store_endpoint *e)
{
    if (bytes_from_hex(r, row, col, arena, &e->secret_enc, &e->secret_enc_len) ||
        bytes_from_hex(r, row, col + 1, arena, &e->previous_secret_enc, &e->previous_secret_enc_len))
        return -1;
    return 0;
}

/* One row read with `read` into *out; STORE_NOT_FOUND for none. */
static store_result one_row(store *s, const char *what, const char *sql, int n, const char *const *params,
                            pagoflex_arena *arena, size_t size, store_row_fn read, void *out)
{
    void *items = NULL;
    size_t count = 0;
    store_result rc = store_run_rows(s, what, sql, n, params, arena, size, read, &items, &count);
    if (rc != STORE_OK)
        return rc;
    if (count == 0)
        return STORE_NOT_FOUND;
    memcpy(out, items, size);
    return STORE_OK;
}

static char *hex_of(pagoflex_arena *arena, const unsigned char *bytes, size_t len)
{
    char *hex = arena_alloc(arena, 2 * len + 1);
    if (hex)
        hex_encode(bytes, len, hex);
    return hex;
}

/* $7: the most endpoints a merchant may have. */
static const char sql_endpoint_insert[] =
    "INSERT INTO webhook_endpoints AS e (id, merchant_id, url, description, events, secret_enc)"
    " SELECT $1::text, $2::text, $3::text, $4::text,"
    " CASE WHEN $5::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($5::jsonb)) END,"
    " decode($6::text, 'hex')"
    " WHERE (SELECT count(*) FROM webhook_endpoints o WHERE o.merchant_id = $2::text) < $7::int"
    " RETURNING " ENDPOINT_COLS("e");

store_result store_endpoint_insert(store *s, const store_endpoint *e, pagoflex_arena *arena,
                                   store_endpoint *out)
{
    char *hex = hex_of(arena, e->secret_enc, e->secret_enc_len);
    if (!hex)
        return STORE_ERROR;
    char max[16];
    snprintf(max, sizeof max, "%d", STORE_NOTIFY_ENDPOINTS_MAX);
    const char *const params[] = {e->id, e->merchant_id, e->url, e->description, e->events_json, hex, max};
    store_result rc = one_row(s, "endpoint insert", sql_endpoint_insert, 7, params, arena, sizeof *out,
                              endpoint_from_row, out);
    return rc == STORE_NOT_FOUND ? STORE_CONFLICT : rc;
}

static const char sql_endpoint_list[] =
    "SELECT " ENDPOINT_COLS("e") " FROM webhook_endpoints e"
                                 " WHERE e.merchant_id = $1::text ORDER BY e.created_at, e.id"
                                 " LIMIT 100";

store_result store_endpoint_list(store *s, const char *merchant_id, pagoflex_arena *arena,
                                 store_endpoint **out, size_t *count)
{
    const char *const params[] = {merchant_id};
    return store_run_rows(s, "endpoint list", sql_endpoint_list, 1, params, arena, sizeof **out,
                          endpoint_from_row, (void **)out, count);
}

static const char sql_endpoint_get[] =
    "SELECT " ENDPOINT_COLS("e") " FROM webhook_endpoints e"
                                 " WHERE e.id = $1::text AND e.merchant_id = $2::text";

store_result store_endpoint_get(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                store_endpoint *out)
{
    const char *const params[] = {id, merchant_id};
    return one_row(s, "endpoint get", sql_endpoint_get, 2, params, arena, sizeof *out, endpoint_from_row,
                   out);
}

/* The endpoint and its deliveries, in one statement (no foreign key
 * cascades since migration 19). A delivery a concurrent state change
 * writes meanwhile is left behind, never claimed, and removed by the
 * janitor (store_janitor.c). */
static const char sql_endpoint_delete[] =
    "WITH e AS (DELETE FROM webhook_endpoints WHERE id = $1::text AND merchant_id = $2::text RETURNING id),"
    " d AS (DELETE FROM notify_deliveries d USING e WHERE d.endpoint_id = e.id)"
    " SELECT id FROM e";

store_result store_endpoint_delete(store *s, const char *merchant_id, const char *id)
{
    PGresult *r = NULL;
    const char *const params[] = {id, merchant_id};
    store_result rc = store_run(s, "endpoint delete", sql_endpoint_delete, 2, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char sql_endpoint_secrets[] =
    "SELECT encode(e.secret_enc, 'hex'), CASE WHEN e.previous_secret_expires_at > now()"
    " THEN encode(e.previous_secret_enc, 'hex') END"
    " FROM webhook_endpoints e WHERE e.id = $1::text AND e.merchant_id = $2::text";

store_result store_endpoint_secrets(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                    store_endpoint *out)
{
    PGresult *r = NULL;
    const char *const params[] = {id, merchant_id};
    store_result rc = store_run(s, "endpoint secrets", sql_endpoint_secrets, 2, params, false, &r);
    if (rc != STORE_OK)
        goto done;
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto done;
    }
    store_endpoint e = {0};
    if (secrets_from_row(r, 0, 0, arena, &e) != 0) {
        rc = STORE_ERROR;
        goto done;
    }
    *out = e;
done:
    PQclear(r);
    return rc;
}

static const char sql_endpoint_rotate[] =
    "UPDATE webhook_endpoints e SET previous_secret_enc = e.secret_enc,"
    " previous_secret_expires_at = now() + $4::bigint * interval '1 second',"
    " secret_enc = decode($3::text, 'hex'), updated_at = now()"
    " WHERE e.id = $1::text AND e.merchant_id = $2::text RETURNING " ENDPOINT_COLS("e");

store_result store_endpoint_rotate(store *s, const char *merchant_id, const char *id,
                                   const unsigned char *new_secret_enc, size_t new_secret_enc_len,
                                   long grace_s, pagoflex_arena *arena, store_endpoint *out)
{
    char grace[24];
    char *hex = hex_of(arena, new_secret_enc, new_secret_enc_len);
    if (!hex)
        return STORE_ERROR;
    snprintf(grace, sizeof grace, "%ld", grace_s);
    const char *const params[] = {id, merchant_id, hex, grace};
    return one_row(s, "endpoint rotate", sql_endpoint_rotate, 4, params, arena, sizeof *out,
                   endpoint_from_row, out);
}

/* $1 key id (hex), $2 limit, $3 the last id seen. The key id is at bytes
 * 10-17 of a sealed image (secrets.h). */
static const char sql_sealed_elsewhere[] =
    "SELECT e.id, e.merchant_id, encode(e.secret_enc, 'hex'), encode(e.previous_secret_enc, 'hex')"
    " FROM webhook_endpoints e WHERE e.id > $3::text"
    " AND (substring(e.secret_enc FROM 10 FOR 8) <> decode($1::text, 'hex')"
    " OR substring(e.previous_secret_enc FROM 10 FOR 8) <> decode($1::text, 'hex'))"
    " ORDER BY e.id LIMIT $2::int";

static store_result sealed_from_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    store_endpoint e = {0};
    bool oom = false;
    e.id = store_row_text(r, row, 0, arena, &oom);
    e.merchant_id = store_row_text(r, row, 1, arena, &oom);
    if (oom || secrets_from_row(r, row, 2, arena, &e) != 0)
        return STORE_ERROR;
    *(store_endpoint *)out = e;
    return STORE_OK;
}

store_result store_endpoint_sealed_elsewhere(store *s, const unsigned char key_id[8], const char *after,
                                             int limit, pagoflex_arena *arena, store_endpoint **out,
                                             size_t *count)
{
    char hex[17], lim[16];
    hex_encode(key_id, 8, hex);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *const params[] = {hex, lim, after};
    return store_run_rows(s, "endpoints sealed elsewhere", sql_sealed_elsewhere, 3, params, arena,
                          sizeof **out, sealed_from_row, (void **)out, count);
}

static const char sql_endpoint_reseal[] =
    "UPDATE webhook_endpoints SET secret_enc = decode($2::text, 'hex'),"
    " previous_secret_enc = decode($3::text, 'hex')"
    " WHERE id = $1::text AND secret_enc = decode($4::text, 'hex')"
    " AND previous_secret_enc IS NOT DISTINCT FROM decode($5::text, 'hex') RETURNING id";

store_result store_endpoint_reseal(store *s, const char *id, const store_endpoint *old,
                                   const unsigned char *new_secret, size_t new_secret_len,
                                   const unsigned char *new_prev, size_t new_prev_len)
{
    pagoflex_arena *a = arena_new();
    if (!a)
        return STORE_ERROR;
    const char *const params[] = {
        id,
        hex_of(a, new_secret, new_secret_len),
        new_prev ? hex_of(a, new_prev, new_prev_len) : NULL,
        hex_of(a, old->secret_enc, old->secret_enc_len),
        old->previous_secret_enc ? hex_of(a, old->previous_secret_enc, old->previous_secret_enc_len) : NULL,
    };
    store_result rc = STORE_ERROR;
    PGresult *r = NULL;
    if (params[1] && params[3] && (!new_prev || params[2]) && (!old->previous_secret_enc || params[4])) {
        rc = store_run(s, "endpoint reseal", sql_endpoint_reseal, 5, params, false, &r);
        if (rc == STORE_OK && PQntuples(r) == 0)
            rc = STORE_CONFLICT;
    }
    PQclear(r);
    arena_free(a);
    return rc;
}

static const char sql_delivery_list[] =
    "SELECT " DELIVERY_COLS " FROM webhook_endpoints e"
    " JOIN notify_deliveries d ON d.endpoint_id = e.id JOIN notify_events ev ON ev.id = d.event_id"
    " WHERE e.id = $1::text AND e.merchant_id = $2::text"
    " ORDER BY d.created_at DESC, d.id DESC LIMIT 100";

store_result store_delivery_list(store *s, const char *merchant_id, const char *endpoint_id,
                                 pagoflex_arena *arena, store_delivery **out, size_t *count)
{
    store_endpoint e;
    store_result rc = store_endpoint_get(s, merchant_id, endpoint_id, arena, &e);
    if (rc != STORE_OK)
        return rc;
    const char *const params[] = {endpoint_id, merchant_id};
    return store_run_rows(s, "delivery list", sql_delivery_list, 2, params, arena, sizeof **out,
                          delivery_from_row, (void **)out, count);
}

/* $1 endpoint, $2 merchant, $3 delivery, $4 new delivery id. First column
 * true for the new row, false for the pending one that refused it. The
 * event is locked FOR KEY SHARE (as a foreign key's check would), so the
 * janitor does not purge it under the new delivery: it skips a locked
 * event, and a resend waiting for the janitor finds none (404). */
static const char sql_delivery_resend[] =
    "WITH src AS (SELECT d.event_id, d.endpoint_id FROM notify_deliveries d"
    "   JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN notify_events ev ON ev.id = d.event_id"
    "   WHERE d.id = $3::text AND e.id = $1::text AND e.merchant_id = $2::text FOR KEY SHARE OF ev),"
    " busy AS (SELECT d.* FROM notify_deliveries d, src"
    "   WHERE d.event_id = src.event_id AND d.endpoint_id = src.endpoint_id AND d.status = 'pending'"
    "   LIMIT 1),"
    " ins AS (INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
    "   SELECT $4::text, src.event_id, src.endpoint_id, now() FROM src"
    "   WHERE NOT EXISTS (SELECT 1 FROM busy) RETURNING *)"
    " SELECT true, " DELIVERY_COLS " FROM ins d JOIN notify_events ev ON ev.id = d.event_id"
    " UNION ALL SELECT false, " DELIVERY_COLS " FROM busy d JOIN notify_events ev ON ev.id = d.event_id";

store_result store_delivery_resend(store *s, const char *merchant_id, const char *endpoint_id,
                                   const char *delivery_id, const char *new_id, pagoflex_arena *arena,
                                   store_delivery *out)
{
    PGresult *r = NULL;
    const char *const params[] = {endpoint_id, merchant_id, delivery_id, new_id};
    store_result rc = store_run(s, "delivery resend", sql_delivery_resend, 4, params, false, &r);
    if (rc != STORE_OK)
        goto done;
    if (PQntuples(r) != 1) {
        rc = STORE_NOT_FOUND;
        goto done;
    }
    /* The delivery's columns follow the flag. */
    bool made = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if ((rc = delivery_from_cols(r, 0, 1, arena, out)) != STORE_OK)
        goto done;
    rc = made ? STORE_OK : STORE_CONFLICT;
done:
    PQclear(r);
    return rc;
}

/* How the notifier's statements commit: asynchronously, for this
 * transaction only. Each statement runs alone in its own implicit
 * transaction on a pool connection (store_run), and set_config(..., true)
 * is SET LOCAL: it ends with that transaction, so no other user of the
 * connection commits asynchronously. Used in an UPDATE's WHERE as an
 * uncorrelated sub-select, it is a one-time filter run before any row is
 * written.
 *
 * Why a claim or an outcome may be lost in a crash of PostgreSQL (at most
 * the last ~3 x wal_writer_delay of them; a later synchronous commit of
 * anyone makes them durable too): delivery is at-least-once, and every
 * attempt of an event carries the event's webhook-id, so a receiver that
 * dedupes by id (Standard Webhooks) sees no difference.
 * - A lost outcome: the row is still claimed; its lease ends and it is
 *   sent again (or, for a failure, retried as planned).
 * - A lost claim: the row is due again with its old token; whoever claims
 *   it after the restart sends it again. The first claimer's outcome is
 *   fenced by its token as always; the token sequence may hand out a lost
 *   value again (its WAL went with the claim), in which case the first
 *   claimer's outcome may be recorded for the second claim: whichever of
 *   the two is recorded last stays, and each is the outcome of a real
 *   attempt of the same event with the same webhook-id ("failed" only
 *   when that attempt was the last the schedule allows), so nothing is
 *   marked delivered that was not.
 * - A lost give-back (store_notify_give_back): the lease ends instead. */
#define NOTIFY_ASYNC_COMMIT "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"

/* $1 endpoint ids, $2 how many more deliveries each may be given, $3 how
 * many an endpoint not in $1 may be given, $4 limit, $5 lease ms. Each
 * endpoint with room offers its earliest due deliveries up to its room,
 * looked up by notify_deliveries_endpoint_due (a few index entries per
 * endpoint, however long the backlog), so one endpoint's backlog does not
 * fill every claim; the earliest of all these are claimed. A claim leases
 * its rows through leased_until, a column in no index, and leaves their
 * due time alone (migration 24): the update changes no indexed column, so
 * on a page with room it is HOT and writes no index entry. The leased rows
 * stay first in the due index and are passed over by the lease test, a
 * few per endpoint (its cap, per host).
 * The arrays and the limit are read through sub-selects so that no
 * estimate depends on their values (a custom plan costs what the generic
 * one does), and the store runs it with its index plan held
 * (store_run_rows_indexed): generic, planned once, and made with
 * sequential scans off. Left to PostgreSQL, the claim had one of two bad
 * plans. With the generic plan made on the empty outbox of a new
 * database, every claim read the whole table until autovacuum next
 * analyzed it (25-58 ms a claim with 100,000 deliveries; the cost
 * measured last time for forcing the generic plan alone, which made it on
 * the empty table too). Or, on a growing table, each generic plan made
 * again after an ANALYZE cost more than the mean of the custom plans made
 * on the smaller table, so almost every claim was planned again
 * (0.3-0.7 ms a claim). */
const char store_sql_notify_claim[] =
    "WITH busy AS (SELECT b.endpoint_id, b.n"
    "   FROM unnest((SELECT $1::text[]), (SELECT $2::int[])) AS b(endpoint_id, n)),"
    " pick AS MATERIALIZED (SELECT d.id FROM webhook_endpoints e LEFT JOIN busy b ON b.endpoint_id = e.id"
    "   CROSS JOIN LATERAL (SELECT d.id, d.next_attempt_at FROM notify_deliveries d"
    "     WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()"
    "       AND (d.leased_until IS NULL OR d.leased_until <= now())"
    "     ORDER BY d.endpoint_id, d.next_attempt_at LIMIT GREATEST(COALESCE(b.n, $3::int), 0)"
    "     FOR UPDATE OF d SKIP LOCKED) d"
    "   WHERE COALESCE(b.n, $3::int) > 0"
    "   ORDER BY d.next_attempt_at, d.id LIMIT (SELECT $4::int)),"
    " upd AS (UPDATE notify_deliveries d SET attempts = d.attempts + 1,"
    "   leased_until = now() + $5::bigint * interval '1 millisecond',"
    "   claim_token = nextval('notify_claim_token_seq'), updated_at = now()"
    "   WHERE d.id = ANY (ARRAY(SELECT id FROM pick)) AND " NOTIFY_ASYNC_COMMIT " RETURNING d.*)"
    " SELECT upd.id, upd.claim_token, upd.attempts, upd.event_id, ev.type, ev.payload, e.id, e.url,"
    " encode(e.secret_enc, 'hex'),"
    " CASE WHEN e.previous_secret_expires_at > now() THEN encode(e.previous_secret_enc, 'hex') END"
    " FROM upd JOIN notify_events ev ON ev.id = upd.event_id JOIN webhook_endpoints e ON e.id = "
    "upd.endpoint_id";

static store_result job_from_row(const PGresult *r, int row, pagoflex_arena *arena, void *out)
{
    store_notify_job j = {0};
    bool oom = false;
    j.delivery_id = store_row_text(r, row, 0, arena, &oom);
    j.claim_token = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    j.attempts = atoi(PQgetvalue(r, row, 2));
    j.event_id = store_row_text(r, row, 3, arena, &oom);
    j.event_type = store_row_text(r, row, 4, arena, &oom);
    j.payload = store_row_text(r, row, 5, arena, &oom);
    j.endpoint_id = store_row_text(r, row, 6, arena, &oom);
    j.url = store_row_text(r, row, 7, arena, &oom);
    if (oom || secrets_from_row(r, row, 8, arena, &j.secrets) != 0) {
        log_error("store: cannot read a claimed delivery (out of memory)");
        return STORE_ERROR;
    }
    *(store_notify_job *)out = j;
    return STORE_OK;
}

/* A PostgreSQL array literal of ids ({"a","b"}); ids are ours (no quote or
 * backslash), so quoting each is enough. */
static char *array_literal(pagoflex_arena *arena, const char *const *items, size_t n, const int *ints)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += (items ? strlen(items[i]) + 3 : 12);
    char *buf = arena_alloc(arena, cap);
    if (!buf)
        return NULL;
    size_t len = 0;
    buf[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf[len++] = ',';
        if (items)
            len += (size_t)snprintf(buf + len, cap - len, "\"%s\"", items[i]);
        else
            len += (size_t)snprintf(buf + len, cap - len, "%d", ints[i]);
    }
    buf[len++] = '}';
    buf[len] = '\0';
    return buf;
}

store_result store_notify_claim(store *s, int limit, int room, const char *const *ids, const int *rooms,
                                size_t n, long lease_ms, pagoflex_arena *arena, store_notify_job **out,
                                size_t *count)
{
    char cap[16], lim[16], lease[24];
    for (size_t i = 0; i < n; i++)
        if (strpbrk(ids[i], "\"\\{},"))
            return STORE_ERROR;
    char *id_list = array_literal(arena, ids, n, NULL);
    char *room_list = array_literal(arena, NULL, n, rooms);
    if (!id_list || !room_list)
        return STORE_ERROR;
    snprintf(cap, sizeof cap, "%d", room);
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(lease, sizeof lease, "%ld", lease_ms);
    const char *const params[] = {id_list, room_list, cap, lim, lease};
    return store_run_rows_indexed(s, "notify claim", store_sql_notify_claim, 5, params, arena, sizeof **out,
                                  job_from_row, (void **)out, count);
}

static const char sql_notify_finish[] =
    "UPDATE notify_deliveries SET status = $3::text,"
    " last_http_status = NULLIF($4::int, 0), last_error = $5::text, updated_at = now(),"
    " delivered_at = CASE WHEN $3::text = 'succeeded' THEN now() END,"
    " next_attempt_at = CASE WHEN $3::text = 'pending'"
    " THEN now() + $6::bigint * interval '1 millisecond' END, leased_until = NULL"
    " WHERE id = $1::text AND claim_token = $2::bigint AND " NOTIFY_ASYNC_COMMIT " RETURNING id";

store_result store_notify_finish(store *s, const char *delivery_id, int64_t claim_token, const char *status,
                                 int http_status, const char *error, long retry_ms)
{
    char token[24], code[16], retry[24];
    snprintf(token, sizeof token, "%" PRId64, claim_token);
    snprintf(code, sizeof code, "%d", http_status);
    snprintf(retry, sizeof retry, "%ld", retry_ms);
    const char *const params[] = {delivery_id, token, status, code, error, retry};
    PGresult *r = NULL;
    store_result rc = store_run(s, "notify finish", sql_notify_finish, 6, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_CONFLICT;
    PQclear(r);
    return rc;
}

/* sql_notify_finish for many: $1 a JSON array of {id, token, status, code,
 * error, retry}. The deliveries are found by their ids (ANY of an array),
 * by the key's index whatever the size of the table when the statement
 * was planned (store_run_indexed; planned on the first outcomes of a new
 * database, it was a hash join over a sequential scan of every delivery,
 * kept as the table grew). */
static const char sql_notify_finish_many[] =
    "WITH o AS MATERIALIZED (SELECT * FROM json_to_recordset($1::json)"
    "   AS t(id text, token bigint, status text, code int, error text, retry bigint))"
    " UPDATE notify_deliveries d SET status = o.status,"
    " last_http_status = NULLIF(o.code, 0), last_error = o.error, updated_at = now(),"
    " delivered_at = CASE WHEN o.status = 'succeeded' THEN now() END,"
    " next_attempt_at = CASE WHEN o.status = 'pending' THEN now() + o.retry * interval '1 millisecond' END,"
    " leased_until = NULL"
    " FROM o WHERE d.id = ANY (ARRAY(SELECT id FROM o)) AND d.id = o.id AND d.claim_token = o.token"
    " AND " NOTIFY_ASYNC_COMMIT " RETURNING d.id";

store_result store_notify_finish_many(store *s, store_notify_outcome *o, size_t n)
{
    store_result rc = STORE_ERROR;
    PGresult *r = NULL;
    char *text = NULL;
    for (size_t i = 0; i < n; i++)
        o[i].recorded = false;
    if (n == 0)
        return STORE_OK;
    json_t *all = json_array();
    for (size_t i = 0; all && i < n; i++)
        store_json_push(&all,
                        json_pack("{s:s, s:I, s:s, s:i, s:s?, s:I}", "id", o[i].delivery_id, "token",
                                  (json_int_t)o[i].claim_token, "status", o[i].status, "code",
                                  o[i].http_status, "error", o[i].error, "retry", (json_int_t)o[i].retry_ms));
    text = store_json_text(all);
    if (!text)
        goto done; /* no memory, or text that is not UTF-8: the caller records them one by one */
    const char *const params[] = {text};
    rc = store_run_indexed(s, "notify finish", sql_notify_finish_many, 1, params, &r);
    if (rc != STORE_OK)
        goto done;
    for (int row = 0; row < PQntuples(r); row++)
        for (size_t i = 0; i < n; i++)
            if (!o[i].recorded && strcmp(PQgetvalue(r, row, 0), o[i].delivery_id) == 0)
                o[i].recorded = true;

done:
    PQclear(r);
    free(text);
    return rc;
}

/* $1 a JSON array of {id, token}: claimed deliveries never attempted, due
 * again at once with the attempt their claim counted taken back: the lease
 * is cleared and the due time, already past, kept, so each keeps its place
 * in the queue, and the update, of no indexed column, is HOT where the
 * page has room. Run as sql_notify_finish_many is. */
const char store_sql_notify_give_back[] =
    "WITH o AS MATERIALIZED (SELECT * FROM json_to_recordset($1::json) AS t(id text, token bigint))"
    " UPDATE notify_deliveries d SET attempts = d.attempts - 1, leased_until = NULL, updated_at = now()"
    " FROM o WHERE d.id = ANY (ARRAY(SELECT id FROM o)) AND d.id = o.id AND d.claim_token = o.token"
    " AND d.status = 'pending' AND " NOTIFY_ASYNC_COMMIT " RETURNING d.id";

store_result store_notify_give_back(store *s, const char *const *delivery_ids, const int64_t *claim_tokens,
                                    size_t n, size_t *given)
{
    store_result rc = STORE_ERROR;
    PGresult *r = NULL;
    char *text = NULL;
    if (n == 0) {
        *given = 0;
        return STORE_OK;
    }
    json_t *all = json_array();
    for (size_t i = 0; all && i < n; i++)
        store_json_push(&all,
                        json_pack("{s:s, s:I}", "id", delivery_ids[i], "token", (json_int_t)claim_tokens[i]));
    text = store_json_text(all);
    if (!text)
        goto done;
    const char *const params[] = {text};
    rc = store_run_indexed(s, "notify give back", store_sql_notify_give_back, 1, params, &r);
    if (rc == STORE_OK)
        *given = (size_t)PQntuples(r);
done:
    PQclear(r);
    free(text);
    return rc;
}
