/* metrics.c - lock-free counters and fixed-bucket histograms, rendered as
 * Prometheus text.
 *
 * Every value is a relaxed C11 atomic in a static array, so recording is a
 * few uncontended-or-not atomic adds and never takes a lock or allocates
 * (claiming a connector name allocates once per name). Histogram buckets
 * are stored per bucket and summed into Prometheus's cumulative form only
 * when rendered.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Upper bounds of the finite buckets, in microseconds; one +Inf bucket follows. */
static const uint64_t metrics_bounds_us[] = {100,    250,    500,     1000,    2500,    5000,
                                             10000,  25000,  50000,   100000,  250000,  500000,
                                             1000000, 2500000, 5000000, 10000000};
#define METRICS_NBOUNDS (sizeof metrics_bounds_us / sizeof metrics_bounds_us[0])

/* HTTP status classes: index 0 = no answer sent, 1..5 = 1xx..5xx. */
#define METRICS_CLASSES 6
static const char *const metrics_class_names[METRICS_CLASSES] = {"none", "1xx", "2xx",
                                                                 "3xx",  "4xx", "5xx"};

static const char *const metrics_route_names[METRICS_ROUTE_COUNT] = {
    "payment_create", "payment_get", "webhook", "connectors", "healthz", "metrics", "other"};

/* Slot METRICS_MAX_CONNECTORS is the overflow slot "_other". */
#define METRICS_SLOTS (METRICS_MAX_CONNECTORS + 1)

typedef struct metrics_hist {
    atomic_ullong bucket[METRICS_NBOUNDS + 1]; /* not cumulative; last is +Inf */
    atomic_ullong sum_ns;
    atomic_ullong count;
} metrics_hist;

typedef struct metrics_state {
    atomic_int worker; /* -1: no worker label */
    _Atomic(char *) connector_name[METRICS_MAX_CONNECTORS];
    atomic_ullong requests[METRICS_ROUTE_COUNT][METRICS_CLASSES];
    metrics_hist request_time[METRICS_ROUTE_COUNT];
    atomic_ullong connector_requests[METRICS_SLOTS][METRICS_ROUTE_COUNT][METRICS_CLASSES];
    metrics_hist connector_time[METRICS_SLOTS][METRICS_ROUTE_COUNT];
    atomic_ullong bank_calls[METRICS_SLOTS][2]; /* [0] transport error, [1] answered */
    metrics_hist bank_time[METRICS_SLOTS];
    atomic_ullong db_round_trips;
    metrics_hist db_time;
    atomic_ullong db_commits;
    atomic_llong payments_in_flight;
    atomic_ullong reloads;
    atomic_ullong worker_restarts;
} metrics_state;

/* Zero-initialised static storage is a valid initial state for C11 atomics
 * on every platform we build for. The worker label is shown only once
 * metrics_worker_set says a worker number was given. */
static metrics_state metrics_g;
static atomic_bool metrics_worker_set;

#define RLX memory_order_relaxed

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_set_worker(int worker)
{
    atomic_store_explicit(&metrics_g.worker, worker, RLX);
    atomic_store_explicit(&metrics_worker_set, worker >= 0, RLX);
}

int metrics_connector(const char *key)
{
    if (!key)
        return METRICS_MAX_CONNECTORS;
    for (int i = 0; i < METRICS_MAX_CONNECTORS; i++) {
        char *name = atomic_load_explicit(&metrics_g.connector_name[i], memory_order_acquire);
        if (!name) {
            char *copy = strdup(key);
            if (!copy)
                return METRICS_MAX_CONNECTORS;
            char *expected = NULL;
            if (atomic_compare_exchange_strong_explicit(&metrics_g.connector_name[i], &expected, copy,
                                                        memory_order_acq_rel, memory_order_acquire))
                return i;
            free(copy); /* another thread claimed slot i first: compare with its name */
            name = expected;
        }
        if (strcmp(name, key) == 0)
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

static int metrics_class(unsigned status)
{
    return status >= 100 && status < 600 ? (int)(status / 100) : 0;
}

static int metrics_slot(int connector)
{
    return connector >= 0 && connector < METRICS_SLOTS ? connector : -1;
}

void metrics_request_done(metrics_route route, int connector, unsigned status, uint64_t elapsed_ns)
{
    if ((int)route < 0 || route >= METRICS_ROUTE_COUNT)
        route = METRICS_ROUTE_OTHER;
    int cls = metrics_class(status);
    atomic_fetch_add_explicit(&metrics_g.requests[route][cls], 1, RLX);
    metrics_observe(&metrics_g.request_time[route], elapsed_ns);
    int slot = metrics_slot(connector);
    if (slot < 0)
        return;
    atomic_fetch_add_explicit(&metrics_g.connector_requests[slot][route][cls], 1, RLX);
    metrics_observe(&metrics_g.connector_time[slot][route], elapsed_ns);
}

void metrics_bank_call(int connector, bool answered, uint64_t elapsed_ns)
{
    int slot = metrics_slot(connector);
    if (slot < 0)
        slot = METRICS_MAX_CONNECTORS;
    atomic_fetch_add_explicit(&metrics_g.bank_calls[slot][answered ? 1 : 0], 1, RLX);
    metrics_observe(&metrics_g.bank_time[slot], elapsed_ns);
}

void metrics_db_round_trip(uint64_t elapsed_ns)
{
    atomic_fetch_add_explicit(&metrics_g.db_round_trips, 1, RLX);
    metrics_observe(&metrics_g.db_time, elapsed_ns);
}

void metrics_db_commit(void)
{
    atomic_fetch_add_explicit(&metrics_g.db_commits, 1, RLX);
}

void metrics_payment_begin(void)
{
    atomic_fetch_add_explicit(&metrics_g.payments_in_flight, 1, RLX);
}

void metrics_payment_end(void)
{
    atomic_fetch_sub_explicit(&metrics_g.payments_in_flight, 1, RLX);
}

/* Reloads and restarts happen in the master but are shown by workers: once
 * metrics_share_process_counters() ran (before fork), they live in memory
 * shared by the master and every worker. */
static atomic_ullong *metrics_process_counters;

static atomic_ullong *metrics_reloads_counter(void)
{
    return metrics_process_counters ? &metrics_process_counters[0] : &metrics_g.reloads;
}

static atomic_ullong *metrics_restarts_counter(void)
{
    return metrics_process_counters ? &metrics_process_counters[1] : &metrics_g.worker_restarts;
}

int metrics_share_process_counters(void)
{
    void *p = mmap(NULL, 2 * sizeof(atomic_ullong), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    metrics_process_counters = p; /* zero-filled */
    return 0;
}

void metrics_reload(void)
{
    atomic_fetch_add_explicit(metrics_reloads_counter(), 1, RLX);
}

void metrics_worker_restart(void)
{
    atomic_fetch_add_explicit(metrics_restarts_counter(), 1, RLX);
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct metrics_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
    char worker[32]; /* `worker="N"` or "" */
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

/* "{worker="1",route="x"}" from the worker label and `labels` (may be ""). */
static void buf_labels(metrics_buf *b, const char *labels)
{
    if (!b->worker[0] && !labels[0])
        return;
    buf_printf(b, "{%s%s%s}", b->worker, b->worker[0] && labels[0] ? "," : "", labels);
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
        char le[96];
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

/* Name of connector slot i, or NULL if unclaimed. */
static const char *slot_name(int i)
{
    if (i == METRICS_MAX_CONNECTORS)
        return "_other";
    return atomic_load_explicit(&metrics_g.connector_name[i], memory_order_acquire);
}

static unsigned long long hist_count(metrics_hist *h)
{
    return atomic_load_explicit(&h->count, RLX);
}

static void render_http(metrics_buf *b)
{
    char labels[160];
    buf_header(b, "pagoflex_http_requests_total", "counter", "HTTP requests answered, by route and status class.");
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++)
        for (int c = 0; c < METRICS_CLASSES; c++) {
            unsigned long long v = atomic_load_explicit(&metrics_g.requests[r][c], RLX);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "route=\"%s\",code=\"%s\"", metrics_route_names[r],
                     metrics_class_names[c]);
            buf_value(b, "pagoflex_http_requests_total", labels, v);
        }
    buf_header(b, "pagoflex_http_request_duration_seconds", "histogram",
               "Time from a request's first byte to its answer, by route.");
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++) {
        snprintf(labels, sizeof labels, "route=\"%s\"", metrics_route_names[r]);
        buf_hist(b, "pagoflex_http_request_duration_seconds", labels, &metrics_g.request_time[r]);
    }
}

static void render_connectors(metrics_buf *b)
{
    char labels[256];
    buf_header(b, "pagoflex_connector_requests_total", "counter",
               "HTTP requests served by a connector, by connector, route and status class.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (int r = 0; name && r < METRICS_ROUTE_COUNT; r++)
            for (int c = 0; c < METRICS_CLASSES; c++) {
                unsigned long long v = atomic_load_explicit(&metrics_g.connector_requests[s][r][c], RLX);
                if (!v)
                    continue;
                snprintf(labels, sizeof labels, "connector=\"%.64s\",route=\"%s\",code=\"%s\"", name,
                         metrics_route_names[r], metrics_class_names[c]);
                buf_value(b, "pagoflex_connector_requests_total", labels, v);
            }
    }
    buf_header(b, "pagoflex_connector_request_duration_seconds", "histogram",
               "Time from a request's first byte to its answer, by connector and route.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        for (int r = 0; name && r < METRICS_ROUTE_COUNT; r++) {
            if (!hist_count(&metrics_g.connector_time[s][r]))
                continue;
            snprintf(labels, sizeof labels, "connector=\"%.64s\",route=\"%s\"", name, metrics_route_names[r]);
            buf_hist(b, "pagoflex_connector_request_duration_seconds", labels, &metrics_g.connector_time[s][r]);
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
            unsigned long long v = atomic_load_explicit(&metrics_g.bank_calls[s][ok], RLX);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "connector=\"%.64s\",result=\"%s\"", name,
                     ok ? "answered" : "transport_error");
            buf_value(b, "pagoflex_bank_calls_total", labels, v);
        }
    }
    buf_header(b, "pagoflex_bank_call_duration_seconds", "histogram", "Duration of bank calls, by connector.");
    for (int s = 0; s < METRICS_SLOTS; s++) {
        const char *name = slot_name(s);
        if (!name || !hist_count(&metrics_g.bank_time[s]))
            continue;
        snprintf(labels, sizeof labels, "connector=\"%.64s\"", name);
        buf_hist(b, "pagoflex_bank_call_duration_seconds", labels, &metrics_g.bank_time[s]);
    }
}

static void render_process(metrics_buf *b)
{
    buf_header(b, "pagoflex_db_round_trips_total", "counter", "Statements sent to PostgreSQL and answered.");
    buf_value(b, "pagoflex_db_round_trips_total", "", atomic_load_explicit(&metrics_g.db_round_trips, RLX));
    buf_header(b, "pagoflex_db_round_trip_duration_seconds", "histogram",
               "Duration of one PostgreSQL round trip (statement sent to result read).");
    buf_hist(b, "pagoflex_db_round_trip_duration_seconds", "", &metrics_g.db_time);
    buf_header(b, "pagoflex_db_commits_total", "counter", "Transactions that wrote rows and committed.");
    buf_value(b, "pagoflex_db_commits_total", "", atomic_load_explicit(&metrics_g.db_commits, RLX));
    long long inflight = atomic_load_explicit(&metrics_g.payments_in_flight, RLX);
    buf_header(b, "pagoflex_payments_in_flight", "gauge", "Payment requests accepted and not yet answered.");
    buf_value(b, "pagoflex_payments_in_flight", "", inflight > 0 ? (unsigned long long)inflight : 0);
    buf_header(b, "pagoflex_reloads_total", "counter", "Configuration and plugin reloads.");
    buf_value(b, "pagoflex_reloads_total", "", atomic_load_explicit(metrics_reloads_counter(), RLX));
    buf_header(b, "pagoflex_worker_restarts_total", "counter", "Worker processes restarted after they died.");
    buf_value(b, "pagoflex_worker_restarts_total", "", atomic_load_explicit(metrics_restarts_counter(), RLX));
}

int metrics_render(char **text, size_t *len)
{
    metrics_buf b = {.cap = 16384};
    b.data = malloc(b.cap);
    if (!b.data)
        goto fail;
    b.data[0] = '\0';
    if (atomic_load_explicit(&metrics_worker_set, RLX)) {
        int n = snprintf(b.worker, sizeof b.worker, "worker=\"%d\"",
                         atomic_load_explicit(&metrics_g.worker, RLX));
        if (n < 0 || (size_t)n >= sizeof b.worker)
            goto fail;
    }
    render_http(&b);
    render_connectors(&b);
    render_bank(&b);
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
    for (int i = 0; i < METRICS_MAX_CONNECTORS; i++)
        free(atomic_exchange(&metrics_g.connector_name[i], NULL));
    /* Every other field is a plain counter: zero them all at once. The
     * names were freed above, so only NULL pointers are overwritten. */
    memset(&metrics_g, 0, sizeof metrics_g);
    atomic_store(&metrics_worker_set, false);
}
