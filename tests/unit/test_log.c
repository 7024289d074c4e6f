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

#include "log.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_bytes_cannot_forge_a_record),
        cmocka_unit_test(test_backslash_and_non_ascii_are_escaped),
        cmocka_unit_test(test_who_is_escaped_too),
        cmocka_unit_test(test_long_message_is_cut_on_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
