/* http_limits.h - bounds on hostile input that the HTTP layer checks itself.
 *
 * libmicrohttpd bounds what it can (memory per connection, idle timeout,
 * connection counts: see api_start); these are the checks on what reaches a
 * handler: header count and size (431) and JSON nesting depth (400).
 */
#ifndef PAGOFLEX_HTTP_LIMITS_H
#define PAGOFLEX_HTTP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

struct MHD_Connection;

/* Count the request headers of `conn` and the bytes of their names and
 * values into *count and *bytes. Always succeeds. */
void http_limits_header_totals(struct MHD_Connection *conn, int *count, size_t *bytes);

/* True if the JSON text s/len nests arrays and objects deeper than
 * max_depth (strings and escapes are skipped, so brackets inside strings do
 * not count). Runs in one pass with no allocation, so it is safe on any
 * input before a recursive parser sees it. Malformed JSON is not judged
 * here: the parser refuses it. */
bool http_limits_json_too_deep(const char *s, size_t len, int max_depth);

/* The libmicrohttpd memory pool per connection for a header limit of
 * max_header_bytes: room for the headers, the read buffer and the reply, so
 * that headers a little over the limit still reach the handler (and get a
 * JSON 431) while far larger ones are refused by libmicrohttpd itself. */
size_t http_limits_connection_memory(size_t max_header_bytes);

#endif
