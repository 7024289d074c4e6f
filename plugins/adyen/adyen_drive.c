/*
 * adyen_drive.c - run one flow of the ADYEN connector outside a host, for
 * tests against a simulator (tests/psp/test_adyen.py). The test performs
 * the HTTP call itself, so this program needs nothing beyond the test kit:
 *
 *   adyen_drive request  < {"flow":"authorize","payment":{...},"in":{...}}
 *       prints {"method","url","headers":{...},"body"}
 *   adyen_drive response < the same object plus "response":{"status",
 *       "body","transport"?}
 *       prints {"rc","state","provider_reference_id","error_code",
 *       "error_message","redirect_url","amount"}
 *   adyen_drive sample   < {"event":{"event_id","kind":"payment"|"refund",
 *       "payment_id","tx_id","refund_id","state","amount"}}
 *       prints the body webhook_sample signs for that event
 *
 * Credentials and settings come from the environment (ADYEN_API_KEY,
 * ADYEN_HMAC_KEY, ADYEN_MERCHANT_ACCOUNT, ADYEN_BASE_URL, ADYEN_RETURN_URL),
 * never from the command line. Exit 0 when the plugin answered, 1 otherwise.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct pagoflex_connector *pagoflex_connector_v1(void);

static const char *const drive_states[] = {"created", "processing", "pending", "succeeded",
                                           "failed", "requires_action", "canceled",
                                           "requires_review", "requires_capture"};

static int drive_flow(const char *name, pagoflex_flow *flow)
{
    static const char *const names[] = {"authorize", "capture", "void", "refund",
                                        "payment_sync", "refund_sync"};
    for (int i = 0; i < PAGOFLEX_FLOW_COUNT; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *flow = (pagoflex_flow)i;
            return 0;
        }
    return -1;
}

static int streq_or(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

static const char *drive_str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "request") != 0 && strcmp(argv[1], "response") != 0 &&
                      strcmp(argv[1], "sample") != 0)) {
        fprintf(stderr, "usage: adyen_drive request|response|sample < input.json\n");
        return 2;
    }
    int rc = 1;
    json_t *j = json_loadf(stdin, 0, NULL), *out = NULL;
    pagoflex_testkit *tk = pagoflex_testkit_new();
    const pagoflex_connector *c = pagoflex_connector_v1();
    void *state = NULL;
    if (!json_is_object(j) || !tk) {
        fprintf(stderr, "adyen_drive: stdin must be a JSON object\n");
        goto done;
    }
    static const char *const creds[] = {"ADYEN_API_KEY", "ADYEN_HMAC_KEY",
                                        "ADYEN_WEBHOOK_USERNAME", "ADYEN_WEBHOOK_PASSWORD"};
    static const char *const settings[] = {"ADYEN_MERCHANT_ACCOUNT", "ADYEN_BASE_URL",
                                           "ADYEN_RETURN_URL"};
    for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++)
        if (getenv(creds[i]))
            pagoflex_testkit_credential_set(tk, creds[i], getenv(creds[i]));
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (getenv(settings[i]))
            pagoflex_testkit_setting_set(tk, settings[i], getenv(settings[i]));
    if (c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) !=
        PAGOFLEX_OK)
        goto done;
    if (strcmp(argv[1], "sample") == 0) {
        json_t *je = json_object_get(j, "event");
        const char *st = drive_str(je, "state");
        pagoflex_event e = {.event_id = drive_str(je, "event_id"),
                            .kind = streq_or(drive_str(je, "kind"), "refund")
                                        ? PAGOFLEX_EVENT_REFUND
                                        : PAGOFLEX_EVENT_PAYMENT,
                            .payment_id = drive_str(je, "payment_id"),
                            .tx_id = drive_str(je, "tx_id"),
                            .refund_id = drive_str(je, "refund_id"),
                            .amount = json_integer_value(json_object_get(je, "amount"))};
        for (unsigned i = 0; st && i < 9; i++)
            if (strcmp(st, drive_states[i]) == 0)
                e.state = (pagoflex_state)i;
        pagoflex_webhook_request req = {.size = sizeof req};
        if (c->webhook_sample(state, &e, 0, pagoflex_testkit_arena(tk), &req) == PAGOFLEX_OK &&
            fwrite(req.body, 1, req.body_len, stdout) == req.body_len)
            rc = 0;
        goto done;
    }
    json_t *jp = json_object_get(j, "payment"), *ji = json_object_get(j, "in");
    pagoflex_payment p = {.id = drive_str(jp, "id"),
                          .amount = json_integer_value(json_object_get(jp, "amount")),
                          .currency = drive_str(jp, "currency"),
                          .reference = drive_str(jp, "reference"),
                          .webhook_url = drive_str(jp, "webhook_url"),
                          .provider_reference_id = drive_str(jp, "provider_reference_id")};
    pagoflex_flow_input in = {.size = sizeof in, .payment = &p,
                              .operation_id = drive_str(ji, "operation_id"),
                              .capture = json_is_true(json_object_get(ji, "capture")),
                              .return_url = drive_str(ji, "return_url"),
                              .payment_method_token = drive_str(ji, "token"),
                              .amount = json_integer_value(json_object_get(ji, "amount")),
                              .refund_id = drive_str(ji, "refund_id"),
                              .reason = drive_str(ji, "reason")};
    if (drive_flow(drive_str(j, "flow"), &in.flow) != 0) {
        fprintf(stderr, "adyen_drive: unknown flow\n");
        goto done;
    }
    pagoflex_arena *a = pagoflex_testkit_arena(tk);
    if (strcmp(argv[1], "request") == 0) {
        pagoflex_http_request req = {0};
        int r = c->flow_request(state, &in, a, &req);
        out = json_pack("{s:i}", "rc", r);
        if (r == PAGOFLEX_OK) {
            json_t *h = json_object();
            for (size_t i = 0; i < req.header_count; i++)
                json_object_set_new(h, req.headers[i].name, json_string(req.headers[i].value));
            json_object_set_new(out, "method", json_string(req.method));
            json_object_set_new(out, "url", json_string(req.url));
            json_object_set_new(out, "headers", h);
            json_object_set_new(out, "body", json_stringn((const char *)req.body, req.body_len));
        }
    } else {
        json_t *jr = json_object_get(j, "response");
        const char *body = drive_str(jr, "body");
        pagoflex_http_response resp = {
            .transport = (pagoflex_transport)json_integer_value(json_object_get(jr, "transport")),
            .status = (int)json_integer_value(json_object_get(jr, "status")),
            .body = (const unsigned char *)body, .body_len = body ? strlen(body) : 0};
        pagoflex_flow_result res = {.size = sizeof res};
        int r = c->flow_response(state, &in, &resp, a, &res);
        out = json_pack("{s:i, s:s, s:s?, s:s?, s:s?, s:s?, s:I}", "rc", r, "state",
                        (unsigned)res.state < 9 ? drive_states[res.state] : "?",
                        "provider_reference_id", res.provider_reference_id, "error_code",
                        res.error_code, "error_message", res.error_message, "redirect_url",
                        res.redirect_url, "amount", (json_int_t)res.amount);
    }
    if (out && json_dumpf(out, stdout, JSON_COMPACT) == 0) {
        putchar('\n');
        rc = 0;
    }
done:
    if (state)
        c->fini(state);
    json_decref(out);
    json_decref(j);
    pagoflex_testkit_free(tk);
    return rc;
}
