/* http.c: the simulator's HTTP server (GNU libmicrohttpd, epoll thread pool).
 *
 * Banco X API (banco_x_api.md), Bearer auth:
 *   POST /pay          create a payment (Idempotency-Key required)
 *   GET  /pay/{id}     query a payment
 *
 * Test and inspection endpoints, no auth:
 *   GET  /_sim/stats             counters: {"payments", "pay_requests",
 *                                "idempotent_replays", "sandbox_503",
 *                                "webhooks_sent", "webhooks_delivered",
 *                                "webhooks_failed", "webhooks_abandoned",
 *                                "webhooks_dropped", "webhooks_pending",
 *                                "by_status": {"PENDING",...,"REJECTED"}}
 *   GET  /_sim/payments?ref=R    {"ref":R, "count":n, "ids":[...],
 *                                "requests":n, "overlapping":n}: the
 *                                bank-side payments carrying ref R, oldest
 *                                first (an at-once REJECTED one counts: the
 *                                bank keeps a record of it); the POST /pay
 *                                calls with Idempotency-Key R, and how many
 *                                came while an earlier one was unanswered
 *   GET  /_sim/config            the run-time knobs below
 *   POST /_sim/config            JSON object with any of latency_ms,
 *                                webhook_delay_ms, reorder_ms (integers >= 0),
 *                                fail_status (400..599: what fail_rate answers),
 *                                fail_rate, timeout_rate, duplicate_rate
 *                                (numbers 0..1), reorder, webhook_first,
 *                                no_webhooks (booleans); answers the result
 *
 * Status seen by GET /pay/{id}: PENDING until webhook_delay_ms after
 * creation (the bank's decision time, when the first webhook attempt is
 * due), then APPROVED or DECLINED; with --webhook-first it is final at once.
 * Amount % 100 == 77 settles the same way but never sends a webhook; an
 * at-once REJECTED payment (99) reads as DECLINED with its "reason".
 *
 * Every handler answers only once the upload phase is over (MHD calls the
 * handler again with *upload_data_size == 0), so keep-alive connections
 * survive. A delayed answer (latency, simulated timeout, webhook-first) is
 * prepared at once, then the connection is suspended and timer.c resumes it
 * at the deadline: no server thread is held while waiting. */
#include "banksim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (64 * 1024)
#define DESCRIPTION_MAX 140

struct req {
    struct MHD_Connection *conn;
    uint64_t start_ms;
    char *body;
    size_t len, cap;
    bool too_large;
    bool decided;        /* status and answer are set */
    unsigned status;
    char *answer;
    uint64_t answer_at;  /* monotonic ms; 0 = at once */
    const struct bs_payment *webhook_first; /* deliver before answering */
    struct bs_tunables tun; /* as they were when the request arrived */
};

static struct MHD_Daemon *http_daemon;
static atomic_long http_active; /* requests between first call and completion */

/* ------------------------------------------------------------- helpers */

static void set_answer(struct req *r, unsigned status, char *json)
{
    free(r->answer);
    r->status = json ? status : 500;
    r->answer = json ? json : strdup("{\"error\":\"out of memory\"}");
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

static bool authorized(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    size_t klen = strlen(bs_cfg.api_key);

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return strlen(h) == klen && CRYPTO_memcmp(h, bs_cfg.api_key, klen) == 0;
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

/* Checks a POST /pay body and fills *in from it (pointers into o). Returns
 * NULL when valid, else the error text for a 422 (static or in msg). */
static const char *pay_validate(json_t *o, struct bs_pay_input *in, char *msg, size_t msglen)
{
    json_t *amount = json_object_get(o, "amount");
    json_t *currency = json_object_get(o, "currency");
    json_t *ref = json_object_get(o, "ref");
    json_t *cb = json_object_get(o, "callback_url");
    json_t *desc = json_object_get(o, "description");
    const char *s;

    if (!amount)
        return "amount is required";
    if (!json_is_integer(amount))
        return "amount must be an integer in minor units";
    if (json_integer_value(amount) <= 0)
        return "amount must be greater than 0";
    if (!json_is_string(currency))
        return "currency is required (one of ARS BRL CLP COP MXN PEN USD UYU)";
    s = json_string_value(currency);
    if (!currency_supported(s)) {
        snprintf(msg, msglen, "currency \"%.16s\" is not supported (one of ARS BRL CLP COP MXN PEN USD UYU)", s);
        return msg;
    }
    if (!json_is_string(ref) || json_string_length(ref) == 0)
        return "ref is required (a non-empty string)";
    if (!json_is_string(cb) || (strncmp(json_string_value(cb), "http://", 7) != 0 &&
                                strncmp(json_string_value(cb), "https://", 8) != 0))
        return "callback_url is required (an http:// or https:// URL)";
    if (desc && !json_is_null(desc)) {
        if (!json_is_string(desc))
            return "description must be a string";
        if (utf8_chars(json_string_value(desc)) > DESCRIPTION_MAX)
            return "description must be at most 140 characters";
    }
    in->amount = (long long)json_integer_value(amount);
    in->currency = s;
    in->ref = json_string_value(ref);
    in->callback_url = json_string_value(cb);
    return NULL;
}

static bool wants_webhook(const struct bs_payment *p, const struct bs_tunables *t)
{
    return !t->no_webhooks && p->final_status != BS_REJECTED && p->amount % 100 != 77;
}

/* --------------------------------------------------------------- routes */

/* The answer fail_rate injects: fail_status with the body Banco X sends
 * for it. */
static void set_injected_failure(struct req *r, unsigned status)
{
    if (status == 401)
        set_error(r, 401, "unauthorized");
    else if (status == 422)
        set_error(r, 422, "invalid request");
    else
        set_error(r, status, "unavailable");
}

static void route_pay_answer(struct req *r, struct MHD_Connection *c)
{
    struct bs_tunables t;
    struct bs_pay_input in = { 0 };
    struct bs_pay_result res;
    json_t *o = NULL;
    const char *err;
    char msg[256];
    bool timed_out;

    store_count_request();
    bs_tunables_get(&t);
    r->tun = t;
    r->answer_at = r->start_ms + t.latency_ms;
    if (!authorized(c)) {
        set_error(r, 401, "unauthorized");
        return;
    }
    if (bs_rng_chance(t.fail_rate)) {
        set_injected_failure(r, t.fail_status);
        return;
    }
    timed_out = bs_rng_chance(t.timeout_rate);
    in.idem_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (!in.idem_key || !*in.idem_key) {
        set_error(r, 422, "Idempotency-Key header is required");
        return;
    }
    o = body_object(r);
    if (!o)
        return;
    err = pay_validate(o, &in, msg, sizeof msg);
    if (err) {
        set_error(r, 422, err);
        goto done;
    }
    in.webhook_delay_ms = t.webhook_first ? 0 : t.webhook_delay_ms;
    if (store_pay(&in, &res) != 0) {
        set_error(r, 500, "out of memory");
        goto done;
    }
    set_answer(r, res.answer.status, res.answer.body);
    if (res.created && wants_webhook(res.created, &t)) {
        if (t.webhook_first)
            r->webhook_first = res.created;
        else
            webhook_schedule(res.created, &t, NULL, NULL);
    }
    if (timed_out) {
        /* The bank took the payment (stored above) but its reply is lost. */
        set_error(r, 503, "unavailable");
        r->answer_at = r->start_ms + bs_cfg.timeout_ms;
    }
done:
    json_decref(o);
}

/* POST /pay, counted per Idempotency-Key once its answer time is known. */
static void route_pay(struct req *r, struct MHD_Connection *c)
{
    route_pay_answer(r, c);
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (key && *key)
        store_note_request(key, r->start_ms, r->answer_at);
}

static void route_query(struct req *r, struct MHD_Connection *c, const char *id)
{
    struct bs_tunables t;
    bool found = false;
    char *json;

    bs_tunables_get(&t);
    r->answer_at = r->start_ms + t.latency_ms;
    if (!authorized(c)) {
        set_error(r, 401, "unauthorized");
        return;
    }
    json = store_query_json(id, &found);
    if (!found)
        set_error(r, 404, "not_found"); /* the contract's body; other 404s say "not found" */
    else
        set_answer(r, 200, json);
}

static void route_stats(struct req *r)
{
    json_t *o = json_object();
    if (o) {
        store_stats(o);
        webhook_stats(o);
    }
    set_json(r, 200, o);
}

static void route_by_ref(struct req *r, struct MHD_Connection *c)
{
    const char *ref = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ref");
    if (!ref) {
        set_error(r, 422, "query parameter ref is required");
        return;
    }
    set_answer(r, 200, store_by_ref_json(ref));
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

static void route(struct req *r, struct MHD_Connection *c, const char *url, const char *method)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

    if (strcmp(url, "/pay") == 0) {
        if (post)
            route_pay(r, c);
        else
            set_error(r, 405, "method not allowed");
    } else if (strncmp(url, "/pay/", 5) == 0 && url[5] && !strchr(url + 5, '/')) {
        if (get)
            route_query(r, c, url + 5);
        else
            set_error(r, 405, "method not allowed");
    } else if (strcmp(url, "/_sim/stats") == 0 && get) {
        route_stats(r);
    } else if (strcmp(url, "/_sim/payments") == 0 && get) {
        route_by_ref(r, c);
    } else if (strcmp(url, "/_sim/config") == 0 && (get || post)) {
        route_config(r, post);
    } else {
        set_error(r, 404, "not found");
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
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
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
    if (r->webhook_first) {
        MHD_suspend_connection(c);
        if (webhook_schedule(r->webhook_first, &r->tun, webhook_first_done, r) != 0)
            webhook_first_done(r);
        return MHD_YES;
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
