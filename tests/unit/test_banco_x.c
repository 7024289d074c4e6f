/*
 * Unit tests for the banco_x connector (plugins/banco_x/banco_x.c).
 *
 * They load the BUILT artifact, build/plugins/banco_x.so, with dlopen, the
 * way the host does, and hand it the host's real services table. The plugin
 * directory comes from $PAGOFLEX_PLUGIN_DIR, or else ../../plugins relative
 * to this executable (build/tests/unit/). Signatures are computed here with
 * OpenSSL directly, not with the host's helper, so both sides are checked.
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

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "creds.h"
#include "services.h"

#define NOW INT64_C(1800000000)
#define API_KEY "bx_test_key_7f3a"
#define SECRET "whsec_current_5b21"
#define SECRET_PREV "whsec_previous_09cd"
#define BASE_URL "http://127.0.0.1:18080"
#define PAY_ID "pay_01JD8Y6Q4N5W2X3Z7K9M1B0C4V"
#define WEBHOOK_URL "http://127.0.0.1:8080/webhooks/bancox"
#define SIG_HEADER "X-BancoX-Signature"

static void *bx_dl;
static const pagoflex_connector *bx;
static services_plugin sp;
static char logbuf[16384];
static size_t loglen;

typedef struct fx {
    pagoflex_credentials *creds;
    void *state;
    pagoflex_arena *arena;
} fx;

/* ------------------------------------------------------------- harness */

/* Stands in for the host's log so tests can read what the plugin said. */
static void capture_log(const pagoflex_host_services *host, pagoflex_log_level level,
                        const char *fmt, ...)
{
    (void)host;
    (void)level;
    if (loglen >= sizeof logbuf - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(logbuf + loglen, sizeof logbuf - loglen, fmt, ap);
    va_end(ap);
    if (n > 0)
        loglen += (size_t)n < sizeof logbuf - loglen ? (size_t)n : sizeof logbuf - loglen - 1;
    if (loglen < sizeof logbuf - 1)
        logbuf[loglen++] = '\n';
    logbuf[loglen] = '\0';
}

static void log_reset(void)
{
    loglen = 0;
    logbuf[0] = '\0';
}

static int plugin_path(char *out, size_t cap)
{
    const char *dir = getenv("PAGOFLEX_PLUGIN_DIR");
    if (dir && *dir)
        return snprintf(out, cap, "%s/banco_x.so", dir) < (int)cap ? 0 : -1;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    return snprintf(out, cap, "%s/../../plugins/banco_x.so", dirname(exe)) < (int)cap ? 0 : -1;
}

static int group_setup(void **unused)
{
    (void)unused;
    char path[PATH_MAX];
    if (plugin_path(path, sizeof path) != 0)
        return -1;
    bx_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!bx_dl) {
        fprintf(stderr, "cannot load %s: %s (build the banco_x target first)\n", path,
                dlerror());
        return -1;
    }
    pagoflex_connector_entry_fn entry;
    *(void **)&entry = dlsym(bx_dl, PAGOFLEX_ENTRY_SYMBOL);
    if (!entry || !(bx = entry())) {
        fprintf(stderr, "%s: no %s\n", path, PAGOFLEX_ENTRY_SYMBOL);
        return -1;
    }
    services_init(&sp, "banco_x");
    sp.table.log = capture_log;
    services_set_now(NOW);
    return 0;
}

static int group_teardown(void **unused)
{
    (void)unused;
    services_set_now(0);
    if (bx_dl)
        dlclose(bx_dl);
    return 0;
}

static pagoflex_credentials *make_creds(const char *key, const char *secret, const char *prev)
{
    pagoflex_credentials *c = creds_new();
    assert_non_null(c);
    if (key)
        assert_int_equal(creds_set(c, "BANCOX_API_KEY", key), 0);
    if (secret)
        assert_int_equal(creds_set(c, "BANCOX_SECRET", secret), 0);
    if (prev)
        assert_int_equal(creds_set(c, "BANCOX_SECRET_PREVIOUS", prev), 0);
    assert_int_equal(creds_set(c, "BANCOX_BASE_URL", BASE_URL "/"), 0);
    return c;
}

static fx *fx_start(pagoflex_credentials *creds)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->creds = creds;
    log_reset();
    assert_int_equal(bx->init(&sp.table, f->creds, &f->state), PAGOFLEX_OK);
    assert_non_null(f->state);
    f->arena = arena_new();
    assert_non_null(f->arena);
    return f;
}

static int setup(void **state)
{
    *state = fx_start(make_creds(API_KEY, SECRET, NULL));
    return 0;
}

static int setup_rotation(void **state)
{
    *state = fx_start(make_creds(API_KEY, SECRET, SECRET_PREV));
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    /* Whatever a test did, no secret may have reached the log. */
    assert_null(strstr(logbuf, API_KEY));
    assert_null(strstr(logbuf, SECRET));
    assert_null(strstr(logbuf, SECRET_PREV));
    bx->fini(f->state);
    arena_free(f->arena);
    creds_free(f->creds);
    free(f);
    return 0;
}

static pagoflex_payment payment(int64_t amount, const char *currency)
{
    return (pagoflex_payment){.id = PAY_ID,
                              .amount = amount,
                              .currency = currency,
                              .reference = "order-77",
                              .description = "Two coffees",
                              .webhook_url = WEBHOOK_URL};
}

/* ---------------------------------------------------- descriptor / init */

static void test_descriptor(void **unused)
{
    (void)unused;
    assert_int_equal(bx->magic, PAGOFLEX_MAGIC);
    assert_int_equal(bx->abi_major, PAGOFLEX_ABI_MAJOR);
    assert_int_equal(bx->abi_minor, PAGOFLEX_ABI_MINOR);
    assert_int_equal(bx->size, sizeof(struct pagoflex_connector));
    assert_string_equal(bx->build_signature, PAGOFLEX_BUILD_SIGNATURE);
    assert_string_equal(bx->key, "BANCO_X");
    assert_string_equal(bx->webhook_path, "bancox");
    assert_string_equal(bx->version, "1.2.0");
    assert_string_equal(bx->required_credentials[0], "BANCOX_API_KEY");
    assert_string_equal(bx->required_credentials[1], "BANCOX_SECRET");
    assert_null(bx->required_credentials[2]);
    static const char *const want[] = {"ARS", "BRL", "CLP", "COP", "MXN", "PEN", "USD", "UYU"};
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(bx->currencies[i], want[i]);
    assert_null(bx->currencies[8]);
    assert_non_null(bx->init);
    assert_non_null(bx->fini);
    assert_non_null(bx->build_request);
    assert_null(bx->execute_request); /* the host's libcurl executor runs it */
    assert_non_null(bx->handle_response);
    assert_non_null(bx->verify_webhook);
    assert_non_null(bx->parse_webhook);
}

static void expect_init_refused(pagoflex_credentials *c, const char *named)
{
    void *state = (void *)&state; /* must stay untouched */
    void *before = state;
    log_reset();
    assert_int_equal(bx->init(&sp.table, c, &state), PAGOFLEX_ERR_CREDENTIALS);
    assert_ptr_equal(state, before);
    assert_non_null(strstr(logbuf, named));
    assert_null(strstr(logbuf, API_KEY));
    assert_null(strstr(logbuf, SECRET));
    creds_free(c);
}

static void test_init_missing_api_key(void **unused)
{
    (void)unused;
    expect_init_refused(make_creds(NULL, SECRET, NULL), "BANCOX_API_KEY");
}

static void test_init_missing_secret(void **unused)
{
    (void)unused;
    expect_init_refused(make_creds(API_KEY, NULL, NULL), "BANCOX_SECRET");
}

static void test_init_empty_secret(void **unused)
{
    (void)unused;
    expect_init_refused(make_creds(API_KEY, "", NULL), "BANCOX_SECRET is empty");
}

static void test_init_bad_optional_values(void **unused)
{
    (void)unused;
    pagoflex_credentials *c = make_creds(API_KEY, SECRET, NULL);
    assert_int_equal(creds_set(c, "BANCOX_BASE_URL", "ftp://bank"), 0);
    expect_init_refused(c, "BANCOX_BASE_URL");

    c = make_creds(API_KEY, SECRET, NULL);
    assert_int_equal(creds_set(c, "BANCOX_TIMEOUT_MS", "soon"), 0);
    expect_init_refused(c, "BANCOX_TIMEOUT_MS");

    c = make_creds("key with space", SECRET, NULL);
    expect_init_refused(c, "BANCOX_API_KEY");
}

/* -------------------------------------------------------- build_request */

static json_t *body_json(const pagoflex_http_request *req)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)req->body, req->body_len, 0, &err);
    assert_non_null(o);
    assert_true(json_is_object(o));
    return o;
}

static void test_build_request_exact(void **state)
{
    fx *f = *state;
    pagoflex_payment p = payment(1050, "ARS");
    pagoflex_http_request req;
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_OK);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, BASE_URL "/pay"); /* trailing '/' of the base dropped */
    assert_int_equal(req.timeout_ms, 0);
    assert_int_equal(req.header_count, 3);
    assert_string_equal(req.headers[0].name, "Authorization");
    assert_string_equal(req.headers[0].value, "Bearer " API_KEY);
    assert_string_equal(req.headers[1].name, "Content-Type");
    assert_string_equal(req.headers[1].value, "application/json");
    assert_string_equal(req.headers[2].name, "Idempotency-Key");
    assert_string_equal(req.headers[2].value, PAY_ID);

    json_t *o = body_json(&req);
    assert_int_equal(json_object_size(o), 5);
    assert_true(json_is_integer(json_object_get(o, "amount")));
    assert_int_equal(json_integer_value(json_object_get(o, "amount")), 1050);
    assert_string_equal(json_string_value(json_object_get(o, "currency")), "ARS");
    assert_string_equal(json_string_value(json_object_get(o, "ref")), PAY_ID);
    assert_string_equal(json_string_value(json_object_get(o, "callback_url")), WEBHOOK_URL);
    assert_string_equal(json_string_value(json_object_get(o, "description")), "Two coffees");
    json_decref(o);
}

static void test_build_request_defaults(void **unused)
{
    (void)unused;
    pagoflex_credentials *c = creds_new();
    assert_int_equal(creds_set(c, "BANCOX_API_KEY", API_KEY), 0);
    assert_int_equal(creds_set(c, "BANCOX_SECRET", SECRET), 0);
    assert_int_equal(creds_set(c, "BANCOX_TIMEOUT_MS", "2500"), 0);
    fx *f = fx_start(c);
    pagoflex_payment p = payment(7, "USD");
    p.description = NULL;
    pagoflex_http_request req;
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_OK);
    assert_string_equal(req.url, "https://api.bancox.com/pay");
    assert_int_equal(req.timeout_ms, 2500);
    json_t *o = body_json(&req);
    assert_int_equal(json_object_size(o), 4);
    assert_null(json_object_get(o, "description"));
    json_decref(o);
    void *s = f;
    teardown(&s);
}

static const char *built_description(fx *f, const char *desc)
{
    pagoflex_payment p = payment(1050, "BRL");
    p.description = desc;
    pagoflex_http_request req;
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_OK);
    json_t *o = body_json(&req);
    const char *d = arena_strdup(f->arena, json_string_value(json_object_get(o, "description")));
    json_decref(o);
    assert_non_null(d);
    return d;
}

static void test_build_request_description_truncated(void **state)
{
    fx *f = *state;
    char ascii[201];
    memset(ascii, 'a', 200);
    ascii[200] = '\0';
    assert_int_equal(strlen(built_description(f, ascii)), 140);

    /* 150 x "ñ" (2 bytes each): 140 characters = 280 bytes, none cut. */
    char two[301] = "";
    for (int i = 0; i < 150; i++)
        strcat(two, "\xc3\xb1");
    const char *d = built_description(f, two);
    assert_int_equal(strlen(d), 280);
    assert_memory_equal(d, two, 280);

    /* 139 ASCII then "€" (3 bytes) then more: the euro sign is kept whole. */
    char mixed[160];
    memset(mixed, 'b', 139);
    strcpy(mixed + 139, "\xe2\x82\xac" "cdef");
    d = built_description(f, mixed);
    assert_int_equal(strlen(d), 142);
    assert_string_equal(d + 139, "\xe2\x82\xac");

    /* Exactly 140 characters stays as is. */
    ascii[140] = '\0';
    assert_string_equal(built_description(f, ascii), ascii);
}

static void test_build_request_description_not_utf8(void **state)
{
    fx *f = *state;
    pagoflex_payment p = payment(1050, "ARS");
    p.description = "caf\xe9 con leche"; /* Latin-1 */
    pagoflex_http_request req = {.method = "UNTOUCHED"};
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    assert_string_equal(req.method, "UNTOUCHED");
}

static void test_build_request_unsupported_currency(void **state)
{
    fx *f = *state;
    const char *refused[] = {"EUR", "ars", "", "ARSX", NULL};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        pagoflex_payment p = payment(1050, refused[i]);
        pagoflex_http_request req = {.method = "UNTOUCHED"};
        assert_int_equal(bx->build_request(f->state, &p, f->arena, &req),
                         PAGOFLEX_ERR_UNSUPPORTED);
        assert_string_equal(req.method, "UNTOUCHED");
    }
    assert_non_null(strstr(logbuf, "EUR"));
    /* Every listed currency is taken. */
    for (size_t i = 0; bx->currencies[i]; i++) {
        pagoflex_payment p = payment(1050, bx->currencies[i]);
        pagoflex_http_request req;
        assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_OK);
    }
}

static void test_build_request_invalid_payment(void **state)
{
    fx *f = *state;
    pagoflex_http_request req;
    pagoflex_payment p = payment(0, "ARS");
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    p = payment(-5, "ARS");
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    p = payment(100, "ARS");
    p.id = "pay_1\r\nX-Evil: 1"; /* would inject a header */
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    p.id = NULL;
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    p = payment(100, "ARS");
    p.webhook_url = NULL;
    assert_int_equal(bx->build_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
}

/* ------------------------------------------------------ handle_response */

static pagoflex_payment_result respond_full(fx *f, pagoflex_transport transport, int status,
                                            const void *body, size_t len)
{
    pagoflex_payment p = payment(1050, "ARS");
    pagoflex_http_response resp = {.transport = transport,
                                   .status = status,
                                   .body = body,
                                   .body_len = len};
    pagoflex_payment_result r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(bx->handle_response(f->state, &p, &resp, f->arena, &r), PAGOFLEX_OK);
    return r;
}

static pagoflex_payment_result respond(fx *f, int status, const char *body)
{
    return respond_full(f, PAGOFLEX_TRANSPORT_OK, status, body, body ? strlen(body) : 0);
}

static void expect(pagoflex_payment_result r, pagoflex_state state, const char *code,
                   const char *ref)
{
    assert_int_equal(r.state, state);
    if (code)
        assert_string_equal(r.error_code, code);
    else
        assert_null(r.error_code);
    if (ref)
        assert_string_equal(r.provider_reference_id, ref);
    else
        assert_null(r.provider_reference_id);
}

static void expect_unknown(pagoflex_payment_result r)
{
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);
    assert_non_null(r.error_message);
}

static void test_response_ok_pending(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r =
        respond(f, 200, "{\"status\":\"OK\",\"id\":\"bx_01JD8Y7A2B3C4D5E6F7G8H9J0K\"}");
    expect(r, PAGOFLEX_STATE_PENDING, NULL, "bx_01JD8Y7A2B3C4D5E6F7G8H9J0K");
    assert_null(r.error_message);
}

static void test_response_rejected_failed(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r = respond(
        f, 200, "{\"status\":\"REJECTED\",\"id\":\"bx_R1\",\"reason\":\"insufficient funds\"}");
    expect(r, PAGOFLEX_STATE_FAILED, "rejected", "bx_R1");
    assert_string_equal(r.error_message, "insufficient funds");

    r = respond(f, 200, "{\"status\":\"REJECTED\",\"id\":\"bx_R2\"}");
    expect(r, PAGOFLEX_STATE_FAILED, "rejected", "bx_R2");
    assert_non_null(r.error_message);

    /* Control characters in the bank's text are not passed on. */
    r = respond(f, 200, "{\"status\":\"REJECTED\",\"id\":\"bx_R3\",\"reason\":\"card\\nblocked\"}");
    assert_string_equal(r.error_message, "card blocked");
}

static void test_response_transport_never_failed(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r = respond_full(f, PAGOFLEX_TRANSPORT_TIMEOUT, 0, NULL, 0);
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_timeout", NULL);
    assert_non_null(r.error_message);
    r = respond_full(f, PAGOFLEX_TRANSPORT_CONNECT, 0, NULL, 0);
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_unreachable", NULL);
    assert_non_null(strstr(r.error_message, BASE_URL));
    r = respond_full(f, PAGOFLEX_TRANSPORT_ERROR, 0, NULL, 0);
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_unreachable", NULL);
    /* A partial body that looks like a rejection changes nothing. */
    const char *b = "{\"status\":\"REJECTED\",\"id\":\"bx_1\",\"reason\":\"x\"}";
    r = respond_full(f, PAGOFLEX_TRANSPORT_TIMEOUT, 200, b, strlen(b));
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_timeout", NULL);
}

static void test_response_transient_statuses(void **state)
{
    fx *f = *state;
    const int statuses[] = {429, 500, 502, 503, 504, 599, 408, 409};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        pagoflex_payment_result r = respond(f, statuses[i], "{\"error\":\"busy\"}");
        expect(r, PAGOFLEX_STATE_PROCESSING, "bank_unavailable", NULL);
        char want[16];
        snprintf(want, sizeof want, "%d", statuses[i]);
        assert_non_null(strstr(r.error_message, want));
    }
    /* Even a 503 whose body says REJECTED is not a final answer. */
    pagoflex_payment_result r = respond(f, 503, "{\"status\":\"REJECTED\",\"id\":\"bx_1\"}");
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_unavailable", NULL);
}

static void test_response_401_auth(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r = respond(f, 401, "{\"error\":\"unauthorized\"}");
    expect(r, PAGOFLEX_STATE_FAILED, "bank_auth", NULL);
    assert_string_equal(r.error_message, "Banco X refused our API key; check BANCOX_API_KEY");
}

static void test_response_422_invalid(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r = respond(f, 422, "{\"error\":\"amount must be > 0\"}");
    expect(r, PAGOFLEX_STATE_FAILED, "bank_invalid_request", NULL);
    assert_string_equal(r.error_message, "amount must be > 0");
    r = respond(f, 422, "not json");
    expect(r, PAGOFLEX_STATE_FAILED, "bank_invalid_request", NULL);
    assert_non_null(strstr(r.error_message, "422"));
}

static void test_response_other_4xx(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r = respond(f, 404, "{\"error\":\"no such route\"}");
    expect(r, PAGOFLEX_STATE_FAILED, "bank_client_error", NULL);
    assert_string_equal(r.error_message, "Banco X refused the request with HTTP 404: no such route");
    r = respond(f, 400, "{\"error\":\"bad request\"}");
    expect(r, PAGOFLEX_STATE_FAILED, "bank_client_error", NULL);
    assert_string_equal(r.error_message, "Banco X refused the request with HTTP 400: bad request");
    /* Without Banco X's own JSON error the answer is not the bank speaking
     * (a proxy's page, a misrouted base URL): unknown, never failed. */
    r = respond(f, 400, "");
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);
    r = respond(f, 403, NULL);
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);
    r = respond(f, 404, "<html><body><h1>404 Not Found</h1></body></html>");
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);
}

static void test_response_unexpected_2xx_3xx(void **state)
{
    fx *f = *state;
    const char *ok = "{\"status\":\"OK\",\"id\":\"bx_1\"}";
    const int statuses[] = {201, 202, 204, 301, 302, 304, 100, 0, -1, 399};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
        expect_unknown(respond(f, statuses[i], ok));
}

static void test_response_bad_200_bodies(void **state)
{
    fx *f = *state;
    expect_unknown(respond(f, 200, NULL));
    expect_unknown(respond(f, 200, ""));
    expect_unknown(respond(f, 200, "<html>Service Unavailable</html>"));
    expect_unknown(respond(f, 200, "[\"OK\"]"));
    expect_unknown(respond(f, 200, "\"OK\""));
    expect_unknown(respond(f, 200, "{\"status\":\"OK\"}"));          /* no id */
    expect_unknown(respond(f, 200, "{\"status\":\"OK\",\"id\":42}")); /* id not a string */
    expect_unknown(respond(f, 200, "{\"status\":\"OK\",\"id\":\"\"}"));
    expect_unknown(respond(f, 200, "{\"status\":\"OK\",\"id\":\"bx 1\\n\"}"));
    expect_unknown(respond(f, 200, "{\"status\":\"MAYBE\",\"id\":\"bx_1\"}"));
    expect_unknown(respond(f, 200, "{\"status\":\"OK\",\"id\":\"bx_1\""));  /* truncated */
    expect_unknown(respond(f, 200, "{\"status\":\"OK\",\"status\":\"REJECTED\",\"id\":\"b\"}"));
    /* Not UTF-8, and bytes with NULs inside. */
    expect_unknown(respond(f, 200, "{\"status\":\"OK\",\"id\":\"bx_\xff\xfe\"}"));
    static const char nul[] = "{\"status\":\"OK\",\0\"id\":\"bx_1\"}";
    expect_unknown(respond_full(f, PAGOFLEX_TRANSPORT_OK, 200, nul, sizeof nul - 1));
}

static void test_response_huge_bodies(void **state)
{
    fx *f = *state;
    size_t n = 1024 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    /* 1 MiB of a valid-looking answer padded with spaces... */
    memset(big, ' ', n);
    const char *head = "{\"status\":\"OK\",\"id\":\"bx_big\"}";
    memcpy(big, head, strlen(head));
    expect_unknown(respond_full(f, PAGOFLEX_TRANSPORT_OK, 200, big, n));
    /* ...and 1 MiB of binary garbage, on 200, 422 and 503. */
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 131 + 7);
    expect_unknown(respond_full(f, PAGOFLEX_TRANSPORT_OK, 200, big, n));
    pagoflex_payment_result r = respond_full(f, PAGOFLEX_TRANSPORT_OK, 422, big, n);
    expect(r, PAGOFLEX_STATE_FAILED, "bank_invalid_request", NULL);
    r = respond_full(f, PAGOFLEX_TRANSPORT_OK, 503, big, n);
    expect(r, PAGOFLEX_STATE_PROCESSING, "bank_unavailable", NULL);
    free(big);
}

static void test_response_long_reason_bounded(void **state)
{
    fx *f = *state;
    char body[2048];
    int n = snprintf(body, sizeof body, "{\"status\":\"REJECTED\",\"id\":\"bx_1\",\"reason\":\"");
    for (int i = 0; i < 500; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "\xc3\xa9"); /* é */
    snprintf(body + n, sizeof body - (size_t)n, "\"}");
    pagoflex_payment_result r = respond(f, 200, body);
    expect(r, PAGOFLEX_STATE_FAILED, "rejected", "bx_1");
    assert_int_equal(strlen(r.error_message), 400); /* 200 characters, none cut */
}

/* ------------------------------------------------------ verify_webhook */

static void hmac_hex(const char *secret, const char *t, const char *body, char hex[65])
{
    unsigned char mac[32];
    unsigned int len = 0;
    size_t msg_len = strlen(t) + 1 + strlen(body);
    char *msg = malloc(msg_len + 1);
    assert_non_null(msg);
    snprintf(msg, msg_len + 1, "%s.%s", t, body);
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg,
                         msg_len, mac, &len));
    assert_int_equal(len, 32);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    free(msg);
}

/* "t=<t>,v1=<hmac under secret>" for body. */
static const char *sig_header(fx *f, const char *secret, int64_t t, const char *body)
{
    char ts[24], hex[65];
    snprintf(ts, sizeof ts, "%lld", (long long)t);
    hmac_hex(secret, ts, body, hex);
    return arena_printf(f->arena, "t=%s,v1=%s", ts, hex);
}

static int verify_as(fx *f, const char *name, const char *value, const char *body)
{
    pagoflex_header h[2] = {{"Content-Type", "application/json"}, {name, value}};
    log_reset();
    return bx->verify_webhook(f->state, h, value ? 2 : 1, (const unsigned char *)body,
                              strlen(body), f->arena);
}

static int verify(fx *f, const char *value, const char *body)
{
    return verify_as(f, SIG_HEADER, value, body);
}

#define EVENT_BODY                                                                      \
    "{\"event_id\":\"evt_01JD8Z0000000000000000000A\",\"tx_id\":\"bx_01JD8Y7A2B\","   \
    "\"ref\":\"" PAY_ID "\",\"status\":\"APPROVED\",\"amount\":1050,\"currency\":\"ARS\"," \
    "\"occurred_at\":\"2026-11-27T12:00:00Z\"}"

static void test_sig_valid(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW, EVENT_BODY), EVENT_BODY), PAGOFLEX_OK);
    /* Header names are case-insensitive. */
    assert_int_equal(verify_as(f, "x-bancox-signature", sig_header(f, SECRET, NOW, EVENT_BODY),
                               EVENT_BODY),
                     PAGOFLEX_OK);
    /* An empty body can be signed too. */
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW, ""), ""), PAGOFLEX_OK);
}

static void test_sig_spaces_tolerated(void **state)
{
    fx *f = *state;
    char hex[65];
    hmac_hex(SECRET, "1800000000", EVENT_BODY, hex);
    const char *h = arena_printf(f->arena, " t = 1800000000 ,  v1=%s , ", hex);
    assert_int_equal(verify(f, h, EVENT_BODY), PAGOFLEX_OK);
}

static void test_sig_tampered_body(void **state)
{
    fx *f = *state;
    const char *h = sig_header(f, SECRET, NOW, EVENT_BODY);
    char tampered[] = EVENT_BODY;
    char *st = strstr(tampered, "APPROVED");
    memcpy(st, "DECLINED", 8);
    assert_int_equal(verify(f, h, tampered), PAGOFLEX_ERR_SIGNATURE);
    assert_non_null(strstr(logbuf, "webhook refused"));
}

static void test_sig_wrong_secret(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, sig_header(f, "whsec_someone_else", NOW, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
}

static void test_sig_timestamp_window(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW - 301, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_non_null(strstr(logbuf, "timestamp"));
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW + 301, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW - 86400, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW - 300, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_OK);
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW + 300, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_OK);
    /* The timestamp is signed: moving t in the header breaks the signature. */
    char hex[65];
    hmac_hex(SECRET, "1800000000", EVENT_BODY, hex);
    assert_int_equal(verify(f, arena_printf(f->arena, "t=1800000001,v1=%s", hex), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
}

static void test_sig_several_v1_one_valid(void **state)
{
    fx *f = *state;
    char good[65], other[65];
    hmac_hex(SECRET, "1800000000", EVENT_BODY, good);
    hmac_hex("whsec_stale", "1800000000", EVENT_BODY, other);
    const char *h = arena_printf(f->arena, "t=1800000000,v1=%s,v1=%s,v1=%s", other,
                                 "zz" /* malformed */, good);
    assert_int_equal(verify(f, h, EVENT_BODY), PAGOFLEX_OK);
    h = arena_printf(f->arena, "t=1800000000,v1=%s,v1=%s", good, other);
    assert_int_equal(verify(f, h, EVENT_BODY), PAGOFLEX_OK);
    h = arena_printf(f->arena, "t=1800000000,v1=%s,v1=%s", other, other);
    assert_int_equal(verify(f, h, EVENT_BODY), PAGOFLEX_ERR_SIGNATURE);
    /* Unknown schemes are skipped, not taken as garbage. */
    h = arena_printf(f->arena, "t=1800000000,v0=abc,v1=%s", good);
    assert_int_equal(verify(f, h, EVENT_BODY), PAGOFLEX_OK);
}

static void test_sig_v1_count_bounded(void **state)
{
    fx *f = *state;
    char good[65], other[65];
    hmac_hex(SECRET, "1800000000", EVENT_BODY, good);
    hmac_hex("whsec_stale", "1800000000", EVENT_BODY, other);
    char *h = arena_printf(f->arena, "t=1800000000");
    for (int i = 0; i < 7; i++)
        h = arena_printf(f->arena, "%s,v1=%s", h, other);
    assert_int_equal(verify(f, arena_printf(f->arena, "%s,v1=%s", h, good), EVENT_BODY),
                     PAGOFLEX_OK); /* 8 entries: accepted */
    h = arena_printf(f->arena, "%s,v1=%s", h, other);
    assert_int_equal(verify(f, arena_printf(f->arena, "%s,v1=%s", h, good), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE); /* 9 entries: refused */
}

static void test_sig_header_garbage(void **state)
{
    fx *f = *state;
    char good[65];
    hmac_hex(SECRET, "1800000000", EVENT_BODY, good);
    char odd[64];
    memcpy(odd, good, 63);
    odd[63] = '\0';
    char upper_bad[65];
    memcpy(upper_bad, good, 65);
    upper_bad[10] = 'g';
    char pad[1100];
    memset(pad, ' ', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    const char *bad[] = {
        arena_printf(f->arena, "v1=%s", good),                      /* missing t */
        "t=1800000000",                                             /* missing v1 */
        "t=1800000000,v1=",                                         /* empty v1 */
        arena_printf(f->arena, "t=1800000000,v1=%s", upper_bad),    /* non-hex */
        arena_printf(f->arena, "t=1800000000,v1=%s", odd),          /* odd length */
        arena_printf(f->arena, "t=1800000000,v1=%s00", good),       /* too long */
        "",                                                         /* empty header */
        "   ",
        "garbage",
        arena_printf(f->arena, "t=abc,v1=%s", good),
        arena_printf(f->arena, "t=-1800000000,v1=%s", good),
        arena_printf(f->arena, "t=,v1=%s", good),
        arena_printf(f->arena, "t=99999999999999999999999,v1=%s", good),
        arena_printf(f->arena, "t=1800000000,t=1800000000,v1=%s", good), /* two t */
        arena_printf(f->arena, "t=1800000000;v1=%s", good),
        arena_printf(f->arena, "t=1800000000,v1=%s,%s", good, pad), /* over 1 KiB */
        arena_printf(f->arena, "t=1800000000,v1=%s,junk", good),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_non_null(bad[i]);
        if (verify(f, bad[i], EVENT_BODY) != PAGOFLEX_ERR_SIGNATURE)
            fail_msg("header #%zu \"%.80s\" was accepted", i, bad[i]);
    }
    /* Absent header. */
    assert_int_equal(verify(f, NULL, EVENT_BODY), PAGOFLEX_ERR_SIGNATURE);
    assert_non_null(strstr(logbuf, SIG_HEADER));
    /* No headers at all. */
    assert_int_equal(bx->verify_webhook(f->state, NULL, 0, (const unsigned char *)"{}", 2,
                                        f->arena),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Sanity: the same good signature is accepted when well formed. */
    assert_int_equal(verify(f, arena_printf(f->arena, "t=1800000000,v1=%s", good), EVENT_BODY),
                     PAGOFLEX_OK);
}

static void test_sig_previous_secret(void **state)
{
    fx *f = *state; /* set up with BANCOX_SECRET_PREVIOUS */
    assert_int_equal(verify(f, sig_header(f, SECRET_PREV, NOW, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_OK);
    assert_int_equal(verify(f, sig_header(f, SECRET, NOW, EVENT_BODY), EVENT_BODY), PAGOFLEX_OK);
    assert_int_equal(verify(f, sig_header(f, "whsec_other", NOW, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
}

static void test_sig_previous_secret_not_configured(void **state)
{
    fx *f = *state; /* no BANCOX_SECRET_PREVIOUS */
    assert_int_equal(verify(f, sig_header(f, SECRET_PREV, NOW, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
}

/* ------------------------------------------------------- parse_webhook */

static int parse(fx *f, const char *body, pagoflex_webhook_event *ev)
{
    memset(ev, 0xa5, sizeof *ev);
    return bx->parse_webhook(f->state, (const unsigned char *)body, body ? strlen(body) : 0,
                             f->arena, ev);
}

static void test_parse_approved(void **state)
{
    fx *f = *state;
    pagoflex_webhook_event ev;
    assert_int_equal(parse(f, EVENT_BODY, &ev), PAGOFLEX_OK);
    assert_string_equal(ev.event_id, "evt_01JD8Z0000000000000000000A");
    assert_string_equal(ev.tx_id, "bx_01JD8Y7A2B");
    assert_string_equal(ev.payment_id, PAY_ID);
    assert_int_equal(ev.state, PAGOFLEX_STATE_SUCCEEDED);
    assert_null(ev.error_code);
    assert_null(ev.error_message);
}

static void test_parse_declined(void **state)
{
    fx *f = *state;
    pagoflex_webhook_event ev;
    assert_int_equal(parse(f,
                           "{\"event_id\":\"evt_2\",\"tx_id\":\"bx_2\",\"ref\":\"pay_2\","
                           "\"status\":\"DECLINED\"}",
                           &ev),
                     PAGOFLEX_OK);
    assert_string_equal(ev.event_id, "evt_2");
    assert_string_equal(ev.tx_id, "bx_2");
    assert_string_equal(ev.payment_id, "pay_2");
    assert_int_equal(ev.state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(ev.error_code, "declined");
    assert_non_null(ev.error_message);
}

static void test_parse_optional_fields(void **state)
{
    fx *f = *state;
    pagoflex_webhook_event ev;
    assert_int_equal(parse(f, "{\"event_id\":\"evt_3\",\"status\":\"APPROVED\"}", &ev),
                     PAGOFLEX_OK);
    assert_string_equal(ev.event_id, "evt_3");
    assert_null(ev.tx_id);
    assert_null(ev.payment_id);
    assert_int_equal(ev.state, PAGOFLEX_STATE_SUCCEEDED);
}

static void test_parse_garbage(void **state)
{
    fx *f = *state;
    const char *bad[] = {
        NULL,
        "",
        "not json",
        "[]",
        "{}",
        "{\"tx_id\":\"bx_1\",\"ref\":\"p\",\"status\":\"APPROVED\"}",       /* no event_id */
        "{\"event_id\":42,\"status\":\"APPROVED\"}",                        /* not a string */
        "{\"event_id\":\"\",\"status\":\"APPROVED\"}",                      /* empty */
        "{\"event_id\":\"evt\\u0000x\",\"status\":\"APPROVED\"}",           /* NUL inside */
        "{\"event_id\":\"evt_1\"}",                                         /* no status */
        "{\"event_id\":\"evt_1\",\"status\":\"PENDING\"}",                  /* other status */
        "{\"event_id\":\"evt_1\",\"status\":\"approved\"}",                 /* case matters */
        "{\"event_id\":\"evt_1\",\"status\":1}",
        "{\"event_id\":\"evt_1\",\"status\":\"APPROVED\",\"tx_id\":7}",    /* bad tx_id */
        "{\"event_id\":\"evt_1\",\"status\":\"APPROVED\",\"ref\":[]}",     /* bad ref */
        "{\"event_id\":\"evt_1\",\"status\":\"APPROVED\"",                 /* truncated */
        "{\"event_id\":\"evt_\xff\",\"status\":\"APPROVED\"}",             /* not UTF-8 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pagoflex_webhook_event ev;
        if (parse(f, bad[i], &ev) != PAGOFLEX_ERR_INVALID)
            fail_msg("body #%zu was accepted", i);
        /* Nothing written on error. */
        assert_int_equal(((unsigned char *)&ev)[0], 0xa5);
    }
}

/* ------------------------------------------------------------ sync (1.1) */

#define BX_REF "bx_01JD8Y7A2B3C4D5E6F7G8H9J0K"

static void test_sync_request_exact(void **state)
{
    fx *f = *state;
    pagoflex_payment p = payment(77077, "ARS");
    p.provider_reference_id = BX_REF;
    pagoflex_http_request req;
    assert_true(PAGOFLEX_HAS_FIELD(bx, pagoflex_connector, sync_response));
    assert_int_equal(bx->sync_request(f->state, &p, f->arena, &req), PAGOFLEX_OK);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, BASE_URL "/pay/" BX_REF);
    assert_int_equal(req.header_count, 1);
    assert_string_equal(req.headers[0].name, "Authorization");
    assert_string_equal(req.headers[0].value, "Bearer " API_KEY);
    assert_int_equal(req.body_len, 0);
}

static void test_sync_request_needs_bank_id(void **state)
{
    fx *f = *state;
    pagoflex_payment p = payment(1055, "ARS");
    pagoflex_http_request req;
    memset(&req, 0xa5, sizeof req);
    /* No bank id: nothing to ask by; the host re-sends POST /pay instead. */
    assert_int_equal(bx->sync_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_NOT_FOUND);
    p.provider_reference_id = "bx_../../admin";
    assert_int_equal(bx->sync_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    p.provider_reference_id = "bx_a?b=c";
    assert_int_equal(bx->sync_request(f->state, &p, f->arena, &req), PAGOFLEX_ERR_INVALID);
    assert_int_equal(((unsigned char *)&req)[0], 0xa5);
}

static int sync_respond(fx *f, pagoflex_transport transport, int status, const char *body,
                        pagoflex_payment_result *out)
{
    pagoflex_payment p = payment(77077, "ARS");
    p.provider_reference_id = BX_REF;
    pagoflex_http_response resp = {.transport = transport, .status = status,
                                   .body = (const unsigned char *)body,
                                   .body_len = body ? strlen(body) : 0};
    memset(out, 0xa5, sizeof *out);
    return bx->sync_response(f->state, &p, &resp, f->arena, out);
}

static void test_sync_response_states(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r;
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 200,
                                  "{\"id\":\"" BX_REF "\",\"ref\":\"p\",\"status\":\"PENDING\"}", &r),
                     PAGOFLEX_OK);
    expect(r, PAGOFLEX_STATE_PENDING, NULL, BX_REF);
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 200,
                                  "{\"id\":\"" BX_REF "\",\"ref\":\"p\",\"status\":\"APPROVED\"}", &r),
                     PAGOFLEX_OK);
    expect(r, PAGOFLEX_STATE_SUCCEEDED, NULL, BX_REF);
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 200,
                                  "{\"id\":\"" BX_REF "\",\"status\":\"DECLINED\","
                                  "\"reason\":\"stolen card\"}",
                                  &r),
                     PAGOFLEX_OK);
    expect(r, PAGOFLEX_STATE_FAILED, "declined", BX_REF);
    assert_string_equal(r.error_message, "stolen card");
}

static void test_sync_response_not_found(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r;
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 404, "{\"error\":\"not_found\"}", &r),
                     PAGOFLEX_ERR_NOT_FOUND);
    assert_int_equal(((unsigned char *)&r)[0], 0xa5); /* nothing written */
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 404, " {\"error\" : \"not_found\"}\n", &r),
                     PAGOFLEX_ERR_NOT_FOUND);
}

/* Only Banco X's own {"error":"not_found"} says the bank lacks the payment:
 * a 404 from a misrouted base URL, a proxy or another service proves
 * nothing, so the payment stays unknown. */
static void test_sync_response_foreign_404_is_unknown(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r;
    static const char *const bodies[] = {
        "",
        "<html><body><h1>404 Not Found</h1></body></html>",
        "{\"error\":\"not found\"}",
        "{\"error\":\"Not_Found\"}",
        "{\"error\":{\"code\":\"not_found\"}}",
        "{\"message\":\"not_found\"}",
        "[\"not_found\"]",
        "{\"error\":\"not_found\"",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        int rc = sync_respond(f, PAGOFLEX_TRANSPORT_OK, 404, bodies[i], &r);
        if (rc != PAGOFLEX_OK)
            fail_msg("404 with body '%s' gave status %d, not PAGOFLEX_OK", bodies[i], rc);
        assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
        assert_string_equal(r.error_code, "bank_bad_response");
        assert_non_null(strstr(r.error_message, "404"));
    }
}

static void test_sync_response_unknown_never_final(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r;
    static const int statuses[] = {500, 502, 503, 504, 429, 408, 401, 302};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, statuses[i], "", &r), PAGOFLEX_OK);
        assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
        assert_non_null(r.error_code);
    }
    static const pagoflex_transport transports[] = {PAGOFLEX_TRANSPORT_TIMEOUT,
                                                    PAGOFLEX_TRANSPORT_CONNECT,
                                                    PAGOFLEX_TRANSPORT_ERROR};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(sync_respond(f, transports[i], 0, NULL, &r), PAGOFLEX_OK);
        assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    }
    static const char *const bodies[] = {"", "not json", "[1]", "{\"status\":\"WEIRD\"}",
                                         "{\"status\":7}", "{}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 200, bodies[i], &r), PAGOFLEX_OK);
        expect_unknown(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_init_missing_api_key),
        cmocka_unit_test(test_init_missing_secret),
        cmocka_unit_test(test_init_empty_secret),
        cmocka_unit_test(test_init_bad_optional_values),
        cmocka_unit_test_setup_teardown(test_build_request_exact, setup, teardown),
        cmocka_unit_test(test_build_request_defaults),
        cmocka_unit_test_setup_teardown(test_build_request_description_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_request_description_not_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_request_unsupported_currency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_request_invalid_payment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_ok_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_rejected_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_transport_never_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_transient_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_401_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_422_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_other_4xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_unexpected_2xx_3xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_bad_200_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_huge_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_long_reason_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_spaces_tolerated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_tampered_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_wrong_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_timestamp_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_several_v1_one_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_v1_count_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_header_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sig_previous_secret, setup_rotation, teardown),
        cmocka_unit_test_setup_teardown(test_sig_previous_secret_not_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_approved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_declined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_optional_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_request_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_request_needs_bank_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_response_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_response_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_response_foreign_404_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_response_unknown_never_final, setup, teardown),
    };
    return cmocka_run_group_tests_name("banco_x", tests, group_setup, group_teardown);
}
