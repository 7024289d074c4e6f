/* store_notify.h - merchants' webhook endpoints, the notification outbox
 * and its deliveries (migration 12).
 *
 * The outbox itself is written by triggers (see migration_0012 in
 * store_migrations.c): no C code path writes an event. This module serves
 * the endpoint routes (every call is scoped by merchant: another
 * merchant's id is STORE_NOT_FOUND, like an unknown one) and the notifier
 * (claims of due deliveries, their outcomes).
 *
 * Every output is allocated in the caller's arena and written on STORE_OK
 * only.
 */
#ifndef PAGOFLEX_STORE_NOTIFY_H
#define PAGOFLEX_STORE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Most rows one list answers. */
#define STORE_NOTIFY_LIST_MAX 100

/* Most endpoints one merchant may have: every state change writes one
 * delivery per subscribed endpoint inside the payment's own transaction,
 * so the fan-out is bounded. */
#define STORE_NOTIFY_ENDPOINTS_MAX 16

typedef struct store_endpoint {
    const char *id;
    const char *merchant_id;
    const char *url;
    const char *description; /* or NULL */
    const char *events_json; /* JSON array of event types, or NULL: every type */
    const char *created_at;  /* RFC 3339, UTC */
    const char *updated_at;
    const char *previous_secret_expires_at; /* while a replaced secret still signs, else NULL */
    /* The encrypted secrets (secrets_encrypt file images); only
     * store_endpoint_secrets() fills them. */
    const unsigned char *secret_enc;
    size_t secret_enc_len;
    const unsigned char *previous_secret_enc; /* NULL when none signs any more */
    size_t previous_secret_enc_len;
} store_endpoint;

typedef struct store_delivery {
    const char *id;
    const char *event_id;
    const char *event_type;
    const char *endpoint_id;
    const char *status; /* pending | succeeded | failed */
    int attempts;
    int last_http_status;        /* 0: no HTTP answer yet */
    const char *last_error;      /* or NULL */
    const char *next_attempt_at; /* pending: when it is tried (again), else NULL */
    const char *created_at;
    const char *updated_at;
    const char *delivered_at; /* or NULL */
} store_delivery;

/* A claimed delivery: what the notifier needs to send it. */
typedef struct store_notify_job {
    const char *delivery_id;
    int64_t claim_token;
    int attempts; /* counting this one */
    const char *event_id;
    const char *event_type;
    const char *payload;
    const char *endpoint_id;
    const char *url;
    store_endpoint secrets; /* secret_enc and previous_secret_enc only */
} store_notify_job;

/* Insert endpoint e (id, merchant_id, url, description, events_json and
 * secret_enc set by the caller). *out is the stored row. STORE_CONFLICT
 * (nothing stored) when the merchant has STORE_NOTIFY_ENDPOINTS_MAX
 * already. */
store_result store_endpoint_insert(store *s, const store_endpoint *e, pagoflex_arena *arena,
                                   store_endpoint *out);

/* The merchant's endpoints, oldest first (at most STORE_NOTIFY_LIST_MAX). */
store_result store_endpoint_list(store *s, const char *merchant_id, pagoflex_arena *arena,
                                 store_endpoint **out, size_t *count);

/* One of the merchant's endpoints; STORE_NOT_FOUND if it has none by that id. */
store_result store_endpoint_get(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                store_endpoint *out);

/* Delete the endpoint and its delivery log. STORE_NOT_FOUND as above. */
store_result store_endpoint_delete(store *s, const char *merchant_id, const char *id);

/* The endpoint's encrypted secrets (secret_enc, previous_secret_enc while
 * it still signs) into *out. STORE_NOT_FOUND as above. */
store_result store_endpoint_secrets(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                    store_endpoint *out);

/* Rotate: the current secret becomes the previous one, signing beside
 * new_secret_enc for grace_s seconds (a secret replaced before is dropped).
 * *out is the stored row. STORE_NOT_FOUND as above. */
store_result store_endpoint_rotate(store *s, const char *merchant_id, const char *id,
                                   const unsigned char *new_secret_enc, size_t new_secret_enc_len,
                                   long grace_s, pagoflex_arena *arena, store_endpoint *out);

/* During a master key rotation: at most `limit` endpoints (any merchant)
 * with an id after `after` ("" for the first page), in id order, whose
 * secret or previous secret is sealed under another key than the one
 * whose 8-byte id is key_id (the file header's key id), with id,
 * merchant_id and both sealed secrets set. */
store_result store_endpoint_sealed_elsewhere(store *s, const unsigned char key_id[8], const char *after,
                                             int limit, pagoflex_arena *arena, store_endpoint **out,
                                             size_t *count);

/* Replace endpoint `id`'s sealed secrets with the re-sealed ones (new_prev
 * NULL: none), only while they are still old_secret / old_prev, so a
 * rotate_secret meanwhile is not undone. STORE_CONFLICT when they changed. */
store_result store_endpoint_reseal(store *s, const char *id, const store_endpoint *old,
                                   const unsigned char *new_secret, size_t new_secret_len,
                                   const unsigned char *new_prev, size_t new_prev_len);

/* The endpoint's deliveries, newest first (at most STORE_NOTIFY_LIST_MAX).
 * STORE_NOT_FOUND when the merchant has no such endpoint. */
store_result store_delivery_list(store *s, const char *merchant_id, const char *endpoint_id,
                                 pagoflex_arena *arena, store_delivery **out, size_t *count);

/* Manual resend: a new delivery `new_id` of delivery_id's event to the
 * same endpoint, due now (the same event id, so the same webhook-id).
 * STORE_NOT_FOUND when the merchant has no such endpoint or delivery;
 * STORE_CONFLICT when a delivery of that event to that endpoint is still
 * pending (*out is then that one). */
store_result store_delivery_resend(store *s, const char *merchant_id, const char *endpoint_id,
                                   const char *delivery_id, const char *new_id, pagoflex_arena *arena,
                                   store_delivery *out);

/* Claim at most `limit` due deliveries (FOR UPDATE SKIP LOCKED, so hosts
 * and workers share them): at most rooms[i] to endpoint ids[i] (n
 * entries; what the caller holds for it already counted out) and at most
 * `room` to any endpoint not listed. A claimed row is due again lease_ms
 * from now unless its outcome is recorded first, with a new claim token
 * and one more attempt. The claim commits asynchronously (see
 * NOTIFY_ASYNC_COMMIT in store_notify.c for why that is safe). */
store_result store_notify_claim(store *s, int limit, int room, const char *const *ids, const int *rooms,
                                size_t n, long lease_ms, pagoflex_arena *arena, store_notify_job **out,
                                size_t *count);

/* Give back n claimed deliveries that were never attempted (their lease
 * could not cover an attempt any more): due again now, with the attempt
 * their claim counted taken back, each only while delivery_ids[i] is still
 * claimed by claim_tokens[i]. *given is how many were given back (the
 * others were claimed again or finished meanwhile). On any result but
 * STORE_OK nothing is written: their leases run out instead. */
store_result store_notify_give_back(store *s, const char *const *delivery_ids, const int64_t *claim_tokens,
                                    size_t n, size_t *given);

/* Record an attempt's outcome, fenced by the claim token: status
 * "succeeded", "failed" (no retry left) or "pending" (retry in retry_ms).
 * http_status 0 when there was no HTTP answer; error NULL on success.
 * STORE_CONFLICT when the claim is no longer ours (nothing written).
 * Commits asynchronously, like the claim. */
store_result store_notify_finish(store *s, const char *delivery_id, int64_t claim_token, const char *status,
                                 int http_status, const char *error, long retry_ms);

/* One attempt's outcome, as store_notify_finish takes it. */
typedef struct store_notify_outcome {
    const char *delivery_id;
    int64_t claim_token;
    const char *status;
    int http_status;
    const char *error;
    long retry_ms;
    bool recorded; /* out: written (false: the claim is no longer ours, or not written) */
} store_notify_outcome;

/* store_notify_finish for n outcomes in one statement (one commit). STORE_OK
 * with each outcome's `recorded` set; on any other result nothing is
 * written and every `recorded` is false. */
store_result store_notify_finish_many(store *s, store_notify_outcome *o, size_t n);

#endif
