/* textcheck.c - is a byte string text we can store and show? UTF-8
 * validity is Jansson's (json_stringn refuses invalid UTF-8). */
#include "textcheck.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"

static bool textcheck_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

bool textcheck_utf8(const char *s, size_t len)
{
    if (!s || memchr(s, '\0', len))
        return false;
    json_t *v = json_stringn(s, len);
    json_decref(v);
    return v != NULL;
}

bool textcheck_printable(const char *s, size_t len)
{
    if (!textcheck_utf8(s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if (textcheck_control((unsigned char)s[i]))
            return false;
    return true;
}

/* Length of the UTF-8 sequence a lead byte announces (1 for ASCII, 0 for a
 * byte that cannot start one). */
static size_t textcheck_sequence_length(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

char *textcheck_shown(pagoflex_arena *arena, const char *s, size_t max)
{
    if (!s)
        return arena_strdup(arena, "(null)");
    size_t len = strlen(s), n = len > max ? max : len;
    bool cut = n < len;
    while (cut && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--; /* s[n] continues a character: cut before that character */
    if (textcheck_printable(s, n))
        return arena_printf(arena, "%.*s%s", (int)n, s, cut ? "..." : "");
    char *out = arena_alloc(arena, 4 * n + 4);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t seq = textcheck_sequence_length(c);
        if (seq > 0 && seq <= n - i && textcheck_printable(s + i, seq)) {
            memcpy(out + o, s + i, seq);
            o += seq;
            i += seq;
        } else {
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
            i++;
        }
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
