/* workpool.c - a small, bounded pool of threads for blocking work. */
#include "workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct workpool_job {
    struct workpool_job *next;
    workpool_fn fn;
    void *arg;
} workpool_job;

struct workpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    workpool_job *head, *tail;
    bool stopping;
    int count;
    pthread_t threads[];
};

static void *workpool_main(void *arg)
{
    workpool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        workpool_job *job = p->head;
        if (!job)
            break; /* stopping and nothing left */
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        job->fn(job->arg);
        free(job);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

workpool *workpool_start(int threads)
{
    if (threads < 1)
        threads = 1;
    workpool *p = calloc(1, sizeof *p + (size_t)threads * sizeof(pthread_t));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, workpool_main, p) != 0)
            break;
        p->count++;
    }
    if (p->count == 0) {
        workpool_stop(p);
        return NULL;
    }
    return p;
}

void workpool_submit(workpool *p, workpool_fn fn, void *arg)
{
    workpool_job *job = p ? malloc(sizeof *job) : NULL;
    if (job) {
        job->next = NULL;
        job->fn = fn;
        job->arg = arg;
        pthread_mutex_lock(&p->lock);
        if (!p->stopping) {
            if (p->tail)
                p->tail->next = job;
            else
                p->head = job;
            p->tail = job;
            pthread_cond_signal(&p->cond);
            pthread_mutex_unlock(&p->lock);
            return;
        }
        pthread_mutex_unlock(&p->lock);
        free(job);
    }
    fn(arg);
}

void workpool_stop(workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->count; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
