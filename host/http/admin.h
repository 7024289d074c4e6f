/* admin.h - what the operator sees: probes, database gauges, access lines.
 *
 *   GET /livez   200 while the process serves HTTP; never asks the database
 *   GET /readyz  200 when the database answers, the schema is current, at
 *                least one connector is loaded and the process is not
 *                draining; else 503 naming what is not ready
 *
 * Both are served on the merchant port (load balancers) and the admin
 * listener; api.c routes them here.
 */
#ifndef PAGOFLEX_ADMIN_H
#define PAGOFLEX_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api.h"

/* The body of GET /livez (200). NULL on OOM (answered as a JSON 500). */
json_t *admin_livez(api_context *ctx);

/* The status (200 or 503) and *body of GET /readyz. */
unsigned admin_readyz(api_context *ctx, json_t **body);

/* Is the schema ready for this build? With `migrate = true`, apply what is
 * pending (store_migrate); with `migrate = false`, only check that nothing
 * is pending. False with the reason in err (unreachable, or behind: then
 * err says to run `pagoflex db migrate`). */
bool admin_schema_ready(api_context *ctx, char *err, size_t errlen);

/* Read the database-wide gauges (reconciler backlog, requires_review) for
 * the next metrics render; when the database does not answer they are
 * left out. */
void admin_refresh_db_gauges(api_context *ctx);

/* The access line of one finished request: method, route, status,
 * duration, the API key's public id ("-" without one), the key's merchant
 * ("-" before authorization) and, through the log writer, the current
 * request id. Never a body or a key. `completed` false: the connection
 * ended before the answer was sent. */
void admin_access_log(const char *method, const char *route, unsigned status, uint64_t elapsed_ns,
                      const char *key_id, const char *merchant_id, bool completed);

#endif
