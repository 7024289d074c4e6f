/* Unit tests for host/log.c: whatever a message holds, one record is one
 * line, and every byte outside printable ASCII (and the backslash) is
 * written as \xNN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "log.h"
#include "reqid.h"

/* Run log_msg with stderr sent to a temporary file; return what it wrote
 * (malloc'd, NUL-terminated). */
static char *logged(const char *who, const char *text)
{
    char path[] = "/tmp/pagoflex-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    log_msg(PAGOFLEX_LOG_WARN, who, "event=%s", text);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len > 0);
    char *buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    return buf;
}

/* The message part of a record: what follows "] ". */
static const char *message_of(const char *line)
{
    const char *m = strstr(line, "] ");
    assert_non_null(m);
    return m + 2;
}

static void test_control_bytes_cannot_forge_a_record(void **unused)
{
    (void)unused;
    char *out = logged(NULL, "evt_1\n2026-01-01T00:00:00.000Z info  [1] forged\r\x1b[31m\x07");
    /* One record: exactly one newline, at the end. */
    assert_non_null(strchr(out, '\n'));
    assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
    assert_string_equal(message_of(out),
                        "event=evt_1\\x0a2026-01-01T00:00:00.000Z info  [1] forged\\x0d\\x1b[31m\\x07\n");
    free(out);
}

static void test_backslash_and_non_ascii_are_escaped(void **unused)
{
    (void)unused;
    /* A bank's literal "\x0a" must not read as an escaped newline. */
    char *out = logged(NULL, "a\\x0a caf\xc3\xa9 \x7f");
    assert_string_equal(message_of(out), "event=a\\x5cx0a caf\\xc3\\xa9 \\x7f\n");
    free(out);
}

static void test_who_is_escaped_too(void **unused)
{
    (void)unused;
    char *out = logged("plug\nin", "x");
    assert_string_equal(message_of(out), "plug\\x0ain: event=x\n");
    free(out);
}

static void test_long_message_is_cut_on_one_line(void **unused)
{
    (void)unused;
    char big[5000];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *out = logged(NULL, big);
    size_t len = strlen(out);
    assert_true(len <= 2048);
    assert_int_equal(out[len - 1], '\n');
    assert_null(memchr(out, '\n', len - 1));
    /* An escape is never cut in the middle. */
    const char *msg = message_of(out);
    size_t mlen = strlen(msg) - 1;
    assert_int_equal((mlen - strlen("event=")) % 4, 0);
    free(out);
}

/* A line written while a request is current names its id; in JSON mode
 * each line is one JSON object whatever the message holds. */
static void test_request_id_and_json_lines(void **unused)
{
    (void)unused;
    reqid_set_current("req-42", NULL);
    char *out = logged(NULL, "x");
    assert_non_null(strstr(out, "event=x request_id=req-42\n"));
    free(out);
    log_set_json(1);
    out = logged("plug\"in", "a\"b\\c\n\x01\xc3\xa9");
    log_set_json(0);
    reqid_set_current(NULL, NULL);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(doc, "who")), "plug\"in");
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), "req-42");
    /* control bytes and non-ASCII come out as \u00NN, one per byte */
    assert_string_equal(json_string_value(json_object_get(doc, "msg")),
                        "event=a\"b\\c\n\x01\u00c3\u00a9");
    assert_null(memchr(out, '\n', strlen(out) - 1));
    json_decref(doc);
    free(out);
}

/* Access-style lines: fields after the message; an empty value is "-". */
static void test_fields(void **unused)
{
    (void)unused;
    char path[] = "/tmp/pagoflex-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    log_field f[] = {{.name = "method", .text = "GET"}, {.name = "status", .num = 201},
                     {.name = "key", .text = ""}};
    log_fields(PAGOFLEX_LOG_INFO, "access", f, 3);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    char buf[512] = "";
    assert_true(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    assert_non_null(strstr(buf, "] access method=GET status=201 key=-\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_bytes_cannot_forge_a_record),
        cmocka_unit_test(test_backslash_and_non_ascii_are_escaped),
        cmocka_unit_test(test_who_is_escaped_too),
        cmocka_unit_test(test_long_message_is_cut_on_one_line),
        cmocka_unit_test(test_request_id_and_json_lines),
        cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
