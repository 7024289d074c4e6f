/*
 * test_@NAME@.c - unit test of the @KEY@ connector with the Pagoflex test
 * kit (no host needed): init, every flow against canned bank answers,
 * whole-request webhooks signed by webhook_sample, and the 1.0 entry
 * points a 1.1 host calls. Built with @NAME@.c by `make check` or
 * `cmake --build build && ctest --test-dir build`.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <stdio.h>
#include <string.h>

/* Defined by PAGOFLEX_DEFINE_CONNECTOR in @NAME@.c, compiled into this test. */
const struct pagoflex_connector *pagoflex_connector_v1(void);

#define BASE "http://127.0.0.1:9"
#define NOW 1800000000

static int failures;

#define EXPECT(cond)                                                               \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);    \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static const pagoflex_connector *c;
static pagoflex_testkit *tk;
static void *state;

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Does the request carry s (URL, header value or body)? */
static int carries(const pagoflex_http_request *r, const char *s)
{
    if (r->url && strstr(r->url, s))
        return 1;
    for (size_t i = 0; i < r->header_count; i++)
        if (streq(r->headers[i].value, s))
            return 1;
    return r->body && strstr((const char *)r->body, s) != NULL;
}

/* The state flow `in` maps `resp` to (PAGOFLEX_OK expected), or -1. */
static int state_of(const pagoflex_flow_input *in, pagoflex_http_response resp,
                    pagoflex_flow_result *res)
{
    int rc = pagoflex_testkit_run_flow(tk, c, state, in, &resp, NULL, res);
    return rc == PAGOFLEX_OK ? (int)res->state : -1;
}

/* What every flow shares: 429, 5xx, timeouts and garbage stay PROCESSING. */
static void unknown_stays_processing(const pagoflex_flow_input *in)
{
    pagoflex_flow_result res;
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 429, "{\"error\":\"slow\"}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 503, NULL), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_TIMEOUT), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 200, "<html>bad gateway</html>"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 404, "<html>Not Found</html>"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
}

static void test_authorize(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"id\":\"tx_1\",\"status\":\"succeeded\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.method, "POST") && streq(req.url, BASE "/payments"));
    EXPECT(carries(&req, in.operation_id)); /* the idempotency key */
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && streq(res.provider_reference_id, "tx_1"));
    in.capture = 0;
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"id\":\"tx_1\",\"status\":\"authorized\"}"),
                    &res) == PAGOFLEX_STATE_REQUIRES_CAPTURE);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"id\":\"tx_1\",\"status\":"
                                                            "\"requires_action\",\"redirect_url\":"
                                                            "\"https://bank.example/3ds/tx_1\"}"),
                    &res) == PAGOFLEX_STATE_REQUIRES_ACTION);
    EXPECT(streq(res.redirect_url, "https://bank.example/3ds/tx_1"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 402, "{\"error\":\"card_declined\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "card_declined"));
    /* A 409 on create may be a retry racing the first attempt: unknown. */
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 409, "{\"error\":\"in_progress\"}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    unknown_stays_processing(&in);
    pagoflex_payment yen = pagoflex_testkit_payment(tk, 1050, "JPY");
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &yen);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) ==
           PAGOFLEX_ERR_UNSUPPORTED);
}

static void test_capture_and_void(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_CAPTURE, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    in.amount = 500; /* partial */
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"status\":\"succeeded\",\"amount\":500}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(req.url && strstr(req.url, in.payment->provider_reference_id) &&
           strstr(req.url, "/capture"));
    EXPECT(carries(&req, in.operation_id) && req.body && strstr((const char *)req.body, "500"));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && res.amount == 500);
    /* The bank's own no: the capture failed, the payment is unchanged. */
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 409, "{\"error\":\"not_capturable\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "not_capturable"));
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_VOID, &p);
    ok = pagoflex_testkit_response(tk, 200, "{\"status\":\"canceled\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(req.url && strstr(req.url, "/void") && carries(&req, in.operation_id));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED);
    unknown_stays_processing(&in);
}

static void test_refund_and_syncs(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"id\":\"rf_1\",\"status\":\"pending\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.url, BASE "/refunds") && carries(&req, in.operation_id));
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && streq(res.provider_reference_id, "rf_1"));
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND_SYNC, &p);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"id\":\"rf_1\",\"status\":\"failed\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    pagoflex_http_response gone = pagoflex_testkit_response(tk, 404, "{\"error\":\"not_found\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &gone, NULL, &res) ==
           PAGOFLEX_ERR_NOT_FOUND);
    in.refund_provider_reference_id = NULL; /* nothing to ask the bank by yet */
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) ==
           PAGOFLEX_ERR_NOT_FOUND);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_PAYMENT_SYNC, &p);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"status\":\"authorized\"}"), &res) ==
           PAGOFLEX_STATE_REQUIRES_CAPTURE);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &gone, &req, &res) ==
           PAGOFLEX_ERR_NOT_FOUND);
    EXPECT(streq(req.method, "GET"));
    unknown_stays_processing(&in);
}

static void test_webhooks(void)
{
    pagoflex_testkit_set_now(NOW);
    const pagoflex_event events[] = {
        {.event_id = "evt_1", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_1",
         .state = PAGOFLEX_STATE_SUCCEEDED},
        {.event_id = "evt_2", .kind = PAGOFLEX_EVENT_REFUND, .payment_id = "pay_1",
         .refund_id = "ref_1", .state = PAGOFLEX_STATE_FAILED},
        {.event_id = "evt_3", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = "tx_1", .look_up = 1},
        {.event_id = "evt_4", .kind = PAGOFLEX_EVENT_IGNORED, .type = "dispute.created"},
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        pagoflex_webhook_request req;
        pagoflex_webhook_parsed parsed;
        EXPECT(pagoflex_testkit_webhook_roundtrip(tk, c, state, &events[i], &req, &parsed) ==
               PAGOFLEX_OK);
        EXPECT(parsed.event_count == 1 && streq(parsed.events[0].event_id, events[i].event_id));
        EXPECT(parsed.event_count == 1 && parsed.events[0].kind == events[i].kind &&
               parsed.events[0].look_up == events[i].look_up);
        /* A changed body byte or signature, or a replay a day later, is refused. */
        pagoflex_webhook_request bad = pagoflex_testkit_webhook_tampered(tk, &req, req.body_len / 2, NULL);
        EXPECT(c->webhook_verify(state, &bad, pagoflex_testkit_arena(tk)) == PAGOFLEX_ERR_SIGNATURE);
        bad = pagoflex_testkit_webhook_tampered(tk, &req, 0, "X-Signature");
        EXPECT(c->webhook_verify(state, &bad, pagoflex_testkit_arena(tk)) == PAGOFLEX_ERR_SIGNATURE);
        pagoflex_testkit_set_now(NOW + 86400);
        EXPECT(c->webhook_verify(state, &req, pagoflex_testkit_arena(tk)) == PAGOFLEX_ERR_SIGNATURE);
        pagoflex_testkit_set_now(NOW);
    }

    /* Several events in one delivery; the unknown type is acknowledged. */
    const char *body = "{\"events\":[{\"id\":\"evt_5\",\"type\":\"payment.succeeded\",\"payment_id\":"
                       "\"pay_2\"},{\"id\":\"evt_6\",\"type\":\"refund.succeeded\",\"refund_id\":"
                       "\"ref_2\",\"amount\":300},{\"id\":\"evt_7\",\"type\":\"payout.paid\"}]}";
    pagoflex_webhook_request req = {.size = sizeof req, .method = "POST", .query = "",
                                    .body = (const unsigned char *)body, .body_len = strlen(body)};
    pagoflex_webhook_parsed parsed = {.size = sizeof parsed};
    EXPECT(c->webhook_parse(state, &req, pagoflex_testkit_arena(tk), &parsed) == PAGOFLEX_OK);
    EXPECT(parsed.event_count == 3);
    if (parsed.event_count == 3) {
        EXPECT(parsed.events[0].kind == PAGOFLEX_EVENT_PAYMENT &&
               parsed.events[0].state == PAGOFLEX_STATE_SUCCEEDED);
        EXPECT(parsed.events[1].kind == PAGOFLEX_EVENT_REFUND && parsed.events[1].amount == 300);
        EXPECT(parsed.events[2].kind == PAGOFLEX_EVENT_IGNORED);
    }
    req.body = (const unsigned char *)"nope";
    req.body_len = 4;
    EXPECT(c->webhook_parse(state, &req, pagoflex_testkit_arena(tk), &parsed) ==
           PAGOFLEX_ERR_INVALID);
    pagoflex_testkit_set_now(0);
}

/* A 1.1 host calls the old entry points: same requests, 1.1 states. */
static void test_old_entry_points(void)
{
    pagoflex_testkit_set_now(NOW);
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_arena *arena = pagoflex_testkit_arena(tk);
    pagoflex_http_request req;
    pagoflex_payment_result res;
    EXPECT(c->build_request(state, &p, arena, &req) == PAGOFLEX_OK);
    EXPECT(streq(req.url, BASE "/payments") && carries(&req, p.id));
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"id\":\"tx_1\",\"status\":\"pending\"}");
    EXPECT(c->handle_response(state, &p, &ok, arena, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && streq(res.provider_reference_id, "tx_1"));
    EXPECT(c->sync_request(state, &p, arena, &req) == PAGOFLEX_ERR_NOT_FOUND); /* no bank id */

    char ts[24];
    snprintf(ts, sizeof ts, "%d", NOW);
    const char *body = "{\"events\":[{\"id\":\"evt_1\",\"type\":\"payment.failed\",\"payment_id\":\"pay_1\"}]}";
    size_t len = strlen(body);
    char signed_msg[256];
    snprintf(signed_msg, sizeof signed_msg, "%s.%s", ts, body);
    pagoflex_testkit_webhook wh = pagoflex_testkit_webhook_new(tk, body);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len, arena) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_testkit_webhook_header(tk, &wh, "X-Timestamp", ts);
    pagoflex_testkit_webhook_header(
        tk, &wh, "X-Signature",
        pagoflex_testkit_hmac_hex(tk, "test-secret", signed_msg, strlen(signed_msg)));
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, len, arena) ==
           PAGOFLEX_OK);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, len - 1, arena) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_webhook_event ev;
    EXPECT(c->parse_webhook(state, wh.body, len, arena, &ev) == PAGOFLEX_OK);
    EXPECT(ev.state == PAGOFLEX_STATE_FAILED && streq(ev.payment_id, "pay_1") &&
           streq(ev.event_id, "evt_1"));
    pagoflex_testkit_set_now(0);
}

int main(void)
{
    c = pagoflex_connector_v1();
    tk = pagoflex_testkit_new();
    if (!tk)
        return 1;
    pagoflex_testkit_quiet(tk, 1);

    /* init refuses a missing secret, accepts a present one. */
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS);
    pagoflex_testkit_credential_set(tk, "@SECRET@", "test-secret");
    /* A 1.1 host has only credentials: the base URL may come from there. */
    pagoflex_testkit_credential_set(tk, "@KEY@_BASE_URL", BASE "/");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_OK);
    if (!state)
        return 1;

    test_authorize();
    test_capture_and_void();
    test_refund_and_syncs();
    test_webhooks();
    test_old_entry_points();

    if (c->fini)
        c->fini(state);
    pagoflex_testkit_free(tk);
    if (failures)
        fprintf(stderr, "test_@NAME@: %d failure(s)\n", failures);
    else
        printf("test_@NAME@: all checks passed\n");
    return failures ? 1 : 0;
}
