/* metrics.h - process-wide counters and latency histograms, served as
 * Prometheus text by GET /metrics.
 *
 * Every recording function is lock-free (C11 relaxed atomics on fixed
 * arrays), allocates nothing on the hot path and may be called from any
 * thread at any time. Histograms have fixed buckets (METRICS_BUCKETS_US).
 * Once the master called metrics_share() (before it forks), every series
 * lives in one shared-memory block that the master and all its workers
 * write: any worker's scrape shows the whole process group, and what a
 * worker counted stays when it dies or its generation is replaced.
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
    METRICS_ROUTE_METRICS,            /* GET /metrics (admin listener) */
    METRICS_ROUTE_PAYMENT_LIST,       /* GET /v1/payments?reference= */
    METRICS_ROUTE_PAYMENT_EVENTS,     /* GET /v1/payments/{id}/events */
    METRICS_ROUTE_LIVEZ,              /* GET /livez */
    METRICS_ROUTE_READYZ,             /* GET /readyz */
    METRICS_ROUTE_PAYMENT_CAPTURE,    /* POST /v1/payments/{id}/capture */
    METRICS_ROUTE_PAYMENT_CANCEL,     /* POST /v1/payments/{id}/cancel */
    METRICS_ROUTE_REFUND_CREATE,      /* POST /v1/refunds */
    METRICS_ROUTE_REFUND_GET,         /* GET /v1/refunds/{id} */
    METRICS_ROUTE_REFUND_LIST,        /* GET /v1/refunds?payment_id= */
    METRICS_ROUTE_WEBHOOK_ENDPOINTS,  /* /v1/webhook_endpoints[/...] (api_endpoints.c) */
    METRICS_ROUTE_OTHER,              /* no route matched (404, 405, 413, 431) */
    METRICS_ROUTE_COUNT
} metrics_route;

/* The `route` label of `route` ("payment_create", ...; "other" out of range). */
const char *metrics_route_name(metrics_route route);

/* Connectors tracked by name; later names share the slot "_other". */
#define METRICS_MAX_CONNECTORS 32

/* No connector (a request that never reached one). */
#define METRICS_NO_CONNECTOR (-1)

/* Monotonic clock in nanoseconds, for the elapsed times passed below. */
uint64_t metrics_now_ns(void);

/* Worker processes tracked apart for the payments-in-flight gauge (the
 * master's worker slots: CRASHBOARD_SLOTS). */
#define METRICS_WORKER_SLOTS 96

/* This process is worker `slot` (0..METRICS_WORKER_SLOTS-1; a worker calls
 * it once before serving): its payments in flight are counted in its own
 * slot, which the master zeroes when the worker is gone. Negative: no slot
 * (counted in a slot no one zeroes). */
void metrics_set_worker(int slot);

/* The worker of `slot` is gone (the master reaped it): its payments are no
 * longer in flight. */
void metrics_worker_gone(int slot);

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

/* A payment of `connector` entered `state` (a pagoflex_state): by the
 * bank's reply, a webhook or the reconciler. */
void metrics_payment_outcome(int connector, int state);

/* A webhook of `connector` (METRICS_NO_CONNECTOR: no connector serves its
 * path) was refused with error `code` (the JSON error code, e.g.
 * "invalid_signature"; codes not known here count as "other"). */
void metrics_webhook_refused(int connector, const char *code);

/* Gauges read from PostgreSQL at scrape time (store_stats.c): `known` is
 * false when the database could not be read (the gauges are then left
 * out of the next render). */
void metrics_set_db_gauges(bool known, long long reconciler_backlog, long long requires_review);

/* Version strings for pagoflex_build_info (copied; static storage). */
void metrics_set_build_info(const char *version, const char *abi);

/* Move every series into one anonymous shared mapping (MAP_SHARED), so
 * the processes forked after this call count into the same block. Call in
 * the master before forking, with no other thread recording. 0 on
 * success; -1 (errno set) and nothing changes. */
int metrics_share(void);

/* A configuration/plugin reload happened (the master/worker code calls it). */
void metrics_reload(void);

/* A worker process was restarted after it died. */
void metrics_worker_restart(void);

/* Outcomes of one notification delivery attempt (notifier.c). */
typedef enum metrics_notify_outcome {
    METRICS_NOTIFY_DELIVERED = 0, /* 2xx */
    METRICS_NOTIFY_RETRY,         /* failed; tried again later */
    METRICS_NOTIFY_FAILED,        /* failed; no retry left (the delivery is failed) */
    METRICS_NOTIFY_OUTCOMES
} metrics_notify_outcome;

/* One delivery attempt to a merchant's endpoint ended with `outcome`. */
void metrics_notify_attempt(metrics_notify_outcome outcome);

/* A notifier sent one claim of due deliveries to the database (whatever
 * it returned): claims per delivery is the notifier's bookkeeping cost. */
void metrics_notify_claim(void);

/* Render every series in Prometheus text exposition format 0.0.4 into a
 * malloc()ed, NUL-terminated buffer the caller frees: *text and *len are
 * written on success (0). On OOM returns -1 and writes nothing. Readers see
 * a consistent-enough snapshot: each value is read once, atomically. */
int metrics_render(char **text, size_t *len);

/* Zero every series and forget the connector names. For tests only: no
 * other thread may record at the same time. */
void metrics_reset(void);

#endif
