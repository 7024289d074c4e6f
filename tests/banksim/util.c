/* util.c: clock, random numbers, ids, a hash map, a min-heap and logging. */
#include "banksim.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bs_config bs_cfg;

static pthread_mutex_t tunables_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bs_tunables tunables;
static bool tunables_set_once;

void bs_tunables_get(struct bs_tunables *out)
{
    pthread_mutex_lock(&tunables_lock);
    *out = tunables_set_once ? tunables : bs_cfg.initial;
    pthread_mutex_unlock(&tunables_lock);
}

void bs_tunables_set(const struct bs_tunables *in)
{
    pthread_mutex_lock(&tunables_lock);
    tunables = *in;
    tunables_set_once = true;
    pthread_mutex_unlock(&tunables_lock);
}

/* ------------------------------------------------------------------ time */

uint64_t bs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t bs_unix_now(void)
{
    return (int64_t)time(NULL);
}

void bs_rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* -------------------------------------------------------------- random */

/* splitmix64: small, good enough for fault injection, reproducible with
 * --seed. Ids do not use it (see bs_random_id). */
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rng_state;

void bs_rng_seed(uint64_t seed)
{
    pthread_mutex_lock(&rng_lock);
    rng_state = seed;
    pthread_mutex_unlock(&rng_lock);
}

static uint64_t rng_next(void)
{
    pthread_mutex_lock(&rng_lock);
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    pthread_mutex_unlock(&rng_lock);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double bs_rng_double(void)
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

bool bs_rng_chance(double p)
{
    if (p <= 0.0)
        return false;
    if (p >= 1.0)
        return true;
    return bs_rng_double() < p;
}

int bs_random_id(const char *prefix, char *buf, size_t len)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    size_t plen = strlen(prefix);
    size_t have = 0;
    unsigned char raw[64];

    if (len < plen + 26 + 1)
        return -1;
    memcpy(buf, prefix, plen);
    /* Rejection sampling keeps every character uniform: 252 = 7 * 36. */
    while (have < 26) {
        if (RAND_bytes(raw, (int)sizeof raw) != 1)
            return -1;
        for (size_t i = 0; i < sizeof raw && have < 26; i++)
            if (raw[i] < 252)
                buf[plen + have++] = alphabet[raw[i] % 36];
    }
    buf[plen + 26] = '\0';
    return 0;
}

/* ----------------------------------------------------------------- log */

static void log_v(const char *fmt, va_list ap)
{
    char line[1024];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    /* One fprintf per line so lines from different threads do not mix. */
    fprintf(stderr, "banksim: %s\n", line);
}

void bs_log(const char *fmt, ...)
{
    va_list ap;
    if (bs_cfg.quiet)
        return;
    va_start(ap, fmt);
    log_v(fmt, ap);
    va_end(ap);
}

void bs_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------- hash map */

struct map_entry {
    struct map_entry *next;
    uint64_t hash;
    void *value;
    char key[];
};

struct bs_map {
    struct map_entry **buckets;
    size_t nbuckets, count;
};

static uint64_t map_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

struct bs_map *bs_map_new(void)
{
    struct bs_map *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    m->nbuckets = 1024;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets)
        goto fail;
    return m;
fail:
    free(m);
    return NULL;
}

static struct map_entry *map_find(const struct bs_map *m, const char *key, uint64_t h)
{
    for (struct map_entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

void *bs_map_get(const struct bs_map *m, const char *key)
{
    struct map_entry *e = map_find(m, key, map_hash(key));
    return e ? e->value : NULL;
}

/* Doubles the bucket array; on allocation failure the map stays as is. */
static void map_grow(struct bs_map *m)
{
    size_t n = m->nbuckets * 2;
    struct map_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct map_entry *e = m->buckets[i];
        while (e) {
            struct map_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int bs_map_put(struct bs_map *m, const char *key, void *value)
{
    uint64_t h = map_hash(key);
    struct map_entry *e = map_find(m, key, h);
    size_t klen;

    if (e) {
        e->value = value;
        return 0;
    }
    klen = strlen(key);
    e = malloc(sizeof *e + klen + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    if (++m->count > m->nbuckets)
        map_grow(m);
    return 0;
}

void bs_map_each(const struct bs_map *m, void (*fn)(void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct map_entry *e = m->buckets[i]; e; e = e->next)
            fn(e->value, arg);
}

void bs_map_free(struct bs_map *m, void (*free_value)(void *value))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct map_entry *e = m->buckets[i];
        while (e) {
            struct map_entry *next = e->next;
            if (free_value)
                free_value(e->value);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

/* ---------------------------------------------------------------- heap */

static void heap_swap(struct bs_heap *h, size_t a, size_t b)
{
    struct bs_heap_node t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
}

int bs_heap_push(struct bs_heap *h, uint64_t due_ms, void *item)
{
    size_t i;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct bs_heap_node *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    i = h->n++;
    h->v[i].due_ms = due_ms;
    h->v[i].item = item;
    while (i > 0 && h->v[(i - 1) / 2].due_ms > h->v[i].due_ms) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

uint64_t bs_heap_peek_due(const struct bs_heap *h)
{
    return h->n ? h->v[0].due_ms : UINT64_MAX;
}

void *bs_heap_pop(struct bs_heap *h)
{
    void *item;
    size_t i = 0;
    if (!h->n)
        return NULL;
    item = h->v[0].item;
    h->v[0] = h->v[--h->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l].due_ms < h->v[m].due_ms)
            m = l;
        if (r < h->n && h->v[r].due_ms < h->v[m].due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(h, i, m);
        i = m;
    }
    return item;
}

void bs_heap_free(struct bs_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

int bs_hmac_sha256_dotted(EVP_MAC *hmac, const unsigned char *key, size_t key_len, const struct bs_part *parts,
                          size_t n, unsigned char out[32])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    int rc = -1;
    if (!ctx || !EVP_MAC_init(ctx, key, key_len, params))
        goto done;
    for (size_t i = 0; i < n; i++)
        if ((i && !EVP_MAC_update(ctx, (const unsigned char *)".", 1)) ||
            !EVP_MAC_update(ctx, parts[i].data, parts[i].len))
            goto done;
    if (!EVP_MAC_final(ctx, mac, &maclen, sizeof mac) || maclen != 32)
        goto done;
    memcpy(out, mac, 32);
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    return rc;
}
