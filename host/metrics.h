/* metrics.h - process-wide counters and latency histograms, served as
 * Prometheus text by GET /metrics.
 *
 * Every recording function is lock-free (C11 relaxed atomics on fixed
 * arrays), allocates nothing on the hot path and may be called from any
 * thread at any time. Histograms have fixed buckets (METRICS_BUCKETS_US).
 * In a multi-process setup each worker reports its own counters; after
 * metrics_set_worker() every series carries a `worker` label.
 */
#ifndef PAGOFLEX_METRICS_H
#define PAGOFLEX_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The routes of the HTTP API, as the `route` label names them. */
typedef enum metrics_route {
    METRICS_ROUTE_PAYMENT_CREATE = 0, /* POST /v1/payments */
    METRICS_ROUTE_PAYMENT_GET,        /* GET /v1/payments/{id} */
    METRICS_ROUTE_WEBHOOK,            /* POST /webhooks/{path} */
    METRICS_ROUTE_CONNECTORS,         /* GET /v1/connectors */
    METRICS_ROUTE_HEALTHZ,            /* GET /healthz */
    METRICS_ROUTE_METRICS,            /* GET /metrics */
    METRICS_ROUTE_OTHER,              /* anything else (404, 405, 413) */
    METRICS_ROUTE_COUNT
} metrics_route;

/* Connectors tracked by name; later names share the slot "_other". */
#define METRICS_MAX_CONNECTORS 32

/* No connector (a request that never reached one). */
#define METRICS_NO_CONNECTOR (-1)

/* Monotonic clock in nanoseconds, for the elapsed times passed below. */
uint64_t metrics_now_ns(void);

/* Label every series with worker="<worker>" (a worker process calls it once
 * before serving); a negative value removes the label. */
void metrics_set_worker(int worker);

/* The slot of connector `key` (its factory key, e.g. "BANCO_X"), claimed on
 * first use; the name is copied. Lock-free. When the table is full, or on
 * OOM, the shared overflow slot is returned; never fails. */
int metrics_connector(const char *key);

/* One HTTP request finished: `status` is the HTTP status sent (0 when none
 * was sent), `connector` a slot from metrics_connector() or
 * METRICS_NO_CONNECTOR, `elapsed_ns` from the first byte read to the end
 * of the answer. */
void metrics_request_done(metrics_route route, int connector, unsigned status,
                          uint64_t elapsed_ns);

/* One bank call of `connector` ended: `answered` is false for transport
 * failures (timeout, refused, reset). */
void metrics_bank_call(int connector, bool answered, uint64_t elapsed_ns);

/* One statement sent to PostgreSQL and its answer read. */
void metrics_db_round_trip(uint64_t elapsed_ns);

/* One transaction that wrote rows committed (durably, as the server says). */
void metrics_db_commit(void);

/* Payments between "request accepted" and "answer queued" (a gauge). */
void metrics_payment_begin(void);
void metrics_payment_end(void);

/* Put the reload and worker-restart counters in memory shared across
 * fork(), so workers show what the master counts. Call in the master before
 * forking. 0 on success. */
int metrics_share_process_counters(void);

/* A configuration/plugin reload happened (the master/worker code calls it). */
void metrics_reload(void);

/* A worker process was restarted after it died. */
void metrics_worker_restart(void);

/* Render every series in Prometheus text exposition format 0.0.4 into a
 * malloc()ed, NUL-terminated buffer the caller frees: *text and *len are
 * written on success (0). On OOM returns -1 and writes nothing. Readers see
 * a consistent-enough snapshot: each value is read once, atomically. */
int metrics_render(char **text, size_t *len);

/* Zero every series and forget the connector names. For tests only: no
 * other thread may record at the same time. */
void metrics_reset(void);

#endif
