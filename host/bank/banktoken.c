/* banktoken.c - one account's access token, shared by the worker's threads. */
#include "banktoken.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "arena.h"

struct banktoken {
    pthread_mutex_t lock;
    pthread_cond_t ended; /* a fetch ended (blocked callers) */
    char *value;          /* secret; NULL until the first fetch */
    int64_t expires_at;   /* 0: until refused */
    int64_t fetched_at;
    uint64_t gen;         /* 1 for the first token, +1 per new one */
    bool fetching;
    uint64_t failures;    /* fetches that ended without a token */
    int64_t failed_at;
    banktoken_waiter *waiters;
    atomic_long fetches;
};

banktoken *banktoken_new(void)
{
    banktoken *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->ended, NULL);
    return t;
}

/* True if the held token may still be used at `now` (under the lock). */
static bool banktoken_valid(const banktoken *t, int64_t now, uint64_t refused)
{
    if (!t->value || t->gen == refused)
        return false;
    if (t->expires_at == 0)
        return true;
    int64_t margin = (t->expires_at - t->fetched_at) / 10;
    if (margin > 30)
        margin = 30;
    if (margin < 0)
        margin = 0;
    return now < t->expires_at - margin;
}

banktoken_verdict banktoken_acquire(banktoken *t, int64_t now, uint64_t refused, pagoflex_arena *arena,
                                    char **value, uint64_t *gen, banktoken_waiter *w)
{
    banktoken_verdict v;
    pthread_mutex_lock(&t->lock);
    uint64_t failures = t->failures;
    for (;;) {
        if (banktoken_valid(t, now, refused)) {
            char *copy = arena ? arena_strdup(arena, t->value) : NULL;
            if (arena && !copy) {
                v = BANKTOKEN_FAILED;
                break;
            }
            if (value)
                *value = copy;
            if (gen)
                *gen = t->gen;
            v = BANKTOKEN_READY;
            break;
        }
        if (t->failures != failures ||
            (t->failures && !t->fetching && now < t->failed_at + BANKTOKEN_RETRY_S &&
             t->failed_at >= t->fetched_at)) {
            v = BANKTOKEN_FAILED;
            break;
        }
        if (!t->fetching) {
            t->fetching = true;
            v = BANKTOKEN_FETCH;
            break;
        }
        if (w) {
            w->next = t->waiters;
            t->waiters = w;
            v = BANKTOKEN_PARKED;
            break;
        }
        pthread_cond_wait(&t->ended, &t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return v;
}

/* End a fetch (under the lock); wake everyone after unlocking. */
static void banktoken_end(banktoken *t)
{
    t->fetching = false;
    banktoken_waiter *list = t->waiters;
    t->waiters = NULL;
    pthread_cond_broadcast(&t->ended);
    pthread_mutex_unlock(&t->lock);
    while (list) {
        banktoken_waiter *next = list->next; /* ready() may reuse its waiter */
        list->ready(list->arg);
        list = next;
    }
}

int banktoken_store(banktoken *t, const char *value, int64_t expires_at, int64_t now)
{
    char *copy = value ? strdup(value) : NULL;
    if (!copy) {
        banktoken_failed(t, now);
        return -1;
    }
    pthread_mutex_lock(&t->lock);
    if (t->value) {
        OPENSSL_cleanse(t->value, strlen(t->value));
        free(t->value);
    }
    t->value = copy;
    t->expires_at = expires_at;
    t->fetched_at = now;
    t->gen++;
    atomic_fetch_add(&t->fetches, 1);
    banktoken_end(t);
    return 0;
}

void banktoken_failed(banktoken *t, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    t->failures++;
    t->failed_at = now;
    banktoken_end(t);
}

long banktoken_fetches(const banktoken *t)
{
    return t ? atomic_load(&((banktoken *)t)->fetches) : 0;
}

void banktoken_free(banktoken *t)
{
    if (!t)
        return;
    if (t->value) {
        OPENSSL_cleanse(t->value, strlen(t->value));
        free(t->value);
    }
    pthread_cond_destroy(&t->ended);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
