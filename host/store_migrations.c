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

static const store_migration migration_list[] = {
    {1, "init: payments, webhook_events, payment_history", migration_0001_init},
    /* Versions need not be contiguous: each is applied once, in list order. */
    {3, "api_keys", migration_0003_api_keys},
};

const store_migration *store_migrations(size_t *count)
{
    *count = sizeof migration_list / sizeof migration_list[0];
    return migration_list;
}
