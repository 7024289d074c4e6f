/* store_recon.c - the reconciler's claims on payments in PostgreSQL. */
#include "store_recon.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "payment.h"
#include "store_internal.h"

#define MS(p) "(" p "::bigint * interval '1 millisecond')"
#define OPEN_STATES "('created', 'processing', 'pending')"

/* When an open row is due: next_attempt_at, or its state's grace after
 * updated_at while the reconciler never scheduled it. */
#define DUE_AT(t)                                                                     \
    "COALESCE(" t ".next_attempt_at, " t ".updated_at + CASE " t ".state"             \
    " WHEN 'created' THEN " MS("$1") " WHEN 'processing' THEN " MS("$2") " ELSE " MS("$3") " END)"

/* The unscheduled rows of one state that are due (payments_unscheduled). */
#define UNSCHEDULED(state, grace)                                                     \
    " UNION ALL (SELECT id FROM payments WHERE state = '" state "'"                   \
    " AND next_attempt_at IS NULL AND updated_at <= now() - " MS(grace)                \
    " ORDER BY updated_at LIMIT $4::int)"

/* Candidates come from index range scans that stop at "now"
 * (payments_scheduled_due, which holds only the scheduled rows, and
 * payments_unscheduled), so a claim reads the due rows only, however many
 * open payments are not due yet; the candidates are then locked and checked
 * again (a row changed since is re-read by FOR UPDATE). */
const char store_recon_sql_claim[] =
    "WITH cand AS ("
    " (SELECT id FROM payments WHERE state IN " OPEN_STATES " AND next_attempt_at <= now()"
    " ORDER BY next_attempt_at LIMIT $4::int)"
    UNSCHEDULED("created", "$1") UNSCHEDULED("processing", "$2") UNSCHEDULED("pending", "$3")
    "), due AS ("
    " SELECT p.id FROM payments p WHERE p.id IN (SELECT id FROM cand)"
    " AND p.state IN " OPEN_STATES " AND " DUE_AT("p") " <= now()"
    " ORDER BY " DUE_AT("p") " LIMIT $4::int FOR UPDATE OF p SKIP LOCKED"
    ") UPDATE payments p SET next_attempt_at = now() + " MS("$5") ", attempts = p.attempts + 1,"
    " claim_token = nextval('payments_claim_token_seq')"
    " FROM due WHERE p.id = due.id"
    " RETURNING " PAYMENT_COLS("p") ", p.attempts, p.maybe_at_bank,"
    " p.created_at + $6::bigint * interval '1 second' <= now(), p.claim_token";

const char store_recon_sql_renew[] =
    "UPDATE payments p SET next_attempt_at = now() + " MS("$3")
    " WHERE p.id = $1::text AND p.claim_token = $2::bigint AND p.state IN " OPEN_STATES
    " RETURNING " PAYMENT_COLS("p") ", p.attempts, p.maybe_at_bank,"
    " p.created_at + $4::bigint * interval '1 second' <= now(), p.claim_token";

/* $1 id, $2 delay ms, $3 error, $4 reached, $5 claim. */
static const char sql_reschedule[] =
    "UPDATE payments SET next_attempt_at = now() + " MS("$2") ","
    " last_attempt_error = $3::text, maybe_at_bank = maybe_at_bank OR $4::boolean"
    " WHERE id = $1::text AND claim_token = $5::bigint AND state IN " OPEN_STATES;

/* $1 id, $2 delay ms, $3 error, $4 reached, $5 first. */
static const char sql_schedule[] =
    "UPDATE payments SET next_attempt_at = now() + " MS("$2") ","
    " last_attempt_error = $3::text,"
    " maybe_at_bank = CASE WHEN $5::boolean THEN $4::boolean ELSE maybe_at_bank OR $4::boolean END"
    " WHERE id = $1::text AND claim_token IS NULL AND state IN " OPEN_STATES;

/* Read row `i` of a claim or renewal into *out (written on STORE_OK only). */
static store_result recon_item_from_row(const PGresult *r, int i, pagoflex_arena *arena, void *out)
{
    store_recon_item it;
    store_result rc = store_payment_from_row(r, i, 0, arena, &it.payment);
    if (rc != STORE_OK)
        return rc;
    it.attempts = atoi(PQgetvalue(r, i, PAYMENT_NCOLS));
    it.maybe_at_bank = PQgetvalue(r, i, PAYMENT_NCOLS + 1)[0] == 't';
    it.past_deadline = PQgetvalue(r, i, PAYMENT_NCOLS + 2)[0] == 't';
    it.claim = strtoll(PQgetvalue(r, i, PAYMENT_NCOLS + 3), NULL, 10);
    *(store_recon_item *)out = it;
    return STORE_OK;
}

store_result store_recon_claim_rows(store *s, const char *what, const char *sql,
                                    const store_recon_timing *t, int limit, pagoflex_arena *arena,
                                    size_t item_size, store_row_fn read, void **items,
                                    size_t *count)
{
    char a[24], b[24], c[24], d[16], e[24], f[24];
    snprintf(a, sizeof a, "%ld", t->recover_created_ms);
    snprintf(b, sizeof b, "%ld", t->first_retry_ms);
    snprintf(c, sizeof c, "%ld", t->webhook_grace_ms);
    snprintf(d, sizeof d, "%d", limit);
    snprintf(e, sizeof e, "%ld", t->lease_ms);
    snprintf(f, sizeof f, "%ld", t->deadline_s);
    const char *const params[] = {a, b, c, d, e, f};
    return store_run_rows_indexed(s, what, sql, 6, params, arena, item_size, read, items, count);
}

store_result store_recon_renew_row(store *s, const char *what, const char *sql, const char *id,
                                   int64_t claim, const store_recon_timing *t,
                                   pagoflex_arena *arena, store_row_fn read, void *out)
{
    PGresult *r = NULL;
    char token[24], lease[24], deadline[24];
    snprintf(token, sizeof token, "%" PRId64, claim);
    snprintf(lease, sizeof lease, "%ld", t->lease_ms);
    snprintf(deadline, sizeof deadline, "%ld", t->deadline_s);
    const char *const params[] = {id, token, lease, deadline};
    store_result rc = store_run(s, what, sql, 4, params, false, &r);
    if (rc == STORE_OK)
        rc = PQntuples(r) == 1 ? read(r, 0, arena, out) : STORE_CONFLICT;
    PQclear(r);
    return rc;
}

store_result store_recon_claim(store *s, const store_recon_timing *t, int limit,
                               pagoflex_arena *arena, store_recon_item **items, size_t *count)
{
    void *list = NULL;
    store_result rc = store_recon_claim_rows(s, "reconciler claim", store_recon_sql_claim, t, limit, arena,
                                             sizeof **items, recon_item_from_row, &list, count);
    if (rc == STORE_OK)
        *items = list;
    return rc;
}

store_result store_recon_renew(store *s, const store_recon_timing *t, pagoflex_arena *arena,
                               store_recon_item *it)
{
    return store_recon_renew_row(s, "reconciler renew", store_recon_sql_renew, it->payment.id, it->claim,
                                 t, arena, recon_item_from_row, it);
}

store_result store_recon_transition(store *s, const store_recon_item *it, pagoflex_state to,
                                    const char *source, const char *detail,
                                    const char *provider_ref, const char *error_code,
                                    const char *error_message, pagoflex_arena *arena,
                                    store_payment *out, bool *lost_claim)
{
    store_payment row;
    pagoflex_state from = it->payment.state;
    const char *to_name = payment_state_name(to);
    char allowed[48], claim[24];
    if (!it->payment.id || payment_state_parse(to_name) < 0) {
        log_error("store: reconciler transition of payment %s to invalid state %d",
                  it->payment.id ? it->payment.id : "(null)", (int)to);
        return STORE_ERROR;
    }
    /* The general rule still holds: from a state that may not be left for
     * `to`, nothing is allowed ('{}'), and the row is only read back. */
    if (payment_transition_allowed(from, to))
        snprintf(allowed, sizeof allowed, "{%s}", payment_state_name(from));
    else
        snprintf(allowed, sizeof allowed, "{}");
    snprintf(claim, sizeof claim, "%" PRId64, it->claim);
    const char *const params[] = {it->payment.id, to_name,       allowed, provider_ref, error_code,
                                  error_message,  source,        detail,  claim};
    store_result rc =
        store_transition_run(s, "reconciler transition", store_sql_transition_fenced, 9, params, arena, &row);
    if (rc != STORE_OK && rc != STORE_CONFLICT)
        return rc;
    bool moved = rc == STORE_OK;
    /* States only move forward: refused in the state it was decided from
     * (and allowed from it) means the claim is no longer ours. */
    *lost_claim = !moved && row.state == from && payment_transition_allowed(from, to);
    if (moved)
        metrics_payment_outcome(metrics_connector(row.connector), (int)to);
    *out = row;
    return rc;
}

store_result store_recon_reschedule(store *s, const store_recon_item *it, long delay_ms,
                                    const char *error, bool reached, bool *applied)
{
    PGresult *r = NULL;
    char delay[24], claim[24];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    snprintf(claim, sizeof claim, "%" PRId64, it->claim);
    const char *const params[] = {it->payment.id, delay, error, reached ? "true" : "false", claim};
    store_result rc = store_run(s, "reconciler reschedule", sql_reschedule, 5, params, false, &r);
    if (rc == STORE_OK && applied)
        *applied = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return rc;
}

store_result store_recon_schedule(store *s, const char *id, long delay_ms, const char *error,
                                  bool reached, bool first)
{
    PGresult *r = NULL;
    char delay[24];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    const char *const params[] = {id, delay, error, reached ? "true" : "false",
                                  first ? "true" : "false"};
    store_result rc = store_run(s, "reconciler schedule", sql_schedule, 5, params, false, &r);
    PQclear(r);
    return rc;
}

/* ---- held payments: a capture or void in flight, or a look-up ------------- */

#define HELD_STATES "('requires_capture', 'requires_action')"

#define HELD_COLS(t, deadline)                                                        \
    PAYMENT_COLS(t) ", " t ".attempts, " t ".operation_accepted, " t ".created_at + " deadline \
    "::bigint * interval '1 second' <= now(), " t ".claim_token"

/* Candidates: scheduled ones from payments_hold_due, and an operation whose
 * host died before scheduling it (payments_operation_unscheduled: due
 * recover created ms after its claim). */
const char store_recon_sql_claim_held[] =
    "WITH cand AS ("
    " (SELECT id FROM payments WHERE hold_due_at <= now() AND hold_due_at IS NOT NULL"
    " AND state IN " HELD_STATES " ORDER BY hold_due_at LIMIT $3::int)"
    " UNION ALL (SELECT id FROM payments WHERE hold_due_at IS NULL AND pending_operation IS NOT NULL"
    " AND updated_at <= now() - " MS("$1") " ORDER BY updated_at LIMIT $3::int)"
    "), due AS ("
    " SELECT p.id FROM payments p WHERE p.id IN (SELECT id FROM cand) AND p.state IN " HELD_STATES
    " AND COALESCE(p.hold_due_at, p.updated_at + " MS("$1") ") <= now()"
    " AND (p.hold_due_at IS NOT NULL OR p.pending_operation IS NOT NULL)"
    " ORDER BY COALESCE(p.hold_due_at, p.updated_at) LIMIT $3::int FOR UPDATE OF p SKIP LOCKED"
    ") UPDATE payments p SET hold_due_at = now() + " MS("$2") ", attempts = p.attempts + 1,"
    " claim_token = nextval('payments_claim_token_seq')"
    " FROM due WHERE p.id = due.id RETURNING " HELD_COLS("p", "$4");

/* $1 id, $2 claim, $3 lease ms, $4 deadline s. */
static const char sql_renew_held[] =
    "UPDATE payments p SET hold_due_at = now() + " MS("$3")
    " WHERE p.id = $1::text AND p.claim_token = $2::bigint AND p.state IN " HELD_STATES
    " RETURNING " HELD_COLS("p", "$4");

/* $1 id, $2 delay ms (negative: no longer due), $3 error, $4 accepted, $5
 * claim, $6 the state decided from. */
static const char sql_reschedule_held[] =
    "UPDATE payments SET hold_due_at = CASE WHEN $2::bigint < 0 THEN NULL ELSE now() + " MS("$2") " END,"
    " last_attempt_error = $3::text, operation_accepted = operation_accepted OR $4::boolean"
    " WHERE id = $1::text AND claim_token = $5::bigint AND state = $6::text";

/* $1 id, $2 op, $3 claim, $4 the state decided from. */
static const char sql_release_held[] =
    "UPDATE payments SET pending_operation = NULL,"
    " capture_amount = CASE WHEN $2::text = 'capture' THEN NULL ELSE capture_amount END,"
    " hold_due_at = NULL, operation_accepted = false, updated_at = now()"
    " WHERE id = $1::text AND pending_operation = $2::text AND claim_token = $3::bigint"
    " AND state = $4::text";

/* $1 connector, $2 payment id, $3 the bank's id, $4 connector account. */
static const char sql_look_up[] =
    "UPDATE payments SET"
    " next_attempt_at = CASE WHEN state IN " OPEN_STATES " THEN now() ELSE next_attempt_at END,"
    " hold_due_at = CASE WHEN state IN " HELD_STATES " THEN now() ELSE hold_due_at END"
    " WHERE connector = $1::text AND connector_account = $4::text AND (id = $2::text OR"
    " ($2::text IS NULL AND provider_reference_id = $3::text)) AND state IN ('created', 'processing',"
    " 'pending',"
    " 'requires_capture', 'requires_action') RETURNING id";

static store_result held_item_from_row(const PGresult *r, int i, pagoflex_arena *arena, void *out)
{
    store_recon_item it = {0};
    store_result rc = store_payment_from_row(r, i, 0, arena, &it.payment);
    if (rc != STORE_OK)
        return rc;
    it.attempts = atoi(PQgetvalue(r, i, PAYMENT_NCOLS));
    it.operation_accepted = PQgetvalue(r, i, PAYMENT_NCOLS + 1)[0] == 't';
    it.past_deadline = PQgetvalue(r, i, PAYMENT_NCOLS + 2)[0] == 't';
    it.claim = strtoll(PQgetvalue(r, i, PAYMENT_NCOLS + 3), NULL, 10);
    it.maybe_at_bank = true;
    *(store_recon_item *)out = it;
    return STORE_OK;
}

store_result store_recon_claim_held(store *s, const store_recon_timing *t, int limit,
                                    pagoflex_arena *arena, store_recon_item **items, size_t *count)
{
    char a[24], b[24], c[16], d[24];
    snprintf(a, sizeof a, "%ld", t->recover_created_ms);
    snprintf(b, sizeof b, "%ld", t->lease_ms);
    snprintf(c, sizeof c, "%d", limit);
    snprintf(d, sizeof d, "%ld", t->deadline_s);
    const char *const params[] = {a, b, c, d};
    void *list = NULL;
    store_result rc = store_run_rows(s, "reconciler claim held", store_recon_sql_claim_held, 4, params, arena, sizeof **items,
                                     held_item_from_row, &list, count);
    if (rc == STORE_OK)
        *items = list;
    return rc;
}

store_result store_recon_renew_held(store *s, const store_recon_timing *t, pagoflex_arena *arena,
                                    store_recon_item *it)
{
    return store_recon_renew_row(s, "reconciler renew held", sql_renew_held, it->payment.id, it->claim, t, arena,
                                 held_item_from_row, it);
}

store_result store_recon_reschedule_held(store *s, const store_recon_item *it, long delay_ms,
                                         const char *error, bool accepted, bool *applied)
{
    PGresult *r = NULL;
    char delay[24], claim[24];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    snprintf(claim, sizeof claim, "%" PRId64, it->claim);
    const char *const params[] = {it->payment.id, delay, error, accepted ? "true" : "false", claim,
                                  payment_state_name(it->payment.state)};
    store_result rc = store_run(s, "reconciler reschedule held", sql_reschedule_held, 6, params, false, &r);
    if (rc == STORE_OK && applied)
        *applied = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return rc;
}

store_result store_recon_release_held(store *s, const store_recon_item *it, bool *applied)
{
    PGresult *r = NULL;
    char claim[24];
    snprintf(claim, sizeof claim, "%" PRId64, it->claim);
    const char *const params[] = {it->payment.id, it->payment.pending_operation, claim,
                                  payment_state_name(it->payment.state)};
    if (!it->payment.pending_operation)
        return STORE_ERROR;
    store_result rc = store_run(s, "reconciler release operation", sql_release_held, 4, params, false, &r);
    if (rc == STORE_OK) {
        metrics_db_commit();
        *applied = strcmp(PQcmdTuples(r), "1") == 0;
    }
    PQclear(r);
    return rc;
}

store_result store_recon_look_up(store *s, const char *connector, const char *account,
                                 const char *payment_id,
                                 const char *bank_id, pagoflex_arena *arena, const char **found)
{
    PGresult *r = NULL;
    const char *const params[] = {connector, payment_id, bank_id, account};
    store_result rc = store_run(s, "reconciler look-up", sql_look_up, 4, params, false, &r);
    if (rc == STORE_OK) {
        const char *id = PQntuples(r) == 1 ? arena_strdup(arena, PQgetvalue(r, 0, 0)) : NULL;
        if (PQntuples(r) != 1)
            rc = STORE_NOT_FOUND;
        else if (!id)
            rc = STORE_ERROR;
        else
            *found = id;
    }
    PQclear(r);
    return rc;
}
