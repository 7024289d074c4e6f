/* Unit tests for the host configuration file (host/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char path[64];

static void write_config(const char *text)
{
    strcpy(path, "/tmp/pagoflex-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int cleanup(void **unused)
{
    (void)unused;
    unlink(path);
    unsetenv("PAGOFLEX_PORT");
    unsetenv("PAGOFLEX_DATABASE");
    return 0;
}

static void test_defaults_and_relative_paths(void **unused)
{
    (void)unused;
    write_config("port = 9000;\nplugin_dir = \"plugins\";\nmaster_key_file = \"/etc/pf/master.key\";\n");
    config c;
    char err[512];
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.listen_address, "127.0.0.1");
    assert_string_equal(c.public_url, "http://127.0.0.1:9000");
    assert_string_equal(c.plugin_dir, "/tmp/plugins"); /* relative to the config's folder */
    assert_string_equal(c.master_key_file, "/etc/pf/master.key");
    assert_int_equal(c.max_body_bytes, 65536);
    assert_int_equal(c.api_key_count, 0);
    assert_true(c.workers >= 1);
    assert_int_equal(c.quarantine_after, 3);
    config_free(&c);
}

static void test_environment_overrides(void **unused)
{
    (void)unused;
    write_config("port = 9000;\ndatabase = \"dbname=a\";\n");
    setenv("PAGOFLEX_PORT", "9100", 1);
    setenv("PAGOFLEX_DATABASE", "dbname=b", 1);
    config c;
    char err[512];
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.port, 9100);
    assert_string_equal(c.database, "dbname=b");
    config_free(&c);
    setenv("PAGOFLEX_PORT", "ninety", 1);
    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "PAGOFLEX_PORT=ninety"));
}

static void expect_error(const char *text, const char *needle)
{
    write_config(text);
    config c;
    memset(&c, 0x5a, sizeof c);
    config before = c;
    char err[512] = "";
    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_non_null(strstr(err, path));
    assert_memory_equal(&c, &before, sizeof c); /* untouched on error */
    unlink(path);
}

static void test_errors_name_line_and_setting(void **unused)
{
    (void)unused;
    expect_error("port = \"eighty\";\n", "'port' must be an integer");
    expect_error("\n\nport = 70000;\n", "line 3: setting 'port' is 70000");
    expect_error("threads = 0;\n", "'threads'");
    expect_error("plugin_dir = 5;\n", "'plugin_dir' must be a string");
    expect_error("port = ;\n", "line 1");
    expect_error("api_key_sha256 = [\"abc\"];\n", "api_key_sha256[0] must be 64 lower-case hex digits");
    expect_error("log_level = \"loud\";\n", "log_level");
    config c;
    char err[512];
    assert_int_equal(config_load("/nonexistent/pagoflex.cfg", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read it"));
}

static void expect_error_all(const char *text, const char *const *needles)
{
    for (size_t i = 0; needles[i]; i++)
        expect_error(text, needles[i]);
}

static void expect_loads(const char *text)
{
    write_config(text);
    config c;
    char err[512] = "";
    if (config_load(path, &c, err, sizeof err) != 0)
        fail_msg("'%s' refused: %s", text, err);
    config_free(&c);
    unlink(path);
}

/* Settings that cannot be safe are refused at start-up, the message naming
 * both settings, their values and the bound: a reconciler lease shorter
 * than the bank calls of one claimed payment (a status query and a re-send,
 * bank_timeout_ms each) lets a second claimer work it at the same time; a
 * created row or an unanswered Idempotency-Key younger than one bank call
 * may still be in its first call. */
static void test_unsafe_timings_refused(void **unused)
{
    (void)unused;
    expect_error_all("bank_timeout_ms = 10000;\nreconcile_lease_ms = 15000;\n",
                     (const char *const[]){"'reconcile_lease_ms' (15000)", "'bank_timeout_ms' (10000)",
                                           "20500", NULL});
    expect_error_all("bank_timeout_ms = 10000;\nrecover_after_ms = 5000;\n",
                     (const char *const[]){"'recover_after_ms' (5000)", "'bank_timeout_ms' (10000)",
                                           "10500", NULL});
    expect_error_all("bank_timeout_ms = 10000;\nidempotency_stale_ms = 10000;\n",
                     (const char *const[]){"'idempotency_stale_ms' (10000)",
                                           "'bank_timeout_ms' (10000)", "10500", NULL});
    /* The default lease (60000) is too short for a 30 s bank timeout. */
    expect_error_all("bank_timeout_ms = 30000;\nrecover_after_ms = 60000;\n",
                     (const char *const[]){"'reconcile_lease_ms' (60000)", "'bank_timeout_ms' (30000)",
                                           NULL});
    /* Exactly at the bounds is enough. */
    expect_loads("bank_timeout_ms = 10000;\nreconcile_lease_ms = 20500;\nrecover_after_ms = 10500;\n"
                 "idempotency_stale_ms = 10500;\n");
    expect_loads("bank_timeout_ms = 1000;\nreconcile_lease_ms = 2500;\nrecover_after_ms = 1500;\n"
                 "idempotency_stale_ms = 1500;\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults_and_relative_paths, cleanup),
        cmocka_unit_test_teardown(test_environment_overrides, cleanup),
        cmocka_unit_test_teardown(test_errors_name_line_and_setting, cleanup),
        cmocka_unit_test_teardown(test_unsafe_timings_refused, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
