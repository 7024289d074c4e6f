/* notifier.c - the notifier thread: claim, sign, send, record (see notifier.h). */
#include "notifier.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "notify_secret.h"
#include "notify_target.h"
#include "stdwebhooks.h"
#include "store_notify.h"
#include "version.h"

struct nf_endpoint;

/* One claimed delivery: queued for its endpoint, then in flight. */
typedef struct nf_job {
    struct nf_job *next; /* in its endpoint's queue, then in the active list */
    struct nf_endpoint *ep;
    long long claimed_ms; /* nf_now_ms() before the claim was sent */
    pagoflex_arena *arena;
    store_notify_job row; /* strings in arena */
    CURL *easy;
    struct curl_slist *headers;
    bool allow_private;
    bool refused;          /* a connection was refused by the address check */
    char refused_addr[64]; /* the address it would have used */
} nf_job;

/* What this worker holds for one endpoint: deliveries in flight, and
 * deliveries claimed ahead (queued, oldest first) so that one claim feeds
 * many sends. `ahead` is how many it may hold queued beyond its
 * notify_endpoint_max_in_flight: doubled (up to NOTIFIER_AHEAD_MAX x the
 * cap) when a claim filled the endpoint's room, halved when a queued
 * delivery had to be given back, so a slow endpoint holds next to nothing
 * that another host could send. */
typedef struct nf_endpoint {
    struct nf_endpoint *next;
    char *id;
    int in_flight;
    int queued;
    nf_job *head, *tail;
    int ahead;
    long long idle_since; /* ms; when it last held nothing */
} nf_endpoint;

/* An endpoint that held nothing for this long is forgotten. */
#define NF_ENDPOINT_IDLE_MS 60000

static struct {
    pthread_mutex_t mu;
    bool running;
    atomic_bool stop;
    unsigned seed; /* retry jitter (notifier thread only) */
    pthread_t thread;
    api_context *ctx;
    CURLM *multi;
    nf_job *active;
    int in_flight;
    nf_endpoint *endpoints;
    int queued; /* over every endpoint */
} nf = {.mu = PTHREAD_MUTEX_INITIALIZER};

long notifier_retry_ms(const config *cfg, int attempts)
{
    if (attempts < 1 || attempts > cfg->notify_retry_count)
        return -1;
    return cfg->notify_retry_s[attempts - 1] * 1000;
}

char *notifier_signature(const char *secret, const char *previous, const char *event_id, long long timestamp,
                         const char *payload)
{
    pagoflex_arena *arena = arena_new();
    char *a = NULL, *b = NULL, *out = NULL;
    size_t len = strlen(payload);
    if (!arena)
        return NULL;
    if (stdwh_sign(arena_alloc, arena, secret, event_id, timestamp, (const unsigned char *)payload, len,
                   &a) != PAGOFLEX_OK ||
        (previous && stdwh_sign(arena_alloc, arena, previous, event_id, timestamp,
                                (const unsigned char *)payload, len, &b) != PAGOFLEX_OK))
        goto done;
    size_t cap = strlen(a) + (b ? 1 + strlen(b) : 0) + 1;
    if ((out = malloc(cap)))
        snprintf(out, cap, "%s%s%s", a, b ? " " : "", b ? b : "");
done:
    arena_free(arena);
    return out;
}

static long long nf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int notifier_reseal_secrets(store *st, const notify_keys *keys)
{
    int done = 0;
    char after[128] = ""; /* endpoints are paged by id */
    for (;;) {
        pagoflex_arena *arena = arena_new();
        store_endpoint *rows = NULL;
        size_t n = 0;
        if (!arena ||
            store_endpoint_sealed_elsewhere(st, keys->current.id, after, 100, arena, &rows, &n) != STORE_OK) {
            arena_free(arena);
            log_warn("notify: endpoint secrets under the previous master key could not be listed");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            char err[300];
            unsigned char *secret = NULL, *prev = NULL;
            size_t secret_len = 0, prev_len = 0;
            const store_endpoint *e = &rows[i];
            if (notify_secret_reseal(keys, e->id, e->secret_enc, e->secret_enc_len, &secret, &secret_len, err,
                                     sizeof err) != 0) {
                log_warn("notify: the secret of webhook endpoint %s was not re-sealed: %s", e->id, err);
                continue;
            }
            /* A previous secret neither key opens signs no more anyway: dropped. */
            if (e->previous_secret_enc &&
                notify_secret_reseal(keys, e->id, e->previous_secret_enc, e->previous_secret_enc_len, &prev,
                                     &prev_len, err, sizeof err) != 0)
                prev = NULL;
            /* STORE_CONFLICT: changed meanwhile (rotate_secret, another worker). */
            if (store_endpoint_reseal(st, e->id, e, secret, secret_len, prev, prev_len) == STORE_OK)
                done++;
            free(secret);
            free(prev);
        }
        if (n > 0)
            snprintf(after, sizeof after, "%s", rows[n - 1].id);
        arena_free(arena);
        if (n < 100)
            break;
    }
    if (done > 0)
        log_info("notify: %d webhook endpoint secret(s) re-sealed under the current master key", done);
    return done;
}

/* Every connection of a delivery passes here with the address it is about
 * to use: the check against DNS rebinding. */
static curl_socket_t nf_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    nf_job *job = clientp;
    (void)purpose;
    if (!notify_target_addr_allowed(&address->addr, job->allow_private)) {
        job->refused = true;
        const void *raw = address->family == AF_INET6
                              ? (const void *)&((const struct sockaddr_in6 *)&address->addr)->sin6_addr
                              : (const void *)&((const struct sockaddr_in *)&address->addr)->sin_addr;
        if (!inet_ntop(address->family, raw, job->refused_addr, sizeof job->refused_addr))
            snprintf(job->refused_addr, sizeof job->refused_addr, "?");
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

/* The answer's body is not needed: read and dropped. */
static size_t nf_discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static void nf_job_free(nf_job *job)
{
    if (!job)
        return;
    if (job->easy)
        curl_easy_cleanup(job->easy);
    curl_slist_free_all(job->headers);
    arena_free(job->arena);
    free(job);
}

/* An attempt's outcome, into *o: a failure is retried on the schedule, with
 * up to 10% jitter (so deliveries that failed together do not come back
 * together), and no sooner than the answer's Retry-After (seconds, at most
 * a day) says. A 410 Gone is not retried: the endpoint asked for no more.
 * `error` must live until the outcome is recorded. */
static void nf_outcome(const store_notify_job *row, bool ok, int http_status, const char *error,
                       long retry_after_s, store_notify_outcome *o)
{
    const config *cfg = nf.ctx->cfg;
    long retry = 0; /* ms; -1: no retry left */
    if (!ok) {
        retry = http_status == 410 ? -1 : notifier_retry_ms(cfg, row->attempts);
        if (retry > 0)
            retry += (long)(rand_r(&nf.seed) % (unsigned)(retry / 10 + 1));
        if (retry > 0 && retry_after_s > 0 && retry_after_s * 1000 > retry)
            retry = (retry_after_s > 86400 ? 86400 : retry_after_s) * 1000;
    }
    metrics_notify_attempt(ok          ? METRICS_NOTIFY_DELIVERED
                           : retry < 0 ? METRICS_NOTIFY_FAILED
                                       : METRICS_NOTIFY_RETRY);
    *o = (store_notify_outcome){.delivery_id = row->delivery_id,
                                .claim_token = row->claim_token,
                                .status = ok ? "succeeded" : retry < 0 ? "failed" : "pending",
                                .http_status = http_status,
                                .error = ok ? NULL : error,
                                .retry_ms = retry < 0 ? 0 : retry};
    if (!ok && retry < 0)
        log_warn("notify: delivery %s of event %s to endpoint %s failed after %d attempts (%s)",
                 row->delivery_id, row->event_id, row->endpoint_id, row->attempts, error);
}

/* Record the n outcomes: in one statement, or one by one when that cannot
 * be made. */
static void nf_record(store_notify_outcome *o, size_t n)
{
    store_result many = store_notify_finish_many(nf.ctx->store, o, n);
    for (size_t i = 0; i < n; i++) {
        store_result sr = STORE_OK;
        if (many == STORE_ERROR)
            sr = store_notify_finish(nf.ctx->store, o[i].delivery_id, o[i].claim_token, o[i].status,
                                     o[i].http_status, o[i].error, o[i].retry_ms);
        else if (many != STORE_OK)
            sr = many;
        else if (!o[i].recorded)
            sr = STORE_CONFLICT;
        if (sr == STORE_CONFLICT)
            log_info("notify: delivery %s was claimed again or removed meanwhile; outcome not recorded",
                     o[i].delivery_id);
        else if (sr != STORE_OK)
            log_warn("notify: the outcome of delivery %s was not recorded (database); it is sent again "
                     "once its lease ends",
                     o[i].delivery_id);
    }
}

/* Record one outcome at once (a delivery that could not be started). */
static void nf_record_one(const store_notify_job *row, bool ok, int http_status, const char *error,
                          long retry_after_s)
{
    store_notify_outcome o;
    nf_outcome(row, ok, http_status, error, retry_after_s, &o);
    nf_record(&o, 1);
}

/* Copy len bytes (none when src is NULL) into the arena; -1 when out of memory. */
static int nf_copy_bytes(pagoflex_arena *a, const unsigned char *src, size_t len, const unsigned char **out,
                         size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!src)
        return 0;
    unsigned char *copy = arena_alloc(a, len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, src, len);
    *out = copy;
    *out_len = len;
    return 0;
}

/* Copy a claimed row into the job's own arena. */
static int nf_copy_row(nf_job *job, const store_notify_job *src)
{
    pagoflex_arena *a = job->arena;
    store_notify_job *d = &job->row;
    *d = (store_notify_job){.claim_token = src->claim_token, .attempts = src->attempts};
    d->delivery_id = arena_strdup(a, src->delivery_id);
    d->event_id = arena_strdup(a, src->event_id);
    d->event_type = arena_strdup(a, src->event_type);
    d->payload = arena_strdup(a, src->payload);
    d->endpoint_id = arena_strdup(a, src->endpoint_id);
    d->url = arena_strdup(a, src->url);
    /* The sealed secrets too: the job is signed when it is sent, after the
     * claim's own arena is gone. */
    if (nf_copy_bytes(a, src->secrets.secret_enc, src->secrets.secret_enc_len, &d->secrets.secret_enc,
                      &d->secrets.secret_enc_len) != 0 ||
        nf_copy_bytes(a, src->secrets.previous_secret_enc, src->secrets.previous_secret_enc_len,
                      &d->secrets.previous_secret_enc, &d->secrets.previous_secret_enc_len) != 0)
        return -1;
    return d->delivery_id && d->event_id && d->event_type && d->payload && d->endpoint_id && d->url ? 0 : -1;
}

/* The signature header for a claimed row, or NULL with a reason in err. */
static char *nf_sign(const store_notify_job *row, long long now, char *err, size_t errlen)
{
    const notify_keys *keys = nf.ctx->notify_keys;
    char secret[NOTIFY_SECRET_LEN + 1], previous[NOTIFY_SECRET_LEN + 1];
    bool have_previous = false;
    char *sig = NULL;
    if (!keys) {
        snprintf(err, errlen, "this host holds no master key for endpoint secrets");
        return NULL;
    }
    if (notify_secret_open(keys, row->endpoint_id, row->secrets.secret_enc, row->secrets.secret_enc_len,
                           secret, err, errlen))
        goto done;
    if (row->secrets.previous_secret_enc) {
        /* A previous secret that no longer opens is dropped, not fatal. */
        char ignored[256];
        have_previous =
            notify_secret_open(keys, row->endpoint_id, row->secrets.previous_secret_enc,
                               row->secrets.previous_secret_enc_len, previous, ignored, sizeof ignored) == 0;
    }
    sig = notifier_signature(secret, have_previous ? previous : NULL, row->event_id, now, row->payload);
    if (!sig)
        snprintf(err, errlen, "signing failed (out of memory or a malformed secret)");
done:
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(previous, sizeof previous);
    return sig;
}

/* Send one claimed delivery (taken off its queue): added to the multi
 * handle, or, when it cannot be sent, its outcome recorded at once and the
 * job freed. */
static void nf_launch(nf_job *job)
{
    const config *cfg = nf.ctx->cfg;
    char err[300];
    if (!(job->easy = curl_easy_init())) {
        log_warn("notify: out of memory; delivery %s is sent again once its lease ends",
                 job->row.delivery_id);
        nf_job_free(job);
        return;
    }
    job->allow_private = cfg->notify_allow_private_targets != 0;
    if (notify_target_check_url(job->row.url, job->allow_private, err, sizeof err) != 0) {
        nf_record_one(&job->row, false, 0, err, 0);
        nf_job_free(job);
        return;
    }
    long long now = (long long)time(NULL);
    char *sig = nf_sign(&job->row, now, err, sizeof err);
    if (!sig) {
        log_warn("notify: delivery %s to endpoint %s not sent: %s", job->row.delivery_id,
                 job->row.endpoint_id, err);
        nf_record_one(&job->row, false, 0, err, 0);
        nf_job_free(job);
        return;
    }
    char *h_id = arena_printf(job->arena, "webhook-id: %s", job->row.event_id);
    char *h_ts = arena_printf(job->arena, "webhook-timestamp: %lld", now);
    char *h_sig = arena_printf(job->arena, "webhook-signature: %s", sig);
    char *h_ua = arena_printf(job->arena, "User-Agent: Pagoflex-Webhooks/%s", version_string());
    OPENSSL_cleanse(sig, strlen(sig));
    free(sig);
    const char *lines[] = {"Content-Type: application/json", "Expect:", h_id, h_ts, h_sig, h_ua};
    bool ok = h_id && h_ts && h_sig && h_ua;
    for (size_t i = 0; ok && i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *l = curl_slist_append(job->headers, lines[i]);
        ok = l != NULL;
        if (l)
            job->headers = l;
    }
    CURL *e = job->easy;
    ok = ok && curl_easy_setopt(e, CURLOPT_URL, job->row.url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    if (!ok) {
        nf_record_one(&job->row, false, 0, "the URL could not be used", 0);
        nf_job_free(job);
        return;
    }
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->notify_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cfg->notify_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, job->row.payload);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(job->row.payload));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, nf_discard);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, nf_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, job);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)job);
    if (curl_multi_add_handle(nf.multi, e) != CURLM_OK) {
        nf_record_one(&job->row, false, 0, "the request could not be started", 0);
        nf_job_free(job);
        return;
    }
    job->next = nf.active;
    nf.active = job;
    nf.in_flight++;
    job->ep->in_flight++;
}

/* The endpoint's entry, made (holding nothing, with a look-ahead of one
 * cap) when it has none; NULL when out of memory. */
static nf_endpoint *nf_endpoint_get(const char *id)
{
    const config *cfg = nf.ctx->cfg;
    for (nf_endpoint *ep = nf.endpoints; ep; ep = ep->next)
        if (strcmp(ep->id, id) == 0)
            return ep;
    nf_endpoint *ep = calloc(1, sizeof *ep);
    if (!ep || !(ep->id = strdup(id))) {
        free(ep);
        return NULL;
    }
    ep->ahead = cfg->notify_endpoint_max_in_flight;
    ep->idle_since = nf_now_ms();
    ep->next = nf.endpoints;
    nf.endpoints = ep;
    return ep;
}

/* The most deliveries the endpoint may be given by a claim now. */
static int nf_endpoint_room(const nf_endpoint *ep)
{
    return nf.ctx->cfg->notify_endpoint_max_in_flight + ep->ahead - ep->in_flight - ep->queued;
}

/* Queue a claimed row for its endpoint. A row that cannot be queued (out of
 * memory) is left to its lease. */
static void nf_enqueue(const store_notify_job *src, long long claimed_ms)
{
    nf_endpoint *ep = nf_endpoint_get(src->endpoint_id);
    nf_job *job = ep ? calloc(1, sizeof *job) : NULL;
    if (!job || !(job->arena = arena_new()) || nf_copy_row(job, src) != 0) {
        log_warn("notify: out of memory; delivery %s is sent again once its lease ends", src->delivery_id);
        nf_job_free(job);
        return;
    }
    job->ep = ep;
    job->claimed_ms = claimed_ms;
    if (ep->tail)
        ep->tail->next = job;
    else
        ep->head = job;
    ep->tail = job;
    ep->queued++;
    nf.queued++;
}

static nf_job *nf_dequeue(nf_endpoint *ep)
{
    nf_job *job = ep->head;
    ep->head = job->next;
    if (!ep->head)
        ep->tail = NULL;
    job->next = NULL;
    ep->queued--;
    nf.queued--;
    return job;
}

/* Give back n queued jobs (never attempted) and free them: due again now
 * for whoever claims next, this host or another. When that cannot be
 * written their leases run out instead (and the attempt their claim
 * counted stays counted). */
static void nf_give_back(nf_job **jobs, size_t n)
{
    enum { NF_GIVE_BACK_BATCH = 64 };
    const char *ids[NF_GIVE_BACK_BATCH];
    int64_t tokens[NF_GIVE_BACK_BATCH];
    for (size_t at = 0; at < n; at += NF_GIVE_BACK_BATCH) {
        size_t m = n - at < NF_GIVE_BACK_BATCH ? n - at : NF_GIVE_BACK_BATCH, given = 0;
        for (size_t i = 0; i < m; i++) {
            ids[i] = jobs[at + i]->row.delivery_id;
            tokens[i] = jobs[at + i]->row.claim_token;
        }
        if (store_notify_give_back(nf.ctx->store, ids, tokens, m, &given) != STORE_OK) {
            log_warn("notify: %zu claimed deliveries could not be given back; they are sent once their lease "
                     "ends",
                     m);
            continue;
        }
        /* given < m: those were finished or claimed again meanwhile (not by us). */
        for (size_t i = 0; i < m; i++)
            log_info(
                "notify: delivery %s to endpoint %s given back unsent: its lease could no longer cover an "
                "attempt",
                ids[i], jobs[at + i]->row.endpoint_id);
    }
    for (size_t i = 0; i < n; i++)
        nf_job_free(jobs[i]);
}

/* Send what the caps allow from the endpoints' queues. A queued delivery
 * is sent only while its lease (notify_timeout_ms +
 * NOTIFIER_LEASE_MARGIN_MS + NOTIFIER_HOLD_MS from its claim) still covers
 * a whole attempt and the time to record it, that is within
 * NOTIFIER_HOLD_MS of its claim; an older one is given back (not left to
 * expire: given back, it is due at once for any host, and no attempt is
 * counted for it), and its endpoint's look-ahead halved. Returns the ms
 * until the oldest queued delivery reaches that age (-1: none queued). */
static long nf_dispatch(void)
{
    enum { NF_AGED_MAX = 256 };
    const config *cfg = nf.ctx->cfg;
    long long now = nf_now_ms();
    long next = -1;
    nf_job *aged[NF_AGED_MAX];
    size_t n_aged = 0;
    /* Whoever comes first takes free worker slots first: start with the
     * next endpoint each time, so none is always last. */
    if (nf.endpoints && nf.endpoints->next) {
        nf_endpoint *first = nf.endpoints, *last = first;
        while (last->next)
            last = last->next;
        nf.endpoints = first->next;
        first->next = NULL;
        last->next = first;
    }
    for (nf_endpoint **p = &nf.endpoints; *p;) {
        nf_endpoint *ep = *p;
        bool shrunk = false;
        while (ep->head && now - ep->head->claimed_ms > NOTIFIER_HOLD_MS && n_aged < NF_AGED_MAX) {
            aged[n_aged++] = nf_dequeue(ep);
            if (!shrunk)
                ep->ahead /= 2;
            shrunk = true;
        }
        /* (An aged one left when `aged` is full waits for the next call.) */
        while (ep->head && now - ep->head->claimed_ms <= NOTIFIER_HOLD_MS &&
               ep->in_flight < cfg->notify_endpoint_max_in_flight && nf.in_flight < cfg->notify_max_in_flight)
            nf_launch(nf_dequeue(ep));
        if (ep->head) {
            long left = (long)(ep->head->claimed_ms + NOTIFIER_HOLD_MS - now);
            if (next < 0 || left < next)
                next = left < 0 ? 0 : left;
        }
        if (ep->in_flight > 0 || ep->queued > 0) {
            ep->idle_since = now;
        } else if (now - ep->idle_since > NF_ENDPOINT_IDLE_MS) {
            *p = ep->next;
            free(ep->id);
            free(ep);
            continue;
        }
        p = &ep->next;
    }
    nf_give_back(aged, n_aged);
    return next;
}

/* Some endpoint has room for a claim worth making: at least half of what
 * it may hold. */
static bool nf_running_low(void)
{
    const config *cfg = nf.ctx->cfg;
    for (nf_endpoint *ep = nf.endpoints; ep; ep = ep->next) {
        int half = (cfg->notify_endpoint_max_in_flight + ep->ahead) / 2;
        if (nf_endpoint_room(ep) >= (half > 1 ? half : 1))
            return true;
    }
    return false;
}

/* Claim what is due, ahead of the sends (nf_dispatch sends them): up to
 * notify_max_in_flight in flight and as many queued per worker, and per
 * endpoint its cap plus its look-ahead. Returns the number claimed, or -1
 * when there was no room to claim any (nothing asked); *full when the
 * claim was limited by its size. */
static long nf_claim(bool *full)
{
    const config *cfg = nf.ctx->cfg;
    int cap = cfg->notify_endpoint_max_in_flight;
    int limit = 2 * cfg->notify_max_in_flight - nf.in_flight - nf.queued;
    *full = false;
    if (limit <= 0)
        return -1;
    pagoflex_arena *arena = arena_new();
    if (!arena)
        return 0;
    size_t n = 0, got = 0;
    for (nf_endpoint *ep = nf.endpoints; ep; ep = ep->next)
        n++;
    const char **ids = arena_alloc(arena, sizeof *ids * (n + 1));
    int *rooms = arena_alloc(arena, sizeof *rooms * (n + 1));
    int *claimed = arena_alloc(arena, sizeof *claimed * (n + 1));
    store_notify_job *rows = NULL;
    if (!ids || !rooms || !claimed)
        goto done;
    size_t i = 0;
    for (nf_endpoint *ep = nf.endpoints; ep; ep = ep->next, i++) {
        ids[i] = ep->id;
        rooms[i] = nf_endpoint_room(ep);
        claimed[i] = 0;
    }
    /* The lease covers the hold in the queue, then a whole attempt. */
    long lease = cfg->notify_timeout_ms + NOTIFIER_LEASE_MARGIN_MS + NOTIFIER_HOLD_MS;
    long long claimed_ms = nf_now_ms();
    metrics_notify_claim();
    if (store_notify_claim(nf.ctx->store, limit, cap + cap, ids, rooms, n, lease, arena, &rows, &got) !=
        STORE_OK)
        goto done;
    for (size_t r = 0; r < got; r++) {
        for (i = 0; i < n && strcmp(ids[i], rows[r].endpoint_id) != 0; i++)
            ;
        if (i < n)
            claimed[i]++;
        nf_enqueue(&rows[r], claimed_ms);
    }
    /* An endpoint whose room was filled has more due: it may hold more
     * ahead next time (bounded; halved again when that proves too much). */
    for (nf_endpoint *ep = nf.endpoints; ep; ep = ep->next) {
        size_t k = 0;
        while (k < n && strcmp(ids[k], ep->id) != 0)
            k++;
        if (k < n && rooms[k] > 0 && claimed[k] == rooms[k]) {
            int most = NOTIFIER_AHEAD_MAX * cap < cfg->notify_max_in_flight ? NOTIFIER_AHEAD_MAX * cap
                                                                            : cfg->notify_max_in_flight;
            ep->ahead = ep->ahead > 0 ? 2 * ep->ahead : 1;
            if (ep->ahead > most)
                ep->ahead = most;
        }
    }
    *full = got == (size_t)limit;
done:
    arena_free(arena);
    return (long)got;
}

/* Outcomes decided and not yet recorded. They are recorded together, in
 * one statement, once the first of them is NF_RECORD_DELAY_MS old (or the
 * buffer is full, or at stop): under load one statement then carries the
 * outcomes of many curl rounds instead of one or two. Holding an outcome
 * that long changes nothing a crash could not: the claim's lease still
 * covers it, and an outcome that is never recorded means the delivery is
 * sent again, with the same webhook-id, once its lease ends. */
enum { NF_PENDING_MAX = 64 };
#define NF_RECORD_DELAY_MS 20
typedef struct nf_pending {
    store_notify_outcome o;
    char id[96];
    char error[200];
} nf_pending;
static nf_pending nf_pend[NF_PENDING_MAX];
static size_t nf_n_pend;
static long long nf_pend_since; /* ms; when the oldest was decided */

/* Record every outcome waiting in nf_pend. */
static void nf_flush(void)
{
    store_notify_outcome out[NF_PENDING_MAX];
    for (size_t i = 0; i < nf_n_pend; i++)
        out[i] = nf_pend[i].o;
    nf_record(out, nf_n_pend);
    nf_n_pend = 0;
}

/* The outcome of a finished attempt of `row`, recorded soon (nf_flush);
 * at once when its id does not fit the buffer. */
static void nf_defer(const store_notify_job *row, bool ok, int http_status, const char *error,
                     long retry_after_s)
{
    if (strlen(row->delivery_id) >= sizeof nf_pend[0].id) {
        nf_record_one(row, ok, http_status, error, retry_after_s);
        return;
    }
    if (nf_n_pend == NF_PENDING_MAX)
        nf_flush();
    nf_pending *p = &nf_pend[nf_n_pend];
    snprintf(p->id, sizeof p->id, "%s", row->delivery_id);
    snprintf(p->error, sizeof p->error, "%s", error);
    nf_outcome(row, ok, http_status, p->error, retry_after_s, &p->o);
    p->o.delivery_id = p->id;
    if (nf_n_pend++ == 0)
        nf_pend_since = nf_now_ms();
}

/* Take every finished transfer off the multi handle, its outcome deferred
 * (nf_defer); returns how many finished. */
static int nf_collect(void)
{
    CURLMsg *msg;
    int left, finished = 0;
    while ((msg = curl_multi_info_read(nf.multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        nf_job *job = NULL;
        long code = 0;
        curl_off_t retry_after = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after);
        curl_multi_remove_handle(nf.multi, easy);
        for (nf_job **p = &nf.active; *p; p = &(*p)->next)
            if (*p == job) {
                *p = job->next;
                break;
            }
        nf.in_flight--;
        job->ep->in_flight--;
        char error[200];
        bool ok = rc == CURLE_OK && code >= 200 && code < 300;
        if (job->refused)
            snprintf(error, sizeof error,
                     "refused: the endpoint's address %s is not public (notify_allow_private_targets)",
                     job->refused_addr);
        else if (rc != CURLE_OK)
            snprintf(error, sizeof error, "%s", curl_easy_strerror(rc));
        else if (code == 410)
            snprintf(error, sizeof error, "HTTP 410: the endpoint is gone; not retried");
        else
            snprintf(error, sizeof error, "HTTP %ld", code);
        nf_defer(&job->row, ok, rc == CURLE_OK ? (int)code : 0, error, (long)retry_after);
        nf_job_free(job);
        finished++;
    }
    return finished;
}

/* At stop: what is still queued is given back (nothing was sent), what
 * is in flight is abandoned to its lease; every endpoint entry is freed. */
static void nf_drop_all(void)
{
    size_t n = (size_t)nf.queued, k = 0;
    nf_job **queued = n ? calloc(n, sizeof *queued) : NULL;
    for (nf_endpoint *ep = nf.endpoints; ep; ep = ep->next)
        while (ep->head) {
            nf_job *job = nf_dequeue(ep);
            if (queued && k < n)
                queued[k++] = job;
            else
                nf_job_free(job);
        }
    if (k > 0 && api_db_ready(nf.ctx))
        nf_give_back(queued, k);
    else
        for (size_t i = 0; i < k; i++)
            nf_job_free(queued[i]);
    free(queued);
    while (nf.active) {
        nf_job *job = nf.active;
        nf.active = job->next;
        curl_multi_remove_handle(nf.multi, job->easy);
        nf_job_free(job);
    }
    nf.in_flight = 0;
    while (nf.endpoints) {
        nf_endpoint *ep = nf.endpoints;
        nf.endpoints = ep->next;
        free(ep->id);
        free(ep);
    }
    nf.queued = 0;
}

static void *nf_main(void *arg)
{
    (void)arg;
    const config *cfg = nf.ctx->cfg;
    long long next_claim = 0;
    int running = 0;
    bool backlog = false; /* the last claim found due deliveries: more may wait behind the caps */
    bool resealed = !nf.ctx->notify_keys || !nf.ctx->notify_keys->have_previous;
    while (!atomic_load(&nf.stop)) {
        long long now = nf_now_ms();
        if (!resealed && api_db_ready(nf.ctx))
            resealed = notifier_reseal_secrets(nf.ctx->store, nf.ctx->notify_keys) >= 0;
        if (now >= next_claim) {
            bool full = false;
            long got = api_db_ready(nf.ctx) ? nf_claim(&full) : 0;
            if (got >= 0)
                backlog = got > 0;
            /* A full claim: more may be due at once (when there is room). */
            next_claim = now + (full ? 0 : cfg->notify_poll_interval_ms);
        }
        nf_dispatch();
        curl_multi_perform(nf.multi, &running);
        /* Room freed while due deliveries wait (held back by the caps):
         * claim again now rather than at the next poll, once an endpoint's
         * queue runs low (not after every send: that is a claim per
         * delivery). */
        if (nf_collect() > 0 && backlog && nf_running_low())
            next_claim = 0;
        long aged = nf_dispatch(); /* the room freed by what finished */
        now = nf_now_ms();
        if (nf_n_pend > 0 && now - nf_pend_since >= NF_RECORD_DELAY_MS)
            nf_flush();
        long long wait = next_claim - now;
        if (aged >= 0 && aged < wait)
            wait = aged;
        if (nf_n_pend > 0 && nf_pend_since + NF_RECORD_DELAY_MS - now < wait)
            wait = nf_pend_since + NF_RECORD_DELAY_MS - now;
        if (wait > 0)
            curl_multi_poll(nf.multi, NULL, 0, wait > 1000 ? 1000 : (int)wait, NULL);
    }
    nf_flush();
    nf_drop_all();
    return NULL;
}

int notifier_start(api_context *ctx)
{
    pthread_mutex_lock(&nf.mu);
    if (nf.running) {
        pthread_mutex_unlock(&nf.mu);
        log_error("notify: the notifier runs already in this process");
        return -1;
    }
    nf.ctx = ctx;
    nf.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    atomic_store(&nf.stop, false);
    if (!(nf.multi = curl_multi_init())) {
        pthread_mutex_unlock(&nf.mu);
        log_error("notify: libcurl multi handle could not be made");
        return -1;
    }
    /* Keep-alive connections to the endpoints seen recently. */
    curl_multi_setopt(nf.multi, CURLMOPT_MAXCONNECTS, (long)ctx->cfg->notify_max_in_flight);
    if (pthread_create(&nf.thread, NULL, nf_main, NULL) != 0) {
        curl_multi_cleanup(nf.multi);
        nf.multi = NULL;
        pthread_mutex_unlock(&nf.mu);
        log_error("notify: could not start the notifier thread");
        return -1;
    }
    nf.running = true;
    pthread_mutex_unlock(&nf.mu);
    return 0;
}

void notifier_stop(void)
{
    pthread_mutex_lock(&nf.mu);
    if (!nf.running) {
        pthread_mutex_unlock(&nf.mu);
        return;
    }
    atomic_store(&nf.stop, true);
    curl_multi_wakeup(nf.multi);
    pthread_join(nf.thread, NULL);
    curl_multi_cleanup(nf.multi);
    nf.multi = NULL;
    nf.running = false;
    nf.ctx = NULL;
    pthread_mutex_unlock(&nf.mu);
}
