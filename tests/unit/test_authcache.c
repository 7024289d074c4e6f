/* Unit tests: the per-account caches of what banks demand before a call:
 * banktoken (access tokens: one fetch at a time, waiters parked or blocked,
 * expiry margin, one refresh for a refused token, back-off after a failed
 * fetch) and keyset (key sets: refetch at most once a minute). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arena.h"
#include "banktoken.h"
#include "keyset.h"

static int woken;
static void on_ready(void *arg)
{
    (void)arg;
    woken++;
}

static void test_one_fetch_parks_the_others(void **state)
{
    (void)state;
    banktoken *t = banktoken_new();
    pagoflex_arena *a = arena_new();
    char *v = NULL;
    uint64_t gen = 0;
    banktoken_waiter w1 = {.ready = on_ready}, w2 = {.ready = on_ready};
    woken = 0;
    assert_int_equal(banktoken_acquire(t, 1000, 0, a, &v, &gen, &w1), BANKTOKEN_FETCH);
    assert_int_equal(banktoken_acquire(t, 1000, 0, a, &v, &gen, &w1), BANKTOKEN_PARKED);
    assert_int_equal(banktoken_acquire(t, 1000, 0, a, &v, &gen, &w2), BANKTOKEN_PARKED);
    assert_int_equal(woken, 0);
    assert_int_equal(banktoken_store(t, "tok-1", 1300, 1000), 0);
    assert_int_equal(woken, 2);
    assert_int_equal(banktoken_acquire(t, 1001, 0, a, &v, &gen, &w1), BANKTOKEN_READY);
    assert_string_equal(v, "tok-1");
    assert_int_equal(gen, 1);
    assert_int_equal(banktoken_fetches(t), 1);
    arena_free(a);
    banktoken_free(t);
}

static void test_expiry_margin_and_refused_generation(void **state)
{
    (void)state;
    banktoken *t = banktoken_new();
    char *v = NULL;
    uint64_t gen = 0;
    assert_int_equal(banktoken_acquire(t, 1000, 0, NULL, NULL, NULL, NULL), BANKTOKEN_FETCH);
    banktoken_store(t, "tok-1", 1100, 1000); /* 100 s lifetime: refreshed 10 s early */
    assert_int_equal(banktoken_acquire(t, 1089, 0, NULL, &v, &gen, NULL), BANKTOKEN_READY);
    assert_int_equal(banktoken_acquire(t, 1090, 0, NULL, NULL, NULL, NULL), BANKTOKEN_FETCH);
    banktoken_store(t, "tok-2", 0, 1090); /* 0: until refused */
    assert_int_equal(banktoken_acquire(t, 999999, 0, NULL, NULL, &gen, NULL), BANKTOKEN_READY);
    assert_int_equal(gen, 2);
    /* Two flows saw token 2 refused: one fetch; the other is parked, then
     * gets token 3 without a fetch of its own. */
    banktoken_waiter w = {.ready = on_ready};
    woken = 0;
    assert_int_equal(banktoken_acquire(t, 2000, 2, NULL, NULL, NULL, &w), BANKTOKEN_FETCH);
    assert_int_equal(banktoken_acquire(t, 2000, 2, NULL, NULL, NULL, &w), BANKTOKEN_PARKED);
    banktoken_store(t, "tok-3", 0, 2000);
    assert_int_equal(woken, 1);
    assert_int_equal(banktoken_acquire(t, 2000, 2, NULL, NULL, &gen, &w), BANKTOKEN_READY);
    assert_int_equal(gen, 3);
    assert_int_equal(banktoken_fetches(t), 3);
    banktoken_free(t);
}

static void test_failed_fetch_fails_waiters_and_backs_off(void **state)
{
    (void)state;
    banktoken *t = banktoken_new();
    banktoken_waiter w = {.ready = on_ready};
    woken = 0;
    assert_int_equal(banktoken_acquire(t, 1000, 0, NULL, NULL, NULL, NULL), BANKTOKEN_FETCH);
    assert_int_equal(banktoken_acquire(t, 1000, 0, NULL, NULL, NULL, &w), BANKTOKEN_PARKED);
    banktoken_failed(t, 1000);
    assert_int_equal(woken, 1);
    assert_int_equal(banktoken_acquire(t, 1000, 0, NULL, NULL, NULL, &w), BANKTOKEN_FAILED);
    assert_int_equal(banktoken_acquire(t, 1000 + BANKTOKEN_RETRY_S, 0, NULL, NULL, NULL, &w), BANKTOKEN_FETCH);
    banktoken_store(t, "tok", 0, 1001);
    assert_int_equal(banktoken_fetches(t), 1);
    banktoken_free(t);
}

typedef struct blocked {
    banktoken *t;
    banktoken_verdict v;
} blocked;

static void *blocked_acquire(void *arg)
{
    blocked *b = arg;
    b->v = banktoken_acquire(b->t, 1000, 0, NULL, NULL, NULL, NULL);
    return NULL;
}

static void test_blocking_caller_waits_for_the_fetch(void **state)
{
    (void)state;
    banktoken *t = banktoken_new();
    blocked b = {.t = t, .v = BANKTOKEN_FAILED};
    pthread_t th;
    assert_int_equal(banktoken_acquire(t, 1000, 0, NULL, NULL, NULL, NULL), BANKTOKEN_FETCH);
    pthread_create(&th, NULL, blocked_acquire, &b);
    usleep(50 * 1000);
    banktoken_store(t, "tok", 0, 1000);
    pthread_join(th, NULL);
    assert_int_equal(b.v, BANKTOKEN_READY);
    assert_int_equal(banktoken_fetches(t), 1);
    banktoken_free(t);
}

static void test_keyset_refetch_at_most_once_a_minute(void **state)
{
    (void)state;
    keyset *k = keyset_new();
    pagoflex_arena *a = arena_new();
    unsigned char *keys;
    size_t len;
    uint64_t gen;
    assert_int_equal(keyset_get(k, a, &keys, &len, &gen), 0);
    assert_null(keys);
    assert_true(keyset_begin(k, 1000, gen)); /* the first fetch */
    keyset_end(k, (const unsigned char *)"{\"keys\":[1]}", 12);
    assert_int_equal(keyset_get(k, a, &keys, &len, &gen), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(keys, "{\"keys\":[1]}", 12);
    assert_true(keyset_begin(k, 1001, gen)); /* the first refetch */
    keyset_end(k, (const unsigned char *)"{\"keys\":[2]}", 12);
    uint64_t old = gen;
    assert_int_equal(keyset_get(k, a, &keys, &len, &gen), 0);
    assert_false(keyset_begin(k, 1002, old)); /* someone refetched since: read again */
    assert_false(keyset_begin(k, 1060, gen)); /* within a minute of the refetch */
    assert_true(keyset_begin(k, 1061, gen));
    keyset_end(k, NULL, 0); /* a failed fetch keeps the old set */
    assert_int_equal(keyset_get(k, a, &keys, &len, &gen), 0);
    assert_memory_equal(keys, "{\"keys\":[2]}", 12);
    assert_int_equal(keyset_fetches(k), 3);
    arena_free(a);
    keyset_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_fetch_parks_the_others),
        cmocka_unit_test(test_expiry_margin_and_refused_generation),
        cmocka_unit_test(test_failed_fetch_fails_waiters_and_backs_off),
        cmocka_unit_test(test_blocking_caller_waits_for_the_fetch),
        cmocka_unit_test(test_keyset_refetch_at_most_once_a_minute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
