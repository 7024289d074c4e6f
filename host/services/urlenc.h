/* urlenc.h - RFC 3986 percent-encoding and application/x-www-form-urlencoded
 * (host services url_encode, form_encode, form_decode), on libcurl. */
#ifndef PAGOFLEX_URLENC_H
#define PAGOFLEX_URLENC_H

#include <stddef.h>

#include "svcmem.h"

/* Percent-encode s[0..len) keeping only RFC 3986 unreserved characters
 * (A-Z a-z 0-9 - . _ ~). Returns a NUL-terminated string allocated with
 * alloc in arena, or NULL on allocation failure. */
char *urlenc_encode(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *s, size_t len);

/* "n1=v1&n2=v2" from n name/value pairs, each part percent-encoded as
 * urlenc_encode does but with a space as '+' (the form encoding). NULL
 * names or values count as "". Result in arena; NULL on failure. */
char *urlenc_form_encode(svcmem_alloc_fn alloc, pagoflex_arena *arena,
                         const pagoflex_header *pairs, size_t n);

/* Split a query string or form body s[0..len) on '&' into name/value pairs
 * ('+' is a space, %XX a byte; empty segments are skipped, a segment
 * without '=' is a name with value "", empty values are kept). Decoded
 * bytes are returned as they are, valid UTF-8 or not. PAGOFLEX_OK with
 * *pairs / *n set (array and strings in arena; *pairs is NULL when *n is
 * 0); PAGOFLEX_ERR_INVALID for a '%' not followed by two hex digits or a
 * %00 (the strings are NUL-terminated); PAGOFLEX_ERR_NOMEM. Outputs are
 * written only on success. */
int urlenc_form_decode(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *s,
                       size_t len, pagoflex_header **pairs, size_t *n);

#endif
