/*
 * test_@NAME@.c - unit test of the @KEY@ connector with the Pagoflex test
 * kit (no host needed). Built with @NAME@.c by `make check` or
 * `cmake --build build && ctest --test-dir build`.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <stdio.h>
#include <string.h>

/* Defined by PAGOFLEX_DEFINE_CONNECTOR in @NAME@.c, compiled into this test. */
const struct pagoflex_connector *pagoflex_connector_v1(void);

static int failures;

#define EXPECT(cond)                                                               \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);    \
            failures++;                                                            \
        }                                                                          \
    } while (0)

int main(void)
{
    const pagoflex_connector *c = pagoflex_connector_v1();
    pagoflex_testkit *tk = pagoflex_testkit_new();
    void *state = NULL;
    if (!tk)
        return 1;
    pagoflex_testkit_quiet(tk, 1);
    pagoflex_arena *arena = pagoflex_testkit_arena(tk);

    /* init refuses a missing secret, accepts a present one. */
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS);
    pagoflex_testkit_credential_set(tk, "@SECRET@", "test-secret");
    pagoflex_testkit_credential_set(tk, "@KEY@_BASE_URL", "http://127.0.0.1:9/");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_OK);
    if (!state)
        return 1;

    /* build_request: POST to the base URL, idempotent on the payment id. */
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_http_request req = {0};
    EXPECT(c->build_request(state, &p, arena, &req) == PAGOFLEX_OK);
    EXPECT(req.method && strcmp(req.method, "POST") == 0);
    EXPECT(req.url && strcmp(req.url, "http://127.0.0.1:9/payments") == 0);
    EXPECT(req.body_len > 0 && strstr((const char *)req.body, p.id) != NULL);
    pagoflex_payment other = pagoflex_testkit_payment(tk, 1050, "JPY");
    EXPECT(c->build_request(state, &other, arena, &req) == PAGOFLEX_ERR_UNSUPPORTED);

    /* handle_response: accepted, refused, and transient answers. */
    pagoflex_payment_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"id\":\"tx_1\"}");
    EXPECT(c->handle_response(state, &p, &ok, arena, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && strcmp(res.provider_reference_id, "tx_1") == 0);
    pagoflex_http_response bad = pagoflex_testkit_response(tk, 422, "{\"error\":\"amount\"}");
    EXPECT(c->handle_response(state, &p, &bad, arena, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_FAILED);
    pagoflex_http_response busy = pagoflex_testkit_response(tk, 503, NULL);
    EXPECT(c->handle_response(state, &p, &busy, arena, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PROCESSING);
    pagoflex_http_response lost = pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_TIMEOUT);
    EXPECT(c->handle_response(state, &p, &lost, arena, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PROCESSING);

    /* webhooks: a signed one is accepted and parsed; unsigned or altered
     * bodies are refused. */
    const char *body = "{\"event_id\":\"evt_1\",\"payment_id\":\"pay_1\",\"status\":\"succeeded\"}";
    pagoflex_testkit_webhook wh = pagoflex_testkit_webhook_new(tk, body);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len, arena) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_testkit_webhook_header(
        tk, &wh, "X-Signature", pagoflex_testkit_hmac_hex(tk, "test-secret", body, strlen(body)));
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len, arena) ==
           PAGOFLEX_OK);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len - 1,
                             arena) == PAGOFLEX_ERR_SIGNATURE);
    pagoflex_webhook_event ev;
    EXPECT(c->parse_webhook(state, wh.body, wh.body_len, arena, &ev) == PAGOFLEX_OK);
    EXPECT(ev.state == PAGOFLEX_STATE_SUCCEEDED && strcmp(ev.payment_id, "pay_1") == 0);
    EXPECT(c->parse_webhook(state, (const unsigned char *)"nope", 4, arena, &ev) ==
           PAGOFLEX_ERR_INVALID);

    if (c->fini)
        c->fini(state);
    pagoflex_testkit_free(tk);
    if (failures)
        fprintf(stderr, "test_@NAME@: %d failure(s)\n", failures);
    else
        printf("test_@NAME@: all checks passed\n");
    return failures ? 1 : 0;
}
