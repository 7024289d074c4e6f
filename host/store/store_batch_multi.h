/* store_batch_multi.h - multi-row statements of the group commit (store_batch.c).
 *
 * A batch's operations of one kind go to PostgreSQL as one statement, not
 * one each: the statement's only parameter is a JSON array with one object
 * per operation (read with json_to_recordset), and every row it returns
 * starts with "n", the operation's index in that array. The statement is
 * planned, started and its CHECK constraints and triggers set up once per
 * batch instead of once per write, which is most of what a hot-path write
 * costs PostgreSQL.
 *
 * Each statement does what the single-operation statement of the same kind
 * (store.c) does, row by row, and answers in the same columns after "n".
 * One statement must not touch a payment, or record an event, twice: the
 * writer puts two operations that clash (batch_multi_clash) in separate
 * statements of the same transaction.
 */
#ifndef PAGOFLEX_STORE_BATCH_MULTI_H
#define PAGOFLEX_STORE_BATCH_MULTI_H

#include <stdbool.h>

#include <jansson.h>

#include "store_batch.h"

/* What an operation is (store_batch_op.kind). */
enum batch_kind {
    BATCH_INSERT = 1,
    BATCH_TRANSITION,
    BATCH_WEBHOOK,
    BATCH_REFUND_CREATE,
    BATCH_REFUND_TRANSITION
};

/* The multi-row statement for operations like `op`, or NULL when its kind
 * has none (it is then sent as its own statement). Operations with the same
 * statement may share one. */
const char *batch_multi_sql(const store_batch_op *op);

/* True when `a` and `b` (same batch_multi_sql) must not be in one statement:
 * they may touch the same payment or record the same event. */
bool batch_multi_clash(const store_batch_op *a, const store_batch_op *b);

/* The JSON object of `op` for its statement's array, "n" set to `n`. NULL on
 * no memory or a value that is not UTF-8 (then send `op` on its own, where
 * PostgreSQL says what is wrong with it). The caller owns the reference. */
json_t *batch_multi_object(const store_batch_op *op, int n);

/* Orphan events waiting for the bank ids of several bank replies' transitions
 * (store_batch.c's check ahead): $1 a JSON array of {"n", "id" (payment),
 * "ref" (bank id)}; one row ("n") per entry with orphans waiting. */
extern const char batch_sql_orphans_waiting_multi[];

/* The session settings of the writers' connections (SQL, run once after
 * connecting): joins are nested loops of index look-ups, so a plan made on
 * a small table stays right on a large one; no JIT. */
extern const char store_batch_session_settings[];

#endif
