/* Unit tests: the bank API key a connector puts into a request
 * ("Authorization: Bearer <key>") is wiped before its memory goes back to
 * the allocator: in the call arena (host/arena.c) and in the libcurl header
 * lists of the blocking executor (host/executor.c) and of bankq
 * (host/bankq.c).
 *
 * Checked where the memory is released: this binary is linked with
 * -Wl,--wrap=free,--wrap=curl_slist_free_all (tests/unit/CMakeLists.txt), so
 * the host's own calls to free() and curl_slist_free_all() come through the
 * wrappers below, which look for the key in each block or list entry just
 * before the real function releases it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "arena.h"
#include "bankq.h"
#include "executor.h"

/* The key only ever lives in this static buffer and in host memory under
 * test, so a copy found in a freed block is one the host left there. */
static char secret[48];

static int watching; /* set around the calls under test */
static int blocks_freed, blocks_with_secret;
static int entries_freed, entries_with_secret;

void __real_free(void *p);
void __wrap_free(void *p);
void __real_curl_slist_free_all(struct curl_slist *list);
void __wrap_curl_slist_free_all(struct curl_slist *list);

void __wrap_free(void *p)
{
    if (p && watching) {
        blocks_freed++;
        if (memmem(p, malloc_usable_size(p), secret, strlen(secret)))
            blocks_with_secret++;
    }
    __real_free(p);
}

void __wrap_curl_slist_free_all(struct curl_slist *list)
{
    for (struct curl_slist *e = list; e && watching; e = e->next) {
        entries_freed++;
        if (e->data && strstr(e->data, secret))
            entries_with_secret++;
    }
    __real_curl_slist_free_all(list);
}

static void reset_counts(void)
{
    blocks_freed = blocks_with_secret = entries_freed = entries_with_secret = 0;
}

static int setup(void **state)
{
    (void)state;
    /* Not a literal, so the secret is in no other place of the binary. */
    snprintf(secret, sizeof secret, "sk_wipe_%08x%08x", (unsigned)getpid(), (unsigned)time(NULL));
    return executor_global_init();
}

/* A loopback port nothing listens on: connections are refused at once. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* A request as a connector builds it: everything in the call's arena. */
static void bank_request(pagoflex_arena *arena, pagoflex_http_request *req)
{
    pagoflex_header *h = arena_alloc(arena, sizeof *h);
    assert_non_null(h);
    h->name = "Authorization";
    h->value = arena_printf(arena, "Bearer %s", secret);
    *req = (pagoflex_http_request){.method = "POST",
                                   .url = arena_printf(arena, "http://127.0.0.1:%d/pay", closed_port()),
                                   .headers = h,
                                   .header_count = 1,
                                   .body = (const unsigned char *)"{}",
                                   .body_len = 2,
                                   .timeout_ms = 2000};
}

static void test_arena_free_wipes(void **state)
{
    (void)state;
    pagoflex_arena *a = arena_new();
    assert_non_null(a);
    assert_non_null(arena_printf(a, "Authorization: Bearer %s", secret));
    /* a block of its own, larger than the default */
    char *big = arena_alloc(a, 10000);
    assert_non_null(big);
    memcpy(big + 5000, secret, strlen(secret));
    reset_counts();
    watching = 1;
    arena_free(a);
    watching = 0;
    assert_true(blocks_freed >= 2); /* the large block and the arena itself */
    assert_int_equal(blocks_with_secret, 0);
    /* The block of the usual size stays in this thread's cache for the
     * next arena: wiped too. Its first allocation gets that block back. */
    pagoflex_arena *next = arena_new();
    assert_non_null(next);
    unsigned char *p = arena_alloc(next, 1);
    assert_non_null(p);
    assert_null(memmem(p, 4096, secret, strlen(secret)));
    arena_free(next);
}

static void test_executor_wipes_header_list(void **state)
{
    (void)state;
    pagoflex_arena *arena = arena_new();
    pagoflex_http_request req;
    pagoflex_http_response resp;
    bank_request(arena, &req);
    reset_counts();
    watching = 1;
    executor_perform(&req, 2000, NULL, arena, &resp);
    watching = 0;
    assert_int_equal(resp.transport, PAGOFLEX_TRANSPORT_CONNECT);
    assert_true(entries_freed >= 2); /* Authorization and Expect: */
    assert_int_equal(entries_with_secret, 0);
    arena_free(arena);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int answered;

static void on_done(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    answered = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void test_bankq_wipes_header_list(void **state)
{
    (void)state;
    bankq *q = bankq_start(0);
    assert_non_null(q);
    pagoflex_arena *arena = arena_new();
    pagoflex_http_request req;
    pagoflex_http_response resp;
    bank_request(arena, &req);
    reset_counts();
    watching = 1;
    bankq_submit(q, &req, 2000, NULL, arena, &resp, on_done, NULL);
    pthread_mutex_lock(&lock);
    while (!answered)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    watching = 0;
    assert_int_equal(resp.transport, PAGOFLEX_TRANSPORT_CONNECT);
    assert_true(entries_freed >= 2);
    assert_int_equal(entries_with_secret, 0);
    bankq_free(q);
    arena_free(arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_free_wipes),
        cmocka_unit_test(test_executor_wipes_header_list),
        cmocka_unit_test(test_bankq_wipes_header_list),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
