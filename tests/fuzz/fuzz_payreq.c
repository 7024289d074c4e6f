/* fuzz_payreq - the body of POST /v1/payments: depth check, then payreq_parse. */
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "http_limits.h"
#include "payreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pagoflex_arena *arena = arena_new();
    if (!arena)
        return 0;
    payreq pr;
    payreq_error err;
    if (!http_limits_json_too_deep((const char *)data, size, 32))
        (void)payreq_parse((const char *)data, size, arena, &pr, &err);
    arena_free(arena);
    return 0;
}
