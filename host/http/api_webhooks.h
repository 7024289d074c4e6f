/* api_webhooks.h - POST /webhooks/{path} for ABI 1.2 plugins (see api_webhooks.c). */
#ifndef PAGOFLEX_API_WEBHOOKS_H
#define PAGOFLEX_API_WEBHOOKS_H

#include "api_flows.h"
#include "registry.h"

/* Verify, parse and apply a webhook of `pl` (which has webhook_verify and
 * webhook_parse) delivered to /webhooks/{path}; queues the answer: 401 bad
 * signature, 400 unreadable (nothing stored), 404 an event naming nothing
 * we know (the events before it applied), 503 database, else the plugin's
 * answer or 200 {"result":"ok","events":[...]}. */
enum MHD_Result api_webhooks_v12(api_request *r, const registry_plugin *pl, const char *path);

#endif
