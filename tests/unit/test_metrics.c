/* test_metrics.c - the Prometheus text that GET /metrics serves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pagoflex/connector.h>

#include "metrics.h"

static char *render(void)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(&text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The value of the sample line that starts with `series` followed by a space;
 * fails the test when there is no such line. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = end + 1;
    }
    fail_msg("no sample %s in:\n%s", series, text);
    return -1;
}

static bool has_line(const char *text, const char *line)
{
    const char *p = strstr(text, line);
    return p && (p == text || p[-1] == '\n') && p[strlen(line)] == '\n';
}

static int reset(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

static void test_every_line_is_comment_or_sample(void **state)
{
    (void)state;
    metrics_request_done(METRICS_ROUTE_HEALTHZ, METRICS_NO_CONNECTOR, 200, 1000);
    char *text = render();
    assert_true(strlen(text) > 0);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end); /* the text ends with a newline */
        if (line[0] != '#') {
            const char *space = memchr(line, ' ', (size_t)(end - line));
            assert_non_null(space);
            char *num_end = NULL;
            strtod(space + 1, &num_end);
            assert_ptr_equal(num_end, end); /* "<series> <number>" */
        } else {
            assert_true(strncmp(line, "# HELP pagoflex_", 16) == 0 || strncmp(line, "# TYPE pagoflex_", 16) == 0);
        }
        line = end + 1;
    }
    assert_true(has_line(text, "# TYPE pagoflex_http_request_duration_seconds histogram"));
    assert_true(has_line(text, "# TYPE pagoflex_http_requests_total counter"));
    assert_true(has_line(text, "# TYPE pagoflex_payments_in_flight gauge"));
    free(text);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    /* 50 us, 300 us, 2 ms, 30 s (beyond the last finite bucket) */
    const uint64_t ns[] = {50000, 300000, 2000000, 30000000000ull};
    for (size_t i = 0; i < 4; i++)
        metrics_request_done(METRICS_ROUTE_PAYMENT_GET, METRICS_NO_CONNECTOR, 200, ns[i]);
    char *text = render();
    const char *h = "pagoflex_http_request_duration_seconds";
    char series[160];
    snprintf(series, sizeof series, "%s_bucket{route=\"payment_get\",le=\"0.0001\"}", h);
    assert_true(sample(text, series) == 1);
    snprintf(series, sizeof series, "%s_bucket{route=\"payment_get\",le=\"0.0005\"}", h);
    assert_true(sample(text, series) == 2);
    snprintf(series, sizeof series, "%s_bucket{route=\"payment_get\",le=\"0.0025\"}", h);
    assert_true(sample(text, series) == 3);
    snprintf(series, sizeof series, "%s_bucket{route=\"payment_get\",le=\"10\"}", h);
    assert_true(sample(text, series) == 3);
    snprintf(series, sizeof series, "%s_bucket{route=\"payment_get\",le=\"+Inf\"}", h);
    assert_true(sample(text, series) == 4);
    snprintf(series, sizeof series, "%s_count{route=\"payment_get\"}", h);
    assert_true(sample(text, series) == 4);
    snprintf(series, sizeof series, "%s_sum{route=\"payment_get\"}", h);
    double sum = sample(text, series);
    assert_true(sum > 30.0023 && sum < 30.0024);
    /* requests by status class */
    assert_true(sample(text, "pagoflex_http_requests_total{route=\"payment_get\",code=\"200\"}") == 4);
    free(text);
}

static void test_connectors_bank_db_and_gauges(void **state)
{
    (void)state;
    int bx = metrics_connector("BANCO_X");
    int ep = metrics_connector("ECHO_PAY");
    assert_int_not_equal(bx, ep);
    assert_int_equal(metrics_connector("BANCO_X"), bx); /* same name, same slot */
    metrics_request_done(METRICS_ROUTE_PAYMENT_CREATE, bx, 201, 5000000);
    metrics_request_done(METRICS_ROUTE_PAYMENT_CREATE, bx, 503, 5000000);
    metrics_request_done(METRICS_ROUTE_WEBHOOK, ep, 401, 100000);
    metrics_bank_call(bx, true, 2000000);
    metrics_bank_call(bx, false, 10000000);
    metrics_db_round_trip(400000);
    metrics_db_round_trip(400000);
    metrics_db_commit();
    metrics_payment_begin();
    metrics_payment_begin();
    metrics_payment_end();
    metrics_reload();
    metrics_worker_restart();
    metrics_worker_restart();
    char *text = render();
    assert_true(sample(text, "pagoflex_connector_requests_total{connector=\"BANCO_X\",route=\"payment_create\",code=\"201\"}") == 1);
    assert_true(sample(text, "pagoflex_connector_requests_total{connector=\"BANCO_X\",route=\"payment_create\",code=\"503\"}") == 1);
    assert_true(sample(text, "pagoflex_connector_requests_total{connector=\"ECHO_PAY\",route=\"webhook\",code=\"401\"}") == 1);
    assert_true(sample(text, "pagoflex_connector_request_duration_seconds_count{connector=\"BANCO_X\",route=\"payment_create\"}") == 2);
    assert_true(sample(text, "pagoflex_bank_calls_total{connector=\"BANCO_X\",result=\"answered\"}") == 1);
    assert_true(sample(text, "pagoflex_bank_calls_total{connector=\"BANCO_X\",result=\"transport_error\"}") == 1);
    assert_true(sample(text, "pagoflex_bank_call_duration_seconds_bucket{connector=\"BANCO_X\",le=\"0.0025\"}") == 1);
    assert_true(sample(text, "pagoflex_bank_call_duration_seconds_count{connector=\"BANCO_X\"}") == 2);
    assert_true(sample(text, "pagoflex_db_round_trips_total") == 2);
    assert_true(sample(text, "pagoflex_db_round_trip_duration_seconds_bucket{le=\"0.0005\"}") == 2);
    assert_true(sample(text, "pagoflex_db_commits_total") == 1);
    assert_true(sample(text, "pagoflex_payments_in_flight") == 1);
    assert_true(sample(text, "pagoflex_reloads_total") == 1);
    assert_true(sample(text, "pagoflex_worker_restarts_total") == 2);
    /* A connector with no traffic has no series. */
    assert_null(strstr(text, "connector=\"ECHO_PAY\",route=\"payment_create\""));
    free(text);
}

/* After metrics_share(), what forked processes record is in one block:
 * the parent's render counts its children's requests, and a child's
 * payments in flight leave the gauge once the master says it is gone. */
static void test_shared_across_forked_workers(void **state)
{
    (void)state;
    assert_int_equal(metrics_share(), 0);
    metrics_db_commit(); /* before the share: carried into the block */
    for (int w = 0; w < 2; w++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            metrics_set_worker(w);
            int bx = metrics_connector(w ? "BANCO_X" : "ECHO_PAY");
            for (int i = 0; i < 5; i++)
                metrics_request_done(METRICS_ROUTE_PAYMENT_CREATE, bx, 201, 1000);
            metrics_payment_begin(); /* then dies with it in flight */
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
    }
    char *text = render();
    assert_true(sample(text, "pagoflex_http_requests_total{route=\"payment_create\",code=\"201\"}") == 10);
    assert_true(sample(text, "pagoflex_connector_requests_total{connector=\"BANCO_X\",route=\"payment_create\",code=\"201\"}") == 5);
    assert_true(sample(text, "pagoflex_connector_requests_total{connector=\"ECHO_PAY\",route=\"payment_create\",code=\"201\"}") == 5);
    assert_true(sample(text, "pagoflex_db_commits_total") == 1);
    assert_true(sample(text, "pagoflex_payments_in_flight") == 2);
    free(text);
    metrics_worker_gone(0);
    metrics_worker_gone(1);
    text = render();
    assert_true(sample(text, "pagoflex_payments_in_flight") == 0);
    /* No worker label any more: one series per route and code. */
    assert_null(strstr(text, "worker="));
    free(text);
}

static void test_outcomes_refusals_gauges_build_info(void **state)
{
    (void)state;
    int bx = metrics_connector("BANCO_X");
    metrics_payment_outcome(bx, PAGOFLEX_STATE_SUCCEEDED);
    metrics_payment_outcome(bx, PAGOFLEX_STATE_SUCCEEDED);
    metrics_payment_outcome(bx, PAGOFLEX_STATE_PROCESSING);
    metrics_webhook_refused(bx, "invalid_signature");
    metrics_webhook_refused(METRICS_NO_CONNECTOR, "not_found");
    metrics_webhook_refused(bx, "no_such_code");
    metrics_set_build_info("9.8.7", "1.1");
    char *text = render();
    assert_true(sample(text, "pagoflex_payment_outcomes_total{connector=\"BANCO_X\",state=\"succeeded\"}") == 2);
    assert_true(sample(text, "pagoflex_payment_outcomes_total{connector=\"BANCO_X\",state=\"processing\"}") == 1);
    assert_true(sample(text, "pagoflex_webhook_refusals_total{connector=\"BANCO_X\",reason=\"invalid_signature\"}") == 1);
    assert_true(sample(text, "pagoflex_webhook_refusals_total{connector=\"_none\",reason=\"not_found\"}") == 1);
    assert_true(sample(text, "pagoflex_webhook_refusals_total{connector=\"BANCO_X\",reason=\"other\"}") == 1);
    assert_true(sample(text, "pagoflex_build_info{version=\"9.8.7\",abi=\"1.1\"}") == 1);
    /* Database gauges only once they were read. */
    assert_null(strstr(text, "pagoflex_reconciler_backlog"));
    free(text);
    metrics_set_db_gauges(true, 7, 3);
    text = render();
    assert_true(sample(text, "pagoflex_reconciler_backlog") == 7);
    assert_true(sample(text, "pagoflex_payments_requires_review") == 3);
    free(text);
    metrics_request_done(METRICS_ROUTE_OTHER, METRICS_NO_CONNECTOR, 418, 1000);
    text = render();
    assert_true(sample(text, "pagoflex_http_requests_total{route=\"other\",code=\"4xx\"}") == 1);
    free(text);
}

static void test_connector_table_overflows_into_other(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < METRICS_MAX_CONNECTORS; i++) {
        snprintf(name, sizeof name, "C%d", i);
        assert_int_equal(metrics_connector(name), i);
    }
    int extra = metrics_connector("ONE_TOO_MANY");
    assert_int_equal(extra, METRICS_MAX_CONNECTORS);
    metrics_bank_call(extra, true, 1000);
    char *text = render();
    assert_true(sample(text, "pagoflex_bank_calls_total{connector=\"_other\",result=\"answered\"}") == 1);
    free(text);
}

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    int slot = metrics_connector((const char *)arg);
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_request_done(METRICS_ROUTE_PAYMENT_CREATE, slot, 201, (uint64_t)i * 1000);
        metrics_db_commit();
    }
    return NULL;
}

static void test_concurrent_recording_loses_nothing(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, "BANCO_X"), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = render();
    assert_true(sample(text, "pagoflex_db_commits_total") == THREADS * PER_THREAD);
    assert_true(sample(text, "pagoflex_connector_request_duration_seconds_count{connector=\"BANCO_X\",route=\"payment_create\"}") ==
                THREADS * PER_THREAD);
    assert_true(sample(text, "pagoflex_http_request_duration_seconds_bucket{route=\"payment_create\",le=\"+Inf\"}") ==
                THREADS * PER_THREAD);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_line_is_comment_or_sample, reset),
        cmocka_unit_test_setup(test_histogram_buckets_are_cumulative, reset),
        cmocka_unit_test_setup(test_connectors_bank_db_and_gauges, reset),
        cmocka_unit_test_setup(test_outcomes_refusals_gauges_build_info, reset),
        cmocka_unit_test_setup(test_connector_table_overflows_into_other, reset),
        cmocka_unit_test_setup(test_concurrent_recording_loses_nothing, reset),
        /* last: it moves the block into shared memory for the rest of the run */
        cmocka_unit_test_setup(test_shared_across_forked_workers, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
