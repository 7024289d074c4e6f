/* timer.c: one thread that resumes suspended MHD connections at a deadline.
 *
 * This is how --latency-ms, --timeout-rate and --webhook-first wait without
 * holding a server thread: the handler prepares its answer, suspends the
 * connection and asks for a resume; MHD calls the handler again after the
 * resume and the answer is queued then. */
#include "banksim.h"

#include <microhttpd.h>
#include <pthread.h>
#include <time.h>

static pthread_mutex_t timer_lock;
static pthread_cond_t timer_cond;
static pthread_t timer_thread;
static struct bs_heap timer_heap;
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
        if (due == UINT64_MAX) {
            pthread_cond_wait(&timer_cond, &timer_lock);
            continue;
        }
        if (due > bs_now_ms() && !timer_draining) {
            struct timespec ts;
            deadline_to_timespec(due, &ts);
            pthread_cond_timedwait(&timer_cond, &timer_lock, &ts);
            continue;
        }
        struct MHD_Connection *c = bs_heap_pop(&timer_heap);
        /* MHD_resume_connection only flags the connection and wakes its
         * thread; calling it under our lock cannot deadlock. */
        MHD_resume_connection(c);
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
    pthread_cond_destroy(&timer_cond);
    pthread_mutex_destroy(&timer_lock);
    timer_running = false;
}
