/* http_limits.c - bounds on hostile input checked by the HTTP layer; see http_limits.h. */
#include "http_limits.h"

#include <string.h>

#include <microhttpd.h>

typedef struct header_totals {
    int count;
    size_t bytes;
} header_totals;

static enum MHD_Result http_limits_count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    (void)kind;
    header_totals *t = cls;
    t->count++;
    t->bytes += (key ? strlen(key) : 0) + (value ? strlen(value) : 0);
    return MHD_YES;
}

void http_limits_header_totals(struct MHD_Connection *conn, int *count, size_t *bytes)
{
    header_totals t = {0, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, http_limits_count_header, &t);
    *count = t.count;
    *bytes = t.bytes;
}

bool http_limits_json_too_deep(const char *s, size_t len, int max_depth)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

size_t http_limits_connection_memory(size_t max_header_bytes)
{
    /* MHD's default is 32 KiB; headers live in the pool beside a read
     * buffer and the reply headers. */
    size_t mem = 4 * max_header_bytes + 16 * 1024;
    return mem < 32 * 1024 ? 32 * 1024 : mem;
}
