/* The test kit drives banco_x.so as an outside plugin author would: no host
 * code is linked, only libpagoflex_testkit and the SDK header. Also the
 * test of the kit itself: its Banco-X signer must produce what banco_x
 * accepts, and its clock must move host->now(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#define SECRET "whsec_testkit"
#define NOW INT64_C(1800000000)

static const char *plugin_path;

typedef struct fx {
    void *handle;
    const pagoflex_connector *c;
    pagoflex_testkit *tk;
    void *state;
} fx;

static int setup(void **s)
{
    static fx f;
    memset(&f, 0, sizeof f);
    f.handle = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(f.handle);
    pagoflex_connector_entry_fn entry;
    void *sym = dlsym(f.handle, PAGOFLEX_ENTRY_SYMBOL);
    assert_non_null(sym);
    memcpy(&entry, &sym, sizeof entry);
    f.c = entry();
    f.tk = pagoflex_testkit_new();
    assert_non_null(f.tk);
    pagoflex_testkit_quiet(f.tk, 1);
    assert_int_equal(pagoflex_testkit_credential_set(f.tk, "BANCOX_API_KEY", "sk_test_1"), 0);
    assert_int_equal(pagoflex_testkit_credential_set(f.tk, "BANCOX_SECRET", SECRET), 0);
    assert_int_equal(f.c->init(pagoflex_testkit_host(f.tk), pagoflex_testkit_credentials(f.tk),
                               &f.state),
                     PAGOFLEX_OK);
    pagoflex_testkit_set_now(NOW);
    *s = &f;
    return 0;
}

static int teardown(void **s)
{
    fx *f = *s;
    f->c->fini(f->state);
    pagoflex_testkit_free(f->tk);
    pagoflex_testkit_set_now(0);
    dlclose(f->handle);
    return 0;
}

static int verify(fx *f, const char *body, const char *sig, size_t cut)
{
    pagoflex_testkit_webhook wh = pagoflex_testkit_webhook_new(f->tk, body);
    if (sig)
        assert_int_equal(pagoflex_testkit_webhook_header(f->tk, &wh, "X-BancoX-Signature", sig), 0);
    return f->c->verify_webhook(f->state, wh.headers, wh.header_count, wh.body,
                                wh.body_len - cut, pagoflex_testkit_arena(f->tk));
}

static void test_signed_webhook_is_accepted(void **s)
{
    fx *f = *s;
    const char *body = "{\"event_id\":\"evt_1\",\"tx_id\":\"bx_1\",\"status\":\"APPROVED\"}";
    char *sig = pagoflex_testkit_sign_bancox(f->tk, SECRET, NOW, body, strlen(body));
    assert_non_null(sig);
    assert_int_equal(strncmp(sig, "t=1800000000,v1=", 16), 0);
    assert_int_equal(verify(f, body, sig, 0), PAGOFLEX_OK);
}

static void test_unsigned_tampered_stale_are_refused(void **s)
{
    fx *f = *s;
    const char *body = "{\"event_id\":\"evt_2\",\"tx_id\":\"bx_2\",\"status\":\"APPROVED\"}";
    char *sig = pagoflex_testkit_sign_bancox(f->tk, SECRET, NOW, body, strlen(body));
    char *stale = pagoflex_testkit_sign_bancox(f->tk, SECRET, NOW - 301, body, strlen(body));
    char *other = pagoflex_testkit_sign_bancox(f->tk, "wrong", NOW, body, strlen(body));
    assert_int_equal(verify(f, body, NULL, 0), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, body, sig, 1), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, body, stale, 0), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, body, other, 0), PAGOFLEX_ERR_SIGNATURE);
    assert_true(pagoflex_testkit_log_count(f->tk, PAGOFLEX_LOG_WARN) >= 4);
    /* The clock setter moves host->now(): the stale signature is fresh now. */
    pagoflex_testkit_set_now(NOW - 301);
    assert_int_equal(verify(f, body, stale, 0), PAGOFLEX_OK);
    pagoflex_testkit_set_now(NOW);
}

static void test_requests_and_answers(void **s)
{
    fx *f = *s;
    pagoflex_arena *a = pagoflex_testkit_arena(f->tk);
    pagoflex_payment p = pagoflex_testkit_payment(f->tk, 1050, "ARS");
    pagoflex_http_request req;
    assert_int_equal(f->c->build_request(f->state, &p, a, &req), PAGOFLEX_OK);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "https://api.bancox.com/pay");
    pagoflex_payment_result res;
    pagoflex_http_response ok =
        pagoflex_testkit_response(f->tk, 200, "{\"status\":\"OK\",\"id\":\"bx_9\"}");
    assert_int_equal(f->c->handle_response(f->state, &p, &ok, a, &res), PAGOFLEX_OK);
    assert_int_equal(res.state, PAGOFLEX_STATE_PENDING);
    assert_string_equal(res.provider_reference_id, "bx_9");
    pagoflex_http_response lost = pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_CONNECT);
    assert_int_equal(f->c->handle_response(f->state, &p, &lost, a, &res), PAGOFLEX_OK);
    assert_int_equal(res.state, PAGOFLEX_STATE_PROCESSING);
    pagoflex_testkit_reset(f->tk);
}

static void test_hmac_hex_known_answer(void **s)
{
    fx *f = *s;
    /* RFC 4231 test case 2. */
    const char *mac = pagoflex_testkit_hmac_hex(f->tk, "Jefe", "what do ya want for nothing?", 28);
    assert_string_equal(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <banco_x.so>\n", argv[0]);
        return 2;
    }
    plugin_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_webhook_is_accepted),
        cmocka_unit_test(test_unsigned_tampered_stale_are_refused),
        cmocka_unit_test(test_requests_and_answers),
        cmocka_unit_test(test_hmac_hex_known_answer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
