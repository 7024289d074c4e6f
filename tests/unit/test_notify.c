/* Unit tests: the notification target checks (SSRF), the signature header
 * of a delivery, endpoint secrets sealed with the master key, and the
 * retry schedule. The signatures' known answers were computed with
 * `openssl dgst -sha256 -mac HMAC -macopt hexkey:<key> -binary | base64`,
 * not by this code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <unistd.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config.h"
#include "notifier.h"
#include "notify_secret.h"
#include "notify_target.h"

/* base64("pagoflex-test-key-0123456789abcd") and base64("another-test-key-for-rotation-xy") */
#define SECRET "whsec_cGFnb2ZsZXgtdGVzdC1rZXktMDEyMzQ1Njc4OWFiY2Q="
#define OTHER "whsec_YW5vdGhlci10ZXN0LWtleS1mb3Itcm90YXRpb24teHk="
#define BODY "{\"type\":\"payment.succeeded\"}"
#define SIG_SECRET "v1,PX8rksuhv4dBo8ZdQPLwmWaqEpyeeqQ7mqGl+A0lLoQ="
#define SIG_OTHER "v1,IfbQyN1NaLgQLO7x9zlhhRubASBriKBeaGSjjowtrr0="

static bool allowed(const char *addr, bool allow_private)
{
    struct sockaddr_storage ss = {0};
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &in->sin_addr), 1);
    }
    return notify_target_addr_allowed((struct sockaddr *)&ss, allow_private);
}

static void test_addresses(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "127.0.0.1",
        "127.255.0.9",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "239.1.1.1",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2001:db8::1",
        "fec0::1",
    };
    static const char *const public_ones[] = {
        "93.184.216.34",    "8.8.8.8",           "172.32.0.1",           "172.15.255.255",
        "100.128.0.1",      "1.1.1.1",           "2606:4700:4700::1111", "::ffff:8.8.8.8",
        "64:ff9b::808:808", "2a00:1450:4001::1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (allowed(refused[i], false))
            fail_msg("%s was allowed", refused[i]);
        assert_true(allowed(refused[i], true)); /* notify_allow_private_targets */
    }
    for (size_t i = 0; i < sizeof public_ones / sizeof public_ones[0]; i++)
        if (!allowed(public_ones[i], false))
            fail_msg("%s was refused", public_ones[i]);
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    assert_false(notify_target_addr_allowed(&unix_sa, true));
    assert_false(notify_target_addr_allowed(NULL, true));
}

static void test_urls(void **state)
{
    (void)state;
    char err[256];
    static const char *const good[] = {"https://example.com/hooks", "http://example.com:8080/a?b=c",
                                       "https://93.184.216.34/x", "https://[2606:4700::1111]/x"};
    static const char *const bad[] = {
        "",
        "example.com/hooks",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "https://user:pw@example.com/",
        "https://user@example.com/",
        "https://exa mple.com/",
        "https://example.com/\n",
        "http://127.0.0.1/",
        "http://localhost:9/",
        "http://LocalHost./",
        "http://x.localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "https://",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (notify_target_check_url(good[i], false, err, sizeof err) != 0)
            fail_msg("%s refused: %s", good[i], err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (notify_target_check_url(bad[i], false, err, sizeof err) == 0)
            fail_msg("%s accepted", bad[i]);
    assert_int_equal(notify_target_check_url("http://127.0.0.1:9/x", true, err, sizeof err), 0);
    assert_int_not_equal(notify_target_check_url("ftp://127.0.0.1/", true, err, sizeof err), 0);
    char *long_url = malloc(NOTIFY_URL_MAX + 2);
    memset(long_url, 'a', NOTIFY_URL_MAX + 1);
    memcpy(long_url, "https://e.com/", 14);
    long_url[NOTIFY_URL_MAX + 1] = '\0';
    assert_int_not_equal(notify_target_check_url(long_url, false, err, sizeof err), 0);
    long_url[NOTIFY_URL_MAX] = '\0';
    assert_int_equal(notify_target_check_url(long_url, false, err, sizeof err), 0);
    free(long_url);
}

static void test_signature_known_answers(void **state)
{
    (void)state;
    char *one = notifier_signature(SECRET, NULL, "evt_1", 1700000000, BODY);
    assert_non_null(one);
    assert_string_equal(one, SIG_SECRET);
    free(one);
    char *two = notifier_signature(OTHER, SECRET, "evt_1", 1700000000, BODY);
    assert_non_null(two);
    assert_string_equal(two, SIG_OTHER " " SIG_SECRET); /* new first, then the rotated-away one */
    free(two);
    char *changed = notifier_signature(SECRET, NULL, "evt_2", 1700000000, BODY);
    assert_string_not_equal(changed, SIG_SECRET);
    free(changed);
    assert_null(notifier_signature("whsec_not base64!", NULL, "evt_1", 1700000000, BODY));
}

static void test_secrets_sealed(void **state)
{
    (void)state;
    notify_keys keys = {0}, other = {0};
    char err[256], secret[NOTIFY_SECRET_LEN + 1], back[NOTIFY_SECRET_LEN + 1];
    unsigned char *sealed = NULL;
    size_t len = 0;
    assert_int_equal(secrets_key_generate(&keys.current), 0);
    assert_int_equal(secrets_key_generate(&other.current), 0);
    assert_int_equal(notify_secret_new(secret), 0);
    assert_int_equal(strlen(secret), NOTIFY_SECRET_LEN);
    assert_memory_equal(secret, "whsec_", 6);
    /* It signs: the official form takes it. */
    char *sig = notifier_signature(secret, NULL, "evt_1", 1, "{}");
    assert_non_null(sig);
    free(sig);
    assert_int_equal(notify_secret_seal(&keys, "we_1", secret, &sealed, &len, err, sizeof err), 0);
    assert_null(memmem(sealed, len, secret + 6, 20)); /* not in clear */
    assert_int_equal(notify_secret_open(&keys, "we_1", sealed, len, back, err, sizeof err), 0);
    assert_string_equal(back, secret);
    /* Bound to its endpoint, and to the key. */
    assert_int_not_equal(notify_secret_open(&keys, "we_2", sealed, len, back, err, sizeof err), 0);
    assert_int_not_equal(notify_secret_open(&other, "we_1", sealed, len, back, err, sizeof err), 0);
    assert_null(strstr(err, secret + 6));
    /* During a master key rotation the previous key still opens it. */
    other.previous = keys.current;
    other.have_previous = true;
    assert_int_equal(notify_secret_open(&other, "we_1", sealed, len, back, err, sizeof err), 0);
    assert_string_equal(back, secret);
    sealed[len - 1] ^= 1;
    assert_int_not_equal(notify_secret_open(&keys, "we_1", sealed, len, back, err, sizeof err), 0);
    free(sealed);
    char again[NOTIFY_SECRET_LEN + 1];
    assert_int_equal(notify_secret_new(again), 0);
    assert_string_not_equal(again, secret);
}

static void test_retry_schedule(void **state)
{
    (void)state;
    config cfg = {.notify_retry_count = 3, .notify_retry_s = {5, 300, 1800}};
    assert_int_equal(notifier_retry_ms(&cfg, 1), 5000);
    assert_int_equal(notifier_retry_ms(&cfg, 2), 300000);
    assert_int_equal(notifier_retry_ms(&cfg, 3), 1800000);
    assert_int_equal(notifier_retry_ms(&cfg, 4), -1); /* then failed */
    assert_int_equal(notifier_retry_ms(&cfg, 0), -1);
}

/* The notify_* settings: defaults, values, and refusals that name the setting. */
static void test_settings(void **state)
{
    (void)state;
    char path[] = "/tmp/pagoflex-notify-cfg-XXXXXX", err[512];
    config c;
    static const struct {
        const char *text, *want; /* want NULL: accepted */
    } cases[] = {
        {"port = 9000;\n", NULL},
        {"notify_retry_schedule_s = [1, 1, 2];\nnotify_allow_private_targets = true;\n"
         "notify_timeout_ms = 2000;\nnotify_endpoint_max_in_flight = 2;\n",
         NULL},
        {"notify_retry_schedule_s = [];\n", NULL}, /* one attempt, then failed */
        {"notify_retry_schedule_s = [300, 5];\n", "'notify_retry_schedule_s' element 2"},
        {"notify_retry_schedule_s = [0];\n", "'notify_retry_schedule_s' element 1"},
        {"notify_retry_schedule_s = [\"5\"];\n", "'notify_retry_schedule_s' element 1"},
        {"notify_retry_schedule_s = 5;\n", "'notify_retry_schedule_s' must be a list"},
        {"notify_retry_schedule_s = [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1];\n", "at most 16"},
        {"notify_timeout_ms = 10;\n", "'notify_timeout_ms' is 10"},
        {"notify_allow_private_targets = 1;\n", "'notify_allow_private_targets' must be true or false"},
        {"notify_max_in_flight = 0;\n", "'notify_max_in_flight' is 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        strcpy(path, "/tmp/pagoflex-notify-cfg-XXXXXX");
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, cases[i].text, strlen(cases[i].text)), (ssize_t)strlen(cases[i].text));
        close(fd);
        int rc = config_load(path, &c, err, sizeof err);
        unlink(path);
        if (!cases[i].want) {
            if (rc != 0)
                fail_msg("%s refused: %s", cases[i].text, err);
            if (i == 0) {
                assert_int_equal(c.notify_timeout_ms, 15000);
                assert_int_equal(c.notify_retry_count, 7);
                assert_int_equal(notifier_retry_ms(&c, 7), 50400L * 1000);
                assert_int_equal(c.notify_allow_private_targets, 0);
                assert_int_equal(c.notify_endpoint_max_in_flight, 4);
                assert_int_equal(c.notify_secret_grace_s, 86400);
                assert_int_equal(c.notify_event_retention_days, 30);
            } else if (i == 1) {
                assert_int_equal(c.notify_retry_count, 3);
                assert_int_equal(notifier_retry_ms(&c, 3), 2000);
                assert_int_equal(c.notify_allow_private_targets, 1);
            } else {
                assert_int_equal(notifier_retry_ms(&c, 1), -1);
            }
            config_free(&c);
        } else {
            assert_int_not_equal(rc, 0);
            if (!strstr(err, cases[i].want))
                fail_msg("%s: error '%s' lacks '%s'", cases[i].text, err, cases[i].want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_signature_known_answers),
        cmocka_unit_test(test_secrets_sealed),
        cmocka_unit_test(test_retry_schedule),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
