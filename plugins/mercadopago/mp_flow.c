/*
 * mp_flow.c - run one flow of the MERCADOPAGO connector against a live URL
 * (the simulator in tests/psp/mercadopagosim.py, or a sandbox) with the
 * test kit standing in for the host and libcurl executing the request:
 *   mp_flow BASE_URL FLOW CURRENCY AMOUNT PAYMENT_ID OPERATION_ID [BANK_ID|-]
 *           [REFUND_BANK_ID|-] [CARD_TOKEN|-] [CAPTURE 0|1]
 * FLOW is authorize, capture, void, refund, payment_sync or refund_sync.
 * Credentials come from $MP_ACCESS_TOKEN and $MP_WEBHOOK_SECRET. Prints
 * "rc=<status> state=<n> ref=<id> amount=<minor> code=<code>"; exit 0 when
 * the flow ran (whatever its state), 2 on a usage error.
 */
#include <pagoflex/connector.h>
#include <pagoflex/testkit.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct pagoflex_connector *pagoflex_connector_v1(void);

typedef struct {
    char *buf;
    size_t len;
} sink;

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
    sink *s = u;
    char *nb = realloc(s->buf, s->len + sz * n + 1);
    if (!nb)
        return 0;
    memcpy(nb + s->len, p, sz * n);
    s->buf = nb;
    s->len += sz * n;
    s->buf[s->len] = '\0';
    return sz * n;
}

static const char *arg(int argc, char **argv, int i)
{
    return i < argc && strcmp(argv[i], "-") != 0 ? argv[i] : NULL;
}

int main(int argc, char **argv)
{
    static const char *const flows[] = {"authorize", "capture", "void",
                                        "refund", "payment_sync", "refund_sync"};
    if (argc < 7) {
        fprintf(stderr, "usage: mp_flow BASE FLOW CURRENCY AMOUNT PAYMENT_ID OPERATION_ID "
                        "[BANK_ID] [REFUND_BANK_ID] [CARD_TOKEN] [CAPTURE]\n");
        return 2;
    }
    int flow = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(argv[2], flows[i]) == 0)
            flow = i;
    if (flow < 0 || !getenv("MP_ACCESS_TOKEN") || !getenv("MP_WEBHOOK_SECRET"))
        return 2;
    const pagoflex_connector *c = pagoflex_connector_v1();
    pagoflex_testkit *tk = pagoflex_testkit_new();
    void *state = NULL;
    pagoflex_testkit_quiet(tk, 1);
    pagoflex_testkit_credential_set(tk, "MP_ACCESS_TOKEN", getenv("MP_ACCESS_TOKEN"));
    pagoflex_testkit_credential_set(tk, "MP_WEBHOOK_SECRET", getenv("MP_WEBHOOK_SECRET"));
    pagoflex_testkit_setting_set(tk, "MP_BASE_URL", argv[1]);
    if (c->init(pagoflex_testkit_host(tk), pagoflex_testkit_credentials(tk), &state) != PAGOFLEX_OK)
        return 1;
    pagoflex_payment p = {.id = argv[5], .amount = strtoll(argv[4], NULL, 10),
                          .currency = argv[3], .description = "mp_flow",
                          .webhook_url = getenv("MP_NOTIFICATION_URL"),
                          .provider_reference_id = arg(argc, argv, 7)};
    pagoflex_flow_input in = {.size = sizeof in, .flow = (pagoflex_flow)flow, .payment = &p,
                              .operation_id = argv[6],
                              .capture = arg(argc, argv, 10) ? atoi(argv[10]) : 1,
                              .payment_method_type = "card_token",
                              .payment_method_token = arg(argc, argv, 9),
                              .refund_id = argv[6],
                              .refund_provider_reference_id = arg(argc, argv, 8)};
    if (flow == PAGOFLEX_FLOW_CAPTURE || flow == PAGOFLEX_FLOW_REFUND)
        in.amount = p.amount;
    pagoflex_http_request req;
    pagoflex_flow_result res = {.size = sizeof res};
    int rc = c->flow_request(state, &in, pagoflex_testkit_arena(tk), &req);
    if (rc == PAGOFLEX_OK) {
        CURL *h = curl_easy_init();
        struct curl_slist *hl = NULL;
        sink body = {0};
        char line[1024];
        for (size_t i = 0; i < req.header_count; i++) {
            snprintf(line, sizeof line, "%s: %s", req.headers[i].name, req.headers[i].value);
            hl = curl_slist_append(hl, line);
        }
        curl_easy_setopt(h, CURLOPT_URL, req.url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        if (req.body_len) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)req.body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)req.body_len);
        }
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
        pagoflex_http_response resp = pagoflex_testkit_transport_failure(PAGOFLEX_TRANSPORT_ERROR);
        if (curl_easy_perform(h) == CURLE_OK) {
            long st = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
            resp = pagoflex_testkit_response_bytes(tk, (int)st, body.buf ? body.buf : "", body.len);
        }
        rc = c->flow_response(state, &in, &resp, pagoflex_testkit_arena(tk), &res);
        free(body.buf);
        curl_slist_free_all(hl);
        curl_easy_cleanup(h);
    }
    printf("rc=%d state=%d ref=%s amount=%lld code=%s\n", rc, (int)res.state,
           res.provider_reference_id ? res.provider_reference_id : "-", (long long)res.amount,
           res.error_code ? res.error_code : "-");
    c->fini(state);
    pagoflex_testkit_free(tk);
    return 0;
}
