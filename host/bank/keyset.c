/* keyset.c - one account's webhook key set, shared by the worker's threads. */
#include "keyset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct keyset {
    pthread_mutex_t lock;
    pthread_cond_t ended;
    unsigned char *keys;
    size_t len;
    uint64_t gen;
    bool fetching;
    bool attempted;     /* the first fetch was made */
    bool refetched;     /* a refetch was made, at refetched_at */
    int64_t refetched_at;
    long fetches;
};

keyset *keyset_new(void)
{
    keyset *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->ended, NULL);
    return k;
}

int keyset_get(keyset *k, pagoflex_arena *arena, unsigned char **keys, size_t *len, uint64_t *gen)
{
    int rc = 0;
    unsigned char *copy = NULL;
    pthread_mutex_lock(&k->lock);
    if (k->keys && !(copy = arena_alloc(arena, k->len + 1)))
        rc = -1;
    if (copy)
        memcpy(copy, k->keys, k->len);
    if (rc == 0) {
        *keys = copy;
        *len = copy ? k->len : 0;
        *gen = k->gen;
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

bool keyset_begin(keyset *k, int64_t now, uint64_t seen)
{
    bool go = false;
    pthread_mutex_lock(&k->lock);
    while (k->fetching)
        pthread_cond_wait(&k->ended, &k->lock);
    bool first = !k->attempted;
    bool may_refetch = !k->refetched || now >= k->refetched_at + KEYSET_MIN_REFETCH_S;
    if (k->gen == seen && (first || may_refetch)) {
        if (!first) {
            k->refetched = true;
            k->refetched_at = now;
        }
        k->attempted = true;
        k->fetching = true;
        k->fetches++;
        go = true;
    }
    pthread_mutex_unlock(&k->lock);
    return go;
}

void keyset_end(keyset *k, const unsigned char *body, size_t len)
{
    unsigned char *copy = body ? malloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, body, len);
        copy[len] = '\0';
    }
    pthread_mutex_lock(&k->lock);
    if (copy) {
        free(k->keys);
        k->keys = copy;
        k->len = len;
        k->gen++;
    }
    k->fetching = false;
    pthread_cond_broadcast(&k->ended);
    pthread_mutex_unlock(&k->lock);
}

long keyset_fetches(const keyset *k)
{
    long n;
    if (!k)
        return 0;
    pthread_mutex_lock(&((keyset *)k)->lock);
    n = k->fetches;
    pthread_mutex_unlock(&((keyset *)k)->lock);
    return n;
}

void keyset_free(keyset *k)
{
    if (!k)
        return;
    free(k->keys);
    pthread_cond_destroy(&k->ended);
    pthread_mutex_destroy(&k->lock);
    free(k);
}
