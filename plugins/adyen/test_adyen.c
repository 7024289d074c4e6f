/*
 * test_adyen.c - unit test of the ADYEN connector with the Pagoflex test
 * kit (no host needed): init, every flow's request and the mapping of every
 * documented answer and of the transient ones, Adyen's currency exponents,
 * webhooks (Adyen's own known-answer HMAC, batches, tampering, key change,
 * Basic auth, unknown codes) and the 1.0 entry points.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <stdio.h>
#include <string.h>

const struct pagoflex_connector *pagoflex_connector_v1(void);

#define BASE "http://127.0.0.1:9/v71"
#define MERCHANT "TestMerchant"
/* The key and item of the HMAC known-answer test in Adyen's own PHP library
 * (tests/Adyen/Util/HmacSignatureTest.php). */
#define KAT_KEY "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00"
#define KAT_SIG "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I="
#define OTHER_KEY "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"

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

static int has_header(const pagoflex_http_request *r, const char *name, const char *value)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (streq(r->headers[i].name, name) && streq(r->headers[i].value, value))
            return 1;
    return 0;
}

static int body_has(const pagoflex_http_request *r, const char *s)
{
    return r->body && strstr((const char *)r->body, s) != NULL;
}

static int state_of(const pagoflex_flow_input *in, pagoflex_http_response resp,
                    pagoflex_flow_result *res)
{
    int rc = pagoflex_testkit_run_flow(tk, c, state, in, &resp, NULL, res);
    return rc == PAGOFLEX_OK ? (int)res->state : -1;
}

/* 429, 5xx, timeouts, garbage, a proxy's 404, a 302 and Adyen's 704
 * idempotency conflict stay PROCESSING. */
static void unknown_stays_processing(const pagoflex_flow_input *in)
{
    pagoflex_flow_result res;
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 429, "{\"status\":429}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 500, "{\"status\":500,\"errorCode\":\"905\","
                                                           "\"message\":\"x\",\"errorType\":"
                                                           "\"internal\"}"),
                    &res) == PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 503, NULL), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_TIMEOUT), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_CONNECT), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 200, "<html>bad gateway</html>"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 404, "<html>Not Found</html>"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 302, "{}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    EXPECT(state_of(in, pagoflex_testkit_response(tk, 422, "{\"status\":422,\"errorCode\":\"704\","
                                                           "\"message\":\"request already "
                                                           "processed or in progress\","
                                                           "\"errorType\":\"validation\"}"),
                    &res) == PAGOFLEX_STATE_PROCESSING);
}

static void test_authorize(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "EUR");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    pagoflex_http_response ok = pagoflex_testkit_response(
        tk, 200, "{\"pspReference\":\"993617895204576J\",\"resultCode\":\"Authorised\","
                 "\"merchantReference\":\"x\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(streq(req.method, "POST") && streq(req.url, BASE "/payments"));
    EXPECT(has_header(&req, "X-API-Key", "AQE_test_key"));
    EXPECT(has_header(&req, "Idempotency-Key", in.operation_id));
    EXPECT(has_header(&req, "Content-Type", "application/json"));
    EXPECT(body_has(&req, "\"merchantAccount\":\"" MERCHANT "\""));
    EXPECT(body_has(&req, "\"amount\":{\"value\":1050,\"currency\":\"EUR\"}"));
    EXPECT(body_has(&req, "\"captureDelayHours\":0") && !body_has(&req, "manualCapture"));
    EXPECT(body_has(&req, "\"storedPaymentMethodId\":\"tok_test_visa\"") &&
           body_has(&req, "\"shopperInteraction\":\"ContAuth\""));
    EXPECT(body_has(&req, "\"returnUrl\":\"https://merchant.test/return\""));
    EXPECT(req.body && strstr((const char *)req.body, "\"reference\":\"") &&
           body_has(&req, p.id));
    EXPECT(res.state == PAGOFLEX_STATE_SUCCEEDED &&
           streq(res.provider_reference_id, "993617895204576J"));

    /* Manual capture: additionalData.manualCapture, Authorised = held. */
    in.capture = 0;
    in.payment_method_token = "{\"type\":\"scheme\",\"encryptedCardNumber\":"
                              "\"test_4111111111111111\",\"holderName\":\"J Smith\"}";
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK);
    EXPECT(body_has(&req, "\"additionalData\":{\"manualCapture\":\"true\"}") &&
           !body_has(&req, "captureDelayHours"));
    EXPECT(body_has(&req, "\"encryptedCardNumber\":\"test_4111111111111111\"") &&
           !body_has(&req, "storedPaymentMethodId"));
    EXPECT(body_has(&req, "\"pagoflexCapture\":\"manual\""));
    EXPECT(res.state == PAGOFLEX_STATE_REQUIRES_CAPTURE);

    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"pspReference\":\"P1\",\"resultCode\":"
                                                            "\"Refused\",\"refusalReason\":"
                                                            "\"Expired Card\","
                                                            "\"refusalReasonCode\":\"6\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "refused") && streq(res.error_message, "Expired Card"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"pspReference\":\"P1\",\"resultCode\":"
                                                            "\"Error\",\"refusalReason\":"
                                                            "\"Acquirer Error\"}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(streq(res.error_code, "error"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"pspReference\":\"P1\",\"resultCode\":"
                                                            "\"Cancelled\"}"),
                    &res) == PAGOFLEX_STATE_CANCELED);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"pspReference\":\"P1\",\"resultCode\":"
                                                            "\"Pending\"}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"pspReference\":\"P1\",\"resultCode\":"
                                                            "\"Received\"}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, pagoflex_testkit_response(
                             tk, 200, "{\"resultCode\":\"RedirectShopper\",\"action\":{\"type\":"
                                      "\"redirect\",\"method\":\"GET\",\"url\":"
                                      "\"https://checkoutshopper-test.adyen.com/3ds?x=1\"}}"),
                    &res) == PAGOFLEX_STATE_REQUIRES_ACTION);
    EXPECT(streq(res.redirect_url, "https://checkoutshopper-test.adyen.com/3ds?x=1"));
    /* Native 3DS2 (no URL) or a POST redirect: we cannot hand it over. */
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"resultCode\":\"IdentifyShopper\","
                                                            "\"action\":{\"type\":\"threeDS2\","
                                                            "\"token\":\"abc\"}}"),
                    &res) == PAGOFLEX_STATE_PENDING);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"resultCode\":\"ChallengeShopper\","
                                                            "\"action\":{\"type\":\"redirect\","
                                                            "\"method\":\"POST\",\"url\":"
                                                            "\"https://a.example/x\"}}"),
                    &res) == PAGOFLEX_STATE_PENDING && res.redirect_url == NULL);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 200, "{\"resultCode\":\"SomethingNew\"}"),
                    &res) == PAGOFLEX_STATE_PROCESSING);
    /* Adyen's own refusals of the request: nothing was created. */
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 422, "{\"status\":422,\"errorCode\":\"14_004\","
                                                            "\"message\":\"Missing payment method "
                                                            "details\",\"errorType\":"
                                                            "\"validation\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    EXPECT(streq(res.error_code, "adyen_14_004"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 401, "{\"status\":401,\"errorCode\":\"000\","
                                                            "\"message\":\"HTTP Status Response - "
                                                            "Unauthorized\",\"errorType\":"
                                                            "\"security\"}"),
                    &res) == PAGOFLEX_STATE_FAILED);
    unknown_stays_processing(&in);

    /* No return URL from the host: ADYEN_RETURN_URL stands in. */
    in.return_url = NULL;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK &&
           body_has(&req, "\"returnUrl\":\"https://merchant.test/back\""));
    /* No usable token: Adyen cannot be asked. */
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
    in.payment_method_token = "{\"no\":\"type\"}";
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) == PAGOFLEX_ERR_INVALID);
    pagoflex_payment xxx = pagoflex_testkit_payment(tk, 100, "XXQ");
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &xxx);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, NULL, &res) ==
           PAGOFLEX_ERR_UNSUPPORTED);
}

/* Adyen's decimals: ISO 4217 except CLP and ISK (2, ISO 0), CVE and IDR
 * (0, ISO 2). Our amounts are ISO minor units. */
static void test_currency_exponents(void)
{
    static const struct {
        const char *cur;
        int64_t minor;
        const char *value; /* in the body, or NULL: refused */
    } cases[] = {
        {"JPY", 1050, "\"value\":1050"},   {"KWD", 1050, "\"value\":1050"},
        {"CLP", 1050, "\"value\":105000"}, {"ISK", 279, "\"value\":27900"},
        {"IDR", 150000, "\"value\":1500"}, {"CVE", 1200, "\"value\":12"},
        {"IDR", 150050, NULL},             {"CVE", 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pagoflex_payment p = pagoflex_testkit_payment(tk, cases[i].minor, cases[i].cur);
        pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_AUTHORIZE, &p);
        pagoflex_http_request req;
        pagoflex_flow_result res;
        pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"resultCode\":\"Received\"}");
        int rc = pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res);
        if (cases[i].value) {
            EXPECT(rc == PAGOFLEX_OK && body_has(&req, cases[i].value));
            if (!(rc == PAGOFLEX_OK && body_has(&req, cases[i].value)))
                fprintf(stderr, "  currency %s %lld\n", cases[i].cur, (long long)cases[i].minor);
        } else {
            EXPECT(rc == PAGOFLEX_ERR_INVALID);
        }
    }
    /* A refund of CLP 500 (ISO) is 50000 at Adyen. */
    pagoflex_payment clp = pagoflex_testkit_payment(tk, 1000, "CLP");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND, &clp);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    in.amount = 500;
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 201, "{\"status\":\"received\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &ok, &req, &res) == PAGOFLEX_OK &&
           body_has(&req, "\"value\":50000"));
}

static void test_modifications(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "EUR");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_CAPTURE, &p);
    pagoflex_http_request req;
    pagoflex_flow_result res;
    in.amount = 500; /* partial */
    pagoflex_http_response received = pagoflex_testkit_response(
        tk, 201, "{\"merchantAccount\":\"" MERCHANT "\",\"paymentPspReference\":\"X\","
                 "\"pspReference\":\"CAP0000000000001\",\"status\":\"received\","
                 "\"amount\":{\"value\":500,\"currency\":\"EUR\"}}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &received, &req, &res) == PAGOFLEX_OK);
    char want[256];
    snprintf(want, sizeof want, BASE "/payments/%s/captures", in.payment->provider_reference_id);
    EXPECT(streq(req.url, want));
    EXPECT(has_header(&req, "Idempotency-Key", in.operation_id) &&
           has_header(&req, "X-API-Key", "AQE_test_key"));
    EXPECT(body_has(&req, "\"amount\":{\"value\":500,\"currency\":\"EUR\"}") &&
           body_has(&req, "\"merchantAccount\":\"" MERCHANT "\""));
    /* "received" is not "captured": the CAPTURE webhook says. */
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && res.amount == 0);
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 422, "{\"status\":422,\"errorCode\":\"167\","
                                                            "\"message\":\"Original pspReference "
                                                            "required for this operation\","
                                                            "\"errorType\":\"validation\"}"),
                    &res) == PAGOFLEX_STATE_FAILED && streq(res.error_code, "adyen_167"));
    EXPECT(state_of(&in, pagoflex_testkit_response(tk, 201, "{\"status\":\"other\"}"), &res) ==
           PAGOFLEX_STATE_PROCESSING);
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_VOID, &p);
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &received, &req, &res) == PAGOFLEX_OK);
    EXPECT(req.url && strstr(req.url, "/cancels") && has_header(&req, "Idempotency-Key", in.operation_id));
    EXPECT(body_has(&req, "\"merchantAccount\":\"" MERCHANT "\"") && !body_has(&req, "amount"));
    EXPECT(res.state == PAGOFLEX_STATE_PENDING);
    unknown_stays_processing(&in);

    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_REFUND, &p);
    in.amount = 300;
    pagoflex_http_response rf = pagoflex_testkit_response(
        tk, 201, "{\"pspReference\":\"RF00000000000001\",\"status\":\"received\"}");
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &rf, &req, &res) == PAGOFLEX_OK);
    EXPECT(req.url && strstr(req.url, "/refunds") && has_header(&req, "Idempotency-Key", in.operation_id));
    EXPECT(body_has(&req, "\"value\":300") && body_has(&req, in.refund_id) &&
           body_has(&req, "\"merchantRefundReason\":\"CUSTOMER REQUEST\""));
    EXPECT(res.state == PAGOFLEX_STATE_PENDING &&
           streq(res.provider_reference_id, "RF00000000000001"));
    unknown_stays_processing(&in);

    /* No pspReference yet: nothing to modify. */
    pagoflex_payment fresh = pagoflex_testkit_payment(tk, 1050, "EUR");
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_CAPTURE, &fresh);
    pagoflex_payment copy = *in.payment;
    copy.provider_reference_id = NULL;
    in.payment = &copy;
    EXPECT(pagoflex_testkit_run_flow(tk, c, state, &in, &received, NULL, &res) ==
           PAGOFLEX_ERR_INVALID);
    /* Adyen has no GET for a payment or a refund: no sync flows. */
    EXPECT(!(c->flows & PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_PAYMENT_SYNC)) &&
           !(c->flows & PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_REFUND_SYNC)));
    in = pagoflex_testkit_flow_input(tk, PAGOFLEX_FLOW_PAYMENT_SYNC, &p);
    EXPECT(c->flow_request(state, &in, pagoflex_testkit_arena(tk), &req) ==
           PAGOFLEX_ERR_UNSUPPORTED);
}

static pagoflex_webhook_request wh_request(const char *body)
{
    pagoflex_webhook_request req = {.size = sizeof req, .method = "POST", .path = "/webhooks/adyen",
                                    .query = "", .body = (const unsigned char *)body,
                                    .body_len = strlen(body)};
    return req;
}

/* An item with Adyen's known-answer fields and the given signature. */
static const char *kat_body(const char *sig, const char *extra_item)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"live\":\"false\",\"notificationItems\":[{\"NotificationRequestItem\":{"
             "\"additionalData\":{\"hmacSignature\":\"%s\"},\"amount\":{\"value\":1130,"
             "\"currency\":\"EUR\"},\"eventCode\":\"AUTHORISATION\",\"eventDate\":"
             "\"2014-08-06T13:39:03+02:00\",\"merchantAccountCode\":\"TestMerchant\","
             "\"merchantReference\":\"TestPayment-1407325143704\",\"operations\":[\"CANCEL\","
             "\"CAPTURE\",\"REFUND\"],\"paymentMethod\":\"visa\",\"pspReference\":"
             "\"7914073381342284\",\"reason\":\"1234:7777:12/2012\",\"success\":\"true\"}}%s]}",
             sig, extra_item ? extra_item : "");
    return buf;
}

static void test_webhooks(void)
{
    pagoflex_arena *a = pagoflex_testkit_arena(tk);
    pagoflex_webhook_request req = wh_request(kat_body(KAT_SIG, NULL));
    /* Adyen's own known answer verifies. */
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_OK);
    pagoflex_webhook_parsed parsed = {.size = sizeof parsed};
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_OK && parsed.event_count == 1);
    if (parsed.event_count == 1) {
        const pagoflex_event *e = &parsed.events[0];
        EXPECT(e->kind == PAGOFLEX_EVENT_PAYMENT && streq(e->event_id, "7914073381342284"));
        EXPECT(streq(e->tx_id, "7914073381342284") &&
               streq(e->payment_id, "TestPayment-1407325143704"));
        /* No capture metadata; operations still offer CAPTURE: held. */
        EXPECT(e->state == PAGOFLEX_STATE_REQUIRES_CAPTURE);
    }
    /* The answer Adyen requires. */
    EXPECT(parsed.answer_status == 200 && parsed.answer_body_len == 10 &&
           memcmp(parsed.answer_body, "[accepted]", 10) == 0);
    /* Another signature, or a changed signed field, is refused. */
    req = wh_request(kat_body("My9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=", NULL));
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    char changed[2048];
    snprintf(changed, sizeof changed, "%s", kat_body(KAT_SIG, NULL));
    char *v = strstr(changed, "1130");
    v[3] = '1';
    req = wh_request(changed);
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    req = wh_request(kat_body("", NULL));
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    req = wh_request("{\"live\":\"false\",\"notificationItems\":[]}");
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    req = wh_request("not json");
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_ERR_INVALID);

    /* A batch: every item is checked; one forged item refuses all. */
    pagoflex_testkit_set_now(1800000000);
    const pagoflex_event cap = {.event_id = "CAP0000000000001", .kind = PAGOFLEX_EVENT_PAYMENT,
                                .payment_id = "pay_9", .tx_id = "7914073381342284",
                                .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 700};
    pagoflex_webhook_request one;
    EXPECT(pagoflex_testkit_webhook_roundtrip(tk, c, state, &cap, &one, &parsed) == PAGOFLEX_OK);
    EXPECT(parsed.event_count == 1 && parsed.events[0].state == PAGOFLEX_STATE_SUCCEEDED &&
           parsed.events[0].amount == 700 && streq(parsed.events[0].tx_id, "7914073381342284"));
    const char *item = strstr((const char *)one.body, "[") + 1; /* the signed CAPTURE item */
    char batch[8192], extra[2048];
    snprintf(extra, sizeof extra, ",%.*s", (int)(strlen(item) - 2), item);
    snprintf(batch, sizeof batch, "%s", kat_body(KAT_SIG, extra));
    req = wh_request(batch);
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_OK);
    parsed = (pagoflex_webhook_parsed){.size = sizeof parsed};
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_OK && parsed.event_count == 2);
    snprintf(batch, sizeof batch, "%s", kat_body("My9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=", extra));
    req = wh_request(batch);
    EXPECT(c->webhook_verify(state, &req, a) == PAGOFLEX_ERR_SIGNATURE);

    /* Tampering with the sample, and its replay a day later: Adyen signs
     * no time, so the replay verifies (duplicates are absorbed by id). */
    pagoflex_webhook_request bad = pagoflex_testkit_webhook_tampered(tk, &one, one.body_len / 3, NULL);
    EXPECT(c->webhook_verify(state, &bad, a) == PAGOFLEX_ERR_SIGNATURE);
    pagoflex_testkit_set_now(1800000000 + 86400);
    EXPECT(c->webhook_verify(state, &one, a) == PAGOFLEX_OK);
    pagoflex_testkit_set_now(1800000000);

    /* Every mapped code, and unknown ones IGNORED with a distinct id. */
    static const struct {
        pagoflex_event e;
    } samples[] = {
        {{.event_id = "AUTH000000000001", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_1",
          .state = PAGOFLEX_STATE_REQUIRES_CAPTURE}},
        {{.event_id = "AUTH000000000002", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_2",
          .state = PAGOFLEX_STATE_FAILED, .error_code = "Refused"}},
        {{.event_id = "CANC000000000001", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_3",
          .tx_id = "PAY0000000000003", .state = PAGOFLEX_STATE_CANCELED}},
        {{.event_id = "REF0000000000001", .kind = PAGOFLEX_EVENT_REFUND, .refund_id = "ref_1",
          .tx_id = "PAY0000000000004", .state = PAGOFLEX_STATE_SUCCEEDED, .amount = 300}},
        {{.event_id = "REF0000000000002", .kind = PAGOFLEX_EVENT_REFUND, .refund_id = "ref_2",
          .tx_id = "PAY0000000000004", .state = PAGOFLEX_STATE_FAILED}},
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        parsed = (pagoflex_webhook_parsed){.size = sizeof parsed};
        EXPECT(pagoflex_testkit_webhook_roundtrip(tk, c, state, &samples[i].e, &one, &parsed) ==
               PAGOFLEX_OK);
        EXPECT(parsed.event_count == 1 && parsed.events[0].kind == samples[i].e.kind &&
               parsed.events[0].state == samples[i].e.state &&
               streq(parsed.events[0].event_id, samples[i].e.event_id));
    }
    EXPECT(parsed.event_count == 1 && streq(parsed.events[0].refund_id, "ref_2") &&
           streq(parsed.events[0].refund_provider_reference_id, "REF0000000000002"));
    const pagoflex_event look = {.event_id = "x1", .kind = PAGOFLEX_EVENT_PAYMENT,
                                 .payment_id = "pay_1", .look_up = 1};
    EXPECT(pagoflex_testkit_webhook_roundtrip(tk, c, state, &look, NULL, &parsed) ==
           PAGOFLEX_ERR_UNSUPPORTED);

    /* Parse (after verify) of codes beyond the sample: REFUND_FAILED,
     * CAPTURE_FAILED, unknown codes, another merchant account. */
    const char *codes = "{\"live\":\"false\",\"notificationItems\":["
        "{\"NotificationRequestItem\":{\"eventCode\":\"REFUND_FAILED\",\"success\":\"true\","
        "\"pspReference\":\"RF1\",\"originalReference\":\"P1\",\"merchantAccountCode\":"
        "\"TestMerchant\",\"merchantReference\":\"ref_7\",\"amount\":{\"value\":100,"
        "\"currency\":\"EUR\"}}},"
        "{\"NotificationRequestItem\":{\"eventCode\":\"CAPTURE_FAILED\",\"success\":\"true\","
        "\"pspReference\":\"CP1\",\"originalReference\":\"P1\",\"merchantAccountCode\":"
        "\"TestMerchant\",\"merchantReference\":\"pay_7\",\"amount\":{\"value\":100,"
        "\"currency\":\"EUR\"}}},"
        "{\"NotificationRequestItem\":{\"eventCode\":\"REPORT_AVAILABLE\",\"success\":\"true\","
        "\"pspReference\":\"RP1\",\"merchantAccountCode\":\"TestMerchant\",\"amount\":{"
        "\"value\":0,\"currency\":\"EUR\"}}},"
        "{\"NotificationRequestItem\":{\"eventCode\":\"PENDING\",\"success\":\"true\","
        "\"pspReference\":\"P1\",\"merchantAccountCode\":\"TestMerchant\",\"amount\":{"
        "\"value\":100,\"currency\":\"EUR\"}}},"
        "{\"NotificationRequestItem\":{\"eventCode\":\"AUTHORISATION\",\"success\":\"true\","
        "\"pspReference\":\"P2\",\"merchantAccountCode\":\"OtherMerchant\",\"amount\":{"
        "\"value\":100,\"currency\":\"EUR\"}}},"
        "{\"NotificationRequestItem\":{\"eventCode\":\"AUTHORISATION\",\"success\":\"true\","
        "\"pspReference\":\"P3\",\"merchantAccountCode\":\"TestMerchant\",\"merchantReference\":"
        "\"pay_8\",\"additionalData\":{\"metadata.pagoflexCapture\":\"auto\"},\"amount\":{"
        "\"value\":105000,\"currency\":\"CLP\"}}}]}";
    req = wh_request(codes);
    parsed = (pagoflex_webhook_parsed){.size = sizeof parsed};
    EXPECT(c->webhook_parse(state, &req, a, &parsed) == PAGOFLEX_OK && parsed.event_count == 6);
    if (parsed.event_count == 6) {
        const pagoflex_event *e = parsed.events;
        EXPECT(e[0].kind == PAGOFLEX_EVENT_REFUND && e[0].state == PAGOFLEX_STATE_FAILED &&
               streq(e[0].event_id, "RF1.REFUND_FAILED") && streq(e[0].refund_id, "ref_7"));
        EXPECT(e[1].kind == PAGOFLEX_EVENT_PAYMENT &&
               e[1].state == PAGOFLEX_STATE_REQUIRES_CAPTURE && streq(e[1].tx_id, "P1") &&
               streq(e[1].error_code, "capture_failed") && streq(e[1].event_id, "CP1.CAPTURE_FAILED"));
        EXPECT(e[2].kind == PAGOFLEX_EVENT_IGNORED && streq(e[2].type, "REPORT_AVAILABLE"));
        /* PENDING shares the payment's pspReference: its id must not
         * shadow the AUTHORISATION that follows. */
        EXPECT(e[3].kind == PAGOFLEX_EVENT_IGNORED && streq(e[3].event_id, "P1.PENDING"));
        EXPECT(e[4].kind == PAGOFLEX_EVENT_IGNORED); /* not our merchant account */
        EXPECT(e[5].kind == PAGOFLEX_EVENT_PAYMENT && e[5].state == PAGOFLEX_STATE_SUCCEEDED &&
               e[5].amount == 1050); /* CLP 105000 at Adyen = 1050 pesos */
    }
    pagoflex_testkit_set_now(0);
}

/* Key change (ADYEN_HMAC_KEY_PREVIOUS) and Basic auth, on a second state. */
static void test_rotation_and_basic_auth(void)
{
    pagoflex_testkit *k2 = pagoflex_testkit_new();
    if (!k2)
        return;
    pagoflex_testkit_quiet(k2, 1);
    pagoflex_testkit_credential_set(k2, "ADYEN_API_KEY", "AQE_test_key");
    pagoflex_testkit_credential_set(k2, "ADYEN_HMAC_KEY", OTHER_KEY);
    pagoflex_testkit_credential_set(k2, "ADYEN_HMAC_KEY_PREVIOUS", KAT_KEY);
    pagoflex_testkit_setting_set(k2, "ADYEN_MERCHANT_ACCOUNT", MERCHANT);
    pagoflex_testkit_credential_set(k2, "ADYEN_WEBHOOK_USERNAME", "adyen");
    pagoflex_testkit_credential_set(k2, "ADYEN_WEBHOOK_PASSWORD", "s3cret");
    void *s2 = NULL;
    EXPECT(c->init(pagoflex_testkit_host(k2), pagoflex_testkit_credentials(k2), &s2) ==
           PAGOFLEX_OK);
    if (!s2) {
        pagoflex_testkit_free(k2);
        return;
    }
    pagoflex_arena *a = pagoflex_testkit_arena(k2);
    pagoflex_webhook_request req = wh_request(kat_body(KAT_SIG, NULL));
    EXPECT(c->webhook_verify(s2, &req, a) == PAGOFLEX_ERR_SIGNATURE); /* no Basic auth */
    pagoflex_header auth[] = {{"Authorization", "Basic YWR5ZW46czNjcmV0"}}; /* adyen:s3cret */
    req.headers = auth;
    req.header_count = 1;
    EXPECT(c->webhook_verify(s2, &req, a) == PAGOFLEX_OK); /* signed with the previous key */
    pagoflex_header wrong[] = {{"Authorization", "Basic YWR5ZW46czNjcmVU"}};
    req.headers = wrong;
    EXPECT(c->webhook_verify(s2, &req, a) == PAGOFLEX_ERR_SIGNATURE);
    /* Its own samples carry the auth header and the current key. */
    const pagoflex_event e = {.event_id = "CAP1", .kind = PAGOFLEX_EVENT_PAYMENT,
                              .payment_id = "pay_1", .tx_id = "P1",
                              .state = PAGOFLEX_STATE_SUCCEEDED};
    pagoflex_webhook_parsed parsed;
    pagoflex_webhook_request one;
    EXPECT(pagoflex_testkit_webhook_roundtrip(k2, c, s2, &e, &one, &parsed) == PAGOFLEX_OK);
    pagoflex_webhook_request bad = pagoflex_testkit_webhook_tampered(k2, &one, 0, "Authorization");
    EXPECT(c->webhook_verify(s2, &bad, a) == PAGOFLEX_ERR_SIGNATURE);
    c->fini(s2);
    pagoflex_testkit_free(k2);
}

/* A 1.1 host: create with automatic capture, 1.0 webhooks. */
static void test_old_entry_points(void)
{
    pagoflex_payment p = pagoflex_testkit_payment(tk, 1050, "EUR");
    pagoflex_arena *a = pagoflex_testkit_arena(tk);
    pagoflex_http_request req;
    pagoflex_payment_result res;
    EXPECT(c->build_request(state, &p, a, &req) == PAGOFLEX_OK);
    EXPECT(streq(req.url, BASE "/payments") && has_header(&req, "Idempotency-Key", p.id) &&
           body_has(&req, "\"captureDelayHours\":0"));
    pagoflex_http_response ok = pagoflex_testkit_response(tk, 200, "{\"pspReference\":\"P9\","
                                                                   "\"resultCode\":\"Received\"}");
    EXPECT(c->handle_response(state, &p, &ok, a, &res) == PAGOFLEX_OK);
    EXPECT(res.state == PAGOFLEX_STATE_PENDING && streq(res.provider_reference_id, "P9"));
    pagoflex_testkit_webhook wh = pagoflex_testkit_webhook_new(tk, kat_body(KAT_SIG, NULL));
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len, a) ==
           PAGOFLEX_OK);
    EXPECT(c->verify_webhook(state, wh.headers, wh.header_count, wh.body, wh.body_len - 1, a) ==
           PAGOFLEX_ERR_SIGNATURE);
    pagoflex_webhook_event ev;
    /* Only an authorisation held for capture: nothing a 1.0 host takes. */
    EXPECT(c->parse_webhook(state, wh.body, wh.body_len, a, &ev) == PAGOFLEX_ERR_UNSUPPORTED);
}

int main(void)
{
    c = pagoflex_connector_v1();
    tk = pagoflex_testkit_new();
    if (!tk)
        return 1;
    pagoflex_testkit_quiet(tk, 1);
    pagoflex_credentials *creds = pagoflex_testkit_credentials(tk);
    const pagoflex_host_services *host = pagoflex_testkit_host(tk);

    /* init refuses what is missing or malformed, naming it. */
    EXPECT(c->init(host, creds, &state) == PAGOFLEX_ERR_CREDENTIALS);
    pagoflex_testkit_credential_set(tk, "ADYEN_API_KEY", "AQE_test_key");
    pagoflex_testkit_credential_set(tk, "ADYEN_HMAC_KEY", "not hex");
    pagoflex_testkit_setting_set(tk, "ADYEN_MERCHANT_ACCOUNT", MERCHANT);
    EXPECT(c->init(host, creds, &state) == PAGOFLEX_ERR_CREDENTIALS);
    EXPECT(strstr(pagoflex_testkit_last_log(tk), "ADYEN_HMAC_KEY") != NULL);
    EXPECT(strstr(pagoflex_testkit_last_log(tk), "not hex") == NULL);
    pagoflex_testkit_credential_set(tk, "ADYEN_HMAC_KEY", KAT_KEY);
    pagoflex_testkit_setting_set(tk, "ADYEN_BASE_URL", "ftp://x");
    EXPECT(c->init(host, creds, &state) == PAGOFLEX_ERR_CREDENTIALS);
    pagoflex_testkit_setting_set(tk, "ADYEN_BASE_URL", BASE "/");
    pagoflex_testkit_setting_set(tk, "ADYEN_RETURN_URL", "https://merchant.test/back");
    EXPECT(c->init(host, creds, &state) == PAGOFLEX_OK);
    if (!state)
        return 1;

    test_authorize();
    test_currency_exponents();
    test_modifications();
    test_webhooks();
    test_rotation_and_basic_auth();
    test_old_entry_points();

    c->fini(state);
    pagoflex_testkit_free(tk);
    if (failures)
        fprintf(stderr, "test_adyen: %d failure(s)\n", failures);
    else
        printf("test_adyen: all checks passed\n");
    return failures ? 1 : 0;
}
