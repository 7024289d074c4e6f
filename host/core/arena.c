/* arena.c - bump allocator: a list of blocks wiped and freed together. */
#include "arena.h"

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
        free(b);
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
        b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
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
