/*
 * test_mercadopago.c - unit test of the MERCADOPAGO connector with the
 * Pagoflex test kit: every flow's request and the mapping of every
 * documented answer and of the transient ones, the webhook manifest against
 * the docs' example inputs, valid, tampered, stale and look-up webhooks, and
 * the 1.0 entry points.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <stdio.h>
#include <string.h>

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

static int body_has(const pagoflex_http_request *r, const char *s)
{
    return r->body && strstr((const char *)r->body, s) != NULL;
}

static const char *header(const pagoflex_http_request *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static int state_of(const pagoflex_flow_input *in, pagoflex_http_response resp,
                    pagoflex_flow_result *res)
{
    int rc = pagoflex_testkit_run_flow(tk, c, state, in, &resp, NULL, res);
    return rc == PAGOFLEX_OK ? (int)res->state : -1;
}

/* 429, 5xx, timeouts, garbage and a foreign 404 are never FAILED. */
static void unknown_stays_processing(const pagoflex_flow_input *in)
{
    pagoflex_flow_result res;
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 429, "{\"message\":\"too many\"}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 500, "{\"message\":\"internal_error\","
                                                            "\"error\":\"internal_error\","
                                                            "\"status\":500,\"cause\":[]}"),
                    &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 503, NULL), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_TIMEOUT), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 200, "<html>bad gateway</html>"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 404, "<html>Not Found</html>"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 200, "{\"status\":\"something_new\"}"),
                    &res) == PAGOFLEX_STATE_PROCESSING);
}

static void test_authorize(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "BRL");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    in.payment_method_token = "master:ff8080814c11e237014c1ff593b57b4d";
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 201, "{\"id\":1234567890,\"status\":\"approved\",\"status_detail\":\"accredited\","
                 "\"transaction_amount\":10.5,\"currency_id\":\"BRL\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.method, "POST") && streq(req.url, BASE "/v1/payments"));
    EXPECT(streq(header(&req, "X-Idempotency-Key"), p.id));
    EXPECT(streq(header(&req, "Authorization"), "Bearer TEST-123-token"));
    EXPECT(streq(header(&req, "Content-Type"), "application/json"));
    EXPECT(body_has(&req, "\"transaction_amount\":10.50"));
    EXPECT(body_has(&req, "\"capture\":true"));
    EXPECT(body_has(&req, "\"payment_method_id\":\"master\""));
    EXPECT(body_has(&req, "\"token\":\"ff8080814c11e237014c1ff593b57b4d\""));
    EXPECT(body_has(&req, "\"notification_url\":\"https://pagoflex.test/webhooks/test\""));
    char ext[96];
    snprintf(ext, sizeof ext, "\"external_reference\":\"%s\"", p.id);
    EXPECT(body_has(&req, ext));
    EXPECT(body_has(&req, "\"payer\":{\"email\":\"buyer@example.com\"}"));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && streq(res.provider_reference_id, "1234567890"));
    EXPECT(res.amount == 1050);

    in.capture = 0;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(body_has(&req, "\"capture\":false"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"id\":1,\"status\":\"authorized\"}"),
                    &res) == PAGOFLEX_STATE_REQUIRES_CAPTURE);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"id\":1,\"status\":\"in_process\","
                                                            "\"status_detail\":\"pending_contingency\"}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"id\":1,\"status\":\"pending\"}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, pagoflex_testkit_response(
                             tk, 201, "{\"id\":1,\"status\":\"pending\",\"status_detail\":"
                                      "\"pending_challenge\",\"three_ds_info\":{"
                                      "\"external_resource_url\":\"https://acs.example/3ds\"}}"),
                    &res) == PAGOFLEX_STATE_REQUIRES_ACTION);
    EXPECT(streq(res.redirect_url, "https://acs.example/3ds"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"id\":1,\"status\":\"rejected\","
                                                            "\"status_detail\":\"cc_rejected_insufficient_amount\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "cc_rejected_insufficient_amount"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"id\":1,\"status\":\"cancelled\"}"),
                    &res) == PAGOFLEX_STATE_CANCELED);
    /* The API's own refusal of the request: nothing was created. */
    EXPECT(state_of(&in, pagoflex_testkit_response(
                             tk, 400, "{\"message\":\"Invalid card_token_id\",\"error\":"
                                      "\"bad_request\",\"status\":400,\"cause\":[{\"code\":3003,"
                                      "\"description\":\"Invalid card_token_id\"}]}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "mp_3003") && streq(res.error_message, "Invalid card_token_id"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 401, "{\"message\":\"invalid access token\","
                                                            "\"error\":\"unauthorized\",\"status\":401}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    /* A 400 that is not Mercado Pago's JSON (a proxy): unknown. */
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 400, "{\"oops\":1}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    /* An approved answer without an id gives nothing to follow. */
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"status\":\"approved\"}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    unknown_stays_processing(&in);

    /* Decimal amounts per currency; unsupported currency; zero-decimal CLP. */
    pagoflex_payment clp = pagoflex_testkit_payment(tk, 1050, "CLP");
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &clp);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(body_has(&req, "\"transaction_amount\":1050}"));
    pagoflex_payment usd = pagoflex_testkit_payment(tk, 1050, "USD");
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &usd);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) ==
           PAGOFLEX_ERR_UNSUPPORTED);
    /* 17 significant digits: a double cannot carry it exactly: refused. */
    pagoflex_payment big = pagoflex_testkit_payment(tk, 12345678901234567LL, "ARS");
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &big);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) == PAGOFLEX_ERR_INVALID);
}

static void test_capture_and_void(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "ARS");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_CAPTURE, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    in.amount = 500; /* partial */
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 200, "{\"id\":1,\"status\":\"approved\",\"captured\":true,\"transaction_amount\":5}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.method, "PUT"));
    char url[256];
    snprintf(url, sizeof url, BASE "/v1/payments/%s", in.payment->provider_reference_id);
    EXPECT(streq(req.url, url));
    EXPECT(streq(header(&req, "X-Idempotency-Key"), in.operation_id));
    EXPECT(body_has(&req, "\"capture\":true") && body_has(&req, "\"transaction_amount\":5.00"));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && res.amount == 500);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 400, "{\"message\":\"Payment can't be "
                                                            "captured\",\"error\":\"bad_request\","
                                                            "\"status\":400,\"cause\":[]}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "bad_request"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"id\":1,\"status\":\"authorized\"}"),
                    &res) == PAGOFLEX_STATE_PROCESSING);
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_VOID, &p);
    ok = pagoflex_testkit_response(tk, 200, "{\"id\":1,\"status\":\"cancelled\","
                                            "\"status_detail\":\"by_collector\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    snprintf(url, sizeof url, BASE "/v1/payments/%s", in.payment->provider_reference_id);
    EXPECT(streq(req.method, "PUT") && streq(req.url, url));
    EXPECT(body_has(&req, "{\"status\":\"cancelled\"}"));
    EXPECT(streq(header(&req, "X-Idempotency-Key"), in.operation_id));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 404, "{\"message\":\"Payment not found\","
                                                            "\"error\":\"not_found\",\"status\":404}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    unknown_stays_processing(&in);
    pagoflex_payment none = p;
    none.provider_reference_id = NULL;
    in.payment = &none;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) == PAGOFLEX_ERR_INVALID);
}

static void test_refund_and_syncs(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "MXN");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND, &p);
    in.amount = 300;
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 201, "{\"id\":987,\"payment_id\":1,\"amount\":3,\"status\":\"approved\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    char url[256];
    snprintf(url, sizeof url, BASE "/v1/payments/%s/refunds", in.payment->provider_reference_id);
    EXPECT(streq(req.url, url) && streq(req.method, "POST"));
    EXPECT(body_has(&req, "{\"amount\":3.00}"));
    EXPECT(streq(header(&req, "X-Idempotency-Key"), in.operation_id));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && streq(res.provider_reference_id, "987") &&
           res.amount == 300);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"id\":988,\"status\":\"in_process\"}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 400, "{\"message\":\"Invalid refund amount\","
                                                            "\"error\":\"bad_request\",\"status\":400}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND_SYNC, &p);
    pagoflex_http_response rej = pagoflex_testkit_response(tk, 200, "{\"id\":987,\"status\":\"rejected\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &rej, &req, &res) == PAGOFLEX_OK);
    snprintf(url, sizeof url, BASE "/v1/payments/%s/refunds/%s", in.payment->provider_reference_id,
             in.refund_provider_reference_id);
    EXPECT(streq(req.url, url) && streq(req.method, "GET") && req.body_len == 0);
    EXPECT(res.state == PAGOFLEX_STATE_FAILED && streq(res.error_code, "refund_rejected"));
    pagoflex_http_response gone = pagoflex_testkit_response(
        tk, 404, "{\"message\":\"Refund not found\",\"error\":\"not_found\",\"status\":404}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &gone, NULL, &res) ==
           PAGOFLEX_ERR_NOT_FOUND);
    unknown_stays_processing(&in);
    in.refund_provider_reference_id = NULL;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) ==
           PAGOFLEX_ERR_NOT_FOUND);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_PAYMENT_SYNC, &p);
    static const struct {
        const char *status;
        pagoflex_state state;
    } map[] = {{"pending", PAGOFLEX_STATE_PENDING},      {"approved", PAGOFLEX_STATE_SUCCEEDED},
               {"authorized", PAGOFLEX_STATE_REQUIRES_CAPTURE},
               {"in_process", PAGOFLEX_STATE_PENDING},   {"in_mediation", PAGOFLEX_STATE_SUCCEEDED},
               {"rejected", PAGOFLEX_STATE_FAILED},      {"cancelled", PAGOFLEX_STATE_CANCELED},
               {"refunded", PAGOFLEX_STATE_SUCCEEDED},   {"charged_back", PAGOFLEX_STATE_SUCCEEDED}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"id\":1,\"status\":\"%s\",\"transaction_amount\":10.5}",
                 map[i].status);
        EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, body), &res) == (int)map[i].state);
    }
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"id\":1,\"status\":\"approved\","
                                                            "\"transaction_amount\":10.5}"),
                    &res) == PAGOFLEX_STATE_SUCCEEDED &&
           res.amount == 1050);
    gone = pagoflex_testkit_response(tk, 404, "{\"message\":\"Payment not found\",\"error\":"
                                              "\"not_found\",\"status\":404,\"cause\":[]}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &gone, &req, &res) ==
           PAGOFLEX_ERR_NOT_FOUND);
    EXPECT(streq(req.method, "GET") && header(&req, "X-Idempotency-Key") == NULL);
    unknown_stays_processing(&in);
}

/* A notification request: query, headers x-signature / x-request-id. */
static pagoflex_webhook_request notification(const char *query, const char *sig, const char *rid,
                                             const char *body)
{
    pagoflex_header *h = pagoflex_testkit_host(tk)->arena_alloc(pagoflex_testkit_arena(tk),
                                                                 2 * sizeof *h);
    size_t n = 0;
    if (sig)
        h[n++] = (pagoflex_header){"x-signature", sig};
    if (rid)
        h[n++] = (pagoflex_header){"x-request-id", rid};
    pagoflex_webhook_request req = {.size = sizeof req, .method = "POST",
                                    .path = "/webhooks/mercadopago", .query = query,
                                    .headers = h, .header_count = n,
                                    .body = (const unsigned char *)body,
                                    .body_len = body ? strlen(body) : 0};
    return req;
}

static char *sign(const char *secret, const char *manifest, const char *ts)
{
    char *hex = pagoflex_testkit_hmac_hex(tk, secret, manifest, strlen(manifest));
    return pagoflex_testkit_host(tk)->arena_printf(pagoflex_testkit_arena(tk), "ts=%s,v1=%s", ts,
                                                   hex);
}

static void test_webhooks(void)
{
    pagoflex_arena *a = pagoflex_testkit_arena(tk);
    /* The docs' example notification (orders: data.id ORD01JQ4S4KY8HWQ6NA5PXB65B3D3,
     * x-request-id 2066ca19-..., ts 1742505638683 in milliseconds) under the
     * docs' placeholder secret "your_secret_key_here": the manifest with the
     * id lower-cased gives this v1 (the official SDK's validator accepts it,
     * tests/psp/test_mercadopago.py). */
    const char *rid = "2066ca19-c6f1-498a-be75-1923005edd06";
    const char *vec = "ts=1742505638683,v1=633f91233312dd391ec75fa0bea539cfc2d6c4918873305b84a96cc1c58db71c";
    EXPECT(streq(sign("your_secret_key_here",
                      "id:ord01jq4s4ky8hwq6na5pxb65b3d3;request-id:2066ca19-c6f1-498a-be75-"
                      "1923005edd06;ts:1742505638683;",
                      "1742505638683"),
                 vec));
    pagoflex_testkit_set_now(1742505638);
    pagoflex_webhook_request req = notification("data.id=ORD01JQ4S4KY8HWQ6NA5PXB65B3D3&type=order",
                                                vec, rid,
                                                "{\"action\":\"order.processed\",\"type\":\"order\","
                                                "\"data\":{\"id\":\"ORD01JQ4S4KY8HWQ6NA5PXB65B3D3\"}}");
    void *docs_state = NULL;
    pagoflex_testkit *tk2 = pagoflex_testkit_new();
    pagoflex_testkit_quiet(tk2, 1);
    pagoflex_testkit_credential_set(tk2, "MP_ACCESS_TOKEN", "TEST-1");
    pagoflex_testkit_credential_set(tk2, "MP_WEBHOOK_SECRET", "your_secret_key_here");
    EXPECT(c->init(pagoflex_testkit_host(tk2), pagoflex_testkit_credentials(tk2), &docs_state) ==
           PAGOFLEX_OK);
    EXPECT(c->webhook_verify(docs_state, &req, a) == PAGOFLEX_OK);
    pagoflex_webhook_parsed parsed = {.size = sizeof parsed};
    EXPECT(c->webhook_parse(docs_state, &req, a, &parsed) == PAGOFLEX_OK);
    EXPECT(parsed.event_count == 1 && parsed.events[0].kind == PAGOFLEX_EVENT_IGNORED);
    /* The id as received (the SDK's own case-preserving manifest) is accepted too. */
    req.headers = notification(NULL, sign("your_secret_key_here",
                                          "id:ORD01JQ4S4KY8HWQ6NA5PXB65B3D3;request-id:2066ca19-"
                                          "c6f1-498a-be75-1923005edd06;ts:1742505638683;",
                                          "1742505638683"),
                               rid, NULL)
                      .headers;
    EXPECT(c->webhook_verify(docs_state, &req, a) == PAGOFLEX_OK);
    /* Another data.id in the query, or in the (unsigned) body: refused. */
    pagoflex_webhook_request other = notification("data.id=ORD01JQ4S4KY8HWQ6NA5PXB65B3D4&type=order",
                                                  vec, rid, NULL);
    EXPECT(c->webhook_verify(docs_state, &other, a) == PAGOFLEX_ERR_SIGNATURE);
    other = notification("data.id=ORD01JQ4S4KY8HWQ6NA5PXB65B3D3&type=order", vec, rid,
                         "{\"type\":\"payment\",\"data\":{\"id\":\"999\"}}");
    EXPECT(c->webhook_verify(docs_state, &other, a) == PAGOFLEX_ERR_SIGNATURE);
    other = notification("data.id=ORD01JQ4S4KY8HWQ6NA5PXB65B3D3&type=order", vec, rid, "x{}");
    EXPECT(c->webhook_verify(docs_state, &other, a) == PAGOFLEX_ERR_SIGNATURE);
    other = notification("data.id=ORD01JQ4S4KY8HWQ6NA5PXB65B3D3&type=order", vec,
                         "2066ca19-c6f1-498a-be75-1923005edd07", NULL);
    EXPECT(c->webhook_verify(docs_state, &other, a) == PAGOFLEX_ERR_SIGNATURE);
    /* The manifest leaves out what the request lacks: no x-request-id. */
    other = notification("data.id=123&type=payment",
                         sign("your_secret_key_here", "id:123;ts:1742505638;", "1742505638"), NULL,
                         NULL);
    EXPECT(c->webhook_verify(docs_state, &other, a) == PAGOFLEX_OK);
    /* Stale: an hour later. */
    pagoflex_testkit_set_now(1742505638 + 3600);
    EXPECT(c->webhook_verify(docs_state, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    c->fini(docs_state);
    pagoflex_testkit_free(tk2);

    /* Round trips signed the plugin's own way; look-ups and ignored types. */
    pagoflex_testkit_set_now(NOW);
    const pagoflex_event events[] = {
        {.event_id = "12345678901", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = "1234567890",
         .look_up = 1},
        {.event_id = "evt_2", .kind = PAGOFLEX_EVENT_IGNORED, .type = "merchant_order"},
    };
    for (size_t i = 0; i < 2; i++) {
        pagoflex_webhook_request r;
        EXPECT(pagoflex_testkit_webhook_roundtrip(tk, c, state, &events[i], &r, &parsed) ==
               PAGOFLEX_OK);
        EXPECT(parsed.event_count == 1 && parsed.events[0].kind == events[i].kind &&
               parsed.events[0].look_up == events[i].look_up &&
               streq(parsed.events[0].event_id, events[i].event_id));
        if (i == 0) {
            EXPECT(streq(r.query, "data.id=1234567890&type=payment"));
            EXPECT(streq(parsed.events[0].tx_id, "1234567890"));
        }
        pagoflex_webhook_request bad = pagoflex_testkit_webhook_tampered(tk, &r, 0, "x-signature");
        EXPECT(c->webhook_verify(state, &bad, a) == PAGOFLEX_ERR_SIGNATURE);
        bad = pagoflex_testkit_webhook_tampered(tk, &r, 0, "x-request-id");
        EXPECT(c->webhook_verify(state, &bad, a) == PAGOFLEX_ERR_SIGNATURE);
        bad = r;
        bad.query = "data.id=1234567891&type=payment";
        EXPECT(c->webhook_verify(state, &bad, a) == PAGOFLEX_ERR_SIGNATURE);
        pagoflex_testkit_set_now(NOW + 86400);
        EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_ERR_SIGNATURE);
        pagoflex_testkit_set_now(NOW);
    }
    /* Mercado Pago sends no event with a state: nothing to sample. */
    pagoflex_event final = {.event_id = "e", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = "1",
                            .state = PAGOFLEX_STATE_SUCCEEDED};
    pagoflex_webhook_request r;
    EXPECT(c->webhook_sample(state, &final, NOW, a, &r) == PAGOFLEX_ERR_UNSUPPORTED);
    /* Unknown types are acknowledged; garbage and a payment without id are not. */
    req = notification("type=point_integration_wh", NULL, NULL,
                       "{\"id\":77,\"type\":\"point_integration_wh\",\"data\":{}}");
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_OK &&
           parsed.events[0].kind == PAGOFLEX_EVENT_IGNORED && streq(parsed.events[0].event_id, "77"));
    req = notification("", NULL, NULL, "nope");
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_ERR_INVALID);
    req = notification("type=payment", NULL, NULL, "{\"id\":78,\"type\":\"payment\",\"data\":{}}");
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_ERR_INVALID);
    pagoflex_testkit_set_now(0);
}

/* A 1.0 host: same create request; a webhook without the query string. */
static void test_old_entry_points(void)
{
    pagoflex_testkit_set_now(NOW);
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "BRL");
    pagoflex_arena *a = pagoflex_testkit_arena(tk);
    pagoflex_http_request req;
    pagoflex_payment_result res;
    EXPECT(c->build_request(state, &p, a, &req) == PAGOFLEX_OK);
    EXPECT(streq(req.url, BASE "/v1/payments") && streq(header(&req, "X-Idempotency-Key"), p.id));
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 201, "{\"id\":55,\"status\":\"authorized\"}");
    EXPECT(c->handle_response(state, &p, &ok, a, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PROCESSING && streq(res.provider_reference_id, "55"));
    EXPECT(c->sync_request(state, &p, a, &req) == PAGOFLEX_ERR_NOT_FOUND);

    char ts[24];
    snprintf(ts, sizeof ts, "%d", NOW);
    const char *body = "{\"action\":\"payment.updated\",\"type\":\"payment\",\"id\":91,\"data\":{\"id\":\"55\"}}";
    pagoflex_testkit_webhook wh = pagoflex_testkit_webhook_new(tk, body);
    pagoflex_testkit_webhook_header(tk, &wh, "x-request-id", "rq-1");
    char manifest[128];
    snprintf(manifest, sizeof manifest, "id:55;request-id:rq-1;ts:%s;", ts);
    pagoflex_testkit_webhook_header(tk, &wh, "x-signature", sign("whsec-test", manifest, ts));
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len, a) ==
           PAGOFLEX_OK);
    pagoflex_testkit_webhook bad = pagoflex_testkit_webhook_new(
        tk, "{\"action\":\"payment.updated\",\"type\":\"payment\",\"id\":91,\"data\":{\"id\":\"56\"}}");
    bad.headers[0] = wh.headers[0];
    bad.headers[1] = wh.headers[1];
    bad.header_count = 2;
    EXPECT(c->verify_webhook(state, bad.headers, bad.header_count, bad.body, bad.body_len, a) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_webhook_event ev;
    EXPECT(c->parse_webhook(state, wh.body, wh.body_len, a, &ev) == PAGOFLEX_OK);
    EXPECT(ev.state == PAGOFLEX_STATE_PENDING && streq(ev.tx_id, "55") && streq(ev.event_id, "91"));
    pagoflex_testkit_set_now(0);
}

int main(void)
{
    c = pagoflex_connector_v1();
    tk = pagoflex_testkit_new();
    if (!tk)
        return 1;
    pagoflex_testkit_quiet(tk, 1);
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS);
    pagoflex_testkit_credential_set(tk, "MP_ACCESS_TOKEN", "TEST-123-token");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS); /* the webhook secret is required too */
    pagoflex_testkit_credential_set(tk, "MP_WEBHOOK_SECRET", "whsec-test");
    pagoflex_testkit_setting_set(tk, "MP_BASE_URL", "ftp://nope");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS);
    pagoflex_testkit_setting_set(tk, "MP_BASE_URL", BASE "/");
    pagoflex_testkit_setting_set(tk, "MP_PAYER_EMAIL", "buyer@example.com");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_OK);
    if (!state)
        return 1;
    EXPECT(strstr(pagoflex_testkit_last_log(tk), "TEST-123") == NULL);

    test_authorize();
    test_capture_and_void();
    test_refund_and_syncs();
    test_webhooks();
    test_old_entry_points();

    c->fini(state);
    pagoflex_testkit_free(tk);
    if (failures)
        fprintf(stderr, "test_mercadopago: %d failure(s)\n", failures);
    else
        printf("test_mercadopago: all checks passed\n");
    return failures ? 1 : 0;
}
