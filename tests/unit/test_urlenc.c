/* Unit tests: url_encode, form_encode, form_decode through the host's
 * services table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "services.h"

static services_plugin sp;

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

static void test_url_encode_keeps_unreserved(void **state)
{
    const pagoflex_host_services *h = &sp.table;
    assert_string_equal(h->url_encode(*state, "AZaz09-._~", 10), "AZaz09-._~");
    assert_string_equal(h->url_encode(*state, "a b/c?d=e&f+g%", 14),
                        "a%20b%2Fc%3Fd%3De%26f%2Bg%25");
    assert_string_equal(h->url_encode(*state, "\xc3\xa9", 2), "%C3%A9");
    assert_string_equal(h->url_encode(*state, "", 0), "");
    /* The length is honoured: bytes after it are not encoded. */
    assert_string_equal(h->url_encode(*state, "abc", 1), "a");
}

static void test_form_encode(void **state)
{
    const pagoflex_host_services *h = &sp.table;
    pagoflex_header pairs[] = {
        {"grant_type", "client_credentials"}, {"scope", "pay refund"},
        {"a+b", "50%=half&more"}, {"empty", ""},
    };
    assert_string_equal(h->form_encode(*state, pairs, 4),
                        "grant_type=client_credentials&scope=pay+refund"
                        "&a%2Bb=50%25%3Dhalf%26more&empty=");
    assert_string_equal(h->form_encode(*state, pairs, 0), "");
    /* A literal "%20" in the input is "%2520", never a '+'. */
    pagoflex_header lit[] = {{"x", "%20"}};
    assert_string_equal(h->form_encode(*state, lit, 1), "x=%2520");
}

static void test_form_decode(void **state)
{
    const pagoflex_host_services *h = &sp.table;
    pagoflex_header *p = NULL;
    size_t n = 0;
    const char *q = "a=1&b=x+y&c=%2B%26%3d&&d&e=&%C3%A9=caf%c3%a9&";
    assert_int_equal(h->form_decode(*state, q, strlen(q), &p, &n), PAGOFLEX_OK);
    assert_int_equal(n, 6);
    assert_string_equal(p[0].name, "a");
    assert_string_equal(p[0].value, "1");
    assert_string_equal(p[1].value, "x y");
    assert_string_equal(p[2].value, "+&=");
    assert_string_equal(p[3].name, "d");
    assert_string_equal(p[3].value, "");
    assert_string_equal(p[4].name, "e");
    assert_string_equal(p[4].value, "");
    assert_string_equal(p[5].name, "\xc3\xa9");
    assert_string_equal(p[5].value, "caf\xc3\xa9");
    /* Invalid UTF-8 after decoding is kept as bytes: the plugin decides. */
    assert_int_equal(h->form_decode(*state, "k=%FF", 5, &p, &n), PAGOFLEX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].value, "\xff");
    /* The length is honoured. */
    assert_int_equal(h->form_decode(*state, "a=1&b=2", 3, &p, &n), PAGOFLEX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(h->form_decode(*state, "", 0, &p, &n), PAGOFLEX_OK);
    assert_int_equal(n, 0);
    assert_null(p);
}

static void test_form_decode_refuses_bad_escapes(void **state)
{
    const pagoflex_host_services *h = &sp.table;
    static const char *const bad[] = {"a=%", "a=%4", "a=%zz", "a=%4g", "%=1", "a=%00b",
                                      "ok=1&a=1%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pagoflex_header *p = (pagoflex_header *)1;
        size_t n = 99;
        assert_int_equal(h->form_decode(*state, bad[i], strlen(bad[i]), &p, &n),
                         PAGOFLEX_ERR_INVALID);
        /* Outputs untouched on error. */
        assert_ptr_equal(p, (pagoflex_header *)1);
        assert_int_equal(n, 99);
    }
}

static void test_round_trip(void **state)
{
    const pagoflex_host_services *h = &sp.table;
    pagoflex_header in[] = {{"n a+me", "v&l=u%e \xe2\x82\xac"}, {"x", "y"}};
    char *body = h->form_encode(*state, in, 2);
    assert_non_null(body);
    pagoflex_header *out = NULL;
    size_t n = 0;
    assert_int_equal(h->form_decode(*state, body, strlen(body), &out, &n), PAGOFLEX_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].name, in[0].name);
    assert_string_equal(out[0].value, in[0].value);
    assert_string_equal(out[1].value, "y");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_url_encode_keeps_unreserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_encode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_decode_refuses_bad_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
