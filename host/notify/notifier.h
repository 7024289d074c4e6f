/* notifier.h - delivery of merchants' notifications (Standard Webhooks).
 *
 * One notifier thread per worker process, apart from the HTTP threads and
 * the bank thread: it claims due deliveries from the outbox
 * (store_notify_claim: FOR UPDATE SKIP LOCKED, so workers and hosts share
 * them, with a lease of notify_timeout_ms + NOTIFIER_LEASE_MARGIN_MS +
 * NOTIFIER_HOLD_MS after which a killed host's delivery is due again) a
 * batch at a time into a queue per endpoint, signs each with its
 * endpoint's secret (and the rotated-away one during its grace period)
 * when it is sent, and sends them through its own libcurl multi handle: at
 * most notify_max_in_flight per worker and notify_endpoint_max_in_flight
 * per endpoint, each attempt bounded by notify_timeout_ms. A queued
 * delivery not sent within NOTIFIER_HOLD_MS of its claim is given back. Every
 * connection's address is checked (notify_target) before it is made. A 2xx
 * answer is success; anything else is retried after
 * notify_retry_schedule_s[attempt - 1], and once the schedule is used up
 * the delivery is marked failed.
 *
 * Headers: webhook-id (the event's id, the same on every attempt),
 * webhook-timestamp (this attempt's Unix time), webhook-signature
 * ("v1,<base64>" for each signing secret, space-separated),
 * Content-Type: application/json. The body is the event's stored payload,
 * byte for byte the same on every attempt.
 */
#ifndef PAGOFLEX_NOTIFIER_H
#define PAGOFLEX_NOTIFIER_H

#include "api.h"
#include "config.h"
#include "notify_secret.h"
#include "store.h"

/* Added to notify_timeout_ms for the lease of a claim: time to record the
 * outcome after the attempt's deadline. */
#define NOTIFIER_LEASE_MARGIN_MS 5000

/* Deliveries are claimed ahead of their sends, a batch per claim, and
 * wait in the worker's queue for a free slot at most this long; the lease
 * of a claim is notify_timeout_ms + NOTIFIER_LEASE_MARGIN_MS +
 * NOTIFIER_HOLD_MS, so a queued delivery sent within it still has a whole
 * attempt's lease. Older ones are given back unsent. It bounds how long a
 * worker holds deliveries another host could send. */
#define NOTIFIER_HOLD_MS 1000

/* The most deliveries a worker queues for one endpoint: this many times
 * notify_endpoint_max_in_flight (and at most notify_max_in_flight over all
 * endpoints). */
#define NOTIFIER_AHEAD_MAX 4

/* Start the notifier thread on ctx (its store, config and notify_keys must
 * outlive notifier_stop()). One per process. 0 on success; -1 (logged,
 * nothing started) on failure or when one runs already. */
int notifier_start(api_context *ctx);

/* Stop the thread and join it. Attempts in flight are abandoned: their
 * lease runs out and they are sent again (at-least-once). A no-op when
 * none runs. */
void notifier_stop(void);

/* After a master key change: re-seal every endpoint secret that is not
 * sealed under keys->current (opening it with the previous key), so the
 * previous key can be retired. Returns how many endpoints were re-sealed,
 * or -1 when the store failed (logged). A secret neither key opens is
 * logged and left as it is. Each worker runs it once at start when
 * previous_master_key_file is set; concurrent runs are harmless (each
 * update is conditional on the row being unchanged). */
int notifier_reseal_secrets(store *st, const notify_keys *keys);

/* The delay in ms before the next attempt of a delivery whose attempt
 * number `attempts` (1 = the first) failed, or -1 when none is left. */
long notifier_retry_ms(const config *cfg, int attempts);

/* The webhook-signature header value for `payload` of event `event_id` at
 * `timestamp`: "v1,<sig>" under secret, then " v1,<sig>" under previous
 * when it is not NULL. malloc'd (caller frees); NULL on a bad secret or
 * OOM. */
char *notifier_signature(const char *secret, const char *previous, const char *event_id, long long timestamp,
                         const char *payload);

#endif
