/*
 * Unit tests for the echo_pay test connector (tests/fixtures/echo_pay).
 *
 * They dlopen the BUILT build/fixtures/echo_pay.so, the way the host does:
 * $PAGOFLEX_FIXTURE_DIR, or else ../../fixtures relative to this executable
 * (build/tests/unit/). The webhook signature is computed here with OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "creds.h"
#include "services.h"

#define SECRET "echo_secret_4d2f"
#define PAY_ID "pay_01JD8Y6Q4N5W2X3Z7K9M1B0C4V"
#define SIG_HEADER "X-Echo-Signature"

static void *ep_dl;
static const pagoflex_connector *ep;
static services_plugin sp;
static char logbuf[4096];

typedef struct fx {
    pagoflex_credentials *creds;
    void *state;
    pagoflex_arena *arena;
} fx;

static void capture_log(const pagoflex_host_services *host, pagoflex_log_level level,
                        const char *fmt, ...)
{
    (void)host;
    (void)level;
    size_t used = strlen(logbuf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(logbuf + used, sizeof logbuf - used, fmt, ap);
    va_end(ap);
}

static int fixture_path(char *out, size_t cap)
{
    const char *dir = getenv("PAGOFLEX_FIXTURE_DIR");
    if (dir && *dir)
        return snprintf(out, cap, "%s/echo_pay.so", dir) < (int)cap ? 0 : -1;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    return snprintf(out, cap, "%s/../../fixtures/echo_pay.so", dirname(exe)) < (int)cap ? 0
                                                                                       : -1;
}

static int group_setup(void **unused)
{
    (void)unused;
    char path[PATH_MAX];
    if (fixture_path(path, sizeof path) != 0)
        return -1;
    ep_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!ep_dl) {
        fprintf(stderr, "cannot load %s: %s (build the echo_pay target first)\n", path,
                dlerror());
        return -1;
    }
    pagoflex_connector_entry_fn entry;
    *(void **)&entry = dlsym(ep_dl, PAGOFLEX_ENTRY_SYMBOL);
    if (!entry || !(ep = entry()))
        return -1;
    services_init(&sp, "echo_pay");
    sp.table.log = capture_log;
    return 0;
}

static int group_teardown(void **unused)
{
    (void)unused;
    if (ep_dl)
        dlclose(ep_dl);
    return 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->creds = creds_new();
    assert_int_equal(creds_set(f->creds, "ECHOPAY_SECRET", SECRET), 0);
    logbuf[0] = '\0';
    assert_int_equal(ep->init(&sp.table, f->creds, &f->state), PAGOFLEX_OK);
    f->arena = arena_new();
    assert_non_null(f->arena);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_null(strstr(logbuf, SECRET));
    ep->fini(f->state);
    arena_free(f->arena);
    creds_free(f->creds);
    free(f);
    return 0;
}

static void test_descriptor(void **unused)
{
    (void)unused;
    assert_int_equal(ep->magic, PAGOFLEX_MAGIC);
    assert_int_equal(ep->abi_major, PAGOFLEX_ABI_MAJOR);
    assert_int_equal(ep->size, sizeof(struct pagoflex_connector));
    assert_string_equal(ep->build_signature, PAGOFLEX_BUILD_SIGNATURE);
    assert_string_equal(ep->key, "ECHO_PAY");
    assert_string_equal(ep->webhook_path, "echopay");
    assert_string_equal(ep->version, "0.3.0");
    assert_string_equal(ep->required_credentials[0], "ECHOPAY_SECRET");
    assert_null(ep->required_credentials[1]);
    assert_null(ep->currencies); /* any currency */
    assert_non_null(ep->execute_request);
}

static void test_init_missing_secret(void **unused)
{
    (void)unused;
    pagoflex_credentials *c = creds_new();
    void *state = NULL;
    logbuf[0] = '\0';
    assert_int_equal(ep->init(&sp.table, c, &state), PAGOFLEX_ERR_CREDENTIALS);
    assert_null(state);
    assert_non_null(strstr(logbuf, "ECHOPAY_SECRET"));
    creds_free(c);
}

/* build_request -> execute_request -> handle_response, no network. */
static pagoflex_payment_result pay(fx *f, int64_t amount, pagoflex_http_response *resp)
{
    pagoflex_payment p = {.id = PAY_ID, .amount = amount, .currency = "EUR",
                          .webhook_url = "http://127.0.0.1/webhooks/echopay"};
    pagoflex_http_request req;
    assert_int_equal(ep->build_request(f->state, &p, f->arena, &req), PAGOFLEX_OK);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "echo://pay");
    assert_int_equal(ep->execute_request(f->state, &req, f->arena, resp), PAGOFLEX_OK);
    pagoflex_payment_result r;
    assert_int_equal(ep->handle_response(f->state, &p, resp, f->arena, &r), PAGOFLEX_OK);
    return r;
}

static void test_execute_and_handle_pending(void **state)
{
    fx *f = *state;
    pagoflex_http_response resp;
    pagoflex_payment_result r = pay(f, 1050, &resp);
    assert_int_equal(resp.transport, PAGOFLEX_TRANSPORT_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, strlen("{\"id\":\"ep_" PAY_ID "\"}"));
    assert_memory_equal(resp.body, "{\"id\":\"ep_" PAY_ID "\"}", resp.body_len);
    assert_int_equal(r.state, PAGOFLEX_STATE_PENDING);
    assert_string_equal(r.provider_reference_id, "ep_" PAY_ID);
    assert_null(r.error_code);
}

static void test_execute_and_handle_rejected_99(void **state)
{
    fx *f = *state;
    pagoflex_http_response resp;
    pagoflex_payment_result r = pay(f, 1099, &resp);
    assert_int_equal(r.state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(r.error_code, "rejected");
    r = pay(f, 99, &resp);
    assert_int_equal(r.state, PAGOFLEX_STATE_FAILED);
    r = pay(f, 1098, &resp);
    assert_int_equal(r.state, PAGOFLEX_STATE_PENDING);
}

static void test_execute_refuses_foreign_request(void **state)
{
    fx *f = *state;
    pagoflex_http_request req = {.method = "POST", .url = "http://127.0.0.1:1/pay",
                                 .body = (const unsigned char *)"{\"id\":\"x\"}", .body_len = 10};
    pagoflex_http_response resp;
    assert_int_equal(ep->execute_request(f->state, &req, f->arena, &resp), PAGOFLEX_ERR_TRANSPORT);
    assert_int_equal(resp.transport, PAGOFLEX_TRANSPORT_CONNECT);
    /* No answer is never a failure. */
    pagoflex_payment p = {.id = PAY_ID, .amount = 1050, .currency = "EUR"};
    pagoflex_payment_result r;
    assert_int_equal(ep->handle_response(f->state, &p, &resp, f->arena, &r), PAGOFLEX_OK);
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
}

static void test_build_request_invalid(void **state)
{
    fx *f = *state;
    pagoflex_http_request req;
    pagoflex_payment p = {.id = "bad\"id", .amount = 1, .currency = "EUR"};
    assert_int_equal(ep->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    p = (pagoflex_payment){.id = PAY_ID, .amount = 0, .currency = "EUR"};
    assert_int_equal(ep->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
}

static const char *sign(fx *f, const char *secret, const char *body)
{
    unsigned char mac[32];
    unsigned int len = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
                         strlen(body), mac, &len));
    char *hex = arena_alloc(f->arena, 65);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return hex;
}

static int verify(fx *f, const char *sig, const char *body)
{
    pagoflex_header h[] = {{SIG_HEADER, sig}};
    return ep->verify_webhook(f->state, h, sig ? 1 : 0, (const unsigned char *)body,
                              strlen(body), f->arena);
}

#define PAID "{\"event\":\"ev_1\",\"payment\":\"" PAY_ID "\",\"result\":\"paid\"}"

static void test_webhook_verify(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, sign(f, SECRET, PAID), PAID), PAGOFLEX_OK);
    assert_int_equal(verify(f, sign(f, "other_secret", PAID), PAID), PAGOFLEX_ERR_SIGNATURE);
    const char *tampered = "{\"event\":\"ev_1\",\"payment\":\"" PAY_ID "\",\"result\":\"refused\"}";
    assert_int_equal(verify(f, sign(f, SECRET, PAID), tampered), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, NULL, PAID), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, "", PAID), PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, "zz", PAID), PAGOFLEX_ERR_SIGNATURE);
    char longer[80];
    snprintf(longer, sizeof longer, "%s00", sign(f, SECRET, PAID));
    assert_int_equal(verify(f, longer, PAID), PAGOFLEX_ERR_SIGNATURE);
}

static void test_webhook_parse(void **state)
{
    fx *f = *state;
    pagoflex_webhook_event ev;
    assert_int_equal(ep->parse_webhook(f->state, (const unsigned char *)PAID, strlen(PAID),
                                       f->arena, &ev),
                     PAGOFLEX_OK);
    assert_string_equal(ev.event_id, "ev_1");
    assert_string_equal(ev.payment_id, PAY_ID);
    assert_int_equal(ev.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_null(ev.error_code);

    const char *refused = " { \"result\" : \"refused\", \"event\":\"ev_2\", \"payment\":\"p_2\" } ";
    assert_int_equal(ep->parse_webhook(f->state, (const unsigned char *)refused,
                                       strlen(refused), f->arena, &ev),
                     PAGOFLEX_OK);
    assert_string_equal(ev.event_id, "ev_2");
    assert_int_equal(ev.state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(ev.error_code, "refused");

    const char *bad[] = {"", "nope", "{}", "{\"event\":\"ev_3\",\"payment\":\"p\"}",
                         "{\"event\":\"ev_3\",\"payment\":\"p\",\"result\":\"maybe\"}",
                         "{\"event\":\"ev_3\",\"event\":\"ev_4\",\"payment\":\"p\",\"result\":\"paid\"}",
                         "{\"event\":\"ev\\u0033\",\"payment\":\"p\",\"result\":\"paid\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ep->parse_webhook(f->state, (const unsigned char *)bad[i],
                                           strlen(bad[i]), f->arena, &ev),
                         PAGOFLEX_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_init_missing_secret),
        cmocka_unit_test_setup_teardown(test_execute_and_handle_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execute_and_handle_rejected_99, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execute_refuses_foreign_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_request_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_parse, setup, teardown),
    };
    return cmocka_run_group_tests_name("echo_pay", tests, group_setup, group_teardown);
}
