/* Unit tests for the request hash of Idempotency-Key (host/lifecycle/idempotency.c, issue 14). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "idempotency.h"

static idempotency_hash hash_of(const char *body)
{
    idempotency_hash h;
    assert_int_equal(idempotency_request_hash(body, strlen(body), &h), 0);
    return h;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char d[32];
    assert_true(EVP_Digest(s, strlen(s), d, NULL, EVP_sha256(), NULL));
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_same_parameters_any_order_or_spacing(void **unused)
{
    (void)unused;
    idempotency_hash a =
        hash_of("{\"amount\":1050,\"currency\":\"ARS\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}");
    idempotency_hash b =
        hash_of("{ \"metadata\" : {\"b\":\"2\", \"a\":\"1\"},\n \"currency\":\"ARS\", \"amount\": 1050 }");
    assert_string_equal(a.canonical, b.canonical);
    assert_string_not_equal(a.bytes, b.bytes);
    assert_true(idempotency_hash_matches(&b, a.canonical));
    idempotency_hash c =
        hash_of("{\"amount\":1051,\"currency\":\"ARS\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}");
    assert_false(idempotency_hash_matches(&c, a.canonical));
    /* \u00e9 and the raw UTF-8 é are the same parameter. */
    assert_string_equal(hash_of("{\"d\":\"caf\\u00e9\"}").canonical,
                        hash_of("{\"d\":\"caf\xc3\xa9\"}").canonical);
    /* An empty body is {} (capture, cancel). */
    assert_string_equal(hash_of("").canonical, hash_of("{ }").canonical);
}

static void test_a_hash_stored_before_the_upgrade_matches_its_bytes(void **unused)
{
    (void)unused;
    const char *body = "{\"connector\": \"BANCO_X\", \"amount\": 1050, \"currency\": \"ARS\"}";
    char old[65];
    sha256_hex(body, old); /* what a host before issue 14 stored */
    idempotency_hash h = hash_of(body);
    assert_string_equal(h.bytes, old);
    assert_string_not_equal(h.canonical, old);
    assert_true(idempotency_hash_matches(&h, old));
    /* The same parameters in other bytes do not match an old byte hash. */
    idempotency_hash other = hash_of("{\"amount\": 1050, \"connector\": \"BANCO_X\", \"currency\": \"ARS\"}");
    assert_false(idempotency_hash_matches(&other, old));
    assert_false(idempotency_hash_matches(&h, NULL));
}

static void test_not_json_is_its_bytes(void **unused)
{
    (void)unused;
    idempotency_hash h = hash_of("{\"amount\":");
    assert_string_equal(h.canonical, h.bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_parameters_any_order_or_spacing),
        cmocka_unit_test(test_a_hash_stored_before_the_upgrade_matches_its_bytes),
        cmocka_unit_test(test_not_json_is_its_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
