/*
 * test_stripe.c - unit test of the Stripe connector with the Pagoflex test
 * kit (no host, no network): init, every flow's request and the mapping of
 * Stripe's documented answers and of the transient ones, Stripe's currency
 * units, webhooks (valid, tampered, stale, rotated secrets, charge.refunded
 * with several refunds, unknown types IGNORED) and the 1.0 entry points.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct pagoflex_connector *pagoflex_connector_v1(void);

#define BASE "http://127.0.0.1:9"
#define NOW 1800000000
#define WHSEC "whsec_test_secret"

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

static const char *header(const pagoflex_http_request *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* Does the form body carry the exact pair "k=v" (encoded)? */
static int has_pair(const pagoflex_http_request *r, const char *pair)
{
    if (!r->body)
        return 0;
    const char *b = (const char *)r->body;
    size_t n = strlen(pair);
    for (const char *p = b; (p = strstr(p, pair)); p++)
        if ((p == b || p[-1] == '&') && (p[n] == '&' || p[n] == '\0'))
            return 1;
    return 0;
}

static int state_of(const pagoflex_flow_input *in, int status, const char *body,
                    pagoflex_flow_result *res)
{
    pagoflex_http_response resp = pagoflex_testkit_response(tk, status, body);
    int rc = pagoflex_testkit_run_flow(tk, c, state, in, &resp, NULL, res);
    return rc == PAGOFLEX_OK ? (int)res->state : -1;
}

/* Timeouts, 429, 5xx, api_error, garbage, a proxy's 404, idempotency
 * conflicts: the outcome is unknown, never FAILED. */
static void unknown_stays_processing(const pagoflex_flow_input *in)
{
    pagoflex_flow_result res;
    pagoflex_http_response t = pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_TIMEOUT);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, in, &t, NULL, &res) == PAGOFLEX_OK &&
           res.state == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 429, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\"}}",
                    &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 500, "{\"error\":{\"type\":\"api_error\"}}", &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 503, NULL, &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 200, "<html>bad gateway</html>", &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 404, "<html>Not Found</html>", &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 400, "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"Keys for "
                             "idempotent requests can only be used with the same parameters\"}}",
                    &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 409, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"lock_timeout\"}}",
                    &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, 200, "{\"object\":\"balance\"}", &res) == PAGOFLEX_STATE_PROCESSING);
}

static void test_authorize(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    in.payment_method_token = "pm_card_visa";
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":\"succeeded\","
                 "\"currency\":\"usd\",\"amount\":1050,\"amount_received\":1050}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.method, "POST") && streq(req.url, BASE "/v1/payment_intents"));
    EXPECT(streq(header(&req, "Authorization"), "Bearer sk_test_123"));
    EXPECT(streq(header(&req, "Idempotency-Key"), in.operation_id));
    EXPECT(streq(header(&req, "Content-Type"), "application/x-www-form-urlencoded"));
    EXPECT(has_pair(&req, "amount=1050") && has_pair(&req, "currency=usd") &&
           has_pair(&req, "capture_method=automatic") && has_pair(&req, "confirm=true") &&
           has_pair(&req, "payment_method=pm_card_visa") &&
           has_pair(&req, "payment_method_types%5B%5D=card"));
    char want[128];
    snprintf(want, sizeof want, "metadata%%5Bpagoflex_payment_id%%5D=%s", p.id);
    EXPECT(has_pair(&req, want));
    EXPECT(has_pair(&req, "return_url=https%3A%2F%2Fmerchant.test%2Freturn"));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && streq(res.provider_reference_id, "pi_1") &&
           res.amount == 1050);

    in.capture = 0;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(has_pair(&req, "capture_method=manual"));
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":"
                              "\"requires_capture\",\"currency\":\"usd\"}",
                    &res) == PAGOFLEX_STATE_REQUIRES_CAPTURE);
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":"
                              "\"requires_action\",\"next_action\":{\"type\":\"redirect_to_url\","
                              "\"redirect_to_url\":{\"url\":\"https://hooks.stripe.com/3d/pi_1\","
                              "\"return_url\":\"https://merchant.test/return\"}}}",
                    &res) == PAGOFLEX_STATE_REQUIRES_ACTION);
    EXPECT(streq(res.redirect_url, "https://hooks.stripe.com/3d/pi_1"));
    /* use_stripe_sdk: no page to send the customer to. */
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":"
                              "\"requires_action\",\"next_action\":{\"type\":\"use_stripe_sdk\"}}",
                    &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":\"processing\"}",
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":\"canceled\"}",
                    &res) == PAGOFLEX_STATE_CANCELED);
    /* A decline: 402 card_error naming the intent. */
    EXPECT(state_of(&in, 402, "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
                              "\"decline_code\":\"insufficient_funds\",\"message\":\"Your card has "
                              "insufficient funds.\",\"payment_intent\":{\"id\":\"pi_2\","
                              "\"status\":\"requires_payment_method\"}}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "insufficient_funds") && streq(res.provider_reference_id, "pi_2") &&
           res.error_message && strstr(res.error_message, "insufficient"));
    EXPECT(state_of(&in, 400, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                              "\"parameter_missing\",\"param\":\"amount\"}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "parameter_missing"));
    EXPECT(state_of(&in, 401, "{\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                              "\"Invalid API Key provided\"}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    unknown_stays_processing(&in);

    /* A legacy card token goes in payment_method_data; no token: no confirm. */
    in.payment_method_token = "tok_visa";
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(has_pair(&req, "payment_method_data%5Bcard%5D%5Btoken%5D=tok_visa"));
    in.payment_method_token = NULL;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(!has_pair(&req, "confirm=true") && !strstr((const char *)req.body, "return_url"));
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_3\",\"object\":\"payment_intent\",\"status\":"
                              "\"requires_payment_method\",\"last_payment_error\":null}",
                    &res) == PAGOFLEX_STATE_PENDING);
    in.payment_method_token = "pm bad";
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_ERR_INVALID);
}

/* Amount in Stripe's unit for (minor, currency), or -rc. */
static long long api_amount(int64_t minor, const char *cur)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, minor, cur);
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    pagoflex_http_request req;
    memset(&req, 0, sizeof req);
    int rc = c->flow_request(state, &in, pagoflex_testkit_arena(tk), &req);
    if (rc != PAGOFLEX_OK)
        return -rc;
    const char *a = strstr((const char *)req.body, "amount=");
    return a ? atoll(a + 7) : -100;
}

static void test_currencies(void)
{
    EXPECT(api_amount(1050, "USD") == 1050);
    EXPECT(api_amount(500, "JPY") == 500);  /* zero-decimal in both */
    EXPECT(api_amount(5000, "KRW") == 5000);
    EXPECT(api_amount(5000, "CLP") == 5000);
    EXPECT(api_amount(5000, "UGX") == 5000); /* ISO 0, Stripe zero-decimal for charges */
    EXPECT(api_amount(5, "ISK") == 500);     /* ISO 0, Stripe two-decimal: 5 kr = 500 */
    EXPECT(api_amount(1050, "HUF") == 1050); /* two-decimal for charges */
    EXPECT(api_amount(1050, "TWD") == 1050);
    EXPECT(api_amount(5120, "KWD") == 5120); /* three-decimal, last digit 0 */
    EXPECT(api_amount(5124, "KWD") == -PAGOFLEX_ERR_UNSUPPORTED);
    EXPECT(api_amount(1050, "XXQ") == -PAGOFLEX_ERR_UNSUPPORTED);
    /* MGA: ISO 2, Stripe zero-decimal: whole ariary only. */
    EXPECT(api_amount(5000, "MGA") == 50);
    EXPECT(api_amount(5050, "MGA") == -PAGOFLEX_ERR_UNSUPPORTED);

    /* Answers convert back: 500 ISK units are 5 ISO units. */
    pagoflex_payment p = pagoflex_testkit_payment(tk, 5, "ISK");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_PAYMENT_SYNC, &p);
    pagoflex_flow_result res;
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":"
                              "\"succeeded\",\"currency\":\"isk\",\"amount_received\":500}",
                    &res) == PAGOFLEX_STATE_SUCCEEDED);
    EXPECT(res.amount == 5);
}

static void test_capture_and_void(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_CAPTURE, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    in.amount = 500; /* partial */
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 200, "{\"id\":\"tx\",\"object\":\"payment_intent\",\"status\":\"succeeded\","
                 "\"currency\":\"usd\",\"amount_received\":500}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    char url[256];
    snprintf(url, sizeof url, BASE "/v1/payment_intents/%s/capture",
             in.payment->provider_reference_id);
    EXPECT(streq(req.url, url) && has_pair(&req, "amount_to_capture=500"));
    EXPECT(streq(header(&req, "Idempotency-Key"), in.operation_id));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED && res.amount == 500);
    EXPECT(state_of(&in, 400, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                              "\"payment_intent_unexpected_state\"}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "payment_intent_unexpected_state"));
    EXPECT(state_of(&in, 200, "{\"object\":\"payment_intent\",\"status\":\"processing\"}", &res) ==
           PAGOFLEX_STATE_PENDING);
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_VOID, &p);
    ok = pagoflex_testkit_response(tk, 200, "{\"object\":\"payment_intent\",\"status\":\"canceled\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(req.url && strstr(req.url, "/cancel") &&
           streq(header(&req, "Idempotency-Key"), in.operation_id));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED);
    EXPECT(state_of(&in, 400, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                              "\"payment_intent_unexpected_state\"}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    unknown_stays_processing(&in);
}

static void test_refund_and_syncs(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND, &p);
    in.amount = 300;
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 200, "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"pending\",\"amount\":300,"
                 "\"currency\":\"usd\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.url, BASE "/v1/refunds") && has_pair(&req, "amount=300") &&
           has_pair(&req, "reason=requested_by_customer"));
    EXPECT(streq(header(&req, "Idempotency-Key"), in.operation_id));
    char want[128];
    snprintf(want, sizeof want, "payment_intent=%s", in.payment->provider_reference_id);
    EXPECT(has_pair(&req, want));
    snprintf(want, sizeof want, "metadata%%5Bpagoflex_refund_id%%5D=%s", in.refund_id);
    EXPECT(has_pair(&req, want));
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && streq(res.provider_reference_id, "re_1") &&
           res.amount == 300);
    EXPECT(state_of(&in, 200, "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"succeeded\"}",
                    &res) == PAGOFLEX_STATE_SUCCEEDED);
    EXPECT(state_of(&in, 400, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                              "\"charge_already_refunded\"}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    in.reason = "customer changed mind"; /* not one of Stripe's three */
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(!strstr((const char *)req.body, "reason=") &&
           strstr((const char *)req.body, "pagoflex_reason"));
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND_SYNC, &p);
    EXPECT(state_of(&in, 200, "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"failed\","
                              "\"failure_reason\":\"expired_or_canceled_card\"}",
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "expired_or_canceled_card"));
    pagoflex_http_response gone = pagoflex_testkit_response(
        tk, 404, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\"}}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &gone, &req, &res) == PAGOFLEX_ERR_NOT_FOUND);
    EXPECT(streq(req.method, "GET") && req.body_len == 0 &&
           streq(header(&req, "Authorization"), "Bearer sk_test_123"));
    in.refund_provider_reference_id = NULL;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) == PAGOFLEX_ERR_NOT_FOUND);
    in.refund_provider_reference_id = "re_1";
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_PAYMENT_SYNC, &p);
    EXPECT(state_of(&in, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":"
                              "\"requires_payment_method\",\"last_payment_error\":{\"type\":"
                              "\"card_error\",\"code\":\"payment_intent_authentication_failure\"}}",
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "payment_intent_authentication_failure"));
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &gone, &req, &res) == PAGOFLEX_ERR_NOT_FOUND);
    snprintf(want, sizeof want, BASE "/v1/payment_intents/%s", in.payment->provider_reference_id);
    EXPECT(streq(req.method, "GET") && streq(req.url, want));
    /* A read refused for our key says nothing of the payment. */
    EXPECT(state_of(&in, 401, "{\"error\":{\"type\":\"invalid_request_error\"}}", &res) ==
           PAGOFLEX_STATE_PROCESSING);
    unknown_stays_processing(&in);
}

/* A delivery of body signed at t under secret. */
static pagoflex_webhook_request signed_req(const char *body, const char *sigheader)
{
    pagoflex_header *h = pagoflex_testkit_host(tk)->arena_alloc(pagoflex_testkit_arena(tk),
                                                                sizeof *h);
    h->name = "Stripe-Signature";
    h->value = sigheader;
    pagoflex_webhook_request req = {.size = sizeof req, .method = "POST", .path = "/webhooks/stripe",
                                    .query = "", .headers = h, .header_count = 1,
                                    .body = (const unsigned char *)body, .body_len = strlen(body)};
    return req;
}

static const char *v1(const char *secret, long long t, const char *body)
{
    char msg[4096];
    snprintf(msg, sizeof msg, "%lld.%s", t, body);
    return pagoflex_testkit_hmac_hex(tk, secret, msg, strlen(msg));
}

static void test_webhooks(void)
{
    pagoflex_testkit_set_now(NOW);
    const pagoflex_event events[] = {
        {.event_id = "evt_1", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_1",
         .tx_id = "pi_1", .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 1050},
        {.event_id = "evt_2", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = "pi_1",
         .state = PAGOFLEX_STATE_REQUIRES_CAPTURE},
        {.event_id = "evt_3", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_1",
         .state = PAGOFLEX_STATE_FAILED, .error_code = "card_declined"},
        {.event_id = "evt_4", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = "pi_1", .look_up = 1},
        {.event_id = "evt_5", .kind = PAGOFLEX_EVENT_REFUND, .payment_id = "pay_1",
         .refund_id = "ref_1", .refund_provider_reference_id = "re_1",
         .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 300},
        {.event_id = "evt_6", .kind = PAGOFLEX_EVENT_REFUND, .refund_id = "ref_2",
         .state = PAGOFLEX_STATE_FAILED},
        {.event_id = "evt_7", .kind = PAGOFLEX_EVENT_IGNORED, .type = "customer.created"},
        {.event_id = "evt_8", .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = "pi_1",
         .state = PAGOFLEX_STATE_CANCELED},
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        pagoflex_webhook_request req;
        pagoflex_webhook_parsed parsed;
        EXPECT(pagoflex_testkit_webhook_roundtrip(tk, c, state, &events[i], &req, &parsed) ==
               PAGOFLEX_OK);
        EXPECT(parsed.event_count == 1 && streq(parsed.events[0].event_id, events[i].event_id));
        if (parsed.event_count != 1)
            continue;
        const pagoflex_event *e = &parsed.events[0];
        EXPECT(e->kind == events[i].kind && e->look_up == events[i].look_up);
        if (e->kind != PAGOFLEX_EVENT_IGNORED && !e->look_up)
            EXPECT(e->state == events[i].state);
        if (events[i].amount)
            EXPECT(e->amount == events[i].amount);
        if (events[i].payment_id)
            EXPECT(streq(e->payment_id, events[i].payment_id));
        if (events[i].refund_id)
            EXPECT(streq(e->refund_id, events[i].refund_id));
        pagoflex_webhook_request bad = pagoflex_testkit_webhook_tampered(tk, &req, req.body_len / 2, NULL);
        EXPECT(c->webhook_verify(state, &bad, pagoflex_testkit_arena(tk)) == PAGOFLEX_ERR_SIGNATURE);
        bad = pagoflex_testkit_webhook_tampered(tk, &req, 0, "Stripe-Signature");
        EXPECT(c->webhook_verify(state, &bad, pagoflex_testkit_arena(tk)) == PAGOFLEX_ERR_SIGNATURE);
        pagoflex_testkit_set_now(NOW + 301); /* past the 300 s tolerance */
        EXPECT(c->webhook_verify(state, &req, pagoflex_testkit_arena(tk)) == PAGOFLEX_ERR_SIGNATURE);
        pagoflex_testkit_set_now(NOW + 299);
        EXPECT(c->webhook_verify(state, &req, pagoflex_testkit_arena(tk)) == PAGOFLEX_OK);
        pagoflex_testkit_set_now(NOW);
    }

    /* Rotation: Stripe signs with every active secret; any v1 may match,
     * in any place; v0 and unknown schemes are not signatures. */
    const char *body = "{\"id\":\"evt_9\",\"object\":\"event\",\"type\":\"payment_intent.processing\","
                       "\"data\":{\"object\":{\"id\":\"pi_9\",\"object\":\"payment_intent\","
                       "\"status\":\"processing\",\"metadata\":{}}}}";
    const pagoflex_host_services *host = pagoflex_testkit_host(tk);
    pagoflex_arena *a = pagoflex_testkit_arena(tk);
    const char *good = v1(WHSEC, NOW, body), *old = v1("whsec_old", NOW, body);
    pagoflex_webhook_request r = signed_req(body, host->arena_printf(a, "t=%d,v1=%s,v1=%s", NOW, old, good));
    EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_OK);
    r = signed_req(body, host->arena_printf(a, "t=%d,v1=%s,v0=%s", NOW, old, good));
    EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_ERR_SIGNATURE);
    r = signed_req(body, host->arena_printf(a, "v1=%s,t=%d", good, NOW));
    EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_OK);
    r = signed_req(body, host->arena_printf(a, "t=%d,v1=%s", NOW + 1, good)); /* t is signed */
    EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_ERR_SIGNATURE);
    r = signed_req(body, host->arena_printf(a, "t=%d", NOW));
    EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_ERR_SIGNATURE);
    r = signed_req(body, host->arena_printf(a, "t=%d,v1=%s", NOW + 1000, v1(WHSEC, NOW + 1000, body)));
    EXPECT(c->webhook_verify(state, &r, a) == PAGOFLEX_ERR_SIGNATURE); /* from the future */
    pagoflex_webhook_parsed parsed = {.size = sizeof parsed};
    EXPECT(c->webhook_parse(state, &r, a, &parsed) == PAGOFLEX_OK && parsed.event_count == 1 &&
           parsed.events[0].state == PAGOFLEX_STATE_PENDING && streq(parsed.events[0].tx_id, "pi_9") &&
           !parsed.events[0].payment_id);

    /* charge.refunded listing two refunds: one event per refund. */
    body = "{\"id\":\"evt_10\",\"object\":\"event\",\"type\":\"charge.refunded\",\"data\":{\"object\":"
           "{\"id\":\"ch_1\",\"object\":\"charge\",\"payment_intent\":\"pi_1\",\"refunds\":{\"data\":["
           "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"succeeded\",\"amount\":300,\"currency\":"
           "\"jpy\",\"metadata\":{\"pagoflex_refund_id\":\"ref_1\"}},{\"id\":\"re_2\",\"object\":"
           "\"refund\",\"status\":\"pending\",\"amount\":200,\"currency\":\"jpy\",\"metadata\":{}}]}}}}";
    r = signed_req(body, "");
    memset(&parsed, 0, sizeof parsed);
    parsed.size = sizeof parsed;
    EXPECT(c->webhook_parse(state, &r, a, &parsed) == PAGOFLEX_OK && parsed.event_count == 2);
    if (parsed.event_count == 2) {
        EXPECT(parsed.events[0].kind == PAGOFLEX_EVENT_REFUND &&
               parsed.events[0].state == PAGOFLEX_STATE_SUCCEEDED &&
               streq(parsed.events[0].refund_id, "ref_1") && parsed.events[0].amount == 300 &&
               streq(parsed.events[0].event_id, "evt_10:re_1"));
        EXPECT(parsed.events[1].state == PAGOFLEX_STATE_PENDING &&
               streq(parsed.events[1].refund_provider_reference_id, "re_2") &&
               streq(parsed.events[1].tx_id, "pi_1"));
    }
    /* Unknown types are acknowledged; garbage and nameless objects are not. */
    body = "{\"id\":\"evt_11\",\"object\":\"event\",\"type\":\"payout.paid\",\"data\":{\"object\":{}}}";
    r = signed_req(body, "");
    memset(&parsed, 0, sizeof parsed);
    parsed.size = sizeof parsed;
    EXPECT(c->webhook_parse(state, &r, a, &parsed) == PAGOFLEX_OK && parsed.event_count == 1 &&
           parsed.events[0].kind == PAGOFLEX_EVENT_IGNORED && streq(parsed.events[0].type, "payout.paid"));
    r = signed_req("nope", "");
    EXPECT(c->webhook_parse(state, &r, a, &parsed) == PAGOFLEX_ERR_INVALID);
    body = "{\"id\":\"evt_12\",\"object\":\"event\",\"type\":\"refund.updated\",\"data\":{\"object\":{}}}";
    r = signed_req(body, "");
    EXPECT(c->webhook_parse(state, &r, a, &parsed) == PAGOFLEX_ERR_INVALID);
    pagoflex_testkit_set_now(0);
}

/* A 1.1 host calls the old entry points: no token, so no confirm. */
static void test_old_entry_points(void)
{
    pagoflex_testkit_set_now(NOW);
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "USD");
    pagoflex_arena *arena = pagoflex_testkit_arena(tk);
    pagoflex_http_request req;
    pagoflex_payment_result res;
    EXPECT(c->build_request(state, &p, arena, &req) == PAGOFLEX_OK);
    EXPECT(streq(req.url, BASE "/v1/payment_intents") && streq(header(&req, "Idempotency-Key"), p.id));
    EXPECT(!has_pair(&req, "confirm=true"));
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":\"requires_payment_method\"}");
    EXPECT(c->handle_response(state, &p, &ok, arena, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && streq(res.provider_reference_id, "pi_1"));
    EXPECT(c->sync_request(state, &p, arena, &req) == PAGOFLEX_ERR_NOT_FOUND);

    const char *body = "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"payment_intent.payment_failed\","
                       "\"data\":{\"object\":{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"metadata\":"
                       "{\"pagoflex_payment_id\":\"pay_1\"},\"last_payment_error\":{\"code\":"
                       "\"card_declined\",\"decline_code\":\"lost_card\"}}}}";
    size_t len = strlen(body);
    pagoflex_testkit_webhook wh = pagoflex_testkit_webhook_new(tk, body);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, len, arena) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_testkit_webhook_header(tk, &wh, "Stripe-Signature",
                                    pagoflex_testkit_sign_bancox(tk, WHSEC, NOW, body, len));
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, len, arena) == PAGOFLEX_OK);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, len - 1, arena) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_webhook_event ev;
    EXPECT(c->parse_webhook(state, wh.body, len, arena, &ev) == PAGOFLEX_OK);
    EXPECT(ev.state == PAGOFLEX_STATE_FAILED && streq(ev.payment_id, "pay_1") &&
           streq(ev.tx_id, "pi_1") && streq(ev.error_code, "lost_card"));
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
    pagoflex_testkit_credential_set(tk, "STRIPE_SECRET_KEY", "sk_test_123");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS); /* no webhook secret */
    pagoflex_testkit_credential_set(tk, "STRIPE_WEBHOOK_SECRET", WHSEC);
    pagoflex_testkit_setting_set(tk, "STRIPE_BASE_URL", "ftp://nope");
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_ERR_CREDENTIALS);
    EXPECT(strstr(pagoflex_testkit_last_log(tk), "STRIPE_BASE_URL") &&
           !strstr(pagoflex_testkit_last_log(tk), "sk_test_123"));
    pagoflex_testkit_setting_set(tk, "STRIPE_BASE_URL", BASE "/");
    state = NULL;
    EXPECT(c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) ==
           PAGOFLEX_OK);
    if (!state)
        return 1;

    test_authorize();
    test_currencies();
    test_capture_and_void();
    test_refund_and_syncs();
    test_webhooks();
    test_old_entry_points();

    c->fini(state);
    pagoflex_testkit_free(tk);
    if (failures)
        fprintf(stderr, "test_stripe: %d failure(s)\n", failures);
    else
        printf("test_stripe: all checks passed\n");
    return failures ? 1 : 0;
}
