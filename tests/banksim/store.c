/* store.c: bank-side payments and the answers stored per Idempotency-Key.
 *
 * One mutex guards three maps: id -> payment, ref -> chain of payments with
 * that ref (newest first), Idempotency-Key -> stored answer. Work under the
 * lock is a few hash look-ups, so one lock is not a bottleneck at the rates
 * the benchmarks use. Nothing is freed before store_fini(). */
#include "banksim.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct idem_entry {
    bool has_answer;  /* the answer below is what every replay gets */
    bool saw_55;      /* the one sandbox 503 for this key was given */
    struct bs_answer answer;
    unsigned requests;    /* POST /pay calls with this key */
    unsigned overlapping; /* ... that came while an earlier one was unanswered */
    uint64_t busy_until;  /* latest answer time of those calls (monotonic ms) */
};

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bs_map *by_id, *by_ref, *by_idem;
static size_t payment_count;
static atomic_ullong pay_requests, replays, sandbox_503;

const char *bs_status_name(enum bs_status s)
{
    switch (s) {
    case BS_PENDING: return "PENDING";
    case BS_APPROVED: return "APPROVED";
    case BS_DECLINED: return "DECLINED";
    case BS_REJECTED: return "REJECTED";
    }
    return "PENDING";
}

int store_init(void)
{
    by_id = bs_map_new();
    by_ref = bs_map_new();
    by_idem = bs_map_new();
    if (!by_id || !by_ref || !by_idem)
        goto fail;
    return 0;
fail:
    store_fini();
    return -1;
}

static void payment_free(void *v)
{
    struct bs_payment *p = v;
    free(p->ref);
    free(p->callback_url);
    free(p);
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
    bs_map_free(by_idem, idem_free);
    by_id = by_ref = by_idem = NULL;
}

void store_count_request(void)
{
    atomic_fetch_add(&pay_requests, 1);
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

static enum bs_status outcome_for(long long amount)
{
    switch (amount % 100) {
    case 13: return BS_DECLINED;
    case 99: return BS_REJECTED;
    default: return BS_APPROVED; /* 55 and 77 included */
    }
}

/* Creates and indexes a payment; store_lock held. Returns NULL on OOM with
 * nothing indexed. */
static struct bs_payment *payment_create(const struct bs_pay_input *in)
{
    struct bs_payment *p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    p->ref = strdup(in->ref);
    p->callback_url = strdup(in->callback_url);
    if (!p->ref || !p->callback_url || bs_random_id("bx_", p->id, sizeof p->id) != 0)
        goto fail;
    memcpy(p->currency, in->currency, 3);
    p->amount = in->amount;
    p->final_status = outcome_for(in->amount);
    if (p->final_status == BS_REJECTED) {
        p->settle_ms = bs_now_ms();
        p->settle_unix = bs_unix_now();
    } else {
        p->settle_ms = bs_now_ms() + in->webhook_delay_ms;
        p->settle_unix = bs_unix_now() + (in->webhook_delay_ms + 999) / 1000;
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
    if (p)
        payment_free(p);
    return NULL;
}

static char *answer_body_for(const struct bs_payment *p)
{
    if (p->final_status == BS_REJECTED)
        return dump_and_free(json_pack("{s:s, s:s, s:s}", "status", "REJECTED",
                                       "id", p->id, "reason", "insufficient funds"));
    return dump_and_free(json_pack("{s:s, s:s}", "status", "OK", "id", p->id));
}

/* Finds or adds the entry for key; store_lock held. NULL on OOM. */
static struct idem_entry *idem_get_or_add(const char *key)
{
    struct idem_entry *e = bs_map_get(by_idem, key);
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (!e || bs_map_put(by_idem, key, e) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

int store_pay(const struct bs_pay_input *in, struct bs_pay_result *out)
{
    struct idem_entry *e;
    struct bs_payment *p = NULL;
    char *body = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&store_lock);
    e = idem_get_or_add(in->idem_key);
    if (!e)
        goto done;
    if (e->has_answer) {
        out->answer.status = e->answer.status;
        out->answer.body = strdup(e->answer.body);
        out->replayed = true;
        rc = out->answer.body ? 0 : -1;
        if (rc == 0)
            atomic_fetch_add(&replays, 1);
        goto done;
    }
    if (in->amount % 100 == 55 && !e->saw_55) {
        /* Transient failure: nothing is created bank-side. */
        out->answer.status = 503;
        out->answer.body = strdup("{\"error\":\"unavailable\"}");
        if (!out->answer.body)
            goto done;
        e->saw_55 = true;
        atomic_fetch_add(&sandbox_503, 1);
        rc = 0;
        goto done;
    }
    p = payment_create(in);
    if (!p)
        goto done;
    body = answer_body_for(p);
    out->answer.body = body ? strdup(body) : NULL;
    if (!out->answer.body) {
        /* The payment exists but we cannot answer: keep it, as a bank whose
         * reply got lost would; a retry then replays nothing and creates
         * another. Only reachable when out of memory. */
        free(body);
        goto done;
    }
    e->answer.status = 200;
    e->answer.body = body;
    e->has_answer = true;
    out->answer.status = 200;
    out->created = p;
    rc = 0;
done:
    pthread_mutex_unlock(&store_lock);
    return rc;
}

/* Visible status now: PENDING until the bank's decision time. */
static enum bs_status visible_status(const struct bs_payment *p, uint64_t now)
{
    return now < p->settle_ms ? BS_PENDING : p->final_status;
}

char *store_query_json(const char *id, bool *found)
{
    json_t *o = NULL;
    struct bs_payment *p;

    pthread_mutex_lock(&store_lock);
    p = bs_map_get(by_id, id);
    *found = p != NULL;
    if (p) {
        enum bs_status s = visible_status(p, bs_now_ms());
        /* The contract's GET knows PENDING/APPROVED/DECLINED only: an
         * at-once rejection reads as DECLINED with its reason. */
        if (s == BS_REJECTED)
            o = json_pack("{s:s, s:s, s:s, s:s}", "id", p->id, "ref", p->ref,
                          "status", "DECLINED", "reason", "insufficient funds");
        else
            o = json_pack("{s:s, s:s, s:s}", "id", p->id, "ref", p->ref,
                          "status", bs_status_name(s));
    }
    pthread_mutex_unlock(&store_lock);
    return dump_and_free(o);
}

char *store_by_ref_json(const char *ref)
{
    json_t *ids = json_array();
    json_t *o = NULL;
    size_t count = 0;

    if (!ids)
        return NULL;
    pthread_mutex_lock(&store_lock);
    for (struct bs_payment *p = bs_map_get(by_ref, ref); p; p = p->ref_next) {
        json_array_insert_new(ids, 0, json_string(p->id)); /* oldest first */
        count++;
    }
    const struct idem_entry *e = bs_map_get(by_idem, ref);
    json_int_t requests = e ? (json_int_t)e->requests : 0;
    json_int_t overlapping = e ? (json_int_t)e->overlapping : 0;
    pthread_mutex_unlock(&store_lock);
    o = json_pack("{s:s, s:I, s:o, s:I, s:I}", "ref", ref, "count", (json_int_t)count, "ids", ids,
                  "requests", requests, "overlapping", overlapping);
    return dump_and_free(o);
}

void store_note_request(const char *key, uint64_t start_ms, uint64_t answer_ms)
{
    pthread_mutex_lock(&store_lock);
    struct idem_entry *e = idem_get_or_add(key);
    if (e) {
        if (e->requests > 0 && start_ms < e->busy_until)
            e->overlapping++;
        e->requests++;
        if (answer_ms > e->busy_until)
            e->busy_until = answer_ms;
    }
    pthread_mutex_unlock(&store_lock);
}

struct status_tally {
    uint64_t now;
    json_int_t n[4];
};

static void tally_one(void *v, void *arg)
{
    struct bs_payment *p = v;
    struct status_tally *t = arg;
    if (p)
        t->n[visible_status(p, t->now)]++;
}

void store_stats(void *json_obj)
{
    json_t *o = json_obj;
    struct status_tally t = { .now = bs_now_ms() };
    json_int_t count;

    pthread_mutex_lock(&store_lock);
    bs_map_each(by_id, tally_one, &t);
    count = (json_int_t)payment_count;
    pthread_mutex_unlock(&store_lock);
    json_object_set_new(o, "payments", json_integer(count));
    json_object_set_new(o, "pay_requests", json_integer((json_int_t)atomic_load(&pay_requests)));
    json_object_set_new(o, "idempotent_replays", json_integer((json_int_t)atomic_load(&replays)));
    json_object_set_new(o, "sandbox_503", json_integer((json_int_t)atomic_load(&sandbox_503)));
    json_object_set_new(o, "by_status",
                        json_pack("{s:I, s:I, s:I, s:I}", "PENDING", t.n[BS_PENDING],
                                  "APPROVED", t.n[BS_APPROVED], "DECLINED", t.n[BS_DECLINED],
                                  "REJECTED", t.n[BS_REJECTED]));
}
