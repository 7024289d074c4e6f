/* urlenc.c - percent-encoding and form encoding on curl_easy_escape and
 * curl_easy_unescape (whose handle argument libcurl ignores since 7.82). */
#include "urlenc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

/* Copy a libcurl string into the arena, wipe and free it (form bodies carry
 * client secrets). With plus, every "%20" becomes '+': curl_easy_escape
 * writes a literal '%' as "%25", so "%20" can only come from a space. */
static char *urlenc_take(svcmem_alloc_fn alloc, pagoflex_arena *arena, char *curl_str, int plus)
{
    if (!curl_str)
        return NULL;
    size_t len = strlen(curl_str);
    char *out = alloc(arena, len + 1);
    if (out) {
        size_t j = 0;
        for (size_t i = 0; i < len; i++) {
            if (plus && curl_str[i] == '%' && curl_str[i + 1] == '2' && curl_str[i + 2] == '0') {
                out[j++] = '+';
                i += 2;
            } else {
                out[j++] = curl_str[i];
            }
        }
        out[j] = '\0';
    }
    OPENSSL_cleanse(curl_str, len);
    curl_free(curl_str);
    return out;
}

static char *urlenc_escape(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *s,
                           size_t len, int plus)
{
    if (len == 0) /* curl_easy_escape would take length 0 as "use strlen" */
        return alloc(arena, 1);
    if (!s || len > INT_MAX / 3)
        return NULL;
    return urlenc_take(alloc, arena, curl_easy_escape(NULL, s, (int)len), plus);
}

char *urlenc_encode(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *s, size_t len)
{
    return urlenc_escape(alloc, arena, s, len, 0);
}

char *urlenc_form_encode(svcmem_alloc_fn alloc, pagoflex_arena *arena,
                         const pagoflex_header *pairs, size_t n)
{
    char **parts = NULL;
    char *out = NULL;
    size_t total = 1;
    if (n && (!pairs || n > SIZE_MAX / (2 * sizeof *parts)))
        return NULL;
    if (n && !(parts = calloc(2 * n, sizeof *parts)))
        return NULL;
    for (size_t i = 0; i < 2 * n; i++) {
        const char *s = i % 2 ? pairs[i / 2].value : pairs[i / 2].name;
        if (!s)
            s = "";
        if (!(parts[i] = urlenc_escape(alloc, arena, s, strlen(s), 1)))
            goto cleanup;
        total += strlen(parts[i]) + 1;
    }
    if (!(out = alloc(arena, total)))
        goto cleanup;
    char *p = out;
    for (size_t i = 0; i < 2 * n; i++) {
        if (i)
            *p++ = i % 2 ? '=' : '&';
        size_t l = strlen(parts[i]);
        memcpy(p, parts[i], l);
        p += l;
    }
    *p = '\0';
cleanup:
    free(parts);
    return out;
}

static int urlenc_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Decode one name or value s[0..len) into the arena. */
static int urlenc_unescape(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *s,
                           size_t len, const char **out)
{
    if (len == 0) {
        char *empty = alloc(arena, 1);
        if (!empty)
            return PAGOFLEX_ERR_NOMEM;
        *out = empty;
        return PAGOFLEX_OK;
    }
    if (len > INT_MAX)
        return PAGOFLEX_ERR_INVALID;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%')
            continue;
        if (i + 2 >= len)
            return PAGOFLEX_ERR_INVALID;
        if (!urlenc_is_hex(s[i + 1]) || !urlenc_is_hex(s[i + 2]))
            return PAGOFLEX_ERR_INVALID;
        if (s[i + 1] == '0' && s[i + 2] == '0')
            return PAGOFLEX_ERR_INVALID;
        i += 2;
    }
    /* '+' is a space, before unescaping: "%2B" must stay a '+'. */
    char *plain = alloc(arena, len + 1);
    if (!plain)
        return PAGOFLEX_ERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        plain[i] = s[i] == '+' ? ' ' : s[i];
    int out_len = 0;
    char *decoded = curl_easy_unescape(NULL, plain, (int)len, &out_len);
    char *copy = decoded ? alloc(arena, (size_t)out_len + 1) : NULL;
    if (copy)
        memcpy(copy, decoded, (size_t)out_len);
    if (decoded) {
        OPENSSL_cleanse(decoded, (size_t)out_len);
        curl_free(decoded);
    }
    OPENSSL_cleanse(plain, len);
    if (!copy)
        return PAGOFLEX_ERR_NOMEM;
    *out = copy;
    return PAGOFLEX_OK;
}

int urlenc_form_decode(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *s,
                       size_t len, pagoflex_header **pairs, size_t *n)
{
    size_t count = 0;
    if (!s && len)
        return PAGOFLEX_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '&')
            count++;
    count++; /* upper bound: segments */
    pagoflex_header *out = alloc(arena, count * sizeof *out);
    if (!out)
        return PAGOFLEX_ERR_NOMEM;
    size_t got = 0, start = 0;
    while (start <= len && len) {
        const char *seg = s + start;
        const char *amp = memchr(seg, '&', len - start);
        size_t seg_len = amp ? (size_t)(amp - seg) : len - start;
        if (seg_len) {
            const char *eq = memchr(seg, '=', seg_len);
            size_t name_len = eq ? (size_t)(eq - seg) : seg_len;
            int rc = urlenc_unescape(alloc, arena, seg, name_len, &out[got].name);
            if (rc == PAGOFLEX_OK)
                rc = eq ? urlenc_unescape(alloc, arena, eq + 1, seg_len - name_len - 1,
                                          &out[got].value)
                        : urlenc_unescape(alloc, arena, "", 0, &out[got].value);
            if (rc != PAGOFLEX_OK)
                return rc;
            got++;
        }
        start += seg_len + 1;
    }
    *pairs = got ? out : NULL;
    *n = got;
    return PAGOFLEX_OK;
}
