/* store.c: bank-side payments and refunds, their state changes, and the
 * answers stored per Idempotency-Key.
 *
 * One mutex guards everything: maps id -> payment, ref -> chain of payments
 * with that ref (newest first), refund id -> refund, refund ref -> chain of
 * refunds, and Idempotency-Key -> stored answer. Work under the lock is a few
 * hash look-ups, so one lock is not a bottleneck at the rates the benchmarks
 * use. Nothing is freed before store_fini(), so the immutable strings of a
 * payment (ref, callback_url, ...) may be lent out without the lock.
 *
 * Payment life (banco_x_api.md v1.1):
 *   created   -> the bank's decision (APPROVED, AUTHORIZED when capture is
 *                false, DECLINED) is stored at once but GET /pay/{id} says
 *                PENDING until settle_ms, when its webhook is due (v1);
 *                REJECTED (99, tok_insufficient) and ACTION_REQUIRED (42)
 *                are visible at once.
 *   ACTION_REQUIRED -> POST /3ds/{id} approve: APPROVED or AUTHORIZED;
 *                decline, or no answer within --challenge-expiry-s: DECLINED;
 *                void: VOIDED.
 *   AUTHORIZED -> capture: CAPTURED (captured = N); void, or no capture
 *                within --auth-expiry-s: VOIDED.
 * The timed changes run from timer.c and send their webhook themselves; the
 * request-driven ones hand their webhook to the caller (struct bs_event),
 * which knows about --webhook-first.
 *
 * Refunds: allowed on APPROVED (captured = amount) and CAPTURED payments.
 * A refund decided REFUNDED counts against what is left to refund from its
 * creation on; one decided REFUND_FAILED counts only while it reads PENDING
 * (until its settle time) and frees its amount then; a REJECTED one never
 * counts.
 *
 * Idempotency-Keys live in one map under a prefix per operation ("pay::",
 * "refund::", "capture:<tx>:", "void:<tx>:"), so the same key used for two
 * operations (or for captures of two payments) means two things. Only 200 answers are stored: a 409 or 422
 * says the request was not done, and a retry with the same key is judged
 * again (it may succeed once the payment is, e.g., authorized). */
#include "banksim.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_FUNDS "insufficient funds"
#define REASON_3DS_DECLINED "the customer declined the 3-D Secure challenge"
#define REASON_3DS_EXPIRED "the 3-D Secure challenge was not answered in time"
#define REASON_REFUND_WINDOW "refund window closed"

enum refund_status { RF_PENDING, RF_REFUNDED, RF_FAILED, RF_REJECTED };
#define RF_STATUS_N 4

struct bs_refund;

struct bs_payment {
    int account;         /* whose API key created it (bs_cfg.accounts) */
    char id[32];
    char *ref;
    char *callback_url;
    char *return_url;    /* NULL when not given */
    char *description;   /* NULL when not given */
    char *card_token;    /* NULL when not given */
    char *redirect_url;  /* ACTION_REQUIRED payments only */
    char currency[4];
    long long amount;
    bool capture;        /* false: authorize only */
    bool silent;         /* amount % 100 == 77: no payment webhook, ever */
    enum bs_status status; /* the bank's decision; visible from settle_ms on */
    const char *reason;  /* static text, or NULL */
    uint64_t settle_ms;  /* monotonic */
    int64_t settle_unix; /* wall-clock decision time, for occurred_at */
    long long captured;  /* CAPTURED only: the captured amount */
    /* What GET /_sim/payments/{id} shows. */
    char *capture_key;   /* the capture that succeeded */
    int64_t capture_unix;
    char *void_key;      /* NULL for a void by expiry */
    int64_t void_unix;
    bool voided_by_expiry;
    const char *challenge_result; /* "approve", "decline", "expired", or NULL */
    unsigned capture_requests, void_requests, refund_requests;
    struct bs_refund *refunds;   /* newest first */
    struct bs_payment *ref_next; /* next payment with the same ref */
};

struct bs_refund {
    char id[32];
    char *ref;
    char *callback_url;
    char *idem_key;
    struct bs_payment *pay;
    long long amount;
    enum refund_status status; /* decided: REFUNDED, FAILED or REJECTED */
    uint64_t settle_ms;
    int64_t settle_unix;
    struct bs_refund *pay_next; /* next refund of the same payment */
    struct bs_refund *ref_next; /* next refund with the same ref */
};

struct idem_entry {
    bool has_answer;  /* the answer below is what every replay gets */
    bool saw_55;      /* the one sandbox 503 for this key was given */
    struct bs_answer answer;
    unsigned requests;    /* POST /pay calls with this key (store_note_request) */
    unsigned overlapping; /* ... that came while an earlier one was unanswered */
    uint64_t busy_until;  /* latest answer time of those calls (monotonic ms) */
    char last_request_id[129];  /* X-Request-Id of the latest call ("" none) */
    char last_traceparent[64];  /* traceparent of the latest call ("" none) */
};

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bs_map *by_id, *by_ref, *by_idem, *refund_by_id, *refund_by_ref;
static size_t payment_count, refund_count;
static atomic_ullong requests[4], replays, sandbox_503;
static atomic_ullong n_captures, n_voids, n_auth_expired, n_challenge_expired;

const char *bs_status_name(enum bs_status s)
{
    switch (s) {
    case BS_PENDING: return "PENDING";
    case BS_APPROVED: return "APPROVED";
    case BS_DECLINED: return "DECLINED";
    case BS_REJECTED: return "REJECTED";
    case BS_ACTION_REQUIRED: return "ACTION_REQUIRED";
    case BS_AUTHORIZED: return "AUTHORIZED";
    case BS_CAPTURED: return "CAPTURED";
    case BS_VOIDED: return "VOIDED";
    }
    return "PENDING";
}

static const char *refund_status_name(enum refund_status s)
{
    switch (s) {
    case RF_PENDING: return "PENDING";
    case RF_REFUNDED: return "REFUNDED";
    case RF_FAILED: return "REFUND_FAILED";
    case RF_REJECTED: return "REJECTED";
    }
    return "PENDING";
}

int store_init(void)
{
    by_id = bs_map_new();
    by_ref = bs_map_new();
    by_idem = bs_map_new();
    refund_by_id = bs_map_new();
    refund_by_ref = bs_map_new();
    if (!by_id || !by_ref || !by_idem || !refund_by_id || !refund_by_ref)
        goto fail;
    return 0;
fail:
    store_fini();
    return -1;
}

static void payment_free(void *v)
{
    struct bs_payment *p = v;
    if (!p)
        return;
    free(p->ref);
    free(p->callback_url);
    free(p->return_url);
    free(p->description);
    free(p->card_token);
    free(p->redirect_url);
    free(p->capture_key);
    free(p->void_key);
    free(p);
}

static void refund_free(void *v)
{
    struct bs_refund *r = v;
    if (!r)
        return;
    free(r->ref);
    free(r->callback_url);
    free(r->idem_key);
    free(r);
}

static void idem_free(void *v)
{
    struct idem_entry *e = v;
    free(e->answer.body);
    free(e);
}

void store_fini(void)
{
    bs_map_free(by_ref, NULL); /* values are owned by by_id */
    bs_map_free(by_id, payment_free);
    bs_map_free(refund_by_ref, NULL); /* values are owned by refund_by_id */
    bs_map_free(refund_by_id, refund_free);
    bs_map_free(by_idem, idem_free);
    by_id = by_ref = by_idem = refund_by_id = refund_by_ref = NULL;
}

void store_count_request(enum bs_request_kind k)
{
    atomic_fetch_add(&requests[k], 1);
}

/* Returns a compact JSON dump of o and releases o; NULL if o is NULL or
 * memory ran out. */
static char *dump_and_free(json_t *o)
{
    char *s;
    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* strdup that keeps NULL as NULL; *ok turns false on OOM. */
static char *dup_or_null(const char *s, bool *ok)
{
    char *d;
    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

/* ---------------------------------------------------------- visible state */

/* Status now: PENDING until the bank's decision time. */
static enum bs_status visible_status(const struct bs_payment *p, uint64_t now)
{
    return now < p->settle_ms ? BS_PENDING : p->status;
}

/* The status as the API reports it (GET /pay/{id}, 409 bodies, 3-D Secure
 * pages): the contract's GET knows no REJECTED, which reads DECLINED. */
static const char *public_status(const struct bs_payment *p, uint64_t now)
{
    enum bs_status s = visible_status(p, now);
    return bs_status_name(s == BS_REJECTED ? BS_DECLINED : s);
}

/* The money that moved: the whole amount once APPROVED, N once CAPTURED. */
static long long captured_amount(const struct bs_payment *p, uint64_t now)
{
    switch (visible_status(p, now)) {
    case BS_APPROVED: return p->amount;
    case BS_CAPTURED: return p->captured;
    default: return 0;
    }
}

static enum refund_status refund_visible(const struct bs_refund *r, uint64_t now)
{
    return now < r->settle_ms && r->status != RF_REJECTED ? RF_PENDING : r->status;
}

/* What counts against the refundable total: refunds that succeeded or are
 * still pending. */
static long long refund_held(const struct bs_payment *p, uint64_t now)
{
    long long held = 0;
    for (const struct bs_refund *r = p->refunds; r; r = r->pay_next) {
        enum refund_status s = refund_visible(r, now);
        if (s == RF_PENDING || s == RF_REFUNDED)
            held += r->amount;
    }
    return held;
}

static long long refunded_total(const struct bs_payment *p, uint64_t now)
{
    long long done = 0;
    for (const struct bs_refund *r = p->refunds; r; r = r->pay_next)
        if (refund_visible(r, now) == RF_REFUNDED)
            done += r->amount;
    return done;
}

/* ---------------------------------------------------------------- events */

/* Fills *ev with a payment webhook for p. */
static void payment_event(const struct bs_payment *p, enum bs_status s, long long amount,
                          int64_t occurred, unsigned delay_ms, struct bs_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->account = p->account;
    memcpy(ev->tx_id, p->id, sizeof ev->tx_id);
    ev->ref = p->ref;
    ev->callback_url = p->callback_url;
    ev->status = bs_status_name(s);
    ev->amount = amount;
    memcpy(ev->currency, p->currency, sizeof ev->currency);
    ev->occurred_unix = occurred;
    ev->delay_ms = delay_ms;
}

/* Sends a webhook of a timed change (no request waits for it). */
static void deliver(const struct bs_event *ev)
{
    struct bs_tunables t;
    bs_tunables_get(&t);
    if (!t.no_webhooks && webhook_schedule(ev, &t, NULL, NULL) != 0)
        bs_log("webhook %s %s: not scheduled (stopping or out of memory)", ev->tx_id,
               ev->status);
}

/* timer_fn: an authorization not captured in time is voided. */
static void auth_expire(void *arg)
{
    struct bs_payment *p = arg;
    struct bs_event ev;
    bool send = false;

    pthread_mutex_lock(&store_lock);
    if (p->status == BS_AUTHORIZED) {
        p->status = BS_VOIDED;
        p->voided_by_expiry = true;
        p->void_unix = bs_unix_now();
        atomic_fetch_add(&n_auth_expired, 1);
        if (!p->silent) {
            payment_event(p, BS_VOIDED, p->amount, p->void_unix, 0, &ev);
            send = true;
        }
    }
    pthread_mutex_unlock(&store_lock);
    if (send)
        deliver(&ev);
}

/* timer_fn: a 3-D Secure challenge not answered in time ends DECLINED. */
static void challenge_expire(void *arg)
{
    struct bs_payment *p = arg;
    struct bs_event ev;
    bool send = false;

    pthread_mutex_lock(&store_lock);
    if (p->status == BS_ACTION_REQUIRED) {
        p->status = BS_DECLINED;
        p->reason = REASON_3DS_EXPIRED;
        p->challenge_result = "expired";
        atomic_fetch_add(&n_challenge_expired, 1);
        payment_event(p, BS_DECLINED, p->amount, bs_unix_now(), 0, &ev);
        send = true;
    }
    pthread_mutex_unlock(&store_lock);
    if (send)
        deliver(&ev);
}

/* Arms the expiry of authorization p, authorized at monotonic from_ms. */
static void arm_auth_expiry(struct bs_payment *p, uint64_t from_ms)
{
    if (timer_call_at(from_ms + bs_cfg.auth_expiry_ms, auth_expire, p) != 0)
        bs_err("payment %s: out of memory; its authorization will not expire", p->id);
}

/* ------------------------------------------------------------ idempotency */

/* Finds or adds the entry for key of operation op on scope (a payment id,
 * or NULL); store_lock held. NULL on OOM. */
static struct idem_entry *idem_get_or_add(const char *op, const char *scope, const char *key)
{
    struct idem_entry *e;
    char *full = NULL;

    if (asprintf(&full, "%s:%s:%s", op, scope ? scope : "", key) < 0)
        return NULL;
    e = bs_map_get(by_idem, full);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (e && bs_map_put(by_idem, full, e) != 0) {
            free(e);
            e = NULL;
        }
    }
    free(full);
    return e;
}

/* The entry for key of operation op on scope, or NULL when there is none
 * (or on OOM); store_lock held. Adds nothing. */
static struct idem_entry *idem_find(const char *op, const char *scope, const char *key)
{
    struct idem_entry *e;
    char *full = NULL;

    if (asprintf(&full, "%s:%s:%s", op, scope ? scope : "", key) < 0)
        return NULL;
    e = bs_map_get(by_idem, full);
    free(full);
    return e;
}

/* Copies the stored answer of e into *out. Returns 0 or -1 (OOM). */
static int idem_replay(const struct idem_entry *e, struct bs_op_result *out)
{
    out->answer.status = e->answer.status;
    out->answer.body = strdup(e->answer.body);
    if (!out->answer.body)
        return -1;
    out->replayed = true;
    atomic_fetch_add(&replays, 1);
    return 0;
}

/* The sandbox's one 503 for a key (amount ending in 55). Returns 0 or -1. */
static int idem_sandbox_503(struct idem_entry *e, struct bs_op_result *out)
{
    out->answer.status = 503;
    out->answer.body = strdup("{\"error\":\"unavailable\"}");
    if (!out->answer.body)
        return -1;
    e->saw_55 = true;
    atomic_fetch_add(&sandbox_503, 1);
    return 0;
}

/* Sets *out to status + the dump of o (released), storing it under e when
 * e is not NULL. Returns 0 or -1 (OOM; nothing stored). */
static int answer_json(struct idem_entry *e, unsigned status, json_t *o,
                       struct bs_op_result *out)
{
    char *body = dump_and_free(o);
    if (!body)
        return -1;
    if (e) {
        char *copy = strdup(body);
        if (!copy) {
            free(body);
            return -1;
        }
        e->answer.status = status;
        e->answer.body = copy;
        e->has_answer = true;
    }
    out->answer.status = status;
    out->answer.body = body;
    return 0;
}

/* An error answer {"error":msg} (never stored). Returns 0 or -1. */
static int answer_error(unsigned status, const char *msg, struct bs_op_result *out)
{
    return answer_json(NULL, status, json_pack("{s:s}", "error", msg), out);
}

/* ------------------------------------------------------------------- pay */

/* Creates and indexes a payment; store_lock held. Returns NULL on OOM with
 * nothing indexed. */
static struct bs_payment *payment_create(const struct bs_pay_input *in)
{
    struct bs_payment *p = calloc(1, sizeof *p);
    bool ok = true;
    uint64_t now = bs_now_ms();
    int64_t unix_now = bs_unix_now();

    if (!p)
        goto fail;
    p->account = in->account;
    p->ref = dup_or_null(in->ref, &ok);
    p->callback_url = dup_or_null(in->callback_url, &ok);
    p->return_url = dup_or_null(in->return_url, &ok);
    p->description = dup_or_null(in->description, &ok);
    p->card_token = dup_or_null(in->card_token, &ok);
    if (!ok || bs_random_id("bx_", p->id, sizeof p->id) != 0)
        goto fail;
    memcpy(p->currency, in->currency, 3);
    p->amount = in->amount;
    p->capture = in->capture;
    p->silent = in->amount % 100 == 77;
    p->settle_ms = now;
    p->settle_unix = unix_now;
    if ((in->card_token && strcmp(in->card_token, "tok_insufficient") == 0) ||
        in->amount % 100 == 99) {
        p->status = BS_REJECTED;
        p->reason = REASON_FUNDS;
    } else if (in->amount % 100 == 42) {
        p->status = BS_ACTION_REQUIRED;
        if (asprintf(&p->redirect_url, "%s/3ds/%s", in->redirect_base, p->id) < 0) {
            p->redirect_url = NULL;
            goto fail;
        }
    } else {
        p->status = in->amount % 100 == 13 ? BS_DECLINED
                    : in->capture          ? BS_APPROVED
                                           : BS_AUTHORIZED;
        p->settle_ms = now + in->webhook_delay_ms;
        p->settle_unix = unix_now + (in->webhook_delay_ms + 999) / 1000;
    }
    p->ref_next = bs_map_get(by_ref, p->ref);
    if (bs_map_put(by_id, p->id, p) != 0)
        goto fail;
    if (bs_map_put(by_ref, p->ref, p) != 0) {
        bs_map_put(by_id, p->id, NULL); /* cannot fail: the key exists */
        goto fail;
    }
    payment_count++;
    return p;
fail:
    payment_free(p);
    return NULL;
}

static json_t *pay_answer(const struct bs_payment *p)
{
    if (p->status == BS_REJECTED)
        return json_pack("{s:s, s:s, s:s}", "status", "REJECTED", "id", p->id, "reason",
                         p->reason);
    if (p->status == BS_ACTION_REQUIRED)
        return json_pack("{s:s, s:s, s:s}", "status", "ACTION_REQUIRED", "id", p->id,
                         "redirect_url", p->redirect_url);
    return json_pack("{s:s, s:s}", "status", "OK", "id", p->id);
}

int store_pay(const struct bs_pay_input *in, struct bs_op_result *out)
{
    struct idem_entry *e;
    struct bs_payment *p;
    bool token_rejects = in->card_token && strcmp(in->card_token, "tok_insufficient") == 0;
    int rc = -1;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&store_lock);
    e = idem_get_or_add("pay", NULL, in->idem_key);
    if (!e)
        goto done;
    if (e->has_answer) {
        rc = idem_replay(e, out);
        goto done;
    }
    if (in->amount % 100 == 55 && !e->saw_55 && !token_rejects) {
        rc = idem_sandbox_503(e, out); /* transient: nothing is created */
        goto done;
    }
    p = payment_create(in);
    if (!p)
        goto done;
    if (answer_json(e, 200, pay_answer(p), out) != 0) {
        /* The payment exists but we cannot answer: keep it, as a bank whose
         * reply got lost would; a retry then replays nothing and creates
         * another. Only reachable when out of memory. */
        goto done;
    }
    if (p->status == BS_ACTION_REQUIRED) {
        if (timer_call_at(bs_now_ms() + bs_cfg.challenge_expiry_ms, challenge_expire, p) != 0)
            bs_err("payment %s: out of memory; its challenge will not expire", p->id);
    } else if (p->status != BS_REJECTED) {
        if (p->status == BS_AUTHORIZED)
            arm_auth_expiry(p, p->settle_ms);
        if (!p->silent) {
            payment_event(p, p->status, p->amount, p->settle_unix, in->webhook_delay_ms,
                          &out->event);
            out->has_event = true;
        }
    }
    rc = 0;
done:
    pthread_mutex_unlock(&store_lock);
    return rc;
}

/* ------------------------------------------------------- capture and void */

int store_capture(const char *tx_id, const char *idem_key, long long amount,
                  unsigned webhook_delay_ms, struct bs_op_result *out)
{
    struct bs_payment *p;
    struct idem_entry *e;
    char msg[160];
    char *key_copy;
    uint64_t now = bs_now_ms();
    int rc = -1;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, tx_id);
    if (!p) {
        rc = answer_error(404, "not_found", out);
        goto done;
    }
    p->capture_requests++;
    e = idem_get_or_add("capture", p->id, idem_key);
    if (!e)
        goto done;
    if (e->has_answer) {
        rc = idem_replay(e, out);
        goto done;
    }
    if (amount % 100 == 55 && !e->saw_55) {
        rc = idem_sandbox_503(e, out);
        goto done;
    }
    if (visible_status(p, now) != BS_AUTHORIZED) {
        rc = answer_json(NULL, 409, json_pack("{s:s, s:s}", "error", "not_capturable",
                                              "status", public_status(p, now)), out);
        goto done;
    }
    if (amount > p->amount) {
        snprintf(msg, sizeof msg, "amount %lld is above the authorized amount %lld", amount,
                 p->amount);
        rc = answer_error(422, msg, out);
        goto done;
    }
    key_copy = strdup(idem_key);
    if (!key_copy)
        goto done;
    if (answer_json(e, 200, json_pack("{s:s, s:s, s:I}", "status", "CAPTURED", "id", p->id,
                                      "captured", (json_int_t)amount), out) != 0) {
        free(key_copy);
        goto done;
    }
    p->status = BS_CAPTURED;
    p->captured = amount;
    p->capture_key = key_copy;
    p->capture_unix = bs_unix_now();
    atomic_fetch_add(&n_captures, 1);
    if (!p->silent) {
        payment_event(p, BS_CAPTURED, amount, p->capture_unix, webhook_delay_ms, &out->event);
        out->has_event = true;
    }
    rc = 0;
done:
    pthread_mutex_unlock(&store_lock);
    return rc;
}

int store_void(const char *tx_id, const char *idem_key, unsigned webhook_delay_ms,
               struct bs_op_result *out)
{
    struct bs_payment *p;
    struct idem_entry *e;
    enum bs_status s;
    char *key_copy;
    uint64_t now = bs_now_ms();
    int rc = -1;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, tx_id);
    if (!p) {
        rc = answer_error(404, "not_found", out);
        goto done;
    }
    p->void_requests++;
    e = idem_get_or_add("void", p->id, idem_key);
    if (!e)
        goto done;
    if (e->has_answer) {
        rc = idem_replay(e, out);
        goto done;
    }
    s = visible_status(p, now);
    if (s != BS_AUTHORIZED && s != BS_ACTION_REQUIRED) {
        rc = answer_json(NULL, 409, json_pack("{s:s, s:s}", "error", "not_voidable", "status",
                                              public_status(p, now)), out);
        goto done;
    }
    key_copy = strdup(idem_key);
    if (!key_copy)
        goto done;
    if (answer_json(e, 200, json_pack("{s:s, s:s}", "status", "VOIDED", "id", p->id), out) !=
        0) {
        free(key_copy);
        goto done;
    }
    if (s == BS_ACTION_REQUIRED)
        p->challenge_result = "voided";
    p->status = BS_VOIDED;
    p->void_key = key_copy;
    p->void_unix = bs_unix_now();
    atomic_fetch_add(&n_voids, 1);
    if (!p->silent) {
        payment_event(p, BS_VOIDED, p->amount, p->void_unix, webhook_delay_ms, &out->event);
        out->has_event = true;
    }
    rc = 0;
done:
    pthread_mutex_unlock(&store_lock);
    return rc;
}

/* ---------------------------------------------------------------- refunds */

/* Creates and indexes a refund of p; store_lock held. NULL on OOM with
 * nothing indexed. */
static struct bs_refund *refund_create(struct bs_payment *p, const struct bs_refund_input *in)
{
    struct bs_refund *r = calloc(1, sizeof *r);
    bool ok = true;

    if (!r)
        goto fail;
    r->ref = dup_or_null(in->ref, &ok);
    r->callback_url = dup_or_null(in->callback_url, &ok);
    r->idem_key = dup_or_null(in->idem_key, &ok);
    if (!ok || bs_random_id("rf_", r->id, sizeof r->id) != 0)
        goto fail;
    r->pay = p;
    r->amount = in->amount;
    switch (in->amount % 100) {
    case 13: r->status = RF_FAILED; break;
    case 99: r->status = RF_REJECTED; break;
    default: r->status = RF_REFUNDED; break;
    }
    if (r->status == RF_REJECTED) {
        r->settle_ms = bs_now_ms();
        r->settle_unix = bs_unix_now();
    } else {
        r->settle_ms = bs_now_ms() + in->webhook_delay_ms;
        r->settle_unix = bs_unix_now() + (in->webhook_delay_ms + 999) / 1000;
    }
    r->ref_next = bs_map_get(refund_by_ref, r->ref);
    if (bs_map_put(refund_by_id, r->id, r) != 0)
        goto fail;
    if (bs_map_put(refund_by_ref, r->ref, r) != 0) {
        bs_map_put(refund_by_id, r->id, NULL); /* cannot fail: the key exists */
        goto fail;
    }
    r->pay_next = p->refunds;
    p->refunds = r;
    refund_count++;
    return r;
fail:
    refund_free(r);
    return NULL;
}

int store_refund(const struct bs_refund_input *in, struct bs_op_result *out)
{
    struct idem_entry *e;
    struct bs_payment *p;
    struct bs_refund *r;
    char msg[200];
    uint64_t now = bs_now_ms();
    long long captured, left;
    int rc = -1;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, in->tx_id);
    if (p)
        p->refund_requests++;
    e = idem_get_or_add("refund", NULL, in->idem_key);
    if (!e)
        goto done;
    if (e->has_answer) {
        rc = idem_replay(e, out);
        goto done;
    }
    if (in->amount % 100 == 55 && !e->saw_55) {
        rc = idem_sandbox_503(e, out); /* transient: nothing is created */
        goto done;
    }
    if (!p) {
        snprintf(msg, sizeof msg, "tx_id \"%.40s\" is not a Banco X payment", in->tx_id);
        rc = answer_error(422, msg, out);
        goto done;
    }
    captured = captured_amount(p, now);
    if (captured == 0) {
        snprintf(msg, sizeof msg,
                 "tx_id %s is not captured (status %s): only APPROVED or CAPTURED payments "
                 "can be refunded", p->id, public_status(p, now));
        rc = answer_error(422, msg, out);
        goto done;
    }
    left = captured - refund_held(p, now);
    if (in->amount > left) {
        snprintf(msg, sizeof msg,
                 "amount %lld is above what is left to refund (%lld of %lld captured, "
                 "pending refunds included)", in->amount, left, captured);
        rc = answer_error(422, msg, out);
        goto done;
    }
    r = refund_create(p, in);
    if (!r)
        goto done;
    if (r->status == RF_REJECTED)
        rc = answer_json(e, 200, json_pack("{s:s, s:s, s:s}", "status", "REJECTED", "id", r->id,
                                           "reason", REASON_REFUND_WINDOW), out);
    else
        rc = answer_json(e, 200, json_pack("{s:s, s:s}", "status", "OK", "id", r->id), out);
    if (rc != 0)
        goto done; /* as in store_pay: the refund stays, the answer is lost */
    if (r->status != RF_REJECTED && in->amount % 100 != 77) {
        struct bs_event *ev = &out->event;
        memset(ev, 0, sizeof *ev);
        ev->refund = true;
        ev->account = p->account;
        memcpy(ev->tx_id, p->id, sizeof ev->tx_id);
        memcpy(ev->refund_id, r->id, sizeof ev->refund_id);
        ev->ref = r->ref;
        ev->callback_url = r->callback_url;
        ev->status = refund_status_name(r->status);
        ev->amount = r->amount;
        memcpy(ev->currency, p->currency, sizeof ev->currency);
        ev->occurred_unix = r->settle_unix;
        ev->delay_ms = in->webhook_delay_ms;
        out->has_event = true;
    }
done:
    pthread_mutex_unlock(&store_lock);
    return rc;
}

/* ------------------------------------------------------------ 3-D Secure */

/* Fills *out from p; store_lock held. */
static void challenge_fill(const struct bs_payment *p, uint64_t now, struct bs_challenge *out)
{
    memset(out, 0, sizeof *out);
    out->waiting = visible_status(p, now) == BS_ACTION_REQUIRED;
    out->status = public_status(p, now);
    out->amount = p->amount;
    memcpy(out->currency, p->currency, sizeof out->currency);
    out->description = p->description;
    out->return_url = p->return_url;
}

int store_challenge_view(const char *id, struct bs_challenge *out)
{
    struct bs_payment *p;
    int rc = -1;

    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, id);
    if (p) {
        challenge_fill(p, bs_now_ms(), out);
        rc = 0;
    }
    pthread_mutex_unlock(&store_lock);
    return rc;
}

int store_challenge_answer(const char *id, bool approve, unsigned webhook_delay_ms,
                           struct bs_challenge *out, bool *has_event, struct bs_event *ev)
{
    struct bs_payment *p;
    uint64_t now = bs_now_ms();
    int rc = -1;

    *has_event = false;
    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, id);
    if (!p)
        goto done;
    if (visible_status(p, now) == BS_ACTION_REQUIRED) {
        if (approve) {
            p->status = p->capture ? BS_APPROVED : BS_AUTHORIZED;
            p->challenge_result = "approve";
            if (p->status == BS_AUTHORIZED)
                arm_auth_expiry(p, now);
        } else {
            p->status = BS_DECLINED;
            p->reason = REASON_3DS_DECLINED;
            p->challenge_result = "decline";
        }
        payment_event(p, p->status, p->amount, bs_unix_now(), webhook_delay_ms, ev);
        *has_event = true;
    }
    challenge_fill(p, now, out);
    rc = 0;
done:
    pthread_mutex_unlock(&store_lock);
    return rc;
}

/* --------------------------------------------------------------- queries */

char *store_query_json(const char *id, bool *found)
{
    json_t *o = NULL;
    struct bs_payment *p;
    uint64_t now = bs_now_ms();

    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, id);
    *found = p != NULL;
    if (p) {
        enum bs_status s = visible_status(p, now);
        o = json_pack("{s:s, s:s, s:s, s:I}", "id", p->id, "ref", p->ref, "status",
                      public_status(p, now), "captured", (json_int_t)captured_amount(p, now));
        /* Beyond the contract, as v1 did for REJECTED: why it was declined,
         * and where the customer must go while a challenge waits. */
        if (o && (s == BS_REJECTED || s == BS_DECLINED) && p->reason)
            json_object_set_new(o, "reason", json_string(p->reason));
        if (o && s == BS_ACTION_REQUIRED)
            json_object_set_new(o, "redirect_url", json_string(p->redirect_url));
    }
    pthread_mutex_unlock(&store_lock);
    return dump_and_free(o);
}

char *store_refund_query_json(const char *id, bool *found)
{
    json_t *o = NULL;
    struct bs_refund *r;

    pthread_mutex_lock(&store_lock);
    r = bs_map_get(refund_by_id, id);
    *found = r != NULL;
    if (r) {
        enum refund_status s = refund_visible(r, bs_now_ms());
        /* The contract's GET knows no REJECTED: it reads REFUND_FAILED with
         * the reason, as a rejected payment reads DECLINED. */
        o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", r->id, "ref", r->ref, "tx_id",
                      r->pay->id, "status", refund_status_name(s == RF_REJECTED ? RF_FAILED : s),
                      "amount", (json_int_t)r->amount);
        if (o && s == RF_REJECTED)
            json_object_set_new(o, "reason", json_string(REASON_REFUND_WINDOW));
    }
    pthread_mutex_unlock(&store_lock);
    return dump_and_free(o);
}

char *store_by_ref_json(const char *ref, bool refunds)
{
    json_t *ids = json_array();
    json_t *o = NULL;
    size_t count = 0;

    if (!ids)
        return NULL;
    pthread_mutex_lock(&store_lock);
    if (refunds) {
        for (struct bs_refund *r = bs_map_get(refund_by_ref, ref); r; r = r->ref_next) {
            json_array_insert_new(ids, 0, json_string(r->id)); /* oldest first */
            count++;
        }
    } else {
        for (struct bs_payment *p = bs_map_get(by_ref, ref); p; p = p->ref_next) {
            json_array_insert_new(ids, 0, json_string(p->id)); /* oldest first */
            count++;
        }
    }
    const struct idem_entry *e = refunds ? NULL : idem_find("pay", NULL, ref);
    json_int_t n_requests = e ? (json_int_t)e->requests : 0;
    json_int_t n_overlapping = e ? (json_int_t)e->overlapping : 0;
    json_t *rid = e && e->last_request_id[0] ? json_string(e->last_request_id) : json_null();
    json_t *tp = e && e->last_traceparent[0] ? json_string(e->last_traceparent) : json_null();
    pthread_mutex_unlock(&store_lock);
    if (refunds) {
        json_decref(rid);
        json_decref(tp);
        o = json_pack("{s:s, s:I, s:o}", "ref", ref, "count", (json_int_t)count, "ids", ids);
    } else {
        o = json_pack("{s:s, s:I, s:o, s:I, s:I, s:o, s:o}", "ref", ref, "count", (json_int_t)count,
                      "ids", ids, "requests", n_requests, "overlapping", n_overlapping,
                      "last_request_id", rid, "last_traceparent", tp);
    }
    return dump_and_free(o);
}

void store_note_request(const char *key, uint64_t start_ms, uint64_t answer_ms)
{
    pthread_mutex_lock(&store_lock);
    struct idem_entry *e = idem_get_or_add("pay", NULL, key);
    if (e) {
        if (e->requests > 0 && start_ms < e->busy_until)
            e->overlapping++;
        e->requests++;
        if (answer_ms > e->busy_until)
            e->busy_until = answer_ms;
    }
    pthread_mutex_unlock(&store_lock);
}

void store_note_trace(const char *key, const char *request_id, const char *traceparent)
{
    pthread_mutex_lock(&store_lock);
    struct idem_entry *e = idem_get_or_add("pay", NULL, key);
    if (e) {
        snprintf(e->last_request_id, sizeof e->last_request_id, "%s", request_id ? request_id : "");
        snprintf(e->last_traceparent, sizeof e->last_traceparent, "%s", traceparent ? traceparent : "");
    }
    pthread_mutex_unlock(&store_lock);
}

/* JSON string or null. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_json(int64_t t)
{
    char buf[32];
    bs_rfc3339(t, buf, sizeof buf);
    return json_string(buf);
}

/* The inspection record of p; store_lock held. NULL on OOM. */
static json_t *inspect(const struct bs_payment *p, uint64_t now)
{
    json_t *captures = json_array(), *voids = json_array(), *refunds = json_array();
    long long captured = captured_amount(p, now);
    json_t *o;

    if (!captures || !voids || !refunds)
        goto fail;
    if (p->capture_key)
        json_array_append_new(captures, json_pack("{s:I, s:s, s:o}", "amount",
                                                  (json_int_t)p->captured, "idempotency_key",
                                                  p->capture_key, "at",
                                                  time_json(p->capture_unix)));
    if (p->void_key || p->voided_by_expiry)
        json_array_append_new(voids, json_pack("{s:s, s:o, s:o}", "by",
                                               p->voided_by_expiry ? "expiry" : "request",
                                               "idempotency_key", str_or_null(p->void_key),
                                               "at", time_json(p->void_unix)));
    for (const struct bs_refund *r = p->refunds; r; r = r->pay_next)
        json_array_insert_new(refunds, 0, json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", r->id,
                                                    "ref", r->ref, "amount",
                                                    (json_int_t)r->amount, "status",
                                                    refund_status_name(refund_visible(r, now)),
                                                    "idempotency_key", r->idem_key));
    o = json_pack("{s:s, s:s, s:I, s:s, s:b, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o,"
                  " s:I, s:I, s:I, s:o, s:o, s:o}",
                  "id", p->id, "ref", p->ref, "amount", (json_int_t)p->amount, "currency",
                  p->currency, "capture", p->capture, "status",
                  bs_status_name(visible_status(p, now)), "captured", (json_int_t)captured,
                  "refunded", (json_int_t)refunded_total(p, now), "refundable",
                  (json_int_t)(captured - refund_held(p, now)), "card_token",
                  str_or_null(p->card_token), "return_url", str_or_null(p->return_url),
                  "description", str_or_null(p->description), "challenge",
                  str_or_null(p->challenge_result), "reason", str_or_null(p->reason),
                  "capture_requests", (json_int_t)p->capture_requests, "void_requests",
                  (json_int_t)p->void_requests, "refund_requests",
                  (json_int_t)p->refund_requests, "captures", captures, "voids", voids,
                  "refunds", refunds);
    if (o)
        json_object_set_new(o, "account", json_string(bs_cfg.accounts[p->account].name));
    return o; /* json_pack "o" stole the arrays, even on failure */
fail:
    json_decref(captures);
    json_decref(voids);
    json_decref(refunds);
    return NULL;
}

int store_account_of(const char *id, bool refund)
{
    int account = -1;
    pthread_mutex_lock(&store_lock);
    if (refund) {
        const struct bs_refund *r = bs_map_get(refund_by_id, id);
        if (r)
            account = r->pay->account;
    } else {
        const struct bs_payment *p = bs_map_get(by_id, id);
        if (p)
            account = p->account;
    }
    pthread_mutex_unlock(&store_lock);
    return account;
}

char *store_inspect_json(const char *id, bool *found)
{
    json_t *o = NULL;
    struct bs_payment *p;

    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, id);
    *found = p != NULL;
    if (p)
        o = inspect(p, bs_now_ms());
    pthread_mutex_unlock(&store_lock);
    return dump_and_free(o);
}

/* ----------------------------------------------------------------- stats */

struct status_tally {
    uint64_t now;
    json_int_t n[BS_STATUS_N];
    json_int_t rf[RF_STATUS_N];
};

static void tally_one(void *v, void *arg)
{
    struct bs_payment *p = v;
    struct status_tally *t = arg;
    if (p)
        t->n[visible_status(p, t->now)]++;
}

static void tally_refund(void *v, void *arg)
{
    struct bs_refund *r = v;
    struct status_tally *t = arg;
    if (r)
        t->rf[refund_visible(r, t->now)]++;
}

void store_stats(void *json_obj)
{
    json_t *o = json_obj, *by_status, *rf_status;
    struct status_tally t = { .now = bs_now_ms() };
    json_int_t count, rcount;
    static const char *const req_names[] = { "pay_requests", "capture_requests",
                                             "void_requests", "refund_requests" };

    pthread_mutex_lock(&store_lock);
    bs_map_each(by_id, tally_one, &t);
    bs_map_each(refund_by_id, tally_refund, &t);
    count = (json_int_t)payment_count;
    rcount = (json_int_t)refund_count;
    pthread_mutex_unlock(&store_lock);
    json_object_set_new(o, "payments", json_integer(count));
    for (size_t i = 0; i < sizeof req_names / sizeof req_names[0]; i++)
        json_object_set_new(o, req_names[i], json_integer((json_int_t)atomic_load(&requests[i])));
    json_object_set_new(o, "idempotent_replays", json_integer((json_int_t)atomic_load(&replays)));
    json_object_set_new(o, "sandbox_503", json_integer((json_int_t)atomic_load(&sandbox_503)));
    json_object_set_new(o, "captures", json_integer((json_int_t)atomic_load(&n_captures)));
    json_object_set_new(o, "voids", json_integer((json_int_t)atomic_load(&n_voids)));
    json_object_set_new(o, "authorizations_expired",
                        json_integer((json_int_t)atomic_load(&n_auth_expired)));
    json_object_set_new(o, "challenges_expired",
                        json_integer((json_int_t)atomic_load(&n_challenge_expired)));
    json_object_set_new(o, "refunds", json_integer(rcount));
    by_status = json_object();
    for (int s = 0; by_status && s < BS_STATUS_N; s++)
        json_object_set_new(by_status, bs_status_name((enum bs_status)s), json_integer(t.n[s]));
    json_object_set_new(o, "by_status", by_status);
    rf_status = json_object();
    for (int s = 0; rf_status && s < RF_STATUS_N; s++)
        json_object_set_new(rf_status, refund_status_name((enum refund_status)s),
                            json_integer(t.rf[s]));
    json_object_set_new(o, "refunds_by_status", rf_status);
}
