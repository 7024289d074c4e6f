/* arena.c - bump allocator: a list of blocks wiped and freed together. */
#include "arena.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define ARENA_BLOCK 4096
#define ARENA_ALIGN 16

struct arena_block {
    struct arena_block *next;
    size_t cap;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct pagoflex_arena {
    struct arena_block *head;
    size_t total;
};

/* Each thread keeps a few wiped blocks of the usual size for its next
 * arenas. Not for speed of the bump itself: glibc walks and merges every
 * small chunk freed since (malloc_consolidate) on each allocation of 1 KiB
 * or more, and a request made its arena's first block right after the JSON
 * of the one before was freed (11% of pagoflexd's CPU on webhooks). A block
 * freed on another thread joins that thread's cache. */
enum { ARENA_CACHED_BLOCKS = 8 };

typedef struct arena_cache {
    struct arena_block *blocks;
    int n;
} arena_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_ok;

static void cache_drop(void *p)
{
    arena_cache *c = p;
    while (c->blocks) {
        struct arena_block *next = c->blocks->next;
        free(c->blocks);
        c->blocks = next;
    }
    free(c);
}

static void cache_init(void)
{
    cache_ok = pthread_key_create(&cache_key, cache_drop) == 0;
}

/* This thread's cache; NULL when there is none (no memory): blocks then go
 * straight to malloc and free. */
static arena_cache *cache_get(void)
{
    pthread_once(&cache_once, cache_init);
    if (!cache_ok)
        return NULL;
    arena_cache *c = pthread_getspecific(cache_key);
    if (!c && (c = calloc(1, sizeof *c)) && pthread_setspecific(cache_key, c) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

pagoflex_arena *arena_new(void)
{
    return calloc(1, sizeof(struct pagoflex_arena));
}

void arena_free(pagoflex_arena *arena)
{
    if (!arena)
        return;
    struct arena_block *b = arena->head;
    while (b) {
        struct arena_block *next = b->next;
        /* A call's arena holds what the call carried: the bank API key in
         * an Authorization header, card data, bank answers. Wiped before
         * the allocator can hand it to anyone else (not optimised away). */
        OPENSSL_cleanse(b->data, b->used);
        arena_cache *c = b->cap == ARENA_BLOCK ? cache_get() : NULL;
        if (c && c->n < ARENA_CACHED_BLOCKS) {
            b->next = c->blocks;
            c->blocks = b;
            c->n++;
        } else {
            free(b);
        }
        b = next;
    }
    free(arena);
}

void *arena_alloc(pagoflex_arena *arena, size_t size)
{
    if (!arena)
        return NULL;
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size)
        return NULL; /* overflow */
    struct arena_block *b = arena->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        if (cap > SIZE_MAX - sizeof(*b))
            return NULL;
        arena_cache *c = cap == ARENA_BLOCK ? cache_get() : NULL;
        if (c && c->blocks) {
            b = c->blocks;
            c->blocks = b->next;
            c->n--;
        } else if (!(b = malloc(sizeof(*b) + cap))) {
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        b->next = arena->head;
        arena->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    arena->total += size;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(pagoflex_arena *arena, const char *s, size_t n)
{
    if (!s)
        return NULL;
    size_t len = strnlen(s, n);
    char *p = arena_alloc(arena, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(pagoflex_arena *arena, const char *s)
{
    return s ? arena_strndup(arena, s, strlen(s)) : NULL;
}

char *arena_vprintf(pagoflex_arena *arena, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *p = arena_alloc(arena, (size_t)n + 1);
    if (p)
        vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *arena_printf(pagoflex_arena *arena, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(arena, fmt, ap);
    va_end(ap);
    return p;
}

size_t arena_used(const pagoflex_arena *arena)
{
    return arena ? arena->total : 0;
}
