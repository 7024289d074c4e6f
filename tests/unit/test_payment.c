/* Unit tests for the payment state machine (host/payment.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "payment.h"

#define ST(x) PAGOFLEX_STATE_##x

static void test_happy_path_allowed(void **unused)
{
    (void)unused;
    assert_true(payment_transition_allowed(ST(CREATED), ST(PENDING)));
    assert_true(payment_transition_allowed(ST(CREATED), ST(PROCESSING)));
    assert_true(payment_transition_allowed(ST(PROCESSING), ST(PENDING)));
    assert_true(payment_transition_allowed(ST(PENDING), ST(SUCCEEDED)));
    assert_true(payment_transition_allowed(ST(PENDING), ST(FAILED)));
    assert_true(payment_transition_allowed(ST(REQUIRES_ACTION), ST(SUCCEEDED)));
}

static void test_webhook_may_overtake_reply(void **unused)
{
    (void)unused;
    /* The webhook can arrive while the row is still created/processing. */
    assert_true(payment_transition_allowed(ST(CREATED), ST(SUCCEEDED)));
    assert_true(payment_transition_allowed(ST(PROCESSING), ST(FAILED)));
}

static void test_terminal_never_regresses(void **unused)
{
    (void)unused;
    pagoflex_state terminal[] = {ST(SUCCEEDED), ST(FAILED), ST(CANCELED)};
    for (size_t i = 0; i < 3; i++) {
        assert_true(payment_state_terminal(terminal[i]));
        for (int to = 0; to < PAYMENT_STATE_COUNT; to++)
            assert_false(payment_transition_allowed(terminal[i], (pagoflex_state)to));
    }
    assert_false(payment_state_terminal(ST(PENDING)));
    assert_false(payment_state_terminal(ST(PROCESSING)));
}

static void test_requires_review(void **unused)
{
    (void)unused;
    /* The reconciler's give-up state: entered from any open state the
     * bank may have, left only by a final answer (a late webhook). */
    assert_string_equal(payment_state_name(ST(REQUIRES_REVIEW)), "requires_review");
    assert_int_equal(payment_state_parse("requires_review"), ST(REQUIRES_REVIEW));
    assert_false(payment_state_terminal(ST(REQUIRES_REVIEW)));
    assert_true(payment_transition_allowed(ST(PROCESSING), ST(REQUIRES_REVIEW)));
    assert_true(payment_transition_allowed(ST(PENDING), ST(REQUIRES_REVIEW)));
    assert_true(payment_transition_allowed(ST(REQUIRES_REVIEW), ST(SUCCEEDED)));
    assert_true(payment_transition_allowed(ST(REQUIRES_REVIEW), ST(FAILED)));
    assert_false(payment_transition_allowed(ST(REQUIRES_REVIEW), ST(PENDING)));
    assert_false(payment_transition_allowed(ST(REQUIRES_REVIEW), ST(CANCELED)));
    assert_false(payment_transition_allowed(ST(SUCCEEDED), ST(REQUIRES_REVIEW)));
}

static void test_refused_transitions(void **unused)
{
    (void)unused;
    /* A payment the bank may have taken is never canceled. */
    assert_false(payment_transition_allowed(ST(PROCESSING), ST(CANCELED)));
    /* Nothing goes back to created or processing from later states. */
    assert_false(payment_transition_allowed(ST(PENDING), ST(CREATED)));
    assert_false(payment_transition_allowed(ST(PENDING), ST(PROCESSING)));
    assert_false(payment_transition_allowed(ST(CREATED), ST(CREATED)));
    assert_false(payment_transition_allowed((pagoflex_state)42, ST(FAILED)));
    assert_false(payment_transition_allowed(ST(CREATED), (pagoflex_state)-1));
}

static void test_states_into_matches_allowed(void **unused)
{
    (void)unused;
    for (int to = 0; to < PAYMENT_STATE_COUNT; to++) {
        pagoflex_state from[PAYMENT_STATE_COUNT];
        size_t n = payment_states_into((pagoflex_state)to, from);
        size_t expected = 0;
        for (int f = 0; f < PAYMENT_STATE_COUNT; f++)
            expected += payment_transition_allowed((pagoflex_state)f, (pagoflex_state)to);
        assert_int_equal(n, expected);
        for (size_t i = 0; i < n; i++)
            assert_true(payment_transition_allowed(from[i], (pagoflex_state)to));
    }
    pagoflex_state from[PAYMENT_STATE_COUNT];
    assert_int_equal(payment_states_into(ST(CREATED), from), 0);
}

static void test_names_round_trip(void **unused)
{
    (void)unused;
    for (int s = 0; s < PAYMENT_STATE_COUNT; s++)
        assert_int_equal(payment_state_parse(payment_state_name((pagoflex_state)s)), s);
    assert_string_equal(payment_state_name(ST(REQUIRES_ACTION)), "requires_action");
    assert_int_equal(payment_state_parse("approved"), -1);
    assert_int_equal(payment_state_parse(NULL), -1);
    assert_string_equal(payment_state_name((pagoflex_state)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path_allowed),
        cmocka_unit_test(test_webhook_may_overtake_reply),
        cmocka_unit_test(test_terminal_never_regresses),
        cmocka_unit_test(test_requires_review),
        cmocka_unit_test(test_refused_transitions),
        cmocka_unit_test(test_states_into_matches_allowed),
        cmocka_unit_test(test_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
