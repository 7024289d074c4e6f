/* metrics.c - lock-free counters and fixed-bucket histograms, rendered as
 * Prometheus text.
 *
 * Every value is a relaxed C11 atomic in one fixed block (metrics_state),
 * so recording is a few atomic adds and never takes a lock or allocates.
 * The master maps that block MAP_SHARED before it forks (metrics_share), so
 * the master and every worker, of every generation, add into the same
 * counters: one scrape of any worker shows the whole process group, and
 * nothing is lost when a worker is replaced. Histogram buckets are stored
 * per bucket and summed into Prometheus's cumulative form only when
 * rendered.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "payment.h"

/* Upper bounds of the finite buckets, in microseconds; one +Inf bucket follows. */
static const uint64_t metrics_bounds_us[] = {100,    250,    500,     1000,    2500,    5000,
                                             10000,  25000,  50000,   100000,  250000,  500000,
                                             1000000, 2500000, 5000000, 10000000};
#define METRICS_NBOUNDS (sizeof metrics_bounds_us / sizeof metrics_bounds_us[0])

/* HTTP status codes counted by their own number; any other code counts in
 * its class ("4xx"), and a request that got no answer as "none". */
static const unsigned metrics_codes[] = {200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404,
                                         405, 408, 409, 413, 415, 422, 429, 431, 500, 501, 502,
                                         503, 504};
#define METRICS_NCODES (sizeof metrics_codes / sizeof metrics_codes[0])
/* index 0: none; 1..NCODES: metrics_codes; then 1xx..5xx for the rest */
#define METRICS_CODE_SLOTS (1 + METRICS_NCODES + 5)

static const char *const metrics_route_names[METRICS_ROUTE_COUNT] = {
    "payment_create", "payment_get", "webhook", "connectors", "healthz", "metrics",
    "payment_list", "payment_events", "livez", "readyz", "payment_capture", "payment_cancel",
    "refund_create", "refund_get", "refund_list", "webhook_endpoints", "other"};

const char *metrics_route_name(metrics_route route)
{
    return (int)route >= 0 && route < METRICS_ROUTE_COUNT ? metrics_route_names[route] : "other";
}

/* Reasons a webhook is refused: the JSON error codes api.c answers with. */
static const char *const metrics_refusal_names[] = {
    "invalid_signature", "invalid_webhook", "invalid_json", "not_found", "unknown_payment",
    "payload_too_large", "request_header_fields_too_large", "database_unavailable",
    "method_not_allowed", "unsupported_media_type", "internal", "other"};
#define METRICS_REFUSALS (sizeof metrics_refusal_names / sizeof metrics_refusal_names[0])

/* Slot METRICS_MAX_CONNECTORS is the overflow slot "_other"; the one after
 * it counts webhooks that reached no connector ("_none"). */
#define METRICS_SLOTS (METRICS_MAX_CONNECTORS + 1)
#define METRICS_NAME_MAX 64

typedef struct metrics_hist {
    atomic_ullong bucket[METRICS_NBOUNDS + 1]; /* not cumulative; last is +Inf */
    atomic_ullong sum_ns;
    atomic_ullong count;
} metrics_hist;

/* A connector name in shared memory: claimed (1) by one process, readable
 * once ready (2). */
typedef struct metrics_name {
    atomic_int state; /* 0 free, 1 being written, 2 ready */
    char text[METRICS_NAME_MAX];
} metrics_name;

/* Everything, as one block of plain atomics and fixed arrays with no
 * pointer in it, so it can live in memory shared across fork(). */
typedef struct metrics_state {
    metrics_name connector_name[METRICS_MAX_CONNECTORS];
    atomic_ullong requests[METRICS_ROUTE_COUNT][METRICS_CODE_SLOTS];
    metrics_hist request_time[METRICS_ROUTE_COUNT];
    atomic_ullong connector_requests[METRICS_SLOTS][METRICS_ROUTE_COUNT][METRICS_CODE_SLOTS];
    metrics_hist connector_time[METRICS_SLOTS][METRICS_ROUTE_COUNT];
    atomic_ullong bank_calls[METRICS_SLOTS][2]; /* [0] transport error, [1] answered */
    metrics_hist bank_time[METRICS_SLOTS];
    atomic_ullong outcomes[METRICS_SLOTS][PAYMENT_STATE_COUNT];
    atomic_ullong refusals[METRICS_SLOTS + 1][METRICS_REFUSALS]; /* last row: no connector */
    atomic_ullong db_round_trips;
    metrics_hist db_time;
    atomic_ullong db_commits;
    atomic_llong in_flight[METRICS_WORKER_SLOTS + 1]; /* last: processes with no slot */
    atomic_ullong reloads;
    atomic_ullong worker_restarts;
    atomic_ullong notify_attempts[METRICS_NOTIFY_OUTCOMES];
    atomic_ullong notify_claims;
} metrics_state;

/* Zero-initialised storage is a valid initial state for C11 atomics on
 * every platform we build for (so is a fresh anonymous mapping). Until
 * metrics_share() the block is this process's own. */
static metrics_state metrics_local;
static metrics_state *metrics_g = &metrics_local;
static int metrics_worker_slot = METRICS_WORKER_SLOTS; /* this process's gauge slot */

/* Per process, not shared: the database gauges of this process's last
 * scrape and the build info. */
static struct {
    atomic_bool known;
    atomic_llong backlog, review;
} metrics_db;
static char metrics_version[32] = "unknown", metrics_abi[16] = "unknown";

#define RLX memory_order_relaxed

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_set_worker(int slot)
{
    metrics_worker_slot = slot >= 0 && slot < METRICS_WORKER_SLOTS ? slot : METRICS_WORKER_SLOTS;
}

void metrics_worker_gone(int slot)
{
    if (slot >= 0 && slot < METRICS_WORKER_SLOTS)
        atomic_store_explicit(&metrics_g->in_flight[slot], 0, RLX);
}

int metrics_connector(const char *key)
{
    if (!key || strlen(key) >= METRICS_NAME_MAX)
        return METRICS_MAX_CONNECTORS;
    for (int i = 0; i < METRICS_MAX_CONNECTORS; i++) {
        metrics_name *n = &metrics_g->connector_name[i];
        int st = atomic_load_explicit(&n->state, memory_order_acquire);
        if (st == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong_explicit(&n->state, &expected, 1, memory_order_acq_rel,
                                                        memory_order_acquire)) {
                memcpy(n->text, key, strlen(key) + 1);
                atomic_store_explicit(&n->state, 2, memory_order_release);
                return i;
            }
            st = expected;
        }
        /* Another thread or process is writing this name: wait (a few
         * instructions) for it to be readable, then compare; a writer
         * killed in between leaves the slot unusable, not us stuck. */
        for (long spins = 0; st == 1 && spins < 1000000; spins++)
            st = atomic_load_explicit(&n->state, memory_order_acquire);
        if (st == 2 && strcmp(n->text, key) == 0)
            return i;
    }
    return METRICS_MAX_CONNECTORS;
}

static void metrics_observe(metrics_hist *h, uint64_t elapsed_ns)
{
    uint64_t us = elapsed_ns / 1000;
    size_t b = 0;
    while (b < METRICS_NBOUNDS && us > metrics_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, RLX);
    atomic_fetch_add_explicit(&h->sum_ns, elapsed_ns, RLX);
    atomic_fetch_add_explicit(&h->count, 1, RLX);
}

/* The code slot of an HTTP status. */
static int metrics_code_slot(unsigned status)
{
    for (size_t i = 0; i < METRICS_NCODES; i++)
        if (metrics_codes[i] == status)
            return (int)(1 + i);
    return status >= 100 && status < 600 ? (int)(1 + METRICS_NCODES + status / 100 - 1) : 0;
}

/* The label value of code slot c: "201", "4xx" or "none". */
static void metrics_code_name(int c, char out[8])
{
    if (c == 0)
        snprintf(out, 8, "none");
    else if ((size_t)c <= METRICS_NCODES)
        snprintf(out, 8, "%u", metrics_codes[c - 1]);
    else
        snprintf(out, 8, "%dxx", (int)((size_t)c - METRICS_NCODES));
}

static int metrics_slot(int connector)
{
    return connector >= 0 && connector < METRICS_SLOTS ? connector : -1;
}

void metrics_request_done(metrics_route route, int connector, unsigned status, uint64_t elapsed_ns)
{
    if ((int)route < 0 || route >= METRICS_ROUTE_COUNT)
        route = METRICS_ROUTE_OTHER;
    int code = metrics_code_slot(status);
    atomic_fetch_add_explicit(&metrics_g->requests[route][code], 1, RLX);
    metrics_observe(&metrics_g->request_time[route], elapsed_ns);
    int slot = metrics_slot(connector);
    if (slot < 0)
        return;
    atomic_fetch_add_explicit(&metrics_g->connector_requests[slot][route][code], 1, RLX);
    metrics_observe(&metrics_g->connector_time[slot][route], elapsed_ns);
}

void metrics_bank_call(int connector, bool answered, uint64_t elapsed_ns)
{
    int slot = metrics_slot(connector);
    if (slot < 0)
        slot = METRICS_MAX_CONNECTORS;
    atomic_fetch_add_explicit(&metrics_g->bank_calls[slot][answered ? 1 : 0], 1, RLX);
    metrics_observe(&metrics_g->bank_time[slot], elapsed_ns);
}

void metrics_payment_outcome(int connector, int state)
{
    int slot = metrics_slot(connector);
    if (slot < 0)
        slot = METRICS_MAX_CONNECTORS;
    if (state >= 0 && state < PAYMENT_STATE_COUNT)
        atomic_fetch_add_explicit(&metrics_g->outcomes[slot][state], 1, RLX);
}

void metrics_webhook_refused(int connector, const char *code)
{
    int slot = metrics_slot(connector);
    if (slot < 0)
        slot = METRICS_SLOTS; /* no connector */
    size_t reason = METRICS_REFUSALS - 1;
    for (size_t i = 0; code && i + 1 < METRICS_REFUSALS; i++)
        if (strcmp(code, metrics_refusal_names[i]) == 0)
            reason = i;
    atomic_fetch_add_explicit(&metrics_g->refusals[slot][reason], 1, RLX);
}

void metrics_set_db_gauges(bool known, long long reconciler_backlog, long long requires_review)
{
    atomic_store_explicit(&metrics_db.backlog, reconciler_backlog, RLX);
    atomic_store_explicit(&metrics_db.review, requires_review, RLX);
    atomic_store_explicit(&metrics_db.known, known, RLX);
}

void metrics_set_build_info(const char *version, const char *abi)
{
    snprintf(metrics_version, sizeof metrics_version, "%s", version ? version : "unknown");
    snprintf(metrics_abi, sizeof metrics_abi, "%s", abi ? abi : "unknown");
}

void metrics_db_round_trip(uint64_t elapsed_ns)
{
    atomic_fetch_add_explicit(&metrics_g->db_round_trips, 1, RLX);
    metrics_observe(&metrics_g->db_time, elapsed_ns);
}

void metrics_db_commit(void)
{
    atomic_fetch_add_explicit(&metrics_g->db_commits, 1, RLX);
}

void metrics_payment_begin(void)
{
    atomic_fetch_add_explicit(&metrics_g->in_flight[metrics_worker_slot], 1, RLX);
}

void metrics_payment_end(void)
{
    atomic_fetch_sub_explicit(&metrics_g->in_flight[metrics_worker_slot], 1, RLX);
}

int metrics_share(void)
{
    void *p = mmap(NULL, sizeof(metrics_state), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    /* What this process counted so far goes along (the values are plain
     * integers; no other thread records now). */
    memcpy(p, metrics_g, sizeof(metrics_state));
    metrics_g = p;
    return 0;
}

void metrics_reload(void)
{
    atomic_fetch_add_explicit(&metrics_g->reloads, 1, RLX);
}

void metrics_notify_attempt(metrics_notify_outcome outcome)
{
    if ((int)outcome >= 0 && outcome < METRICS_NOTIFY_OUTCOMES)
        atomic_fetch_add_explicit(&metrics_g->notify_attempts[outcome], 1, RLX);
}

void metrics_notify_claim(void)
{
    atomic_fetch_add_explicit(&metrics_g->notify_claims, 1, RLX);
}

void metrics_worker_restart(void)
{
    atomic_fetch_add_explicit(&metrics_g->worker_restarts, 1, RLX);
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct metrics_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} metrics_buf;

static void buf_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append formatted text; on OOM set b->oom and append nothing more. */
static void buf_printf(metrics_buf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !b->oom; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

/* "{route="x"}" from `labels` (nothing when ""). */
static void buf_labels(metrics_buf *b, const char *labels)
{
    if (labels[0])
        buf_printf(b, "{%s}", labels);
}

static void buf_header(metrics_buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void buf_value(metrics_buf *b, const char *name, const char *labels, unsigned long long v)
{
    buf_printf(b, "%s", name);
    buf_labels(b, labels);
    buf_printf(b, " %llu\n", v);
}

/* The _bucket, _sum and _count lines of one histogram with `labels`. */
static void buf_hist(metrics_buf *b, const char *name, const char *labels, metrics_hist *h)
{
    unsigned long long cumulative = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i <= METRICS_NBOUNDS; i++) {
        cumulative += atomic_load_explicit(&h->bucket[i], RLX);
        char le[300];
        int n = i < METRICS_NBOUNDS
                    ? snprintf(le, sizeof le, "%s%sle=\"%g\"", labels, sep, (double)metrics_bounds_us[i] / 1e6)
                    : snprintf(le, sizeof le, "%s%sle=\"+Inf\"", labels, sep);
        if (n < 0 || (size_t)n >= sizeof le) {
            b->oom = true;
            return;
        }
        buf_printf(b, "%s_bucket", name);
        buf_labels(b, le);
        buf_printf(b, " %llu\n", cumulative);
    }
    /* The count is the sum of the buckets read above, so +Inf == _count
     * even while other threads record. */
    buf_printf(b, "%s_sum", name);
    buf_labels(b, labels);
    buf_printf(b, " %.6f\n", (double)atomic_load_explicit(&h->sum_ns, RLX) / 1e9);
    buf_printf(b, "%s_count", name);
    buf_labels(b, labels);
    buf_printf(b, " %llu\n", cumulative);
}

/* Name of connector slot i, or NULL if unclaimed (or still being written). */
static const char *slot_name(int i)
{
    if (i == METRICS_MAX_CONNECTORS)
        return "_other";
    if (i == METRICS_SLOTS)
        return "_none";
    metrics_name *n = &metrics_g->connector_name[i];
    return atomic_load_explicit(&n->state, memory_order_acquire) == 2 ? n->text : NULL;
}

static unsigned long long hist_count(metrics_hist *h)
{
    return atomic_load_explicit(&h->count, RLX);
}

static void render_http(metrics_buf *b)
{
    char labels[160], code[8];
    buf_header(b, "pagoflex_http_requests_total", "counter",
               "HTTP requests answered, by route and status code.");
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++)
        for (int c = 0; c < (int)METRICS_CODE_SLOTS; c++) {
            unsigned long long v = atomic_load_explicit(&metrics_g->requests[r][c], RLX);
            if (!v)
                continue;
            metrics_code_name(c, code);
            snprintf(labels, sizeof labels, "route=\"%s\",code=\"%s\"", metrics_route_names[r], code);
            buf_value(b, "pagoflex_http_requests_total", labels, v);
        }
    buf_header(b, "pagoflex_http_request_duration_seconds", "histogram",
               "Time from a request's first byte to its answer, by route.");
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++) {
        snprintf(labels, sizeof labels, "route=\"%s\"", metrics_route_names[r]);
        buf_hist(b, "pagoflex_http_request_duration_seconds", labels, &metrics_g->request_time[r]);
    }
}

static void render_connectors(metrics_buf *b)
{
    char labels[256], code[8];
    buf_header(b, "pagoflex_connector_requests_total", "counter",
               "HTTP requests served by a connector, by connector, route and status code.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (int r = 0; name && r < METRICS_ROUTE_COUNT; r++)
            for (int c = 0; c < (int)METRICS_CODE_SLOTS; c++) {
                unsigned long long v = atomic_load_explicit(&metrics_g->connector_requests[s][r][c], RLX);
                if (!v)
                    continue;
                metrics_code_name(c, code);
                snprintf(labels, sizeof labels, "connector=\"%s\",route=\"%s\",code=\"%s\"", name,
                         metrics_route_names[r], code);
                buf_value(b, "pagoflex_connector_requests_total", labels, v);
            }
    }
    buf_header(b, "pagoflex_connector_request_duration_seconds", "histogram",
               "Time from a request's first byte to its answer, by connector and route.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (int r = 0; name && r < METRICS_ROUTE_COUNT; r++) {
            if (!hist_count(&metrics_g->connector_time[s][r]))
                continue;
            snprintf(labels, sizeof labels, "connector=\"%s\",route=\"%s\"", name, metrics_route_names[r]);
            buf_hist(b, "pagoflex_connector_request_duration_seconds", labels, &metrics_g->connector_time[s][r]);
        }
    }
}

static void render_bank(metrics_buf *b)
{
    char labels[160];
    buf_header(b, "pagoflex_bank_calls_total", "counter",
               "Calls to a bank, by connector and result (answered or transport_error).");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (int ok = 0; name && ok < 2; ok++) {
            unsigned long long v = atomic_load_explicit(&metrics_g->bank_calls[s][ok], RLX);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "connector=\"%s\",result=\"%s\"", name,
                     ok ? "answered" : "transport_error");
            buf_value(b, "pagoflex_bank_calls_total", labels, v);
        }
    }
    buf_header(b, "pagoflex_bank_call_duration_seconds", "histogram", "Duration of bank calls, by connector.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        if (!name || !hist_count(&metrics_g->bank_time[s]))
            continue;
        snprintf(labels, sizeof labels, "connector=\"%s\"", name);
        buf_hist(b, "pagoflex_bank_call_duration_seconds", labels, &metrics_g->bank_time[s]);
    }
}

static void render_payments(metrics_buf *b)
{
    char labels[200];
    buf_header(b, "pagoflex_payment_outcomes_total", "counter",
               "Payments that entered a state (bank reply, webhook or reconciler), by connector and state.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (int st = 0; name && st < PAYMENT_STATE_COUNT; st++) {
            unsigned long long v = atomic_load_explicit(&metrics_g->outcomes[s][st], RLX);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "connector=\"%s\",state=\"%s\"", name,
                     payment_state_name((pagoflex_state)st));
            buf_value(b, "pagoflex_payment_outcomes_total", labels, v);
        }
    }
    buf_header(b, "pagoflex_webhook_refusals_total", "counter",
               "Webhooks answered with an error, by connector (_none: no connector serves the path) and reason.");
    for (int s = 0; s <= METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (size_t k = 0; name && k < METRICS_REFUSALS; k++) {
            unsigned long long v = atomic_load_explicit(&metrics_g->refusals[s][k], RLX);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "connector=\"%s\",reason=\"%s\"", name, metrics_refusal_names[k]);
            buf_value(b, "pagoflex_webhook_refusals_total", labels, v);
        }
    }
    if (atomic_load_explicit(&metrics_db.known, RLX)) {
        buf_header(b, "pagoflex_reconciler_backlog", "gauge",
                   "Open payments whose next reconciler attempt is due now (database-wide).");
        buf_value(b, "pagoflex_reconciler_backlog", "",
                  (unsigned long long)atomic_load_explicit(&metrics_db.backlog, RLX));
        buf_header(b, "pagoflex_payments_requires_review", "gauge",
                   "Payments in requires_review: a person must look (database-wide).");
        buf_value(b, "pagoflex_payments_requires_review", "",
                  (unsigned long long)atomic_load_explicit(&metrics_db.review, RLX));
    }
}

static void render_process(metrics_buf *b)
{
    char labels[96];
    buf_header(b, "pagoflex_build_info", "gauge", "Always 1: the version and plugin ABI of this build.");
    snprintf(labels, sizeof labels, "version=\"%s\",abi=\"%s\"", metrics_version, metrics_abi);
    buf_value(b, "pagoflex_build_info", labels, 1);
    buf_header(b, "pagoflex_db_round_trips_total", "counter", "Statements sent to PostgreSQL and answered.");
    buf_value(b, "pagoflex_db_round_trips_total", "", atomic_load_explicit(&metrics_g->db_round_trips, RLX));
    buf_header(b, "pagoflex_db_round_trip_duration_seconds", "histogram",
               "Duration of one PostgreSQL round trip (statement sent to result read).");
    buf_hist(b, "pagoflex_db_round_trip_duration_seconds", "", &metrics_g->db_time);
    buf_header(b, "pagoflex_db_commits_total", "counter", "Transactions that wrote rows and committed.");
    buf_value(b, "pagoflex_db_commits_total", "", atomic_load_explicit(&metrics_g->db_commits, RLX));
    long long inflight = 0;
    for (int i = 0; i <= METRICS_WORKER_SLOTS; i++)
        inflight += atomic_load_explicit(&metrics_g->in_flight[i], RLX);
    buf_header(b, "pagoflex_payments_in_flight", "gauge", "Payment requests accepted and not yet answered.");
    buf_value(b, "pagoflex_payments_in_flight", "", inflight > 0 ? (unsigned long long)inflight : 0);
    buf_header(b, "pagoflex_reloads_total", "counter", "Configuration and plugin reloads.");
    buf_value(b, "pagoflex_reloads_total", "", atomic_load_explicit(&metrics_g->reloads, RLX));
    buf_header(b, "pagoflex_worker_restarts_total", "counter", "Worker processes restarted after they died.");
    buf_value(b, "pagoflex_worker_restarts_total", "", atomic_load_explicit(&metrics_g->worker_restarts, RLX));
    static const char *const notify_names[METRICS_NOTIFY_OUTCOMES] = {"delivered", "retry", "failed"};
    buf_header(b, "pagoflex_notify_attempts_total", "counter",
               "Notification delivery attempts to merchants' endpoints, by outcome.");
    for (int o = 0; o < METRICS_NOTIFY_OUTCOMES; o++) {
        char labels[48];
        snprintf(labels, sizeof labels, "outcome=\"%s\"", notify_names[o]);
        buf_value(b, "pagoflex_notify_attempts_total", labels,
                  atomic_load_explicit(&metrics_g->notify_attempts[o], RLX));
    }
    buf_header(b, "pagoflex_notify_claims_total", "counter",
               "Claims of due notification deliveries made by the notifiers (one statement each).");
    buf_value(b, "pagoflex_notify_claims_total", "", atomic_load_explicit(&metrics_g->notify_claims, RLX));
}

int metrics_render(char **text, size_t *len)
{
    metrics_buf b = {.cap = 16384};
    b.data = malloc(b.cap);
    if (!b.data)
        goto fail;
    b.data[0] = '\0';
    render_http(&b);
    render_connectors(&b);
    render_bank(&b);
    render_payments(&b);
    render_process(&b);
    if (b.oom)
        goto fail;
    *text = b.data;
    *len = b.len;
    return 0;

fail:
    free(b.data);
    return -1;
}

void metrics_reset(void)
{
    /* Every field is a plain counter or a name buffer: zero them all. */
    memset(metrics_g, 0, sizeof *metrics_g);
    memset(&metrics_db, 0, sizeof metrics_db);
    metrics_worker_slot = METRICS_WORKER_SLOTS;
}
