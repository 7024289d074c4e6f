/* textcheck.h - is a byte string text we can store and show?
 *
 * Everything from the network (URL paths, query values, header values,
 * bodies) is bytes. PostgreSQL `text` and JSON strings need valid UTF-8
 * without NUL; messages and log lines should also hold no control
 * characters. These checks say whether bytes are such text, and make a
 * copy that is safe to echo in an error message or a log line.
 */
#ifndef PAGOFLEX_TEXTCHECK_H
#define PAGOFLEX_TEXTCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <pagoflex/connector.h>

/* True if s[0..len) is valid UTF-8 with no NUL byte (what a text column
 * and a JSON string can hold). False for s NULL. */
bool textcheck_utf8(const char *s, size_t len);

/* True if s[0..len) is valid UTF-8 with no control character (C0, DEL):
 * fit for an id, a key or a name. False for s NULL. */
bool textcheck_printable(const char *s, size_t len);

/* A copy of the NUL-terminated `s` that is safe to put in a JSON string or
 * a log line: at most `max` bytes of it (cut before a character, never
 * inside one, and followed by "..." when cut), with every byte that is not
 * part of a printable UTF-8 character written as \xNN. NULL `s` gives
 * "(null)". The copy lives in `arena`; NULL when out of memory. */
char *textcheck_shown(pagoflex_arena *arena, const char *s, size_t max);

#endif
