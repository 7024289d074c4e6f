/* Unit tests: sha256, stdwebhooks_sign and stdwebhooks_verify through the
 * host's services table. The known-answer values were computed with
 * `openssl dgst -sha256 -mac HMAC` (see each test), not by this code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "services.h"

static services_plugin sp;

/* base64("pagoflex-test-key-0123456789abcd") */
#define SECRET "whsec_cGFnb2ZsZXgtdGVzdC1rZXktMDEyMzQ1Njc4OWFiY2Q="
#define MSG_ID "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define TS 1700000000
#define BODY "{\"type\":\"payment.succeeded\",\"id\":\"pay_1\"}"

static int setup(void **state)
{
    services_init(&sp, "test");
    *state = arena_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    arena_free(*state);
    return 0;
}

static void test_sha256_known_answer(void **state)
{
    (void)state;
    unsigned char out[32];
    char hex[65];
    assert_int_equal(sp.table.sha256("abc", 3, out), PAGOFLEX_OK);
    sp.table.hex_encode(out, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(sp.table.sha256(NULL, 0, out), PAGOFLEX_OK);
    sp.table.hex_encode(out, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* printf 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1700000000.{"type":...}' |
 *   openssl dgst -sha256 -mac HMAC -macopt key:pagoflex-test-key-0123456789abcd -binary | base64 */
#define EXPECTED_B64 "y5yCrTgOiGp0dE1RA7OJO293IaIezWipD59gjLxBW3g="
static const char *expected_signature(void)
{
    return "v1," EXPECTED_B64;
}

static void test_sign_known_answer(void **state)
{
    char *sig = NULL;
    assert_int_equal(sp.table.stdwebhooks_sign(*state, SECRET, MSG_ID, TS,
                                               (const unsigned char *)BODY, strlen(BODY), &sig),
                     PAGOFLEX_OK);
    assert_string_equal(sig, expected_signature());
    /* The prefix is optional, as in the official libraries. */
    char *bare = NULL;
    assert_int_equal(sp.table.stdwebhooks_sign(*state, SECRET + 6, MSG_ID, TS,
                                               (const unsigned char *)BODY, strlen(BODY), &bare),
                     PAGOFLEX_OK);
    assert_string_equal(bare, sig);
    char *untouched = (char *)"x";
    assert_int_equal(sp.table.stdwebhooks_sign(*state, "whsec_not base64!", MSG_ID, TS,
                                               (const unsigned char *)BODY, strlen(BODY),
                                               &untouched),
                     PAGOFLEX_ERR_INVALID);
    assert_string_equal(untouched, "x");
}

static int verify(const char *secret, const char *id, const char *ts, const char *sig,
                  const char *body, int64_t now)
{
    pagoflex_header h[3];
    size_t n = 0;
    if (id)
        h[n++] = (pagoflex_header){"Webhook-Id", id};
    if (ts)
        h[n++] = (pagoflex_header){"webhook-timestamp", ts};
    if (sig)
        h[n++] = (pagoflex_header){"WEBHOOK-SIGNATURE", sig};
    return sp.table.stdwebhooks_verify(secret, h, n, (const unsigned char *)body, strlen(body),
                                       now, 300);
}

static void test_verify_accepts(void **state)
{
    (void)state;
    const char *sig = expected_signature();
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", sig, BODY, TS), PAGOFLEX_OK);
    /* Within tolerance either way. */
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", sig, BODY, TS + 300), PAGOFLEX_OK);
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", sig, BODY, TS - 300), PAGOFLEX_OK);
    /* One of several signatures (key rotation), unknown versions skipped. */
    char list[256];
    snprintf(list, sizeof list, "v1a,abc v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= %s",
             sig);
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", list, BODY, TS), PAGOFLEX_OK);
}

static void test_verify_refuses(void **state)
{
    (void)state;
    const char *sig = expected_signature();
    /* Tampered body, id, timestamp. */
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", sig, BODY " ", TS),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(SECRET, "msg_other", "1700000000", sig, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(SECRET, MSG_ID, "1700000001", sig, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Another secret. */
    assert_int_equal(verify("whsec_b3RoZXItc2VjcmV0LWtleS0wMTIzNDU2Nzg5YWJj", MSG_ID,
                            "1700000000", sig, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Stale or future. */
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", sig, BODY, TS + 301),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", sig, BODY, TS - 301),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Malformed timestamp, missing headers, wrong version, one flipped bit. */
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000.0", sig, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(SECRET, NULL, "1700000000", sig, BODY, TS), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(SECRET, MSG_ID, NULL, sig, BODY, TS), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", NULL, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
    char v2[128];
    snprintf(v2, sizeof v2, "v2,%s", sig + 3);
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", v2, BODY, TS), PAGOFLEX_ERR_SIGNATURE);
    char flipped[128];
    snprintf(flipped, sizeof flipped, "%s", sig);
    flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(SECRET, MSG_ID, "1700000000", flipped, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify("whsec_", MSG_ID, "1700000000", sig, BODY, TS),
                     PAGOFLEX_ERR_SIGNATURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_answer),
        cmocka_unit_test_setup_teardown(test_sign_known_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_accepts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses, setup, teardown),
    };
    services_init(&sp, "test");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
