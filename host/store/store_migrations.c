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

#define STATE_NAMES_V8 STATE_NAMES_V2 ", 'requires_capture'"
#define REFUND_STATE_NAMES "'created', 'processing', 'pending', 'succeeded', 'failed', 'requires_review'"

/* Issue 11: manual capture, void, refunds.
 * - payments: capture_method, return_url, the card token, the redirect URL
 *   of requires_action, and the amounts. amount_capturable and
 *   amount_received follow the state (trigger payments_amounts), so every
 *   statement that moves a payment keeps them right. amount_refunded is the
 *   sum of the payment's refunds that are not failed: a refund reserves it
 *   in the statement that inserts it, a failed refund gives it back.
 * - pending_operation/operation_amount: a capture or void in flight. One is
 *   claimed with a conditional UPDATE (pending_operation IS NULL), so of a
 *   capture and a cancel racing, on any number of hosts, one wins; a
 *   payment has one capture (capture_amount, kept once captured).
 * - The CHECKs are the invariants: what is refunded never exceeds what was
 *   received, a capture never exceeds the authorization. */
static const char migration_0008_flows[] =
    "ALTER TABLE payments DROP CONSTRAINT payments_state_check,\n"
    "    ADD CONSTRAINT payments_state_check CHECK (state IN (" STATE_NAMES_V8 ")),\n"
    "    ADD COLUMN capture_method text NOT NULL DEFAULT 'automatic'\n"
    "        CHECK (capture_method IN ('automatic', 'manual')),\n"
    "    ADD COLUMN return_url text,\n"
    "    ADD COLUMN payment_method_type text,\n"
    "    ADD COLUMN payment_method_token text,\n"
    "    ADD COLUMN redirect_url text,\n"
    "    ADD COLUMN amount_capturable bigint NOT NULL DEFAULT 0,\n"
    "    ADD COLUMN amount_received bigint NOT NULL DEFAULT 0,\n"
    "    ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0,\n"
    "    ADD COLUMN capture_amount bigint,\n"
    "    ADD COLUMN pending_operation text CHECK (pending_operation IN ('capture', 'void')),\n"
    "    ADD CONSTRAINT payments_amount_capturable CHECK (amount_capturable BETWEEN 0 AND amount),\n"
    "    ADD CONSTRAINT payments_amount_received CHECK (amount_received BETWEEN 0 AND amount),\n"
    "    ADD CONSTRAINT payments_amount_refunded\n"
    "        CHECK (amount_refunded >= 0 AND amount_refunded <= amount_received),\n"
    "    ADD CONSTRAINT payments_capture_amount CHECK (capture_amount BETWEEN 1 AND amount);\n"
    /* Existing succeeded payments were captured in full. */
    "UPDATE payments SET amount_received = amount WHERE state = 'succeeded';\n"
    "CREATE FUNCTION payments_amounts() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    IF NEW.state IS DISTINCT FROM OLD.state THEN\n"
    "        IF NEW.state = 'requires_capture' THEN\n"
    "            NEW.amount_capturable := NEW.amount;\n"
    "        ELSIF NEW.state = 'succeeded' THEN\n"
    "            NEW.amount_received := COALESCE(NEW.capture_amount, NEW.amount);\n"
    "            NEW.amount_capturable := 0;\n"
    "            NEW.pending_operation := NULL;\n"
    "        ELSIF NEW.state IN ('failed', 'canceled') THEN\n"
    "            NEW.amount_capturable := 0;\n"
    "            NEW.pending_operation := NULL;\n"
    "        END IF;\n"
    "        IF NEW.state <> 'requires_action' THEN\n"
    "            NEW.redirect_url := NULL;\n"
    "        END IF;\n"
    "    END IF;\n"
    "    RETURN NEW;\n"
    "END $$;\n"
    "CREATE TRIGGER payments_amounts BEFORE UPDATE ON payments\n"
    "    FOR EACH ROW EXECUTE FUNCTION payments_amounts();\n"
    "ALTER TABLE payment_history DROP CONSTRAINT payment_history_from_state_check,\n"
    "    DROP CONSTRAINT payment_history_to_state_check,\n"
    "    ADD CONSTRAINT payment_history_from_state_check CHECK (from_state IN (" STATE_NAMES_V8 ")),\n"
    "    ADD CONSTRAINT payment_history_to_state_check CHECK (to_state IN (" STATE_NAMES_V8 "));\n"
    "CREATE TABLE refunds (\n"
    "    id text PRIMARY KEY,\n"
    "    payment_id text NOT NULL REFERENCES payments (id),\n"
    "    connector text NOT NULL,\n"
    "    amount bigint NOT NULL CHECK (amount > 0),\n"
    "    currency char(3) NOT NULL,\n"
    "    state text NOT NULL CHECK (state IN (" REFUND_STATE_NAMES ")),\n"
    "    provider_reference_id text,\n"
    "    reason text,\n"
    "    metadata jsonb,\n"
    "    error_code text,\n"
    "    error_message text,\n"
    "    attempts int NOT NULL DEFAULT 0,\n"
    "    next_attempt_at timestamptz,\n"
    "    last_attempt_error text,\n"
    "    claim_token bigint,\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    updated_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX refunds_payment ON refunds (payment_id, created_at);\n"
    "CREATE UNIQUE INDEX refunds_connector_provider_ref ON refunds (connector, provider_reference_id)\n"
    "    WHERE provider_reference_id IS NOT NULL;\n"
    "CREATE INDEX refunds_open ON refunds (updated_at)\n"
    "    WHERE state IN ('created', 'processing', 'pending');\n"
    "CREATE TABLE refund_history (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    refund_id text NOT NULL REFERENCES refunds (id),\n"
    "    from_state text CHECK (from_state IN (" REFUND_STATE_NAMES ")),\n"
    "    to_state text NOT NULL CHECK (to_state IN (" REFUND_STATE_NAMES ")),\n"
    "    source text NOT NULL\n"
    "        CHECK (source IN ('api', 'bank_reply', 'webhook', 'sync', 'reconciler')),\n"
    "    detail text,\n"
    "    at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX refund_history_refund ON refund_history (refund_id, id);\n"
    /* Events: a refund's, and ignored ones (no state). The unique
     * (connector, event_id) dedupes them all. */
    "ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_state_check,\n"
    "    ALTER COLUMN state DROP NOT NULL,\n"
    "    ADD CONSTRAINT webhook_events_state_check CHECK (state IN (" STATE_NAMES_V8 ")),\n"
    "    ADD COLUMN kind text NOT NULL DEFAULT 'payment'\n"
    "        CHECK (kind IN ('payment', 'refund', 'ignored')),\n"
    "    ADD COLUMN refund_id text REFERENCES refunds (id),\n"
    "    ADD COLUMN event_type text;\n"
    "CREATE INDEX webhook_events_refund ON webhook_events (refund_id) WHERE refund_id IS NOT NULL;\n";

/* The reconciler for refunds, captures and voids (issue 11, continued).
 * - Refunds are claimed like payments: a fencing token from their own
 *   sequence, and two partial indexes on the due time (refunds_due for
 *   rows the reconciler scheduled, refunds_unscheduled for rows it never
 *   touched) that replace refunds_open, so a claim reads only due rows.
 * - Payments waiting with a capture or void in flight (or asked to be
 *   looked up while requires_capture / requires_action) are due at
 *   hold_due_at; operation_accepted says the bank accepted the operation
 *   (PENDING: its webhook or a sync tells), else its outcome is unknown
 *   and it is re-sent with the same operation id. payments_hold_due finds
 *   the scheduled ones, payments_operation_unscheduled an operation whose
 *   host died before it scheduled it. */
static const char migration_0009_flow_reconciler[] =
    "CREATE SEQUENCE refunds_claim_token_seq AS bigint;\n"
    "DROP INDEX refunds_open;\n"
    "CREATE INDEX refunds_due ON refunds (next_attempt_at)\n"
    "    WHERE state IN ('created', 'processing', 'pending');\n"
    "CREATE INDEX refunds_unscheduled ON refunds (state, updated_at)\n"
    "    WHERE next_attempt_at IS NULL AND state IN ('created', 'processing', 'pending');\n"
    "ALTER TABLE payments ADD COLUMN hold_due_at timestamptz,\n"
    "    ADD COLUMN operation_accepted boolean NOT NULL DEFAULT false;\n"
    "CREATE INDEX payments_hold_due ON payments (hold_due_at)\n"
    "    WHERE hold_due_at IS NOT NULL AND state IN ('requires_capture', 'requires_action');\n"
    "CREATE INDEX payments_operation_unscheduled ON payments (updated_at)\n"
    "    WHERE hold_due_at IS NULL AND pending_operation IS NOT NULL;\n";

/* Issue 13: merchants. A merchant owns its API keys, payments and refunds.
 * Rows that exist before this version belong to the default merchant,
 * mer_default, which the upgrade creates (named "default"); the config's
 * api_key_sha256 keys act for it too. The column defaults exist only to
 * move existing rows: they are dropped, so a new row names its merchant.
 * refunds.merchant_id is the payment's, copied when the refund is made, so
 * that a merchant's refunds are listed without a join.
 * Idempotency keys were scoped by the SHA-256 (hex) of the API key, then
 * " <route>" for the flow routes; they are now scoped by merchant. Every
 * key of today belongs to mer_default, so each live scope's 64 hex digits
 * become "mer_default" and a retry across the upgrade still finds its
 * first answer. Of several API keys that used one Idempotency-Key, the
 * oldest row moves; the others keep their old scope and expire.
 * GET /v1/payments?reference= looks up a merchant's references: the
 * reference index of version 4 becomes (merchant_id, reference). */
static const char migration_0010_merchants[] =
    "CREATE TABLE merchants (\n"
    "    id text PRIMARY KEY CHECK (id ~ '^mer_[0-9a-z_]{1,40}$'),\n"
    "    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    disabled_at timestamptz\n"
    ");\n"
    "INSERT INTO merchants (id, name) VALUES ('mer_default', 'default');\n"
    "ALTER TABLE api_keys ADD COLUMN merchant_id text NOT NULL DEFAULT 'mer_default'\n"
    "    REFERENCES merchants (id);\n"
    "ALTER TABLE api_keys ALTER COLUMN merchant_id DROP DEFAULT;\n"
    "ALTER TABLE payments ADD COLUMN merchant_id text NOT NULL DEFAULT 'mer_default';\n"
    "ALTER TABLE payments ALTER COLUMN merchant_id DROP DEFAULT;\n"
    "ALTER TABLE refunds ADD COLUMN merchant_id text NOT NULL DEFAULT 'mer_default';\n"
    "ALTER TABLE refunds ALTER COLUMN merchant_id DROP DEFAULT;\n"
    "WITH moved AS (\n"
    "    SELECT scope, key, 'mer_default' || substr(scope, 65) AS to_scope,\n"
    "           row_number() OVER (PARTITION BY substr(scope, 65), key ORDER BY created_at, scope) AS n\n"
    "    FROM idempotency_keys WHERE scope ~ '^[0-9a-f]{64}( |$)'\n"
    ")\n"
    "UPDATE idempotency_keys i SET scope = moved.to_scope FROM moved\n"
    "    WHERE i.scope = moved.scope AND i.key = moved.key AND moved.n = 1\n"
    "    AND NOT EXISTS (SELECT 1 FROM idempotency_keys o\n"
    "                    WHERE o.scope = moved.to_scope AND o.key = moved.key);\n"
    "DROP INDEX payments_reference;\n"
    "CREATE INDEX payments_merchant_reference ON payments (merchant_id, reference)\n"
    "    WHERE reference IS NOT NULL;\n";

/* Issue 16: fewer index entries and foreign-key checks per payment and per
 * webhook, each one that goes found to earn nothing on the hot path.
 * - payments_state_updated (state, updated_at) took an entry on the insert
 *   and on every move of every payment (updated_at changes, so no update
 *   is HOT); the claims use payments_due/payments_unscheduled, and its last
 *   reader, the requires_review gauge of GET /metrics, gets a partial index
 *   that holds only the payments in review.
 * - webhook_events_payment (payment_id): no statement looks events up by
 *   payment (the retention purge walks webhook_events_received_at and joins
 *   payments by their key), and payments are never deleted, so no foreign
 *   key check needs it either.
 * - The foreign keys of payment_history and webhook_events to payments ran
 *   a look-up and a KEY SHARE lock of the payment for every row written.
 *   Both tables are only written by statements that take the payment id
 *   from the payment row they have just written or locked (store.c,
 *   store_flows.c, store_orphan.c attach), and no payment is ever deleted,
 *   so the check could never fail. */
static const char migration_0016_hot_path_indexes[] =
    "DROP INDEX payments_state_updated;\n"
    "CREATE INDEX payments_review ON payments (updated_at) WHERE state = 'requires_review';\n"
    "DROP INDEX webhook_events_payment;\n"
    "ALTER TABLE payment_history DROP CONSTRAINT payment_history_payment_id_fkey;\n"
    "ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_payment_id_fkey;\n";

/* Issue 13: connector accounts. A merchant uses a connector through one of
 * that connector's accounts (credentials <plugin>/<account>.cfg.enc; the
 * account "default" is <plugin>.cfg.enc). connector_accounts binds a
 * merchant to the account it uses for a connector; mer_default uses
 * "default" for every connector it has no row for, so a deployment from
 * before this version keeps working unchanged; any other merchant without
 * a row has no account (422 connector_not_configured). A payment records
 * the account it was created with, once: every later call for it (sync,
 * capture, void, refund, webhook) uses that account's credentials, even if
 * the binding changes meanwhile. A refund copies its payment's. Existing
 * payments and refunds were made with the one set of credentials there
 * was: "default". */
static const char migration_0011_connector_accounts[] =
    "CREATE TABLE connector_accounts (\n"
    "    merchant_id text NOT NULL REFERENCES merchants (id),\n"
    "    connector text NOT NULL CHECK (connector ~ '^[A-Z0-9_]{1,32}$'),\n"
    "    account text NOT NULL CHECK (account ~ '^[a-z0-9_-]{1,32}$'),\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    PRIMARY KEY (merchant_id, connector)\n"
    ");\n"
    "ALTER TABLE payments ADD COLUMN connector_account text NOT NULL DEFAULT 'default';\n"
    "ALTER TABLE payments ALTER COLUMN connector_account DROP DEFAULT;\n"
    "ALTER TABLE refunds ADD COLUMN connector_account text NOT NULL DEFAULT 'default';\n"
    "ALTER TABLE refunds ALTER COLUMN connector_account DROP DEFAULT;\n"
    /* A webhook arrives at one account's URL and is verified with that
     * account's secret: its event is stored, deduplicated and kept as an
     * orphan per (connector, account), and only ever applied to that
     * account's payments and refunds. */
    "ALTER TABLE webhook_events ADD COLUMN connector_account text NOT NULL DEFAULT 'default';\n"
    "ALTER TABLE webhook_events ALTER COLUMN connector_account DROP DEFAULT;\n"
    "ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_connector_event_id_key,\n"
    "    ADD CONSTRAINT webhook_events_account_event_key UNIQUE (connector, connector_account, event_id);\n"
    "DROP INDEX webhook_events_orphans;\n"
    "CREATE INDEX webhook_events_orphans ON webhook_events (connector, connector_account, tx_id)\n"
    "    WHERE payment_id IS NULL;\n";

/* Issue 13: signed notifications to merchants (Standard Webhooks).
 * - webhook_endpoints: a merchant's delivery targets. The signing secret is
 *   kept retrievable, encrypted with the master key (secrets.c's AES-GCM
 *   file image, authenticated data "webhook_endpoint:<id>"); after a
 *   rotation the replaced secret signs beside the new one until
 *   previous_secret_expires_at. events NULL: every type.
 * - The outbox is written by triggers on payments and refunds, so every
 *   statement that changes a state, on any code path, writes it in its own
 *   transaction, and a change that rolls back writes nothing. A payment
 *   event is any change of state (payment.<state>); a refund event is a
 *   change of the status the API shows (refund.succeeded, refund.failed).
 *   Nothing is written for a merchant with no endpoint subscribed to the
 *   type. The event's data is the object as the API shows it, built by one
 *   SQL function per object (notify_payment_object, notify_refund_object).
 * - notify_deliveries: one row per (event, endpoint) attempt series, made
 *   with the event. The notifier claims due rows with FOR UPDATE SKIP
 *   LOCKED; a claim moves next_attempt_at past the attempt (the lease, so a
 *   killed host's deliveries are due again) and takes a fencing token, so
 *   only the latest claimer records the outcome. */
static const char migration_0012_notifications[] =
    "CREATE TABLE webhook_endpoints (\n"
    "    id text PRIMARY KEY,\n"
    "    merchant_id text NOT NULL REFERENCES merchants (id),\n"
    "    url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),\n"
    "    description text,\n"
    "    events text[],\n"
    "    secret_enc bytea NOT NULL,\n"
    "    previous_secret_enc bytea,\n"
    "    previous_secret_expires_at timestamptz,\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    updated_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at);\n"
    "CREATE TABLE notify_events (\n"
    "    id text PRIMARY KEY,\n"
    "    merchant_id text NOT NULL,\n"
    "    type text NOT NULL,\n"
    "    object_id text NOT NULL,\n"
    "    payload text NOT NULL,\n"
    "    created_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX notify_events_object ON notify_events (object_id);\n"
    "CREATE INDEX notify_events_created ON notify_events (created_at);\n"
    "CREATE SEQUENCE notify_claim_token_seq AS bigint;\n"
    "CREATE TABLE notify_deliveries (\n"
    "    id text PRIMARY KEY,\n"
    "    event_id text NOT NULL REFERENCES notify_events (id) ON DELETE CASCADE,\n"
    "    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,\n"
    "    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),\n"
    "    attempts int NOT NULL DEFAULT 0,\n"
    "    next_attempt_at timestamptz,\n"
    "    claim_token bigint,\n"
    "    last_http_status int,\n"
    "    last_error text,\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    updated_at timestamptz NOT NULL DEFAULT now(),\n"
    "    delivered_at timestamptz\n"
    ");\n"
    "CREATE INDEX notify_deliveries_due ON notify_deliveries (next_attempt_at) WHERE status = 'pending';\n"
    "CREATE INDEX notify_deliveries_endpoint ON notify_deliveries (endpoint_id, created_at);\n"
    "CREATE INDEX notify_deliveries_event ON notify_deliveries (event_id);\n"
    "CREATE FUNCTION notify_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$\n"
    "    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') $$;\n"
    "CREATE FUNCTION notify_error(code text, message text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$\n"
    "    SELECT CASE WHEN code IS NULL THEN 'null'::jsonb\n"
    "                ELSE jsonb_build_object('code', code, 'message', message) END $$;\n"
    /* The payment object of GET /v1/payments/{id} (api_flows_payment_json). */
    "CREATE FUNCTION notify_payment_object(p payments) RETURNS jsonb LANGUAGE sql STABLE AS $$\n"
    "    SELECT jsonb_build_object(\n"
    "        'id', p.id, 'status', p.state, 'amount', p.amount, 'currency', p.currency,\n"
    "        'connector', p.connector, 'provider_reference_id', p.provider_reference_id,\n"
    "        'reference', p.reference, 'description', p.description,\n"
    "        'created_at', notify_time(p.created_at), 'updated_at', notify_time(p.updated_at),\n"
    "        'error', notify_error(p.error_code, p.error_message),\n"
    "        'capture_method', p.capture_method, 'amount_capturable', p.amount_capturable,\n"
    "        'amount_received', p.amount_received, 'amount_refunded', p.amount_refunded,\n"
    "        'return_url', p.return_url,\n"
    "        'next_action', CASE WHEN p.state = 'requires_action' AND p.redirect_url IS NOT NULL\n"
    "            THEN jsonb_build_object('type', 'redirect_to_url', 'redirect_to_url',\n"
    "                 jsonb_build_object('url', p.redirect_url, 'return_url', p.return_url))\n"
    "            ELSE 'null'::jsonb END,\n"
    "        'pending_operation', p.pending_operation) $$;\n"
    /* The refund object of GET /v1/refunds/{id} (refund_json in api_flows.c). */
    "CREATE FUNCTION notify_refund_object(r refunds) RETURNS jsonb LANGUAGE sql STABLE AS $$\n"
    "    SELECT jsonb_build_object(\n"
    "        'id', r.id, 'object', 'refund', 'payment_id', r.payment_id, 'amount', r.amount,\n"
    "        'currency', r.currency,\n"
    "        'status', CASE WHEN r.state IN ('succeeded', 'failed') THEN r.state ELSE 'pending' END,\n"
    "        'reason', r.reason, 'metadata', r.metadata,\n"
    "        'provider_reference_id', r.provider_reference_id,\n"
    "        'error', notify_error(r.error_code, r.error_message),\n"
    "        'created_at', notify_time(r.created_at), 'updated_at', notify_time(r.updated_at)) $$;\n"
    /* One event and its deliveries to the merchant's subscribed endpoints. */
    "CREATE FUNCTION notify_emit(merchant text, event_type text, object_id text, data jsonb)\n"
    "RETURNS void LANGUAGE plpgsql AS $$\n"
    "DECLARE\n"
    "    event_id text;\n"
    "BEGIN\n"
    "    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.merchant_id = merchant\n"
    "                   AND (e.events IS NULL OR event_type = ANY (e.events))) THEN\n"
    "        RETURN;\n"
    "    END IF;\n"
    "    event_id := 'evt_' || replace(gen_random_uuid()::text, '-', '');\n"
    "    INSERT INTO notify_events (id, merchant_id, type, object_id, payload)\n"
    "    VALUES (event_id, merchant, event_type, object_id,\n"
    "            json_build_object('type', event_type, 'timestamp', notify_time(clock_timestamp()),\n"
    "                              'data', data)::text);\n"
    "    INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)\n"
    "    SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), event_id, e.id, now()\n"
    "    FROM webhook_endpoints e WHERE e.merchant_id = merchant\n"
    "        AND (e.events IS NULL OR event_type = ANY (e.events));\n"
    "END $$;\n"
    "CREATE FUNCTION notify_payment_changed() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    PERFORM notify_emit(NEW.merchant_id, 'payment.' || NEW.state, NEW.id, notify_payment_object(NEW));\n"
    "    RETURN NULL;\n"
    "END $$;\n"
    "CREATE TRIGGER notify_payment AFTER UPDATE ON payments FOR EACH ROW\n"
    "    WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION notify_payment_changed();\n"
    "CREATE FUNCTION notify_refund_changed() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    PERFORM notify_emit(NEW.merchant_id, 'refund.' || NEW.state, NEW.id, notify_refund_object(NEW));\n"
    "    RETURN NULL;\n"
    "END $$;\n"
    "CREATE TRIGGER notify_refund AFTER UPDATE ON refunds FOR EACH ROW\n"
    "    WHEN (OLD.state IS DISTINCT FROM NEW.state AND NEW.state IN ('succeeded', 'failed'))\n"
    "    EXECUTE FUNCTION notify_refund_changed();\n";

/* Issue 14: the API as a contract.
 * - payments.metadata: the merchant's own keys and values (a JSON object
 *   of strings, checked by the API), returned and never given to a bank;
 *   refunds have had the column since version 8.
 * - The lists (GET /v1/payments, GET /v1/refunds) page a merchant's rows
 *   newest first by (created_at, id): these indexes serve the order, the
 *   keyset cursor and a created range without a sort.
 * - An operator resolves a payment that requires review
 *   (`pagoflex payment resolve`): its history row's source is 'operator'.
 * - Notifications (version 12) carry the payment and refund objects as the
 *   API shows them now: "object" and "metadata" ({} when none).
 * It runs outside a transaction (each statement idempotent), so the index
 * builds do not block writes to a large table. */
static const char migration_0013_api_contract[] =
    STORE_MIGRATION_NO_TRANSACTION
    "ALTER TABLE payments ADD COLUMN IF NOT EXISTS metadata jsonb;\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_merchant_created\n"
    "    ON payments (merchant_id, created_at DESC, id DESC);\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS refunds_merchant_created\n"
    "    ON refunds (merchant_id, created_at DESC, id DESC);\n"
    /* The new check allows more: existing rows hold, so it is added NOT
     * VALID (no scan under the table's exclusive lock) and validated
     * after, which does not block writes. */
    "ALTER TABLE payment_history DROP CONSTRAINT IF EXISTS payment_history_source_check,\n"
    "    ADD CONSTRAINT payment_history_source_check\n"
    "        CHECK (source IN ('api', 'bank_reply', 'webhook', 'sync', 'reconciler', 'operator')) NOT VALID;\n"
    "ALTER TABLE payment_history VALIDATE CONSTRAINT payment_history_source_check;\n"
    /* Notifications carry the objects of GET /v1/payments/{id} and
     * /v1/refunds/{id} as they are now: with object and metadata. */
    "CREATE OR REPLACE FUNCTION notify_payment_object(p payments) RETURNS jsonb LANGUAGE sql STABLE AS $$\n"
    "    SELECT jsonb_build_object(\n"
    "        'id', p.id, 'object', 'payment', 'status', p.state, 'amount', p.amount, 'currency', p.currency,\n"
    "        'connector', p.connector, 'provider_reference_id', p.provider_reference_id,\n"
    "        'reference', p.reference, 'description', p.description,\n"
    "        'created_at', notify_time(p.created_at), 'updated_at', notify_time(p.updated_at),\n"
    "        'error', notify_error(p.error_code, p.error_message),\n"
    "        'capture_method', p.capture_method, 'amount_capturable', p.amount_capturable,\n"
    "        'amount_received', p.amount_received, 'amount_refunded', p.amount_refunded,\n"
    "        'return_url', p.return_url,\n"
    "        'next_action', CASE WHEN p.state = 'requires_action' AND p.redirect_url IS NOT NULL\n"
    "            THEN jsonb_build_object('type', 'redirect_to_url', 'redirect_to_url',\n"
    "                 jsonb_build_object('url', p.redirect_url, 'return_url', p.return_url))\n"
    "            ELSE 'null'::jsonb END,\n"
    "        'pending_operation', p.pending_operation,\n"
    "        'metadata', COALESCE(p.metadata, '{}'::jsonb)) $$;\n"
    "CREATE OR REPLACE FUNCTION notify_refund_object(r refunds) RETURNS jsonb LANGUAGE sql STABLE AS $$\n"
    "    SELECT jsonb_build_object(\n"
    "        'id', r.id, 'object', 'refund', 'payment_id', r.payment_id, 'amount', r.amount,\n"
    "        'currency', r.currency,\n"
    "        'status', CASE WHEN r.state IN ('succeeded', 'failed') THEN r.state ELSE 'pending' END,\n"
    "        'reason', r.reason, 'metadata', COALESCE(r.metadata, '{}'::jsonb),\n"
    "        'provider_reference_id', r.provider_reference_id,\n"
    "        'error', notify_error(r.error_code, r.error_message),\n"
    "        'created_at', notify_time(r.created_at), 'updated_at', notify_time(r.updated_at)) $$;\n";

/* Issue 16: the notification triggers of version 12 cost a trigger call
 * per changed row, and built the row's API object (a SQL function, planned
 * again in every transaction) before looking whether its merchant had an
 * endpoint at all. They are replaced by one trigger per statement with
 * transition tables: one INSERT of events, and one of their deliveries,
 * for all the rows the statement changed, each row looked up among the
 * endpoints subscribed to its event type. What is written is the same as
 * before: one event per change of state (of a refund, per change to
 * succeeded or failed), carrying the object as the API shows it after the
 * statement (the BEFORE trigger's amounts included), and one delivery per
 * subscribed endpoint; written in the changing transaction, so a rollback
 * leaves none.
 * PL/pgSQL plans a statement once per connection, with the row counts of
 * the first one it sees, and keeps the plan: a join of the old and new
 * rows planned for one row is a nested loop, which for a statement of
 * 11,000 rows read the transition table again for every row (14 s). So a
 * statement of up to NOTIFY_KEPT_PLAN_ROWS rows (the hot path's: one row,
 * or a group commit's batch) pairs them through one jsonb map of id -> old
 * state, made once (MATERIALIZED) and searched per row (a statement
 * changes a row at most once), whatever the first plan was; a larger one
 * (an operator's or a migration's UPDATE of many payments) is planned for
 * its own row counts (EXECUTE: a hash join, no jsonb size limit). Each
 * row's endpoints are found through webhook_endpoints_merchant, one index
 * probe per row (OFFSET 0 keeps those subqueries per row), and a row whose
 * merchant has no endpoint for its type builds no object.
 * notify_time and notify_error were labelled IMMUTABLE, but their bodies
 * are STABLE (to_char, jsonb_build_object): PostgreSQL inlines no such
 * function, so each ran as a SQL function of its own, parsed and planned
 * again in every statement and called per row. Labelled STABLE, they are
 * inlined into the object's expression, which is planned with the
 * trigger's statement, once. */
#define NOTIFY_KEPT_PLAN_ROWS "1000"

/* The events of the rows `changed` selects from notify_new n (after the
 * WITH items `with`), and their deliveries. */
#define NOTIFY_WRITE(kind, object_fn, with, changed)                                                          \
    "WITH " with "ev AS (\n"                                                                                 \
    "            INSERT INTO notify_events (id, merchant_id, type, object_id, payload)\n"                    \
    "            SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), n.merchant_id,\n"               \
    "                   '" kind ".' || n.state, n.id,\n"                                                     \
    "                   json_build_object('type', '" kind ".' || n.state,\n"                                 \
    "                                     'timestamp', notify_time(clock_timestamp()),\n"                    \
    "                                     'data', " object_fn "(n))::text\n"                                 \
    "            FROM " changed "\n"                                                                         \
    "                AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.merchant_id = n.merchant_id\n"    \
    "                            AND (e.events IS NULL OR '" kind ".' || n.state = ANY (e.events)) OFFSET 0)\n" \
    "            RETURNING id, merchant_id, type\n"                                                          \
    "        )\n"                                                                                            \
    "        INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)\n"                   \
    "        SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), ev.id, e.id, now()\n"               \
    "        FROM ev, LATERAL (SELECT e.id FROM webhook_endpoints e WHERE e.merchant_id = ev.merchant_id\n"  \
    "                          AND (e.events IS NULL OR ev.type = ANY (e.events)) OFFSET 0) e"

#define NOTIFY_STATEMENT_TRIGGER(table, fn, kind, object_fn, extra_cond)                                     \
    "CREATE FUNCTION " fn "() RETURNS trigger LANGUAGE plpgsql AS $$\n"                                      \
    "BEGIN\n"                                                                                                \
    "    IF (SELECT count(*) FROM notify_new) <= " NOTIFY_KEPT_PLAN_ROWS " THEN\n"                           \
    "        " NOTIFY_WRITE(kind, object_fn,                                                                 \
                            "was AS MATERIALIZED (\n"                                                        \
                            "            SELECT jsonb_object_agg(o.id, o.state) AS state_of"                 \
                            " FROM notify_old o\n"                                                           \
                            "        ), ",                                                                   \
                            "notify_new n, was\n"                                                            \
                            "            WHERE n.state IS DISTINCT FROM was.state_of ->> n.id" extra_cond) ";\n" \
    "    ELSE\n"                                                                                             \
    "        EXECUTE $q$" NOTIFY_WRITE(kind, object_fn, "",                                                  \
                                       "notify_new n JOIN notify_old o ON o.id = n.id\n"                     \
                                       "            WHERE n.state IS DISTINCT FROM o.state" extra_cond) "$q$;\n" \
    "    END IF;\n"                                                                                          \
    "    RETURN NULL;\n"                                                                                     \
    "END $$;\n"                                                                                              \
    "CREATE TRIGGER notify_" kind " AFTER UPDATE ON " table "\n"                                             \
    "    REFERENCING OLD TABLE AS notify_old NEW TABLE AS notify_new\n"                                      \
    "    FOR EACH STATEMENT EXECUTE FUNCTION " fn "();\n"

static const char migration_0017_notify_per_statement[] =
    "DROP TRIGGER notify_payment ON payments;\n"
    "DROP TRIGGER notify_refund ON refunds;\n"
    "DROP FUNCTION notify_payment_changed();\n"
    "DROP FUNCTION notify_refund_changed();\n"
    "DROP FUNCTION notify_emit(text, text, text, jsonb);\n"
    "ALTER FUNCTION notify_time(timestamptz) STABLE;\n"
    "ALTER FUNCTION notify_error(text, text) STABLE;\n"
    NOTIFY_STATEMENT_TRIGGER("payments", "notify_payments_changed", "payment", "notify_payment_object", "")
    NOTIFY_STATEMENT_TRIGGER("refunds", "notify_refunds_changed", "refund", "notify_refund_object",
                             " AND n.state IN ('succeeded', 'failed')");

/* Issue 16: the notifier's claim of due deliveries looks each endpoint's
 * earliest due ones up by this index (store_notify.c), a few rows per
 * endpoint whatever the backlog; with only the global due index, a claim
 * with one endpoint at its cap sorted every pending delivery (126 ms per
 * claim with 140,000 pending). Built without blocking deliveries. The
 * global due index then serves no query: each delivery is written three
 * times (made, claimed, finished), each time in every index, so it goes. */
static const char migration_0018_notify_endpoint_due[] =
    STORE_MIGRATION_NO_TRANSACTION
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS notify_deliveries_endpoint_due\n"
    "    ON notify_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';\n"
    "DROP INDEX CONCURRENTLY IF EXISTS notify_deliveries_due;\n";

/* Issue 16: what each delivery row cost its state change, measured with
 * scripts/lib/bench_outbox.sh (pgbench, 64 payments moved per UPDATE, one
 * endpoint; bench/results/2026-12-02-outbox-note.md): the two foreign keys
 * of notify_deliveries were the dearest part. Each inserted delivery ran
 * two RI checks, each a query that locks the referenced row FOR KEY
 * SHARE: a tuple lock and its WAL record per delivery, and on the one
 * endpoint row that every concurrent writer locks, a MultiXact. Dropped,
 * they save about 15 µs of PostgreSQL's CPU per change, a fifth of what
 * the outbox cost it. Their jobs are done explicitly:
 * - ON DELETE CASCADE from webhook_endpoints: the endpoint's DELETE
 *   deletes its deliveries in the same statement (store_notify.c). A
 *   delivery a concurrent state change writes for the endpoint while it
 *   is being deleted (its trigger saw the endpoint before the DELETE
 *   committed) is left behind; it is never claimed, listed or resent
 *   (each of those joins webhook_endpoints, and endpoint ids are never
 *   reused), and the janitor removes it (store_janitor.c). With the key,
 *   that race failed the state change's whole transaction instead.
 * - ON DELETE CASCADE from notify_events: the janitor deletes an expired
 *   event's deliveries with it, in the same transaction; a resend locks
 *   the event FOR KEY SHARE, as the key's check did, so it cannot add a
 *   delivery to an event being purged.
 * - The checks themselves: deliveries are only ever written by the
 *   notification triggers, with the event they have just inserted and an
 *   endpoint they have just read, and by a resend, from an existing
 *   delivery, so they could only fail in the race above.
 * notify_events_object (object_id) serves no query the host runs: it was
 * an index entry per event (about 100 bytes of WAL) for nothing. Every other index serves one:
 * notify_events' key the joins from deliveries (claim, lists, resend),
 * notify_events_created the janitor's walk from the oldest event;
 * notify_deliveries' key the claims' and outcomes' look-ups by id,
 * notify_deliveries_event the janitor's pending check and purge per event
 * and the resend's, notify_deliveries_endpoint the delivery list and the
 * endpoint's DELETE, notify_deliveries_endpoint_due the claim. The ids
 * (random UUIDs) cost no more than the alternatives measured (random(),
 * a time-ordered prefix), so they stay. Each step runs on its own, so no
 * step holds the three tables' locks together; the index is dropped
 * without blocking writes. */
static const char migration_0019_notify_fewer_checks[] =
    STORE_MIGRATION_NO_TRANSACTION
    "ALTER TABLE notify_deliveries DROP CONSTRAINT IF EXISTS notify_deliveries_endpoint_id_fkey;\n"
    "ALTER TABLE notify_deliveries DROP CONSTRAINT IF EXISTS notify_deliveries_event_id_fkey;\n"
    "DROP INDEX CONCURRENTLY IF EXISTS notify_events_object;\n";

/* Issue 16: fewer index entries and no trigger call where they buy
 * nothing, measured by replaying the group commit's statements with
 * pgbench (scripts/lib/bench_hot_path.sh; figures in README.md).
 * - payments_due held every open payment, the ones the reconciler never
 *   scheduled too (next_attempt_at NULL): a new payment took an entry on
 *   its insert and on its bank answer that no query reads, as the claim
 *   and the backlog gauge ask for next_attempt_at <= now(), which no NULL
 *   meets. payments_scheduled_due holds only the scheduled ones, so a
 *   payment settled by its bank answer and its webhook never enters it;
 *   the unscheduled ones stay in payments_unscheduled, as before. Both
 *   queries are unchanged (their condition implies the new predicate).
 * - payments_amounts (version 8) ran a PL/pgSQL call for every update of
 *   a payment, though it changes a row only when its state moves, and a
 *   move to pending only clears a redirect URL. The WHEN clause skips the
 *   updates that cannot change anything that way: no move (the
 *   reconciler's schedule, a refund's amount), or a move to pending with
 *   no redirect URL (the bank answer of the hot path). PostgreSQL reads a
 *   WHEN clause from its stored text for every statement (as CHECKs, see
 *   migration 22), so it is kept this small: the function's every rule
 *   read backwards was a 5 KB tree, about 25 µs a statement, more than the
 *   calls it saved in a batch of one. The function, and so the rules, are
 *   unchanged.
 * It runs outside a transaction: the index is built without blocking
 * writes to a large table, each statement idempotent. */
static const char migration_0020_hot_path_writes[] =
    STORE_MIGRATION_NO_TRANSACTION
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_scheduled_due ON payments (next_attempt_at)\n"
    "    WHERE next_attempt_at IS NOT NULL AND state IN ('created', 'processing', 'pending');\n"
    "DROP INDEX CONCURRENTLY IF EXISTS payments_due;\n"
    "CREATE OR REPLACE TRIGGER payments_amounts BEFORE UPDATE ON payments FOR EACH ROW\n"
    "    WHEN (OLD.state IS DISTINCT FROM NEW.state\n"
    "          AND (NEW.state <> 'pending' OR NEW.redirect_url IS NOT NULL))\n"
    "    EXECUTE FUNCTION payments_amounts();\n";

/* Issue 16: PostgreSQL reads a table's CHECK expressions from their stored
 * text and plans them again for every statement that writes the table (not
 * once per connection), so an `x IN (nine states)` check costs about 5 µs a
 * kilobyte of stored tree on every INSERT and UPDATE: 16 µs of a one-row
 * payment_history insert's 26, a third of a one-row payments update.
 * A domain's check is read once per connection (the type cache), so the
 * lists of states, sources and kinds become domains:
 * - columns no index depends on take the domain as their type (no rewrite:
 *   the domain has no check yet when the columns change type);
 * - columns partial indexes filter on (payments.state and pending_operation,
 *   refunds.state) keep their type, or those indexes would be built again
 *   under the table's exclusive lock; their check casts to the domain, a
 *   small tree that carries the same rule.
 * Existing values passed the checks these replace: the domains' checks are
 * added NOT VALID (no scan). A later state is added with ALTER DOMAIN. */
#define DOMAIN_LIST(name, values)                                                                            \
    "ALTER DOMAIN " name " ADD CONSTRAINT " name "_check CHECK (VALUE IN (" values ")) NOT VALID;\n"
#define CAST_CHECK(table, column, domain)                                                                    \
    "ALTER TABLE " table " DROP CONSTRAINT " table "_" column "_check,\n"                                    \
    "    ADD CONSTRAINT " table "_" column "_check CHECK (" column "::" domain " = " column ") NOT VALID;\n"

static const char migration_0022_state_domains[] =
    "CREATE DOMAIN payment_state AS text;\n"
    "CREATE DOMAIN refund_state AS text;\n"
    "CREATE DOMAIN payment_history_source AS text;\n"
    "CREATE DOMAIN refund_history_source AS text;\n"
    "CREATE DOMAIN capture_method AS text;\n"
    "CREATE DOMAIN pending_operation AS text;\n"
    "CREATE DOMAIN webhook_event_kind AS text;\n"
    "ALTER TABLE payment_history DROP CONSTRAINT payment_history_from_state_check,\n"
    "    DROP CONSTRAINT payment_history_to_state_check, DROP CONSTRAINT payment_history_source_check,\n"
    "    ALTER COLUMN from_state TYPE payment_state, ALTER COLUMN to_state TYPE payment_state,\n"
    "    ALTER COLUMN source TYPE payment_history_source;\n"
    "ALTER TABLE refund_history DROP CONSTRAINT refund_history_from_state_check,\n"
    "    DROP CONSTRAINT refund_history_to_state_check, DROP CONSTRAINT refund_history_source_check,\n"
    "    ALTER COLUMN from_state TYPE refund_state, ALTER COLUMN to_state TYPE refund_state,\n"
    "    ALTER COLUMN source TYPE refund_history_source;\n"
    "ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_state_check,\n"
    "    DROP CONSTRAINT webhook_events_kind_check,\n"
    "    ALTER COLUMN state TYPE payment_state, ALTER COLUMN kind TYPE webhook_event_kind;\n"
    "ALTER TABLE payments DROP CONSTRAINT payments_capture_method_check,\n"
    "    ALTER COLUMN capture_method TYPE capture_method;\n"
    DOMAIN_LIST("payment_state", STATE_NAMES_V8)
    DOMAIN_LIST("refund_state", REFUND_STATE_NAMES)
    DOMAIN_LIST("payment_history_source", "'api', 'bank_reply', 'webhook', 'sync', 'reconciler', 'operator'")
    DOMAIN_LIST("refund_history_source", "'api', 'bank_reply', 'webhook', 'sync', 'reconciler'")
    DOMAIN_LIST("capture_method", "'automatic', 'manual'")
    DOMAIN_LIST("pending_operation", "'capture', 'void'")
    DOMAIN_LIST("webhook_event_kind", "'payment', 'refund', 'ignored'")
    CAST_CHECK("payments", "state", "payment_state")
    CAST_CHECK("payments", "pending_operation", "pending_operation")
    CAST_CHECK("refunds", "state", "refund_state");

/* Issue 16: what a refund and a delivery still paid for checks that cannot
 * fail (measured with BENCH_STATEMENTS=1 in scripts/bench).
 * - The foreign keys of refunds to payments, and of refund_history and
 *   webhook_events to refunds, ran a look-up and a KEY SHARE lock of the
 *   referenced row (a WAL record) for every row written: three per refund
 *   on its way to succeeded, 20-35 us of PostgreSQL's time. These tables
 *   are only written by statements that take the id from the row they
 *   have just written or locked (a refund from its locked payment, in
 *   store_flows.c and store_batch_multi.c; its history and webhook events
 *   from the refund), and no payment or refund is ever deleted, so the
 *   checks could not fail: the reasoning of version 16 for payments.
 * - notify_deliveries' status list is parsed again by every statement that
 *   writes a delivery (the trigger's insert, the claim, the outcomes, the
 *   give-back): as in version 22, a domain checks it, read once per
 *   connection; the column keeps its type (the claim's partial index
 *   filters on it) and casts to the domain. */
static const char migration_0023_fewer_refund_checks[] =
    "ALTER TABLE refunds DROP CONSTRAINT refunds_payment_id_fkey;\n"
    "ALTER TABLE refund_history DROP CONSTRAINT refund_history_refund_id_fkey;\n"
    "ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_refund_id_fkey;\n"
    "CREATE DOMAIN notify_delivery_status AS text;\n"
    DOMAIN_LIST("notify_delivery_status", "'pending', 'succeeded', 'failed'")
    CAST_CHECK("notify_deliveries", "status", "notify_delivery_status");

/* Issue 16: the claim of a delivery wrote it again in every index. It
 * leased the row by moving next_attempt_at to the lease's end, and that
 * column is in notify_deliveries_endpoint_due, so the row's new version
 * took an entry in each of the four indexes (and their WAL), only to be
 * written again by the outcome a few milliseconds later. The lease now has
 * a column of its own, in no index: the claim changes no indexed column,
 * and on a page with room for the new version PostgreSQL makes it a HOT
 * update (no index entry at all). The give-back clears the lease and leaves
 * the row's due time as it was (the row keeps its place in the queue), a
 * HOT update too. The outcome still moves status (the due index's
 * predicate), so it stays an ordinary update. Room on the page: a delivery
 * is claimed once in the ordinary case, so half of each new page is left
 * free for the claims' versions (fillfactor 50; the table holds only the
 * deliveries of the retention window, purged by the janitor). Existing
 * pages keep their fill; rows leased the old way (next_attempt_at moved,
 * no lease) are due when that time comes, as before. Hosts of the old
 * build beside new ones during an upgrade do not see the new lease, and
 * may send a delivery a new host has in flight a second time, with the
 * same webhook-id (at-least-once, as after a lapsed lease). Adding a
 * column without a default and setting a storage parameter write no row. */
static const char migration_0024_notify_lease_column[] =
    "ALTER TABLE notify_deliveries ADD COLUMN leased_until timestamptz;\n"
    "ALTER TABLE notify_deliveries SET (fillfactor = 50);\n";

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
    /* 7 is another branch's; the runner applies missing versions in list order. */
    {8, "flows: manual capture, void, refunds and their history, refund and ignored events",
     migration_0008_flows},
    {9, "flow reconciler: refund claims and their due-time indexes, held payments' due time",
     migration_0009_flow_reconciler},
    {10, "merchants: merchant accounts owning API keys, payments and refunds",
     migration_0010_merchants},
    {11, "connector accounts: a merchant's account per connector; the account of each payment and refund",
     migration_0011_connector_accounts},
    {12, "notifications: merchants' webhook endpoints, the outbox of payment and refund events, deliveries",
     migration_0012_notifications},
    {13, "api contract: payment metadata, list indexes by merchant and time, operator history",
     migration_0013_api_contract},
    {16, "hot path: fewer indexes and foreign keys on payments, events and history",
     migration_0016_hot_path_indexes},
    {17, "notifications: one trigger per statement, with transition tables, instead of one per changed row",
     migration_0017_notify_per_statement},
    {18, "notifications: index each endpoint's due deliveries for the claim, instead of all due ones",
     migration_0018_notify_endpoint_due},
    {19, "notifications: no foreign keys on deliveries (their jobs done explicitly), no index by object",
     migration_0019_notify_fewer_checks},
    {20, "hot path: the due index holds scheduled payments only; the amounts trigger runs when it acts",
     migration_0020_hot_path_writes},
    {22, "hot path: states, sources and kinds as domains, whose checks are not parsed again per statement",
     migration_0022_state_domains},
    {23, "hot path: no foreign-key checks on refunds, their history and events; delivery status as a domain",
     migration_0023_fewer_refund_checks},
    {24, "notifications: a lease column of its own, so that a claim writes no index entry (HOT)",
     migration_0024_notify_lease_column},
};

const store_migration *store_migrations(size_t *count)
{
    *count = sizeof migration_list / sizeof migration_list[0];
    return migration_list;
}
