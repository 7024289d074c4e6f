/* Unit tests for refunds in the group commit (host/store/store_batch.c)
 * against a real PostgreSQL: refund creates queued together commit in one
 * transaction and the one that would refund more than was received is the
 * only one refused (the statement decides, as store_refund_create does); a
 * refund's bank answer shares a commit with a payment's; each result reads
 * as the synchronous call returns it.
 *
 * The writer is held as in test_store_batch.c: a row lock taken by the
 * test's own session blocks the first statement of a batch, so everything
 * submitted meanwhile queues up and forms the next batch.
 *
 * PAGOFLEX_PG holds a conninfo to a server where databases may be created;
 * without it the program exits 77 (skipped).
 */
#include <pthread.h>
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
#include "store_batch.h"
#include "store_flows.h"

static const char *g_admin;
static char g_db[64];
static char *g_conninfo;
static store *g_store;
static PGconn *g_check; /* the test's session: counts rows, holds locks */
static PGconn *g_seen;  /* another session, read from inside callbacks */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

/* One submitted operation and what its callback saw. */
typedef struct waiter {
    store_batch_op op;
    const char *refund_id; /* refund whose row the callback looks for */
    bool done;
    long visible; /* rows of `refund_id` another session saw when the callback ran */
} waiter;

static void on_done(void *arg)
{
    waiter *w = arg;
    pthread_mutex_lock(&g_mu);
    if (w->refund_id)
        w->visible = pgtest_long(g_seen, "SELECT count(*) FROM refunds WHERE id = $1", w->refund_id);
    w->done = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void wait_all(waiter *ws, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < n; i++)
        while (!ws[i].done)
            if (pthread_cond_timedwait(&g_cv, &g_mu, &until) != 0)
                break;
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < n; i++)
        assert_true(ws[i].done);
}

static void submit(store_batch *b, waiter *w)
{
    w->op.done = on_done;
    w->op.arg = w;
    assert_true(store_batch_submit(b, &w->op));
}

static void submit_refund(store_batch *b, waiter *w, const char *refund_id, const char *payment_id,
                          int64_t amount, pagoflex_arena *a)
{
    memset(w, 0, sizeof *w);
    assert_true(store_batch_refund_create_init(&w->op, "mer_default", refund_id, payment_id, amount, "gc",
                                               NULL, NULL, a));
    w->refund_id = refund_id;
    submit(b, w);
}

/* A payment of 1000 EUR in `state` (succeeded: all of it received). */
static void make_payment(const char *id, const char *state)
{
    pagoflex_arena *a = arena_new();
    store_payment p = {.id = id,
                       .connector = "BANCO_X",
                       .amount = 1000,
                       .currency = "EUR",
                       .merchant_id = "mer_default",
                       .connector_account = "default"},
                  out;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    arena_free(a);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE payments SET state = '%s', amount_received = CASE WHEN '%s' = 'succeeded' THEN amount"
             " ELSE 0 END WHERE id = '%s'",
             state, state, id);
    pgtest_exec(g_check, sql);
}

/* Hold the writer: the next batch is every operation submitted until
 * release_writer. `lock_id` is a fresh payment's id. */
static void hold_writer(store_batch *b, waiter *first, const char *lock_id, pagoflex_arena *a)
{
    make_payment(lock_id, "created");
    char sql[128];
    pgtest_exec(g_check, "BEGIN");
    snprintf(sql, sizeof sql, "SELECT 1 FROM payments WHERE id = '%s' FOR UPDATE", lock_id);
    pgtest_exec(g_check, sql);
    memset(first, 0, sizeof *first);
    assert_true(store_batch_transition_init(&first->op, lock_id, PAGOFLEX_STATE_PENDING,
                                            STORE_SOURCE_BANK_REPLY, NULL, NULL, NULL, NULL, a));
    submit(b, first);
    for (int i = 0; i < 2000; i++) {
        if (pgtest_long(g_seen,
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pagoflex-batch'"
                        " AND datname = current_database() AND wait_event_type = 'Lock'",
                        NULL) > 0)
            return;
        usleep(5000);
    }
    fail_msg("the batch writer never waited on the test's lock");
}

static void release_writer(waiter *first)
{
    pgtest_exec(g_check, "COMMIT");
    wait_all(first, 1);
    assert_int_equal(first->op.rc, STORE_OK);
}

/* Five refund creates in one batch, four of them on one payment of 1000:
 * 300 + 300 + 300 fit, the fourth 300 would refund 1200 and is the only one
 * refused (with the payment as it is); the others and a refund of another
 * payment commit together, in one commit, and are visible when answered. */
static void test_refund_creates_share_a_commit_and_one_is_refused(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    assert_non_null(b);
    make_payment("pay_rf_1", "succeeded");
    make_payment("pay_rf_2", "succeeded");
    waiter first, ws[5];
    hold_writer(b, &first, "pay_rf_lock1", a);
    unsigned long c0, ops, reruns;
    store_batch_stats(b, &c0, &ops, &reruns);
    unsigned long s0 = store_batch_statements(b);
    const char *ids[5] = {"re_rf_0", "re_rf_1", "re_rf_2", "re_rf_3", "re_rf_4"};
    for (int i = 0; i < 4; i++)
        submit_refund(b, &ws[i], ids[i], "pay_rf_1", 300, a);
    submit_refund(b, &ws[4], ids[4], "pay_rf_2", 0, a); /* 0: all that is left */
    usleep(100 * 1000);
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < 5; i++)
        assert_false(ws[i].done); /* nothing answered before its commit */
    pthread_mutex_unlock(&g_mu);
    release_writer(&first);
    wait_all(ws, 5);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ws[i].op.rc, STORE_OK);
        assert_string_equal(ws[i].op.refund.id, ids[i]);
        assert_string_equal(ws[i].op.refund.payment_id, "pay_rf_1");
        assert_int_equal(ws[i].op.refund.amount, 300);
        assert_int_equal(ws[i].op.refund.state, PAGOFLEX_STATE_CREATED);
        assert_string_equal(ws[i].op.refund.reason, "gc");
        assert_string_equal(ws[i].op.refund.connector_account, "default");
        assert_string_equal(ws[i].op.row.id, "pay_rf_1");
        assert_int_equal(ws[i].op.row.amount_refunded, 300 * (i + 1)); /* in arrival order */
        assert_int_equal(ws[i].visible, 1);
    }
    assert_int_equal(ws[3].op.rc, STORE_CONFLICT);
    assert_string_equal(ws[3].op.row.id, "pay_rf_1");
    assert_int_equal(ws[3].op.row.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_int_equal(ws[3].op.row.amount_refunded, 900);
    assert_int_equal(ws[3].op.row.amount_received, 1000);
    assert_null(ws[3].op.refund.id); /* no refund row for the refused one */
    assert_int_equal(ws[3].visible, 0);
    assert_int_equal(ws[4].op.rc, STORE_OK);
    assert_int_equal(ws[4].op.refund.amount, 1000);
    assert_int_equal(ws[4].visible, 1);
    unsigned long commits;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(commits - c0, 2); /* the held one alone, then the five together */
    assert_int_equal(reruns, 0);
    /* pay_rf_2's refund shares the statement of pay_rf_1's first; pay_rf_1's
     * others each need one of their own, after it (they grow one row). */
    assert_int_equal(store_batch_statements(b) - s0, 4);
    assert_int_equal(pgtest_long(g_check, "SELECT amount_refunded FROM payments WHERE id = $1", "pay_rf_1"),
                     900);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT coalesce(sum(amount), 0) FROM refunds WHERE payment_id = $1",
                                 "pay_rf_1"),
                     900);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT count(*) FROM refund_history h JOIN refunds r ON r.id = h.refund_id"
                                 " WHERE r.payment_id = $1 AND h.to_state = 'created'",
                                 "pay_rf_1"),
                     3);
    store_batch_close(b);
    arena_free(a);
}

/* Alone (its own transaction): a payment that is not the merchant's or
 * does not exist is not found; a payment not yet succeeded is refused with
 * its row; a refund id that exists is a duplicate and changes nothing. */
static void test_refund_create_refusals_read_as_the_synchronous_call(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_rf_3", "succeeded");
    make_payment("pay_rf_4", "pending");
    waiter w;
    submit_refund(b, &w, "re_rf_none", "pay_rf_nobody", 100, a);
    wait_all(&w, 1);
    assert_int_equal(w.op.rc, STORE_NOT_FOUND);
    memset(&w, 0, sizeof w);
    assert_true(store_batch_refund_create_init(&w.op, "mer_other", "re_rf_other", "pay_rf_3", 100, NULL, NULL,
                                               NULL, a));
    submit(b, &w);
    wait_all(&w, 1);
    assert_int_equal(w.op.rc, STORE_NOT_FOUND);
    submit_refund(b, &w, "re_rf_pending", "pay_rf_4", 100, a);
    wait_all(&w, 1);
    assert_int_equal(w.op.rc, STORE_CONFLICT);
    assert_int_equal(w.op.row.state, PAGOFLEX_STATE_PENDING);
    submit_refund(b, &w, "re_rf_3", "pay_rf_3", 100, a);
    wait_all(&w, 1);
    assert_int_equal(w.op.rc, STORE_OK);
    submit_refund(b, &w, "re_rf_3", "pay_rf_3", 100, a);
    wait_all(&w, 1);
    assert_int_equal(w.op.rc, STORE_DUPLICATE);
    assert_int_equal(pgtest_long(g_check, "SELECT amount_refunded FROM payments WHERE id = $1", "pay_rf_3"),
                     100);
    /* Invalid arguments are refused before anything is queued. */
    assert_false(store_batch_refund_create_init(&w.op, NULL, "re_x", "pay_rf_3", 1, NULL, NULL, NULL, a));
    assert_int_equal(w.op.rc, STORE_ERROR);
    assert_false(store_batch_refund_transition_init(&w.op, NULL, NULL, PAGOFLEX_STATE_FAILED,
                                                    STORE_SOURCE_BANK_REPLY, NULL, NULL, NULL, NULL, a));
    store_batch_close(b);
    arena_free(a);
}

/* A refund's bank answers and a payment's share one commit: a refund that
 * failed gives its amount back to its payment, one that succeeded keeps its
 * bank id, one already succeeded is refused (its row as it is), and the
 * payment moves; every history row is written. */
static void test_refund_transitions_batched_with_a_payment_transition(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_rt_a", "succeeded");
    make_payment("pay_rt_b", "created");
    store_refund ref;
    store_payment pay;
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_rt_fail", "pay_rt_a", 400, NULL, NULL, a, &ref, &pay),
        STORE_OK);
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_rt_ok", "pay_rt_a", 300, NULL, NULL, a, &ref, &pay),
        STORE_OK);
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_rt_done", "pay_rt_a", 200, NULL, NULL, a, &ref, &pay),
        STORE_OK);
    assert_int_equal(store_refund_transition(g_store, "re_rt_done", PAGOFLEX_STATE_SUCCEEDED,
                                             STORE_SOURCE_BANK_REPLY, NULL, "bx_re_done", NULL, NULL, a,
                                             &ref),
                     STORE_OK);
    waiter first, ws[4];
    hold_writer(b, &first, "pay_rt_lock", a);
    unsigned long c0, ops, reruns;
    store_batch_stats(b, &c0, &ops, &reruns);
    memset(ws, 0, sizeof ws);
    assert_true(store_batch_refund_transition_init(&ws[0].op, "re_rt_fail", "pay_rt_a", PAGOFLEX_STATE_FAILED,
                                                   STORE_SOURCE_BANK_REPLY, NULL, "bx_re_fail", "declined",
                                                   "insufficient funds", a));
    assert_true(store_batch_transition_init(&ws[1].op, "pay_rt_b", PAGOFLEX_STATE_PENDING,
                                            STORE_SOURCE_BANK_REPLY, NULL, "tx_rt_b", NULL, NULL, a));
    assert_true(store_batch_refund_transition_init(&ws[2].op, "re_rt_ok", "pay_rt_a",
                                                   PAGOFLEX_STATE_SUCCEEDED, STORE_SOURCE_BANK_REPLY, NULL,
                                                   "bx_re_ok", NULL, NULL, a));
    assert_true(store_batch_refund_transition_init(&ws[3].op, "re_rt_done", "pay_rt_a", PAGOFLEX_STATE_FAILED,
                                                   STORE_SOURCE_BANK_REPLY, NULL, NULL, "late", "too late",
                                                   a));
    for (int i = 0; i < 4; i++)
        submit(b, &ws[i]);
    release_writer(&first);
    wait_all(ws, 4);
    unsigned long commits;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(commits - c0, 2); /* the held one, then all four together */
    assert_int_equal(reruns, 0);
    assert_int_equal(ws[0].op.rc, STORE_OK);
    assert_string_equal(ws[0].op.refund.id, "re_rt_fail");
    assert_int_equal(ws[0].op.refund.state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(ws[0].op.refund.error_code, "declined");
    assert_string_equal(ws[0].op.refund.provider_reference_id, "bx_re_fail");
    assert_int_equal(ws[1].op.rc, STORE_OK);
    assert_int_equal(ws[1].op.row.state, PAGOFLEX_STATE_PENDING);
    assert_int_equal(ws[2].op.rc, STORE_OK);
    assert_int_equal(ws[2].op.refund.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_string_equal(ws[2].op.refund.provider_reference_id, "bx_re_ok");
    assert_int_equal(ws[3].op.rc, STORE_CONFLICT); /* terminal states never regress */
    assert_int_equal(ws[3].op.refund.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_null(ws[3].op.refund.error_code);
    /* 400 failed and came back: 300 + 200 stay refunded. */
    assert_int_equal(pgtest_long(g_check, "SELECT amount_refunded FROM payments WHERE id = $1", "pay_rt_a"),
                     500);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT count(*) FROM refund_history h JOIN refunds r ON r.id = h.refund_id"
                                 " WHERE r.payment_id = $1 AND h.source = 'bank_reply'",
                                 "pay_rt_a"),
                     3); /* re_rt_done's first answer, then re_rt_fail and re_rt_ok */
    assert_int_equal(
        pgtest_long(g_check, "SELECT count(*) FROM payments WHERE id = $1 AND state = 'pending'", "pay_rt_b"),
        1);
    store_batch_close(b);
    arena_free(a);
}

/* Bank answers to refunds of different payments share one statement:
 * each gets its own answer, and the failed one gives its amount back to its
 * own payment only. */
static void test_refund_transitions_of_many_payments_share_a_statement(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    const char *pays[3] = {"pay_rm_1", "pay_rm_2", "pay_rm_3"};
    const char *refs[3] = {"re_rm_1", "re_rm_2", "re_rm_3"};
    store_refund ref;
    store_payment pay;
    for (int i = 0; i < 3; i++) {
        make_payment(pays[i], "succeeded");
        assert_int_equal(
            store_refund_create(g_store, "mer_default", refs[i], pays[i], 250, NULL, NULL, a, &ref, &pay),
            STORE_OK);
    }
    waiter first, ws[4];
    hold_writer(b, &first, "pay_rm_lock", a);
    unsigned long s0 = store_batch_statements(b);
    memset(ws, 0, sizeof ws);
    pagoflex_state to[3] = {PAGOFLEX_STATE_SUCCEEDED, PAGOFLEX_STATE_FAILED, PAGOFLEX_STATE_SUCCEEDED};
    for (int i = 0; i < 3; i++)
        assert_true(store_batch_refund_transition_init(&ws[i].op, refs[i], pays[i], to[i], STORE_SOURCE_BANK_REPLY,
                                                       NULL, NULL, i == 1 ? "declined" : NULL,
                                                       i == 1 ? "no" : NULL, a));
    assert_true(store_batch_refund_transition_init(&ws[3].op, "re_rm_none", "pay_rm_none",
                                                   PAGOFLEX_STATE_SUCCEEDED, STORE_SOURCE_BANK_REPLY, NULL, NULL,
                                                   NULL, NULL, a));
    for (int i = 0; i < 4; i++)
        submit(b, &ws[i]);
    release_writer(&first);
    wait_all(ws, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ws[i].op.rc, STORE_OK);
        assert_string_equal(ws[i].op.refund.id, refs[i]);
        assert_int_equal(ws[i].op.refund.state, to[i]);
    }
    assert_int_equal(ws[3].op.rc, STORE_NOT_FOUND);
    assert_int_equal(store_batch_statements(b) - s0, 1);
    assert_int_equal(pgtest_long(g_check, "SELECT amount_refunded FROM payments WHERE id = $1", "pay_rm_1"), 250);
    assert_int_equal(pgtest_long(g_check, "SELECT amount_refunded FROM payments WHERE id = $1", "pay_rm_2"), 0);
    assert_int_equal(pgtest_long(g_check, "SELECT amount_refunded FROM payments WHERE id = $1", "pay_rm_3"), 250);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT count(*) FROM refund_history WHERE refund_id LIKE $1 AND source = 'bank_reply'",
                                 "re_rm_%"),
                     3);
    store_batch_close(b);
    arena_free(a);
}

static int group_setup(void **unused)
{
    (void)unused;
    snprintf(g_db, sizeof g_db, "pf_batch_refund_%d", (int)getpid());
    if (pgtest_open(g_admin, g_db, 4, &g_conninfo, &g_store, &g_check) != 0)
        return -1;
    g_seen = PQconnectdb(g_conninfo);
    return PQstatus(g_seen) == CONNECTION_OK ? 0 : -1;
}

static int group_teardown(void **unused)
{
    (void)unused;
    PQfinish(g_seen);
    return pgtest_close(g_admin, g_db, g_conninfo, g_store, g_check);
}

int main(void)
{
    if (!(g_admin = pgtest_admin("test_store_batch_refund")))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refund_creates_share_a_commit_and_one_is_refused),
        cmocka_unit_test(test_refund_create_refusals_read_as_the_synchronous_call),
        cmocka_unit_test(test_refund_transitions_batched_with_a_payment_transition),
        cmocka_unit_test(test_refund_transitions_of_many_payments_share_a_statement),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
