/* sink.c: a fast receiver of Pagoflex's notifications (Standard Webhooks),
 * for the benchmark: every delivery is verified and counted, nothing else.
 *
 * A delivery carries webhook-id, webhook-timestamp (Unix seconds) and
 * webhook-signature ("v1,<base64>" entries, space-separated); the signed
 * content is "<id>.<timestamp>.<body>", HMAC-SHA256 under the endpoint's
 * secret "whsec_<base64 key>". Once a secret is set (POST /_sim/sink), a
 * delivery is accepted when one v1 entry matches and the timestamp is
 * within SINK_TOLERANCE_S of our clock, as the spec asks of receivers;
 * anything else is refused and counted as bad. Before a secret is set
 * every delivery is accepted unverified. */
#include "banksim.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SINK_TOLERANCE_S 300
#define SINK_KEY_MAX 256
#define SINK_SIG_MAX 64 /* base64 of a SHA-256 MAC is 44 characters */

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char sink_key[SINK_KEY_MAX]; /* under sink_lock; never logged */
static size_t sink_key_len;                  /* 0: not verifying */
static struct bs_map *sink_seen;             /* webhook-ids accepted, under sink_lock */
static EVP_MAC *sink_hmac;
static atomic_ullong n_received, n_accepted, n_distinct, n_bad;
static char sink_mark[] = "seen"; /* the value of every sink_seen entry */

int sink_start(void)
{
    sink_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    sink_seen = bs_map_new();
    if (!sink_hmac || !sink_seen) {
        bs_err("sink: cannot set up HMAC-SHA256 or its table");
        sink_stop();
        return -1;
    }
    return 0;
}

void sink_stop(void)
{
    EVP_MAC_free(sink_hmac);
    sink_hmac = NULL;
    bs_map_free(sink_seen, NULL);
    sink_seen = NULL;
    OPENSSL_cleanse(sink_key, sizeof sink_key);
    sink_key_len = 0;
}

const char *sink_set_secret(const char *secret)
{
    static const char prefix[] = "whsec_";
    unsigned char key[SINK_KEY_MAX + 3];
    size_t b64len, pad = 0;
    int n;

    if (strncmp(secret, prefix, sizeof prefix - 1) != 0)
        return "the secret must start with whsec_";
    secret += sizeof prefix - 1;
    b64len = strlen(secret);
    if (b64len == 0 || b64len % 4 != 0 || b64len / 4 * 3 > SINK_KEY_MAX)
        return "the secret's key must be base64 of 1 to 256 bytes";
    n = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)b64len);
    if (n < 0)
        return "the secret's key is not base64";
    while (pad < 2 && secret[b64len - 1 - pad] == '=')
        pad++;
    pthread_mutex_lock(&sink_lock);
    memcpy(sink_key, key, (size_t)n - pad);
    sink_key_len = (size_t)n - pad;
    pthread_mutex_unlock(&sink_lock);
    OPENSSL_cleanse(key, sizeof key);
    return NULL;
}

/* Base64 of HMAC-SHA256(key, "<id>.<ts>.<body>") into out (>= SINK_SIG_MAX
 * bytes). Returns 0 or -1. */
static int sink_sign(const unsigned char *key, size_t key_len, const char *id, const char *ts,
                     const char *body, size_t len, char *out)
{
    unsigned char mac[32];
    const struct bs_part parts[] = {{id, strlen(id)}, {ts, strlen(ts)}, {body, len}};
    if (bs_hmac_sha256_dotted(sink_hmac, key, key_len, parts, 3, mac) != 0)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, mac, (int)sizeof mac);
    return 0;
}

/* True when one "v1,<sig>" entry of the space-separated header is want. */
static bool sink_signature_matches(const char *header, const char *want)
{
    size_t want_len = strlen(want);
    bool match = false;

    while (*header) {
        while (*header == ' ')
            header++;
        size_t n = strcspn(header, " ");
        if (n == 3 + want_len && strncmp(header, "v1,", 3) == 0 &&
            CRYPTO_memcmp(header + 3, want, want_len) == 0)
            match = true;
        header += n;
    }
    return match;
}

/* True when ts is decimal Unix seconds within SINK_TOLERANCE_S of now. */
static bool sink_timestamp_fresh(const char *ts)
{
    char *end;
    long long t = strtoll(ts, &end, 10);
    long long now = (long long)bs_unix_now();
    return *ts && !*end && t > now - SINK_TOLERANCE_S && t < now + SINK_TOLERANCE_S;
}

unsigned sink_receive(const char *id, const char *ts, const char *signature, const char *body, size_t len)
{
    unsigned char key[SINK_KEY_MAX];
    size_t key_len;
    char want[SINK_SIG_MAX];
    bool ok = true;

    atomic_fetch_add(&n_received, 1);
    if (!id || !*id || !ts || !signature) {
        atomic_fetch_add(&n_bad, 1);
        return 400;
    }
    pthread_mutex_lock(&sink_lock);
    key_len = sink_key_len;
    memcpy(key, sink_key, key_len);
    pthread_mutex_unlock(&sink_lock);
    if (key_len) {
        ok = sink_timestamp_fresh(ts) && sink_sign(key, key_len, id, ts, body ? body : "", len, want) == 0 &&
             sink_signature_matches(signature, want);
        OPENSSL_cleanse(key, sizeof key);
    }
    if (!ok) {
        atomic_fetch_add(&n_bad, 1);
        return 401;
    }
    atomic_fetch_add(&n_accepted, 1);
    pthread_mutex_lock(&sink_lock);
    if (!bs_map_get(sink_seen, id) && bs_map_put(sink_seen, id, sink_mark) == 0)
        atomic_fetch_add(&n_distinct, 1);
    pthread_mutex_unlock(&sink_lock);
    return 204;
}

void sink_stats(void *json_obj)
{
    json_t *o = json_obj;
    bool verifying;

    pthread_mutex_lock(&sink_lock);
    verifying = sink_key_len > 0;
    pthread_mutex_unlock(&sink_lock);
    json_object_set_new(o, "received", json_integer((json_int_t)atomic_load(&n_received)));
    json_object_set_new(o, "accepted", json_integer((json_int_t)atomic_load(&n_accepted)));
    json_object_set_new(o, "distinct", json_integer((json_int_t)atomic_load(&n_distinct)));
    json_object_set_new(o, "bad", json_integer((json_int_t)atomic_load(&n_bad)));
    json_object_set_new(o, "verifying", json_boolean(verifying));
}
