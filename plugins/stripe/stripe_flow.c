/*
 * stripe_flow.c - run one half of one flow of the Stripe connector with the
 * test kit standing in for the host, so a test can drive the plugin against
 * a simulator without the host's API:
 *
 *   stripe_flow request  FLOW [name=value...]         -> the request, as JSON
 *   stripe_flow response FLOW [name=value...] status=N body=FILE | transport=timeout
 *                                                     -> the result, as JSON
 *   stripe_flow sample NOW [tx= payment_id= amount=]  -> a signed webhook, as JSON
 *
 * FLOW: authorize capture void refund payment_sync refund_sync. Names:
 * payment_id amount currency capture token return_url pi (the payment's
 * Stripe id) op (operation id) refund_id re (Stripe refund id) reason.
 * Credentials come from the environment (STRIPE_SECRET_KEY,
 * STRIPE_WEBHOOK_SECRET, STRIPE_BASE_URL), never the command line.
 * Exit 0 with JSON on stdout; 1 with {"rc":N} when the plugin refused.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct pagoflex_connector *pagoflex_connector_v1(void);

static const char *arg(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 3; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    return NULL;
}

static int flow_of(const char *s)
{
    static const char *const names[] = {"authorize", "capture", "void",
                                        "refund", "payment_sync", "refund_sync"};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static const char *state_name(pagoflex_state s)
{
    static const char *const names[] = {"created", "processing", "pending", "succeeded",
                                        "failed", "requires_action", "canceled",
                                        "requires_review", "requires_capture"};
    return (unsigned)s < 9 ? names[s] : "?";
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* stripe_flow sample NOW [name=value...]: webhook_sample's delivery of a
 * payment_intent.succeeded event (tx=pi_..., payment_id=..., amount=N) at
 * Unix time NOW, as {"header": Stripe-Signature, "body": ...}. */
static int sample(int argc, char **argv)
{
    const pagoflex_connector *c = pagoflex_connector_v1();
    pagoflex_testkit *tk = pagoflex_testkit_new();
    if (!tk)
        return 1;
    pagoflex_testkit_credential_set(tk, "STRIPE_SECRET_KEY", "sk_unused");
    if (getenv("STRIPE_WEBHOOK_SECRET"))
        pagoflex_testkit_credential_set(tk, "STRIPE_WEBHOOK_SECRET", getenv("STRIPE_WEBHOOK_SECRET"));
    void *state = NULL;
    int rc = c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state);
    const char *v;
    pagoflex_event e = {.event_id = (v = arg(argc, argv, "event_id")) ? v : "evt_sample_1",
                        .kind = PAGOFLEX_EVENT_PAYMENT, .tx_id = arg(argc, argv, "tx"),
                        .payment_id = arg(argc, argv, "payment_id"),
                        .state = PAGOFLEX_STATE_SUCCEEDED,
                        .amount = (v = arg(argc, argv, "amount")) ? atoll(v) : 0};
    pagoflex_webhook_request req;
    memset(&req, 0, sizeof req);
    req.size = (uint32_t)sizeof req;
    if (rc == PAGOFLEX_OK)
        rc = c->webhook_sample(state, &e, atoll(argv[2]), pagoflex_testkit_arena(tk), &req);
    if (rc == PAGOFLEX_OK) {
        const char *h = NULL;
        for (size_t i = 0; i < req.header_count; i++)
            if (strcmp(req.headers[i].name, "Stripe-Signature") == 0)
                h = req.headers[i].value;
        json_t *o = json_pack("{s:s?, s:s#}", "header", h, "body", (const char *)req.body,
                              req.body_len);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        printf("{\"rc\":%d}\n", rc);
    }
    if (state)
        c->fini(state);
    pagoflex_testkit_free(tk);
    return rc == PAGOFLEX_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "sample") == 0)
        return sample(argc, argv);
    if (argc < 3 || flow_of(argv[2]) < 0 ||
        (strcmp(argv[1], "request") != 0 && strcmp(argv[1], "response") != 0)) {
        fprintf(stderr, "usage: stripe_flow request|response FLOW [name=value...]\n");
        return 2;
    }
    const pagoflex_connector *c = pagoflex_connector_v1();
    pagoflex_testkit *tk = pagoflex_testkit_new();
    if (!tk)
        return 1;
    static const char *const creds[] = {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"};
    for (int i = 0; i < 2; i++)
        if (getenv(creds[i]))
            pagoflex_testkit_credential_set(tk, creds[i], getenv(creds[i]));
    if (getenv("STRIPE_BASE_URL"))
        pagoflex_testkit_setting_set(tk, "STRIPE_BASE_URL", getenv("STRIPE_BASE_URL"));
    void *state = NULL;
    int rc = c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state);
    if (rc != PAGOFLEX_OK) {
        printf("{\"rc\":%d}\n", rc);
        pagoflex_testkit_free(tk);
        return 1;
    }
    const char *v;
    const char *cur = arg(argc, argv, "currency");
    pagoflex_payment p = pagoflex_testkit_payment(
        tk, (v = arg(argc, argv, "amount")) ? atoll(v) : 1050, cur ? cur : "USD");
    if ((v = arg(argc, argv, "payment_id")))
        p.id = v;
    p.provider_reference_id = arg(argc, argv, "pi");
    pagoflex_flow_input in = pagoflex_testkit_flow_input(tk, (pagoflex_flow)flow_of(argv[2]), &p);
    pagoflex_payment *pp = (pagoflex_payment *)in.payment;
    pp->provider_reference_id = p.provider_reference_id; /* NULL stays NULL */
    if (in.flow == PAGOFLEX_FLOW_AUTHORIZE)
        in.operation_id = pp->id;
    if ((v = arg(argc, argv, "op")))
        in.operation_id = v;
    if ((v = arg(argc, argv, "capture")))
        in.capture = atoi(v);
    in.payment_method_token = arg(argc, argv, "token");
    if ((v = arg(argc, argv, "return_url")))
        in.return_url = v;
    if ((v = arg(argc, argv, "op_amount")))
        in.amount = atoll(v);
    if ((v = arg(argc, argv, "refund_id")))
        in.refund_id = v;
    in.refund_provider_reference_id = arg(argc, argv, "re");
    if ((v = arg(argc, argv, "reason")))
        in.reason = v;

    pagoflex_arena *arena = pagoflex_testkit_arena(tk);
    int exit_code = 0;
    if (strcmp(argv[1], "request") == 0) {
        pagoflex_http_request req;
        memset(&req, 0, sizeof req);
        rc = c->flow_request(state, &in, arena, &req);
        if (rc != PAGOFLEX_OK) {
            printf("{\"rc\":%d}\n", rc);
            exit_code = 1;
        } else {
            json_t *h = json_object();
            for (size_t i = 0; i < req.header_count; i++)
                json_object_set_new(h, req.headers[i].name, json_string(req.headers[i].value));
            json_t *o = json_pack("{s:s, s:s, s:o, s:s#}", "method", req.method, "url", req.url,
                                  "headers", h, "body", req.body ? (const char *)req.body : "",
                                  req.body_len);
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(o);
        }
    } else {
        pagoflex_http_response resp;
        char *body = NULL;
        size_t len = 0;
        if ((v = arg(argc, argv, "transport")) && strcmp(v, "timeout") == 0) {
            resp = pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_TIMEOUT);
        } else {
            const char *path = arg(argc, argv, "body");
            body = path ? slurp(path, &len) : NULL;
            resp = pagoflex_testkit_response_bytes(tk, (v = arg(argc, argv, "status")) ? atoi(v) : 0,
                                                   body ? body : "", len);
        }
        pagoflex_flow_result res;
        memset(&res, 0, sizeof res);
        res.size = (uint32_t)sizeof res;
        rc = c->flow_response(state, &in, &resp, arena, &res);
        free(body);
        if (rc != PAGOFLEX_OK) {
            printf("{\"rc\":%d}\n", rc);
            exit_code = 1;
        } else {
            json_t *o = json_pack("{s:s, s:s?, s:s?, s:s?, s:I, s:s?}", "state",
                                  state_name(res.state), "provider_reference_id",
                                  res.provider_reference_id, "error_code", res.error_code,
                                  "error_message", res.error_message, "amount",
                                  (json_int_t)res.amount, "redirect_url", res.redirect_url);
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(o);
        }
    }
    c->fini(state);
    pagoflex_testkit_free(tk);
    return exit_code;
}
