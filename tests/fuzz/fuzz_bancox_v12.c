/* fuzz_bancox_v12 - Banco X's ABI 1.2 entry points on any input.
 *
 * Input: 1 byte selector, 2 bytes HTTP status, the body. Selector % 8:
 * 0..5 flow_response of that flow (transport from selector / 8 % 4);
 * 6 webhook_verify + webhook_parse of the body signed with a valid
 * X-BancoX-Signature; 7 webhook_parse of the body without verifying.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/hmac.h>

#include "arena.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sign(const uint8_t *body, size_t len, char *out, size_t cap)
{
    unsigned char mac[32];
    unsigned int mac_len = 0;
    char t[32];
    int tn = snprintf(t, sizeof t, "%d.", FUZZ_NOW);
    unsigned char buf[4096 + 32];
    if (len > 4096) {
        out[0] = '\0';
        return;
    }
    memcpy(buf, t, (size_t)tn);
    if (len)
        memcpy(buf + tn, body, len);
    HMAC(EVP_sha256(), FUZZ_BANCOX_SECRET, (int)strlen(FUZZ_BANCOX_SECRET), buf, (size_t)tn + len,
         mac, &mac_len);
    int o = snprintf(out, cap, "t=%d,v1=", FUZZ_NOW);
    for (unsigned i = 0; i < mac_len && (size_t)o + 3 < cap; i++)
        o += snprintf(out + o, cap - (size_t)o, "%02x", mac[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *state = NULL;
    const pagoflex_connector *d = fuzz_bancox(&state);
    if (size < 3)
        return 0;
    unsigned sel = data[0] % 8;
    const uint8_t *body = data + 3;
    size_t blen = size - 3;
    pagoflex_arena *arena = arena_new();
    if (!arena)
        return 0;
    if (sel < PAGOFLEX_FLOW_COUNT) {
        pagoflex_payment pay = {.id = "pay_fuzz", .amount = 1050, .currency = "ARS",
                                .webhook_url = "http://127.0.0.1/webhooks/bancox",
                                .provider_reference_id = "bx_fuzz"};
        pagoflex_flow_input in = {.size = sizeof in, .flow = (pagoflex_flow)sel, .payment = &pay,
                                  .operation_id = "op_fuzz", .capture = 1, .amount = 500,
                                  .refund_id = "ref_fuzz", .refund_provider_reference_id = "rf_fuzz"};
        pagoflex_http_response resp = {.transport = (pagoflex_transport)((data[0] / 8) % 4)};
        resp.status = resp.transport == PAGOFLEX_TRANSPORT_OK ? (data[1] << 8 | data[2]) % 600 : 0;
        resp.body = body;
        resp.body_len = blen;
        pagoflex_flow_result res = {.size = sizeof res};
        int rc = d->flow_response(state, &in, &resp, arena, &res);
        /* The rule the fuzzer holds: an answer that proves nothing never fails a payment. */
        if (rc == PAGOFLEX_OK && res.state == PAGOFLEX_STATE_FAILED &&
            (resp.transport != PAGOFLEX_TRANSPORT_OK || resp.status == 429 || resp.status >= 500))
            __builtin_trap();
    } else {
        char sig[160];
        fuzz_sign(body, blen, sig, sizeof sig);
        pagoflex_header h[2] = {{"Content-Type", "application/json"}, {"X-BancoX-Signature", sig}};
        pagoflex_webhook_request req = {.size = sizeof req, .method = "POST",
                                        .path = "/webhooks/bancox", .query = "", .headers = h,
                                        .header_count = 2, .body = body, .body_len = blen};
        pagoflex_webhook_parsed parsed = {.size = sizeof parsed};
        if (sel == 7 || d->webhook_verify(state, &req, arena) == PAGOFLEX_OK)
            (void)d->webhook_parse(state, &req, arena, &parsed);
    }
    arena_free(arena);
    return 0;
}
