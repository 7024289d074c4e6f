/* http.c: the simulator's HTTP server (GNU libmicrohttpd, epoll thread pool).
 *
 * Banco X API (banco_x_api.md v1.1), Bearer auth, JSON bodies
 * (Content-Type: application/json), Idempotency-Key on every POST:
 *   POST /pay                 create a payment
 *   GET  /pay/{id}            query a payment
 *   POST /pay/{id}/capture    capture an authorization {"amount":N}
 *   POST /pay/{id}/void       void an authorization {}
 *   POST /refunds             refund {"tx_id","amount","ref","callback_url"}
 *   GET  /refunds/{id}        query a refund
 *
 * The customer's browser, no auth:
 *   GET  /3ds/{id}            the 3-D Secure page: Approve and Decline forms
 *   POST /3ds/{id}            result=approve|decline (form); 303 to the
 *                             payment's return_url, or a "done" page
 *
 * Pagoflex's notifications, for the benchmark (sink.c), no auth:
 *   POST /sink/notifications  a Standard Webhooks delivery: 204, or 401 when
 *                             a secret is set and the signature or timestamp
 *                             is wrong (400: a webhook-* header missing)
 *
 * Test and inspection endpoints, no auth:
 *   GET  /_sim/stats             counters: {"payments", "pay_requests",
 *                                "capture_requests", "void_requests",
 *                                "refund_requests", "idempotent_replays",
 *                                "sandbox_503", "captures", "voids",
 *                                "authorizations_expired",
 *                                "challenges_expired", "refunds",
 *                                "webhooks_sent", "webhooks_delivered",
 *                                "webhooks_failed", "webhooks_abandoned",
 *                                "webhooks_dropped", "webhooks_pending",
 *                                "by_status": {"PENDING",...,"VOIDED"},
 *                                "refunds_by_status": {...}}
 *   GET  /_sim/payments?ref=R    {"ref":R, "count":n, "ids":[...],
 *                                "requests":n, "overlapping":n,
 *                                "last_request_id", "last_traceparent"}: the
 *                                bank-side payments carrying ref R, oldest
 *                                first (an at-once REJECTED one counts: the
 *                                bank keeps a record of it); the POST /pay
 *                                calls with Idempotency-Key R (the latest one's
 *                                X-Request-Id and traceparent), and how many
 *                                came while an earlier one was unanswered
 *   GET  /_sim/payments/{id}     everything about one payment: input,
 *                                status, captured, refunded, refundable,
 *                                captures, voids and refunds
 *   GET  /_sim/refunds?ref=R     the same as payments?ref=R for refunds
 *   GET  /_sim/config            the run-time knobs below
 *   POST /_sim/config            JSON object with any of latency_ms,
 *                                webhook_delay_ms, reorder_ms (integers >= 0),
 *                                fail_status (400..599: what fail_rate answers),
 *                                fail_rate, timeout_rate, duplicate_rate
 *                                (numbers 0..1), reorder, webhook_first,
 *                                no_webhooks (booleans); answers the result
 *   GET  /_sim/sink              the sink's counters {"received", "accepted",
 *                                "distinct", "bad", "verifying"}
 *   POST /_sim/sink              {"secret": "whsec_..."}: verify deliveries
 *                                with it from now on; answers the counters
 *
 * Status seen by GET /pay/{id}: PENDING until webhook_delay_ms after
 * creation (the bank's decision time, when the first webhook attempt is
 * due), then APPROVED, AUTHORIZED or DECLINED; with --webhook-first it is
 * final at once. Amount % 100 == 77 settles the same way but never sends a
 * webhook; an at-once REJECTED payment (99) reads as DECLINED with its
 * "reason". Later changes (capture, void, 3-D Secure answer) are visible at
 * once; their webhook follows after webhook_delay_ms (store.c has the rest).
 *
 * Injected faults apply to every Banco X POST (fail_rate, timeout_rate);
 * latency_ms to every Banco X request (not to /3ds pages or /_sim).
 *
 * Every handler answers only once the upload phase is over (MHD calls the
 * handler again with *upload_data_size == 0), so keep-alive connections
 * survive. A delayed answer (latency, simulated timeout, webhook-first) is
 * prepared at once, then the connection is suspended and timer.c resumes it
 * at the deadline: no server thread is held while waiting. */
#include "banksim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (64 * 1024)
#define DESCRIPTION_MAX 140
#define URL_MAX 2048
#define TOKEN_MAX 128
#define ID_MAX 64

struct req {
    struct MHD_Connection *conn;
    uint64_t start_ms;
    char *body;
    size_t len, cap;
    bool too_large;
    bool decided;        /* status and answer are set */
    unsigned status;
    char *answer;
    const char *content_type; /* NULL: application/json */
    char *location;      /* Location of a 303, or NULL */
    uint64_t answer_at;  /* monotonic ms; 0 = at once */
    bool has_event;      /* the request's webhook, sent (first) by on_request */
    struct bs_event event;
    struct bs_tunables tun; /* as they were when the request arrived */
    int account;            /* whose API key the request carries (authorized) */
};

static struct MHD_Daemon *http_daemon;
static atomic_long http_active; /* requests between first call and completion */
/* Base of redirect_url, set once the port is known (see http_start). */
static char public_base[300];
static atomic_bool public_base_set;

/* ------------------------------------------------------------- helpers */

static void set_answer(struct req *r, unsigned status, char *json)
{
    free(r->answer);
    r->status = json ? status : 500;
    r->answer = json ? json : strdup("{\"error\":\"out of memory\"}");
    r->content_type = NULL;
}

static void set_error(struct req *r, unsigned status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    set_answer(r, status, o ? json_dumps(o, JSON_COMPACT) : NULL);
    json_decref(o);
}

static void set_json(struct req *r, unsigned status, json_t *o)
{
    set_answer(r, status, o ? json_dumps(o, JSON_COMPACT) : NULL);
    json_decref(o);
}

/* Sets an HTML answer (html is taken; NULL means out of memory). */
static void set_html(struct req *r, unsigned status, char *html)
{
    set_answer(r, status, html);
    if (html)
        r->content_type = "text/html; charset=utf-8";
}

/* True when the request carries the API key of one of the accounts; its
 * index goes to r->account. */
static bool authorized(struct req *r, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    int found = -1;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    for (size_t i = 0; i < bs_cfg.account_n; i++) {
        size_t klen = strlen(bs_cfg.accounts[i].api_key);
        if (strlen(h) == klen && CRYPTO_memcmp(h, bs_cfg.accounts[i].api_key, klen) == 0 && found < 0)
            found = (int)i;
    }
    r->account = found < 0 ? 0 : found;
    return found >= 0;
}

/* True when payment (refund false) or refund `id` exists and belongs to
 * another account than the request's: to that account it does not exist. */
static bool other_account(const struct req *r, const char *id, bool refund)
{
    int owner = store_account_of(id, refund);
    return owner >= 0 && owner != r->account;
}

/* True when the request says Content-Type: application/json (parameters
 * such as charset allowed). */
static bool json_content_type(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    static const char want[] = "application/json";

    if (!h)
        return false;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, want, sizeof want - 1) != 0)
        return false;
    h += sizeof want - 1;
    while (*h == ' ' || *h == '\t')
        h++;
    return *h == '\0' || *h == ';';
}

static int body_append(struct req *r, const char *data, size_t n)
{
    if (r->too_large || r->len + n > BODY_MAX) {
        r->too_large = true;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        char *b;
        while (cap < r->len + n + 1)
            cap *= 2;
        b = realloc(r->body, cap);
        if (!b)
            return -1;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

/* Parses the upload as a JSON object; on failure sets a 422 and returns
 * NULL. */
static json_t *body_object(struct req *r)
{
    json_error_t err;
    json_t *o;
    char msg[200];

    if (r->too_large) {
        set_error(r, 422, "body is larger than 65536 bytes");
        return NULL;
    }
    o = json_loadb(r->body ? r->body : "", r->len, 0, &err);
    if (!o) {
        snprintf(msg, sizeof msg, "body is not valid JSON: %s", err.text);
        set_error(r, 422, msg);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        set_error(r, 422, "body must be a JSON object");
        return NULL;
    }
    return o;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static bool currency_supported(const char *c)
{
    static const char *const list[] = { "ARS", "BRL", "CLP", "COP", "MXN", "PEN", "USD", "UYU" };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (strcmp(c, list[i]) == 0)
            return true;
    return false;
}

static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* An http(s) URL we may put in a Location header: no spaces or control
 * characters, at most URL_MAX bytes. */
static bool redirectable_url(const char *s)
{
    if (!is_http_url(s) || strlen(s) > URL_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

/* "tok_" followed by 1..TOKEN_MAX-4 letters, digits, '_' or '-'. */
static bool card_token_valid(const char *s)
{
    size_t n = strlen(s);
    if (n <= 4 || n > TOKEN_MAX || strncmp(s, "tok_", 4) != 0)
        return false;
    for (s += 4; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

/* Reads the optional string field name of o into *out (NULL when absent
 * or null). Returns false when it is there but not a string. */
static bool optional_string(json_t *o, const char *name, const char **out)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return false;
    *out = json_string_value(v);
    return true;
}

/* Checks the "amount" of o: an integer >= 1. Returns NULL and sets *amount,
 * or the error text for a 422. */
static const char *amount_validate(json_t *o, long long *amount)
{
    json_t *v = json_object_get(o, "amount");
    if (!v)
        return "amount is required (an integer in minor units, at least 1)";
    if (!json_is_integer(v))
        return "amount must be an integer in minor units";
    if (json_integer_value(v) <= 0)
        return "amount must be greater than 0";
    *amount = (long long)json_integer_value(v);
    return NULL;
}

/* Checks a POST /pay body and fills *in from it (pointers into o). Returns
 * NULL when valid, else the error text for a 422 (static or in msg). */
static const char *pay_validate(json_t *o, struct bs_pay_input *in, char *msg, size_t msglen)
{
    json_t *currency = json_object_get(o, "currency");
    json_t *ref = json_object_get(o, "ref");
    json_t *cb = json_object_get(o, "callback_url");
    json_t *capture = json_object_get(o, "capture");
    const char *s, *err;

    if ((err = amount_validate(o, &in->amount)))
        return err;
    if (!json_is_string(currency))
        return "currency is required (one of ARS BRL CLP COP MXN PEN USD UYU)";
    s = json_string_value(currency);
    if (!currency_supported(s)) {
        snprintf(msg, msglen, "currency \"%.16s\" is not supported (one of ARS BRL CLP COP MXN PEN USD UYU)", s);
        return msg;
    }
    if (!json_is_string(ref) || json_string_length(ref) == 0)
        return "ref is required (a non-empty string)";
    if (!json_is_string(cb) || !is_http_url(json_string_value(cb)))
        return "callback_url is required (an http:// or https:// URL)";
    if (!optional_string(o, "description", &in->description))
        return "description must be a string";
    if (in->description && utf8_chars(in->description) > DESCRIPTION_MAX)
        return "description must be at most 140 characters";
    if (capture && !json_is_null(capture) && !json_is_boolean(capture))
        return "capture must be true or false";
    if (!optional_string(o, "card_token", &in->card_token))
        return "card_token must be a string (tok_..., from the Banco X tokenizer)";
    if (in->card_token && !card_token_valid(in->card_token))
        return "card_token must be a Banco X card token: tok_ followed by letters, digits, "
               "_ or - (at most 128 characters)";
    if (!optional_string(o, "return_url", &in->return_url))
        return "return_url must be a string (an http:// or https:// URL)";
    if (in->return_url && !redirectable_url(in->return_url))
        return "return_url must be an http:// or https:// URL without spaces, at most 2048 "
               "characters";
    in->capture = !json_is_false(capture);
    in->currency = s;
    in->ref = json_string_value(ref);
    in->callback_url = json_string_value(cb);
    return NULL;
}

/* Checks a POST /refunds body and fills *in from it (pointers into o). */
static const char *refund_validate(json_t *o, struct bs_refund_input *in)
{
    json_t *tx = json_object_get(o, "tx_id");
    json_t *ref = json_object_get(o, "ref");
    json_t *cb = json_object_get(o, "callback_url");
    const char *err;

    if (!json_is_string(tx) || json_string_length(tx) == 0)
        return "tx_id is required (the bx_... id of the payment to refund)";
    if ((err = amount_validate(o, &in->amount)))
        return err;
    if (!json_is_string(ref) || json_string_length(ref) == 0)
        return "ref is required (a non-empty string)";
    if (!json_is_string(cb) || !is_http_url(json_string_value(cb)))
        return "callback_url is required (an http:// or https:// URL)";
    in->tx_id = json_string_value(tx);
    in->ref = json_string_value(ref);
    in->callback_url = json_string_value(cb);
    return NULL;
}

/* Settle delay of what this request creates or changes: 0 with
 * --webhook-first (the webhook goes out before the answer). */
static unsigned decision_delay(const struct req *r)
{
    return r->tun.webhook_first ? 0 : r->tun.webhook_delay_ms;
}

/* The answer fail_rate injects: fail_status with the body Banco X sends
 * for it (401 as after an API-key rotation, 422, or a transient 5xx). */
static void set_injected_failure(struct req *r, unsigned status)
{
    if (status == 401)
        set_error(r, 401, "unauthorized");
    else if (status == 422)
        set_error(r, 422, "invalid request");
    else
        set_error(r, status, "unavailable");
}

/* The checks every Banco X POST makes, in v1's order: auth (401), injected
 * 503 (fail_rate), the lost-reply draw (timeout_rate, into *timed_out),
 * Idempotency-Key (422), Content-Type (422), a JSON object body (422).
 * Returns the body (caller decrefs) with *idem_key set, or NULL with the
 * answer set. */
static json_t *api_post_begin(struct req *r, struct MHD_Connection *c, const char **idem_key,
                              bool *timed_out)
{
    const char *ct, *key;
    char msg[160];

    r->answer_at = r->start_ms + r->tun.latency_ms;
    *timed_out = false;
    if (!authorized(r, c)) {
        set_error(r, 401, "unauthorized");
        return NULL;
    }
    if (bs_rng_chance(r->tun.fail_rate)) {
        set_injected_failure(r, r->tun.fail_status);
        return NULL;
    }
    *timed_out = bs_rng_chance(r->tun.timeout_rate);
    key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (!key || !*key) {
        set_error(r, 422, "Idempotency-Key header is required");
        return NULL;
    }
    if (!json_content_type(c)) {
        ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        snprintf(msg, sizeof msg, "Content-Type must be application/json (got %s%.64s%s)",
                 ct ? "\"" : "", ct ? ct : "none", ct ? "\"" : "");
        set_error(r, 422, msg);
        return NULL;
    }
    *idem_key = key;
    return body_object(r);
}

/* Takes the store's answer (and webhook) into r; a request drawn to time
 * out was done but its reply is lost: 503 after timeout_ms. */
static void api_post_finish(struct req *r, struct bs_op_result *res, bool timed_out)
{
    set_answer(r, res->answer.status, res->answer.body);
    if (res->has_event) {
        r->event = res->event;
        r->has_event = true;
    }
    if (timed_out) {
        set_error(r, 503, "unavailable");
        r->answer_at = r->start_ms + bs_cfg.timeout_ms;
    }
}

/* --------------------------------------------------------------- routes */

static void route_pay_answer(struct req *r, struct MHD_Connection *c)
{
    struct bs_pay_input in = { 0 };
    struct bs_op_result res;
    json_t *o;
    const char *err;
    char msg[256];
    bool timed_out;

    store_count_request(BS_REQ_PAY);
    o = api_post_begin(r, c, &in.idem_key, &timed_out);
    if (!o)
        return;
    err = pay_validate(o, &in, msg, sizeof msg);
    if (err) {
        set_error(r, 422, err);
        goto done;
    }
    if (!atomic_load(&public_base_set)) { /* only while starting up */
        set_error(r, 503, "unavailable");
        goto done;
    }
    in.redirect_base = public_base;
    in.webhook_delay_ms = decision_delay(r);
    in.account = r->account;
    if (store_pay(&in, &res) != 0) {
        set_error(r, 500, "out of memory");
        goto done;
    }
    api_post_finish(r, &res, timed_out);
done:
    json_decref(o);
}

/* POST /pay, counted per Idempotency-Key once its answer time is known
 * (GET /_sim/payments?ref= shows requests and overlaps). */
static void route_pay(struct req *r, struct MHD_Connection *c)
{
    route_pay_answer(r, c);
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (key && *key) {
        store_note_request(key, r->start_ms, r->answer_at);
        store_note_trace(key, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id"),
                         MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"));
    }
}

static void route_capture(struct req *r, struct MHD_Connection *c, const char *id)
{
    struct bs_op_result res;
    const char *key, *err;
    long long amount = 0;
    bool timed_out;
    json_t *o;

    store_count_request(BS_REQ_CAPTURE);
    o = api_post_begin(r, c, &key, &timed_out);
    if (!o)
        return;
    err = amount_validate(o, &amount);
    if (err)
        set_error(r, 422, err);
    else if (other_account(r, id, false))
        set_error(r, 404, "not_found");
    else if (store_capture(id, key, amount, decision_delay(r), &res) != 0)
        set_error(r, 500, "out of memory");
    else
        api_post_finish(r, &res, timed_out);
    json_decref(o);
}

static void route_void(struct req *r, struct MHD_Connection *c, const char *id)
{
    struct bs_op_result res;
    const char *key;
    bool timed_out;
    json_t *o;

    store_count_request(BS_REQ_VOID);
    o = api_post_begin(r, c, &key, &timed_out);
    if (!o)
        return;
    if (other_account(r, id, false))
        set_error(r, 404, "not_found");
    else if (store_void(id, key, decision_delay(r), &res) != 0)
        set_error(r, 500, "out of memory");
    else
        api_post_finish(r, &res, timed_out);
    json_decref(o);
}

static void route_refund(struct req *r, struct MHD_Connection *c)
{
    struct bs_refund_input in = { 0 };
    struct bs_op_result res;
    const char *err;
    bool timed_out;
    json_t *o;

    store_count_request(BS_REQ_REFUND);
    o = api_post_begin(r, c, &in.idem_key, &timed_out);
    if (!o)
        return;
    err = refund_validate(o, &in);
    in.webhook_delay_ms = decision_delay(r);
    if (err)
        set_error(r, 422, err);
    else if (other_account(r, in.tx_id, false))
        set_error(r, 422, "tx_id is not a Banco X payment"); /* not one of this account's */
    else if (store_refund(&in, &res) != 0)
        set_error(r, 500, "out of memory");
    else
        api_post_finish(r, &res, timed_out);
    json_decref(o);
}

/* GET /pay/{id} (refund false) or GET /refunds/{id} (true). */
static void route_query(struct req *r, struct MHD_Connection *c, const char *id, bool refund)
{
    bool found = false;
    char *json;

    r->answer_at = r->start_ms + r->tun.latency_ms;
    if (!authorized(r, c)) {
        set_error(r, 401, "unauthorized");
        return;
    }
    if (other_account(r, id, refund)) {
        set_error(r, 404, "not_found");
        return;
    }
    json = refund ? store_refund_query_json(id, &found) : store_query_json(id, &found);
    if (!found)
        set_error(r, 404, "not_found");
    else
        set_answer(r, 200, json);
}

/* ------------------------------------------------------- 3-D Secure pages */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* "10.42 ARS" (CLP has no minor unit: "1042 CLP"). */
static void html_amount(FILE *f, long long amount, const char *currency)
{
    if (strcmp(currency, "CLP") == 0)
        fprintf(f, "%lld %s", amount, currency);
    else
        fprintf(f, "%lld.%02lld %s", amount / 100, amount % 100, currency);
}

/* Opens a page; *buf receives it at page_end(). NULL on OOM. */
static FILE *page_begin(char **buf, size_t *len, const char *title)
{
    FILE *f = open_memstream(buf, len);
    if (!f)
        return NULL;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width\"><title>Banco X - ", f);
    html_text(f, title);
    fputs("</title></head>\n<body>\n<h1>Banco X</h1>\n", f);
    return f;
}

/* Closes the page and returns it (caller frees), or NULL on OOM. */
static char *page_end(FILE *f, char **buf)
{
    fputs("</body></html>\n", f);
    if (fclose(f) != 0) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

static void set_page_message(struct req *r, unsigned status, const char *title, const char *text)
{
    char *buf = NULL;
    size_t len;
    FILE *f = page_begin(&buf, &len, title);
    if (!f) {
        set_html(r, 500, NULL);
        return;
    }
    fputs("<p>", f);
    html_text(f, text);
    fputs("</p>\n", f);
    set_html(r, status, page_end(f, &buf));
}

/* The page of payment id in state ch: the two forms while it waits, else
 * its outcome (with a link back to the merchant when there is one). */
static void set_challenge_page(struct req *r, const char *id, const struct bs_challenge *ch)
{
    char *buf = NULL;
    size_t len;
    FILE *f = page_begin(&buf, &len, ch->waiting ? "confirm your payment" : "payment");

    if (!f) {
        set_html(r, 500, NULL);
        return;
    }
    fputs("<p>Payment of <strong>", f);
    html_amount(f, ch->amount, ch->currency);
    fputs("</strong>", f);
    if (ch->description) {
        fputs(" for <em>", f);
        html_text(f, ch->description);
        fputs("</em>", f);
    }
    fputs(".</p>\n", f);
    if (ch->waiting) {
        static const char *const choice[][2] = { { "approve", "Approve" }, { "decline", "Decline" } };
        for (size_t i = 0; i < 2; i++)
            fprintf(f, "<form method=\"post\" action=\"/3ds/%s\">"
                       "<input type=\"hidden\" name=\"result\" value=\"%s\">"
                       "<button type=\"submit\">%s</button></form>\n",
                    id, choice[i][0], choice[i][1]);
    } else {
        fprintf(f, "<p id=\"status\">Status: %s. This payment no longer waits for a "
                   "confirmation.</p>\n", ch->status);
        if (ch->return_url) {
            fputs("<p><a href=\"", f);
            html_text(f, ch->return_url);
            fputs("\">Back to the shop</a></p>\n", f);
        }
    }
    set_html(r, 200, page_end(f, &buf));
}

static void route_3ds_page(struct req *r, const char *id)
{
    struct bs_challenge ch;
    if (store_challenge_view(id, &ch) != 0)
        set_page_message(r, 404, "unknown payment", "Banco X knows no such payment.");
    else
        set_challenge_page(r, id, &ch);
}

struct form_result {
    char value[16];
    bool seen, bad;
};

/* MHD_PostDataIterator: keeps the (single, short) "result" field. */
static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size)
{
    struct form_result *f = cls;
    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    if (strcmp(key, "result") != 0)
        return MHD_YES;
    if ((off == 0 && f->seen) || off + size >= sizeof f->value) {
        f->bad = true; /* given twice, or longer than any valid value */
        return MHD_YES;
    }
    memcpy(f->value + off, data, size);
    f->value[off + size] = '\0';
    f->seen = true;
    return MHD_YES;
}

static void route_3ds_answer(struct req *r, struct MHD_Connection *c, const char *id)
{
    struct form_result form = { .value = "" };
    struct MHD_PostProcessor *pp;
    struct bs_challenge ch;
    struct bs_event ev;
    bool has_event = false, approve;
    enum MHD_Result ok = MHD_YES;

    pp = r->too_large ? NULL : MHD_create_post_processor(c, 1024, form_field, &form);
    if (!pp) {
        set_page_message(r, 422, "bad request",
                         "Send the form as application/x-www-form-urlencoded (or "
                         "multipart/form-data) with result=approve or result=decline.");
        return;
    }
    if (r->len)
        ok = MHD_post_process(pp, r->body, r->len);
    MHD_destroy_post_processor(pp); /* delivers the last field */
    if (ok != MHD_YES || form.bad || !form.seen ||
        (strcmp(form.value, "approve") != 0 && strcmp(form.value, "decline") != 0)) {
        set_page_message(r, 422, "bad request", "result must be approve or decline.");
        return;
    }
    approve = strcmp(form.value, "approve") == 0;
    if (store_challenge_answer(id, approve, decision_delay(r), &ch, &has_event, &ev) != 0) {
        set_page_message(r, 404, "unknown payment", "Banco X knows no such payment.");
        return;
    }
    if (has_event) {
        r->event = ev;
        r->has_event = true;
    }
    if (!ch.return_url) {
        set_challenge_page(r, id, &ch);
        return;
    }
    r->location = strdup(ch.return_url);
    if (!r->location) {
        set_html(r, 500, NULL);
        return;
    }
    set_page_message(r, 303, "continue", "Returning to the shop.");
}

/* ------------------------------------------------------------ test routes */

static void route_stats(struct req *r)
{
    json_t *o = json_object();
    if (o) {
        store_stats(o);
        webhook_stats(o);
    }
    set_json(r, 200, o);
}

static void route_by_ref(struct req *r, struct MHD_Connection *c, bool refunds)
{
    const char *ref = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ref");
    if (!ref) {
        set_error(r, 422, "query parameter ref is required");
        return;
    }
    set_answer(r, 200, store_by_ref_json(ref, refunds));
}

static void route_inspect(struct req *r, const char *id)
{
    bool found = false;
    char *json = store_inspect_json(id, &found);
    if (!found)
        set_error(r, 404, "not_found");
    else
        set_answer(r, 200, json);
}

static json_t *tunables_json(const struct bs_tunables *t)
{
    return json_pack("{s:I, s:I, s:I, s:f, s:I, s:f, s:f, s:b, s:b, s:b}",
                     "latency_ms", (json_int_t)t->latency_ms,
                     "webhook_delay_ms", (json_int_t)t->webhook_delay_ms,
                     "reorder_ms", (json_int_t)t->reorder_ms, "fail_rate", t->fail_rate,
                     "fail_status", (json_int_t)t->fail_status,
                     "timeout_rate", t->timeout_rate, "duplicate_rate", t->duplicate_rate,
                     "reorder", t->reorder, "webhook_first", t->webhook_first,
                     "no_webhooks", t->no_webhooks);
}

/* Applies one field of POST /_sim/config to t. Returns NULL or an error. */
static const char *config_field(struct bs_tunables *t, const char *key, json_t *v)
{
    struct { const char *name; unsigned *u; double *d; bool *b; } fields[] = {
        { "latency_ms", &t->latency_ms, NULL, NULL },
        { "webhook_delay_ms", &t->webhook_delay_ms, NULL, NULL },
        { "reorder_ms", &t->reorder_ms, NULL, NULL },
        { "fail_status", &t->fail_status, NULL, NULL },
        { "fail_rate", NULL, &t->fail_rate, NULL },
        { "timeout_rate", NULL, &t->timeout_rate, NULL },
        { "duplicate_rate", NULL, &t->duplicate_rate, NULL },
        { "reorder", NULL, NULL, &t->reorder },
        { "webhook_first", NULL, NULL, &t->webhook_first },
        { "no_webhooks", NULL, NULL, &t->no_webhooks },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(fields[i].name, key) != 0)
            continue;
        if (fields[i].u) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 3600000)
                return "an integer in 0..3600000 is expected";
            if (fields[i].u == &t->fail_status &&
                (json_integer_value(v) < 400 || json_integer_value(v) > 599))
                return "an HTTP error status in 400..599 is expected";
            *fields[i].u = (unsigned)json_integer_value(v);
        } else if (fields[i].d) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
                return "a number in 0..1 is expected";
            *fields[i].d = json_number_value(v);
        } else {
            if (!json_is_boolean(v))
                return "true or false is expected";
            *fields[i].b = json_is_true(v);
        }
        return NULL;
    }
    return "unknown field";
}

static void route_config(struct req *r, bool update)
{
    struct bs_tunables t;
    json_t *o = NULL, *v;
    const char *key, *err;
    char msg[200];

    bs_tunables_get(&t);
    if (update) {
        o = body_object(r);
        if (!o)
            return;
        json_object_foreach(o, key, v) {
            err = config_field(&t, key, v);
            if (err) {
                snprintf(msg, sizeof msg, "%.64s: %s", key, err);
                set_error(r, 422, msg);
                goto done;
            }
        }
        bs_tunables_set(&t);
        bs_log("config changed at run time");
    }
    set_json(r, 200, tunables_json(&t));
done:
    json_decref(o);
}

/* POST /sink/notifications: one of Pagoflex's deliveries (sink.c). */
static void route_sink(struct req *r, struct MHD_Connection *c)
{
    unsigned status;

    if (r->too_large) {
        set_error(r, 413, "body is larger than 65536 bytes");
        return;
    }
    status = sink_receive(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id"),
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp"),
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature"),
                          r->body ? r->body : "", r->len);
    if (status == 204)
        set_answer(r, 204, strdup(""));
    else
        set_error(r, status, status == 400 ? "webhook-id, webhook-timestamp and webhook-signature are required"
                                           : "signature or timestamp does not verify");
}

/* GET /_sim/sink, and POST {"secret": "whsec_..."}. */
static void route_sink_config(struct req *r, bool update)
{
    json_t *o = NULL, *secret, *stats;
    const char *err;
    char msg[200];

    if (update) {
        o = body_object(r);
        if (!o)
            return;
        secret = json_object_get(o, "secret");
        if (!json_is_string(secret) || json_object_size(o) != 1) {
            set_error(r, 422, "secret: a string \"whsec_<base64>\" is expected, and nothing else");
            goto done;
        }
        err = sink_set_secret(json_string_value(secret));
        if (err) {
            snprintf(msg, sizeof msg, "secret: %s", err);
            set_error(r, 422, msg);
            goto done;
        }
        bs_log("sink: verifying deliveries from now on");
    }
    stats = json_object();
    if (stats)
        sink_stats(stats);
    set_json(r, 200, stats);
done:
    json_decref(o);
}

/* Copies the id at s (up to end or '/') into buf; returns the rest of the
 * path, or NULL when the id is empty or longer than any id we issue (then
 * buf is the empty string). */
static const char *path_id(const char *s, char *buf, size_t len)
{
    size_t n = strcspn(s, "/");
    buf[0] = '\0';
    if (n == 0 || n >= len)
        return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return s + n;
}

/* /pay/{id}, /pay/{id}/capture, /pay/{id}/void. */
static void route_pay_id(struct req *r, struct MHD_Connection *c, const char *rest, bool get,
                         bool post)
{
    size_t n = strcspn(rest, "/");
    const char *tail = rest + n;
    char id[ID_MAX];

    if (!*tail) { /* v1: GET /pay/{any id} */
        if (get)
            route_query(r, c, rest, false);
        else
            set_error(r, 405, "method not allowed");
        return;
    }
    if (n == 0 || (strcmp(tail, "/capture") != 0 && strcmp(tail, "/void") != 0)) {
        set_error(r, 404, "no such endpoint");
    } else if (!post) {
        set_error(r, 405, "method not allowed");
    } else if (n >= sizeof id) {
        set_error(r, 404, "not_found"); /* longer than any id we issue */
    } else {
        memcpy(id, rest, n);
        id[n] = '\0';
        if (tail[1] == 'c')
            route_capture(r, c, id);
        else
            route_void(r, c, id);
    }
}

static void route(struct req *r, struct MHD_Connection *c, const char *url, const char *method)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    char id[ID_MAX];
    const char *tail;

    bs_tunables_get(&r->tun);
    if (strcmp(url, "/pay") == 0) {
        if (post)
            route_pay(r, c);
        else
            set_error(r, 405, "method not allowed");
    } else if (strncmp(url, "/pay/", 5) == 0 && url[5]) {
        route_pay_id(r, c, url + 5, get, post);
    } else if (strcmp(url, "/refunds") == 0) {
        if (post)
            route_refund(r, c);
        else
            set_error(r, 405, "method not allowed");
    } else if (strncmp(url, "/refunds/", 9) == 0 && url[9] && !strchr(url + 9, '/')) {
        if (get)
            route_query(r, c, url + 9, true);
        else
            set_error(r, 405, "method not allowed");
    } else if (strncmp(url, "/3ds/", 5) == 0 && (tail = path_id(url + 5, id, sizeof id)) &&
               !*tail) {
        if (get)
            route_3ds_page(r, id);
        else if (post)
            route_3ds_answer(r, c, id);
        else
            set_error(r, 405, "method not allowed");
    } else if (strcmp(url, "/_sim/stats") == 0 && get) {
        route_stats(r);
    } else if (strcmp(url, "/_sim/payments") == 0 && get) {
        route_by_ref(r, c, false);
    } else if (strcmp(url, "/_sim/refunds") == 0 && get) {
        route_by_ref(r, c, true);
    } else if (strncmp(url, "/_sim/payments/", 15) == 0 && get &&
               (tail = path_id(url + 15, id, sizeof id)) && !*tail) {
        route_inspect(r, id);
    } else if (strcmp(url, "/_sim/config") == 0 && (get || post)) {
        route_config(r, post);
    } else if (strcmp(url, "/sink/notifications") == 0) {
        if (post)
            route_sink(r, c);
        else
            set_error(r, 405, "method not allowed");
    } else if (strcmp(url, "/_sim/sink") == 0 && (get || post)) {
        route_sink_config(r, post);
    } else {
        set_error(r, 404, "no such endpoint");
    }
}

/* ------------------------------------------------------------ MHD glue */

static enum MHD_Result send_answer(struct req *r, struct MHD_Connection *c, const char *url,
                                   const char *method)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(strlen(r->answer), r->answer, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (r->location &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location) != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO; /* not reachable: return_url was checked */
    }
    ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    bs_log("%s %.200s -> %u (%llums)", method, url, r->status,
           (unsigned long long)(bs_now_ms() - r->start_ms));
    return ret;
}

/* Suspends c and has the timer resume it at due. */
static void suspend_until(struct MHD_Connection *c, uint64_t due)
{
    MHD_suspend_connection(c);
    if (timer_resume_at(c, due) != 0)
        MHD_resume_connection(c);
}

/* webhook_first_cb: the webhook's first attempts were answered. */
static void webhook_first_done(void *arg)
{
    struct req *r = arg;
    uint64_t now = bs_now_ms();
    if (timer_resume_at(r->conn, r->answer_at > now ? r->answer_at : now) != 0)
        MHD_resume_connection(r->conn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct req *r = *con_cls;
    (void)cls;
    (void)version;

    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->conn = c;
        r->start_ms = bs_now_ms();
        *con_cls = r;
        atomic_fetch_add(&http_active, 1);
        return MHD_YES;
    }
    if (r->decided) /* resumed after a wait */
        return send_answer(r, c, url, method);
    if (*upload_data_size) {
        if (body_append(r, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    route(r, c, url, method);
    r->decided = true;
    if (r->has_event && !r->tun.no_webhooks) {
        if (r->tun.webhook_first) {
            MHD_suspend_connection(c);
            if (webhook_schedule(&r->event, &r->tun, webhook_first_done, r) != 0)
                webhook_first_done(r);
            return MHD_YES;
        }
        webhook_schedule(&r->event, &r->tun, NULL, NULL);
    }
    if (r->answer_at > bs_now_ms()) {
        suspend_until(c, r->answer_at);
        return MHD_YES;
    }
    return send_answer(r, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (!r)
        return;
    free(r->body);
    free(r->answer);
    free(r->location);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&http_active, 1);
}

/* Raises the open-file limit to its hard maximum and returns how many
 * connections the server may hold. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    unsigned reserve = 64 + bs_cfg.webhook_concurrency;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1000;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 65536)
        return 65536 - reserve;
    return rl.rlim_cur > reserve + 100 ? (unsigned)rl.rlim_cur - reserve : 100;
}

/* Sets the base of redirect_url: --public-url, else http://<bind>:<port>
 * (a wildcard bind address is reached on loopback). */
static void set_public_base(unsigned port, bool v6)
{
    const char *host = bs_cfg.bind_addr;
    size_t n;

    if (bs_cfg.public_url) {
        snprintf(public_base, sizeof public_base, "%s", bs_cfg.public_url);
        n = strlen(public_base);
        while (n && public_base[n - 1] == '/')
            public_base[--n] = '\0';
    } else {
        if (strcmp(host, "0.0.0.0") == 0)
            host = "127.0.0.1";
        else if (v6 && strcmp(host, "::") == 0)
            host = "::1";
        snprintf(public_base, sizeof public_base, v6 ? "http://[%s]:%u" : "http://%s:%u", host,
                 port);
    }
    atomic_store(&public_base_set, true);
}

int http_start(unsigned *port)
{
    struct sockaddr_in a4 = { .sin_family = AF_INET };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    if (inet_pton(AF_INET, bs_cfg.bind_addr, &a4.sin_addr) == 1) {
        a4.sin_port = htons((uint16_t)bs_cfg.port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, bs_cfg.bind_addr, &a6.sin6_addr) == 1) {
        a6.sin6_port = htons((uint16_t)bs_cfg.port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        bs_err("--bind %s: not a numeric IPv4 or IPv6 address", bs_cfg.bind_addr);
        return -1;
    }
    http_daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)bs_cfg.threads,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)4096,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (!http_daemon) {
        bs_err("cannot listen on %s port %u: %s", bs_cfg.bind_addr, bs_cfg.port,
               strerror(errno ? errno : EADDRINUSE));
        return -1;
    }
    info = MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : bs_cfg.port;
    set_public_base(*port, addr->sa_family == AF_INET6);
    return 0;
}

void http_quiesce(void)
{
    MHD_socket fd;
    if (!http_daemon)
        return;
    fd = MHD_quiesce_daemon(http_daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void http_stop(unsigned grace_ms)
{
    uint64_t deadline = bs_now_ms() + grace_ms;
    if (!http_daemon)
        return;
    timer_drain();
    while ((atomic_load(&http_active) > 0 || timer_pending() > 0) && bs_now_ms() < deadline) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&http_active) > 0)
        bs_log("stopping with %ld requests unfinished", (long)atomic_load(&http_active));
    MHD_stop_daemon(http_daemon);
    http_daemon = NULL;
}
