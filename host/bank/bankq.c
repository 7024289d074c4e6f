/* bankq.c - bank calls without a thread each: libcurl's multi interface.
 *
 * Callers append jobs to `incoming` under the lock and wake the bank thread
 * (curl_multi_wakeup). The bank thread adds them to the multi handle, runs
 * transfers, and for each finished one fills the caller's response and
 * calls it back. Easy handles are recycled; the connection cache lives in
 * the multi handle, so keep-alive connections to a bank are shared by all.
 */
#include "bankq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "executor.h"
#include "log.h"

typedef struct bankq_job {
    struct bankq_job *next;             /* in incoming or spare */
    struct bankq_job *prev_active, *next_active; /* in the multi handle */
    CURL *easy;
    struct curl_slist *headers;
    executor_body body;
    const pagoflex_http_request *req;
    pagoflex_arena *arena;
    pagoflex_http_response *out;
    bankq_done_fn done;
    void *arg;
} bankq_job;

struct bankq {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock;
    bankq_job *incoming; /* submitted, not yet added to multi (under lock) */
    bankq_job *spare;    /* recycled jobs with their easy handles (under lock) */
    bankq_job *active;   /* in the multi handle (bank thread only) */
    atomic_bool stop;
    bool exited; /* the bank thread is gone: submit answers at once (under lock) */
    atomic_long in_flight;
};

static void bankq_unlink_active(bankq *q, bankq_job *job)
{
    if (job->prev_active)
        job->prev_active->next_active = job->next_active;
    else if (q->active == job)
        q->active = job->next_active;
    if (job->next_active)
        job->next_active->prev_active = job->prev_active;
    job->prev_active = job->next_active = NULL;
}

/* Answer the caller of a finished (or failed, or aborted) job and recycle it. */
static void bankq_complete(bankq *q, bankq_job *job, CURLcode rc)
{
    executor_finish(job->easy, rc, job->req, &job->body, job->arena, job->out);
    executor_headers_free(job->headers);
    job->headers = NULL;
    bankq_done_fn done = job->done;
    void *arg = job->arg;
    curl_easy_reset(job->easy);
    pthread_mutex_lock(&q->lock);
    job->next = q->spare;
    q->spare = job;
    pthread_mutex_unlock(&q->lock);
    atomic_fetch_sub(&q->in_flight, 1);
    done(arg);
}

/* Move submitted jobs into the multi handle. */
static void bankq_take_incoming(bankq *q)
{
    pthread_mutex_lock(&q->lock);
    bankq_job *list = q->incoming;
    q->incoming = NULL;
    pthread_mutex_unlock(&q->lock);
    while (list) {
        bankq_job *job = list;
        list = job->next;
        job->next = NULL;
        if (curl_multi_add_handle(q->multi, job->easy) != CURLM_OK) {
            bankq_complete(q, job, CURLE_FAILED_INIT);
            continue;
        }
        job->next_active = q->active;
        if (q->active)
            q->active->prev_active = job;
        q->active = job;
    }
}

static void bankq_collect(bankq *q)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(q->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        bankq_job *job = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
        curl_multi_remove_handle(q->multi, easy);
        bankq_unlink_active(q, job);
        bankq_complete(q, job, rc);
    }
}

static void *bankq_main(void *arg)
{
    bankq *q = arg;
    int running = 0;
    while (!atomic_load(&q->stop)) {
        bankq_take_incoming(q);
        curl_multi_perform(q->multi, &running);
        bankq_collect(q);
        curl_multi_poll(q->multi, NULL, 0, 1000, NULL);
    }
    /* Stopping: answer everything still in flight as a transport error. */
    pthread_mutex_lock(&q->lock);
    q->exited = true;
    pthread_mutex_unlock(&q->lock);
    bankq_take_incoming(q);
    while (q->active) {
        bankq_job *job = q->active;
        curl_multi_remove_handle(q->multi, job->easy);
        bankq_unlink_active(q, job);
        bankq_complete(q, job, CURLE_ABORTED_BY_CALLBACK);
    }
    return NULL;
}

bankq *bankq_start(long max_per_host)
{
    bankq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->lock, NULL);
    q->multi = curl_multi_init();
    if (!q->multi)
        goto fail;
    if (max_per_host > 0)
        curl_multi_setopt(q->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_per_host);
    /* Keep enough idle connections for the bursts a worker sees. */
    curl_multi_setopt(q->multi, CURLMOPT_MAXCONNECTS, 1024L);
    if (pthread_create(&q->thread, NULL, bankq_main, q) != 0)
        goto fail;
    return q;
fail:
    if (q->multi)
        curl_multi_cleanup(q->multi);
    pthread_mutex_destroy(&q->lock);
    free(q);
    return NULL;
}

/* A new job with its own easy handle. */
static bankq_job *bankq_job_new(void)
{
    bankq_job *job = calloc(1, sizeof *job);
    if (job && !(job->easy = curl_easy_init())) {
        free(job);
        job = NULL;
    }
    return job;
}

void bankq_submit(bankq *q, const pagoflex_http_request *req, long default_timeout_ms,
                  const tlscreds *tls, pagoflex_arena *arena, pagoflex_http_response *out, bankq_done_fn done, void *arg)
{
    pthread_mutex_lock(&q->lock);
    bankq_job *job = q->spare;
    if (job)
        q->spare = job->next;
    pthread_mutex_unlock(&q->lock);
    if (!job)
        job = bankq_job_new();
    else
        job->next = NULL;
    memset(out, 0, sizeof *out);
    out->transport = PAGOFLEX_TRANSPORT_ERROR;
    if (!job || executor_prepare(job->easy, req, default_timeout_ms, tls, arena, &job->body, &job->headers) != 0) {
        if (job) {
            curl_easy_cleanup(job->easy);
            free(job);
        }
        log_warn("bank call %s %s not started (out of memory, or bad client certificate options)", req->method, req->url);
        done(arg);
        return;
    }
    job->req = req;
    job->arena = arena;
    job->out = out;
    job->done = done;
    job->arg = arg;
    curl_easy_setopt(job->easy, CURLOPT_PRIVATE, (char *)job);
    atomic_fetch_add(&q->in_flight, 1);
    pthread_mutex_lock(&q->lock);
    if (q->exited) {
        pthread_mutex_unlock(&q->lock);
        bankq_complete(q, job, CURLE_ABORTED_BY_CALLBACK);
        return;
    }
    job->next = q->incoming;
    q->incoming = job;
    pthread_mutex_unlock(&q->lock);
    curl_multi_wakeup(q->multi);
}

long bankq_in_flight(bankq *q)
{
    return q ? atomic_load(&q->in_flight) : 0;
}

void bankq_stop(bankq *q)
{
    if (!q || atomic_exchange(&q->stop, true))
        return;
    curl_multi_wakeup(q->multi);
    pthread_join(q->thread, NULL);
}

void bankq_free(bankq *q)
{
    if (!q)
        return;
    bankq_stop(q);
    while (q->spare) {
        bankq_job *job = q->spare;
        q->spare = job->next;
        curl_easy_cleanup(job->easy);
        free(job);
    }
    curl_multi_cleanup(q->multi);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
