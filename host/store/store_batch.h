/* store_batch.h - group commit: many requests' writes in one transaction.
 *
 * A batcher owns a few connections of its own, each driven by one writer
 * thread in libpq pipeline mode. A request submits an operation (one of the
 * hot-path writes below) and is called back once it is done; no HTTP
 * thread waits on PostgreSQL meanwhile. A writer takes every operation
 * waiting (up to a maximum; it never waits for more to come), sorts them by
 * payment id (lock order) and runs BEGIN, the statements, COMMIT, sync in
 * one round trip: one commit, one WAL flush for the whole batch.
 *
 * Guarantees:
 * - A callback with STORE_OK means the operation's rows are committed: no
 *   callback fires before its COMMIT succeeded.
 * - Each operation gets its own result. The statements cannot raise in the
 *   ordinary course (ON CONFLICT, conditional UPDATEs); if one does anyway
 *   (a constraint, a deadlock, a plan the schema invalidated), the batch
 *   rolls back and its operations are run again one at a time, each in its
 *   own transaction, so only the faulty one fails.
 * - A connection lost before the COMMIT's answer arrived gives
 *   STORE_UNAVAILABLE to every operation of the batch: the outcome is
 *   unknown, as with a lost auto-commit statement (callers answer 503 and
 *   leave the rest to the reconciler). The writer reconnects for the next
 *   batch.
 */
#ifndef PAGOFLEX_STORE_BATCH_H
#define PAGOFLEX_STORE_BATCH_H

#include <stdbool.h>

#include "store.h"
#include "store_flows.h"

typedef struct store_batch store_batch;

/* The operation a request submits. The caller allocates it (in its arena,
 * typically), fills it with one of the store_batch_*_init functions, sets
 * `done` and `arg`, and keeps it and everything it points to alive until
 * `done` has been called. The fields below the line are the batcher's. */
typedef struct store_batch_op {
    void (*done)(void *arg); /* called once, on a writer thread, when the result is in */
    void *arg;
    /* ---- results (read them in or after `done`) ---- */
    store_result rc;      /* as the synchronous call of the same write would return */
    store_payment row;    /* the payment as it is now, when the synchronous call writes it */
    bool applied;         /* webhook: the event moved the payment */
    bool orphans_waiting; /* orphan events wait for the bank id this write stored or saw:
                             the caller runs store_orphan_apply (after this commit) */
    store_refund refund;  /* refund kinds: the refund as the synchronous call returns it */
    /* ---- the batcher's ---- */
    int kind;
    const char *sql;
    int nparams;
    const char *params[13];
    char amount[24];
    char allowed[128];
    const char *sort_key; /* payment id; NULL sorts first */
    pagoflex_arena *arena;
    const char *orphan_key[3]; /* connector, tx id, account of the post-commit orphan check */
    bool check_orphans;
    struct store_batch_op *next;
} store_batch_op;

/* Start `connections` writer threads on `conninfo`, each batching up to
 * `batch_max` operations per transaction. Connections are made lazily.
 * NULL on error (logged). */
store_batch *store_batch_open(const char *conninfo, int connections, int batch_max);

/* Refuse new operations, run the ones queued, stop and join the writers,
 * close their connections. NULL is a no-op. */
void store_batch_close(store_batch *b);

/* Queue `op`. True if it was taken (its `done` will be called); false when
 * the batcher is closing: nothing is queued and the caller does the write
 * itself. */
bool store_batch_submit(store_batch *b, store_batch_op *op);

/* store_payment_insert() as an operation: rc and row as it returns them.
 * STORE_ERROR in op->rc (and false) when p lacks a required field; then
 * the op is not to be submitted. */
bool store_batch_payment_insert_init(store_batch_op *op, const store_payment *p, pagoflex_arena *arena);

/* The statement of store_payment_transition_from() as an operation: rc
 * STORE_OK (moved) or STORE_CONFLICT with op->row, STORE_NOT_FOUND, ... A
 * refused transition with a provider_ref the row lacks is the caller's to
 * complete (store_payment_transition_from does it synchronously, it is
 * rare). When provider_ref is not NULL, orphans waiting for it are looked
 * up after the commit (op->orphans_waiting). False on invalid arguments. */
bool store_batch_transition_init(store_batch_op *op, const char *id, pagoflex_state to, const char *source,
                                 const char *detail, const char *provider_ref, const char *error_code,
                                 const char *error_message, pagoflex_arena *arena);

/* store_webhook_apply() as an operation: rc, row and applied as it returns
 * them, except that the orphans the event's bank id releases are not
 * applied here: op->orphans_waiting says whether the caller must run
 * store_orphan_apply. False (rc STORE_ERROR, logged) on invalid arguments
 * or a body that is not storable text. */
bool store_batch_webhook_init(store_batch_op *op, const char *connector, const char *account,
                              const pagoflex_webhook_event *ev, const unsigned char *body, size_t body_len,
                              pagoflex_arena *arena);

/* store_refund_create() as an operation: rc, op->refund and op->row (the
 * payment) as it returns them: STORE_OK (both), STORE_CONFLICT (op->row as
 * it is: nothing written), STORE_NOT_FOUND, STORE_DUPLICATE (refund_id
 * exists). `accounts`, when not NULL, is a PostgreSQL text[] literal of
 * the "connector/account" pairs whose payments may be refunded (those this
 * host serves refunds for): a payment of another pair is refused too
 * (STORE_CONFLICT with its row, nothing written), so a caller need not read
 * the payment first. Sorted among the batch's writes by its payment, whose
 * row it locks. False (rc STORE_ERROR, logged) without a merchant, refund
 * or payment id; then the op is not to be submitted. */
bool store_batch_refund_create_init(store_batch_op *op, const char *merchant_id, const char *refund_id,
                                    const char *payment_id, int64_t amount, const char *reason,
                                    const char *metadata_json, const char *accounts, pagoflex_arena *arena);

/* store_refund_transition() as an operation: rc STORE_OK (moved) or
 * STORE_CONFLICT (refused), both with op->refund as it is now, or
 * STORE_NOT_FOUND. `payment_id`, the refund's payment (its row is written
 * when the refund fails), sorts it among the batch's writes; NULL sorts
 * first. False (rc STORE_ERROR, logged) on invalid arguments. */
bool store_batch_refund_transition_init(store_batch_op *op, const char *id, const char *payment_id,
                                        pagoflex_state to, const char *source, const char *detail,
                                        const char *provider_ref, const char *error_code,
                                        const char *error_message, pagoflex_arena *arena);

/* Counters since open, for tests and metrics: transactions committed and
 * operations they carried, batches re-run one by one. */
void store_batch_stats(store_batch *b, unsigned long *commits, unsigned long *ops, unsigned long *reruns);

/* Round trips to PostgreSQL since open: each time a writer sent something
 * and waited for its answer (statements prepared on first use included). */
unsigned long store_batch_round_trips(store_batch *b);

/* Statements sent in batches since open: one per multi-row statement
 * (several operations of one kind), one per operation sent on its own,
 * one per orphan check sent ahead. Operations run alone or re-run one by
 * one are not counted. */
unsigned long store_batch_statements(store_batch *b);

#endif
