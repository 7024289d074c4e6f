/* fuzz_bancox_response - Banco X handle_response on any bank answer.
 * Input: 1 byte transport kind, 2 bytes HTTP status, the body. */
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *state = NULL;
    const pagoflex_connector *d = fuzz_bancox(&state);
    if (size < 3)
        return 0;
    pagoflex_payment pay = {.id = "pay_fuzz", .amount = 1050, .currency = "ARS",
                            .reference = "ref", .webhook_url = "http://127.0.0.1/webhooks/bancox"};
    pagoflex_http_response resp;
    memset(&resp, 0, sizeof resp);
    resp.transport = (pagoflex_transport)(data[0] % 4);
    resp.status = resp.transport == PAGOFLEX_TRANSPORT_OK ? (data[1] << 8 | data[2]) % 600 : 0;
    resp.body = data + 3;
    resp.body_len = size - 3;
    pagoflex_arena *arena = arena_new();
    if (!arena)
        return 0;
    pagoflex_payment_result res;
    memset(&res, 0, sizeof res);
    (void)d->handle_response(state, &pay, &resp, arena, &res);
    arena_free(arena);
    return 0;
}
