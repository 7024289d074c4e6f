/* store_migrations.c - the schema versions of the store.
 *
 * Embedded as string literals so the installed daemon needs no source tree.
 * A version, once released, is never edited: change the schema by appending
 * a new entry. store_migrate() runs the entries not yet recorded in
 * schema_migrations, in order, in one transaction.
 */
#include "store_migrations.h"

#define STATE_NAMES \
    "'created', 'processing', 'pending', 'succeeded', 'failed', 'requires_action', 'canceled'"

static const char migration_0001_init[] =
    /* One row per payment operation; written before the bank is called. */
    "CREATE TABLE payments (\n"
    "    id text PRIMARY KEY,\n"
    "    connector text NOT NULL,\n"
    "    amount bigint NOT NULL CHECK (amount > 0),\n"
    "    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),\n"
    "    state text NOT NULL CHECK (state IN (" STATE_NAMES ")),\n"
    "    provider_reference_id text,\n"
    "    reference text,\n"
    "    description text,\n"
    "    error_code text,\n"
    "    error_message text,\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    updated_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    /* A bank's transaction id names one payment of that bank (webhook lookup). */
    "CREATE UNIQUE INDEX payments_connector_provider_ref\n"
    "    ON payments (connector, provider_reference_id)\n"
    "    WHERE provider_reference_id IS NOT NULL;\n"
    /* Reconciliation scans stale non-terminal payments. */
    "CREATE INDEX payments_state_updated ON payments (state, updated_at);\n"
    "\n"
    /* Every verified webhook, once per (connector, event_id). */
    "CREATE TABLE webhook_events (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    connector text NOT NULL,\n"
    "    event_id text NOT NULL,\n"
    "    payment_id text REFERENCES payments (id),\n"
    "    state text NOT NULL CHECK (state IN (" STATE_NAMES ")),\n"
    "    tx_id text,\n"
    "    body text,\n"
    "    received_at timestamptz NOT NULL DEFAULT now(),\n"
    "    applied boolean NOT NULL,\n"
    "    UNIQUE (connector, event_id)\n"
    ");\n"
    "CREATE INDEX webhook_events_payment ON webhook_events (payment_id);\n"
    "\n"
    /* One row per state change, for GET /v1/payments/{id}/events. */
    "CREATE TABLE payment_history (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    payment_id text NOT NULL REFERENCES payments (id),\n"
    "    from_state text CHECK (from_state IN (" STATE_NAMES ")),\n"
    "    to_state text NOT NULL CHECK (to_state IN (" STATE_NAMES ")),\n"
    "    source text NOT NULL CHECK (source IN ('api', 'bank_reply', 'webhook', 'sync')),\n"
    "    detail text,\n"
    "    at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX payment_history_payment ON payment_history (payment_id, id);\n";

#define STATE_NAMES_V2 STATE_NAMES ", 'requires_review'"

static const char migration_0002_lifecycle[] =
    /* requires_review: the reconciler's "a person must look" state. */
    "ALTER TABLE payments DROP CONSTRAINT payments_state_check,\n"
    "    ADD CONSTRAINT payments_state_check CHECK (state IN (" STATE_NAMES_V2 ")),\n"
    /* Reconciler bookkeeping: when to look again, how often it did, why the
     * last attempt did not settle it, and whether the bank may have it
     * (false only while every create call failed to connect). */
    "    ADD COLUMN next_attempt_at timestamptz,\n"
    "    ADD COLUMN attempts int NOT NULL DEFAULT 0,\n"
    "    ADD COLUMN last_attempt_error text,\n"
    "    ADD COLUMN maybe_at_bank boolean NOT NULL DEFAULT true;\n"
    "CREATE INDEX payments_open ON payments (updated_at)\n"
    "    WHERE state IN ('created', 'processing', 'pending');\n"
    "ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_state_check,\n"
    "    ADD CONSTRAINT webhook_events_state_check CHECK (state IN (" STATE_NAMES_V2 ")),\n"
    /* An orphan event (payment_id NULL) keeps what it needs to be applied later. */
    "    ADD COLUMN error_code text,\n"
    "    ADD COLUMN error_message text;\n"
    "CREATE INDEX webhook_events_orphans ON webhook_events (connector, tx_id)\n"
    "    WHERE payment_id IS NULL;\n"
    "ALTER TABLE payment_history DROP CONSTRAINT payment_history_from_state_check,\n"
    "    DROP CONSTRAINT payment_history_to_state_check,\n"
    "    DROP CONSTRAINT payment_history_source_check,\n"
    "    ADD CONSTRAINT payment_history_from_state_check CHECK (from_state IN (" STATE_NAMES_V2 ")),\n"
    "    ADD CONSTRAINT payment_history_to_state_check CHECK (to_state IN (" STATE_NAMES_V2 ")),\n"
    "    ADD CONSTRAINT payment_history_source_check\n"
    "        CHECK (source IN ('api', 'bank_reply', 'webhook', 'sync', 'reconciler'));\n"
    /* Idempotency-Key of POST /v1/payments, per API key scope. A row is
     * written in the same statement as its payment; status/response are
     * the first answer, NULL while it is being made. */
    "CREATE TABLE idempotency_keys (\n"
    "    scope text NOT NULL,\n"
    "    key text NOT NULL,\n"
    "    request_hash text NOT NULL,\n"
    "    status int,\n"
    "    response text,\n"
    "    payment_id text,\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    expires_at timestamptz NOT NULL,\n"
    "    PRIMARY KEY (scope, key)\n"
    ");\n"
    "CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);\n";

/* Issue 6: API keys, stored as SHA-256 of a 256-bit random key only. The
 * prefix is the public, unique part a request is looked up by. */
static const char migration_0003_api_keys[] =
    "CREATE TABLE api_keys (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),\n"
    "    prefix text NOT NULL UNIQUE,\n"
    "    hash bytea NOT NULL CHECK (length(hash) = 32),\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    revoked_at timestamptz\n"
    ");\n";

/* GET /v1/payments?reference= looks payments up by merchant reference. */
static const char migration_0004_reference_index[] =
    "CREATE INDEX payments_reference ON payments (reference) WHERE reference IS NOT NULL;\n";

/* Issue 10: the reconciler's claims.
 * - claim_token: the fencing token of the latest claim (from a sequence).
 *   Every reconciler write carries "AND claim_token = <its claim>", so a
 *   claimer whose lease lapsed and whose payment another reconciler claimed
 *   since has its writes refused instead of applied.
 * - A claim finds due payments by index instead of reading every open one:
 *   payments_due for rows the reconciler scheduled (next_attempt_at),
 *   payments_unscheduled for rows it never touched, due a state-dependent
 *   grace after updated_at. They replace payments_open, which only the
 *   claim used. (Built inside the migration's transaction: writes to
 *   payments wait for the build, seconds per million rows.) */
static const char migration_0005_reconciler_claims[] =
    "CREATE SEQUENCE payments_claim_token_seq AS bigint;\n"
    "ALTER TABLE payments ADD COLUMN claim_token bigint;\n"
    "DROP INDEX payments_open;\n"
    "CREATE INDEX payments_due ON payments (next_attempt_at)\n"
    "    WHERE state IN ('created', 'processing', 'pending');\n"
    "CREATE INDEX payments_unscheduled ON payments (state, updated_at)\n"
    "    WHERE next_attempt_at IS NULL AND state IN ('created', 'processing', 'pending');\n";

/* Retention (store_janitor.c): the purge finds old events and history rows
 * by age. */
static const char migration_0006_retention_indexes[] =
    "CREATE INDEX webhook_events_received_at ON webhook_events (received_at);\n"
    "CREATE INDEX payment_history_at ON payment_history (at);\n";

static const store_migration migration_list[] = {
    {1, "init: payments, webhook_events, payment_history", migration_0001_init},
    /* Versions need not be contiguous: each is applied once, in list order. */
    {2, "lifecycle: idempotency keys, reconciler columns, orphan events, requires_review",
     migration_0002_lifecycle},
    {3, "api_keys", migration_0003_api_keys},
    {4, "index payments by merchant reference", migration_0004_reference_index},
    {5, "reconciler: claim fencing token, due-time indexes", migration_0005_reconciler_claims},
    {6, "retention: index webhook events and payment history by age",
     migration_0006_retention_indexes},
};

const store_migration *store_migrations(size_t *count)
{
    *count = sizeof migration_list / sizeof migration_list[0];
    return migration_list;
}
