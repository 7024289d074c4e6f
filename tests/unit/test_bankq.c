/* Unit tests for bankq (host/bankq.c): many bank calls in flight on one
 * thread, answers routed back to their callers, transport failures mapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "arena.h"
#include "bankq.h"
#include "executor.h"

#define CALLS 300

/* The server echoes the request path in the body, so each caller can check
 * it got the answer to its own request. */
static enum MHD_Result echo(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                            const char *version, const char *data, size_t *size, void **state)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)data;
    if (!*state) {
        *state = (void *)1;
        return MHD_YES;
    }
    *size = 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(url), (void *)url, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

typedef struct call {
    pagoflex_arena *arena;
    pagoflex_http_request req;
    pagoflex_http_response resp;
    char url[128];
    int done;
} call;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int finished;

static void on_done(void *arg)
{
    call *c = arg;
    pthread_mutex_lock(&lock);
    c->done++;
    finished++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void wait_for(int n)
{
    pthread_mutex_lock(&lock);
    while (finished < n)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

static void submit(bankq *q, call *c, const char *url, long timeout_ms)
{
    c->arena = arena_new();
    snprintf(c->url, sizeof c->url, "%s", url);
    c->req = (pagoflex_http_request){.method = "GET", .url = c->url, .timeout_ms = timeout_ms};
    bankq_submit(q, &c->req, 5000, NULL, c->arena, &c->resp, on_done, c);
}

static void test_many_calls_each_get_their_own_answer(void **unused)
{
    (void)unused;
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
                                            echo, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)2000,
                                            MHD_OPTION_END);
    assert_non_null(d);
    int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    bankq *q = bankq_start(64);
    assert_non_null(q);
    static call calls[CALLS];
    finished = 0;
    for (int i = 0; i < CALLS; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/pay/%d", port, i);
        submit(q, &calls[i], url, 0);
    }
    wait_for(CALLS);
    for (int i = 0; i < CALLS; i++) {
        char want[32];
        snprintf(want, sizeof want, "/pay/%d", i);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].resp.transport, PAGOFLEX_TRANSPORT_OK);
        assert_int_equal(calls[i].resp.status, 200);
        assert_int_equal(calls[i].resp.body_len, strlen(want));
        assert_memory_equal(calls[i].resp.body, want, strlen(want));
        arena_free(calls[i].arena);
    }
    assert_int_equal(bankq_in_flight(q), 0);
    bankq_free(q);
    MHD_stop_daemon(d);
}

static void test_transport_failures(void **unused)
{
    (void)unused;
    /* A socket that listens but never accepts: the request times out. */
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(silent, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(silent, 16), 0);
    socklen_t len = sizeof sa;
    getsockname(silent, (struct sockaddr *)&sa, &len);
    int silent_port = ntohs(sa.sin_port);
    /* A port nobody listens on: connection refused. */
    int closed = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sb = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(closed, (struct sockaddr *)&sb, sizeof sb);
    len = sizeof sb;
    getsockname(closed, (struct sockaddr *)&sb, &len);
    int closed_port = ntohs(sb.sin_port);
    close(closed);

    bankq *q = bankq_start(0);
    call timeout = {0}, refused = {0};
    finished = 0;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/pay", silent_port);
    submit(q, &timeout, url, 300);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/pay", closed_port);
    submit(q, &refused, url, 300);
    wait_for(2);
    assert_int_equal(timeout.resp.transport, PAGOFLEX_TRANSPORT_TIMEOUT);
    assert_int_equal(timeout.resp.status, 0);
    assert_int_equal(refused.resp.transport, PAGOFLEX_TRANSPORT_CONNECT);
    arena_free(timeout.arena);
    arena_free(refused.arena);
    bankq_free(q);
    close(silent);
}

static void test_stop_answers_what_is_in_flight(void **unused)
{
    (void)unused;
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(silent, (struct sockaddr *)&sa, sizeof sa);
    listen(silent, 16);
    socklen_t len = sizeof sa;
    getsockname(silent, (struct sockaddr *)&sa, &len);
    bankq *q = bankq_start(0);
    call c = {0};
    finished = 0;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/pay", ntohs(sa.sin_port));
    submit(q, &c, url, 60000);
    usleep(100 * 1000);
    bankq_stop(q); /* must not leave the caller waiting */
    assert_int_equal(c.done, 1);
    assert_int_equal(c.resp.transport, PAGOFLEX_TRANSPORT_ERROR);
    /* After the stop, a new call is answered at once, not lost. */
    call late = {0};
    submit(q, &late, url, 60000);
    assert_int_equal(late.done, 1);
    assert_int_equal(late.resp.transport, PAGOFLEX_TRANSPORT_ERROR);
    bankq_free(q);
    arena_free(late.arena);
    arena_free(c.arena);
    close(silent);
}

int main(void)
{
    executor_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_calls_each_get_their_own_answer),
        cmocka_unit_test(test_transport_failures),
        cmocka_unit_test(test_stop_answers_what_is_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
