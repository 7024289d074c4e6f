/* store.h - payment operations and webhook events in PostgreSQL (libpq).
 *
 * A store is a small pool of connections shared by the threads of a process.
 * Every call takes a connection, runs its statements and gives it back. A
 * call that finds PostgreSQL unreachable returns STORE_UNAVAILABLE; the
 * connection is reset on a later call, so the host reconnects by itself.
 */
#ifndef PAGOFLEX_STORE_H
#define PAGOFLEX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pagoflex/connector.h>

typedef struct store store;

typedef enum store_result {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1,   /* no such payment */
    STORE_CONFLICT = 2,    /* transition refused (state did not allow it) */
    STORE_DUPLICATE = 3,   /* event or id already stored */
    STORE_UNAVAILABLE = 4, /* PostgreSQL unreachable; retry later */
    STORE_ERROR = 5        /* anything else; logged */
} store_result;

/* A payment row. Strings live in the arena passed to the call; NULL when SQL NULL. */
typedef struct store_payment {
    const char *id;
    const char *connector;
    int64_t amount;
    const char *currency;
    pagoflex_state state;
    const char *provider_reference_id;
    const char *reference;
    const char *description;
    const char *error_code;
    const char *error_message;
    const char *created_at; /* RFC 3339, UTC */
    const char *updated_at;
    /* Issue 11 (migration 8). */
    bool manual_capture;       /* capture_method "manual" */
    int64_t amount_capturable; /* authorized, not captured (requires_capture) */
    int64_t amount_received;   /* captured */
    int64_t amount_refunded;   /* refunds pending or succeeded */
    const char *return_url;
    const char *redirect_url;  /* requires_action: where the customer goes */
    const char *payment_method_type;  /* "card_token", or NULL */
    const char *payment_method_token; /* the bank's card token, or NULL */
    int64_t capture_amount;           /* the one capture asked for, 0 = none */
    const char *pending_operation;    /* "capture", "void" in flight, or NULL */
    /* Issue 13 (migration 10): the merchant that owns it (required on insert). */
    const char *merchant_id;
    /* Migration 11: the connector account it was created with (required on
     * insert); every later call for it uses that account's credentials. */
    const char *connector_account;
    /* Issue 14 (migration 13): the merchant's metadata, a JSON object's
     * text, or NULL. Never given to a connector. */
    const char *metadata;
} store_payment;

/* Open a pool of `pool_size` connections to `conninfo`. Connections are made
 * lazily, so this succeeds even while PostgreSQL is down. NULL on OOM. */
store *store_open(const char *conninfo, int pool_size);

/* Close every connection and free the pool. No call may be running. NULL
 * is a no-op. */
void store_close(store *s);

/* Apply the versioned migrations that are not applied yet, under an advisory
 * lock (safe to run twice, safe with two hosts starting at once). When none
 * is pending nothing but a read is run, so a role without DDL rights may
 * call it on a current schema. store_migrate.c. */
store_result store_migrate(store *s, char *err, size_t errlen);

/* The schema as this build sees it: *applied the highest version recorded
 * (0: none, or no schema_migrations table), *pending how many of this
 * build's versions are not recorded. STORE_OK (both written), or
 * STORE_UNAVAILABLE / STORE_ERROR with the reason in err. */
store_result store_schema_status(store *s, int *applied, int *pending, char *err, size_t errlen);

/* Insert a new payment in state `created`. p->id is chosen by the caller;
 * p->connector_account is the account the caller built the bank request
 * with: STORE_CONFLICT, nothing written, when it is not the account the
 * merchant uses for p->connector (resolved in the INSERT, migration 11;
 * store_account_resolve tells which one it is). */
store_result store_payment_insert(store *s, const store_payment *p, pagoflex_arena *arena,
                                  store_payment *out);

/* Fetch one payment, whoever owns it (for the host's own work: bank
 * replies, webhooks, the reconciler). STORE_NOT_FOUND if absent. A route a
 * merchant calls uses store_payment_get_of. */
store_result store_payment_get(store *s, const char *id, pagoflex_arena *arena,
                               store_payment *out);

/* Fetch payment `id` if merchant `merchant_id` owns it: the merchant is in
 * the statement's WHERE, so another merchant's payment is STORE_NOT_FOUND
 * by the same path as an unknown id. *out written on STORE_OK only;
 * STORE_ERROR (logged) when merchant_id is NULL or "". */
store_result store_payment_get_of(store *s, const char *merchant_id, const char *id, pagoflex_arena *arena,
                                  store_payment *out);

/* Move payment `id` to `to` with a conditional UPDATE (state = ANY(allowed
 * from)); provider_ref (if not NULL) is stored when none is stored yet;
 * error_code/error_message are stored with a failed state. On STORE_OK or
 * STORE_CONFLICT, *out holds the row as it is now. The history row has
 * source "api"; see store_payment_transition_from() for the details. */
store_result store_payment_transition(store *s, const char *id, pagoflex_state to,
                                      const char *provider_ref, const char *error_code,
                                      const char *error_message, pagoflex_arena *arena,
                                      store_payment *out);

/* Where a transition came from; stored in payment_history.source. */
#define STORE_SOURCE_API "api"
#define STORE_SOURCE_BANK_REPLY "bank_reply"
#define STORE_SOURCE_WEBHOOK "webhook"
#define STORE_SOURCE_SYNC "sync"
#define STORE_SOURCE_RECONCILER "reconciler"

/* store_payment_transition() with the origin of the change recorded in the
 * payment's history: `source` is one of STORE_SOURCE_*, `detail` (or NULL) a
 * short note such as an event id. In one statement: the conditional UPDATE
 * and, when it moves the row, one payment_history row.
 * Error fields: error_code/error_message, when error_code is not NULL, are
 * stored with any state (a payment left `processing` may say why); moving to
 * `succeeded` clears them; otherwise they are kept.
 * A provider_ref refused with the transition (STORE_CONFLICT) is still
 * stored if the row has none: a bank reply that lost the race to a webhook
 * still records the bank's id.
 * Returns STORE_OK (moved), STORE_CONFLICT (state did not allow it),
 * STORE_NOT_FOUND, STORE_UNAVAILABLE or STORE_ERROR (logged); on STORE_OK
 * and STORE_CONFLICT *out holds the row as it is now, else *out is untouched. */
store_result store_payment_transition_from(store *s, const char *id, pagoflex_state to,
                                           const char *source, const char *detail,
                                           const char *provider_ref, const char *error_code,
                                           const char *error_message, pagoflex_arena *arena,
                                           store_payment *out);

/* Store a verified webhook event of `connector` received for connector
 * account `account` once per (connector, account, event_id) and apply its
 * transition to the payment of that account it names (by
 * ev->payment_id, else by provider_reference_id = ev->tx_id), in one
 * transaction. Returns STORE_OK (applied, or refused by the state machine:
 * *applied tells), STORE_DUPLICATE (already stored: nothing changed),
 * STORE_NOT_FOUND (no such payment: nothing stored). *out holds the row
 * on STORE_OK and STORE_DUPLICATE. The payment must belong to `connector`.
 * ev->tx_id is stored as provider_reference_id when the row has none; error
 * fields follow store_payment_transition_from(); the history row has source
 * "webhook" and the event id as detail. Concurrent calls with the same event
 * (any number of threads or hosts) store and apply it exactly once. The raw
 * body is stored as text: a body with a NUL byte or invalid UTF-8 gives
 * STORE_ERROR (logged) and nothing is stored. When the event gave the
 * payment its bank id, orphan events waiting for that id are applied too
 * (store_orphan_apply), after the event's own commit. */
store_result store_webhook_apply(store *s, const char *connector, const char *account,
                                 const pagoflex_webhook_event *ev, const unsigned char *body, size_t body_len,
                                 pagoflex_arena *arena, store_payment *out, bool *applied);

/* Store provider_ref as payment `id`'s bank id if it has none yet (what a
 * refused store_payment_transition_from does; for callers that ran the
 * transition through store_batch.h). *out: the row as it is now, on
 * STORE_OK; STORE_NOT_FOUND when there is no such payment. */
store_result store_payment_keep_ref(store *s, const char *id, const char *provider_ref, pagoflex_arena *arena,
                                    store_payment *out);

/* One state change of a payment, oldest first. Strings live in the arena. */
typedef struct store_history_entry {
    int from_state;       /* a pagoflex_state, or -1 for the row's creation */
    pagoflex_state to_state;
    const char *source;   /* STORE_SOURCE_* */
    const char *detail;   /* e.g. the webhook event id; NULL if none */
    const char *at;       /* RFC 3339, UTC, milliseconds */
} store_history_entry;

/* Read the history of payment `id`: *entries (an array in the arena, NULL
 * when empty) and *count. STORE_NOT_FOUND if there is no such payment. The
 * outputs are written only on STORE_OK. */
store_result store_payment_history(store *s, const char *id, pagoflex_arena *arena,
                                   store_history_entry **entries, size_t *count);

/* store_payment_history of a payment merchant `merchant_id` owns; another
 * merchant's payment is STORE_NOT_FOUND, as an unknown id (the merchant is
 * in the WHERE). STORE_ERROR (logged) when merchant_id is NULL or "". */
store_result store_payment_history_of(store *s, const char *merchant_id, const char *id,
                                      pagoflex_arena *arena, store_history_entry **entries, size_t *count);

/* Rows of a store_query(): cells[row * cols + col], NULL for SQL NULL;
 * everything lives in the arena passed to the call. */
typedef struct store_rows {
    size_t rows;
    size_t cols;
    const char **cells;
} store_rows;

/* Run one statement with `n` bound text parameters (values never enter the
 * SQL text) on a pooled connection, for modules that own their tables
 * (apikey.c). Returns STORE_OK with *out filled, STORE_DUPLICATE on a
 * unique violation, STORE_UNAVAILABLE or STORE_ERROR (logged as `what`);
 * *out is written only on STORE_OK. */
store_result store_query(store *s, const char *what, const char *sql, int n,
                         const char *const *params, pagoflex_arena *arena, store_rows *out);

/* True if a connection can run "SELECT 1" now. */
bool store_ping(store *s);

#endif
