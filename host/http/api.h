/* api.h - the HTTP API (GNU libmicrohttpd, JSON with Jansson). */
#ifndef PAGOFLEX_API_H
#define PAGOFLEX_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>

#include "bankq.h"
#include "config.h"
#include "workpool.h"
#include "registry.h"
#include "store.h"

/* What the handlers need; owned by the caller, alive while the server runs. */
typedef struct api_context {
    const config *cfg;
    store *store;
    registry *registry;
    bankq *bankq;       /* bank calls of POST /v1/payments (suspended meanwhile) */
    workpool *blocking; /* connectors' own blocking execute_request */
    struct store_batch *batch; /* group commit of the hot-path writes (store_batch.h), or NULL: the pool */
    const struct notify_keys *notify_keys; /* seal and open endpoint secrets (notify_secret.h), or NULL */
    struct idempotency_waiter *idem_waiter; /* requests waiting on a key (set by api_start) */
    unsigned generation;
    int admin_fd;       /* the admin listener's socket, or -1 (api_context_init) */
    pthread_mutex_t schema_lock;
    atomic_bool schema_ready;
    atomic_ulong webhook_bad_signature; /* webhooks refused by verify_webhook */
    atomic_ulong requests;
    atomic_bool draining;        /* replies carry Connection: close */
    atomic_int open_connections; /* TCP connections this process holds */
    atomic_int in_flight;        /* requests begun and not completed */
    atomic_llong last_activity_ms; /* monotonic ms of the last request start or end */
} api_context;

typedef struct api_server api_server;

/* A listening TCP socket on address:port (port 0 picks one; *bound_port gets
 * it). -1 with a reason in err on failure. */
int api_listen(const char *address, int port, int *bound_port, char *err, size_t errlen);

/* Serve `ctx` on the listening socket `fd` with ctx->cfg->threads threads,
 * and the admin routes on ctx->admin_fd when it is not -1. NULL with a
 * reason in err on failure. */
api_server *api_start(api_context *ctx, int fd, char *err, size_t errlen);

/* Stop accepting new connections; requests in flight go on. */
void api_quiesce(api_server *srv);

/* Graceful stop, step two: every reply now closes its connection; wait
 * until no connection is left, or no request is in flight and none has
 * begun or ended for a second (what is left are idle keep-alive
 * connections, closed by api_stop), or `deadline_ms` has passed; then
 * requests still waiting for another request's answer to their
 * Idempotency-Key are told to retry (409) at once. Returns the number of
 * connections still open. */
int api_drain(api_server *srv, int deadline_ms);

/* Finish requests in flight (requests still waiting for another request's
 * answer to their Idempotency-Key are told to retry, 409), stop the
 * threads, free the server. */
void api_stop(api_server *srv);

/* Make sure the schema is migrated (once per process, under ctx's lock;
 * with `migrate = false`, only that it is current); false if PostgreSQL is
 * unreachable or the schema is behind. */
bool api_db_ready(api_context *ctx);

/* Initialise the fields of ctx that are not the caller's. */
void api_context_init(api_context *ctx, const config *cfg, store *st, registry *reg);

#endif
