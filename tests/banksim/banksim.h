/*
 * banksim: the Banco X bank simulator (see /work/shared/banco_x_api.md).
 *
 * Module map, one prefix per file:
 *   main.c     option parsing, start-up, signal handling, shutdown order
 *   http.c     http_*   libmicrohttpd server: /pay, /pay/{id}[/capture|/void],
 *                       /refunds, /refunds/{id}, /3ds/{id}, /_sim/...
 *   store.c    store_*  bank-side payments, refunds, their state changes
 *                       (including the timed ones: authorization and 3-D
 *                       Secure expiry) and the Idempotency-Key answers
 *   webhook.c  webhook_* signed webhook delivery with retries (curl multi)
 *   timer.c    timer_*  resumes suspended connections and runs timed calls
 *   sink.c     sink_*   POST /sink/notifications: verifies and counts
 *                       Pagoflex's notifications (the benchmark's endpoint)
 *   util.c     bs_*     clock, random numbers, ids, hash map, min-heap, log
 *
 * Everything is in memory and lives until the process exits.
 */
#ifndef BANKSIM_H
#define BANKSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

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

/* One merchant account at Banco X: each has its own API key and webhook
 * secret; a payment belongs to the account whose key created it. Account 0
 * is BANCOX_API_KEY / BANCOX_SECRET ("default"); BANCOX_ACCOUNTS adds more. */
struct bs_account {
    const char *name;    /* a label for /_sim/payments/{id}, not a secret */
    const char *api_key; /* never logged */
    const char *secret;  /* never logged */
};
#define BS_MAX_ACCOUNTS 16

struct bs_config {
    char bind_addr[64];
    unsigned port;
    const char *api_key;      /* never logged; = accounts[0].api_key */
    const char *secret;       /* never logged; = accounts[0].secret */
    struct bs_account accounts[BS_MAX_ACCOUNTS];
    size_t account_n;         /* >= 1 */
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
    uint64_t auth_expiry_ms;       /* an uncaptured authorization is voided after this */
    uint64_t challenge_expiry_ms;  /* an unanswered 3-D Secure challenge is declined after this */
    const char *public_url;        /* NULL, or the base URL browsers reach us at (--public-url) */
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
/* One piece of a signed message. */
struct bs_part {
    const void *data;
    size_t len;
};

/* HMAC-SHA256 (`hmac`: EVP_MAC_fetch(NULL, "HMAC", NULL)) of the n parts
 * joined by '.', into out (32 bytes). Returns 0 or -1. */
int bs_hmac_sha256_dotted(EVP_MAC *hmac, const unsigned char *key, size_t key_len, const struct bs_part *parts,
                          size_t n, unsigned char out[32]);

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

/* Payment statuses. PENDING..REJECTED are v1's (the enum order is kept);
 * REJECTED is the at-once refusal, which GET /pay/{id} reports as DECLINED. */
enum bs_status {
    BS_PENDING, BS_APPROVED, BS_DECLINED, BS_REJECTED,
    BS_ACTION_REQUIRED, BS_AUTHORIZED, BS_CAPTURED, BS_VOIDED,
};
#define BS_STATUS_N 8

/* Returns the status's name ("PENDING", ..., "VOIDED"). */
const char *bs_status_name(enum bs_status s);

/* One webhook to send, copied out of the store under its lock so that
 * webhook.c never reads a payment that may be changing. The strings ref and
 * callback_url are borrowed from the store, where they never change and live
 * until store_fini(). */
struct bs_event {
    bool refund;              /* "type":"refund" (else "payment") */
    int account;              /* signed with bs_cfg.accounts[account].secret */
    char tx_id[32];
    char refund_id[32];       /* refund events only */
    const char *ref;
    const char *callback_url;
    const char *status;       /* static name: APPROVED, ..., REFUND_FAILED */
    long long amount;
    char currency[4];
    int64_t occurred_unix;
    unsigned delay_ms;        /* scheduling -> first attempt (before --reorder jitter) */
};

/* A stored answer to a POST, replayed for the same Idempotency-Key. */
struct bs_answer {
    unsigned status;
    char *body;
};

/* Result of the store's POST operations (pay, capture, void, refund). */
struct bs_op_result {
    struct bs_answer answer;  /* body owned by the caller (free) */
    bool replayed;            /* the answer is a replay of the first one */
    bool has_event;           /* event below is to be sent (unless --no-webhooks) */
    struct bs_event event;
};

/* Input of store_pay(): a validated POST /pay body. */
struct bs_pay_input {
    int account;              /* the account whose key made the request */
    const char *idem_key;
    const char *ref;
    const char *callback_url;
    const char *currency;
    long long amount;
    bool capture;             /* false: authorize only */
    const char *card_token;   /* NULL or "tok_..." */
    const char *return_url;   /* NULL or an http(s) URL */
    const char *description;  /* NULL or at most 140 characters */
    const char *redirect_base;/* base of redirect_url for ACTION_REQUIRED */
    unsigned webhook_delay_ms; /* settle delay for a new payment */
};

/* Input of store_refund(): a validated POST /refunds body. */
struct bs_refund_input {
    const char *idem_key;
    const char *tx_id;
    const char *ref;
    const char *callback_url;
    long long amount;
    unsigned webhook_delay_ms; /* settle delay for a new refund */
};

/* What the 3-D Secure pages show about one payment. Strings are borrowed
 * from the store (immutable, live until store_fini()). */
struct bs_challenge {
    bool waiting;             /* ACTION_REQUIRED now: the form is offered */
    const char *status;       /* the status GET /pay/{id} reports now */
    long long amount;
    char currency[4];
    const char *description;  /* or NULL */
    const char *return_url;   /* or NULL */
};

/* Kinds of request counted for /_sim/stats. */
enum bs_request_kind { BS_REQ_PAY, BS_REQ_CAPTURE, BS_REQ_VOID, BS_REQ_REFUND };

/* Initialises the store. Returns 0 or -1 (out of memory). */
int store_init(void);
/* Frees every payment, refund and answer. No other store call may be
 * running (call it after timer_stop()). */
void store_fini(void);

/* Applies the sandbox rules of the contract for one POST /pay whose body was
 * validated: replays the answer stored for in->idem_key, or answers 503 the
 * first time for an amount ending in 55, or creates a payment and stores the
 * answer (and arms the 3-D Secure or authorization expiry timer). Returns 0
 * and fills *out (caller frees out->answer.body), or -1 when out of memory
 * (nothing stored). Thread-safe. */
int store_pay(const struct bs_pay_input *in, struct bs_op_result *out);

/* POST /pay/{tx_id}/capture with a validated amount >= 1: replay, sandbox
 * 503 (amount ending in 55, once per key), 404 unknown payment, 409 not
 * AUTHORIZED, 422 above the authorized amount, or 200 CAPTURED (stored under
 * the key, with a CAPTURED event). Returns 0 and fills *out (caller frees
 * out->answer.body), or -1 when out of memory (nothing changed).
 * Thread-safe. */
int store_capture(const char *tx_id, const char *idem_key, long long amount,
                  unsigned webhook_delay_ms, struct bs_op_result *out);

/* POST /pay/{tx_id}/void: replay, 404 unknown payment, 409 not AUTHORIZED
 * (nor ACTION_REQUIRED), or 200 VOIDED (stored under the key, with a VOIDED
 * event). Returns 0 and fills *out (caller frees out->answer.body), or -1
 * when out of memory (nothing changed). Thread-safe. */
int store_void(const char *tx_id, const char *idem_key, unsigned webhook_delay_ms,
               struct bs_op_result *out);

/* POST /refunds with a validated body: replay, sandbox 503 (55, once per
 * key), 422 unknown or uncaptured payment or amount above what is left, or a
 * new refund (200 OK or REJECTED, stored under the key, with its event).
 * Returns 0 and fills *out (caller frees out->answer.body), or -1 when out
 * of memory (nothing stored). Thread-safe. */
int store_refund(const struct bs_refund_input *in, struct bs_op_result *out);

/* Fills *out for GET /3ds/{id}. Returns 0, or -1 when id is unknown.
 * Thread-safe. */
int store_challenge_view(const char *id, struct bs_challenge *out);

/* Answers the 3-D Secure challenge of payment id (approve or decline) if it
 * is still waiting: the payment becomes APPROVED, AUTHORIZED (capture false,
 * expiry timer armed) or DECLINED, and *has_event and *ev carry its webhook. A
 * challenge that is over changes nothing (*has_event false). *out is the
 * state afterwards. Returns 0, or -1 when id is unknown. Thread-safe. */
int store_challenge_answer(const char *id, bool approve, unsigned webhook_delay_ms,
                           struct bs_challenge *out, bool *has_event, struct bs_event *ev);

/* Copies the GET /pay/{id} answer for id into a new JSON string (caller
 * frees). Returns NULL when id is unknown or memory ran out (*found says
 * which). Thread-safe. */
char *store_query_json(const char *id, bool *found);

/* Same for GET /refunds/{id}. Thread-safe. */
char *store_refund_query_json(const char *id, bool *found);

/* Returns a new JSON string {"ref","count","ids":[...]} (caller frees) for
 * the payments (refunds false) or refunds (true) carrying ref, oldest first,
 * or NULL when out of memory. Thread-safe. */
char *store_by_ref_json(const char *ref, bool refunds);

/* Records one POST /pay carrying Idempotency-Key `key`, received at
 * monotonic start_ms and answered at answer_ms: store_by_ref_json() then
 * reports, for payments, "requests" (all POST /pay calls with that key;
 * Pagoflex sends its payment id as both key and ref) and "overlapping"
 * (those that arrived while an earlier one was still unanswered).
 * Thread-safe; out of memory only loses the count. */
void store_note_request(const char *key, uint64_t start_ms, uint64_t answer_ms);
/* Remember the X-Request-Id and traceparent (NULL: none) of the latest
 * POST /pay with Idempotency-Key `key`, for GET /_sim/payments?ref=. */
void store_note_trace(const char *key, const char *request_id, const char *traceparent);

/* Returns a new JSON string (caller frees) with everything the bank knows
 * about payment id: its input, status, captures, voids and refunds (for
 * GET /_sim/payments/{id}); NULL when id is unknown or memory ran out
 * (*found says which). Thread-safe. */
/* The account (index into bs_cfg.accounts) of payment `id` (refund false)
 * or refund `id` (true), or -1 when there is no such one. */
int store_account_of(const char *id, bool refund);

char *store_inspect_json(const char *id, bool *found);

/* Adds the store's counters ("payments", "by_status", ...) to obj, a
 * json_t * object. Thread-safe. */
void store_stats(void *json_obj);

/* Counts one request of kind k (for /_sim/stats). */
void store_count_request(enum bs_request_kind k);

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

/* Schedules the webhook ev (its body is built now; ev is not kept) according
 * to ev->delay_ms and the tunables t (reorder, duplicates, fanout). When
 * first_cb is not NULL the delivery starts now and first_cb(arg) runs once
 * every first attempt was answered. Returns 0, or -1 when nothing could be
 * scheduled (first_cb is then NOT called). Thread-safe. */
int webhook_schedule(const struct bs_event *ev, const struct bs_tunables *t,
                     webhook_first_cb first_cb, void *arg);

/* Adds webhook counters to obj, a json_t * object. Thread-safe. */
void webhook_stats(void *json_obj);

/* ------------------------------------------------------------------ timer */

/* A timed call: runs on the timer thread, with no timer lock held. */
typedef void (*timer_fn)(void *arg);

/* Starts the thread that resumes suspended connections and runs timed
 * calls. Returns 0 or -1. */
int timer_start(void);
/* Resumes connection c (suspended by the caller) at monotonic due_ms.
 * Returns 0, or -1 when out of memory (the caller must resume c itself). */
int timer_resume_at(struct MHD_Connection *c, uint64_t due_ms);
/* Calls fn(arg) at monotonic due_ms (not earlier) on the timer thread.
 * Returns 0, or -1 when out of memory (nothing scheduled). Calls still
 * pending at timer_stop() are dropped without running. */
int timer_call_at(uint64_t due_ms, timer_fn fn, void *arg);
/* From now on every pending and future resume happens at once (timed calls
 * keep their deadlines). */
void timer_drain(void);
/* Returns how many resumes are still pending (timed calls not counted). */
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

/* ------------------------------------------------------------------- sink */

/* Sets up the sink (HMAC, the table of ids seen). Returns 0, or -1 with a
 * logged reason. */
int sink_start(void);
/* Frees what sink_start() made and forgets the secret. */
void sink_stop(void);
/* Verifies deliveries from now on with the Standard Webhooks secret
 * "whsec_<base64>". Returns NULL, or what is wrong with it (the secret
 * unchanged). Thread-safe; the secret is never logged. */
const char *sink_set_secret(const char *secret);
/* One delivery: its webhook-id, webhook-timestamp and webhook-signature
 * headers (NULL when absent) and body. Returns the status to answer: 204
 * accepted (verified when a secret is set), 400 a header missing, 401 a
 * wrong signature or a timestamp over 5 minutes off. Counts it. Thread-safe. */
unsigned sink_receive(const char *id, const char *ts, const char *signature, const char *body, size_t len);
/* Adds the sink's counters ("received", "accepted", "distinct" ids
 * accepted, "bad", "verifying") to obj, a json_t * object. Thread-safe. */
void sink_stats(void *json_obj);

#endif
