/* api_endpoints.h - a merchant's webhook endpoints (notifications, issue 13).
 *
 *   POST   /v1/webhook_endpoints                 {"url", "events"?, "description"?}
 *          201, the endpoint with "secret": "whsec_..." (shown this once)
 *   GET    /v1/webhook_endpoints                 {"data": [...]} oldest first
 *   GET    /v1/webhook_endpoints/{id}
 *   DELETE /v1/webhook_endpoints/{id}            200 {"id", "deleted": true}
 *   POST   /v1/webhook_endpoints/{id}/rotate_secret
 *          200, the endpoint with the new "secret" (shown this once); the
 *          old one keeps signing beside it for notify_secret_grace_s
 *   GET    /v1/webhook_endpoints/{id}/deliveries {"data": [...]} newest first
 *   POST   /v1/webhook_endpoints/{id}/deliveries/{delivery_id}/resend
 *          202, a new delivery of the same event (same webhook-id), due now;
 *          409 delivery_pending while one of that event is still pending
 *
 * Every route needs the merchant's API key and sees only that merchant's
 * endpoints: another merchant's id is 404, exactly like an unknown one.
 */
#ifndef PAGOFLEX_API_ENDPOINTS_H
#define PAGOFLEX_API_ENDPOINTS_H

#include "api_flows.h"

/* The event types an endpoint may subscribe to (NULL-terminated). */
extern const char *const api_endpoints_event_types[];

/* Serve `rest`, the part of the URL after "/v1/webhook_endpoints" ("" or
 * "/..."), for request r. */
enum MHD_Result api_endpoints_route(api_request *r, const char *method, const char *rest);

#endif
