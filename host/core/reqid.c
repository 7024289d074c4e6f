/* reqid.c - request ids (X-Request-Id) and W3C trace context. */
#include "reqid.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "hex.h"

static _Thread_local const char *reqid_id;
static _Thread_local const char *reqid_tp;

/* n random bytes, never failing: RAND_bytes, else the clock and a counter
 * (an id must be unique enough to find log lines, not secret). */
static void reqid_random(unsigned char *out, size_t n)
{
    static atomic_ullong counter;
    if (RAND_bytes(out, (int)n) == 1)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long mix[3] = {(unsigned long long)ts.tv_sec, (unsigned long long)ts.tv_nsec,
                                 atomic_fetch_add(&counter, 1)};
    for (size_t i = 0; i < n; i++)
        out[i] = ((const unsigned char *)mix)[i % sizeof mix];
}

bool reqid_accept(const char *incoming, char out[REQID_MAX + 1])
{
    size_t len = incoming ? strlen(incoming) : 0;
    bool ok = len >= 1 && len <= REQID_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)incoming[i];
        ok = c > 0x20 && c < 0x7f && c != '"' && c != '\\';
    }
    if (ok) {
        memcpy(out, incoming, len + 1);
        return true;
    }
    unsigned char raw[16];
    reqid_random(raw, sizeof raw);
    hex_encode(raw, sizeof raw, out);
    return false;
}

/* len lower-case hex digits, not all zero. */
static bool reqid_hex(const char *s, size_t len)
{
    bool nonzero = false;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

bool reqid_traceparent_valid(const char *tp)
{
    return tp && strlen(tp) == REQID_TRACEPARENT && strncmp(tp, "00-", 3) == 0 && reqid_hex(tp + 3, 32) &&
           tp[35] == '-' && reqid_hex(tp + 36, 16) && tp[52] == '-' &&
           (reqid_hex(tp + 53, 2) || strncmp(tp + 53, "00", 2) == 0);
}

void reqid_traceparent_child(const char *tp, char out[REQID_TRACEPARENT + 1])
{
    unsigned char span[8];
    char span_hex[17];
    do
        reqid_random(span, sizeof span);
    while (!memcmp(span, "\0\0\0\0\0\0\0\0", 8));
    hex_encode(span, sizeof span, span_hex);
    snprintf(out, REQID_TRACEPARENT + 1, "00-%.32s-%s-%.2s", tp + 3, span_hex, tp + 53);
}

void reqid_set_current(const char *id, const char *traceparent)
{
    reqid_id = id;
    reqid_tp = traceparent;
}

const char *reqid_current(void)
{
    return reqid_id;
}

const char *reqid_current_traceparent(void)
{
    return reqid_tp;
}
