/* timer.c: one thread that resumes suspended MHD connections at a deadline
 * and runs timed calls.
 *
 * This is how --latency-ms, --timeout-rate and --webhook-first wait without
 * holding a server thread: the handler prepares its answer, suspends the
 * connection and asks for a resume; MHD calls the handler again after the
 * resume and the answer is queued then.
 *
 * Timed calls (store.c: authorization and 3-D Secure expiry) sit in a second
 * heap; the thread runs each one at its deadline with timer_lock released, so
 * a call may take other locks or schedule another call. */
#include "banksim.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct timer_call {
    timer_fn fn;
    void *arg;
};

static pthread_mutex_t timer_lock;
static pthread_cond_t timer_cond;
static pthread_t timer_thread;
static struct bs_heap timer_heap;  /* suspended connections */
static struct bs_heap timer_calls; /* struct timer_call * */
static bool timer_running, timer_draining, timer_stopping;

static void deadline_to_timespec(uint64_t due_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(due_ms / 1000);
    ts->tv_nsec = (long)(due_ms % 1000) * 1000000L;
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&timer_lock);
    /* Once stopping, the daemon is gone: leftovers are dropped, not resumed. */
    while (!timer_stopping) {
        uint64_t due = bs_heap_peek_due(&timer_heap);
        uint64_t call_due = bs_heap_peek_due(&timer_calls);
        uint64_t now = bs_now_ms();
        if (due != UINT64_MAX && (due <= now || timer_draining)) {
            struct MHD_Connection *c = bs_heap_pop(&timer_heap);
            /* MHD_resume_connection only flags the connection and wakes its
             * thread; calling it under our lock cannot deadlock. */
            MHD_resume_connection(c);
            continue;
        }
        if (call_due <= now) {
            struct timer_call *tc = bs_heap_pop(&timer_calls);
            pthread_mutex_unlock(&timer_lock);
            tc->fn(tc->arg);
            free(tc);
            pthread_mutex_lock(&timer_lock);
            continue;
        }
        if (call_due < due)
            due = call_due;
        if (due == UINT64_MAX) {
            pthread_cond_wait(&timer_cond, &timer_lock);
        } else {
            struct timespec ts;
            deadline_to_timespec(due, &ts);
            pthread_cond_timedwait(&timer_cond, &timer_lock, &ts);
        }
    }
    pthread_mutex_unlock(&timer_lock);
    return NULL;
}

int timer_start(void)
{
    pthread_condattr_t attr;
    if (pthread_mutex_init(&timer_lock, NULL) != 0)
        return -1;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&timer_cond, &attr) != 0)
        goto fail;
    pthread_condattr_destroy(&attr);
    if (pthread_create(&timer_thread, NULL, timer_main, NULL) != 0)
        goto fail_cond;
    timer_running = true;
    return 0;
fail_cond:
    pthread_cond_destroy(&timer_cond);
fail:
    pthread_mutex_destroy(&timer_lock);
    return -1;
}

int timer_resume_at(struct MHD_Connection *c, uint64_t due_ms)
{
    int rc;
    pthread_mutex_lock(&timer_lock);
    rc = bs_heap_push(&timer_heap, due_ms, c);
    if (rc == 0)
        pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
    return rc;
}

int timer_call_at(uint64_t due_ms, timer_fn fn, void *arg)
{
    struct timer_call *tc = malloc(sizeof *tc);
    int rc = -1;

    if (!tc)
        return -1;
    tc->fn = fn;
    tc->arg = arg;
    pthread_mutex_lock(&timer_lock);
    if (!timer_stopping)
        rc = bs_heap_push(&timer_calls, due_ms, tc);
    if (rc == 0)
        pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
    if (rc != 0)
        free(tc);
    return rc;
}

void timer_drain(void)
{
    pthread_mutex_lock(&timer_lock);
    timer_draining = true;
    pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
}

size_t timer_pending(void)
{
    size_t n;
    pthread_mutex_lock(&timer_lock);
    n = timer_heap.n;
    pthread_mutex_unlock(&timer_lock);
    return n;
}

void timer_stop(void)
{
    if (!timer_running)
        return;
    pthread_mutex_lock(&timer_lock);
    timer_stopping = true;
    pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
    pthread_join(timer_thread, NULL);
    bs_heap_free(&timer_heap);
    for (struct timer_call *tc; (tc = bs_heap_pop(&timer_calls));)
        free(tc);
    bs_heap_free(&timer_calls);
    pthread_cond_destroy(&timer_cond);
    pthread_mutex_destroy(&timer_lock);
    timer_running = false;
}
