/* webhook.c: signed webhook delivery with bounded retries.
 *
 * One thread drives a libcurl multi handle (so connections to receivers are
 * kept alive and reused) and a min-heap of deliveries keyed by the time of
 * their next attempt. Other threads only push onto the heap and wake the
 * multi handle with curl_multi_wakeup().
 *
 * A "delivery" is one event to one URL; a duplicated event or a fanout to
 * several base URLs makes several deliveries that share the event body.
 * Each delivery makes up to --webhook-attempts attempts; a 2xx answer stops
 * it, anything else (non-2xx, connection error, timeout) schedules the next
 * attempt after a backoff that starts at --webhook-backoff-ms and doubles up
 * to --webhook-backoff-max-ms.
 *
 * Counters (GET /_sim/stats):
 *   webhooks_sent       attempts made (HTTP requests sent)
 *   webhooks_delivered  attempts answered 2xx
 *   webhooks_failed     attempts answered non-2xx or not answered
 *   webhooks_abandoned  deliveries that used all their attempts
 *   webhooks_pending    deliveries scheduled or in flight now */
#include "banksim.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wh_event {
    atomic_int refs;
    char event_id[32];
    char tx_id[32]; /* what the event is about, for log lines: bx_... or rf_... */
    int account;    /* signed with bs_cfg.accounts[account].secret */
    size_t len;
    char body[];
};

struct wh_group {
    atomic_int remaining; /* first attempts not answered yet */
    webhook_first_cb cb;
    void *arg;
};

struct wh_job {
    struct wh_event *ev;
    struct wh_group *group; /* non-NULL until the first attempt is answered */
    char *url;
    unsigned attempts;
    CURL *easy;
    struct curl_slist *headers;
    uint64_t started_ms;
    struct wh_job *prev, *next; /* in-flight list */
};

static pthread_mutex_t wh_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bs_heap wh_heap;   /* waiting deliveries, under wh_lock */
static bool wh_stopping;         /* under wh_lock */
static uint64_t wh_stop_deadline;

static CURLM *wh_multi;
static EVP_MAC *wh_hmac;
static pthread_t wh_thread;
static bool wh_thread_started;

/* Webhook-thread-only state. */
static struct wh_job *wh_inflight;
static size_t wh_inflight_n;
static CURL **wh_idle;
static size_t wh_idle_n;

static atomic_ullong n_sent, n_delivered, n_failed, n_abandoned, n_dropped;
static atomic_llong n_pending;

/* ------------------------------------------------------------ small bits */

static void event_release(struct wh_event *ev)
{
    if (ev && atomic_fetch_sub(&ev->refs, 1) == 1)
        free(ev);
}

static void job_free(struct wh_job *j)
{
    if (!j)
        return;
    event_release(j->ev);
    free(j->url);
    free(j);
    atomic_fetch_sub(&n_pending, 1);
}

/* Tells a webhook-first request that one of its first attempts is done;
 * the last one runs the callback. */
static void group_notify(struct wh_job *j)
{
    struct wh_group *g = j->group;
    if (!g)
        return;
    j->group = NULL;
    if (atomic_fetch_sub(&g->remaining, 1) == 1) {
        g->cb(g->arg);
        free(g);
    }
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* Writes lowercase hex HMAC-SHA256(secret, "<t>.<body>") into hex (>= 65
 * bytes). Returns 0 or -1. */
static int sign(const char *secret, const char *t, const struct wh_event *ev, char *hex)
{
    unsigned char mac[32];
    const struct bs_part parts[] = {{t, strlen(t)}, {ev->body, ev->len}};
    if (bs_hmac_sha256_dotted(wh_hmac, (const unsigned char *)secret, strlen(secret), parts, 2, mac) != 0)
        return -1;
    for (size_t i = 0; i < sizeof mac; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

/* Builds the request headers for one attempt signed at unix time now. */
static struct curl_slist *attempt_headers(const struct wh_event *ev, int64_t now)
{
    char t[24], hex1[2 * EVP_MAX_MD_SIZE + 1], hex2[2 * EVP_MAX_MD_SIZE + 1];
    char sig[64 + sizeof hex1 + sizeof hex2];
    struct curl_slist *h = NULL, *tmp;

    snprintf(t, sizeof t, "%lld", (long long)now);
    if (sign(bs_cfg.accounts[ev->account].secret, t, ev, hex1) != 0)
        return NULL;
    if (bs_cfg.extra_secret && ev->account == 0) {
        if (sign(bs_cfg.extra_secret, t, ev, hex2) != 0)
            return NULL;
        snprintf(sig, sizeof sig, "X-BancoX-Signature: t=%s,v1=%s,v1=%s", t, hex1, hex2);
    } else {
        snprintf(sig, sizeof sig, "X-BancoX-Signature: t=%s,v1=%s", t, hex1);
    }
    const char *lines[] = { "Content-Type: application/json", sig,
                            "User-Agent: BancoX-Webhooks/1 (banksim)", "Expect:" };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        tmp = curl_slist_append(h, lines[i]);
        if (!tmp) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = tmp;
    }
    return h;
}

/* --------------------------------------------------------- the thread */

static CURL *easy_get(void)
{
    if (wh_idle_n) {
        CURL *e = wh_idle[--wh_idle_n];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

static void easy_put(CURL *e)
{
    if (wh_idle_n < bs_cfg.webhook_concurrency)
        wh_idle[wh_idle_n++] = e;
    else
        curl_easy_cleanup(e);
}

static void inflight_add(struct wh_job *j)
{
    j->prev = NULL;
    j->next = wh_inflight;
    if (wh_inflight)
        wh_inflight->prev = j;
    wh_inflight = j;
    wh_inflight_n++;
}

static void inflight_remove(struct wh_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        wh_inflight = j->next;
    if (j->next)
        j->next->prev = j->prev;
    wh_inflight_n--;
}

/* Pushes j back for its next attempt, or gives up on it. */
static void job_retry_or_abandon(struct wh_job *j)
{
    unsigned backoff = bs_cfg.webhook_backoff_ms;
    int rc = -1;

    if (j->attempts >= bs_cfg.webhook_attempts) {
        atomic_fetch_add(&n_abandoned, 1);
        bs_log("webhook %s evt=%s -> %s abandoned after %u attempts", j->ev->tx_id,
               j->ev->event_id, j->url, j->attempts);
        job_free(j);
        return;
    }
    for (unsigned i = 1; i < j->attempts && backoff < bs_cfg.webhook_backoff_max_ms; i++)
        backoff *= 2;
    if (backoff > bs_cfg.webhook_backoff_max_ms)
        backoff = bs_cfg.webhook_backoff_max_ms;
    pthread_mutex_lock(&wh_lock);
    if (!wh_stopping)
        rc = bs_heap_push(&wh_heap, bs_now_ms() + backoff, j);
    pthread_mutex_unlock(&wh_lock);
    if (rc != 0) {
        atomic_fetch_add(&n_dropped, 1);
        job_free(j);
    }
}

/* Starts one attempt of j. On failure the attempt counts as failed. */
static void job_start(struct wh_job *j)
{
    j->attempts++;
    j->started_ms = bs_now_ms();
    j->easy = easy_get();
    j->headers = j->easy ? attempt_headers(j->ev, bs_unix_now()) : NULL;
    if (!j->headers)
        goto fail;
    curl_easy_setopt(j->easy, CURLOPT_URL, j->url);
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(j->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, (const char *)j->ev->body);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->ev->len);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)bs_cfg.webhook_timeout_ms);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(wh_multi, j->easy) != CURLM_OK)
        goto fail;
    inflight_add(j);
    atomic_fetch_add(&n_sent, 1);
    return;
fail:
    bs_err("webhook %s -> %s: could not start attempt %u (out of memory?)", j->ev->tx_id,
           j->url, j->attempts);
    curl_slist_free_all(j->headers);
    j->headers = NULL;
    if (j->easy)
        easy_put(j->easy);
    j->easy = NULL;
    atomic_fetch_add(&n_failed, 1);
    group_notify(j);
    job_retry_or_abandon(j);
}

/* Handles one finished attempt. */
static void job_done(struct wh_job *j, CURLcode result)
{
    long code = 0;
    bool ok;

    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(wh_multi, j->easy);
    easy_put(j->easy);
    j->easy = NULL;
    curl_slist_free_all(j->headers);
    j->headers = NULL;
    inflight_remove(j);
    ok = result == CURLE_OK && code >= 200 && code < 300;
    if (result == CURLE_OK)
        bs_log("webhook %s evt=%s -> %s %ld attempt %u/%u %llums", j->ev->tx_id,
               j->ev->event_id, j->url, code, j->attempts, bs_cfg.webhook_attempts,
               (unsigned long long)(bs_now_ms() - j->started_ms));
    else
        bs_log("webhook %s evt=%s -> %s error \"%s\" attempt %u/%u", j->ev->tx_id,
               j->ev->event_id, j->url, curl_easy_strerror(result), j->attempts,
               bs_cfg.webhook_attempts);
    group_notify(j);
    if (ok) {
        atomic_fetch_add(&n_delivered, 1);
        job_free(j);
        return;
    }
    atomic_fetch_add(&n_failed, 1);
    job_retry_or_abandon(j);
}

static void harvest(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(wh_multi, &left))) {
        struct wh_job *j = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        job_done(j, m->data.result);
    }
}

/* Starts due deliveries while there is room. Returns the next due time. */
static uint64_t start_due(bool *stop_now)
{
    uint64_t next;
    for (;;) {
        struct wh_job *j = NULL;
        uint64_t now = bs_now_ms();
        pthread_mutex_lock(&wh_lock);
        if (wh_stopping) {
            *stop_now = wh_inflight_n == 0 || now >= wh_stop_deadline;
            pthread_mutex_unlock(&wh_lock);
            return now + 20;
        }
        next = bs_heap_peek_due(&wh_heap);
        if (next <= now && wh_inflight_n < bs_cfg.webhook_concurrency)
            j = bs_heap_pop(&wh_heap);
        pthread_mutex_unlock(&wh_lock);
        if (!j)
            return next;
        job_start(j);
    }
}

/* Frees everything left when the thread ends, releasing webhook-first
 * requests that still wait. */
static void teardown(void)
{
    struct wh_job *j;
    size_t dropped = 0;

    while ((j = wh_inflight)) {
        inflight_remove(j);
        curl_multi_remove_handle(wh_multi, j->easy);
        curl_easy_cleanup(j->easy);
        curl_slist_free_all(j->headers);
        group_notify(j);
        job_free(j);
        dropped++;
    }
    pthread_mutex_lock(&wh_lock);
    while ((j = bs_heap_pop(&wh_heap))) {
        group_notify(j);
        job_free(j);
        dropped++;
    }
    bs_heap_free(&wh_heap);
    pthread_mutex_unlock(&wh_lock);
    atomic_fetch_add(&n_dropped, dropped);
    if (dropped)
        bs_log("webhooks: %zu deliveries dropped at shutdown", dropped);
    while (wh_idle_n)
        curl_easy_cleanup(wh_idle[--wh_idle_n]);
}

static void *wh_main(void *arg)
{
    (void)arg;
    for (;;) {
        bool stop_now = false;
        uint64_t next = start_due(&stop_now);
        long curl_ms = -1;
        int running = 0;
        uint64_t now;
        int wait;

        if (stop_now)
            break;
        curl_multi_perform(wh_multi, &running);
        harvest();
        curl_multi_timeout(wh_multi, &curl_ms);
        now = bs_now_ms();
        wait = 1000;
        if (curl_ms >= 0 && curl_ms < wait)
            wait = (int)curl_ms;
        if (next != UINT64_MAX && next - now < (uint64_t)wait)
            wait = next <= now ? 0 : (int)(next - now);
        if (next <= now && wh_inflight_n >= bs_cfg.webhook_concurrency)
            wait = curl_ms >= 0 && curl_ms < 1000 ? (int)curl_ms : 50; /* full: wait for a slot */
        curl_multi_poll(wh_multi, NULL, 0, wait, NULL);
    }
    teardown();
    return NULL;
}

/* ------------------------------------------------------------ public */

int webhook_start(void)
{
    wh_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!wh_hmac) {
        bs_err("webhooks: OpenSSL has no HMAC implementation");
        goto fail;
    }
    wh_idle = calloc(bs_cfg.webhook_concurrency, sizeof *wh_idle);
    wh_multi = curl_multi_init();
    if (!wh_idle || !wh_multi) {
        bs_err("webhooks: out of memory");
        goto fail;
    }
    curl_multi_setopt(wh_multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)bs_cfg.webhook_concurrency);
    if (pthread_create(&wh_thread, NULL, wh_main, NULL) != 0) {
        bs_err("webhooks: cannot start the delivery thread");
        goto fail;
    }
    wh_thread_started = true;
    return 0;
fail:
    if (wh_multi)
        curl_multi_cleanup(wh_multi);
    wh_multi = NULL;
    free(wh_idle);
    wh_idle = NULL;
    EVP_MAC_free(wh_hmac);
    wh_hmac = NULL;
    return -1;
}

void webhook_stop(unsigned grace_ms)
{
    if (!wh_thread_started)
        return;
    pthread_mutex_lock(&wh_lock);
    wh_stopping = true;
    wh_stop_deadline = bs_now_ms() + grace_ms;
    pthread_mutex_unlock(&wh_lock);
    curl_multi_wakeup(wh_multi);
    pthread_join(wh_thread, NULL);
    wh_thread_started = false;
    curl_multi_cleanup(wh_multi);
    wh_multi = NULL;
    free(wh_idle);
    wh_idle = NULL;
    EVP_MAC_free(wh_hmac);
    wh_hmac = NULL;
}

/* Returns the JSON body of e (caller frees), or NULL on OOM. Payment events
 * have the v1 fields plus "type"; refund events the refund shape of the
 * contract. */
static char *event_body(const struct bs_event *e, const char *event_id)
{
    char occurred[32];
    json_t *o;
    char *body;

    bs_rfc3339(e->occurred_unix, occurred, sizeof occurred);
    if (e->refund)
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "event_id", event_id,
                      "type", "refund", "refund_id", e->refund_id, "ref", e->ref, "tx_id",
                      e->tx_id, "status", e->status, "amount", (json_int_t)e->amount,
                      "currency", e->currency, "occurred_at", occurred);
    else
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "event_id", event_id,
                      "type", "payment", "tx_id", e->tx_id, "ref", e->ref, "status",
                      e->status, "amount", (json_int_t)e->amount, "currency", e->currency,
                      "occurred_at", occurred);
    body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

/* Returns the new event for e (one reference), or NULL on OOM. */
static struct wh_event *event_new(const struct bs_event *e)
{
    char event_id[32];
    struct wh_event *ev = NULL;
    char *body = NULL;
    size_t len;

    if (bs_random_id("evt_", event_id, sizeof event_id) != 0)
        goto done;
    body = event_body(e, event_id);
    if (!body)
        goto done;
    len = strlen(body);
    ev = malloc(sizeof *ev + len + 1);
    if (!ev)
        goto done;
    atomic_init(&ev->refs, 1);
    memcpy(ev->event_id, event_id, sizeof event_id);
    memcpy(ev->tx_id, e->refund ? e->refund_id : e->tx_id, sizeof ev->tx_id);
    ev->account = e->account;
    ev->len = len;
    memcpy(ev->body, body, len + 1);
done:
    free(body);
    return ev;
}

/* Returns base + the path and query of callback_url, malloc'd; NULL on a
 * URL curl cannot parse or OOM. */
static char *fanout_url(const char *base, const char *callback_url)
{
    CURLU *u = curl_url();
    char *path = NULL, *query = NULL, *out = NULL;
    size_t blen = strlen(base);

    if (!u || curl_url_set(u, CURLUPART_URL, callback_url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto done;
    curl_url_get(u, CURLUPART_QUERY, &query, 0); /* absent is fine */
    while (blen && base[blen - 1] == '/')
        blen--;
    if (asprintf(&out, "%.*s%s%s%s", (int)blen, base, path, query ? "?" : "",
                 query ? query : "") < 0)
        out = NULL;
done:
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return out;
}

static struct wh_job *job_new(struct wh_event *ev, char *url, struct wh_group *g)
{
    struct wh_job *j = calloc(1, sizeof *j);
    if (!j) {
        free(url);
        return NULL;
    }
    atomic_fetch_add(&ev->refs, 1);
    atomic_fetch_add(&n_pending, 1);
    j->ev = ev;
    j->url = url;
    j->group = g;
    return j;
}

/* Pushes j at due, or frees it (returns -1) when stopping or OOM. */
static int job_push(struct wh_job *j, uint64_t due)
{
    int rc = -1;
    pthread_mutex_lock(&wh_lock);
    if (!wh_stopping)
        rc = bs_heap_push(&wh_heap, due, j);
    pthread_mutex_unlock(&wh_lock);
    if (rc != 0)
        job_free(j);
    return rc;
}

static uint64_t jitter(const struct bs_tunables *t)
{
    return t->reorder ? (uint64_t)(bs_rng_double() * (t->reorder_ms + 1)) : 0;
}

int webhook_schedule(const struct bs_event *e, const struct bs_tunables *t,
                     webhook_first_cb first_cb, void *arg)
{
    size_t ntargets = bs_cfg.fanout_n ? bs_cfg.fanout_n : 1;
    bool twice = bs_rng_chance(t->duplicate_rate);
    uint64_t now = bs_now_ms();
    struct wh_group *g = NULL;
    struct wh_event *ev = NULL;
    size_t pushed_first = 0;
    int rc = -1;

    if (first_cb) {
        g = calloc(1, sizeof *g);
        if (!g)
            goto done;
        g->cb = first_cb;
        g->arg = arg;
        /* One count per target plus one held by this function, so the
         * webhook thread cannot finish the group while we still push. */
        atomic_init(&g->remaining, (int)ntargets + 1);
    }
    ev = event_new(e);
    if (!ev)
        goto done;
    for (size_t i = 0; i < ntargets; i++) {
        char *url = bs_cfg.fanout_n ? fanout_url(bs_cfg.fanout[i], e->callback_url)
                                    : strdup(e->callback_url);
        char *url2 = twice && url ? strdup(url) : NULL;
        uint64_t due = first_cb ? now : now + e->delay_ms + jitter(t);
        struct wh_job *j;

        if (!url)
            bs_err("webhook %s: cannot build a URL from callback_url for target %zu", ev->tx_id,
                   i);
        j = url ? job_new(ev, url, g) : NULL;
        if (j && job_push(j, due) == 0)
            pushed_first++;
        else if (g)
            atomic_fetch_sub(&g->remaining, 1); /* never reaches 0: we hold one */
        if (url2 && (j = job_new(ev, url2, NULL)))
            job_push(j, due + (first_cb ? t->webhook_delay_ms : 0) +
                            (uint64_t)(bs_rng_double() * 101) + jitter(t));
    }
    if (pushed_first == 0)
        goto done; /* g is referenced by no job: freed below */
    if (g && atomic_fetch_sub(&g->remaining, 1) == 1) {
        /* Every first attempt finished while we were pushing. */
        g->cb(g->arg);
        free(g);
    }
    g = NULL;
    rc = 0;
done:
    free(g);
    event_release(ev);
    /* webhook_stop() sets wh_stopping before it frees the multi handle. */
    pthread_mutex_lock(&wh_lock);
    if (!wh_stopping && wh_multi)
        curl_multi_wakeup(wh_multi);
    pthread_mutex_unlock(&wh_lock);
    return rc;
}

void webhook_stats(void *json_obj)
{
    json_t *o = json_obj;
    json_object_set_new(o, "webhooks_sent", json_integer((json_int_t)atomic_load(&n_sent)));
    json_object_set_new(o, "webhooks_delivered",
                        json_integer((json_int_t)atomic_load(&n_delivered)));
    json_object_set_new(o, "webhooks_failed", json_integer((json_int_t)atomic_load(&n_failed)));
    json_object_set_new(o, "webhooks_abandoned",
                        json_integer((json_int_t)atomic_load(&n_abandoned)));
    json_object_set_new(o, "webhooks_dropped", json_integer((json_int_t)atomic_load(&n_dropped)));
    json_object_set_new(o, "webhooks_pending", json_integer((json_int_t)atomic_load(&n_pending)));
}
