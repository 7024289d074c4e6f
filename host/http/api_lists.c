/* api_lists.c - GET /v1/payments and GET /v1/refunds (issue 14).
 *
 * Every list is the request's merchant's only (store_list.h filters by it),
 * newest first, at most `limit` (1..100, default 10) objects a page. A page
 * ends with has_more; the next one is asked for with starting_after=<the
 * last id>, the previous with ending_before=<the first id>. The created
 * range takes Unix seconds or an RFC 3339 time.
 */
#include "api_lists.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "payment.h"
#include "payreq.h"
#include "store_list.h"
#include "textcheck.h"

#define LIST_DEFAULT_LIMIT 10

struct list_query_scan {
    const char *const *allowed;
    const char *unknown;
};

static enum MHD_Result list_scan_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    struct list_query_scan *scan = cls;
    const char *const *a = scan->allowed;
    while (a && *a && strcmp(*a, key) != 0)
        a++;
    if (a && *a)
        return MHD_YES;
    scan->unknown = key;
    return MHD_NO;
}

int api_lists_known_query(api_request *r, const char *const *allowed, enum MHD_Result *ret)
{
    struct list_query_scan scan = {.allowed = allowed, .unknown = NULL};
    MHD_get_connection_values(api_req_conn(r), MHD_GET_ARGUMENT_KIND, list_scan_arg, &scan);
    if (!scan.unknown)
        return 0;
    const char *shown = textcheck_shown(api_req_arena(r), scan.unknown, 64);
    *ret = api_req_error(
        r, MHD_HTTP_BAD_REQUEST, "unknown_parameter", shown ? shown : "?",
        "unknown query parameter '%s'; nothing was read (GET /openapi.yaml lists the parameters)",
        shown ? shown : "?");
    return -1;
}

static const char *list_arg(api_request *r, const char *name)
{
    return MHD_lookup_connection_value(api_req_conn(r), MHD_GET_ARGUMENT_KIND, name);
}

/* Could `id` be one of our ids? 1 to 64 of [A-Za-z0-9_-]. */
static bool list_id_plausible(const char *id)
{
    size_t n = strnlen(id, 65);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '_' &&
            c != '-')
            return false;
    }
    return true;
}

/* `text` as a timestamptz PostgreSQL reads exactly: Unix seconds (digits)
 * or RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)) naming a real
 * date. NULL if it is neither. */
static const char *list_time(pagoflex_arena *arena, const char *text)
{
    size_t n = strlen(text);
    if (n >= 1 && n <= 12 && strspn(text, "0123456789") == n) {
        time_t t = (time_t)strtoll(text, NULL, 10);
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            return NULL;
        return arena_printf(arena, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    int y, mo, d, h, mi, s, used = 0;
    if (n < 20 || n > 40 || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6 ||
        used != 19 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't'))
        return NULL;
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && (text[i] < '0' || text[i] > '9'))
            return NULL;
    const char *rest = text + 19;
    if (*rest == '.') {
        size_t digits = strspn(rest + 1, "0123456789");
        if (digits < 1 || digits > 6)
            return NULL;
        rest += 1 + digits;
    }
    bool zone = strcmp(rest, "Z") == 0 || strcmp(rest, "z") == 0 ||
                (strlen(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
                 strspn(rest + 1, "0123456789") == 2 && strspn(rest + 4, "0123456789") == 2 &&
                 atoi(rest + 1) < 24 && atoi(rest + 4) < 60);
    if (!zone || y < 1970 || y > 9999 || h > 23 || mi > 59 || s > 59)
        return NULL;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1)
        return NULL; /* 2026-02-30 */
    return text;
}

/* The parameters both lists share. False with the reply queued. */
static bool list_common(api_request *r, store_list_query *q, enum MHD_Result *ret)
{
    pagoflex_arena *arena = api_req_arena(r);
    q->merchant_id = api_req_merchant(r);
    q->limit = LIST_DEFAULT_LIMIT;
    const char *limit = list_arg(r, "limit");
    if (limit) {
        size_t n = strlen(limit);
        int v = n >= 1 && n <= 3 && strspn(limit, "0123456789") == n ? atoi(limit) : 0;
        if (v < 1 || v > STORE_LIST_MAX) {
            *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "limit",
                                 "limit must be an integer from 1 to %d (default %d)", STORE_LIST_MAX,
                                 LIST_DEFAULT_LIMIT);
            return false;
        }
        q->limit = v;
    }
    static const char *const cursors[] = {"starting_after", "ending_before"};
    for (int i = 0; i < 2; i++) {
        const char *id = list_arg(r, cursors[i]);
        if (!id)
            continue;
        if (!list_id_plausible(id)) {
            *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", cursors[i],
                                 "%s must be the id of an object of this list", cursors[i]);
            return false;
        }
        *(i ? &q->ending_before : &q->starting_after) = id;
    }
    if (q->starting_after && q->ending_before) {
        *ret = api_req_error(
            r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "ending_before",
            "give starting_after (the next page) or ending_before (the previous one), not both");
        return false;
    }
    const char *connector = list_arg(r, "connector");
    if (connector) {
        size_t n = strlen(connector);
        if (n < 1 || n > 32 || !textcheck_printable(connector, n)) {
            *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "connector",
                                 "connector must be a connector key such as BANCO_X");
            return false;
        }
        q->connector = connector;
    }
    static const char *const bounds[] = {"created[gt]", "created[gte]", "created[lt]", "created[lte]"};
    const char **outs[] = {&q->created_gt, &q->created_gte, &q->created_lt, &q->created_lte};
    for (int i = 0; i < 4; i++) {
        const char *v = list_arg(r, bounds[i]);
        if (!v)
            continue;
        *outs[i] = list_time(arena, v);
        if (!*outs[i]) {
            *ret = api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", bounds[i],
                                 "%s must be Unix seconds or an RFC 3339 time such as 2026-01-31T12:00:00Z",
                                 bounds[i]);
            return false;
        }
    }
    return true;
}

static enum MHD_Result list_reply(api_request *r, const char *url, json_t *data, bool has_more)
{
    return api_req_reply(
        r, MHD_HTTP_OK,
        json_pack("{s:s, s:s, s:b, s:o}", "object", "list", "url", url, "has_more", has_more, "data", data));
}

/* The store's answer for a page that could not be read. */
static enum MHD_Result list_store_error(api_request *r, store_result sr, const store_list_query *q)
{
    if (sr == STORE_NOT_FOUND)
        return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field",
                             q->starting_after ? "starting_after" : "ending_before",
                             "no object with id '%s' in this list",
                             q->starting_after ? q->starting_after : q->ending_before);
    if (sr == STORE_UNAVAILABLE)
        return api_req_db_unavailable(r);
    return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                         "listing failed (store error %d)", (int)sr);
}

/* The checks before a list: key, query names, database. */
static bool list_preamble(api_request *r, const char *const *allowed, enum MHD_Result *ret)
{
    if (!api_req_authorized(r, ret) || api_lists_known_query(r, allowed, ret) != 0)
        return false;
    if (!api_db_ready(api_req_ctx(r))) {
        *ret = api_req_db_unavailable(r);
        return false;
    }
    return true;
}

enum MHD_Result api_lists_payments(api_request *r)
{
    static const char *const allowed[] = {
        "limit",       "starting_after", "ending_before", "status",       "connector", "reference",
        "created[gt]", "created[gte]",   "created[lt]",   "created[lte]", NULL};
    enum MHD_Result ret;
    store_list_query q = {0};
    if (!list_preamble(r, allowed, &ret) || !list_common(r, &q, &ret))
        return ret;
    pagoflex_arena *arena = api_req_arena(r);
    const char *status = list_arg(r, "status");
    if (status) {
        if (payment_state_parse(status) < 0)
            return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "status",
                                 "status must be a payment status such as succeeded, failed or "
                                 "requires_capture");
        q.states = arena_printf(arena, "{%s}", status);
    }
    const char *reference = list_arg(r, "reference");
    if (reference) {
        size_t n = strlen(reference);
        if (n == 0 || n > PAYREQ_REFERENCE_MAX)
            return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "reference",
                                 "reference must be 1 to %d bytes", PAYREQ_REFERENCE_MAX);
        if (!textcheck_utf8(reference, n))
            return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "reference",
                                 "reference '%s' is not UTF-8 text; send it percent-encoded UTF-8",
                                 textcheck_shown(arena, reference, 64));
        q.reference = reference;
    }
    if (status && !q.states)
        return api_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    store_payment *rows = NULL;
    size_t n = 0;
    bool more = false;
    store_result sr = store_list_payments(api_req_ctx(r)->store, &q, arena, &rows, &n, &more);
    if (sr != STORE_OK)
        return list_store_error(r, sr, &q);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api_flows_payment_json(&rows[i]));
    return list_reply(r, "/v1/payments", data, more);
}

enum MHD_Result api_lists_refunds(api_request *r)
{
    static const char *const allowed[] = {
        "limit",       "starting_after", "ending_before", "status",       "connector", "payment_id",
        "created[gt]", "created[gte]",   "created[lt]",   "created[lte]", NULL};
    enum MHD_Result ret;
    store_list_query q = {0};
    if (!list_preamble(r, allowed, &ret) || !list_common(r, &q, &ret))
        return ret;
    const char *status = list_arg(r, "status");
    if (status) {
        /* A refund the bank may still make is pending to the merchant. */
        q.states = strcmp(status, "pending") == 0     ? "{created,processing,pending,requires_review}"
                   : strcmp(status, "succeeded") == 0 ? "{succeeded}"
                   : strcmp(status, "failed") == 0    ? "{failed}"
                                                      : NULL;
        if (!q.states)
            return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "status",
                                 "status must be pending, succeeded or failed");
    }
    const char *pid = list_arg(r, "payment_id");
    if (pid && !list_id_plausible(pid))
        return api_req_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_field", "payment_id",
                             "payment_id must be a payment id such as pay_...");
    q.payment_id = pid;
    store_refund *rows = NULL;
    size_t n = 0;
    bool more = false;
    store_result sr = store_list_refunds(api_req_ctx(r)->store, &q, api_req_arena(r), &rows, &n, &more);
    if (sr != STORE_OK)
        return list_store_error(r, sr, &q);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api_flows_refund_json(&rows[i]));
    return list_reply(r, "/v1/refunds", data, more);
}
