/* Unit tests for POST /v1/payments body validation (host/payreq.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "payreq.h"

static pagoflex_arena *arena;

static int setup(void **unused)
{
    (void)unused;
    arena = arena_new();
    return arena ? 0 : -1;
}

static int teardown(void **unused)
{
    (void)unused;
    arena_free(arena);
    return 0;
}

static void expect_error(const char *body, int status, const char *code, const char *field)
{
    payreq p;
    memset(&p, 0x5a, sizeof p);
    payreq before = p;
    payreq_error e = {0};
    assert_int_equal(payreq_parse(body, strlen(body), arena, &p, &e), -1);
    assert_int_equal(e.status, status);
    assert_string_equal(e.code, code);
    if (field)
        assert_string_equal(e.field, field);
    else
        assert_null(e.field);
    assert_true(strlen(e.message) > 0);
    assert_memory_equal(&p, &before, sizeof p); /* output untouched on error */
}

static void test_valid_full(void **unused)
{
    (void)unused;
    const char *body = "{\"amount\": 1050, \"currency\": \"ARS\", \"connector\": \"BANCO_X\","
                       " \"reference\": \"order-7\", \"description\": \"caf\\u00e9\"}";
    payreq p;
    payreq_error e;
    assert_int_equal(payreq_parse(body, strlen(body), arena, &p, &e), 0);
    assert_int_equal(p.amount, 1050);
    assert_string_equal(p.currency, "ARS");
    assert_string_equal(p.connector, "BANCO_X");
    assert_string_equal(p.reference, "order-7");
    assert_string_equal(p.description, "caf\xc3\xa9");
}

static void test_optional_fields_absent_or_null(void **unused)
{
    (void)unused;
    const char *body = "{\"amount\": 1, \"currency\": \"USD\", \"connector\": \"X\", \"reference\": null}";
    payreq p;
    payreq_error e;
    assert_int_equal(payreq_parse(body, strlen(body), arena, &p, &e), 0);
    assert_null(p.reference);
    assert_null(p.description);
}

static void test_flow_fields(void **unused)
{
    (void)unused;
    const char *body = "{\"amount\": 5, \"currency\": \"ARS\", \"connector\": \"X\","
                       " \"capture_method\": \"manual\", \"return_url\": \"https://shop.example/back\","
                       " \"payment_method\": {\"type\": \"card_token\", \"token\": \"tok_3ds\"}}";
    payreq p;
    payreq_error e;
    assert_int_equal(payreq_parse(body, strlen(body), arena, &p, &e), 0);
    assert_true(p.manual_capture);
    assert_string_equal(p.return_url, "https://shop.example/back");
    assert_string_equal(p.payment_method_type, "card_token");
    assert_string_equal(p.payment_method_token, "tok_3ds");
    const char *plain = "{\"amount\": 5, \"currency\": \"ARS\", \"connector\": \"X\"}";
    assert_int_equal(payreq_parse(plain, strlen(plain), arena, &p, &e), 0);
    assert_false(p.manual_capture);
    assert_null(p.return_url);
    assert_null(p.payment_method_token);
#define BASE "{\"amount\": 5, \"currency\": \"ARS\", \"connector\": \"X\", "
    expect_error(BASE "\"capture_method\": \"later\"}", 422, "invalid_field", "capture_method");
    expect_error(BASE "\"capture_method\": 1}", 422, "invalid_field", "capture_method");
    expect_error(BASE "\"return_url\": \"ftp://x\"}", 422, "invalid_field", "return_url");
    expect_error(BASE "\"return_url\": \"https://a b\"}", 422, "invalid_field", "return_url");
    expect_error(BASE "\"payment_method\": \"tok_1\"}", 422, "invalid_field", "payment_method");
    expect_error(BASE "\"payment_method\": {\"type\": \"card\", \"token\": \"tok_1\"}}", 422,
                 "invalid_field", "payment_method.type");
    expect_error(BASE "\"payment_method\": {\"type\": \"card_token\"}}", 422, "missing_field",
                 "payment_method.token");
    expect_error(BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"4111111111111111\"}}",
                 422, "invalid_field", "payment_method.token");
    expect_error(BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"4111-1111-1111-1111\"}}",
                 422, "invalid_field", "payment_method.token");
    expect_error(BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"tok_ a\"}}",
                 422, "invalid_field", "payment_method.token");
    /* PSPs' own token shapes (Stripe PaymentMethods, Mercado Pago's
     * "<method>:<card token>", an Adyen Drop-in object) are bank tokens too. */
    const char *psp[][2] = {
        {BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"pm_card_visa\"}}", "pm_card_visa"},
        {BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"visa:9f2c1b7e4a6d\"}}",
         "visa:9f2c1b7e4a6d"},
        {BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"{\\\"type\\\":\\\"scheme\\\"}\"}}",
         "{\"type\":\"scheme\"}"},
    };
    for (size_t i = 0; i < sizeof psp / sizeof psp[0]; i++) {
        assert_int_equal(payreq_parse(psp[i][0], strlen(psp[i][0]), arena, &p, &e), 0);
        assert_string_equal(p.payment_method_token, psp[i][1]);
    }
#undef BASE
}

static void test_malformed(void **unused)
{
    (void)unused;
    expect_error("", 400, "invalid_json", NULL);
    expect_error("{\"amount\":", 400, "invalid_json", NULL);
    expect_error("[]", 400, "invalid_json", NULL);
    expect_error("\"text\"", 400, "invalid_json", NULL);
    /* Duplicate keys are ambiguous: which amount did the client mean? */
    expect_error("{\"amount\": 1, \"amount\": 2, \"currency\": \"ARS\", \"connector\": \"X\"}", 400,
                 "invalid_json", NULL);
}

static void test_amount(void **unused)
{
    (void)unused;
    expect_error("{\"currency\": \"ARS\", \"connector\": \"X\"}", 422, "missing_field", "amount");
    const char *bad[] = {"0", "-1", "1.5", "\"10\"", "true", "null", "10000000000000001", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"amount\": %s, \"currency\": \"ARS\", \"connector\": \"X\"}", bad[i]);
        expect_error(body, 422, "invalid_field", "amount");
    }
}

static void test_currency(void **unused)
{
    (void)unused;
    expect_error("{\"amount\": 1, \"connector\": \"X\"}", 422, "missing_field", "currency");
    const char *bad[] = {"\"ars\"", "\"XXX\"", "\"EURO\"", "\"\"", "978", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"amount\": 1, \"currency\": %s, \"connector\": \"X\"}", bad[i]);
        expect_error(body, 422, "invalid_field", "currency");
    }
    assert_true(currency_is_iso4217("EUR"));
    assert_true(currency_is_iso4217("UYU"));
    assert_true(currency_is_iso4217("ZWG"));
    assert_false(currency_is_iso4217("ZWL")); /* withdrawn 2024-08-31 */
    assert_true(currency_is_iso4217("AED"));
    assert_false(currency_is_iso4217("ABC"));
    assert_false(currency_is_iso4217(NULL));
}

static void test_connector_and_strings(void **unused)
{
    (void)unused;
    expect_error("{\"amount\": 1, \"currency\": \"ARS\"}", 422, "missing_field", "connector");
    expect_error("{\"amount\": 1, \"currency\": \"ARS\", \"connector\": 5}", 422, "invalid_field", "connector");
    expect_error("{\"amount\": 1, \"currency\": \"ARS\", \"connector\": \"\"}", 422, "invalid_field", "connector");
    expect_error("{\"amount\": 1, \"currency\": \"ARS\", \"connector\": \"X\", \"reference\": 3}", 422,
                 "invalid_field", "reference");
    /* Jansson refuses \u0000 unless asked: such a body is not JSON we take. */
    expect_error("{\"amount\": 1, \"currency\": \"ARS\", \"connector\": \"X\", \"reference\": \"a\\u0000b\"}",
                 400, "invalid_json", NULL);
    char body[2048];
    char desc[1100];
    memset(desc, 'd', sizeof desc - 1);
    desc[sizeof desc - 1] = '\0';
    snprintf(body, sizeof body, "{\"amount\": 1, \"currency\": \"ARS\", \"connector\": \"X\", \"description\": \"%s\"}",
             desc);
    expect_error(body, 422, "invalid_field", "description");
}

/* Issue 14: no parameter is dropped unread; numbers beyond 64 bits are the
 * field's own error. */
static void test_strict_fields(void **unused)
{
    (void)unused;
#define BASE "{\"amount\": 5, \"currency\": \"ARS\", \"connector\": \"X\", "
    expect_error(BASE "\"foo\": 1}", 400, "unknown_parameter", "foo");
    expect_error(BASE "\"Amount\": 1}", 400, "unknown_parameter", "Amount");
    expect_error(BASE "\"payment_method\": {\"type\": \"card_token\", \"token\": \"tok_1\", \"cvc\": 1}}", 400,
                 "unknown_parameter", "payment_method.cvc");
    const char *huge[] = {"12345678901234567890", "-12345678901234567890", "99999999999999999999999999999999"};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"amount\": %s, \"currency\": \"ARS\", \"connector\": \"X\"}", huge[i]);
        expect_error(body, 422, "invalid_field", "amount");
    }
    /* Another number of the body overflowing leaves the amount an integer. */
    expect_error(BASE "\"metadata\": {\"n\": 123456789012345678901}}", 422, "invalid_field", "metadata[n]");
    expect_error("{\"amount\": 12345678901234567890, \"currency\": \"ARS\"", 400, "invalid_json", NULL);
#undef BASE
}

static void test_metadata(void **unused)
{
    (void)unused;
#define BASE "{\"amount\": 5, \"currency\": \"ARS\", \"connector\": \"X\", "
    payreq p;
    payreq_error e;
    const char *ok = BASE "\"metadata\": {\"order\": \"A-17\", \"caf\u00e9\": \"s\u00ed\"}}";
    assert_int_equal(payreq_parse(ok, strlen(ok), arena, &p, &e), 0);
    assert_string_equal(p.metadata, "{\"caf\xc3\xa9\":\"s\xc3\xad\",\"order\":\"A-17\"}");
    const char *none = BASE "\"metadata\": null}";
    assert_int_equal(payreq_parse(none, strlen(none), arena, &p, &e), 0);
    assert_null(p.metadata);
    expect_error(BASE "\"metadata\": [\"a\"]}", 422, "invalid_field", "metadata");
    expect_error(BASE "\"metadata\": {\"n\": 1}}", 422, "invalid_field", "metadata[n]");
    expect_error(BASE "\"metadata\": {\"n\": null}}", 422, "invalid_field", "metadata[n]");
    expect_error(BASE "\"metadata\": {\"\": \"v\"}}", 422, "invalid_field", "metadata[]");
    char body[40000];
    char key[42], value[502];
    memset(key, 'k', 41);
    key[41] = '\0';
    snprintf(body, sizeof body, BASE "\"metadata\": {\"%s\": \"v\"}}", key);
    expect_error(body, 422, "invalid_field", "metadata[kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk]");
    key[40] = '\0'; /* 40 characters is allowed */
    memset(value, 'v', 501);
    value[501] = '\0';
    snprintf(body, sizeof body, BASE "\"metadata\": {\"%s\": \"%s\"}}", key, value);
    expect_error(body, 422, "invalid_field", "metadata[kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk]");
    value[500] = '\0';
    snprintf(body, sizeof body, BASE "\"metadata\": {\"%s\": \"%s\"}}", key, value);
    assert_int_equal(payreq_parse(body, strlen(body), arena, &p, &e), 0);
    /* 50 keys are allowed, 51 are not. */
    size_t n = (size_t)snprintf(body, sizeof body, BASE "\"metadata\": {");
    for (int i = 0; i < 51; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s\"k%d\": \"v\"", i ? ", " : "", i);
    snprintf(body + n, sizeof body - n, "}}");
    expect_error(body, 422, "invalid_field", "metadata");
    char *fifty = strstr(body, ", \"k50\"");
    memcpy(fifty, "}}", 3);
    assert_int_equal(payreq_parse(body, strlen(body), arena, &p, &e), 0);
#undef BASE
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_full),    cmocka_unit_test(test_optional_fields_absent_or_null),
        cmocka_unit_test(test_flow_fields),   cmocka_unit_test(test_malformed),     cmocka_unit_test(test_amount),
        cmocka_unit_test(test_currency),      cmocka_unit_test(test_connector_and_strings),
        cmocka_unit_test(test_strict_fields), cmocka_unit_test(test_metadata),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
