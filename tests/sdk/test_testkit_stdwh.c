/* The test kit's 1.2 helpers against the stdwh_pay fixture, loaded as a
 * plugin author's test would load any .so: pagoflex_testkit_flow_input and
 * pagoflex_testkit_run_flow per flow, pagoflex_testkit_webhook_roundtrip and
 * pagoflex_testkit_webhook_tampered on its Standard-Webhooks-style
 * signatures. The skip-the-HMAC-compare build (second argument) must be
 * caught by the tampering helper. */
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

#define SECRET "whsec_dGVzdGtpdC1zdGR3aC1zZWNyZXQ="
#define NOW INT64_C(1800000000)

static const char *plugin_path, *skipcmp_path;

typedef struct fx {
    void *handle;
    const pagoflex_connector *c;
    pagoflex_testkit *tk;
    void *state;
} fx;

static int fx_open(fx *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(f->handle);
    pagoflex_connector_entry_fn entry;
    void *sym = dlsym(f->handle, PAGOFLEX_ENTRY_SYMBOL);
    assert_non_null(sym);
    memcpy(&entry, &sym, sizeof entry);
    f->c = entry();
    f->tk = pagoflex_testkit_new();
    assert_non_null(f->tk);
    pagoflex_testkit_quiet(f->tk, 1);
    assert_int_equal(pagoflex_testkit_credential_set(f->tk, "STDWH_SECRET", SECRET), 0);
    assert_int_equal(f->c->init(pagoflex_testkit_host(f->tk), pagoflex_testkit_credentials(f->tk),
                                &f->state),
                     PAGOFLEX_OK);
    pagoflex_testkit_set_now(NOW);
    return 0;
}

static int setup(void **s)
{
    static fx f;
    fx_open(&f, plugin_path);
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

/* flow_input gives each flow what the host gives it. */
static void test_flow_input_per_flow(void **s)
{
    fx *f = *s;
    pagoflex_payment p = pagoflex_testkit_payment(f->tk, 1050, "USD");
    pagoflex_flow_input a = pagoflex_testkit_flow_input(f->tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    assert_non_null(a.payment);
    assert_ptr_not_equal(a.payment, &p); /* a copy in the arena */
    assert_string_equal(a.operation_id, p.id);
    assert_int_equal(a.capture, 1);
    assert_null(a.payment->provider_reference_id);
    pagoflex_flow_input cap = pagoflex_testkit_flow_input(f->tk, PAGOFLEX_FLOW_CAPTURE, &p);
    assert_non_null(cap.payment->provider_reference_id);
    assert_int_equal(cap.amount, 1050);
    assert_string_not_equal(cap.operation_id, p.id);
    pagoflex_flow_input ref = pagoflex_testkit_flow_input(f->tk, PAGOFLEX_FLOW_REFUND, &p);
    assert_string_equal(ref.operation_id, ref.refund_id);
    assert_int_equal(ref.amount_captured, 1050);
    pagoflex_flow_input rs = pagoflex_testkit_flow_input(f->tk, PAGOFLEX_FLOW_REFUND_SYNC, &p);
    assert_non_null(rs.refund_provider_reference_id);
    assert_int_equal(rs.amount, 0);
}

/* run_flow: request then answer, for every flow stdwh_pay declares. */
static void test_run_every_flow(void **s)
{
    fx *f = *s;
    static const struct {
        pagoflex_flow flow;
        const char *method, *url_part, *answer;
        pagoflex_state want;
    } cases[] = {
        {PAGOFLEX_FLOW_AUTHORIZE, "POST", "/v1/payments", "{\"id\":\"sw_1\",\"status\":\"authorized\"}",
         PAGOFLEX_STATE_REQUIRES_CAPTURE},
        {PAGOFLEX_FLOW_CAPTURE, "POST", "/capture", "{\"status\":\"succeeded\",\"amount\":1050}",
         PAGOFLEX_STATE_SUCCEEDED},
        {PAGOFLEX_FLOW_VOID, "POST", "/void", "{\"status\":\"canceled\"}", PAGOFLEX_STATE_SUCCEEDED},
        {PAGOFLEX_FLOW_REFUND, "POST", "/v1/refunds", "{\"id\":\"swr_1\",\"status\":\"pending\"}",
         PAGOFLEX_STATE_PENDING},
        {PAGOFLEX_FLOW_PAYMENT_SYNC, "GET", "/v1/payments/", "{\"status\":\"succeeded\"}",
         PAGOFLEX_STATE_SUCCEEDED},
        {PAGOFLEX_FLOW_REFUND_SYNC, "GET", "/v1/refunds/", "{\"status\":\"failed\"}",
         PAGOFLEX_STATE_FAILED},
    };
    pagoflex_payment p = pagoflex_testkit_payment(f->tk, 1050, "USD");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pagoflex_flow_input in = pagoflex_testkit_flow_input(f->tk, cases[i].flow, &p);
        pagoflex_http_response ok = pagoflex_testkit_response(f->tk, 200, cases[i].answer);
        pagoflex_http_request req;
        pagoflex_flow_result res;
        assert_int_equal(pagoflex_testkit_run_flow(f->tk, f->c, f->state, &in, &ok, &req, &res),
                         PAGOFLEX_OK);
        assert_string_equal(req.method, cases[i].method);
        assert_non_null(strstr(req.url, cases[i].url_part));
        assert_int_equal(res.size, sizeof res);
        assert_int_equal(res.state, cases[i].want);
        /* A 503 proves nothing, for every flow. */
        pagoflex_http_response busy = pagoflex_testkit_response(f->tk, 503, NULL);
        assert_int_equal(pagoflex_testkit_run_flow(f->tk, f->c, f->state, &in, &busy, NULL, &res),
                         PAGOFLEX_OK);
        assert_int_equal(res.state, PAGOFLEX_STATE_PROCESSING);
    }
    /* Syncs: the bank's own 404 is NOT_FOUND; no bank id yet, too. */
    pagoflex_flow_input in = pagoflex_testkit_flow_input(f->tk, PAGOFLEX_FLOW_PAYMENT_SYNC, &p);
    pagoflex_http_response gone = pagoflex_testkit_response(f->tk, 404, "{\"error\":\"not_found\"}");
    pagoflex_flow_result res;
    assert_int_equal(pagoflex_testkit_run_flow(f->tk, f->c, f->state, &in, &gone, NULL, &res),
                     PAGOFLEX_ERR_NOT_FOUND);
    pagoflex_payment nobank = *in.payment;
    nobank.provider_reference_id = NULL;
    in.payment = &nobank;
    assert_int_equal(pagoflex_testkit_run_flow(f->tk, f->c, f->state, &in, &gone, NULL, &res),
                     PAGOFLEX_ERR_NOT_FOUND);
}

/* run_flow refuses a flow the plugin does not declare, calling nothing. */
static void test_run_flow_undeclared(void **s)
{
    fx *f = *s;
    pagoflex_connector copy = *f->c;
    copy.flows &= ~PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND);
    pagoflex_payment p = pagoflex_testkit_payment(f->tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(f->tk, PAGOFLEX_FLOW_REFUND, &p);
    pagoflex_http_response ok = pagoflex_testkit_response(f->tk, 200, "{}");
    pagoflex_flow_result res;
    assert_int_equal(pagoflex_testkit_run_flow(f->tk, &copy, f->state, &in, &ok, NULL, &res),
                     PAGOFLEX_ERR_UNSUPPORTED);
}

static const pagoflex_event sample = {.event_id = "msg_1", .kind = PAGOFLEX_EVENT_REFUND,
                                      .payment_id = "pay_1", .refund_id = "ref_1",
                                      .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 300};

/* webhook_roundtrip: signed by the plugin, verified, parsed back. */
static void test_webhook_roundtrip(void **s)
{
    fx *f = *s;
    pagoflex_webhook_request req;
    pagoflex_webhook_parsed parsed;
    assert_int_equal(pagoflex_testkit_webhook_roundtrip(f->tk, f->c, f->state, &sample, &req,
                                                        &parsed),
                     PAGOFLEX_OK);
    assert_int_equal(parsed.event_count, 1);
    assert_string_equal(parsed.events[0].event_id, "msg_1");
    assert_int_equal(parsed.events[0].kind, PAGOFLEX_EVENT_REFUND);
    assert_string_equal(parsed.events[0].refund_id, "ref_1");
    assert_int_equal(parsed.events[0].amount, 300);
    /* Signed at the kit's clock: a day later it is a replay. */
    pagoflex_testkit_set_now(NOW + 86400);
    assert_int_equal(f->c->webhook_verify(f->state, &req, pagoflex_testkit_arena(f->tk)),
                     PAGOFLEX_ERR_SIGNATURE);
    pagoflex_testkit_set_now(NOW);
    /* Tampered body byte, webhook-id and signature are refused; the
     * original still passes (the copies changed nothing in it). */
    pagoflex_webhook_request bad[3] = {
        pagoflex_testkit_webhook_tampered(f->tk, &req, req.body_len - 2, NULL),
        pagoflex_testkit_webhook_tampered(f->tk, &req, 0, "webhook-id"),
        pagoflex_testkit_webhook_tampered(f->tk, &req, 0, "webhook-signature"),
    };
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(f->c->webhook_verify(f->state, &bad[i], pagoflex_testkit_arena(f->tk)),
                         PAGOFLEX_ERR_SIGNATURE);
    assert_memory_not_equal(bad[0].body, req.body, req.body_len);
    assert_int_equal(f->c->webhook_verify(f->state, &req, pagoflex_testkit_arena(f->tk)),
                     PAGOFLEX_OK);
}

/* The same tampering test catches the build that never compares the HMAC. */
static void test_tampering_catches_skipcmp(void **s)
{
    (void)s;
    fx f;
    fx_open(&f, skipcmp_path);
    pagoflex_webhook_request req;
    pagoflex_webhook_parsed parsed;
    assert_int_equal(pagoflex_testkit_webhook_roundtrip(f.tk, f.c, f.state, &sample, &req,
                                                        &parsed),
                     PAGOFLEX_OK); /* a round trip alone cannot tell */
    pagoflex_webhook_request bad = pagoflex_testkit_webhook_tampered(f.tk, &req, 3, NULL);
    assert_int_equal(f.c->webhook_verify(f.state, &bad, pagoflex_testkit_arena(f.tk)),
                     PAGOFLEX_OK); /* the defect: what a plugin's own test must assert against */
    f.c->fini(f.state);
    pagoflex_testkit_free(f.tk);
    dlclose(f.handle);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s stdwh_pay.so stdwh_pay_skipcmp.so\n", argv[0]);
        return 2;
    }
    plugin_path = argv[1];
    skipcmp_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flow_input_per_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_every_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_flow_undeclared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_roundtrip, setup, teardown),
        cmocka_unit_test(test_tampering_catches_skipcmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
