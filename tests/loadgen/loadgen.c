/* loadgen.c - an open-loop HTTP load generator at a fixed rate (scripts/bench).
 *
 *   loadgen --rate R --duration S [--max-inflight N] [--method M] [--body B]
 *           [--header "Name: value"]... URL
 *
 * Request i is due at start + i / R whatever happened to the requests before
 * it (wrk2's model; wrk2 is not in Debian). Its latency is measured from the
 * time it was due, not from the time it was sent, so a server that falls
 * behind shows it in the figures instead of slowing the generator down (the
 * "coordinated omission" of closed-loop generators). At most N requests are
 * in flight (default 256); a request that is due while all N are busy waits
 * and its wait counts in its latency.
 *
 * "{n}" in the body or a header is replaced by the request's number, so each
 * request can carry a distinct idempotency key.
 *
 * Connections are kept alive (libcurl multi, one connection cache). Prints
 * one line: "BENCH requests=.. duration_us=.. p50_us=.. p99_us=.. p999_us=..
 * errors=.. late=..": errors are transport failures and non-2xx answers,
 * late the requests sent more than 1 ms after they were due. Exit status 0
 * when the run was made (whatever the errors), 2 on bad usage. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOADGEN_MAX_HEADERS 16

typedef struct slot {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    uint64_t due_ns; /* when the request was due */
    bool busy;
} slot;

typedef struct options {
    double rate;
    double duration_s;
    int max_inflight;
    const char *method;
    const char *body;
    const char *headers[LOADGEN_MAX_HEADERS];
    int header_count;
    const char *url;
} options;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* `tmpl` with every "{n}" replaced by `n`; the caller frees it. NULL when
 * out of memory. */
static char *expand(const char *tmpl, unsigned long n)
{
    char num[24];
    int numlen = snprintf(num, sizeof num, "%lu", n);
    size_t count = 0;
    for (const char *p = strstr(tmpl, "{n}"); p; p = strstr(p + 3, "{n}"))
        count++;
    char *out = malloc(strlen(tmpl) + count * (size_t)numlen + 1);
    if (!out)
        return NULL;
    char *w = out;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{n}", 3) == 0) {
            memcpy(w, num, (size_t)numlen);
            w += numlen;
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return out;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* Set up slot `s` for request number `n`, due at `due`. 0 on success. */
static int slot_start(CURLM *multi, slot *s, const options *o, unsigned long n, uint64_t due)
{
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    free(s->body);
    s->body = NULL;
    for (int i = 0; i < o->header_count; i++) {
        char *h = expand(o->headers[i], n);
        struct curl_slist *l = h ? curl_slist_append(s->headers, h) : NULL;
        free(h);
        if (!l)
            return -1;
        s->headers = l;
    }
    /* No "Expect: 100-continue" round trip for a body. */
    struct curl_slist *l = curl_slist_append(s->headers, "Expect:");
    if (!l)
        return -1;
    s->headers = l;
    curl_easy_setopt(s->easy, CURLOPT_URL, o->url);
    curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, o->method);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    if (o->body) {
        if (!(s->body = expand(o->body, n)))
            return -1;
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
    } else {
        curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, o->method);
    }
    s->due_ns = due;
    s->busy = true;
    return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --rate R --duration S [--max-inflight N] [--method M] [--body B]\n"
                    "               [--header 'Name: value']... URL\n");
    exit(2);
}

static void parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"max-inflight", required_argument, NULL, 'n'},
        {"method", required_argument, NULL, 'm'},
        {"body", required_argument, NULL, 'b'},
        {"header", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    *o = (options){.max_inflight = 256, .method = "GET"};
    int c;
    while ((c = getopt_long(argc, argv, "H:", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            o->rate = atof(optarg);
            break;
        case 'd':
            o->duration_s = atof(optarg);
            break;
        case 'n':
            o->max_inflight = atoi(optarg);
            break;
        case 'm':
            o->method = optarg;
            break;
        case 'b':
            o->body = optarg;
            break;
        case 'H':
            if (o->header_count == LOADGEN_MAX_HEADERS) {
                fprintf(stderr, "loadgen: at most %d --header options\n", LOADGEN_MAX_HEADERS);
                exit(2);
            }
            o->headers[o->header_count++] = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || o->rate <= 0 || o->rate > 1e6 || o->duration_s <= 0 || o->duration_s > 3600 ||
        o->max_inflight < 1 || o->max_inflight > 20000)
        usage();
    o->url = argv[optind];
}

int main(int argc, char **argv)
{
    options o;
    parse_options(argc, argv, &o);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "loadgen: curl_global_init failed\n");
        return 1;
    }
    size_t total = (size_t)(o.rate * o.duration_s);
    uint64_t *lat = calloc(total ? total : 1, sizeof *lat);
    slot *slots = calloc((size_t)o.max_inflight, sizeof *slots);
    CURLM *multi = curl_multi_init();
    if (!lat || !slots || !multi) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o.max_inflight);
    for (int i = 0; i < o.max_inflight; i++) {
        if (!(slots[i].easy = curl_easy_init())) {
            fprintf(stderr, "loadgen: curl_easy_init failed\n");
            return 1;
        }
        curl_easy_setopt(slots[i].easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(slots[i].easy, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(slots[i].easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(slots[i].easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, &slots[i]);
    }

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) {
        perror("loadgen: timerfd_create");
        return 1;
    }
    uint64_t interval_ns = (uint64_t)(1e9 / o.rate);
    uint64_t start = now_ns();
    uint64_t last_ns = start;
    size_t sent = 0, done = 0, errors = 0, late = 0;
    int inflight = 0, free_hint = 0;
    while (done < total) {
        uint64_t now = now_ns();
        /* Send what is due, as far as slots allow. */
        while (sent < total && start + sent * interval_ns <= now && inflight < o.max_inflight) {
            int k = free_hint;
            while (slots[k].busy)
                k = (k + 1) % o.max_inflight;
            uint64_t due = start + sent * interval_ns;
            if (now - due > 1000000)
                late++;
            if (slot_start(multi, &slots[k], &o, (unsigned long)sent, due) != 0) {
                fprintf(stderr, "loadgen: cannot start request %zu\n", sent);
                return 1;
            }
            free_hint = (k + 1) % o.max_inflight;
            inflight++;
            sent++;
        }
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            slot *s;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            long code = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (m->data.result != CURLE_OK || code < 200 || code > 299)
                errors++;
            last_ns = now_ns();
            lat[done++] = (last_ns - s->due_ns) / 1000;
            curl_multi_remove_handle(multi, m->easy_handle);
            s->busy = false;
            inflight--;
        }
        /* Sleep until the next request is due (a timerfd, to the
         * nanosecond: poll's milliseconds would make every send late) or
         * an answer comes. */
        if (sent < total && inflight < o.max_inflight) {
            uint64_t next = start + sent * interval_ns;
            if (next <= now_ns())
                continue;
            struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(next / 1000000000u), .tv_nsec = (long)(next % 1000000000u)}};
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        struct curl_waitfd wfd = {.fd = tfd, .events = CURL_WAIT_POLLIN};
        int ready = 0;
        curl_multi_poll(multi, &wfd, 1, 1000, &ready);
        if (wfd.revents & CURL_WAIT_POLLIN) {
            uint64_t ticks;
            if (read(tfd, &ticks, sizeof ticks) < 0)
                ticks = 0;
        }
    }
    uint64_t elapsed_us = (last_ns - start) / 1000;
    qsort(lat, done, sizeof *lat, cmp_u64);
    printf("BENCH requests=%zu duration_us=%llu p50_us=%llu p99_us=%llu p999_us=%llu errors=%zu late=%zu\n",
           done, (unsigned long long)elapsed_us, (unsigned long long)percentile(lat, done, 50),
           (unsigned long long)percentile(lat, done, 99), (unsigned long long)percentile(lat, done, 99.9),
           errors, late);
    for (int i = 0; i < o.max_inflight; i++) {
        curl_slist_free_all(slots[i].headers);
        free(slots[i].body);
        curl_easy_cleanup(slots[i].easy);
    }
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    close(tfd);
    free(slots);
    free(lat);
    return 0;
}
