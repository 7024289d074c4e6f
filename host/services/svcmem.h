/* svcmem.h - how the shared host-service modules (urlenc, stdwebhooks,
 * currency) allocate their results: through the caller's arena allocator,
 * so the same code serves the host (arena.c) and the SDK test kit (its own
 * arena). */
#ifndef PAGOFLEX_SVCMEM_H
#define PAGOFLEX_SVCMEM_H

#include <stddef.h>

#include <pagoflex/connector.h>

/* Allocate size zeroed bytes in arena; NULL on failure. */
typedef void *(*svcmem_alloc_fn)(pagoflex_arena *arena, size_t size);

#endif
