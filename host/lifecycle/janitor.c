/* janitor.c - retention: one thread per worker purges what is no longer needed. */
#include "janitor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "condwait.h"
#include "log.h"
#include "store_janitor.h"

#define JANITOR_REPORT_EVERY_S 60

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool running;
    bool stopping;
    pthread_t thread;
    api_context *ctx;
} janitor = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Sleep `ms` or until stopped; false once stopping. */
static bool janitor_sleep(long ms)
{
    pthread_mutex_lock(&janitor.mu);
    if (!janitor.stopping)
        condwait_ms(&janitor.wake, &janitor.mu, ms);
    bool go_on = !janitor.stopping;
    pthread_mutex_unlock(&janitor.mu);
    return go_on;
}

/* What the last rounds removed, logged at most once a minute. */
typedef struct janitor_tally {
    store_janitor_counts rows;
    long copies;
    time_t since;
} janitor_tally;

static void janitor_report(janitor_tally *t, time_t now)
{
    if (t->rows.idempotency_keys || t->rows.webhook_events || t->rows.payment_history ||
        t->rows.notify_events || t->rows.notify_orphan_deliveries || t->copies)
        log_info("janitor: removed %ld expired idempotency keys, %ld webhook events, %ld history "
                 "rows, %ld notification events, %ld deliveries of deleted endpoints and %ld private "
                 "plugin copies in the last %ld s",
                 t->rows.idempotency_keys, t->rows.webhook_events, t->rows.payment_history,
                 t->rows.notify_events, t->rows.notify_orphan_deliveries, t->copies, (long)(now - t->since));
    *t = (janitor_tally){.since = now};
}

static void *janitor_main(void *arg)
{
    (void)arg;
    api_context *ctx = janitor.ctx;
    const config *cfg = ctx->cfg;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    store_janitor_limits lim = {
        .batch = JANITOR_BATCH,
        .max_batches = JANITOR_MAX_BATCHES,
        .webhook_event_retention_days = cfg->webhook_event_retention_days,
        .payment_history_retention_days = cfg->payment_history_retention_days,
        .notify_event_retention_days = cfg->notify_event_retention_days,
    };
    janitor_tally tally = {.since = time(NULL)};
    for (;;) {
        store_janitor_counts n;
        if (api_db_ready(ctx) && store_janitor_round(ctx->store, &lim, &n) == STORE_OK && n.ran) {
            tally.rows.idempotency_keys += n.idempotency_keys;
            tally.rows.webhook_events += n.webhook_events;
            tally.rows.payment_history += n.payment_history;
            tally.rows.notify_events += n.notify_events;
            tally.rows.notify_orphan_deliveries += n.notify_orphan_deliveries;
            if (n.more)
                log_debug("janitor: %d batches of %d rows were not enough for a table this "
                          "round; it goes on next round",
                          JANITOR_MAX_BATCHES, JANITOR_BATCH);
        }
        int removed = registry_clean_private(ctx->registry);
        if (removed > 0)
            tally.copies += removed;
        time_t now = time(NULL);
        if (now - tally.since >= JANITOR_REPORT_EVERY_S)
            janitor_report(&tally, now);
        long jitter = cfg->janitor_interval_ms / 4;
        long sleep_ms = cfg->janitor_interval_ms - jitter +
                        (jitter > 0 ? (long)(rand_r(&seed) % (unsigned long)(2 * jitter + 1)) : 0);
        if (!janitor_sleep(sleep_ms))
            break;
    }
    janitor_report(&tally, time(NULL));
    return NULL;
}

int janitor_start(api_context *ctx)
{
    pthread_mutex_lock(&janitor.mu);
    if (janitor.running) {
        pthread_mutex_unlock(&janitor.mu);
        log_error("janitor: already running in this process");
        return -1;
    }
    janitor.stopping = false;
    janitor.ctx = ctx;
    if (pthread_create(&janitor.thread, NULL, janitor_main, NULL) != 0) {
        janitor.ctx = NULL;
        pthread_mutex_unlock(&janitor.mu);
        log_error("janitor: could not start its thread");
        return -1;
    }
    janitor.running = true;
    pthread_mutex_unlock(&janitor.mu);
    char events[32] = "forever", history[32] = "forever";
    if (ctx->cfg->webhook_event_retention_days)
        snprintf(events, sizeof events, "%ld days", ctx->cfg->webhook_event_retention_days);
    if (ctx->cfg->payment_history_retention_days)
        snprintf(history, sizeof history, "%ld days", ctx->cfg->payment_history_retention_days);
    log_info("janitor: every %ld ms; expired idempotency keys removed; webhook events of terminal "
             "payments kept %s, their history %s",
             ctx->cfg->janitor_interval_ms, events, history);
    return 0;
}

void janitor_stop(void)
{
    pthread_mutex_lock(&janitor.mu);
    if (!janitor.running) {
        pthread_mutex_unlock(&janitor.mu);
        return;
    }
    janitor.stopping = true;
    pthread_cond_broadcast(&janitor.wake);
    pthread_mutex_unlock(&janitor.mu);
    pthread_join(janitor.thread, NULL);
    pthread_mutex_lock(&janitor.mu);
    janitor.running = false;
    janitor.ctx = NULL;
    pthread_mutex_unlock(&janitor.mu);
}
