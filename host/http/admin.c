/* admin.c - what the operator sees: probes, database gauges, access lines. */
#include "admin.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "store.h"
#include "store_stats.h"

json_t *admin_livez(api_context *ctx)
{
    return json_pack("{s:s, s:I}", "status", "alive", "generation", (json_int_t)ctx->generation);
}

unsigned admin_readyz(api_context *ctx, json_t **body)
{
    bool db = store_ping(ctx->store);
    bool schema = db && api_db_ready(ctx);
    size_t connectors = registry_count(ctx->registry);
    bool draining = atomic_load(&ctx->draining);
    bool ready = db && schema && connectors > 0 && !draining;
    *body = json_pack("{s:s, s:s, s:s, s:I, s:b, s:I}", "status", ready ? "ready" : "not_ready", "database",
                      db ? "ok" : "unavailable", "schema",
                      !db      ? "unknown"
                      : schema ? "ok"
                               : "behind",
                      "connectors", (json_int_t)connectors, "draining", draining, "generation",
                      (json_int_t)ctx->generation);
    return ready ? 200 : 503;
}

bool admin_schema_ready(api_context *ctx, char *err, size_t errlen)
{
    if (ctx->cfg->migrate)
        return store_migrate(ctx->store, err, errlen) == STORE_OK;
    int applied = 0, pending = 0;
    if (store_schema_status(ctx->store, &applied, &pending, err, errlen) != STORE_OK)
        return false;
    if (pending == 0)
        return true;
    snprintf(err, errlen,
             "the database schema is at version %d and %d version(s) of this build are not "
             "applied; with migrate = false run `pagoflex db migrate -c CONFIG` as a role that "
             "may change the schema",
             applied, pending);
    return false;
}

void admin_refresh_db_gauges(api_context *ctx)
{
    const config *c = ctx->cfg;
    store_stats_timing t = {.created_ms = c->recover_after_ms,
                            .processing_ms = c->retry_base_ms,
                            .pending_ms = c->webhook_grace_s * 1000};
    long long backlog = 0, review = 0;
    bool known =
        atomic_load(&ctx->schema_ready) && store_stats_read(ctx->store, &t, &backlog, &review) == STORE_OK;
    metrics_set_db_gauges(known, backlog, review);
}

void admin_access_log(const char *method, const char *route, unsigned status, uint64_t elapsed_ns,
                      const char *key_id, const char *merchant_id, bool completed)
{
    char duration[32];
    snprintf(duration, sizeof duration, "%.3f", (double)elapsed_ns / 1e6);
    log_field f[] = {
        {.name = "method", .text = method ? method : ""},
        {.name = "route", .text = route},
        {.name = "status", .num = status},
        {.name = "duration_ms", .text = duration},
        {.name = "key", .text = key_id ? key_id : ""},
        {.name = "merchant", .text = merchant_id && *merchant_id ? merchant_id : "-"},
        {.name = "completed", .text = completed ? "true" : "false"},
    };
    log_fields(PAGOFLEX_LOG_INFO, "access", f, sizeof f / sizeof f[0]);
}
