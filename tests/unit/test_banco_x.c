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
#include <strings.h>
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

/* ------------------------------------------------------------ flows (1.2) */

#define CAP_ID "cap_01JD8Y9C0000000000000000001"
#define VOID_ID "void_01JD8Y9C000000000000000001"
#define REFUND_ID "ref_01JD8Y9C00000000000000000001"
#define RF_REF "rf_01JD8YA00000000000000000RF"
#define CARD_TOKEN "tok_4242abcd_EF-9"
#define RETURN_URL "https://shop.example/return?order=77"

static pagoflex_payment flow_payment;

static pagoflex_flow_input flow_in(pagoflex_flow flow)
{
    flow_payment = payment(1050, "ARS");
    if (flow != PAGOFLEX_FLOW_AUTHORIZE)
        flow_payment.provider_reference_id = BX_REF;
    pagoflex_flow_input in = {.size = sizeof in, .flow = flow, .payment = &flow_payment,
                              .capture = 1};
    switch (flow) {
    case PAGOFLEX_FLOW_AUTHORIZE:
        in.operation_id = PAY_ID;
        break;
    case PAGOFLEX_FLOW_CAPTURE:
        in.operation_id = CAP_ID;
        in.amount = 500;
        break;
    case PAGOFLEX_FLOW_VOID:
        in.operation_id = VOID_ID;
        break;
    case PAGOFLEX_FLOW_REFUND:
        in.operation_id = REFUND_ID;
        in.refund_id = REFUND_ID;
        in.amount = 300;
        break;
    case PAGOFLEX_FLOW_PAYMENT_SYNC:
        in.operation_id = PAY_ID;
        break;
    case PAGOFLEX_FLOW_REFUND_SYNC:
        in.operation_id = REFUND_ID;
        in.refund_id = REFUND_ID;
        in.refund_provider_reference_id = RF_REF;
        break;
    }
    return in;
}

static const char *header_of(const pagoflex_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->header_count; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* The request must be `method` BASE_URL`path` with the API key, and for a
 * POST a JSON body and Idempotency-Key `key`. */
static void expect_request(const pagoflex_http_request *req, const char *method, const char *path,
                           const char *key)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", BASE_URL, path);
    assert_string_equal(req->method, method);
    assert_string_equal(req->url, url);
    assert_string_equal(header_of(req, "Authorization"), "Bearer " API_KEY);
    if (key) {
        assert_int_equal(req->header_count, 3);
        assert_string_equal(header_of(req, "Content-Type"), "application/json");
        assert_string_equal(header_of(req, "Idempotency-Key"), key);
    } else {
        assert_int_equal(req->header_count, 1);
        assert_int_equal(req->body_len, 0);
    }
}

static int flow_req(fx *f, const pagoflex_flow_input *in, pagoflex_http_request *req)
{
    memset(req, 0xa5, sizeof *req);
    return bx->flow_request(f->state, in, f->arena, req);
}

static int flow_resp_full(fx *f, const pagoflex_flow_input *in, pagoflex_transport transport,
                          int status, const char *body, pagoflex_flow_result *r)
{
    pagoflex_http_response resp = {.transport = transport, .status = status,
                                   .body = (const unsigned char *)body,
                                   .body_len = body ? strlen(body) : 0};
    memset(r, 0, sizeof *r);
    r->size = sizeof *r;
    r->state = (pagoflex_state)99; /* must be overwritten on PAGOFLEX_OK */
    return bx->flow_response(f->state, in, &resp, f->arena, r);
}

static pagoflex_flow_result flow_resp(fx *f, const pagoflex_flow_input *in, int status,
                                      const char *body)
{
    pagoflex_flow_result r;
    assert_int_equal(flow_resp_full(f, in, PAGOFLEX_TRANSPORT_OK, status, body, &r), PAGOFLEX_OK);
    return r;
}

static void expect_flow(pagoflex_flow_result r, pagoflex_state state, const char *code,
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

/* Answers that prove nothing: each must be PROCESSING with a code, never
 * FAILED, for every flow. */
static void expect_transient(fx *f, const pagoflex_flow_input *in)
{
    static const struct {
        pagoflex_transport transport;
        int status;
        const char *body;
    } answers[] = {
        {PAGOFLEX_TRANSPORT_OK, 429, "{\"error\":\"slow down\"}"},
        {PAGOFLEX_TRANSPORT_OK, 500, "{\"error\":\"internal\"}"},
        {PAGOFLEX_TRANSPORT_OK, 502, "<html>Bad Gateway</html>"},
        {PAGOFLEX_TRANSPORT_OK, 503, "{\"error\":\"unavailable\"}"},
        {PAGOFLEX_TRANSPORT_OK, 503, "{\"status\":\"REJECTED\",\"id\":\"rf_1\"}"},
        {PAGOFLEX_TRANSPORT_OK, 504, ""},
        {PAGOFLEX_TRANSPORT_OK, 408, ""},
        {PAGOFLEX_TRANSPORT_TIMEOUT, 0, NULL},
        {PAGOFLEX_TRANSPORT_TIMEOUT, 200, "{\"status\":\"REJECTED\",\"id\":\"bx_1\"}"},
        {PAGOFLEX_TRANSPORT_CONNECT, 0, NULL},
        {PAGOFLEX_TRANSPORT_ERROR, 0, NULL},
        {PAGOFLEX_TRANSPORT_OK, 200, NULL},
        {PAGOFLEX_TRANSPORT_OK, 200, ""},
        {PAGOFLEX_TRANSPORT_OK, 200, "not json"},
        {PAGOFLEX_TRANSPORT_OK, 200, "[\"OK\"]"},
        {PAGOFLEX_TRANSPORT_OK, 200, "{\"status\":\"WEIRD\",\"id\":\"bx_1\"}"},
        {PAGOFLEX_TRANSPORT_OK, 200, "{\"status\":\"OK\""},
        {PAGOFLEX_TRANSPORT_OK, 302, ""},
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        pagoflex_flow_result r;
        int rc = flow_resp_full(f, in, answers[i].transport, answers[i].status, answers[i].body,
                                &r);
        if (rc != PAGOFLEX_OK || r.state != PAGOFLEX_STATE_PROCESSING)
            fail_msg("flow %d, answer #%zu (transport %d, HTTP %d, body '%s'): status %d, "
                     "state %d; expected PROCESSING",
                     (int)in->flow, i, (int)answers[i].transport, answers[i].status,
                     answers[i].body ? answers[i].body : "(none)", rc, (int)r.state);
        assert_non_null(r.error_code);
        assert_non_null(r.error_message);
    }
}

/* A 404 that is not Banco X's own {"error":"not_found"}. */
#define FOREIGN_404 "{\"error\":\"no such endpoint\"}"

static void test_flow_descriptor(void **unused)
{
    (void)unused;
    assert_true(PAGOFLEX_HAS_FIELD(bx, pagoflex_connector, settings));
    for (int flow = 0; flow < PAGOFLEX_FLOW_COUNT; flow++)
        assert_true(bx->flows & PAGOFLEX_FLOW_BIT(flow));
    assert_int_equal(bx->flows >> PAGOFLEX_FLOW_COUNT, 0);
    assert_non_null(bx->flow_request);
    assert_non_null(bx->flow_response);
    assert_non_null(bx->webhook_verify);
    assert_non_null(bx->webhook_parse);
    assert_non_null(bx->webhook_sample);
    /* Still a complete 1.1 plugin for an older host. */
    assert_non_null(bx->build_request);
    assert_non_null(bx->handle_response);
    assert_non_null(bx->sync_request);
    assert_non_null(bx->sync_response);
}

static void test_flow_authorize_request(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    in.capture = 0;
    in.payment_method_type = "card_token";
    in.payment_method_token = CARD_TOKEN;
    in.return_url = RETURN_URL;
    pagoflex_http_request req;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    expect_request(&req, "POST", "/pay", PAY_ID);
    json_t *o = body_json(&req);
    assert_int_equal(json_object_size(o), 8);
    assert_int_equal(json_integer_value(json_object_get(o, "amount")), 1050);
    assert_string_equal(json_string_value(json_object_get(o, "currency")), "ARS");
    assert_string_equal(json_string_value(json_object_get(o, "ref")), PAY_ID);
    assert_string_equal(json_string_value(json_object_get(o, "callback_url")), WEBHOOK_URL);
    assert_string_equal(json_string_value(json_object_get(o, "description")), "Two coffees");
    assert_true(json_is_false(json_object_get(o, "capture")));
    assert_string_equal(json_string_value(json_object_get(o, "card_token")), CARD_TOKEN);
    assert_string_equal(json_string_value(json_object_get(o, "return_url")), RETURN_URL);
    json_decref(o);

    /* Automatic capture, no card token, no return URL. */
    in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    o = body_json(&req);
    assert_int_equal(json_object_size(o), 6);
    assert_true(json_is_true(json_object_get(o, "capture")));
    assert_null(json_object_get(o, "card_token"));
    assert_null(json_object_get(o, "return_url"));
    json_decref(o);
}

static void test_flow_authorize_request_refused(void **state)
{
    fx *f = *state;
    pagoflex_http_request req;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    in.payment_method_type = "sepa_debit";
    in.payment_method_token = CARD_TOKEN;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_UNSUPPORTED);
    in.payment_method_type = "card_token";
    const char *bad_tokens[] = {NULL, "", "tok_", "4242424242424242", "tok_a b", "tok_a\"b"};
    for (size_t i = 0; i < sizeof bad_tokens / sizeof *bad_tokens; i++) {
        in.payment_method_token = bad_tokens[i];
        assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    }
    in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    in.return_url = "javascript:alert(1)";
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    in.return_url = "https://shop.example/a b";
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    flow_payment.currency = "EUR";
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_UNSUPPORTED);
    assert_int_equal(((unsigned char *)&req)[0], 0xa5); /* nothing written */
    /* A flow input from a host too old to have the fields is refused. */
    in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    in.size = offsetof(pagoflex_flow_input, capture);
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
}

static void test_flow_authorize_answers(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_AUTHORIZE);
    pagoflex_flow_result r = flow_resp(f, &in, 200, "{\"status\":\"OK\",\"id\":\"" BX_REF "\"}");
    expect_flow(r, PAGOFLEX_STATE_PENDING, NULL, BX_REF);
    assert_null(r.redirect_url);

    r = flow_resp(f, &in, 200,
                  "{\"status\":\"REJECTED\",\"id\":\"bx_R1\",\"reason\":\"insufficient funds\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "rejected", "bx_R1");
    assert_string_equal(r.error_message, "insufficient funds");

    r = flow_resp(f, &in, 200,
                  "{\"status\":\"ACTION_REQUIRED\",\"id\":\"" BX_REF "\",\"redirect_url\":"
                  "\"http://127.0.0.1:18080/3ds/" BX_REF "\"}");
    expect_flow(r, PAGOFLEX_STATE_REQUIRES_ACTION, NULL, BX_REF);
    assert_string_equal(r.redirect_url, "http://127.0.0.1:18080/3ds/" BX_REF);
    /* A challenge without a usable URL cannot be shown: unknown, not failed. */
    r = flow_resp(f, &in, 200, "{\"status\":\"ACTION_REQUIRED\",\"id\":\"" BX_REF "\"}");
    expect_flow(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);
    r = flow_resp(f, &in, 200,
                  "{\"status\":\"ACTION_REQUIRED\",\"id\":\"" BX_REF "\",\"redirect_url\":"
                  "\"javascript:x\"}");
    expect_flow(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);

    /* The bank refused before taking it. */
    r = flow_resp(f, &in, 401, "{\"error\":\"unauthorized\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "bank_auth", NULL);
    r = flow_resp(f, &in, 422, "{\"error\":\"card_token: not a token\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "bank_invalid_request", NULL);
    assert_string_equal(r.error_message, "card_token: not a token");
    expect_transient(f, &in);
}

static void test_flow_capture_request(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_CAPTURE);
    pagoflex_http_request req;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    expect_request(&req, "POST", "/pay/" BX_REF "/capture", CAP_ID);
    json_t *o = body_json(&req);
    assert_int_equal(json_object_size(o), 1);
    assert_true(json_is_integer(json_object_get(o, "amount")));
    assert_int_equal(json_integer_value(json_object_get(o, "amount")), 500);
    json_decref(o);

    /* No bank id: nothing to capture by, nothing sent. */
    flow_payment.provider_reference_id = NULL;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    assert_int_equal(((unsigned char *)&req)[0], 0xa5);
    flow_payment.provider_reference_id = "bx_../x";
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    in = flow_in(PAGOFLEX_FLOW_CAPTURE);
    in.amount = 0;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    in = flow_in(PAGOFLEX_FLOW_CAPTURE);
    in.operation_id = NULL;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
}

static void test_flow_capture_answers(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_CAPTURE);
    pagoflex_flow_result r = flow_resp(
        f, &in, 200, "{\"status\":\"CAPTURED\",\"id\":\"" BX_REF "\",\"captured\":500}");
    expect_flow(r, PAGOFLEX_STATE_SUCCEEDED, NULL, BX_REF);
    assert_int_equal(r.amount, 500);

    r = flow_resp(f, &in, 409, "{\"error\":\"not_capturable\",\"status\":\"VOIDED\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "not_capturable", BX_REF);
    assert_non_null(strstr(r.error_message, "VOIDED"));
    r = flow_resp(f, &in, 422, "{\"error\":\"amount: above the authorized amount\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "invalid_amount", NULL);
    assert_string_equal(r.error_message, "amount: above the authorized amount");
    r = flow_resp(f, &in, 404, "{\"error\":\"not_found\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "payment_not_found", BX_REF);

    /* A 409 that is not Banco X's refusal (a request in flight), a foreign
     * 404 and a 200 that does not say CAPTURED prove nothing. */
    r = flow_resp(f, &in, 409, "{\"error\":\"conflict\"}");
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    r = flow_resp(f, &in, 404, FOREIGN_404);
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    r = flow_resp(f, &in, 200, "{\"status\":\"VOIDED\",\"id\":\"" BX_REF "\"}");
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    expect_transient(f, &in);
}

static void test_flow_void(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_VOID);
    pagoflex_http_request req;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    expect_request(&req, "POST", "/pay/" BX_REF "/void", VOID_ID);
    assert_int_equal(req.body_len, 2);
    assert_memory_equal(req.body, "{}", 2);
    flow_payment.provider_reference_id = NULL;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);

    in = flow_in(PAGOFLEX_FLOW_VOID);
    pagoflex_flow_result r = flow_resp(f, &in, 200, "{\"status\":\"VOIDED\",\"id\":\"" BX_REF "\"}");
    expect_flow(r, PAGOFLEX_STATE_SUCCEEDED, NULL, BX_REF);
    r = flow_resp(f, &in, 409, "{\"error\":\"not_voidable\",\"status\":\"CAPTURED\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "not_voidable", BX_REF);
    assert_non_null(strstr(r.error_message, "CAPTURED"));
    /* The capture refusal is not the void's. */
    r = flow_resp(f, &in, 409, "{\"error\":\"not_capturable\",\"status\":\"PENDING\"}");
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    r = flow_resp(f, &in, 404, FOREIGN_404);
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    expect_transient(f, &in);
}

static void test_flow_refund(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_REFUND);
    pagoflex_http_request req;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    expect_request(&req, "POST", "/refunds", REFUND_ID);
    json_t *o = body_json(&req);
    assert_int_equal(json_object_size(o), 4);
    assert_string_equal(json_string_value(json_object_get(o, "tx_id")), BX_REF);
    assert_int_equal(json_integer_value(json_object_get(o, "amount")), 300);
    assert_string_equal(json_string_value(json_object_get(o, "ref")), REFUND_ID);
    assert_string_equal(json_string_value(json_object_get(o, "callback_url")), WEBHOOK_URL);
    json_decref(o);
    flow_payment.provider_reference_id = NULL;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);
    in = flow_in(PAGOFLEX_FLOW_REFUND);
    in.amount = -1;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);

    in = flow_in(PAGOFLEX_FLOW_REFUND);
    pagoflex_flow_result r = flow_resp(f, &in, 200, "{\"status\":\"OK\",\"id\":\"" RF_REF "\"}");
    expect_flow(r, PAGOFLEX_STATE_PENDING, NULL, RF_REF);
    r = flow_resp(f, &in, 200,
                  "{\"status\":\"REJECTED\",\"id\":\"" RF_REF "\",\"reason\":\"refund window "
                  "closed\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "rejected", RF_REF);
    assert_string_equal(r.error_message, "refund window closed");
    r = flow_resp(f, &in, 422, "{\"error\":\"amount: above what is left to refund\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "bank_invalid_request", NULL);
    assert_string_equal(r.error_message, "amount: above what is left to refund");
    r = flow_resp(f, &in, 401, "{\"error\":\"unauthorized\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "bank_auth", NULL);
    r = flow_resp(f, &in, 404, FOREIGN_404);
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    expect_transient(f, &in);
}

static void test_flow_payment_sync(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_PAYMENT_SYNC);
    pagoflex_http_request req;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    expect_request(&req, "GET", "/pay/" BX_REF, NULL);
    flow_payment.provider_reference_id = NULL;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_NOT_FOUND);
    flow_payment.provider_reference_id = "bx_a?b";
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);

    in = flow_in(PAGOFLEX_FLOW_PAYMENT_SYNC);
    static const struct {
        const char *body;
        pagoflex_state state;
        const char *code;
        int64_t amount;
    } cases[] = {
        {"{\"id\":\"" BX_REF "\",\"status\":\"PENDING\",\"captured\":0}", PAGOFLEX_STATE_PENDING, NULL, 0},
        {"{\"id\":\"" BX_REF "\",\"status\":\"ACTION_REQUIRED\",\"captured\":0}",
         PAGOFLEX_STATE_REQUIRES_ACTION, NULL, 0},
        {"{\"id\":\"" BX_REF "\",\"status\":\"AUTHORIZED\",\"captured\":0}",
         PAGOFLEX_STATE_REQUIRES_CAPTURE, NULL, 0},
        {"{\"id\":\"" BX_REF "\",\"status\":\"APPROVED\",\"captured\":1050}",
         PAGOFLEX_STATE_SUCCEEDED, NULL, 1050},
        {"{\"id\":\"" BX_REF "\",\"status\":\"CAPTURED\",\"captured\":500}",
         PAGOFLEX_STATE_SUCCEEDED, NULL, 500},
        {"{\"id\":\"" BX_REF "\",\"status\":\"VOIDED\",\"captured\":0}", PAGOFLEX_STATE_CANCELED,
         "voided", 0},
        {"{\"id\":\"" BX_REF "\",\"status\":\"DECLINED\",\"captured\":0,\"reason\":\"stolen\"}",
         PAGOFLEX_STATE_FAILED, "declined", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pagoflex_flow_result r = flow_resp(f, &in, 200, cases[i].body);
        expect_flow(r, cases[i].state, cases[i].code, BX_REF);
        assert_int_equal(r.amount, cases[i].amount);
    }
    pagoflex_flow_result r = flow_resp(
        f, &in, 200,
        "{\"id\":\"" BX_REF "\",\"status\":\"ACTION_REQUIRED\",\"redirect_url\":\"http://b/3ds/1\"}");
    assert_string_equal(r.redirect_url, "http://b/3ds/1");

    assert_int_equal(flow_resp_full(f, &in, PAGOFLEX_TRANSPORT_OK, 404, "{\"error\":\"not_found\"}", &r),
                     PAGOFLEX_ERR_NOT_FOUND);
    assert_int_equal(r.state, 99); /* nothing written */
    r = flow_resp(f, &in, 404, FOREIGN_404);
    expect_flow(r, PAGOFLEX_STATE_PROCESSING, "bank_bad_response", NULL);
    r = flow_resp(f, &in, 404, "");
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    r = flow_resp(f, &in, 401, "{\"error\":\"unauthorized\"}");
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    expect_transient(f, &in);
}

static void test_flow_refund_sync(void **state)
{
    fx *f = *state;
    pagoflex_flow_input in = flow_in(PAGOFLEX_FLOW_REFUND_SYNC);
    pagoflex_http_request req;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_OK);
    expect_request(&req, "GET", "/refunds/" RF_REF, NULL);
    in.refund_provider_reference_id = NULL;
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_NOT_FOUND);
    in.refund_provider_reference_id = "rf_1/../x";
    assert_int_equal(flow_req(f, &in, &req), PAGOFLEX_ERR_INVALID);

    in = flow_in(PAGOFLEX_FLOW_REFUND_SYNC);
    pagoflex_flow_result r = flow_resp(
        f, &in, 200, "{\"id\":\"" RF_REF "\",\"tx_id\":\"" BX_REF "\",\"status\":\"PENDING\",\"amount\":300}");
    expect_flow(r, PAGOFLEX_STATE_PENDING, NULL, RF_REF);
    r = flow_resp(f, &in, 200, "{\"id\":\"" RF_REF "\",\"status\":\"REFUNDED\",\"amount\":300}");
    expect_flow(r, PAGOFLEX_STATE_SUCCEEDED, NULL, RF_REF);
    assert_int_equal(r.amount, 300);
    r = flow_resp(f, &in, 200,
                  "{\"id\":\"" RF_REF "\",\"status\":\"REFUND_FAILED\",\"amount\":300,"
                  "\"reason\":\"refund window closed\"}");
    expect_flow(r, PAGOFLEX_STATE_FAILED, "refund_failed", RF_REF);
    assert_string_equal(r.error_message, "refund window closed");
    assert_int_equal(flow_resp_full(f, &in, PAGOFLEX_TRANSPORT_OK, 404, "{\"error\":\"not_found\"}", &r),
                     PAGOFLEX_ERR_NOT_FOUND);
    r = flow_resp(f, &in, 404, FOREIGN_404);
    assert_int_equal(r.state, PAGOFLEX_STATE_PROCESSING);
    expect_transient(f, &in);
}

/* ------------------------------------------------------ webhooks (1.2) */

static pagoflex_webhook_request wh_req(const char *sig, const char *body)
{
    static pagoflex_header h[2];
    h[0] = (pagoflex_header){"Content-Type", "application/json"};
    h[1] = (pagoflex_header){SIG_HEADER, sig};
    return (pagoflex_webhook_request){.size = sizeof(pagoflex_webhook_request),
                                      .method = "POST", .path = "/webhooks/bancox",
                                      .query = "", .headers = h, .header_count = sig ? 2 : 1,
                                      .body = (const unsigned char *)body,
                                      .body_len = body ? strlen(body) : 0};
}

static int wh_verify(fx *f, const char *sig, const char *body)
{
    pagoflex_webhook_request req = wh_req(sig, body);
    log_reset();
    return bx->webhook_verify(f->state, &req, f->arena);
}

static int wh_parse(fx *f, const char *body, pagoflex_webhook_parsed *out)
{
    pagoflex_webhook_request req = wh_req(NULL, body);
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    return bx->webhook_parse(f->state, &req, f->arena, out);
}

static const pagoflex_event *wh_one(fx *f, const char *body)
{
    pagoflex_webhook_parsed p;
    assert_int_equal(wh_parse(f, body, &p), PAGOFLEX_OK);
    assert_int_equal(p.event_count, 1);
    assert_int_equal(p.answer_status, 0); /* the host's default answer */
    assert_null(p.answer_body);
    return &p.events[0];
}

static void test_webhook_verify_1_2(void **state)
{
    fx *f = *state;
    assert_int_equal(wh_verify(f, sig_header(f, SECRET, NOW, EVENT_BODY), EVENT_BODY), PAGOFLEX_OK);
    /* Tampered body. */
    char tampered[] = EVENT_BODY;
    memcpy(strstr(tampered, "APPROVED"), "DECLINED", 8);
    assert_int_equal(wh_verify(f, sig_header(f, SECRET, NOW, EVENT_BODY), tampered),
                     PAGOFLEX_ERR_SIGNATURE);
    /* Stale, and from the future, by more than 300 s of host->now. */
    assert_int_equal(wh_verify(f, sig_header(f, SECRET, NOW - 301, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(wh_verify(f, sig_header(f, SECRET, NOW + 301, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_ERR_SIGNATURE);
    assert_int_equal(wh_verify(f, sig_header(f, SECRET, NOW - 300, EVENT_BODY), EVENT_BODY),
                     PAGOFLEX_OK);
    /* Rotation: two v1= entries, the valid one second. */
    char good[65], other[65];
    hmac_hex(SECRET, "1800000000", EVENT_BODY, good);
    hmac_hex("whsec_next_secret", "1800000000", EVENT_BODY, other);
    const char *two = arena_printf(f->arena, "t=1800000000,v1=%s,v1=%s", other, good);
    assert_int_equal(wh_verify(f, two, EVENT_BODY), PAGOFLEX_OK);
    two = arena_printf(f->arena, "t=1800000000,v1=%s,v1=%s", other, other);
    assert_int_equal(wh_verify(f, two, EVENT_BODY), PAGOFLEX_ERR_SIGNATURE);
    /* No header. */
    assert_int_equal(wh_verify(f, NULL, EVENT_BODY), PAGOFLEX_ERR_SIGNATURE);
}

static void test_webhook_parse_payment(void **state)
{
    fx *f = *state;
    /* A v1 body: no type means payment. */
    const pagoflex_event *ev = wh_one(f, EVENT_BODY);
    assert_int_equal(ev->kind, PAGOFLEX_EVENT_PAYMENT);
    assert_string_equal(ev->event_id, "evt_01JD8Z0000000000000000000A");
    assert_string_equal(ev->tx_id, "bx_01JD8Y7A2B");
    assert_string_equal(ev->payment_id, PAY_ID);
    assert_int_equal(ev->state, PAGOFLEX_STATE_SUCCEEDED);
    assert_int_equal(ev->amount, 1050);
    assert_int_equal(ev->look_up, 0);

    static const struct {
        const char *status;
        pagoflex_state state;
        int64_t amount;
    } cases[] = {
        {"APPROVED", PAGOFLEX_STATE_SUCCEEDED, 700},
        {"CAPTURED", PAGOFLEX_STATE_SUCCEEDED, 700},
        {"AUTHORIZED", PAGOFLEX_STATE_REQUIRES_CAPTURE, 0},
        {"VOIDED", PAGOFLEX_STATE_CANCELED, 0},
        {"DECLINED", PAGOFLEX_STATE_FAILED, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *body = arena_printf(
            f->arena,
            "{\"event_id\":\"evt_p%zu\",\"type\":\"payment\",\"tx_id\":\"bx_9\",\"ref\":\"pay_9\","
            "\"status\":\"%s\",\"amount\":700,\"currency\":\"ARS\",\"occurred_at\":\"x\"}",
            i, cases[i].status);
        ev = wh_one(f, body);
        assert_int_equal(ev->kind, PAGOFLEX_EVENT_PAYMENT);
        assert_string_equal(ev->type, "payment");
        assert_string_equal(ev->tx_id, "bx_9");
        assert_string_equal(ev->payment_id, "pay_9");
        assert_int_equal(ev->state, cases[i].state);
        assert_int_equal(ev->amount, cases[i].amount);
        if (cases[i].state == PAGOFLEX_STATE_FAILED)
            assert_string_equal(ev->error_code, "declined");
    }
}

static void test_webhook_parse_refund(void **state)
{
    fx *f = *state;
    const pagoflex_event *ev =
        wh_one(f, "{\"event_id\":\"evt_r1\",\"type\":\"refund\",\"refund_id\":\"" RF_REF "\","
                  "\"ref\":\"" REFUND_ID "\",\"tx_id\":\"" BX_REF "\",\"status\":\"REFUNDED\","
                  "\"amount\":300,\"currency\":\"ARS\",\"occurred_at\":\"x\"}");
    assert_int_equal(ev->kind, PAGOFLEX_EVENT_REFUND);
    assert_string_equal(ev->event_id, "evt_r1");
    assert_string_equal(ev->refund_id, REFUND_ID);
    assert_string_equal(ev->refund_provider_reference_id, RF_REF);
    assert_string_equal(ev->tx_id, BX_REF);
    assert_null(ev->payment_id);
    assert_int_equal(ev->state, PAGOFLEX_STATE_SUCCEEDED);
    assert_int_equal(ev->amount, 300);
    ev = wh_one(f, "{\"event_id\":\"evt_r2\",\"type\":\"refund\",\"refund_id\":\"" RF_REF "\","
                   "\"ref\":\"" REFUND_ID "\",\"tx_id\":\"" BX_REF "\",\"status\":\"REFUND_FAILED\","
                   "\"amount\":300}");
    assert_int_equal(ev->kind, PAGOFLEX_EVENT_REFUND);
    assert_int_equal(ev->state, PAGOFLEX_STATE_FAILED);
    assert_string_equal(ev->error_code, "refund_failed");
    /* A 1.1 host cannot apply a refund event: refused by parse_webhook. */
    pagoflex_webhook_event old;
    assert_int_equal(parse(f, "{\"event_id\":\"evt_r1\",\"type\":\"refund\",\"ref\":\"r\","
                              "\"status\":\"REFUNDED\"}",
                           &old),
                     PAGOFLEX_ERR_INVALID);
}

static void test_webhook_parse_unknown_type_ignored(void **state)
{
    fx *f = *state;
    const pagoflex_event *ev = wh_one(
        f, "{\"event_id\":\"evt_d1\",\"type\":\"dispute\",\"tx_id\":\"bx_1\",\"status\":\"OPENED\"}");
    assert_int_equal(ev->kind, PAGOFLEX_EVENT_IGNORED);
    assert_string_equal(ev->event_id, "evt_d1");
    assert_string_equal(ev->type, "dispute");
    /* Even without a status. */
    ev = wh_one(f, "{\"event_id\":\"evt_d2\",\"type\":\"payout.paid\"}");
    assert_int_equal(ev->kind, PAGOFLEX_EVENT_IGNORED);
    assert_string_equal(ev->type, "payout.paid");
}

static void test_webhook_parse_garbage_1_2(void **state)
{
    fx *f = *state;
    const char *bad[] = {
        NULL,
        "",
        "not json",
        "[]",
        "{}",
        "{\"type\":\"payment\",\"status\":\"APPROVED\"}",                      /* no event_id */
        "{\"event_id\":\"evt_1\",\"type\":5,\"status\":\"APPROVED\"}",         /* bad type */
        "{\"event_id\":\"evt_1\",\"type\":\"\",\"status\":\"APPROVED\"}",      /* empty type */
        "{\"event_id\":\"evt_1\",\"type\":\"payment\"}",                       /* no status */
        "{\"event_id\":\"evt_1\",\"type\":\"payment\",\"status\":\"REFUNDED\"}",
        "{\"event_id\":\"evt_1\",\"type\":\"refund\",\"ref\":\"r\",\"status\":\"APPROVED\"}",
        "{\"event_id\":\"evt_1\",\"type\":\"refund\",\"status\":\"REFUNDED\"}", /* no refund id */
        "{\"event_id\":\"evt_1\",\"type\":\"refund\",\"ref\":7,\"status\":\"REFUNDED\"}",
        "{\"event_id\":\"evt_1\",\"status\":\"APPROVED\",\"tx_id\":[]}",
        "{\"event_id\":\"evt_1\",\"status\":\"APPROVED\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pagoflex_webhook_parsed p;
        if (wh_parse(f, bad[i], &p) != PAGOFLEX_ERR_INVALID)
            fail_msg("body #%zu was accepted", i);
        assert_null(p.events);
        assert_int_equal(p.event_count, 0);
    }
}

/* webhook_sample's request verifies, parses back to the same event, is
 * signed exactly as the contract says, and fails verification once
 * tampered with. */
static void test_webhook_sample_round_trip(void **state)
{
    fx *f = *state;
    const pagoflex_event events[] = {
        {.event_id = "evt_s1", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = BX_REF,
         .payment_id = PAY_ID, .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 1050},
        {.event_id = "evt_s2", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = BX_REF,
         .payment_id = PAY_ID, .state = PAGOFLEX_STATE_REQUIRES_CAPTURE},
        {.event_id = "evt_s3", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = BX_REF,
         .payment_id = PAY_ID, .state = PAGOFLEX_STATE_CANCELED},
        {.event_id = "evt_s4", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = BX_REF,
         .payment_id = PAY_ID, .state = PAGOFLEX_STATE_FAILED},
        {.event_id = "evt_s5", .kind = PAGOFLEX_EVENT_REFUND, .tx_id = BX_REF,
         .refund_id = REFUND_ID, .refund_provider_reference_id = RF_REF,
         .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 300},
        {.event_id = "evt_s6", .kind = PAGOFLEX_EVENT_REFUND, .tx_id = BX_REF,
         .refund_id = REFUND_ID, .refund_provider_reference_id = RF_REF,
         .state = PAGOFLEX_STATE_FAILED, .amount = 300},
        {.event_id = "evt_s7", .kind = PAGOFLEX_EVENT_IGNORED, .type = "dispute"},
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        const pagoflex_event *want = &events[i];
        pagoflex_webhook_request req;
        assert_int_equal(bx->webhook_sample(f->state, want, NOW, f->arena, &req), PAGOFLEX_OK);
        assert_int_equal(req.size, sizeof req);
        assert_string_equal(req.method, "POST");
        const char *ct = NULL, *sig = NULL;
        for (size_t k = 0; k < req.header_count; k++) {
            if (strcasecmp(req.headers[k].name, "Content-Type") == 0)
                ct = req.headers[k].value;
            if (strcasecmp(req.headers[k].name, SIG_HEADER) == 0)
                sig = req.headers[k].value;
        }
        assert_string_equal(ct, "application/json");
        char *body = arena_strndup(f->arena, (const char *)req.body, req.body_len);
        assert_string_equal(sig, sig_header(f, SECRET, NOW, body)); /* OpenSSL agrees */
        assert_int_equal(bx->webhook_verify(f->state, &req, f->arena), PAGOFLEX_OK);

        pagoflex_webhook_parsed p = {.size = sizeof p};
        assert_int_equal(bx->webhook_parse(f->state, &req, f->arena, &p), PAGOFLEX_OK);
        assert_int_equal(p.event_count, 1);
        const pagoflex_event *got = &p.events[0];
        assert_string_equal(got->event_id, want->event_id);
        assert_int_equal(got->kind, want->kind);
        if (want->kind == PAGOFLEX_EVENT_IGNORED) {
            assert_string_equal(got->type, want->type);
        } else {
            assert_int_equal(got->state, want->state);
            assert_int_equal(got->amount, want->amount);
            assert_string_equal(got->tx_id, want->tx_id);
        }
        if (want->kind == PAGOFLEX_EVENT_PAYMENT)
            assert_string_equal(got->payment_id, want->payment_id);
        if (want->kind == PAGOFLEX_EVENT_REFUND) {
            assert_string_equal(got->refund_id, want->refund_id);
            assert_string_equal(got->refund_provider_reference_id,
                                want->refund_provider_reference_id);
        }

        /* One byte changed: refused. */
        char *tampered = arena_strndup(f->arena, body, req.body_len);
        tampered[req.body_len / 2] ^= 0x01;
        pagoflex_webhook_request bad = req;
        bad.body = (const unsigned char *)tampered;
        assert_int_equal(bx->webhook_verify(f->state, &bad, f->arena), PAGOFLEX_ERR_SIGNATURE);
    }
    /* A sample made 301 s ago is stale. */
    pagoflex_webhook_request req;
    assert_int_equal(bx->webhook_sample(f->state, &events[0], NOW - 301, f->arena, &req),
                     PAGOFLEX_OK);
    assert_int_equal(bx->webhook_verify(f->state, &req, f->arena), PAGOFLEX_ERR_SIGNATURE);
    /* A state Banco X never sends has no sample. */
    pagoflex_event pending = events[0];
    pending.state = PAGOFLEX_STATE_PENDING;
    assert_int_equal(bx->webhook_sample(f->state, &pending, NOW, f->arena, &req),
                     PAGOFLEX_ERR_UNSUPPORTED);
}

/* On a 1.1 host the wrappers answer in the states it knows. */
static void test_legacy_wrappers_new_statuses(void **state)
{
    fx *f = *state;
    pagoflex_payment_result r = respond(
        f, 200, "{\"status\":\"ACTION_REQUIRED\",\"id\":\"bx_A\",\"redirect_url\":\"http://b/3ds\"}");
    expect(r, PAGOFLEX_STATE_PENDING, NULL, "bx_A");
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 200,
                                  "{\"id\":\"" BX_REF "\",\"status\":\"CAPTURED\",\"captured\":9}", &r),
                     PAGOFLEX_OK);
    expect(r, PAGOFLEX_STATE_SUCCEEDED, NULL, BX_REF);
    assert_int_equal(sync_respond(f, PAGOFLEX_TRANSPORT_OK, 200,
                                  "{\"id\":\"" BX_REF "\",\"status\":\"VOIDED\"}", &r),
                     PAGOFLEX_OK);
    expect(r, PAGOFLEX_STATE_FAILED, "voided", BX_REF);
    pagoflex_webhook_event ev;
    assert_int_equal(parse(f, "{\"event_id\":\"e\",\"type\":\"payment\",\"status\":\"CAPTURED\"}", &ev),
                     PAGOFLEX_OK);
    assert_int_equal(ev.state, PAGOFLEX_STATE_SUCCEEDED);
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
        cmocka_unit_test(test_flow_descriptor),
        cmocka_unit_test_setup_teardown(test_flow_authorize_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_authorize_request_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_authorize_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_capture_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_capture_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_void, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_refund, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_payment_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_refund_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_verify_1_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_parse_payment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_parse_refund, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_parse_unknown_type_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_parse_garbage_1_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_sample_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_wrappers_new_statuses, setup, teardown),
    };
    return cmocka_run_group_tests_name("banco_x", tests, group_setup, group_teardown);
}
