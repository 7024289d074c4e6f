/* Unit tests for the PostgreSQL store (host/store.c) against a real server.
 *
 * PAGOFLEX_PG holds a conninfo to a server where we may create databases
 * (scripts/test sets it). Each run creates pf_store_<pid> (and a second,
 * empty one for the concurrent-migration test) and drops them at the end.
 * Without PAGOFLEX_PG the program exits 77 (skipped).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "apikey.h"
#include "arena.h"
#include "payment.h"
#include "store.h"
#include "store_accounts.h"
#include "store_flows.h"
#include "store_idem.h"
#include "store_list.h"
#include "store_janitor.h"
#include "store_merchant.h"
#include "store_orphan.h"
#include "pgtest.h"
#include "store_migrations.h"

#define ST(x) PAGOFLEX_STATE_##x
#define CONNECTOR "BANCO_X"
#define RACERS 8

static const char *g_admin;     /* PAGOFLEX_PG */
static char g_db[64];           /* pf_store_<pid> */
static char g_fresh_db[80];     /* pf_store_<pid>_fresh: never migrated before its test */
static char *g_conninfo;        /* g_admin with dbname=g_db */
static char *g_fresh_conninfo;
static store *g_store;          /* pool of RACERS connections on g_db, migrated */
static PGconn *g_check;         /* direct connection to g_db for counting rows */

/* ---- helpers ------------------------------------------------------------ */

/* admin_exec(sql): a command as the admin of PAGOFLEX_PG (pgtest.c). */
static bool admin_exec(const char *sql)
{
    return pgtest_admin_exec(g_admin, sql);
}

/* Integer result of a one-parameter query on the test database; -1 on error. */
static long count_rows(const char *sql, const char *param)
{
    return pgtest_long(g_check, sql, param);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static store_payment sample(const char *id, int64_t amount, const char *currency)
{
    store_payment p = {.id = id, .connector = CONNECTOR, .amount = amount, .currency = currency,
                       .reference = "order-42", .description = "two books",
                       .merchant_id = "mer_default", .connector_account = "default"};
    return p;
}

/* Insert payment `id` (1000 EUR) and assert it worked. */
static void make_payment(const char *id)
{
    pagoflex_arena *a = arena_new();
    store_payment p = sample(id, 1000, "EUR"), out;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    arena_free(a);
}

static void move(const char *id, pagoflex_state to, const char *ref)
{
    pagoflex_arena *a = arena_new();
    store_payment out;
    assert_int_equal(store_payment_transition(g_store, id, to, ref, NULL, NULL, a, &out), STORE_OK);
    arena_free(a);
}

static pagoflex_state state_of(const char *id)
{
    pagoflex_arena *a = arena_new();
    store_payment out;
    assert_int_equal(store_payment_get(g_store, id, a, &out), STORE_OK);
    pagoflex_state st = out.state;
    arena_free(a);
    return st;
}

static bool is_rfc3339_ms(const char *s)
{
    regex_t re;
    regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
            REG_EXTENDED | REG_NOSUB);
    bool ok = s && regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static pagoflex_webhook_event event(const char *event_id, const char *payment_id,
                                    const char *tx_id, pagoflex_state state)
{
    pagoflex_webhook_event ev = {.event_id = event_id, .payment_id = payment_id,
                                 .tx_id = tx_id, .state = state};
    return ev;
}

static store_result apply(const pagoflex_webhook_event *ev, store_payment *out, bool *applied)
{
    static const char body[] = "{\"event\":\"payment.updated\"}";
    pagoflex_arena *a = arena_new();
    store_payment row = {0};
    store_result rc = store_webhook_apply(g_store, CONNECTOR, "default", ev, (const unsigned char *)body,
                                          sizeof body - 1, a, &row, applied);
    if (out) {
        /* The arena goes away: keep what the tests look at. */
        out->state = row.state;
        out->provider_reference_id = row.provider_reference_id ? "set" : NULL;
    }
    arena_free(a);
    return rc;
}

/* A loopback TCP port with a listener that never answers (backlog only), or
 * with nothing listening when `listen_too` is false. */
static int loopback_port(bool listen_too, int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    if (listen_too) {
        assert_int_equal(listen(fd, 16), 0);
        *fd_out = fd;
    } else {
        close(fd);
    }
    return ntohs(sa.sin_port);
}

/* ---- migrations ---------------------------------------------------------- */

static void test_migrate_twice(void **unused)
{
    (void)unused;
    char err[256] = "";
    size_t n = 0;
    store_migrations(&n);
    /* The group setup migrated once already. */
    assert_int_equal(store_migrate(g_store, err, sizeof err), STORE_OK);
    assert_int_equal(store_migrate(g_store, err, sizeof err), STORE_OK);
    assert_int_equal(count_rows("SELECT count(*) FROM schema_migrations", NULL), (long)n);
}

struct migrate_arg {
    pthread_barrier_t *start;
    store_result rc;
    char err[256];
};

static void *migrate_thread(void *p)
{
    struct migrate_arg *arg = p;
    store *s = store_open(g_fresh_conninfo, 1); /* a host of its own */
    pthread_barrier_wait(arg->start);
    arg->rc = s ? store_migrate(s, arg->err, sizeof arg->err) : STORE_ERROR;
    store_close(s);
    return NULL;
}

static void test_migrate_concurrent_fresh(void **unused)
{
    (void)unused;
    pthread_barrier_t start;
    pthread_t t[2];
    struct migrate_arg arg[2] = {{.start = &start}, {.start = &start}};
    size_t n = 0;
    store_migrations(&n);
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &arg[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++) {
        if (arg[i].rc != STORE_OK)
            fprintf(stderr, "migrate %d: %s\n", i, arg[i].err);
        assert_int_equal(arg[i].rc, STORE_OK);
    }
    PGconn *c = PQconnectdb(g_fresh_conninfo);
    PGresult *r = PQexec(c, "SELECT count(*), (SELECT count(*) FROM payments) FROM schema_migrations");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atol(PQgetvalue(r, 0, 0)), (long)n);
    assert_int_equal(atol(PQgetvalue(r, 0, 1)), 0);
    PQclear(r);
    PQfinish(c);
}

/* Branches add migrations in parallel (5 on one, 6 on another): a database
 * migrated by one has a gap the merged build must fill, below a newer
 * version, without touching what is there. */
static void test_migrate_fills_a_gap_below_a_newer_version(void **unused)
{
    (void)unused;
    char err[256] = "";
    /* Version 10 replaced version 4's index (payments_reference) with
     * (merchant_id, reference): forgetting version 4 is enough. */
    PGresult *r = PQexec(g_check, "DELETE FROM schema_migrations WHERE version = 4");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_true(count_rows("SELECT max(version) FROM schema_migrations", NULL) > 4);
    assert_int_equal(store_migrate(g_store, err, sizeof err), STORE_OK);
    assert_int_equal(count_rows("SELECT count(*) FROM schema_migrations WHERE version = 4", NULL), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM pg_indexes WHERE indexname = 'payments_reference'",
                                NULL), 1);
    r = PQexec(g_check, "DROP INDEX payments_reference"); /* the schema as version 10 left it */
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
}

/* ---- payments ------------------------------------------------------------ */

static void test_insert_get(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment p = sample("pay_ins_1", 1999, "EUR"), out, got;
    p.state = ST(SUCCEEDED); /* ignored: a new payment is always created */
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    assert_string_equal(out.id, "pay_ins_1");
    assert_string_equal(out.connector, CONNECTOR);
    assert_int_equal(out.amount, 1999);
    assert_string_equal(out.currency, "EUR");
    assert_int_equal(out.state, ST(CREATED));
    assert_string_equal(out.reference, "order-42");
    assert_string_equal(out.description, "two books");
    assert_null(out.provider_reference_id);
    assert_null(out.error_code);
    assert_true(is_rfc3339_ms(out.created_at));
    assert_true(is_rfc3339_ms(out.updated_at));

    assert_int_equal(store_payment_get(g_store, "pay_ins_1", a, &got), STORE_OK);
    assert_string_equal(got.id, out.id);
    assert_int_equal(got.amount, 1999);
    assert_string_equal(got.created_at, out.created_at);

    store_payment untouched = {.id = "sentinel"};
    assert_int_equal(store_payment_get(g_store, "pay_nope", a, &untouched), STORE_NOT_FOUND);
    assert_string_equal(untouched.id, "sentinel");

    /* NULL optional fields stay NULL; a large amount survives. */
    store_payment q = {.id = "pay_ins_2", .connector = CONNECTOR, .amount = INT64_MAX,
                       .currency = "JPY", .merchant_id = "mer_default", .connector_account = "default"};
    assert_int_equal(store_payment_insert(g_store, &q, a, &out), STORE_OK);
    assert_null(out.reference);
    assert_null(out.description);
    assert_true(out.amount == INT64_MAX);
    arena_free(a);
}

static void test_insert_duplicate(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment p = sample("pay_dup", 500, "USD"), out;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    p.amount = 700;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_DUPLICATE);
    assert_int_equal(store_payment_get(g_store, "pay_dup", a, &out), STORE_OK);
    assert_int_equal(out.amount, 500);
    assert_int_equal(count_rows("SELECT count(*) FROM payment_history WHERE payment_id = $1",
                                "pay_dup"),
                     1);
    arena_free(a);
}

static void test_insert_check_refused(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out = {.id = "sentinel"};
    store_payment zero = sample("pay_chk_zero", 0, "EUR");
    store_payment neg = sample("pay_chk_neg", -5, "EUR");
    store_payment lower = sample("pay_chk_cur", 100, "eur");
    store_payment longc = sample("pay_chk_cur2", 100, "EURO");
    assert_int_equal(store_payment_insert(g_store, &zero, a, &out), STORE_ERROR);
    assert_int_equal(store_payment_insert(g_store, &neg, a, &out), STORE_ERROR);
    assert_int_equal(store_payment_insert(g_store, &lower, a, &out), STORE_ERROR);
    assert_int_equal(store_payment_insert(g_store, &longc, a, &out), STORE_ERROR);
    assert_string_equal(out.id, "sentinel");
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id LIKE $1", "pay_chk%"), 0);
    assert_int_equal(
        count_rows("SELECT count(*) FROM payment_history WHERE payment_id LIKE $1", "pay_chk%"), 0);
    /* The pool is still usable after refused statements. */
    assert_true(store_ping(g_store));
    arena_free(a);
}

static void test_transitions(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out;
    make_payment("pay_tr");
    assert_int_equal(store_payment_transition(g_store, "pay_tr", ST(PROCESSING), NULL, NULL, NULL,
                                              a, &out),
                     STORE_OK);
    assert_int_equal(out.state, ST(PROCESSING));
    /* canceled is never entered from processing: refused, row as it is. */
    assert_int_equal(store_payment_transition(g_store, "pay_tr", ST(CANCELED), NULL, NULL, NULL,
                                              a, &out),
                     STORE_CONFLICT);
    assert_int_equal(out.state, ST(PROCESSING));
    assert_string_equal(out.id, "pay_tr");
    assert_int_equal(store_payment_transition(g_store, "pay_tr", ST(SUCCEEDED), "TX-TR", NULL,
                                              NULL, a, &out),
                     STORE_OK);
    assert_int_equal(out.state, ST(SUCCEEDED));
    assert_string_equal(out.provider_reference_id, "TX-TR");
    /* Terminal never regresses, whatever the target. */
    for (int to = 0; to < 7; to++) {
        store_payment cur;
        assert_int_equal(store_payment_transition(g_store, "pay_tr", (pagoflex_state)to, NULL,
                                                  "x", "y", a, &cur),
                         STORE_CONFLICT);
        assert_int_equal(cur.state, ST(SUCCEEDED));
        assert_null(cur.error_code);
    }
    assert_int_equal(state_of("pay_tr"), ST(SUCCEEDED));
    /* Refusals write no history: created, processing, succeeded. */
    assert_int_equal(
        count_rows("SELECT count(*) FROM payment_history WHERE payment_id = $1", "pay_tr"), 3);

    store_payment untouched = {.id = "sentinel"};
    assert_int_equal(store_payment_transition(g_store, "pay_missing", ST(PENDING), NULL, NULL,
                                              NULL, a, &untouched),
                     STORE_NOT_FOUND);
    assert_string_equal(untouched.id, "sentinel");
    arena_free(a);
}

static void test_transition_error_fields(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out;
    make_payment("pay_err");
    assert_int_equal(store_payment_transition_from(g_store, "pay_err", ST(PROCESSING),
                                                   STORE_SOURCE_BANK_REPLY, NULL, NULL,
                                                   "bank_unavailable", "no answer in 10 s", a,
                                                   &out),
                     STORE_OK);
    assert_string_equal(out.error_code, "bank_unavailable");
    /* Kept while the payment is not resolved. */
    move("pay_err", ST(PENDING), NULL);
    assert_int_equal(store_payment_get(g_store, "pay_err", a, &out), STORE_OK);
    assert_string_equal(out.error_code, "bank_unavailable");
    assert_string_equal(out.error_message, "no answer in 10 s");
    /* Failed sets its own. */
    assert_int_equal(store_payment_transition(g_store, "pay_err", ST(FAILED), NULL,
                                              "card_declined", "insufficient funds", a, &out),
                     STORE_OK);
    assert_string_equal(out.error_code, "card_declined");
    assert_string_equal(out.error_message, "insufficient funds");

    /* Succeeded clears them. */
    make_payment("pay_err_ok");
    assert_int_equal(store_payment_transition(g_store, "pay_err_ok", ST(PROCESSING), NULL,
                                              "bank_unavailable", "timeout", a, &out),
                     STORE_OK);
    move("pay_err_ok", ST(SUCCEEDED), NULL);
    assert_int_equal(store_payment_get(g_store, "pay_err_ok", a, &out), STORE_OK);
    assert_null(out.error_code);
    assert_null(out.error_message);
    arena_free(a);
}

static void test_provider_ref_kept_on_conflict(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out;
    /* The webhook won the race and carried no tx id; the bank's reply comes
     * later with one: refused, but the id is recorded. */
    make_payment("pay_ref");
    move("pay_ref", ST(SUCCEEDED), NULL);
    assert_int_equal(store_payment_transition_from(g_store, "pay_ref", ST(PENDING),
                                                   STORE_SOURCE_BANK_REPLY, NULL, "TX-LATE", NULL,
                                                   NULL, a, &out),
                     STORE_CONFLICT);
    assert_int_equal(out.state, ST(SUCCEEDED));
    assert_string_equal(out.provider_reference_id, "TX-LATE");
    assert_int_equal(store_payment_get(g_store, "pay_ref", a, &out), STORE_OK);
    assert_string_equal(out.provider_reference_id, "TX-LATE");
    /* An id already stored is never replaced. */
    assert_int_equal(store_payment_transition(g_store, "pay_ref", ST(PENDING), "TX-OTHER", NULL,
                                              NULL, a, &out),
                     STORE_CONFLICT);
    assert_string_equal(out.provider_reference_id, "TX-LATE");
    make_payment("pay_ref2");
    move("pay_ref2", ST(PROCESSING), "TX-FIRST");
    move("pay_ref2", ST(PENDING), "TX-SECOND");
    assert_int_equal(store_payment_get(g_store, "pay_ref2", a, &out), STORE_OK);
    assert_string_equal(out.provider_reference_id, "TX-FIRST");
    arena_free(a);
}

/* ---- webhooks ------------------------------------------------------------ */

static void test_webhook_applied_and_duplicate(void **unused)
{
    (void)unused;
    store_payment out;
    bool applied = false;
    make_payment("pay_wh");
    move("pay_wh", ST(PENDING), NULL);
    pagoflex_webhook_event ev = event("evt_wh_1", "pay_wh", "TX-WH", ST(SUCCEEDED));
    assert_int_equal(apply(&ev, &out, &applied), STORE_OK);
    assert_true(applied);
    assert_int_equal(out.state, ST(SUCCEEDED));
    assert_non_null(out.provider_reference_id);
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE event_id = $1 AND "
                                "applied AND payment_id = 'pay_wh' AND tx_id = 'TX-WH' AND "
                                "state = 'succeeded' AND body LIKE '{%'",
                                "evt_wh_1"),
                     1);
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id = $1 AND "
                                "provider_reference_id = 'TX-WH'",
                                "pay_wh"),
                     1);

    /* The same event again: nothing changes. */
    applied = true;
    pagoflex_webhook_event again = event("evt_wh_1", "pay_wh", "TX-WH", ST(FAILED));
    assert_int_equal(apply(&again, &out, &applied), STORE_DUPLICATE);
    assert_int_equal(out.state, ST(SUCCEEDED));
    assert_int_equal(state_of("pay_wh"), ST(SUCCEEDED));
    assert_int_equal(
        count_rows("SELECT count(*) FROM webhook_events WHERE event_id = $1", "evt_wh_1"), 1);

    /* A new event the state machine refuses: stored, not applied. */
    pagoflex_webhook_event late = event("evt_wh_2", "pay_wh", "TX-WH", ST(FAILED));
    applied = true;
    assert_int_equal(apply(&late, &out, &applied), STORE_OK);
    assert_false(applied);
    assert_int_equal(out.state, ST(SUCCEEDED));
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE event_id = $1 AND "
                                "NOT applied",
                                "evt_wh_2"),
                     1);

    /* A redelivered event that the current state would now allow still
     * changes nothing: requires_action, then pending, then the first again. */
    make_payment("pay_wh_redo");
    pagoflex_webhook_event act = event("evt_wh_3", "pay_wh_redo", NULL, ST(REQUIRES_ACTION));
    assert_int_equal(apply(&act, &out, &applied), STORE_OK);
    assert_true(applied);
    move("pay_wh_redo", ST(PENDING), NULL);
    assert_int_equal(apply(&act, &out, &applied), STORE_DUPLICATE);
    assert_int_equal(out.state, ST(PENDING));
    assert_int_equal(state_of("pay_wh_redo"), ST(PENDING));
}

static void test_webhook_unknown_payment(void **unused)
{
    (void)unused;
    store_payment out = {.id = "sentinel"};
    bool applied = true;
    pagoflex_webhook_event by_id = event("evt_unk_1", "pay_unknown", "TX-UNK", ST(SUCCEEDED));
    pagoflex_webhook_event by_tx = event("evt_unk_2", NULL, "TX-UNK", ST(SUCCEEDED));
    pagoflex_webhook_event neither = event("evt_unk_3", NULL, NULL, ST(SUCCEEDED));
    assert_int_equal(apply(&by_id, &out, &applied), STORE_NOT_FOUND);
    assert_int_equal(apply(&by_tx, &out, &applied), STORE_NOT_FOUND);
    assert_int_equal(apply(&neither, &out, &applied), STORE_NOT_FOUND);
    assert_true(applied);
    /* Another connector's payment is not found either. */
    make_payment("pay_other_bank");
    pagoflex_arena *a = arena_new();
    store_payment row;
    pagoflex_webhook_event foreign = event("evt_unk_4", "pay_other_bank", NULL, ST(FAILED));
    assert_int_equal(store_webhook_apply(g_store, "BANCO_Y", "default", &foreign, NULL, 0, a, &row, &applied),
                     STORE_NOT_FOUND);
    arena_free(a);
    assert_int_equal(state_of("pay_other_bank"), ST(CREATED));
    assert_int_equal(
        count_rows("SELECT count(*) FROM webhook_events WHERE event_id LIKE $1", "evt_unk%"), 0);
}

static void test_webhook_by_tx_id(void **unused)
{
    (void)unused;
    store_payment out;
    bool applied = false;
    make_payment("pay_tx");
    move("pay_tx", ST(PENDING), "TX-LOOKUP");
    pagoflex_webhook_event ev = event("evt_tx_1", NULL, "TX-LOOKUP", ST(FAILED));
    ev.error_code = "card_declined";
    ev.error_message = "do not honour";
    assert_int_equal(apply(&ev, &out, &applied), STORE_OK);
    assert_true(applied);
    assert_int_equal(out.state, ST(FAILED));
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id = $1 AND "
                                "error_code = 'card_declined' AND error_message = 'do not honour'",
                                "pay_tx"),
                     1);
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE event_id = $1 AND "
                                "payment_id = 'pay_tx'",
                                "evt_tx_1"),
                     1);
}

struct racer {
    pthread_barrier_t *start;
    pagoflex_webhook_event ev;
    store *api; /* if set: store_payment_transition(ev.payment_id, ev.state) on it */
    store_result rc;
    bool applied;
};

static void *race_thread(void *p)
{
    struct racer *r = p;
    store_payment out;
    pthread_barrier_wait(r->start);
    if (r->api) {
        pagoflex_arena *a = arena_new();
        r->rc = store_payment_transition(r->api, r->ev.payment_id, r->ev.state, NULL, NULL, NULL,
                                         a, &out);
        r->applied = r->rc == STORE_OK;
        /* The row handed back is the one this call saw win or lose against. */
        if (r->rc == STORE_CONFLICT && !payment_state_terminal(out.state))
            r->rc = STORE_ERROR;
        arena_free(a);
    } else {
        r->rc = apply(&r->ev, &out, &r->applied);
    }
    return NULL;
}

/* Start `n` racers at once and wait for all. */
static void race(struct racer *r, int n)
{
    pthread_barrier_t start;
    pthread_t t[RACERS];
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        r[i].start = &start;
        r[i].applied = false;
        assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
}

static void test_webhook_race_same_event(void **unused)
{
    (void)unused;
    for (int round = 0; round < 5; round++) {
        char id[32], evid[32];
        snprintf(id, sizeof id, "pay_race_%d", round);
        snprintf(evid, sizeof evid, "evt_race_%d", round);
        make_payment(id);
        char tx[32]; /* one per round: (connector, provider ref) is unique */
        snprintf(tx, sizeof tx, "TX-RACE-%d", round);
        struct racer r[RACERS] = {0};
        for (int i = 0; i < RACERS; i++)
            r[i].ev = event(evid, id, tx, ST(SUCCEEDED));
        race(r, RACERS);
        int ok = 0, dup = 0, applied = 0;
        for (int i = 0; i < RACERS; i++) {
            ok += r[i].rc == STORE_OK;
            dup += r[i].rc == STORE_DUPLICATE;
            applied += r[i].rc == STORE_OK && r[i].applied;
        }
        assert_int_equal(ok, 1);
        assert_int_equal(applied, 1);
        assert_int_equal(dup, RACERS - 1);
        assert_int_equal(state_of(id), ST(SUCCEEDED));
        assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE event_id = $1",
                                    evid),
                         1);
        assert_int_equal(count_rows("SELECT count(*) FROM payment_history WHERE payment_id = $1 "
                                    "AND source = 'webhook'",
                                    id),
                         1);
    }
}

static void test_webhook_race_conflicting_events(void **unused)
{
    (void)unused;
    for (int round = 0; round < 10; round++) {
        char id[32], ok_id[32], ko_id[32];
        snprintf(id, sizeof id, "pay_clash_%d", round);
        snprintf(ok_id, sizeof ok_id, "evt_clash_ok_%d", round);
        snprintf(ko_id, sizeof ko_id, "evt_clash_ko_%d", round);
        make_payment(id);
        move(id, ST(PENDING), NULL);
        struct racer r[2] = {0};
        r[0].ev = event(ok_id, id, NULL, ST(SUCCEEDED));
        r[1].ev = event(ko_id, id, NULL, ST(FAILED));
        race(r, 2);
        assert_int_equal(r[0].rc, STORE_OK);
        assert_int_equal(r[1].rc, STORE_OK);
        assert_true(r[0].applied != r[1].applied);
        assert_int_equal(state_of(id), r[0].applied ? ST(SUCCEEDED) : ST(FAILED));
        assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE payment_id = $1",
                                    id),
                         2);
        assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE payment_id = $1 "
                                    "AND applied",
                                    id),
                         1);
        assert_int_equal(count_rows("SELECT count(*) FROM payment_history WHERE payment_id = $1 "
                                    "AND source = 'webhook'",
                                    id),
                         1);
    }
}

static void test_transition_race(void **unused)
{
    (void)unused;
    /* Two connections for eight callers: callers also queue for the pool. */
    store *s = store_open(g_conninfo, 2);
    assert_non_null(s);
    for (int round = 0; round < 5; round++) {
        char id[32];
        snprintf(id, sizeof id, "pay_api_race_%d", round);
        make_payment(id);
        move(id, ST(PENDING), NULL);
        struct racer r[RACERS] = {0};
        for (int i = 0; i < RACERS; i++) {
            r[i].ev = event("unused", id, NULL, i % 2 ? ST(FAILED) : ST(SUCCEEDED));
            r[i].api = s;
        }
        race(r, RACERS);
        int ok = 0, conflict = 0, winner = -1;
        for (int i = 0; i < RACERS; i++) {
            ok += r[i].rc == STORE_OK;
            conflict += r[i].rc == STORE_CONFLICT;
            if (r[i].rc == STORE_OK)
                winner = i;
        }
        assert_int_equal(ok, 1);
        assert_int_equal(conflict, RACERS - 1);
        assert_int_equal(state_of(id), r[winner].ev.state);
        assert_int_equal(count_rows("SELECT count(*) FROM payment_history WHERE payment_id = $1 "
                                    "AND from_state = 'pending'",
                                    id),
                         1);
    }
    store_close(s);
}

/* ---- history ------------------------------------------------------------- */

static void test_history(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out;
    store_history_entry *h = NULL;
    size_t n = 0;
    bool applied = false;
    make_payment("pay_hist");
    assert_int_equal(store_payment_transition_from(g_store, "pay_hist", ST(PROCESSING),
                                                   STORE_SOURCE_BANK_REPLY, "http 503", NULL,
                                                   "bank_unavailable", NULL, a, &out),
                     STORE_OK);
    move("pay_hist", ST(PENDING), "TX-HIST");
    /* Refused: no history row. */
    assert_int_equal(store_payment_transition(g_store, "pay_hist", ST(CREATED), NULL, NULL, NULL,
                                              a, &out),
                     STORE_CONFLICT);
    pagoflex_webhook_event ev = event("evt_hist", NULL, "TX-HIST", ST(SUCCEEDED));
    assert_int_equal(apply(&ev, NULL, &applied), STORE_OK);
    assert_true(applied);

    assert_int_equal(store_payment_history(g_store, "pay_hist", a, &h, &n), STORE_OK);
    assert_int_equal(n, 4);
    assert_int_equal(h[0].from_state, -1);
    assert_int_equal(h[0].to_state, ST(CREATED));
    assert_string_equal(h[0].source, "api");
    assert_int_equal(h[1].from_state, ST(CREATED));
    assert_int_equal(h[1].to_state, ST(PROCESSING));
    assert_string_equal(h[1].source, "bank_reply");
    assert_string_equal(h[1].detail, "http 503");
    assert_int_equal(h[2].from_state, ST(PROCESSING));
    assert_int_equal(h[2].to_state, ST(PENDING));
    assert_string_equal(h[2].source, "api");
    assert_null(h[2].detail);
    assert_int_equal(h[3].from_state, ST(PENDING));
    assert_int_equal(h[3].to_state, ST(SUCCEEDED));
    assert_string_equal(h[3].source, "webhook");
    assert_string_equal(h[3].detail, "evt_hist");
    for (size_t i = 0; i < n; i++)
        assert_true(is_rfc3339_ms(h[i].at));

    store_history_entry *untouched = (store_history_entry *)&n;
    assert_int_equal(store_payment_history(g_store, "pay_nohist", a, &untouched, &n),
                     STORE_NOT_FOUND);
    assert_ptr_equal(untouched, &n);
    arena_free(a);
}

/* ---- availability --------------------------------------------------------- */

static void test_unavailable_refused(void **unused)
{
    (void)unused;
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres dbname=postgres",
             loopback_port(false, NULL));
    store *s = store_open(conninfo, 2);
    assert_non_null(s);
    pagoflex_arena *a = arena_new();
    store_payment out = {.id = "sentinel"}, p = sample("pay_down", 100, "EUR");
    bool applied = false;
    pagoflex_webhook_event ev = event("evt_down", "pay_down", NULL, ST(SUCCEEDED));
    char err[128] = "";
    double t0 = now_s();
    assert_false(store_ping(s));
    assert_int_equal(store_migrate(s, err, sizeof err), STORE_UNAVAILABLE);
    assert_true(err[0] != '\0');
    assert_int_equal(store_payment_insert(s, &p, a, &out), STORE_UNAVAILABLE);
    assert_int_equal(store_payment_get(s, "pay_down", a, &out), STORE_UNAVAILABLE);
    assert_int_equal(store_payment_transition(s, "pay_down", ST(PENDING), NULL, NULL, NULL, a,
                                              &out),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_webhook_apply(s, CONNECTOR, "default", &ev, NULL, 0, a, &out, &applied),
                     STORE_UNAVAILABLE);
    assert_string_equal(out.id, "sentinel");
    assert_true(now_s() - t0 < 3.0);
    arena_free(a);
    store_close(s);
}

static void test_unavailable_hung_server(void **unused)
{
    (void)unused;
    /* Accepts TCP connections (backlog) but never speaks: connect_timeout. */
    int fd = -1;
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres dbname=postgres",
             loopback_port(true, &fd));
    store *s = store_open(conninfo, 1);
    double t0 = now_s();
    assert_false(store_ping(s));
    assert_true(now_s() - t0 < 3.0);
    store_close(s);
    close(fd);
}

static void test_reconnect_after_termination(void **unused)
{
    (void)unused;
    char *conninfo = malloc(strlen(g_conninfo) + 64);
    sprintf(conninfo, "%s application_name=pf_reconnect", g_conninfo);
    store *s = store_open(conninfo, 1);
    pagoflex_arena *a = arena_new();
    store_payment out;
    make_payment("pay_reconnect");
    assert_int_equal(store_payment_get(s, "pay_reconnect", a, &out), STORE_OK);
    /* Kill the pooled backend (admin shutdown, SQLSTATE 57P01), wait until gone. */
    assert_true(admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'pf_reconnect'"));
    for (int i = 0; i < 200 && count_rows("SELECT count(*) FROM pg_stat_activity WHERE "
                                          "application_name = $1",
                                          "pf_reconnect") > 0;
         i++)
        usleep(10000);
    /* The dead connection is noticed before use: no failed call. */
    assert_int_equal(store_payment_get(s, "pay_reconnect", a, &out), STORE_OK);
    assert_true(store_ping(s));

    /* Killed while idle but not yet noticed: at most one call fails. */
    assert_true(admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'pf_reconnect'"));
    store_result rc = store_payment_get(s, "pay_reconnect", a, &out);
    assert_true(rc == STORE_OK || rc == STORE_UNAVAILABLE);
    assert_int_equal(store_payment_get(s, "pay_reconnect", a, &out), STORE_OK);
    arena_free(a);
    store_close(s);
    free(conninfo);
}

/* Statements are prepared once per connection (store.c): a migration that
 * changes the payments table under a running host must not break them. */
static void test_statements_survive_schema_change(void **unused)
{
    (void)unused;
    make_payment("pay_schema");
    move("pay_schema", PAGOFLEX_STATE_PENDING, "bx_schema"); /* prepares the transition */
    assert_int_equal(state_of("pay_schema"), PAGOFLEX_STATE_PENDING);
    PGresult *r = PQexec(g_check, "ALTER TABLE payments ADD COLUMN test_extra int");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(state_of("pay_schema"), PAGOFLEX_STATE_PENDING);
    move("pay_schema", PAGOFLEX_STATE_SUCCEEDED, NULL);
    r = PQexec(g_check, "ALTER TABLE payments DROP COLUMN test_extra");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(state_of("pay_schema"), PAGOFLEX_STATE_SUCCEEDED);
    pagoflex_webhook_event ev = event("evt_schema", "pay_schema", "bx_schema", PAGOFLEX_STATE_FAILED);
    store_payment out;
    bool applied = true;
    assert_int_equal(apply(&ev, &out, &applied), STORE_OK);
    assert_false(applied); /* terminal: stored and ignored */
}

/* ---- connector accounts (migration 11) ------------------------------------ */

static void exec_ok(const char *sql);

static void test_payment_insert_resolves_the_merchants_account(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out = {.id = "sentinel"};
    const char *acct = NULL;
    exec_ok("INSERT INTO merchants (id, name) VALUES ('mer_acct_t', 'accounts test')");
    /* mer_default: account "default" of every connector it has no binding for. */
    store_payment p = sample("pay_acct_1", 100, "EUR");
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    assert_string_equal(out.connector_account, "default");
    p = sample("pay_acct_2", 100, "EUR");
    p.connector_account = "acct-x"; /* built with an account the merchant does not use */
    out.id = "sentinel";
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_CONFLICT);
    assert_string_equal(out.id, "sentinel");
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id = $1", "pay_acct_2"), 0);
    /* Another merchant has no account until it is bound: nothing is written, whatever it was built with. */
    assert_int_equal(store_account_resolve(g_store, "mer_acct_t", CONNECTOR, a, &acct), STORE_NOT_FOUND);
    p = sample("pay_acct_3", 100, "EUR");
    p.merchant_id = "mer_acct_t";
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_CONFLICT);
    assert_int_equal(store_idem_create_payment(g_store, "mer_acct_t", "k-acct", "h", 60, &p, a, &out),
                     STORE_CONFLICT);
    assert_int_equal(count_rows("SELECT count(*) FROM idempotency_keys WHERE key = $1", "k-acct"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id = $1", "pay_acct_3"), 0);
    /* Bound: that account and no other. */
    assert_int_equal(store_account_bind(g_store, "mer_acct_t", CONNECTOR, "acct-t"), STORE_OK);
    assert_int_equal(store_account_resolve(g_store, "mer_acct_t", CONNECTOR, a, &acct), STORE_OK);
    assert_string_equal(acct, "acct-t");
    assert_int_equal(store_account_resolve(g_store, "mer_acct_t", "OTHER_BANK", a, &acct), STORE_NOT_FOUND);
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_CONFLICT); /* still "default" */
    p.connector_account = "acct-t";
    assert_int_equal(store_idem_create_payment(g_store, "mer_acct_t", "k-acct", "h", 60, &p, a, &out),
                     STORE_OK);
    assert_string_equal(out.connector_account, "acct-t");
    assert_int_equal(store_idem_create_payment(g_store, "mer_acct_t", "k-acct", "h", 60, &p, a, &out),
                     STORE_DUPLICATE);
    /* A refund is made with its payment's account. */
    exec_ok("UPDATE payments SET state = 'succeeded', amount_received = amount WHERE id = 'pay_acct_3'");
    store_refund rf;
    store_payment after;
    assert_int_equal(
        store_refund_create(g_store, "mer_acct_t", "re_acct_3", "pay_acct_3", 0, NULL, NULL, a, &rf, &after),
        STORE_OK);
    assert_string_equal(rf.connector_account, "acct-t");
    /* mer_default may be bound too; unbinding gives it "default" back. */
    assert_int_equal(store_account_bind(g_store, "mer_default", CONNECTOR, "acct-z"), STORE_OK);
    assert_int_equal(store_account_resolve(g_store, "mer_default", CONNECTOR, a, &acct), STORE_OK);
    assert_string_equal(acct, "acct-z");
    assert_int_equal(store_account_unbind(g_store, "mer_default", CONNECTOR), STORE_OK);
    assert_int_equal(store_account_unbind(g_store, "mer_default", CONNECTOR), STORE_NOT_FOUND);
    assert_int_equal(store_account_resolve(g_store, "mer_default", CONNECTOR, a, &acct), STORE_OK);
    assert_string_equal(acct, "default");
    /* Refused: no such merchant, a bad account name. */
    assert_int_equal(store_account_bind(g_store, "mer_nobody", CONNECTOR, "acct-t"), STORE_NOT_FOUND);
    assert_int_equal(store_account_bind(g_store, "mer_acct_t", CONNECTOR, "Acct T"), STORE_ERROR);
    store_account_binding *list = NULL;
    size_t n = 0;
    assert_int_equal(store_account_list(g_store, "mer_acct_t", a, &list, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].account, "acct-t");
    arena_free(a);
}

static void test_webhook_finds_only_its_accounts_payments(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out, row;
    bool applied = false;
    exec_ok("INSERT INTO merchants (id, name) VALUES ('mer_acct_w', 'webhooks test');"
            "INSERT INTO connector_accounts (merchant_id, connector, account) VALUES ('mer_acct_w',"
            " 'BANCO_X', 'acct-w')");
    store_payment p = sample("pay_acct_w", 100, "EUR");
    p.merchant_id = "mer_acct_w";
    p.connector_account = "acct-w";
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    assert_int_equal(
        store_payment_transition(g_store, "pay_acct_w", ST(PENDING), "bx_acct_w", NULL, NULL, a, &out),
        STORE_OK);
    /* Another account's webhook, by our id or by the bank's: no such payment, nothing stored. */
    pagoflex_webhook_event by_id = event("evt_acct_1", "pay_acct_w", NULL, ST(FAILED));
    pagoflex_webhook_event by_ref = event("evt_acct_2", NULL, "bx_acct_w", ST(FAILED));
    assert_int_equal(store_webhook_apply(g_store, CONNECTOR, "default", &by_id, NULL, 0, a, &row, &applied),
                     STORE_NOT_FOUND);
    assert_int_equal(store_webhook_apply(g_store, CONNECTOR, "default", &by_ref, NULL, 0, a, &row, &applied),
                     STORE_NOT_FOUND);
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE event_id LIKE $1", "evt_acct_%"),
                     0);
    assert_int_equal(state_of("pay_acct_w"), ST(PENDING));
    /* Event ids are the account's own: the same id at another account is another event. */
    pagoflex_webhook_event ok = event("evt_acct_1", NULL, "bx_acct_w", ST(SUCCEEDED));
    assert_int_equal(store_webhook_apply(g_store, CONNECTOR, "acct-w", &ok, NULL, 0, a, &row, &applied),
                     STORE_OK);
    assert_true(applied);
    assert_int_equal(state_of("pay_acct_w"), ST(SUCCEEDED));
    arena_free(a);
}

/* ---- retention (store_janitor.c) ------------------------------------------ */

/* Run `sql` on the check connection; fail the test on error. */
static void exec_ok(const char *sql)
{
    pgtest_exec(g_check, sql);
}

static void test_janitor_purges_expired_keys_in_bounded_batches(void **unused)
{
    (void)unused;
    exec_ok("INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)"
            " SELECT 'jan', 'old-' || g, 'h', now() - interval '1 second'"
            " FROM generate_series(1, 12000) g;"
            "INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)"
            " SELECT 'jan', 'live-' || g, 'h', now() + interval '1 hour' FROM generate_series(1, 10) g");
    store_janitor_limits lim = {.batch = 5000, .max_batches = 2};
    store_janitor_counts n;
    double t0 = now_s();
    /* Two full batches, then the round stops and says there is more. */
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    double took = now_s() - t0;
    assert_true(n.ran);
    assert_int_equal(n.idempotency_keys, 10000);
    assert_true(n.more);
    fprintf(stderr, "    janitor: 10,000 expired keys in %.3f s (%.0f rows/s)\n", took, 10000 / took);
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_int_equal(n.idempotency_keys, 2000);
    assert_false(n.more);
    assert_int_equal(count_rows("SELECT count(*) FROM idempotency_keys WHERE scope = 'jan'", NULL), 10);
    /* No retention set: events and history are not even looked at. */
    assert_int_equal(n.webhook_events, 0);
    assert_int_equal(n.payment_history, 0);
}

/* Old events and history of terminal payments go; open payments' (however
 * old), recent ones and orphans stay; the payment rows all stay. */
static void test_janitor_retention_spares_open_payments_and_orphans(void **unused)
{
    (void)unused;
    exec_ok("INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state,"
            " created_at,"
            " updated_at) SELECT 'default', 'mer_default', id, 'JANITOR', 100, 'EUR', state, at, at FROM"
            " (VALUES"
            " ('jan_done', 'succeeded', now() - interval '40 days'),"
            " ('jan_failed', 'failed', now() - interval '40 days'),"
            " ('jan_open', 'pending', now() - interval '40 days'),"
            " ('jan_review', 'requires_review', now() - interval '40 days'),"
            " ('jan_recent', 'succeeded', now() - interval '2 days')) AS v (id, state, at);"
            /* Open for 40 days, settled 2 days ago: its old events stay. */
            "INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state,"
            " created_at,"
            " updated_at) VALUES ('default', 'mer_default', 'jan_late', 'JANITOR_LATE', 100, 'EUR',"
            " 'succeeded', now() - interval '42 days',"
            " now() - interval '2 days');"
            "INSERT INTO webhook_events (connector_account, connector, event_id, payment_id, state,"
            " received_at, applied)"
            " VALUES ('default', 'JANITOR', 'late-1', 'jan_late', 'pending', now() - interval '40 days',"
            " true);"
            "INSERT INTO payment_history (payment_id, to_state, source, at)"
            " SELECT id, state, 'api', updated_at FROM payments, generate_series(1, 3)"
            " WHERE connector = 'JANITOR';"
            "INSERT INTO webhook_events (connector_account, connector, event_id, payment_id, state, body,"
            " received_at,"
            " applied) SELECT 'default', 'JANITOR', id || '-' || g, id, state, repeat('b', 1000),"
            " updated_at, true"
            " FROM payments, generate_series(1, 3) g WHERE connector = 'JANITOR';"
            "INSERT INTO webhook_events (connector_account, connector, event_id, payment_id, state, tx_id,"
            " received_at,"
            " applied) VALUES ('default', 'JANITOR', 'orphan', NULL, 'succeeded', 'bx_nobody',"
            " now() - interval '400 days', false)");
    store_janitor_limits lim = {.batch = 2, .max_batches = 100, /* several batches per table */
                                .webhook_event_retention_days = 30,
                                .payment_history_retention_days = 0};
    store_janitor_counts n;
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_int_equal(n.webhook_events, 6);
    assert_int_equal(n.payment_history, 0); /* 0: history kept forever */
    const char *events = "SELECT count(*) FROM webhook_events WHERE payment_id = $1";
    const char *history = "SELECT count(*) FROM payment_history WHERE payment_id = $1";
    assert_int_equal(count_rows(events, "jan_done"), 0);
    assert_int_equal(count_rows(events, "jan_failed"), 0);
    assert_int_equal(count_rows(history, "jan_done"), 3);
    lim.payment_history_retention_days = 30;
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_int_equal(n.webhook_events, 0);
    assert_int_equal(n.payment_history, 6);
    assert_int_equal(count_rows(history, "jan_done"), 0);
    assert_int_equal(count_rows(history, "jan_failed"), 0);
    const char *kept[] = {"jan_open", "jan_review", "jan_recent"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(count_rows(events, kept[i]), 3);
        assert_int_equal(count_rows(history, kept[i]), 3);
    }
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_events WHERE event_id = 'orphan'", NULL), 1);
    assert_int_equal(count_rows(events, "jan_late"), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE connector = 'JANITOR'", NULL), 5);
}

/* Workers and hosts share the database: while one janitor holds the lock,
 * another's round does nothing (and says so) instead of fighting. */
static void test_janitor_one_round_at_a_time(void **unused)
{
    (void)unused;
    exec_ok("INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)"
            " SELECT 'jan1', 'k' || g, 'h', now() - interval '1 second' FROM generate_series(1, 50) g");
    exec_ok("SELECT pg_advisory_lock(" STORE_JANITOR_LOCK ")");
    store_janitor_limits lim = {.batch = 5000, .max_batches = 1};
    store_janitor_counts n;
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_false(n.ran);
    assert_int_equal(n.idempotency_keys, 0);
    assert_int_equal(count_rows("SELECT count(*) FROM idempotency_keys WHERE scope = 'jan1'", NULL), 50);
    exec_ok("SELECT pg_advisory_unlock(" STORE_JANITOR_LOCK ")");
    assert_int_equal(store_janitor_round(g_store, &lim, &n), STORE_OK);
    assert_true(n.ran);
    assert_int_equal(n.idempotency_keys, 50);
    /* The round gave its lock back: it can be taken again at once. */
    assert_int_equal(count_rows("SELECT pg_try_advisory_lock(" STORE_JANITOR_LOCK ")::int", NULL), 1);
    exec_ok("SELECT pg_advisory_unlock(" STORE_JANITOR_LOCK ")");
}

/* ---- setup ---------------------------------------------------------------- */

static int group_setup(void **unused)
{
    (void)unused;
    snprintf(g_db, sizeof g_db, "pf_store_%d", (int)getpid());
    snprintf(g_fresh_db, sizeof g_fresh_db, "%s_fresh", g_db);
    if (!(g_fresh_conninfo = pgtest_create_db(g_admin, g_fresh_db)))
        return -1;
    return pgtest_open(g_admin, g_db, RACERS, &g_conninfo, &g_store, &g_check);
}

static int group_teardown(void **unused)
{
    (void)unused;
    bool ok = pgtest_drop_db(g_admin, g_fresh_db);
    free(g_fresh_conninfo);
    return pgtest_close(g_admin, g_db, g_conninfo, g_store, g_check) == 0 && ok ? 0 : -1;
}

/* Issue 16: a payment's and a webhook's statements are prepared once per
 * connection, and PostgreSQL plans a prepared statement afresh on every
 * call (a "custom plan") for as long as its generic plan looks costlier,
 * as a lookup by `CASE WHEN $3 ...` did: ~0.3 ms of planning per webhook.
 * On 50,000 payments (a generic plan that reads them all is then much
 * costlier than a custom one), on one connection of a host of its own,
 * after a dozen payments and webhooks by payment id and by bank id through
 * the store's own calls, every statement that ran more than five times
 * (PostgreSQL tries five custom plans before it compares) runs with its
 * generic plan. */
static void test_hot_statements_keep_a_generic_plan(void **unused)
{
    (void)unused;
    enum { N = 12 };
    static const char fill[] = "INSERT INTO payments (merchant_id, connector_account, id, connector, amount,"
                               " currency, state, provider_reference_id) SELECT 'mer_default', 'default',"
                               " 'pay_plan_bulk_' || g, 'BANCO_X', 1000, 'EUR', 'succeeded',"
                               " 'bx_plan_bulk_' || g FROM generate_series(1, 50000) g; ANALYZE payments";
    PGresult *bulk = PQexec(g_check, fill);
    assert_int_equal(PQresultStatus(bulk), PGRES_COMMAND_OK);
    PQclear(bulk);
    store *s = store_open(g_conninfo, 1);
    assert_non_null(s);
    pagoflex_arena *a = arena_new();
    char id[32], ref[32], evt[32];
    for (int i = 0; i < 2 * N; i++) {
        snprintf(id, sizeof id, "pay_plan_%d", i);
        snprintf(ref, sizeof ref, "bx_plan_%d", i);
        snprintf(evt, sizeof evt, "evt_plan_%d", i);
        store_payment p = sample(id, 1000, "EUR"), out;
        assert_int_equal(store_payment_insert(s, &p, a, &out), STORE_OK);
        assert_int_equal(store_payment_transition(s, id, ST(PENDING), ref, NULL, NULL, a, &out), STORE_OK);
        int orphans = -1;
        assert_int_equal(store_orphan_apply(s, CONNECTOR, "default", ref, &orphans), STORE_OK);
        assert_int_equal(orphans, 0);
        /* Half the webhooks name our payment id, half only the bank's. */
        pagoflex_webhook_event ev = event(evt, i < N ? id : NULL, ref, ST(SUCCEEDED));
        bool applied = false;
        const unsigned char body[] = "{}";
        assert_int_equal(store_webhook_apply(s, CONNECTOR, "default", &ev, body, 2, a, &out, &applied),
                         STORE_OK);
        assert_true(applied);
    }
    store_rows rows;
    static const char plans[] = "SELECT generic_plans, custom_plans,"
                                " left(regexp_replace(statement, '\\s+', ' ', 'g'), 90)"
                                " FROM pg_prepared_statements ORDER BY name";
    assert_int_equal(store_query(s, "plans", plans, 0, NULL, a, &rows), STORE_OK);
    int hot = 0;
    for (size_t i = 0; i < rows.rows; i++) {
        long generic = atol(rows.cells[i * 3]), custom = atol(rows.cells[i * 3 + 1]);
        fprintf(stderr, "generic %ld custom %ld: %s\n", generic, custom, rows.cells[i * 3 + 2]);
        if (generic + custom < N)
            continue;
        hot++;
        if (custom > 5)
            fail_msg("planned afresh on every call (%ld custom plans, %ld generic): %s", custom, generic,
                     rows.cells[i * 3 + 2]);
    }
    assert_true(hot >= 5); /* insert, transition, orphan check, webhook by id, by bank id */
    arena_free(a);
    store_close(s);
    bulk = PQexec(g_check, "DELETE FROM payments WHERE id LIKE 'pay_plan_bulk_%'; ANALYZE payments");
    assert_int_equal(PQresultStatus(bulk), PGRES_COMMAND_OK);
    PQclear(bulk);
}

/* ---- issue 11: captures, voids, refunds (migration 8) ------------------- */

/* Payment `id` of `amount` ARS, moved to `to` (the trigger sets amounts). */
static void make_flow_payment(const char *id, int64_t amount, bool manual, pagoflex_state to)
{
    pagoflex_arena *a = arena_new();
    store_payment p = sample(id, amount, "ARS"), out;
    p.manual_capture = manual;
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    assert_int_equal(out.manual_capture, manual);
    arena_free(a);
    move(id, PAGOFLEX_STATE_PENDING, NULL);
    move(id, to, NULL);
}

static void test_amounts_follow_state(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out;
    make_flow_payment("pay_fl_auto", 1000, false, PAGOFLEX_STATE_SUCCEEDED);
    assert_int_equal(store_payment_get(g_store, "pay_fl_auto", a, &out), STORE_OK);
    assert_int_equal(out.amount_received, 1000);
    assert_int_equal(out.amount_capturable, 0);
    make_flow_payment("pay_fl_man", 1000, true, PAGOFLEX_STATE_REQUIRES_CAPTURE);
    assert_int_equal(store_payment_get(g_store, "pay_fl_man", a, &out), STORE_OK);
    assert_int_equal(out.state, PAGOFLEX_STATE_REQUIRES_CAPTURE);
    assert_int_equal(out.amount_capturable, 1000);
    assert_int_equal(out.amount_received, 0);
    arena_free(a);
}

/* Version 20 gave the amounts trigger a WHEN clause so that PL/pgSQL is
 * not entered for updates it cannot change. Every change of state (each
 * of the 9 states to each, with and without a redirect URL, a pending
 * operation, a capture amount, amounts capturable and received) ends with
 * the same row as under the trigger without the clause, which a copy of
 * the table keeps; and that trigger does change some of them, so the
 * comparison can fail. */
static void test_amounts_trigger_skips_only_updates_it_cannot_change(void **unused)
{
    (void)unused;
    static const char states[] = "ARRAY['created', 'processing', 'pending', 'succeeded', 'failed',"
                                 " 'requires_action', 'canceled', 'requires_review', 'requires_capture']";
    char rows[1536];
    snprintf(rows, sizeof rows,
             "SELECT 'pay_am|' || f || '|' || t || '|' || k AS id, 'BANCO_X', 1000, 'EUR', f,"
             " 'mer_amounts', 'default', CASE WHEN k & 1 = 1 THEN 'https://bank.example/3ds' END,"
             " CASE WHEN k & 2 = 2 THEN 'capture' END, CASE WHEN k & 4 = 4 THEN 600 END,"
             " CASE WHEN k & 8 = 8 THEN 1000 ELSE 0 END, CASE WHEN k & 16 = 16 THEN 1000 ELSE 0 END"
             " FROM unnest(%s) f, unnest(%s) t, generate_series(0, 31) k",
             states, states);
    char sql[2048];
    exec_ok("CREATE TABLE payments_am_ref (LIKE payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS)");
    exec_ok("CREATE TRIGGER payments_am_ref BEFORE UPDATE ON payments_am_ref FOR EACH ROW"
            " EXECUTE FUNCTION payments_amounts()");
    static const char cols[] = "(id, connector, amount, currency, state, merchant_id, connector_account,"
                               " redirect_url, pending_operation, capture_amount, amount_capturable,"
                               " amount_received)";
    snprintf(sql, sizeof sql, "INSERT INTO payments %s %s", cols, rows);
    exec_ok(sql);
    snprintf(sql, sizeof sql, "INSERT INTO payments_am_ref %s %s", cols, rows);
    exec_ok(sql);
    exec_ok(
        "UPDATE payments SET state = split_part(id, '|', 3), updated_at = now() WHERE id LIKE 'pay_am|%'");
    exec_ok("UPDATE payments_am_ref SET state = split_part(id, '|', 3), updated_at = now()");
#define AMOUNT_COLS(t)                                                                                       \
    "(" t ".state, " t ".amount_capturable, " t ".amount_received, " t ".pending_operation, " t              \
    ".redirect_url, " t ".capture_amount)"
    assert_int_equal(count_rows("SELECT count(*) FROM payments p JOIN payments_am_ref r USING (id)", NULL),
                     9 * 9 * 32);
    assert_int_equal(count_rows("SELECT count(*) FROM payments p JOIN payments_am_ref r USING (id)"
                                " WHERE " AMOUNT_COLS("p") " IS DISTINCT FROM " AMOUNT_COLS("r"),
                                NULL),
                     0);
    /* The rules acted on some rows: compared with the rows as inserted. */
    snprintf(
        sql, sizeof sql,
        "SELECT count(*) FROM payments_am_ref r JOIN (%s) i (id, c, a, cu, f, m, ca, redirect_url,"
        " pending_operation, capture_amount, amount_capturable, amount_received) USING (id)"
        " WHERE (r.amount_capturable, r.amount_received, r.pending_operation, r.redirect_url)"
        " IS DISTINCT FROM (i.amount_capturable, i.amount_received, i.pending_operation, i.redirect_url)",
        rows);
    assert_true(count_rows(sql, NULL) > 1000);
#undef AMOUNT_COLS
    exec_ok("DROP TABLE payments_am_ref");
    exec_ok("DELETE FROM payments WHERE id LIKE 'pay_am|%'");
}

/* One capture, at most what was authorized; a void and a capture exclude
 * each other; a release puts the payment back. */
static void test_capture_claims(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment out;
    make_flow_payment("pay_fl_cap", 1000, true, PAGOFLEX_STATE_REQUIRES_CAPTURE);
    assert_int_equal(
        store_payment_claim_operation(g_store, "mer_default", "pay_fl_cap", "capture", 1001, a, &out),
        STORE_CONFLICT);
    assert_null(out.pending_operation);
    assert_int_equal(
        store_payment_claim_operation(g_store, "mer_default", "pay_fl_cap", "capture", 600, a, &out),
        STORE_OK);
    assert_string_equal(out.pending_operation, "capture");
    assert_int_equal(out.capture_amount, 600);
    assert_int_equal(
        store_payment_claim_operation(g_store, "mer_default", "pay_fl_cap", "capture", 100, a, &out),
        STORE_CONFLICT);
    assert_int_equal(store_payment_claim_operation(g_store, "mer_default", "pay_fl_cap", "void", 0, a, &out),
                     STORE_CONFLICT);
    move("pay_fl_cap", PAGOFLEX_STATE_SUCCEEDED, NULL);
    assert_int_equal(store_payment_get(g_store, "pay_fl_cap", a, &out), STORE_OK);
    assert_int_equal(out.amount_received, 600);
    assert_int_equal(out.amount_capturable, 0);
    assert_null(out.pending_operation);
    /* A second capture of a captured payment: refused. */
    assert_int_equal(
        store_payment_claim_operation(g_store, "mer_default", "pay_fl_cap", "capture", 0, a, &out),
        STORE_CONFLICT);
    assert_int_equal(out.state, PAGOFLEX_STATE_SUCCEEDED);

    make_flow_payment("pay_fl_rel", 500, true, PAGOFLEX_STATE_REQUIRES_CAPTURE);
    assert_int_equal(store_payment_claim_operation(g_store, "mer_default", "pay_fl_rel", "void", 0, a, &out),
                     STORE_OK);
    assert_int_equal(store_payment_release_operation(g_store, "pay_fl_rel", "void", a, &out),
                     STORE_OK);
    assert_null(out.pending_operation);
    assert_int_equal(
        store_payment_claim_operation(g_store, "mer_default", "pay_fl_rel", "capture", 0, a, &out), STORE_OK);
    assert_int_equal(out.capture_amount, 500);
    /* The database itself refuses a capture above the authorization. */
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id = $1 AND"
                                " capture_amount <= amount", "pay_fl_rel"), 1);
    PGresult *bad = PQexec(g_check, "UPDATE payments SET amount_refunded = amount_received + 1"
                                    " WHERE id = 'pay_fl_cap'");
    assert_int_equal(PQresultStatus(bad), PGRES_FATAL_ERROR); /* payments_amount_refunded */
    PQclear(bad);
    arena_free(a);
}

static void test_refunds_reserve_and_release(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    store_payment pay;
    store_refund rf;
    /* Wrong state: refused, nothing written. */
    make_flow_payment("pay_fl_rfa", 1000, true, PAGOFLEX_STATE_REQUIRES_CAPTURE);
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_fl_0", "pay_fl_rfa", 100, NULL, NULL, a, &rf, &pay),
        STORE_CONFLICT);
    assert_int_equal(pay.state, PAGOFLEX_STATE_REQUIRES_CAPTURE);
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_fl_x", "pay_none", 100, NULL, NULL, a, &rf, &pay),
        STORE_NOT_FOUND);

    make_flow_payment("pay_fl_rf", 1000, false, PAGOFLEX_STATE_SUCCEEDED);
    assert_int_equal(store_refund_create(g_store, "mer_default", "re_fl_1", "pay_fl_rf", 300, "damaged",
                                         "{\"order\":\"42\"}", a, &rf, &pay),
                     STORE_OK);
    assert_int_equal(rf.state, PAGOFLEX_STATE_CREATED);
    assert_int_equal(rf.amount, 300);
    assert_string_equal(rf.reason, "damaged");
    assert_string_equal(rf.metadata, "{\"order\": \"42\"}");
    assert_int_equal(pay.amount_refunded, 300);
    /* 800 is more than the 700 left. */
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_fl_2", "pay_fl_rf", 800, NULL, NULL, a, &rf, &pay),
        STORE_CONFLICT);
    assert_int_equal(pay.amount_refunded, 300);
    /* Default: what is left. */
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_fl_3", "pay_fl_rf", 0, NULL, NULL, a, &rf, &pay),
        STORE_OK);
    assert_int_equal(rf.amount, 700);
    assert_int_equal(pay.amount_refunded, 1000);
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_fl_4", "pay_fl_rf", 0, NULL, NULL, a, &rf, &pay),
        STORE_CONFLICT);
    /* A failed refund gives its amount back, once. */
    assert_int_equal(store_refund_transition(g_store, "re_fl_3", PAGOFLEX_STATE_PENDING,
                                             STORE_SOURCE_BANK_REPLY, NULL, "rf_bank_3", NULL,
                                             NULL, a, &rf),
                     STORE_OK);
    assert_int_equal(store_refund_transition(g_store, "re_fl_3", PAGOFLEX_STATE_FAILED,
                                             STORE_SOURCE_WEBHOOK, "evt_1", NULL, "declined",
                                             "refund declined", a, &rf),
                     STORE_OK);
    assert_string_equal(rf.provider_reference_id, "rf_bank_3");
    assert_int_equal(store_refund_transition(g_store, "re_fl_3", PAGOFLEX_STATE_FAILED,
                                             STORE_SOURCE_WEBHOOK, "evt_2", NULL, NULL, NULL, a,
                                             &rf),
                     STORE_CONFLICT);
    assert_int_equal(store_payment_get(g_store, "pay_fl_rf", a, &pay), STORE_OK);
    assert_int_equal(pay.amount_refunded, 300);
    store_history_entry *h = NULL;
    size_t n = 0;
    assert_int_equal(store_refund_history(g_store, "re_fl_3", a, &h, &n), STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(h[2].to_state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(h[2].detail, "evt_1");
    store_refund *list = NULL;
    assert_int_equal(store_refund_list(g_store, "mer_default", "pay_fl_rf", a, &list, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "re_fl_1");
    /* Never failed from... nothing: a created refund may fail (the bank said no),
     * a succeeded one never moves again. */
    assert_false(store_refund_transition_allowed(PAGOFLEX_STATE_SUCCEEDED, PAGOFLEX_STATE_FAILED));
    arena_free(a);
}

struct refund_racer {
    pthread_barrier_t *start;
    int i;
    store_result rc;
};

static void *refund_race_thread(void *p)
{
    struct refund_racer *r = p;
    char id[32];
    snprintf(id, sizeof id, "re_race_%d", r->i);
    pagoflex_arena *a = arena_new();
    store_payment pay;
    store_refund rf;
    pthread_barrier_wait(r->start);
    r->rc = store_refund_create(g_store, "mer_default", id, "pay_fl_race", 300, NULL, NULL, a, &rf, &pay);
    arena_free(a);
    return NULL;
}

/* RACERS concurrent refunds of 300 on a 1000 payment: three win, the total
 * never exceeds what was received. */
/* Issue 13: a merchant route's store call names the merchant, and another
 * merchant's payment or refund answers exactly as an unknown id: nothing
 * read, nothing written. */
static void make_merchant_payment(const char *merchant, const char *id, const char *reference, bool manual,
                                  pagoflex_state to)
{
    pagoflex_arena *a = arena_new();
    store_payment p = sample(id, 1000, "ARS"), out;
    p.merchant_id = merchant;
    p.reference = reference;
    p.manual_capture = manual;
    /* Its Banco X account: the operator's "default" one (migration 11). */
    assert_int_equal(store_account_bind(g_store, merchant, CONNECTOR, "default"), STORE_OK);
    assert_int_equal(store_payment_insert(g_store, &p, a, &out), STORE_OK);
    assert_string_equal(out.merchant_id, merchant);
    arena_free(a);
    move(id, PAGOFLEX_STATE_PENDING, NULL);
    move(id, to, NULL);
}

static void test_merchant_scoped_calls(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    PGresult *m = PQexec(g_check, "INSERT INTO merchants (id, name) VALUES ('mer_scope_b', 'b')");
    assert_int_equal(PQresultStatus(m), PGRES_COMMAND_OK);
    PQclear(m);
    make_merchant_payment("mer_default", "pay_sc_a", "order-sc", false, PAGOFLEX_STATE_SUCCEEDED);
    make_merchant_payment("mer_scope_b", "pay_sc_b", "order-sc", false, PAGOFLEX_STATE_SUCCEEDED);
    make_merchant_payment("mer_scope_b", "pay_sc_bc", "order-sc-c", true, PAGOFLEX_STATE_REQUIRES_CAPTURE);

    store_payment out = {.id = "untouched"};
    assert_int_equal(store_payment_get_of(g_store, "mer_default", "pay_sc_b", a, &out), STORE_NOT_FOUND);
    assert_string_equal(out.id, "untouched");
    assert_int_equal(store_payment_get_of(g_store, "mer_default", "pay_sc_nope", a, &out), STORE_NOT_FOUND);
    assert_int_equal(store_payment_get_of(g_store, "mer_scope_b", "pay_sc_b", a, &out), STORE_OK);
    assert_string_equal(out.merchant_id, "mer_scope_b");
    assert_int_equal(store_payment_get_of(g_store, NULL, "pay_sc_b", a, &out), STORE_ERROR);
    assert_int_equal(store_payment_get_of(g_store, "", "pay_sc_b", a, &out), STORE_ERROR);

    store_history_entry *h = NULL;
    size_t n = 99;
    assert_int_equal(store_payment_history_of(g_store, "mer_default", "pay_sc_b", a, &h, &n),
                     STORE_NOT_FOUND);
    assert_int_equal(n, 99);
    assert_int_equal(store_payment_history_of(g_store, "mer_scope_b", "pay_sc_b", a, &h, &n), STORE_OK);
    assert_int_equal(n, 3);

    /* The list by reference (GET /v1/payments?reference=) is the merchant's. */
    store_payment *rows = NULL;
    bool more = true;
    store_list_query q = {.merchant_id = "mer_default", .limit = 10, .reference = "order-sc"};
    assert_int_equal(store_list_payments(g_store, &q, a, &rows, &n, &more), STORE_OK);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_string_equal(rows[0].id, "pay_sc_a");
    q.merchant_id = "mer_scope_b";
    assert_int_equal(store_list_payments(g_store, &q, a, &rows, &n, &more), STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].id, "pay_sc_b");
    q.starting_after = "pay_sc_a"; /* another merchant's id is no cursor */
    assert_int_equal(store_list_payments(g_store, &q, a, &rows, &n, &more), STORE_NOT_FOUND);
    q.merchant_id = NULL;
    q.starting_after = NULL;
    assert_int_equal(store_list_payments(g_store, &q, a, &rows, &n, &more), STORE_ERROR);

    /* A capture or void of another merchant's payment: not found, not claimed. */
    assert_int_equal(
        store_payment_claim_operation(g_store, "mer_default", "pay_sc_bc", "capture", 0, a, &out),
        STORE_NOT_FOUND);
    assert_int_equal(store_payment_claim_operation(g_store, "mer_default", "pay_sc_bc", "void", 0, a, &out),
                     STORE_NOT_FOUND);
    assert_int_equal(count_rows("SELECT count(*) FROM payments WHERE id = $1 AND pending_operation IS NULL"
                                " AND capture_amount IS NULL",
                                "pay_sc_bc"),
                     1);
    assert_int_equal(store_payment_claim_operation(g_store, NULL, "pay_sc_bc", "void", 0, a, &out),
                     STORE_ERROR);
    assert_int_equal(store_payment_claim_operation(g_store, "mer_scope_b", "pay_sc_bc", "void", 0, a, &out),
                     STORE_OK);

    /* A refund of another merchant's payment: not found, nothing reserved. */
    store_refund rf = {.id = "untouched"};
    store_payment pay = {.id = "untouched"};
    assert_int_equal(
        store_refund_create(g_store, "mer_default", "re_sc_x", "pay_sc_b", 100, NULL, NULL, a, &rf, &pay),
        STORE_NOT_FOUND);
    assert_string_equal(rf.id, "untouched");
    assert_string_equal(pay.id, "untouched");
    assert_int_equal(count_rows("SELECT amount_refunded FROM payments WHERE id = $1", "pay_sc_b"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM refunds WHERE id = $1", "re_sc_x"), 0);
    assert_int_equal(store_refund_create(g_store, NULL, "re_sc_x", "pay_sc_b", 100, NULL, NULL, a, &rf, &pay),
                     STORE_ERROR);
    assert_int_equal(
        store_refund_create(g_store, "mer_scope_b", "re_sc_b", "pay_sc_b", 100, NULL, NULL, a, &rf, &pay),
        STORE_OK);
    assert_int_equal(
        count_rows("SELECT count(*) FROM refunds WHERE id = $1 AND merchant_id = 'mer_scope_b'", "re_sc_b"),
        1);
    rf.id = "untouched";
    assert_int_equal(store_refund_get_of(g_store, "mer_default", "re_sc_b", a, &rf), STORE_NOT_FOUND);
    assert_string_equal(rf.id, "untouched");
    assert_int_equal(store_refund_get_of(g_store, NULL, "re_sc_b", a, &rf), STORE_ERROR);
    assert_int_equal(store_refund_get_of(g_store, "mer_scope_b", "re_sc_b", a, &rf), STORE_OK);
    assert_string_equal(rf.payment_id, "pay_sc_b");
    store_refund *list = NULL;
    assert_int_equal(store_refund_list(g_store, "mer_default", "pay_sc_b", a, &list, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_refund_list(g_store, NULL, "pay_sc_b", a, &list, &n), STORE_ERROR);
    assert_int_equal(store_refund_list(g_store, "mer_scope_b", "pay_sc_b", a, &list, &n), STORE_OK);
    assert_int_equal(n, 1);
    arena_free(a);
}

/* A merchant is made with its first key; disabling it refuses its keys
 * (apikey_verify) from the next call on, and only its keys. */
static void test_merchant_accounts(void **unused)
{
    (void)unused;
    pagoflex_arena *a = arena_new();
    char id[STORE_MERCHANT_ID_LEN + 1], id2[STORE_MERCHANT_ID_LEN + 1], err[256];
    char who[APIKEY_MERCHANT_MAX + 1];
    apikey_created k, k2, more;
    bool valid = false;
    assert_int_equal(store_merchant_new_id(id), 0);
    assert_int_equal(strlen(id), STORE_MERCHANT_ID_LEN);
    assert_memory_equal(id, "mer_", 4);
    for (size_t i = 4; i < STORE_MERCHANT_ID_LEN; i++)
        assert_non_null(strchr("0123456789abcdefghijklmnopqrstuvwxyz", id[i]));
    assert_false(store_merchant_name_ok(""));
    assert_false(store_merchant_name_ok("tab\there"));
    assert_true(store_merchant_name_ok("Shop A"));

    long merchants = count_rows("SELECT count(*) FROM merchants", NULL);
    assert_int_equal(apikey_create_merchant(g_store, "bad\nname", "first", id, &k, err, sizeof err),
                     STORE_ERROR);
    assert_int_equal(apikey_create_merchant(g_store, "Shop A", "", id, &k, err, sizeof err), STORE_ERROR);
    assert_int_equal(count_rows("SELECT count(*) FROM merchants", NULL), merchants);
    assert_int_equal(apikey_create_merchant(g_store, "Shop A", "first", id, &k, err, sizeof err), STORE_OK);
    assert_int_equal(apikey_create_merchant(g_store, "Shop C", "first", id2, &k2, err, sizeof err), STORE_OK);
    assert_string_not_equal(id, id2);
    assert_int_equal(count_rows("SELECT count(*) FROM api_keys WHERE merchant_id = $1", id), 1);
    assert_int_equal(apikey_create(g_store, id, "second", &more, err, sizeof err), STORE_OK);
    assert_int_equal(apikey_create(g_store, "mer_nope", "x", &more, err, sizeof err), STORE_NOT_FOUND);
    assert_non_null(strstr(err, "mer_nope"));

    store_merchant m;
    assert_int_equal(store_merchant_get(g_store, id, a, &m), STORE_OK);
    assert_string_equal(m.name, "Shop A");
    assert_null(m.disabled_at);
    assert_true(is_rfc3339_ms(m.created_at));
    assert_int_equal(store_merchant_get(g_store, "mer_nope", a, &m), STORE_NOT_FOUND);
    store_merchant *list = NULL;
    size_t n = 0;
    assert_int_equal(store_merchant_list(g_store, a, &list, &n), STORE_OK);
    assert_int_equal((long)n, merchants + 2);
    assert_string_equal(list[0].id, STORE_MERCHANT_DEFAULT);

    assert_int_equal(apikey_verify(g_store, k.key, &valid, who), STORE_OK);
    assert_true(valid);
    assert_string_equal(who, id);
    const char *at = NULL, *again = NULL;
    assert_int_equal(store_merchant_disable(g_store, id, a, &at), STORE_OK);
    assert_true(is_rfc3339_ms(at));
    assert_int_equal(apikey_verify(g_store, k.key, &valid, who), STORE_OK);
    assert_false(valid);
    assert_string_equal(who, "");
    assert_int_equal(apikey_verify(g_store, more.key, &valid, who), STORE_OK);
    assert_false(valid);
    assert_int_equal(apikey_verify(g_store, k2.key, &valid, who), STORE_OK); /* another merchant's: served */
    assert_true(valid);
    assert_string_equal(who, id2);
    assert_int_equal(store_merchant_disable(g_store, id, a, &again), STORE_CONFLICT);
    assert_string_equal(again, at);
    assert_int_equal(apikey_create(g_store, id, "late", &more, err, sizeof err), STORE_NOT_FOUND);
    assert_int_equal(store_merchant_disable(g_store, "mer_nope", a, &at), STORE_NOT_FOUND);
    assert_int_equal(store_merchant_disable(g_store, STORE_MERCHANT_DEFAULT, a, &at), STORE_ERROR);
    assert_int_equal(
        count_rows("SELECT count(*) FROM merchants WHERE id = 'mer_default' AND disabled_at IS NULL", NULL),
        1);
    arena_free(a);
}

/* The look-up by reference (the list's statement by reference has this
 * shape) is served by an index that starts with the merchant, never a scan
 * of every merchant's payments: on this small table the planner may take
 * the (merchant_id, created_at, id) index of the lists, on a large one the
 * (merchant_id, reference) index (README, Lists). */
static void test_reference_index_by_merchant(void **unused)
{
    (void)unused;
    PGresult *r = PQexec(g_check, "SET enable_seqscan = off");
    PQclear(r);
    r = PQexec(g_check, "EXPLAIN SELECT id FROM payments WHERE merchant_id = 'mer_default'"
                        " AND reference = 'order-sc' ORDER BY created_at DESC, id DESC LIMIT 11");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    bool uses = false;
    for (int i = 0; i < PQntuples(r); i++)
        uses = uses || strstr(PQgetvalue(r, i, 0), "payments_merchant_reference") != NULL ||
               strstr(PQgetvalue(r, i, 0), "payments_merchant_created") != NULL;
    PQclear(r);
    r = PQexec(g_check, "RESET enable_seqscan");
    PQclear(r);
    assert_true(uses);
    assert_int_equal(
        count_rows("SELECT count(*) FROM pg_indexes WHERE indexname = 'payments_merchant_reference'"
                   " AND indexdef LIKE '%(merchant_id, reference)%'",
                   NULL),
        1);
    assert_int_equal(
        count_rows("SELECT count(*) FROM pg_indexes WHERE indexname = 'payments_reference'", NULL), 0);
}

static void test_refund_race(void **unused)
{
    (void)unused;
    make_flow_payment("pay_fl_race", 1000, false, PAGOFLEX_STATE_SUCCEEDED);
    pthread_barrier_t start;
    pthread_t t[RACERS];
    struct refund_racer r[RACERS];
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct refund_racer){.start = &start, .i = i};
        assert_int_equal(pthread_create(&t[i], NULL, refund_race_thread, &r[i]), 0);
    }
    int won = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        assert_true(r[i].rc == STORE_OK || r[i].rc == STORE_CONFLICT);
        won += r[i].rc == STORE_OK;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(won, 3);
    assert_int_equal(count_rows("SELECT sum(amount) FROM refunds WHERE payment_id = $1",
                                "pay_fl_race"), 900);
    assert_int_equal(count_rows("SELECT amount_refunded FROM payments WHERE id = $1",
                                "pay_fl_race"), 900);
}

int main(void)
{
    if (!(g_admin = pgtest_admin("test_store")))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_migrate_concurrent_fresh),
        cmocka_unit_test(test_insert_get),
        cmocka_unit_test(test_amounts_follow_state),
        cmocka_unit_test(test_amounts_trigger_skips_only_updates_it_cannot_change),
        cmocka_unit_test(test_capture_claims),
        cmocka_unit_test(test_refunds_reserve_and_release),
        cmocka_unit_test(test_refund_race),
        cmocka_unit_test(test_merchant_scoped_calls),
        cmocka_unit_test(test_reference_index_by_merchant),
        cmocka_unit_test(test_merchant_accounts),
        cmocka_unit_test(test_insert_duplicate),
        cmocka_unit_test(test_insert_check_refused),
        cmocka_unit_test(test_payment_insert_resolves_the_merchants_account),
        cmocka_unit_test(test_webhook_finds_only_its_accounts_payments),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_transition_error_fields),
        cmocka_unit_test(test_provider_ref_kept_on_conflict),
        cmocka_unit_test(test_webhook_applied_and_duplicate),
        cmocka_unit_test(test_webhook_unknown_payment),
        cmocka_unit_test(test_webhook_by_tx_id),
        cmocka_unit_test(test_webhook_race_same_event),
        cmocka_unit_test(test_webhook_race_conflicting_events),
        cmocka_unit_test(test_transition_race),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_unavailable_refused),
        cmocka_unit_test(test_unavailable_hung_server),
        cmocka_unit_test(test_reconnect_after_termination),
        cmocka_unit_test(test_statements_survive_schema_change),
        cmocka_unit_test(test_hot_statements_keep_a_generic_plan),
        cmocka_unit_test(test_migrate_fills_a_gap_below_a_newer_version),
        cmocka_unit_test(test_janitor_purges_expired_keys_in_bounded_batches),
        cmocka_unit_test(test_janitor_retention_spares_open_payments_and_orphans),
        cmocka_unit_test(test_janitor_one_round_at_a_time),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
