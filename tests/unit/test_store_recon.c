/* Unit tests for the reconciler's claims (host/store_recon.c) and the plans
 * of the hot statements, against a real PostgreSQL.
 *
 * PAGOFLEX_PG holds a conninfo to a server where we may create databases.
 * Each run creates pf_recon_<pid> and drops it at the end. Without
 * PAGOFLEX_PG the program exits 77 (skipped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "arena.h"
#include "payment.h"
#include "pgtest.h"
#include "store.h"
#include "store_flows.h"
#include "store_internal.h"
#include "store_janitor.h"
#include "store_recon.h"
#include "store_stats.h"

#define ST(x) PAGOFLEX_STATE_##x

static const char *g_admin; /* PAGOFLEX_PG */
static char g_db[64];       /* pf_recon_<pid> */
static char *g_conninfo;
static store *g_store;
static PGconn *g_check; /* direct connection for set-up and EXPLAIN */

/* A claim that only takes what the tests make due: created and pending
 * rows the reconciler never scheduled are left alone for a minute. */
static const store_recon_timing g_timing = {.recover_created_ms = 60000,
                                            .first_retry_ms = 0,
                                            .webhook_grace_ms = 60000,
                                            .lease_ms = 300,
                                            .deadline_s = 86400};

/* ---- helpers ------------------------------------------------------------ */

/* Run `sql` on the check connection; fail the test on error. */
static void check_exec(const char *sql)
{
    pgtest_exec(g_check, sql);
}

/* First column of the one row `sql` returns, in buf. */
static const char *check_value(const char *sql, char *buf, size_t len)
{
    PGresult *r = PQexec(g_check, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

/* A payment `id` in `state` (through the API's own transitions). */
static void make_payment(const char *id, pagoflex_state state)
{
    pagoflex_arena *a = arena_new();
    store_payment p = {.id = id, .connector = "BANCO_X", .amount = 1000, .currency = "EUR",
                     .merchant_id = "mer_default", .connector_account = "default"},
                  out;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    if (state != ST(CREATED))
        assert_int_equal(store_payment_transition(g_store, id, ST(PROCESSING), NULL, NULL, NULL, a, &out),
                         STORE_OK);
    if (state == ST(PENDING))
        assert_int_equal(store_payment_transition(g_store, id, ST(PENDING), arena_printf(a, "bx_%s", id),
                                                  NULL, NULL, a, &out),
                         STORE_OK);
    arena_free(a);
}

/* Claim with g_timing (lease overridden): true, with *out, when the claim
 * included payment `id`. */
static bool claim_one(const char *id, long lease_ms, pagoflex_arena *a, store_recon_item *out)
{
    store_recon_timing t = g_timing;
    t.lease_ms = lease_ms;
    store_recon_item *items = NULL;
    size_t n = 0;
    assert_int_equal(store_recon_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].payment.id, id) == 0) {
            *out = items[i];
            return true;
        }
    }
    return false;
}

static pagoflex_state state_of(const char *id)
{
    pagoflex_arena *a = arena_new();
    store_payment out;
    assert_int_equal(store_payment_get(g_store, id, a, &out), STORE_OK);
    pagoflex_state s = out.state;
    arena_free(a);
    return s;
}

/* ---- exclusive claims ------------------------------------------------------ */

/* Issue 10 item 1: a claimer whose lease lapsed mid-batch still works its
 * copy while a second claimer takes the payment. The lapsed claimer may
 * no longer renew, reschedule or move it, and its give-up, decided from
 * its stale `processing` copy, must not fail the payment the second
 * claimer's re-send made `pending`. */
static void test_lapsed_claim_is_fenced(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    make_payment("pay_fence_1", ST(PROCESSING));
    assert_int_equal(store_recon_schedule(g_store, "pay_fence_1", 0, "bank_unreachable", false, true),
                     STORE_OK);
    store_recon_item first, second, renewed;
    assert_true(claim_one("pay_fence_1", 200, a, &first));
    assert_false(first.maybe_at_bank);
    usleep(300 * 1000); /* the first claimer's lease runs out while it works */
    assert_true(claim_one("pay_fence_1", 60000, a, &second));
    assert_true(second.claim != first.claim);
    assert_int_equal(second.attempts, first.attempts + 1);

    renewed = first;
    assert_int_equal(store_recon_renew(g_store, &g_timing, a, &renewed), STORE_CONFLICT);
    assert_int_equal(renewed.claim, first.claim); /* untouched */
    bool applied = true;
    assert_int_equal(store_recon_reschedule(g_store, &first, 0, "late", true, &applied), STORE_OK);
    assert_false(applied);

    store_payment now;
    bool lost = false;
    assert_int_equal(store_recon_transition(g_store, &first, ST(FAILED), STORE_SOURCE_RECONCILER,
                                            "deadline", NULL, "expired", "never received", a, &now,
                                            &lost),
                     STORE_CONFLICT);
    assert_true(lost);
    assert_int_equal(now.state, ST(PROCESSING));

    /* The second claimer's re-send is taken by the bank. */
    assert_int_equal(store_recon_transition(g_store, &second, ST(PENDING), STORE_SOURCE_RECONCILER,
                                            "resend", "bx_fence", NULL, NULL, a, &now, &lost),
                     STORE_OK);
    assert_int_equal(now.state, ST(PENDING));
    assert_string_equal(now.provider_reference_id, "bx_fence");

    /* The first claimer gives up from its copy: refused, still pending. */
    assert_int_equal(store_recon_transition(g_store, &first, ST(FAILED), STORE_SOURCE_RECONCILER,
                                            "deadline", NULL, "expired", "never received", a, &now,
                                            &lost),
                     STORE_CONFLICT);
    assert_int_equal(state_of("pay_fence_1"), ST(PENDING));
    arena_free(a);
}

/* Every reconciler transition is conditional on the state it was decided
 * from, even under its own claim: a `processing` copy cannot fail a
 * payment that is `pending` now. */
static void test_transition_needs_the_state_decided_from(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    make_payment("pay_cond_1", ST(PROCESSING));
    assert_int_equal(store_recon_schedule(g_store, "pay_cond_1", 0, NULL, true, true), STORE_OK);
    store_recon_item it;
    assert_true(claim_one("pay_cond_1", 60000, a, &it));
    assert_int_equal(it.payment.state, ST(PROCESSING));
    store_payment now;
    assert_int_equal(store_payment_transition(g_store, "pay_cond_1", ST(PENDING), "bx_cond", NULL, NULL,
                                              a, &now),
                     STORE_OK);
    bool lost = true;
    assert_int_equal(store_recon_transition(g_store, &it, ST(FAILED), STORE_SOURCE_RECONCILER,
                                            "deadline", NULL, "expired", "m", a, &now, &lost),
                     STORE_CONFLICT);
    assert_false(lost); /* refused for its state, not for the claim */
    assert_int_equal(now.state, ST(PENDING));
    /* The general rule still holds too: created may not be entered. */
    store_recon_item fresh = it;
    assert_int_equal(store_recon_renew(g_store, &g_timing, a, &fresh), STORE_OK);
    assert_int_equal(fresh.payment.state, ST(PENDING)); /* re-read from the row */
    assert_int_equal(store_recon_transition(g_store, &fresh, ST(CREATED), STORE_SOURCE_RECONCILER,
                                            NULL, NULL, NULL, NULL, a, &now, &lost),
                     STORE_CONFLICT);
    assert_int_equal(store_recon_transition(g_store, &fresh, ST(SUCCEEDED), STORE_SOURCE_SYNC,
                                            "attempt 1", NULL, NULL, NULL, a, &now, &lost),
                     STORE_OK);
    assert_int_equal(state_of("pay_cond_1"), ST(SUCCEEDED));
    assert_int_equal(store_recon_renew(g_store, &g_timing, a, &fresh), STORE_CONFLICT); /* settled */
    arena_free(a);
}

/* A lease renewed before its payment is worked keeps a second claimer off
 * it past the first lease's end. */
static void test_renewed_lease_keeps_others_off(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    make_payment("pay_renew_1", ST(PROCESSING));
    assert_int_equal(store_recon_schedule(g_store, "pay_renew_1", 0, NULL, true, true), STORE_OK);
    store_recon_item it, other;
    /* Wide margins (a renewal and a claim may each take a while on a loaded
     * 2-core machine running the suite in parallel): lease 2 s, renewed at
     * 1 s, claimed again at 2.5 s, when the first lease is 0.5 s gone and
     * the renewed one has 0.5 s left. */
    store_recon_timing t = g_timing;
    t.lease_ms = 2000;
    assert_true(claim_one("pay_renew_1", 2000, a, &it));
    usleep(1000 * 1000);
    assert_int_equal(store_recon_renew(g_store, &t, a, &it), STORE_OK); /* 2 s from now */
    usleep(1500 * 1000); /* past the first lease */
    assert_false(claim_one("pay_renew_1", 60000, a, &other));
    bool applied = false;
    assert_int_equal(store_recon_reschedule(g_store, &it, 60000, "later", true, &applied), STORE_OK);
    assert_true(applied);
    arena_free(a);
}

/* The API's schedule after its first call leaves a claimed payment to its
 * claimer. */
static void test_api_schedule_leaves_a_claimed_payment_alone(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    char buf[64];
    make_payment("pay_api_1", ST(PROCESSING));
    assert_int_equal(store_recon_schedule(g_store, "pay_api_1", 0, NULL, true, true), STORE_OK);
    store_recon_item it;
    assert_true(claim_one("pay_api_1", 60000, a, &it));
    assert_int_equal(store_recon_schedule(g_store, "pay_api_1", 0, "late first answer", false, true),
                     STORE_OK);
    check_value("SELECT maybe_at_bank::text || ' ' || (next_attempt_at > now() + interval '30 s')::text"
                " FROM payments WHERE id = 'pay_api_1'",
                buf, sizeof buf);
    assert_string_equal(buf, "true true");
    arena_free(a);
}

/* Due rows of every kind are claimed, rows not due are not. */
static void test_claim_takes_what_is_due(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_recon_item it;
    make_payment("pay_due_created", ST(CREATED));
    make_payment("pay_due_pending", ST(PENDING));
    make_payment("pay_due_sched", ST(PROCESSING));
    make_payment("pay_notdue_created", ST(CREATED));
    make_payment("pay_notdue_pending", ST(PENDING));
    make_payment("pay_notdue_sched", ST(PROCESSING));
    make_payment("pay_done", ST(PENDING));
    check_exec("UPDATE payments SET updated_at = now() - interval '2 minutes'"
               " WHERE id IN ('pay_due_created', 'pay_due_pending', 'pay_done')");
    check_exec("UPDATE payments SET next_attempt_at = now() - interval '1 s' WHERE id = 'pay_due_sched'");
    check_exec("UPDATE payments SET next_attempt_at = now() + interval '1 hour'"
               " WHERE id = 'pay_notdue_sched'");
    store_payment out;
    assert_int_equal(store_payment_transition(g_store, "pay_done", ST(SUCCEEDED), NULL, NULL, NULL, a, &out),
                     STORE_OK);
    check_exec("UPDATE payments SET updated_at = now() - interval '2 minutes' WHERE id = 'pay_done'");
    store_recon_item *items = NULL;
    size_t n = 0;
    store_recon_timing t = g_timing;
    t.lease_ms = 60000;
    assert_int_equal(store_recon_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = items[i].payment.id;
        if (strncmp(id, "pay_notdue", 10) == 0 || strcmp(id, "pay_done") == 0)
            fail_msg("claimed %s, which is not due", id);
        got += strncmp(id, "pay_due_", 8) == 0;
    }
    assert_int_equal(got, 3);
    assert_false(claim_one("pay_due_created", 60000, a, &it)); /* leased now */
    arena_free(a);
}

/* ---- plans ------------------------------------------------------------------ */

/* The EXPLAIN text of `sql` prepared as "plan_stmt" and executed with the
 * literal arguments `args`, under a generic plan (what a prepared statement
 * runs with after its fifth execution). `analyze`: run it (rolled back) and
 * include row counts. The caller frees the text. */
static char *explain(const char *sql, int nparams, const char *args, bool analyze)
{
    char cmd[512];
    check_exec("SET plan_cache_mode = force_generic_plan");
    PGresult *r = PQprepare(g_check, "plan_stmt", sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("prepare: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (analyze)
        check_exec("BEGIN");
    snprintf(cmd, sizeof cmd, "EXPLAIN (%s) EXECUTE plan_stmt(%s)",
             analyze ? "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON" : "COSTS OFF", args);
    r = PQexec(g_check, cmd);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", cmd, PQresultErrorMessage(r));
    size_t len = 1;
    for (int i = 0; i < PQntuples(r); i++)
        len += strlen(PQgetvalue(r, i, 0)) + 1;
    char *text = calloc(1, len);
    assert_non_null(text);
    for (int i = 0; i < PQntuples(r); i++) {
        strcat(text, PQgetvalue(r, i, 0));
        strcat(text, "\n");
    }
    PQclear(r);
    if (analyze)
        check_exec("ROLLBACK");
    check_exec("DEALLOCATE plan_stmt");
    check_exec("RESET plan_cache_mode");
    return text;
}

/* No node of the plan reads the payments table whole. */
static void assert_no_seq_scan_on_payments(const char *what, const char *plan)
{
    for (const char *p = strstr(plan, "Seq Scan on payments"); p;
         p = strstr(p + 1, "Seq Scan on payments")) {
        char next = p[strlen("Seq Scan on payments")];
        if (next == ' ' || next == '\n')
            fail_msg("%s reads every payment:\n%s", what, plan);
    }
}

static void assert_uses(const char *what, const char *plan, const char *index)
{
    if (!strstr(plan, index))
        fail_msg("%s does not use %s:\n%s", what, index, plan);
}

/* Sum of "Rows Removed by Filter" and "Rows Removed by Index Recheck"
 * over the plan's nodes: rows read and thrown away. */
static long rows_discarded(const char *plan)
{
    long n = 0;
    for (const char *p = strstr(plan, "Rows Removed by "); p; p = strstr(p + 1, "Rows Removed by ")) {
        const char *colon = strchr(p, ':');
        if (colon)
            n += atol(colon + 1);
    }
    return n;
}

/* Issue 10 item 12: on a table of 110,000 payments, 100,000 of them open
 * and not due, the claim and the webhook look-ups use an index under a
 * generic plan, and the claim reads only what is due. */
static void test_hot_statements_use_indexes(void **unused)
{
    (void)unused;
    char buf[64];
    /* What the tests before left open is out of the way. */
    check_exec("UPDATE payments SET state = 'succeeded' WHERE state IN ('created', 'processing', 'pending')");
    /* 40k pending waiting for their webhook, 30k processing scheduled for
     * later, 30k created a moment ago, 10k settled; 5 due. */
    check_exec("INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state,"
               " provider_reference_id, created_at, updated_at, next_attempt_at)"
               " SELECT 'default', 'mer_default', 'pay_bulk_' || g, 'BANCO_X', 1000 + g, 'ARS',"
               " CASE WHEN g <= 40000 THEN 'pending' WHEN g <= 70000 THEN 'processing'"
               " WHEN g <= 100000 THEN 'created' ELSE 'succeeded' END,"
               " CASE WHEN g <= 40000 OR g > 100000 THEN 'bx_bulk_' || g END,"
               " now() - interval '1 minute', now() - (g % 30) * interval '1 second',"
               " CASE WHEN g > 40000 AND g <= 70000 THEN now() + (120 + g % 300) * interval '1 second'"
               " WHEN g > 100000 THEN now() - interval '1 hour' END"
               " FROM generate_series(1, 110000) g");
    check_exec("UPDATE payments SET next_attempt_at = now() - interval '1 s'"
               " WHERE id IN ('pay_bulk_50001', 'pay_bulk_50002')");
    check_exec("UPDATE payments SET updated_at = now() - interval '5 minutes'"
               " WHERE id IN ('pay_bulk_7', 'pay_bulk_80001', 'pay_bulk_80002')");
    check_exec("ANALYZE payments");
    assert_true(atol(check_value("SELECT count(*) FROM payments", buf, sizeof buf)) >= 110000);

    char *plan = explain(store_recon_sql_claim, 6, "'60000', '1000', '60000', '16', '60000', '86400'",
                         true);
    fprintf(stderr, "claim, generic plan, EXPLAIN ANALYZE on 110k payments:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the claim", plan);
    assert_uses("the claim", plan, "Index Scan using payments_scheduled_due on payments");
    assert_uses("the claim", plan, "Index Scan using payments_unscheduled on payments");
    if (rows_discarded(plan) > 100)
        fail_msg("the claim read and discarded %ld rows:\n%s", rows_discarded(plan), plan);
    free(plan);

    plan = explain(store_recon_sql_renew, 4, "'pay_bulk_7', '1', '60000', '86400'", false);
    fprintf(stderr, "renewal, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the renewal", plan);
    assert_uses("the renewal", plan, "payments_pkey");
    free(plan);

    static const char webhook_args[] =
        "'BANCO_X', 'evt_plan', %s, %s, 'succeeded', '{}', '{pending}', NULL, NULL, 'default'";
    char args[256];
    snprintf(args, sizeof args, webhook_args, "'pay_bulk_7'", "NULL");
    plan = explain(store_sql_webhook_by_id, 10, args, false);
    fprintf(stderr, "webhook by payment id, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the webhook look-up by id", plan);
    assert_uses("the webhook look-up by id", plan, "Index Scan using payments_pkey on payments");
    free(plan);

    snprintf(args, sizeof args, webhook_args, "NULL", "'bx_bulk_7'");
    plan = explain(store_sql_webhook_by_ref, 10, args, false);
    fprintf(stderr, "webhook by bank id, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the webhook look-up by bank id", plan);
    assert_uses("the webhook look-up by bank id", plan,
                "Index Scan using payments_connector_provider_ref on payments");
    free(plan);

    /* Issue 16 dropped payments_state_updated: the gauges of GET /metrics
     * count by the claim's indexes (since version 20 payments_scheduled_due,
     * of the scheduled rows only, finds the due ones) and payments_review,
     * and the retention purges find old rows by age and their payments by
     * key. */
    plan = explain(store_stats_sql, 3, "'60000', '1000', '60000'", false);
    fprintf(stderr, "metrics gauges, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the metrics gauges", plan);
    assert_uses("the backlog gauge", plan, "payments_scheduled_due");
    assert_uses("the backlog gauge", plan, "payments_unscheduled");
    assert_uses("the requires_review gauge", plan, "payments_review");
    free(plan);
    plan = explain(store_janitor_sql_purge_events, 3, "'1000', '30', '{succeeded,failed,canceled}'", false);
    fprintf(stderr, "purge of old webhook events, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the event purge", plan);
    assert_uses("the event purge", plan, "payments_pkey");
    free(plan);
    plan = explain(store_janitor_sql_purge_history, 3, "'1000', '30', '{succeeded,failed,canceled}'", false);
    fprintf(stderr, "purge of old payment history, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the history purge", plan);
    assert_uses("the history purge", plan, "payments_pkey");
    free(plan);

    /* And the claim takes them, quickly. */
    pagoflex_arena *a = arena_new();
    store_recon_timing t = {.recover_created_ms = 60000, .first_retry_ms = 1000,
                            .webhook_grace_ms = 60000, .lease_ms = 60000, .deadline_s = 86400};
    store_recon_item *items = NULL;
    size_t n = 0;
    assert_int_equal(store_recon_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    assert_int_equal(n, 5);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(store_recon_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(n, 0);
    fprintf(stderr, "claim with nothing due among 110k payments: %.2f ms each (20 runs)\n",
            ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / 20);
    arena_free(a);
}

/* ---- refunds and held payments (migration 9) ------------------------------- */

/* A succeeded payment `id` of 1000 with refund `rid` of `amount` in `state`
 * (through the API's own statements). */
static void make_refund(const char *id, const char *rid, int64_t amount, pagoflex_state state)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state,"
             " provider_reference_id, amount_received) VALUES ('default', 'mer_default', '%s', 'BANCO_X',"
             " 1000, 'EUR', 'succeeded', 'bx_%s', 1000)",
             id, id);
    check_exec(sql);
    pagoflex_arena *a = arena_new();
    store_refund f;
    store_payment p;
    assert_int_equal(store_refund_create(g_store, "mer_default", rid, id, amount, NULL, NULL, a, &f, &p),
                     STORE_OK);
    if (state != ST(CREATED))
        assert_int_equal(store_refund_transition(g_store, rid, state, STORE_SOURCE_BANK_REPLY, NULL,
                                                 state == ST(PENDING) ? arena_printf(a, "rf_%s", rid) : NULL,
                                                 NULL, NULL, a, &f),
                         STORE_OK);
    arena_free(a);
}

static bool claim_refund(const char *rid, long lease_ms, pagoflex_arena *a, store_refund_item *out)
{
    store_recon_timing t = g_timing;
    t.lease_ms = lease_ms;
    store_refund_item *items = NULL;
    size_t n = 0;
    assert_int_equal(store_refund_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].refund.id, rid) == 0) {
            *out = items[i];
            return true;
        }
    }
    return false;
}

/* A refund claimer whose lease lapsed and whose refund another claimer took
 * may not renew, reschedule or move it: its failure (which would give the
 * amount back) and its give-up are refused, and the second claimer's
 * verdict stands. */
static void test_lapsed_refund_claim_is_fenced(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    char buf[64];
    make_refund("pay_rf_fence", "re_fence_1", 400, ST(PROCESSING));
    store_refund_item first, second, renewed;
    assert_true(claim_refund("re_fence_1", 200, a, &first));
    assert_int_equal(first.refund.state, ST(PROCESSING));
    assert_false(claim_refund("re_fence_1", 200, a, &second)); /* leased */
    usleep(300 * 1000);
    assert_true(claim_refund("re_fence_1", 60000, a, &second));
    assert_true(second.claim != first.claim);
    assert_int_equal(second.attempts, first.attempts + 1);

    renewed = first;
    assert_int_equal(store_refund_renew(g_store, &g_timing, a, &renewed), STORE_CONFLICT);
    bool applied = true;
    assert_int_equal(store_refund_reschedule(g_store, &first, 0, "late", &applied), STORE_OK);
    assert_false(applied);

    store_refund now;
    bool lost = false;
    assert_int_equal(store_refund_recon_transition(g_store, &first, ST(FAILED), STORE_SOURCE_RECONCILER, "resend",
                                                   NULL, "rejected", "no", a, &now, &lost),
                     STORE_CONFLICT);
    assert_true(lost);
    assert_int_equal(now.state, ST(PROCESSING));
    assert_string_equal(check_value("SELECT amount_refunded FROM payments WHERE id = 'pay_rf_fence'", buf,
                                    sizeof buf),
                        "400");

    assert_int_equal(store_refund_recon_transition(g_store, &second, ST(PENDING), STORE_SOURCE_RECONCILER, "resend",
                                                   "rf_fence", NULL, NULL, a, &now, &lost),
                     STORE_OK);
    assert_int_equal(now.state, ST(PENDING));
    /* Decided from `processing`: refused now that it is pending, even
     * under the live claim. */
    assert_int_equal(store_refund_recon_transition(g_store, &second, ST(REQUIRES_REVIEW), STORE_SOURCE_RECONCILER,
                                                   "deadline", NULL, "outcome_unknown", "x", a, &now, &lost),
                     STORE_CONFLICT);
    assert_false(lost);
    assert_int_equal(store_refund_recon_transition(g_store, &first, ST(REQUIRES_REVIEW), STORE_SOURCE_RECONCILER,
                                                   "deadline", NULL, "outcome_unknown", "x", a, &now, &lost),
                     STORE_CONFLICT);
    assert_string_equal(check_value("SELECT state FROM refunds WHERE id = 're_fence_1'", buf, sizeof buf),
                        "pending");
    assert_string_equal(check_value("SELECT amount_refunded FROM payments WHERE id = 'pay_rf_fence'", buf,
                                    sizeof buf),
                        "400");
    arena_free(a);
}

/* Look-up events: a refund named by the bank's id, and a requires_capture
 * payment named by the bank's id, are made due now and claimed. */
static void test_look_up_makes_refund_and_held_payment_due(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    make_refund("pay_rf_look", "re_look_1", 300, ST(PENDING));
    check_exec("UPDATE refunds SET next_attempt_at = now() + interval '1 hour' WHERE id = 're_look_1'");
    store_refund_item it;
    assert_false(claim_refund("re_look_1", 60000, a, &it));
    const char *found = NULL;
    assert_int_equal(store_refund_make_due(g_store, "OTHER", "default", NULL, "rf_re_look_1", a, &found),
                     STORE_NOT_FOUND);
    assert_int_equal(store_refund_make_due(g_store, "BANCO_X", "default", NULL, "rf_re_look_1", a, &found),
                     STORE_OK);
    assert_string_equal(found, "re_look_1");
    assert_true(claim_refund("re_look_1", 60000, a, &it));
    assert_int_equal(it.refund.state, ST(PENDING));

    check_exec("INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state,"
               " provider_reference_id, capture_method, amount_capturable)"
               " VALUES ('default', 'mer_default', 'pay_held_look', 'BANCO_X', 900, 'EUR',"
               " 'requires_capture', 'bx_held_look', 'manual', 900)");
    store_recon_item *items = NULL;
    size_t n = 0;
    assert_int_equal(store_recon_claim_held(g_store, &g_timing, 16, a, &items, &n), STORE_OK);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(items[i].payment.id, "pay_held_look");
    assert_int_equal(store_recon_look_up(g_store, "BANCO_X", "default", NULL, "bx_held_look", a, &found),
                     STORE_OK);
    assert_string_equal(found, "pay_held_look");
    assert_int_equal(store_recon_claim_held(g_store, &g_timing, 16, a, &items, &n), STORE_OK);
    bool claimed = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].payment.id, "pay_held_look") == 0) {
            claimed = true;
            assert_int_equal(items[i].payment.state, ST(REQUIRES_CAPTURE));
            assert_false(items[i].operation_accepted);
            assert_null(items[i].payment.pending_operation);
        }
    assert_true(claimed);
    arena_free(a);
}

/* On 100,000 refunds, open and not due, the refund claim (and the held
 * payments' claim, on the 110k payments of the test before) use their
 * indexes under a generic plan and read only what is due. */
static void test_refund_claim_uses_indexes(void **unused)
{
    (void)unused;
    check_exec("UPDATE refunds SET state = 'succeeded' WHERE state IN ('created', 'processing', 'pending')");
    check_exec("INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency,"
               " state, amount_received)"
               " VALUES ('default', 'mer_default', 'pay_rf_bulk', 'BANCO_X', 100000000, 'EUR',"
               " 'succeeded', 100000000)");
    check_exec("INSERT INTO refunds (connector_account, merchant_id, id, payment_id, connector, amount,"
               " currency, state,"
               " provider_reference_id, created_at, updated_at, next_attempt_at)"
               " SELECT 'default', 'mer_default', 're_bulk_' || g, 'pay_rf_bulk', 'BANCO_X', 1, 'EUR',"
               " CASE WHEN g <= 40000 THEN 'pending' WHEN g <= 70000 THEN 'processing'"
               " WHEN g <= 100000 THEN 'created' ELSE 'succeeded' END,"
               " CASE WHEN g <= 40000 OR g > 100000 THEN 'rf_bulk_' || g END,"
               " now() - interval '1 minute', now() - (g % 30) * interval '1 second',"
               " CASE WHEN g > 40000 AND g <= 70000 THEN now() + (120 + g % 300) * interval '1 second'"
               " WHEN g > 100000 THEN now() - interval '1 hour' END"
               " FROM generate_series(1, 110000) g");
    check_exec("UPDATE refunds SET next_attempt_at = now() - interval '1 s'"
               " WHERE id IN ('re_bulk_50001', 're_bulk_50002')");
    check_exec("UPDATE refunds SET updated_at = now() - interval '5 minutes'"
               " WHERE id IN ('re_bulk_7', 're_bulk_80001', 're_bulk_80002')");
    check_exec("ANALYZE refunds");
    check_exec("ANALYZE payments");

    char *plan = explain(store_refund_sql_claim, 6, "'60000', '1000', '60000', '16', '60000', '86400'", true);
    fprintf(stderr, "refund claim, generic plan, EXPLAIN ANALYZE on 110k refunds:\n%s\n", plan);
    if (strstr(plan, "Seq Scan on refunds"))
        fail_msg("the refund claim reads every refund:\n%s", plan);
    assert_uses("the refund claim", plan, "Index Scan using refunds_due on refunds");
    assert_uses("the refund claim", plan, "Index Scan using refunds_unscheduled on refunds");
    if (rows_discarded(plan) > 100)
        fail_msg("the refund claim read and discarded %ld rows:\n%s", rows_discarded(plan), plan);
    free(plan);

    plan = explain(store_refund_sql_renew, 4, "'re_bulk_7', '1', '60000', '86400'", false);
    if (strstr(plan, "Seq Scan on refunds"))
        fail_msg("the refund renewal reads every refund:\n%s", plan);
    assert_uses("the refund renewal", plan, "refunds_pkey");
    free(plan);

    plan = explain(store_recon_sql_claim_held, 4, "'60000', '60000', '16', '86400'", true);
    fprintf(stderr, "held claim, generic plan:\n%s\n", plan);
    assert_no_seq_scan_on_payments("the held claim", plan);
    assert_uses("the held claim", plan, "payments_hold_due");
    assert_uses("the held claim", plan, "payments_operation_unscheduled");
    free(plan);

    pagoflex_arena *a = arena_new();
    store_recon_timing t = {.recover_created_ms = 60000, .first_retry_ms = 1000,
                            .webhook_grace_ms = 60000, .lease_ms = 60000, .deadline_s = 86400};
    store_refund_item *items = NULL;
    size_t n = 0;
    assert_int_equal(store_refund_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    assert_int_equal(n, 5);
    assert_int_equal(store_refund_claim(g_store, &t, 16, a, &items, &n), STORE_OK);
    assert_int_equal(n, 0);
    arena_free(a);
}

/* ---- setup ------------------------------------------------------------------ */

static int group_setup(void **unused)
{
    (void)unused;
    snprintf(g_db, sizeof g_db, "pf_recon_%d", (int)getpid());
    return pgtest_open(g_admin, g_db, 4, &g_conninfo, &g_store, &g_check);
}

static int group_teardown(void **unused)
{
    (void)unused;
    return pgtest_close(g_admin, g_db, g_conninfo, g_store, g_check);
}

/* The reconciler's claims, planned while payments and refunds are empty
 * (a new database), still find their rows by index once the tables have
 * grown, before anything analyzes them again: no sequential scan of
 * either. (PostgreSQL kept the generic plan it made on the small table: a
 * sequential scan of 70,000 payments, 169 ms a claim, in the bench.) */
static void test_claims_planned_on_empty_tables_keep_to_their_indexes(void **unused)
{
    (void)unused;
    check_exec("DELETE FROM refunds");
    check_exec("DELETE FROM payments");
    check_exec("ALTER TABLE payments SET (autovacuum_enabled = false)"); /* no ANALYZE meanwhile */
    check_exec("ALTER TABLE refunds SET (autovacuum_enabled = false)");
    check_exec("VACUUM (ANALYZE) payments, refunds"); /* known to be empty */
    store *one = store_open(g_conninfo, 1);
    assert_non_null(one);
    pagoflex_arena *a = arena_new();
    store_recon_item *items = NULL;
    store_refund_item *refunds = NULL;
    size_t n = 0;
    for (int i = 0; i < 8; i++) { /* past PostgreSQL's five custom plans */
        assert_int_equal(store_recon_claim(one, &g_timing, 16, a, &items, &n), STORE_OK);
        assert_int_equal(store_refund_claim(one, &g_timing, 16, a, &refunds, &n), STORE_OK);
    }
    check_exec("INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state,"
               " next_attempt_at)"
               " SELECT 'default', 'mer_default', 'pay_grown_' || g, 'BANCO_X', 1000, 'EUR', 'pending',"
               " now() + interval '1 hour' FROM generate_series(1, 20000) g");
    check_exec("INSERT INTO refunds (connector_account, merchant_id, id, payment_id, connector, amount, currency,"
               " state, next_attempt_at)"
               " SELECT 'default', 'mer_default', 're_grown_' || g, 'pay_grown_' || g, 'BANCO_X', 1, 'EUR',"
               " 'pending', now() + interval '1 hour' FROM generate_series(1, 20000) g");
    long pay_seq0, pay_idx0, ref_seq0, ref_idx0, pay_seq, pay_idx, ref_seq, ref_idx;
    pgtest_table_scans(g_check, "payments", &pay_seq0, &pay_idx0);
    pgtest_table_scans(g_check, "refunds", &ref_seq0, &ref_idx0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_recon_claim(one, &g_timing, 16, a, &items, &n), STORE_OK);
        assert_int_equal(n, 0); /* none due */
        assert_int_equal(store_refund_claim(one, &g_timing, 16, a, &refunds, &n), STORE_OK);
        assert_int_equal(n, 0);
    }
    store_close(one); /* a session's counts arrive as it ends */
    pgtest_table_scans_after(g_check, "payments", pay_idx0, &pay_seq, &pay_idx);
    pgtest_table_scans_after(g_check, "refunds", ref_idx0, &ref_seq, &ref_idx);
    check_exec("ALTER TABLE payments RESET (autovacuum_enabled)");
    check_exec("ALTER TABLE refunds RESET (autovacuum_enabled)");
    arena_free(a);
    assert_int_equal(pay_seq - pay_seq0, 0);
    assert_int_equal(ref_seq - ref_seq0, 0);
}

int main(void)
{
    if (!(g_admin = pgtest_admin("test_store_recon")))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lapsed_claim_is_fenced),
        cmocka_unit_test(test_transition_needs_the_state_decided_from),
        cmocka_unit_test(test_renewed_lease_keeps_others_off),
        cmocka_unit_test(test_api_schedule_leaves_a_claimed_payment_alone),
        cmocka_unit_test(test_claim_takes_what_is_due),
        cmocka_unit_test(test_hot_statements_use_indexes),
        cmocka_unit_test(test_lapsed_refund_claim_is_fenced),
        cmocka_unit_test(test_look_up_makes_refund_and_held_payment_due),
        cmocka_unit_test(test_refund_claim_uses_indexes),
        cmocka_unit_test(test_claims_planned_on_empty_tables_keep_to_their_indexes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
