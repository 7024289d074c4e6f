/*
 * banksim: the Banco X bank simulator (see /work/shared/banco_x_api.md).
 *
 * Module map, one prefix per file:
 *   main.c     option parsing, start-up, signal handling, shutdown order
 *   http.c     http_*   libmicrohttpd server: /pay, /pay/{id}, /_sim/...
 *   store.c    store_*  bank-side payments and the Idempotency-Key answers
 *   webhook.c  webhook_* signed webhook delivery with retries (curl multi)
 *   timer.c    timer_*  resumes suspended connections at a deadline
 *   util.c     bs_*     clock, random numbers, ids, hash map, min-heap, log
 *
 * Everything is in memory and lives until the process exits.
 */
#ifndef BANKSIM_H
#define BANKSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;

/* ------------------------------------------------------------------ config */

/* Knobs that POST /_sim/config may change while the simulator runs. */
struct bs_tunables {
    unsigned latency_ms;       /* delay before answering POST /pay and GET /pay/{id} */
    unsigned webhook_delay_ms; /* creation -> bank decision -> first webhook attempt */
    unsigned reorder_ms;       /* with reorder: extra random delay in [0, reorder_ms] */
    double fail_rate;          /* P(POST /pay answers fail_status before doing anything) */
    unsigned fail_status;      /* what fail_rate answers: 503 (default), or e.g. 401 as
                                * after an API-key rotation, 422 */
    double timeout_rate;       /* P(POST /pay is processed but answered 503 after timeout_ms) */
    double duplicate_rate;     /* P(a webhook is delivered twice) */
    bool reorder;
    bool webhook_first;
    bool no_webhooks;
};

struct bs_config {
    char bind_addr[64];
    unsigned port;
    const char *api_key;      /* never logged */
    const char *secret;       /* never logged */
    const char *extra_secret; /* NULL, or a second signing secret (rotation) */
    char **fanout;            /* base URLs, NULL when fanout_n == 0 */
    size_t fanout_n;
    const char *port_file;
    bool quiet;
    uint64_t seed;
    unsigned threads;              /* MHD thread pool size */
    unsigned timeout_ms;           /* what a "timed out" POST /pay waits */
    unsigned webhook_attempts;     /* attempts per delivery, >= 1 */
    unsigned webhook_backoff_ms;   /* first retry delay, doubled each time */
    unsigned webhook_backoff_max_ms;
    unsigned webhook_timeout_ms;   /* per attempt */
    unsigned webhook_concurrency;  /* attempts in flight at once */
    struct bs_tunables initial;
};

/* The process-wide configuration; fixed fields are set once by main.c. */
extern struct bs_config bs_cfg;

/* Copies the current tunables into *out (thread-safe). */
void bs_tunables_get(struct bs_tunables *out);
/* Replaces the tunables with *in (thread-safe). */
void bs_tunables_set(const struct bs_tunables *in);

/* ------------------------------------------------------------------- util */

/* Monotonic milliseconds, for deadlines. */
uint64_t bs_now_ms(void);
/* Wall-clock Unix seconds. */
int64_t bs_unix_now(void);
/* Writes "YYYY-MM-DDTHH:MM:SSZ" for unix time t into buf (>= 21 bytes). */
void bs_rfc3339(int64_t t, char *buf, size_t len);

/* Seeds the shared pseudo-random generator used for fault decisions. */
void bs_rng_seed(uint64_t seed);
/* Uniform double in [0, 1) from the seeded generator (thread-safe). */
double bs_rng_double(void);
/* True with probability p (p <= 0 never, p >= 1 always). */
bool bs_rng_chance(double p);

/* Writes prefix followed by 26 random [0-9a-z] characters and a NUL into
 * buf. Uses RAND_bytes so ids never repeat across runs. Returns 0, or -1 if
 * buf is too small or OpenSSL has no entropy (buf is then left unspecified). */
int bs_random_id(const char *prefix, char *buf, size_t len);

/* Logs one printf-style line to stderr, prefixed "banksim: ", unless quiet. */
void bs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, but printed even with --quiet (errors). */
void bs_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A string-keyed hash map with chaining. Keys are copied; values are
 * borrowed. Not thread-safe: callers lock. */
struct bs_map;
/* Returns a new empty map, or NULL when out of memory. */
struct bs_map *bs_map_new(void);
/* Returns the value for key, or NULL. */
void *bs_map_get(const struct bs_map *m, const char *key);
/* Sets key to value (replacing). Returns 0, or -1 when out of memory (map
 * unchanged). */
int bs_map_put(struct bs_map *m, const char *key, void *value);
/* Calls fn(value, arg) for every entry. */
void bs_map_each(const struct bs_map *m, void (*fn)(void *value, void *arg), void *arg);
/* Frees the map and its key copies, calling free_value on each value if
 * not NULL. */
void bs_map_free(struct bs_map *m, void (*free_value)(void *value));

/* A min-heap of (due_ms, item). Not thread-safe: callers lock. */
struct bs_heap {
    struct bs_heap_node { uint64_t due_ms; void *item; } *v;
    size_t n, cap;
};
/* Inserts; returns 0, or -1 when out of memory (heap unchanged). */
int bs_heap_push(struct bs_heap *h, uint64_t due_ms, void *item);
/* Returns the earliest node's due time, or UINT64_MAX when empty. */
uint64_t bs_heap_peek_due(const struct bs_heap *h);
/* Removes and returns the earliest item (NULL when empty). */
void *bs_heap_pop(struct bs_heap *h);
/* Frees the heap's array (not the items). */
void bs_heap_free(struct bs_heap *h);

/* ------------------------------------------------------------------ store */

enum bs_status { BS_PENDING, BS_APPROVED, BS_DECLINED, BS_REJECTED };

/* Returns "PENDING", "APPROVED", "DECLINED" or "REJECTED". */
const char *bs_status_name(enum bs_status s);

/* A bank-side payment. Immutable once created; the visible status is
 * PENDING until settle_ms (monotonic), then final_status. */
struct bs_payment {
    char id[32];
    char *ref;
    char *callback_url;
    char currency[4];
    long long amount;
    enum bs_status final_status;
    uint64_t settle_ms;
    int64_t settle_unix;       /* wall-clock decision time, for occurred_at */
    struct bs_payment *ref_next; /* next payment with the same ref */
};

/* A stored answer to POST /pay, replayed for the same Idempotency-Key. */
struct bs_answer {
    unsigned status;
    char *body;
};

/* Result of store_pay(). */
struct bs_pay_result {
    struct bs_answer answer;       /* body owned by the caller (free) */
    const struct bs_payment *created; /* non-NULL when a payment was created now */
    bool replayed;
};

/* Input of store_pay(): a validated POST /pay body. */
struct bs_pay_input {
    const char *idem_key;
    const char *ref;
    const char *callback_url;
    const char *currency;
    long long amount;
    unsigned webhook_delay_ms; /* settle delay for a new payment */
};

/* Initialises the store. Returns 0 or -1 (out of memory). */
int store_init(void);
/* Frees every payment and answer. No other store call may be running. */
void store_fini(void);

/* Applies the sandbox rules of the contract for one POST /pay whose body was
 * validated: replays the answer stored for in->idem_key, or answers 503 the
 * first time for an amount ending in 55, or creates a payment and stores the
 * answer. Returns 0 and fills *out (caller frees out->answer.body), or -1
 * when out of memory (nothing stored). Thread-safe. */
int store_pay(const struct bs_pay_input *in, struct bs_pay_result *out);

/* Copies the GET /pay/{id} answer for id into a new JSON string (caller
 * frees). Returns NULL when id is unknown or memory ran out (*found says
 * which). Thread-safe. */
char *store_query_json(const char *id, bool *found);

/* Returns a new JSON string {"ref","count","ids":[...],"requests","overlapping"}
 * (caller frees), or NULL when out of memory. requests/overlapping count the
 * POST /pay calls whose Idempotency-Key is `ref` (Pagoflex sends its payment
 * id as both): all of them, and those that arrived while an earlier one with
 * that key was still unanswered. Thread-safe. */
char *store_by_ref_json(const char *ref);

/* Records one POST /pay carrying Idempotency-Key `key`, received at
 * monotonic start_ms and answered at answer_ms (see store_by_ref_json).
 * Thread-safe; out of memory only loses the count. */
void store_note_request(const char *key, uint64_t start_ms, uint64_t answer_ms);

/* Adds the store's counters ("payments", "by_status", ...) to obj, a
 * json_t * object. Thread-safe. */
void store_stats(void *json_obj);

/* Counts one POST /pay request (for /_sim/stats). */
void store_count_request(void);

/* ---------------------------------------------------------------- webhook */

/* Called once when every first attempt of a webhook-first delivery has been
 * answered (or failed): from the webhook thread, or from webhook_schedule()
 * itself if the attempts finished before it returned. */
typedef void (*webhook_first_cb)(void *arg);

/* Starts the delivery thread. Returns 0, or -1 with a logged reason. */
int webhook_start(void);
/* Stops taking new work, waits up to grace_ms for attempts in flight, drops
 * what is still scheduled (calling pending first callbacks), and joins the
 * thread. */
void webhook_stop(unsigned grace_ms);

/* Schedules the webhook of payment p according to the tunables t (delay,
 * reorder, duplicates, fanout). When first_cb is not NULL the delivery starts
 * now and first_cb(arg) runs once every first attempt was answered. Returns 0,
 * or -1 when nothing could be scheduled (first_cb is then NOT called).
 * Thread-safe. */
int webhook_schedule(const struct bs_payment *p, const struct bs_tunables *t,
                     webhook_first_cb first_cb, void *arg);

/* Adds webhook counters to obj, a json_t * object. Thread-safe. */
void webhook_stats(void *json_obj);

/* ------------------------------------------------------------------ timer */

/* Starts the thread that resumes suspended connections. Returns 0 or -1. */
int timer_start(void);
/* Resumes connection c (suspended by the caller) at monotonic due_ms.
 * Returns 0, or -1 when out of memory (the caller must resume c itself). */
int timer_resume_at(struct MHD_Connection *c, uint64_t due_ms);
/* From now on every pending and future resume happens at once. */
void timer_drain(void);
/* Returns how many resumes are still pending. */
size_t timer_pending(void);
/* Stops and joins the thread; call after the MHD daemon is stopped. */
void timer_stop(void);

/* ------------------------------------------------------------------- http */

/* Starts the HTTP server per bs_cfg. Returns 0 and the bound port in *port,
 * or -1 with a logged reason. */
int http_start(unsigned *port);
/* Stops accepting new connections; requests in flight go on. */
void http_quiesce(void);
/* Resumes every waiting request at once, waits up to grace_ms for requests
 * in flight, then stops the server. */
void http_stop(unsigned grace_ms);

#endif
