/* idempotency.c - Idempotency-Key of POST /v1/payments. */
#include "idempotency.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "store_idem.h"

#define IDEMPOTENCY_POLL_MS 25

bool idempotency_key_valid(const char *key)
{
    size_t n = key ? strnlen(key, IDEMPOTENCY_KEY_MAX + 1) : 0;
    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

int idempotency_request_hash(const char *body, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[32];
    if (!EVP_Digest(body ? body : "", body ? len : 0, digest, NULL, EVP_sha256(), NULL))
        return -1;
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

static long idempotency_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

idempotency_verdict idempotency_await(store *st, const char *scope, const char *key,
                                      const char *request_hash, long wait_ms, long stale_ms,
                                      pagoflex_arena *arena, int *status, const char **response,
                                      const char **payment_id)
{
    long until = idempotency_now_ms() + wait_ms;
    for (;;) {
        store_idem_key k;
        store_result sr = store_idem_get(st, scope, key, stale_ms, arena, &k);
        if (sr == STORE_NOT_FOUND)
            return IDEMPOTENCY_GONE;
        if (sr != STORE_OK)
            return IDEMPOTENCY_UNAVAILABLE;
        if (strcmp(k.request_hash, request_hash) != 0)
            return IDEMPOTENCY_MISMATCH;
        if (k.status && k.response) {
            *status = k.status;
            *response = k.response;
            return IDEMPOTENCY_REPLAY;
        }
        if (k.stale && k.payment_id) {
            *payment_id = k.payment_id;
            return IDEMPOTENCY_STALE;
        }
        if (idempotency_now_ms() >= until)
            return IDEMPOTENCY_BUSY;
        struct timespec nap = {0, IDEMPOTENCY_POLL_MS * 1000000L};
        nanosleep(&nap, NULL);
    }
}
