/* Unit tests for group commit (host/store/store_batch.c) against a real
 * PostgreSQL: operations queued together commit in one transaction, each
 * callback fires only once its rows are visible to another session, a
 * batch with one failing write re-runs the others one by one, and a
 * connection lost in the middle of a batch gives every operation of it
 * "unavailable" (nothing half-written) while the next batch reconnects.
 * Writes of one kind share one multi-row statement (store_batch_multi.c),
 * each with its own answer; refund creates and answers are batched like
 * payment writes, and the database still refuses the refund that would
 * exceed what was received.
 *
 * The writer is held deterministically: a row lock taken by the test's own
 * session blocks the first statement of a batch, so everything submitted
 * meanwhile queues up and forms the next batch.
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
#include "store_batch_multi.h"
#include "store_flows.h"
#include "store_orphan.h"

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
    const char *id;        /* payment whose row the callback looks for */
    const char *refund_id; /* or refund */
    bool done;
    long visible; /* rows of `id` (or `refund_id`) another session saw when the callback ran */
} waiter;

/* Run `sql` on the check connection; fail the test on error. */
static void check_exec(const char *sql)
{
    pgtest_exec(g_check, sql);
}

static void on_done(void *arg)
{
    waiter *w = arg;
    pthread_mutex_lock(&g_mu);
    if (w->id)
        w->visible = pgtest_long(g_seen, "SELECT count(*) FROM payments WHERE id = $1", w->id);
    else if (w->refund_id)
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

static store_payment sample(const char *id)
{
    store_payment p = {.id = id,
                       .connector = "BANCO_X",
                       .amount = 1000,
                       .currency = "EUR",
                       .merchant_id = "mer_default",
                       .connector_account = "default"};
    return p;
}

static void submit_insert(store_batch *b, waiter *w, const char *id, pagoflex_arena *a)
{
    store_payment p = sample(id);
    memset(w, 0, sizeof *w);
    assert_true(store_batch_payment_insert_init(&w->op, &p, a));
    w->op.done = on_done;
    w->op.arg = w;
    w->id = id;
    assert_true(store_batch_submit(b, &w->op));
}

static void submit_transition(store_batch *b, waiter *w, const char *id, pagoflex_state to, const char *ref,
                              pagoflex_arena *a)
{
    memset(w, 0, sizeof *w);
    assert_true(
        store_batch_transition_init(&w->op, id, to, STORE_SOURCE_BANK_REPLY, NULL, ref, NULL, NULL, a));
    w->op.done = on_done;
    w->op.arg = w;
    assert_true(store_batch_submit(b, &w->op));
}

/* Wait until the batcher's session waits for a lock (it hit ours). Only
 * this test's database: ctest -j runs hosts with their own writers, named
 * alike, beside it on the same cluster. */
static void wait_writer_blocked(void)
{
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

static void make_payment(const char *id)
{
    pagoflex_arena *a = arena_new();
    store_payment p = sample(id), out;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    arena_free(a);
}

/* ---- refunds ---- */

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
static void make_payment_in(const char *id, const char *state)
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
    make_payment_in(lock_id, "created");
    char sql[128];
    pgtest_exec(g_check, "BEGIN");
    snprintf(sql, sizeof sql, "SELECT 1 FROM payments WHERE id = '%s' FOR UPDATE", lock_id);
    pgtest_exec(g_check, sql);
    memset(first, 0, sizeof *first);
    assert_true(store_batch_transition_init(&first->op, lock_id, PAGOFLEX_STATE_PENDING,
                                            STORE_SOURCE_BANK_REPLY, NULL, NULL, NULL, NULL, a));
    submit(b, first);
    wait_writer_blocked();
}

static void release_writer(waiter *first)
{
    pgtest_exec(g_check, "COMMIT");
    wait_all(first, 1);
    assert_int_equal(first->op.rc, STORE_OK);
}

/* Writes queued while the writer is busy share one transaction, and each
 * callback runs only once its row is committed (another session sees it). */
static void test_queued_writes_share_one_commit(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    assert_non_null(b);
    make_payment("pay_gc_lock1");
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_gc_lock1' FOR UPDATE");
    waiter first, ws[10];
    submit_transition(b, &first, "pay_gc_lock1", PAGOFLEX_STATE_PENDING, "tx_gc_lock1", a);
    wait_writer_blocked();
    char ids[10][32];
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "pay_gc_q%d", i);
        submit_insert(b, &ws[i], ids[i], a);
    }
    usleep(100 * 1000);
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < 10; i++)
        assert_false(ws[i].done); /* nothing answered before its commit */
    pthread_mutex_unlock(&g_mu);
    check_exec("COMMIT");
    wait_all(&first, 1);
    wait_all(ws, 10);
    assert_int_equal(first.op.rc, STORE_OK);
    assert_int_equal(first.op.row.state, PAGOFLEX_STATE_PENDING);
    assert_string_equal(first.op.row.provider_reference_id, "tx_gc_lock1");
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ws[i].op.rc, STORE_OK);
        assert_string_equal(ws[i].op.row.id, ids[i]);
        assert_int_equal(ws[i].op.row.state, PAGOFLEX_STATE_CREATED);
        assert_int_equal(ws[i].visible, 1);
    }
    assert_int_equal(
        pgtest_long(g_check, "SELECT count(*) FROM payment_history WHERE payment_id LIKE $1", "pay_gc_q%"),
        10);
    unsigned long commits, ops, reruns;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(ops, 11);
    assert_int_equal(commits, 2); /* the blocked one alone, then the ten together */
    assert_int_equal(reruns, 0);
    /* The blocked transition and its orphan check ahead, then one INSERT
     * statement for the ten. */
    assert_int_equal(store_batch_statements(b), 3);
    store_batch_close(b);
    arena_free(a);
}

/* One write of a batch fails (a duplicate id): the batch rolls back and the
 * others are run again one by one; each gets its own result. */
static void test_failing_write_reruns_the_rest_singly(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_gc_lock2");
    make_payment("pay_gc_dup");
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_gc_lock2' FOR UPDATE");
    waiter first, ws[5];
    submit_transition(b, &first, "pay_gc_lock2", PAGOFLEX_STATE_PENDING, NULL, a);
    wait_writer_blocked();
    const char *ids[5] = {"pay_gc_f0", "pay_gc_f1", "pay_gc_dup", "pay_gc_f3", "pay_gc_f4"};
    for (int i = 0; i < 5; i++)
        submit_insert(b, &ws[i], ids[i], a);
    check_exec("COMMIT");
    wait_all(&first, 1);
    wait_all(ws, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ws[i].op.rc, i == 2 ? STORE_DUPLICATE : STORE_OK);
        assert_int_equal(ws[i].visible, 1);
    }
    assert_int_equal(pgtest_long(g_check, "SELECT count(*) FROM payments WHERE id LIKE $1", "pay_gc_f%"), 4);
    /* The refused duplicate wrote no second history row for the existing payment. */
    assert_int_equal(
        pgtest_long(g_check, "SELECT count(*) FROM payment_history WHERE payment_id = $1", "pay_gc_dup"), 1);
    unsigned long commits, ops, reruns;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(reruns, 1);
    assert_int_equal(ops, 5); /* the blocked one + the four that committed */
    store_batch_close(b);
    arena_free(a);
}

/* The connection dies while a batch waits inside its transaction: every
 * operation of that batch is unavailable and none of its rows exist; the
 * next batch reconnects and commits. */
static void test_connection_lost_mid_batch(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_gc_lock3");
    make_payment("pay_gc_lock4");
    PGconn *other = PQconnectdb(g_conninfo);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    /* Lock 3 in our session holds the writer while the batch forms; lock 4
     * in another session then holds that batch in the middle. */
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_gc_lock3' FOR UPDATE");
    PQclear(PQexec(other, "BEGIN"));
    PQclear(PQexec(other, "SELECT 1 FROM payments WHERE id = 'pay_gc_lock4' FOR UPDATE"));
    waiter first, ws[3], after;
    submit_transition(b, &first, "pay_gc_lock3", PAGOFLEX_STATE_PENDING, NULL, a);
    wait_writer_blocked();
    submit_insert(b, &ws[0], "pay_gc_k0", a);
    submit_transition(b, &ws[1], "pay_gc_lock4", PAGOFLEX_STATE_PENDING, NULL, a); /* between k0, m9 */
    submit_insert(b, &ws[2], "pay_gc_m9", a);
    ws[1].id = NULL;
    check_exec("COMMIT");
    wait_all(&first, 1);
    assert_int_equal(first.op.rc, STORE_OK);
    wait_writer_blocked(); /* the batch of three, on lock 4, its first insert run */
    assert_int_equal(
        pgtest_long(g_check,
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'pagoflex-batch' AND datname = current_database()) t",
                    NULL),
        1);
    wait_all(ws, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ws[i].op.rc, STORE_UNAVAILABLE);
    PQclear(PQexec(other, "COMMIT"));
    PQfinish(other);
    assert_int_equal(
        pgtest_long(g_check,
                    "SELECT count(*) FROM payments WHERE id IN ('pay_gc_k0', 'pay_gc_m9') OR id = $1",
                    "pay_gc_none"),
        0);
    assert_int_equal(pgtest_long(g_check, "SELECT count(*) FROM payments WHERE id = $1 AND state = 'created'",
                                 "pay_gc_lock4"),
                     1);
    submit_insert(b, &after, "pay_gc_after", a);
    wait_all(&after, 1);
    assert_int_equal(after.op.rc, STORE_OK);
    assert_int_equal(after.visible, 1);
    store_batch_close(b);
    arena_free(a);
}

/* Webhooks in one batch: the same event twice is applied once (the second
 * is a duplicate); an event that stores a bank id for which an orphan event
 * waits says so, after its commit. */
static void test_webhooks_in_one_batch(void **unused)
{
    (void)unused;
    static const char body[] = "{\"event\":\"payment.updated\"}";
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_gc_lock5");
    make_payment("pay_gc_w1");
    make_payment("pay_gc_w2");
    pagoflex_webhook_event orphan = {
        .event_id = "evt_gc_orphan", .tx_id = "tx_gc_w2", .state = PAGOFLEX_STATE_SUCCEEDED};
    assert_int_equal(store_orphan_keep(g_store, "BANCO_X", "default", &orphan, (const unsigned char *)body,
                                       sizeof body - 1, a),
                     STORE_OK);
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_gc_lock5' FOR UPDATE");
    waiter first, ws[3];
    submit_transition(b, &first, "pay_gc_lock5", PAGOFLEX_STATE_PENDING, NULL, a);
    wait_writer_blocked();
    pagoflex_webhook_event ev1 = {.event_id = "evt_gc_1",
                                  .payment_id = "pay_gc_w1",
                                  .tx_id = "tx_gc_w1",
                                  .state = PAGOFLEX_STATE_SUCCEEDED};
    pagoflex_webhook_event ev2 = {.event_id = "evt_gc_2",
                                  .payment_id = "pay_gc_w2",
                                  .tx_id = "tx_gc_w2",
                                  .state = PAGOFLEX_STATE_PENDING};
    const pagoflex_webhook_event *evs[3] = {&ev1, &ev1, &ev2};
    for (int i = 0; i < 3; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        assert_true(store_batch_webhook_init(&ws[i].op, "BANCO_X", "default", evs[i],
                                             (const unsigned char *)body, sizeof body - 1, a));
        ws[i].op.done = on_done;
        ws[i].op.arg = &ws[i];
        assert_true(store_batch_submit(b, &ws[i].op));
    }
    check_exec("COMMIT");
    wait_all(&first, 1);
    wait_all(ws, 3);
    assert_int_equal(ws[0].op.rc, STORE_OK);
    assert_true(ws[0].op.applied);
    assert_int_equal(ws[0].op.row.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_false(ws[0].op.orphans_waiting);
    assert_int_equal(ws[1].op.rc, STORE_DUPLICATE);
    assert_int_equal(ws[2].op.rc, STORE_OK);
    assert_true(ws[2].op.orphans_waiting);
    assert_int_equal(
        pgtest_long(g_check, "SELECT count(*) FROM webhook_events WHERE event_id = $1", "evt_gc_1"), 1);
    unsigned long commits, ops, reruns;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(commits, 2);
    assert_int_equal(reruns, 0);
    /* evt_gc_1 with evt_gc_2 in one statement; its repeat clashes with it
     * and goes in a statement of its own, after it. */
    assert_int_equal(store_batch_statements(b), 2);
    /* The caller's part: apply what waited, as store_webhook_apply does. */
    int applied = 0;
    assert_int_equal(store_orphan_apply(g_store, "BANCO_X", "default", "tx_gc_w2", &applied), STORE_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT count(*) FROM payments WHERE id = $1 AND state = 'succeeded'",
                                 "pay_gc_w2"),
                     1);
    store_batch_close(b);
    arena_free(a);
}

/* A closing batcher refuses new work (the caller writes synchronously). */
/* A bank reply's transition and the look for webhook events that came
 * before the bank id was known go to the server together: one round trip,
 * not two (the look still reads after the commit: it finds an orphan). */
static void test_transition_and_orphan_check_share_a_round_trip(void **unused)
{
    (void)unused;
    static const char body[] = "{\"event\":\"payment.updated\"}";
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_rt_warm");
    make_payment("pay_rt_1");
    waiter warm, w;
    /* The first one prepares the writer's statements. */
    submit_transition(b, &warm, "pay_rt_warm", PAGOFLEX_STATE_PENDING, "tx_rt_warm", a);
    wait_all(&warm, 1);
    assert_int_equal(warm.op.rc, STORE_OK);
    assert_false(warm.op.orphans_waiting);
    pagoflex_webhook_event orphan = {
        .event_id = "evt_rt_orphan", .tx_id = "tx_rt_1", .state = PAGOFLEX_STATE_SUCCEEDED};
    assert_int_equal(store_orphan_keep(g_store, "BANCO_X", "default", &orphan, (const unsigned char *)body,
                                       sizeof body - 1, a),
                     STORE_OK);
    unsigned long before = store_batch_round_trips(b);
    submit_transition(b, &w, "pay_rt_1", PAGOFLEX_STATE_PENDING, "tx_rt_1", a);
    wait_all(&w, 1);
    assert_int_equal(w.op.rc, STORE_OK);
    assert_true(w.op.check_orphans);
    assert_true(w.op.orphans_waiting);
    assert_int_equal(store_batch_round_trips(b) - before, 1);
    store_batch_close(b);
    arena_free(a);
}

/* In a batch, each bank reply's transition gets its own answer from the
 * checks sent behind the COMMIT: the one whose bank id has an orphan waiting
 * is told so, the other is not. */
static void test_batched_transitions_check_ahead(void **unused)
{
    (void)unused;
    static const char body[] = "{\"event\":\"payment.updated\"}";
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_ca_lock");
    make_payment("pay_ca_1");
    make_payment("pay_ca_2");
    pagoflex_webhook_event orphan = {
        .event_id = "evt_ca_orphan", .tx_id = "tx_ca_2", .state = PAGOFLEX_STATE_SUCCEEDED};
    assert_int_equal(store_orphan_keep(g_store, "BANCO_X", "default", &orphan, (const unsigned char *)body,
                                       sizeof body - 1, a),
                     STORE_OK);
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_ca_lock' FOR UPDATE");
    waiter first, ws[2];
    submit_transition(b, &first, "pay_ca_lock", PAGOFLEX_STATE_PENDING, NULL, a);
    wait_writer_blocked();
    submit_transition(b, &ws[0], "pay_ca_1", PAGOFLEX_STATE_PENDING, "tx_ca_1", a);
    submit_transition(b, &ws[1], "pay_ca_2", PAGOFLEX_STATE_PENDING, "tx_ca_2", a);
    unsigned long commits_before, ops, reruns;
    store_batch_stats(b, &commits_before, &ops, &reruns);
    check_exec("COMMIT");
    wait_all(&first, 1);
    wait_all(ws, 2);
    unsigned long commits;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(commits - commits_before, 2); /* the locked one, then both together */
    assert_int_equal(reruns, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ws[i].op.rc, STORE_OK);
        assert_true(ws[i].op.check_orphans);
    }
    assert_false(ws[0].op.orphans_waiting);
    assert_true(ws[1].op.orphans_waiting);
    /* Both transitions in one statement, both checks in one. */
    assert_int_equal(store_batch_statements(b), 2);
    store_batch_close(b);
    arena_free(a);
}

static void submit_webhook(store_batch *b, waiter *w, const pagoflex_webhook_event *ev, pagoflex_arena *a)
{
    static const char body[] = "{\"event\":\"payment.updated\"}";
    memset(w, 0, sizeof *w);
    assert_true(
        store_batch_webhook_init(&w->op, "BANCO_X", "default", ev, (const unsigned char *)body, sizeof body - 1, a));
    w->op.done = on_done;
    w->op.arg = w;
    assert_true(store_batch_submit(b, &w->op));
}

/* Writes of one kind share one multi-row statement, each with its own
 * answer, in the same transaction: two writes to one payment go in two
 * statements, in the order they came, so both apply; an unknown payment
 * is not found; webhooks find payments by id and by bank id. */
static void test_multi_row_statements(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    const char *made[] = {"pay_mr_lock", "pay_mr_1", "pay_mr_2", "pay_mr_3", "pay_mr_4"};
    for (int i = 0; i < 5; i++)
        make_payment(made[i]);
    store_payment row;
    assert_int_equal(store_payment_transition_from(g_store, "pay_mr_3", PAGOFLEX_STATE_PENDING,
                                                   STORE_SOURCE_BANK_REPLY, NULL, "tx_mr_3", NULL, NULL, a, &row),
                     STORE_OK);
    assert_int_equal(store_payment_transition_from(g_store, "pay_mr_4", PAGOFLEX_STATE_PENDING,
                                                   STORE_SOURCE_BANK_REPLY, NULL, "tx_mr_4", NULL, NULL, a, &row),
                     STORE_OK);
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_mr_lock' FOR UPDATE");
    waiter first, ws[8];
    submit_transition(b, &first, "pay_mr_lock", PAGOFLEX_STATE_PENDING, NULL, a);
    wait_writer_blocked();
    unsigned long stmts_before = store_batch_statements(b);
    submit_transition(b, &ws[0], "pay_mr_1", PAGOFLEX_STATE_PENDING, "tx_mr_1", a);
    submit_transition(b, &ws[1], "pay_mr_1", PAGOFLEX_STATE_SUCCEEDED, NULL, a);
    submit_transition(b, &ws[2], "pay_mr_2", PAGOFLEX_STATE_PENDING, "tx_mr_2", a);
    submit_transition(b, &ws[3], "pay_mr_nosuch", PAGOFLEX_STATE_PENDING, NULL, a);
    pagoflex_webhook_event ev3 = {.event_id = "evt_mr_3", .tx_id = "tx_mr_3", .state = PAGOFLEX_STATE_SUCCEEDED};
    pagoflex_webhook_event ev4 = {.event_id = "evt_mr_4",
                                  .tx_id = "tx_mr_4",
                                  .state = PAGOFLEX_STATE_FAILED,
                                  .error_code = "card_declined",
                                  .error_message = "declined"};
    pagoflex_webhook_event ev5 = {
        .event_id = "evt_mr_5", .payment_id = "pay_mr_gone", .state = PAGOFLEX_STATE_SUCCEEDED};
    submit_webhook(b, &ws[4], &ev3, a);
    submit_webhook(b, &ws[5], &ev4, a);
    submit_webhook(b, &ws[6], &ev5, a);
    submit_insert(b, &ws[7], "pay_mr_new", a);
    for (int i = 0; i < 7; i++)
        ws[i].id = NULL;
    check_exec("COMMIT");
    wait_all(&first, 1);
    wait_all(ws, 8);
    assert_int_equal(ws[0].op.rc, STORE_OK);
    assert_int_equal(ws[0].op.row.state, PAGOFLEX_STATE_PENDING);
    assert_string_equal(ws[0].op.row.provider_reference_id, "tx_mr_1");
    assert_int_equal(ws[1].op.rc, STORE_OK);
    assert_int_equal(ws[1].op.row.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_string_equal(ws[1].op.row.id, "pay_mr_1");
    assert_int_equal(ws[2].op.rc, STORE_OK);
    assert_string_equal(ws[2].op.row.id, "pay_mr_2");
    assert_int_equal(ws[3].op.rc, STORE_NOT_FOUND);
    assert_int_equal(ws[4].op.rc, STORE_OK);
    assert_true(ws[4].op.applied);
    assert_string_equal(ws[4].op.row.id, "pay_mr_3");
    assert_int_equal(ws[4].op.row.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_int_equal(ws[5].op.rc, STORE_OK);
    assert_string_equal(ws[5].op.row.id, "pay_mr_4");
    assert_int_equal(ws[5].op.row.state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(ws[5].op.row.error_code, "card_declined");
    assert_int_equal(ws[6].op.rc, STORE_NOT_FOUND);
    assert_int_equal(ws[7].op.rc, STORE_OK);
    assert_int_equal(ws[7].visible, 1);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT count(*) FROM payment_history WHERE payment_id = $1"
                                 " AND to_state IN ('created', 'pending', 'succeeded')",
                                 "pay_mr_1"),
                     3);
    assert_int_equal(pgtest_long(g_check,
                                 "SELECT count(*) FROM payment_history WHERE payment_id = $1"
                                 " AND source = 'webhook' AND detail = 'evt_mr_4'",
                                 "pay_mr_4"),
                     1);
    assert_int_equal(pgtest_long(g_check, "SELECT count(*) FROM webhook_events WHERE event_id LIKE $1", "evt_mr_%"),
                     2);
    unsigned long commits, ops, reruns;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(reruns, 0);
    assert_int_equal(commits, 2); /* the locked one, then all eight together */
    /* Webhooks by bank id (3, 4): one; by id (the unknown one): one;
     * transitions 1, 2, nosuch: one; the second of pay_mr_1: one; the
     * insert: one; the orphan checks ahead of 1 and 2: one. */
    assert_int_equal(store_batch_statements(b) - stmts_before, 6);
    store_batch_close(b);
    arena_free(a);
}

/* A write whose text is not UTF-8 cannot travel in a multi-row statement's
 * JSON: the batch goes one statement per write, PostgreSQL refuses that
 * one, and the others of the batch are committed all the same. */
static void test_text_not_utf8_falls_back_to_single_statements(void **unused)
{
    (void)unused;
    static const unsigned char bad[] = {'{', '"', 0xC3, 0x28, '"', '}'};
    pagoflex_arena *a = arena_new();
    store_batch *b = store_batch_open(g_conninfo, 1, 64);
    make_payment("pay_u8_lock");
    make_payment("pay_u8_1");
    make_payment("pay_u8_2");
    check_exec("BEGIN");
    check_exec("SELECT 1 FROM payments WHERE id = 'pay_u8_lock' FOR UPDATE");
    waiter first, ws[2];
    submit_transition(b, &first, "pay_u8_lock", PAGOFLEX_STATE_PENDING, NULL, a);
    wait_writer_blocked();
    pagoflex_webhook_event ev1 = {
        .event_id = "evt_u8_1", .payment_id = "pay_u8_1", .state = PAGOFLEX_STATE_SUCCEEDED};
    pagoflex_webhook_event ev2 = {
        .event_id = "evt_u8_2", .payment_id = "pay_u8_2", .state = PAGOFLEX_STATE_SUCCEEDED};
    memset(&ws[0], 0, sizeof ws[0]);
    assert_true(store_batch_webhook_init(&ws[0].op, "BANCO_X", "default", &ev1, bad, sizeof bad, a));
    ws[0].op.done = on_done;
    ws[0].op.arg = &ws[0];
    assert_true(store_batch_submit(b, &ws[0].op));
    submit_webhook(b, &ws[1], &ev2, a);
    unsigned long stmts_before = store_batch_statements(b);
    check_exec("COMMIT");
    wait_all(&first, 1);
    wait_all(ws, 2);
    assert_int_equal(ws[0].op.rc, STORE_ERROR);
    assert_int_equal(ws[1].op.rc, STORE_OK);
    assert_true(ws[1].op.applied);
    assert_int_equal(
        pgtest_long(g_check, "SELECT count(*) FROM webhook_events WHERE event_id LIKE $1", "evt_u8_%"), 1);
    unsigned long commits, ops, reruns;
    store_batch_stats(b, &commits, &ops, &reruns);
    assert_int_equal(reruns, 1);
    assert_int_equal(store_batch_statements(b) - stmts_before, 2); /* one each, not one for both */
    store_batch_close(b);
    arena_free(a);
}

/* The plan a writer's connection makes for a multi-row statement while
 * the payments table is nearly empty (a new database) and then keeps finds
 * the payments by index once the table is large: no sequential scan of the
 * whole table for every batch. The statement and the connection settings
 * are the writer's own. */
static void test_multi_row_plan_made_on_a_small_table_stays_an_index_plan(void **unused)
{
    (void)unused;
    char db[64], *ci = NULL;
    store *st = NULL;
    PGconn *chk = NULL;
    snprintf(db, sizeof db, "pf_batch_plan_%d", (int)getpid());
    assert_int_equal(pgtest_open(g_admin, db, 1, &ci, &st, &chk), 0);
    pgtest_exec(chk, "ALTER TABLE payments SET (autovacuum_enabled = false)");
    PGconn *c = PQconnectdb(ci);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, store_batch_session_settings);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    pagoflex_arena *a = arena_new();
    store_batch_op ops[2];
    assert_true(store_batch_transition_init(&ops[0], "pay_pl_1", PAGOFLEX_STATE_PENDING, STORE_SOURCE_BANK_REPLY,
                                            NULL, "tx_pl_1", NULL, NULL, a));
    assert_true(store_batch_transition_init(&ops[1], "pay_pl_2", PAGOFLEX_STATE_PENDING, STORE_SOURCE_BANK_REPLY,
                                            NULL, "tx_pl_2", NULL, NULL, a));
    json_t *all = json_array();
    for (int k = 0; k < 2; k++)
        json_array_append_new(all, batch_multi_object(&ops[k], k));
    char *param = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    assert_non_null(param);
    r = PQprepare(c, "t", batch_multi_sql(&ops[0]), 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    /* Past the custom plans: the generic plan is made now, on a small table. */
    for (int i = 0; i < 7; i++) {
        PQclear(PQexec(c, "BEGIN"));
        r = PQexecPrepared(c, "t", 1, (const char *const *)&param, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
    }
    pgtest_exec(chk, "INSERT INTO payments (id, connector, amount, currency, state, capture_method, merchant_id,"
                     " connector_account) SELECT 'pay_pl_' || g, 'BANCO_X', 1000, 'EUR', 'created', 'automatic',"
                     " 'mer_default', 'default' FROM generate_series(1, 50000) g");
    char *lit = PQescapeLiteral(c, param, strlen(param));
    char sql[4096];
    snprintf(sql, sizeof sql, "EXPLAIN (COSTS OFF) EXECUTE t(%s)", lit);
    PQfreemem(lit);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    bool seq = false, pkey = false;
    for (int i = 0; i < PQntuples(r); i++) {
        seq |= strstr(PQgetvalue(r, i, 0), "Seq Scan on payments") != NULL;
        pkey |= strstr(PQgetvalue(r, i, 0), "Index Scan using payments_pkey") != NULL;
    }
    PQclear(r);
    assert_false(seq);
    assert_true(pkey);
    free(param);
    arena_free(a);
    PQfinish(c);
    pgtest_close(g_admin, db, ci, st, chk);
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
    make_payment_in("pay_rf_1", "succeeded");
    make_payment_in("pay_rf_2", "succeeded");
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
    make_payment_in("pay_rf_3", "succeeded");
    make_payment_in("pay_rf_4", "pending");
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
    make_payment_in("pay_rt_a", "succeeded");
    make_payment_in("pay_rt_b", "created");
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
        make_payment_in(pays[i], "succeeded");
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

static void test_closed_batcher_refuses(void **unused)
{
    (void)unused;
    store_batch *b = store_batch_open(g_conninfo, 2, 8);
    assert_non_null(b);
    store_batch_close(b);
    assert_false(store_batch_submit(NULL, NULL));
}

static int group_setup(void **unused)
{
    (void)unused;
    snprintf(g_db, sizeof g_db, "pf_batch_%d", (int)getpid());
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
    if (!(g_admin = pgtest_admin("test_store_batch")))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_writes_share_one_commit),
        cmocka_unit_test(test_failing_write_reruns_the_rest_singly),
        cmocka_unit_test(test_connection_lost_mid_batch),
        cmocka_unit_test(test_webhooks_in_one_batch),
        cmocka_unit_test(test_transition_and_orphan_check_share_a_round_trip),
        cmocka_unit_test(test_batched_transitions_check_ahead),
        cmocka_unit_test(test_multi_row_statements),
        cmocka_unit_test(test_text_not_utf8_falls_back_to_single_statements),
        cmocka_unit_test(test_multi_row_plan_made_on_a_small_table_stays_an_index_plan),
        cmocka_unit_test(test_refund_creates_share_a_commit_and_one_is_refused),
        cmocka_unit_test(test_refund_create_refusals_read_as_the_synchronous_call),
        cmocka_unit_test(test_refund_transitions_batched_with_a_payment_transition),
        cmocka_unit_test(test_refund_transitions_of_many_payments_share_a_statement),
        cmocka_unit_test(test_closed_batcher_refuses),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
