/* Unit tests for the host configuration file (host/config.c). */
#include <libgen.h>
#include <regex.h>
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

static void test_unknown_setting_refused_with_nearest_name(void **unused)
{
    (void)unused;
    /* The typo of issue 10: it used to start on 8080 without a word. */
    write_config("listen = \"127.0.0.1\";\n\nprot = 28099;\n");
    config c;
    char err[512] = "", want[256];
    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: unknown setting \"prot\"; did you mean \"port\"?", path);
    assert_string_equal(err, want);
    unlink(path);
    expect_error("reconcile_worker = 1;\n", "did you mean \"reconcile_workers\"?");
    expect_error("reconcile_interval = 7;\n", "did you mean \"reconcile_interval_ms\"?");
    expect_error("webhook_event_retention = 7;\n", "did you mean \"webhook_event_retention_days\"?");
    expect_error("threads = 4;\nloglevel = \"info\";\n", ":2: unknown setting \"loglevel\"; did you mean \"log_level\"?");
    /* Nothing close: no guess, but where every setting is listed. */
    write_config("colour = \"blue\";\n");
    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: unknown setting \"colour\""));
    assert_null(strstr(err, "did you mean"));
    assert_non_null(strstr(err, "etc/pagoflex.cfg"));
    /* A group is a setting too. */
    expect_error("port = 9000;\nextra = { port = 1; };\n", ":2: unknown setting \"extra\"");
}

/* Every setting etc/pagoflex.cfg documents, the commented-out ones too, is
 * one the host reads: the example cannot drift into names it refuses. */
static void test_documented_settings_are_known(void **unused)
{
    (void)unused;
    char src[4096], *dir = strdup(__FILE__);
    snprintf(src, sizeof src, "%s/../../etc/pagoflex.cfg", dirname(dir));
    free(dir);
    FILE *in = fopen(src, "r");
    assert_non_null(in);
    char text[32768] = "", line[1024];
    size_t n = 0, uncommented = 0;
    regex_t commented;
    assert_int_equal(regcomp(&commented, "^# [a-z_]+ = .*;", REG_EXTENDED | REG_NOSUB), 0);
    while (fgets(line, sizeof line, in)) {
        const char *l = line;
        /* "# name = value;" is a documented setting left at its default. */
        if (regexec(&commented, l, 0, NULL, 0) == 0) {
            l += 2;
            uncommented++;
        }
        size_t len = strlen(l);
        assert_true(n + len < sizeof text);
        memcpy(text + n, l, len + 1);
        n += len;
    }
    fclose(in);
    regfree(&commented);
    assert_true(uncommented >= 3); /* public_url, previous_master_key_file, trusted_keys, ... */
    write_config(text);
    config c;
    char err[512] = "";
    if (config_load(path, &c, err, sizeof err) != 0)
        fail_msg("etc/pagoflex.cfg does not load: %s", err);
    config_free(&c);
}

static void test_retention_and_log_file_settings(void **unused)
{
    (void)unused;
    write_config("port = 9000;\n");
    config c;
    char err[512];
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_null(c.log_file); /* stderr */
    assert_int_equal(c.webhook_event_retention_days, 30);
    assert_int_equal(c.payment_history_retention_days, 0); /* history is kept for audit */
    assert_int_equal(c.janitor_interval_ms, 5000);
    config_free(&c);
    write_config("log_file = \"pagoflexd.log\";\nwebhook_event_retention_days = 0;\n"
                 "payment_history_retention_days = 400;\njanitor_interval_ms = 250;\n");
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_string_equal(c.log_file, "/tmp/pagoflexd.log"); /* relative to the config's folder */
    assert_int_equal(c.webhook_event_retention_days, 0);
    assert_int_equal(c.payment_history_retention_days, 400);
    assert_int_equal(c.janitor_interval_ms, 250);
    config_free(&c);
    expect_error("janitor_interval_ms = 5;\n", "'janitor_interval_ms' is 5");
    expect_error("webhook_event_retention_days = -1;\n", "'webhook_event_retention_days' is -1");
}

/* The access log (a line per request) is off unless asked for: the hot
 * path writes no info line per request by default (issue 16). */
static void test_access_log_setting(void **unused)
{
    (void)unused;
    write_config("port = 9000;\n");
    config c;
    char err[512];
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.access_log, 0);
    config_free(&c);
    write_config("access_log = true;\n");
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.access_log, 1);
    config_free(&c);
    expect_error("access_log = \"yes\";\n", "'access_log' must be true or false");
    expect_error("access_log = 1;\n", "'access_log' must be true or false");
}

/* Group commit (issue 16): on by default, 0 turns it off, bounds refused
 * with the setting's name. */
static void test_db_batch_settings(void **unused)
{
    (void)unused;
    write_config("port = 9000;\n");
    config c;
    char err[512];
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.db_batch_max, 64);
    assert_int_equal(c.db_batch_connections, 2);
    config_free(&c);
    write_config("db_batch_max = 0;\ndb_batch_connections = 4;\n");
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.db_batch_max, 0);
    assert_int_equal(c.db_batch_connections, 4);
    config_free(&c);
    expect_error("db_batch_max = 65;\n", "'db_batch_max' is 65");
    expect_error("db_batch_max = -1;\n", "'db_batch_max' is -1");
    expect_error("db_batch_connections = 0;\n", "'db_batch_connections' is 0");
}

static void test_connector_settings(void **unused)
{
    (void)unused;
    write_config("connector_settings = {\n  banco_x = { BANCOX_BASE_URL = \"http://127.0.0.1:1\"; MODE = \"test\"; };\n"
                 "  acme = { ACME_REGION = \"eu\"; };\n};\n");
    config c;
    char err[512] = "";
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.connector_setting_count, 3);
    assert_string_equal(c.connector_settings[0].plugin, "banco_x");
    assert_string_equal(c.connector_settings[0].name, "BANCOX_BASE_URL");
    assert_string_equal(c.connector_settings[0].value, "http://127.0.0.1:1");
    assert_string_equal(c.connector_settings[2].plugin, "acme");
    assert_string_equal(c.connector_settings[2].value, "eu");
    config_free(&c);
    expect_error("connector_settings = { banco_x = { TIMEOUT_MS = 5000; }; };\n",
                 "connector_settings.banco_x.TIMEOUT_MS must be a string");
    expect_error("connector_settings = { banco_x = \"x\"; };\n", "connector_settings.banco_x must be a group");
    expect_error("connector_settings = 1;\n", "'connector_settings' must be a group");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults_and_relative_paths, cleanup),
        cmocka_unit_test_teardown(test_environment_overrides, cleanup),
        cmocka_unit_test_teardown(test_errors_name_line_and_setting, cleanup),
        cmocka_unit_test_teardown(test_unsafe_timings_refused, cleanup),
        cmocka_unit_test_teardown(test_unknown_setting_refused_with_nearest_name, cleanup),
        cmocka_unit_test_teardown(test_documented_settings_are_known, cleanup),
        cmocka_unit_test_teardown(test_retention_and_log_file_settings, cleanup),
        cmocka_unit_test_teardown(test_access_log_setting, cleanup),
        cmocka_unit_test_teardown(test_db_batch_settings, cleanup),
        cmocka_unit_test_teardown(test_connector_settings, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
