/* Unit tests: currency_exponent, amount_to_decimal, amount_from_decimal
 * through the host's services table, and the API's currency check on the
 * same generated table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "payreq.h"
#include "services.h"

static services_plugin sp;

static int setup(void **state)
{
    *state = arena_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    arena_free(*state);
    return 0;
}

static void test_exponents_pinned(void **state)
{
    (void)state;
    int (*exp)(const char *) = sp.table.currency_exponent;
    assert_int_equal(exp("USD"), 2);
    assert_int_equal(exp("EUR"), 2);
    assert_int_equal(exp("JPY"), 0);
    assert_int_equal(exp("KWD"), 3);
    assert_int_equal(exp("IQD"), 3); /* ISO 4217, not CLDR's display digits (0) */
    assert_int_equal(exp("CLF"), 4);
    assert_int_equal(exp("XCG"), 2); /* newer than the ISO list: from CLDR */
    assert_int_equal(exp("ZWG"), 2);
    /* Withdrawn, not a currency of payment, not a code. */
    static const char *const refused[] = {"ANG", "ZWL", "XTS", "XXX", "XAU", "XDR",
                                          "usd", "US", "USDX", "", "ABC"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(exp(refused[i]), -1);
        assert_false(currency_is_iso4217(refused[i]));
    }
    assert_int_equal(exp(NULL), -1);
    /* The API's check uses the same table. */
    assert_true(currency_is_iso4217("XCG"));
    assert_true(currency_is_iso4217("ZWG"));
    assert_true(currency_is_iso4217("CLF"));
}

static void test_amount_to_decimal(void **state)
{
    char *(*to)(pagoflex_arena *, int64_t, const char *) = sp.table.amount_to_decimal;
    assert_string_equal(to(*state, 1050, "USD"), "10.50");
    assert_string_equal(to(*state, 5, "USD"), "0.05");
    assert_string_equal(to(*state, 0, "USD"), "0.00");
    assert_string_equal(to(*state, -5, "USD"), "-0.05");
    assert_string_equal(to(*state, 1050, "JPY"), "1050");
    assert_string_equal(to(*state, 1050, "KWD"), "1.050");
    assert_string_equal(to(*state, 1, "CLF"), "0.0001");
    assert_string_equal(to(*state, INT64_MAX, "USD"), "92233720368547758.07");
    assert_string_equal(to(*state, INT64_MIN, "USD"), "-92233720368547758.08");
    assert_null(to(*state, 1, "ANG"));
    assert_null(to(*state, 1, "XXX"));
}

static void test_amount_from_decimal(void **state)
{
    (void)state;
    int (*from)(const char *, const char *, int64_t *) = sp.table.amount_from_decimal;
    int64_t m = 0;
    assert_int_equal(from("10.50", "USD", &m), PAGOFLEX_OK);
    assert_int_equal(m, 1050);
    assert_int_equal(from("10.5", "USD", &m), PAGOFLEX_OK);
    assert_int_equal(m, 1050);
    assert_int_equal(from("10", "USD", &m), PAGOFLEX_OK);
    assert_int_equal(m, 1000);
    assert_int_equal(from("-0.05", "USD", &m), PAGOFLEX_OK);
    assert_int_equal(m, -5);
    assert_int_equal(from("1050", "JPY", &m), PAGOFLEX_OK);
    assert_int_equal(m, 1050);
    assert_int_equal(from("1.050", "KWD", &m), PAGOFLEX_OK);
    assert_int_equal(m, 1050);
    assert_int_equal(from("92233720368547758.07", "USD", &m), PAGOFLEX_OK);
    assert_int_equal(m, INT64_MAX);
    assert_int_equal(from("-92233720368547758.08", "USD", &m), PAGOFLEX_OK);
    assert_int_equal(m, INT64_MIN);
    m = 42;
    static const char *const bad_usd[] = {"10.505", "1.2.3", ".5", "5.", "+5", " 5", "5 ",
                                          "", "-", "1e3", "0x10", "92233720368547758.08",
                                          "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_usd / sizeof bad_usd[0]; i++)
        assert_int_equal(from(bad_usd[i], "USD", &m), PAGOFLEX_ERR_INVALID);
    assert_int_equal(from("10.5", "JPY", &m), PAGOFLEX_ERR_INVALID);
    assert_int_equal(from("10.0", "JPY", &m), PAGOFLEX_ERR_INVALID);
    assert_int_equal(from("1", "ANG", &m), PAGOFLEX_ERR_UNSUPPORTED);
    assert_int_equal(m, 42); /* untouched on error */
}

static void test_round_trip_every_currency(void **state)
{
    /* Every code the API accepts has an exponent and survives a round trip. */
    static const char *const codes[] = {"USD", "JPY", "KWD", "CLF", "XCG", "BHD", "XOF"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        int64_t back = 0;
        char *s = sp.table.amount_to_decimal(*state, 123456789, codes[i]);
        assert_non_null(s);
        assert_int_equal(sp.table.amount_from_decimal(s, codes[i], &back), PAGOFLEX_OK);
        assert_int_equal(back, 123456789);
    }
}

int main(void)
{
    services_init(&sp, "test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exponents_pinned),
        cmocka_unit_test_setup_teardown(test_amount_to_decimal, setup, teardown),
        cmocka_unit_test(test_amount_from_decimal),
        cmocka_unit_test_setup_teardown(test_round_trip_every_currency, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
