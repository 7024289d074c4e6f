/* store_orphan.c - webhook events that arrived before their payment's bank id. */
#include "store_orphan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "payment.h"
#include "store_internal.h"

static const char sql_keep[] =
    "INSERT INTO webhook_events (connector, event_id, payment_id, state, tx_id, body, applied,"
    " error_code, error_message, connector_account)"
    " VALUES ($1::text, $2::text, NULL, $3::text, $4::text, $5::text, false, $6::text, $7::text,"
    " $8::text)"
    " ON CONFLICT (connector, connector_account, event_id) DO NOTHING RETURNING id";

/* Every statement below: $1 connector, $2 tx id, $3 connector account. */
const char store_sql_orphan_waiting[] =
    "SELECT 1 FROM webhook_events WHERE connector = $1::text AND tx_id = $2::text"
    " AND connector_account = $3::text AND payment_id IS NULL LIMIT 1";

static const char sql_lock_payment[] =
    "SELECT id FROM payments WHERE connector = $1::text AND provider_reference_id = $2::text"
    " AND connector_account = $3::text FOR UPDATE";

/* Attach the orphans to payment $4; oldest first. */
static const char sql_attach[] =
    "WITH u AS (UPDATE webhook_events SET payment_id = $4::text"
    " WHERE connector = $1::text AND tx_id = $2::text AND connector_account = $3::text"
    " AND payment_id IS NULL"
    " RETURNING id, event_id, state, error_code, error_message)"
    " SELECT id, event_id, state, error_code, error_message FROM u ORDER BY id";

static const char sql_mark_applied[] = "UPDATE webhook_events SET applied = true WHERE id = $1::bigint";

store_result store_orphan_keep(store *s, const char *connector, const char *account,
                               const pagoflex_webhook_event *ev,
                               const unsigned char *body, size_t body_len,
                               pagoflex_arena *arena)
{
    PGresult *r = NULL;
    char *text = NULL;
    store_result rc = STORE_ERROR;
    const char *to_name = ev ? payment_state_name(ev->state) : NULL;
    if (!connector || !account || !ev || !ev->event_id || !ev->tx_id || payment_state_parse(to_name) < 0) {
        log_error("store: orphan event without connector, event id, tx id or valid state");
        goto fail;
    }
    if (body && (memchr(body, '\0', body_len) ||
                 !(text = arena_strndup(arena, (const char *)body, body_len)))) {
        log_error("store: orphan event %s: body has a NUL byte or no memory", ev->event_id);
        goto fail;
    }
    const char *const params[] = {connector, ev->event_id,   to_name,          ev->tx_id,
                                  text,      ev->error_code, ev->error_message, account};
    rc = store_run(s, "orphan event keep", sql_keep, 8, params, false, &r);
    if (rc == STORE_OK && PQntuples(r) != 1)
        rc = STORE_DUPLICATE;

fail:
    PQclear(r);
    return rc;
}

/* Apply the attached events of `res` to payment `pid`; counts moves. */
static store_result orphan_apply_rows(store_call *c, const char *pid, const char *tx_id,
                                      const PGresult *events, int *applied)
{
    store_result rc = STORE_OK;
    for (int i = 0; i < PQntuples(events) && rc == STORE_OK; i++) {
        PGresult *r = NULL;
        int to = payment_state_parse(PQgetvalue(events, i, 2));
        if (to < 0)
            continue;
        char allowed[160];
        store_allowed_from((pagoflex_state)to, allowed, sizeof allowed);
        const char *ec = PQgetisnull(events, i, 3) ? NULL : PQgetvalue(events, i, 3);
        const char *em = PQgetisnull(events, i, 4) ? NULL : PQgetvalue(events, i, 4);
        const char *const tp[] = {pid, PQgetvalue(events, i, 2), allowed, tx_id, ec, em,
                                  STORE_SOURCE_WEBHOOK, PQgetvalue(events, i, 1)};
        rc = store_call_exec(c, "orphan event apply", store_sql_transition, 8, tp, false, &r);
        bool moved = rc == STORE_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        r = NULL;
        if (rc == STORE_OK && moved) {
            const char *const mp[] = {PQgetvalue(events, i, 0)};
            rc = store_call_exec(c, "orphan event mark", sql_mark_applied, 1, mp, false, &r);
            PQclear(r);
            (*applied)++;
        }
        log_info("webhook %s (kept as orphan): payment=%s tx=%s", moved ? "applied" : "ignored",
                 pid, tx_id);
    }
    return rc;
}

store_result store_orphan_apply(store *s, const char *connector, const char *account,
                                const char *tx_id, int *applied)
{
    PGresult *r = NULL, *events = NULL;
    store_call c;
    bool in_tx = false;
    int moved = 0;
    const char *const key[] = {connector, tx_id, account};
    store_result rc = store_run(s, "orphan events waiting", store_sql_orphan_waiting, 3, key, false, &r);
    if (rc != STORE_OK || PQntuples(r) == 0) {
        PQclear(r);
        if (rc == STORE_OK)
            *applied = 0;
        return rc;
    }
    PQclear(r);
    r = NULL;
    rc = store_call_begin(s, &c);
    if (rc != STORE_OK)
        return rc;
    rc = store_call_exec(&c, "orphan BEGIN", "BEGIN", 0, NULL, false, &r);
    PQclear(r);
    r = NULL;
    if (rc != STORE_OK)
        goto fail;
    in_tx = true;
    rc = store_call_exec(&c, "orphan lock payment", sql_lock_payment, 3, key, false, &r);
    if (rc != STORE_OK)
        goto fail;
    if (PQntuples(r) == 1) {
        const char *const ap[] = {connector, tx_id, account, PQgetvalue(r, 0, 0)};
        rc = store_call_exec(&c, "orphan attach", sql_attach, 4, ap, false, &events);
        if (rc == STORE_OK)
            rc = orphan_apply_rows(&c, PQgetvalue(r, 0, 0), tx_id, events, &moved);
        if (rc != STORE_OK)
            goto fail;
    }
    PQclear(r);
    r = NULL;
    rc = store_call_exec(&c, "orphan COMMIT", "COMMIT", 0, NULL, false, &r);
    if (rc != STORE_OK)
        goto fail;
    in_tx = false;
    *applied = moved;

fail:
    PQclear(r);
    PQclear(events);
    if (in_tx && !c.broken)
        PQclear(PQexec(c.conn, "ROLLBACK"));
    store_call_end(&c);
    return rc;
}
