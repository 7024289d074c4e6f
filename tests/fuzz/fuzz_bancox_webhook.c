/* fuzz_bancox_webhook - Banco X verify_webhook and parse_webhook.
 *
 * Input: the X-BancoX-Signature header value, a newline, the body. When the
 * first byte is '!', the header is replaced by a valid signature of the
 * body, so parse_webhook also sees bodies that pass verification.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    unsigned char *msg = malloc((size_t)tn + len + 1);
    if (!msg) {
        out[0] = '\0';
        return;
    }
    memcpy(msg, t, (size_t)tn);
    if (len)
        memcpy(msg + tn, body, len);
    HMAC(EVP_sha256(), FUZZ_BANCOX_SECRET, (int)strlen(FUZZ_BANCOX_SECRET), msg, (size_t)tn + len,
         mac, &mac_len);
    free(msg);
    int o = snprintf(out, cap, "t=%d,v1=", FUZZ_NOW);
    for (unsigned i = 0; i < mac_len && (size_t)o + 3 < cap; i++)
        o += snprintf(out + o, cap - (size_t)o, "%02x", mac[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *state = NULL;
    const pagoflex_connector *d = fuzz_bancox(&state);
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = size - hlen - (nl ? 1 : 0);
    char header[512];
    if (hlen > 0 && data[0] == '!') {
        fuzz_sign(body, blen, header, sizeof header);
    } else {
        size_t n = hlen < sizeof header - 1 ? hlen : sizeof header - 1;
        memcpy(header, data, n);
        header[n] = '\0';
    }
    pagoflex_header headers[2] = {{"Content-Type", "application/json"},
                                  {"X-BancoX-Signature", header}};
    pagoflex_arena *arena = arena_new();
    if (!arena)
        return 0;
    if (d->verify_webhook(state, headers, 2, body, blen, arena) == PAGOFLEX_OK || data[0] == '?') {
        pagoflex_webhook_event ev;
        memset(&ev, 0, sizeof ev);
        (void)d->parse_webhook(state, body, blen, arena, &ev);
    }
    arena_free(arena);
    return 0;
}
