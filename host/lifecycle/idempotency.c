/* idempotency.c - Idempotency-Key of POST /v1/payments: the key's rules,
 * and the poller thread that waiting requests hand their wait to. */
#include "idempotency.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "store_idem.h"

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

static int idempotency_sha256_hex(const char *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[32];
    if (!EVP_Digest(data, len, digest, NULL, EVP_sha256(), NULL))
        return -1;
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

int idempotency_request_hash(const char *body, size_t len, idempotency_hash *out)
{
    if (!body)
        len = 0;
    if (idempotency_sha256_hex(body ? body : "", len, out->bytes) != 0)
        return -1;
    json_t *doc = len == 0 ? json_object() : json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!doc) { /* not JSON: refused later; the bytes are all there is */
        memcpy(out->canonical, out->bytes, sizeof out->canonical);
        return 0;
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(doc);
    int rc = text ? idempotency_sha256_hex(text, strlen(text), out->canonical) : -1;
    free(text);
    return rc;
}

bool idempotency_hash_matches(const idempotency_hash *h, const char *stored)
{
    return stored && (strcmp(stored, h->canonical) == 0 || strcmp(stored, h->bytes) == 0);
}

long long idempotency_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

idempotency_verdict idempotency_check(store *st, const char *scope, const char *key,
                                      const idempotency_hash *request_hash,
                                      long stale_ms, pagoflex_arena *arena, int *status,
                                      const char **response, const char **payment_id)
{
    store_idem_key k;
    store_result sr = store_idem_get(st, scope, key, stale_ms, arena, &k);
    if (sr == STORE_NOT_FOUND)
        return IDEMPOTENCY_GONE;
    if (sr != STORE_OK)
        return IDEMPOTENCY_UNAVAILABLE;
    if (!idempotency_hash_matches(request_hash, k.request_hash))
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
    return IDEMPOTENCY_BUSY;
}

struct idempotency_waiter {
    store *st;
    long poll_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    idempotency_wait *waits; /* submitted, not yet decided (under lock) */
    bool stopping;           /* under lock */
    bool stopped;            /* the thread is gone: waits end at once (under lock) */
};

/* Read the key of `wt` once; true (and the outputs written) when the wait
 * is over. */
static bool idempotency_poll(idempotency_waiter *w, idempotency_wait *wt, long long now)
{
    int status = 0;
    const char *response = NULL, *payment_id = NULL;
    idempotency_verdict v = idempotency_check(w->st, wt->scope, wt->key, wt->request_hash, wt->stale_ms,
                                              wt->arena, &status, &response, &payment_id);
    if (v == IDEMPOTENCY_BUSY && now < wt->until_ms)
        return false;
    wt->verdict = v;
    wt->status = status;
    wt->response = response;
    wt->payment_id = payment_id;
    return true;
}

/* End a wait: after done, the wait belongs to its caller again. */
static void idempotency_finish(idempotency_wait *wt)
{
    wt->next = NULL;
    wt->done(wt->arg);
}

static void *idempotency_main(void *arg)
{
    idempotency_waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        idempotency_wait *list = w->waits, *keep = NULL;
        w->waits = NULL;
        pthread_mutex_unlock(&w->lock);
        while (list) {
            idempotency_wait *wt = list;
            list = wt->next;
            if (idempotency_poll(w, wt, idempotency_now_ms())) {
                idempotency_finish(wt);
            } else {
                wt->next = keep;
                keep = wt;
            }
        }
        pthread_mutex_lock(&w->lock);
        while (keep) { /* back on the list, beside waits submitted meanwhile */
            idempotency_wait *wt = keep;
            keep = wt->next;
            wt->next = w->waits;
            w->waits = wt;
        }
        if (w->stopping)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (w->poll_ms % 1000) * 1000000L;
        until.tv_sec += w->poll_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
    }
    /* Stopping: every wait still running is told to retry. */
    w->stopped = true;
    idempotency_wait *list = w->waits;
    w->waits = NULL;
    pthread_mutex_unlock(&w->lock);
    while (list) {
        idempotency_wait *wt = list;
        list = wt->next;
        wt->verdict = IDEMPOTENCY_BUSY;
        idempotency_finish(wt);
    }
    return NULL;
}

idempotency_waiter *idempotency_waiter_start(store *st, long poll_ms)
{
    idempotency_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->st = st;
    w->poll_ms = poll_ms > 0 ? poll_ms : 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&w->thread, NULL, idempotency_main, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void idempotency_wait_start(idempotency_waiter *w, idempotency_wait *wt)
{
    wt->next = NULL;
    if (w) {
        pthread_mutex_lock(&w->lock);
        if (!w->stopped && !w->stopping) {
            wt->next = w->waits;
            w->waits = wt;
            pthread_mutex_unlock(&w->lock);
            return;
        }
        pthread_mutex_unlock(&w->lock);
    }
    wt->verdict = IDEMPOTENCY_BUSY;
    idempotency_finish(wt);
}

void idempotency_waiter_stop(idempotency_waiter *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    bool first = !w->stopping;
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (first)
        pthread_join(w->thread, NULL);
}

void idempotency_waiter_free(idempotency_waiter *w)
{
    if (!w)
        return;
    idempotency_waiter_stop(w);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
