/* arena.h - per-call bump allocator shared by host and plugins. */
#ifndef PAGOFLEX_ARENA_H
#define PAGOFLEX_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include <pagoflex/connector.h>

/* Create an empty arena. NULL on allocation failure. */
pagoflex_arena *arena_new(void);

/* Wipe (OPENSSL_cleanse) and free everything allocated in the arena, then
 * the arena. NULL is a no-op. */
void arena_free(pagoflex_arena *arena);

/* Zeroed block of `size` bytes, 16-byte aligned; NULL on failure. */
void *arena_alloc(pagoflex_arena *arena, size_t size);

/* Copies of strings in the arena; NULL if s is NULL or on failure. */
char *arena_strdup(pagoflex_arena *arena, const char *s);
char *arena_strndup(pagoflex_arena *arena, const char *s, size_t n);

/* printf into the arena; NULL on failure. */
char *arena_printf(pagoflex_arena *arena, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *arena_vprintf(pagoflex_arena *arena, const char *fmt, va_list ap);

/* Bytes handed out so far (for limits and tests). */
size_t arena_used(const pagoflex_arena *arena);

#endif
