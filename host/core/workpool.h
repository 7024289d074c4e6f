/* workpool.h - a small, bounded pool of threads for blocking work.
 *
 * A connector may bring its own blocking execute_request; those calls run
 * here, on a few threads, so they never hold an HTTP thread and a slow
 * connector cannot stall the others beyond its share of the pool.
 */
#ifndef PAGOFLEX_WORKPOOL_H
#define PAGOFLEX_WORKPOOL_H

typedef struct workpool workpool;

typedef void (*workpool_fn)(void *arg);

/* Start `threads` threads. NULL on failure. */
workpool *workpool_start(int threads);

/* Run fn(arg) on a pool thread, in submission order. If the pool cannot
 * take it (stopped, out of memory), fn runs at once on the caller's thread:
 * the work is never lost. */
void workpool_submit(workpool *p, workpool_fn fn, void *arg);

/* Finish every queued job, stop the threads, free the pool. NULL: no-op. */
void workpool_stop(workpool *p);

#endif
