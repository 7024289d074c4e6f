/* Unit tests for host/textcheck.c: text we can store, and copies safe to show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "textcheck.h"

static pagoflex_arena *arena;

static int setup(void **unused)
{
    (void)unused;
    arena = arena_new();
    return arena ? 0 : -1;
}

static int teardown(void **unused)
{
    (void)unused;
    arena_free(arena);
    return 0;
}

static void test_utf8(void **unused)
{
    (void)unused;
    assert_true(textcheck_utf8("pay_abc", 7));
    assert_true(textcheck_utf8("caf\xc3\xa9\n", 6));
    assert_true(textcheck_utf8("", 0));
    assert_false(textcheck_utf8("\xff", 1));
    assert_false(textcheck_utf8("caf\xc3", 4));      /* cut inside a character */
    assert_false(textcheck_utf8("\xc0\xaf", 2));     /* overlong */
    assert_false(textcheck_utf8("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(textcheck_utf8("a\0b", 3));
    assert_false(textcheck_utf8(NULL, 0));
}

static void test_printable(void **unused)
{
    (void)unused;
    assert_true(textcheck_printable("caf\xc3\xa9", 5));
    assert_false(textcheck_printable("a\nb", 3));
    assert_false(textcheck_printable("a\x7f", 2));
    assert_false(textcheck_printable("\xff", 1));
}

static void test_shown_keeps_clean_text(void **unused)
{
    (void)unused;
    assert_string_equal(textcheck_shown(arena, "/v1/caf\xc3\xa9", 100), "/v1/caf\xc3\xa9");
    assert_string_equal(textcheck_shown(arena, NULL, 10), "(null)");
}

static void test_shown_escapes_bad_bytes(void **unused)
{
    (void)unused;
    assert_string_equal(textcheck_shown(arena, "/nope\xff", 100), "/nope\\xff");
    assert_string_equal(textcheck_shown(arena, "a\nforged", 100), "a\\x0aforged");
    /* valid characters beside a bad byte stay as they are */
    assert_string_equal(textcheck_shown(arena, "\xc3\xa9\xc3", 100), "\xc3\xa9\\xc3");
}

static void test_shown_never_cuts_inside_a_character(void **unused)
{
    (void)unused;
    /* "a" then e-acute (2 bytes): a cut at 2 bytes falls inside it */
    assert_string_equal(textcheck_shown(arena, "a\xc3\xa9z", 2), "a...");
    assert_string_equal(textcheck_shown(arena, "a\xc3\xa9z", 3), "a\xc3\xa9...");
    assert_string_equal(textcheck_shown(arena, "abc", 3), "abc");
    assert_string_equal(textcheck_shown(arena, "\xe2\x82\xac", 1), "...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_shown_keeps_clean_text),
        cmocka_unit_test(test_shown_escapes_bad_bytes),
        cmocka_unit_test(test_shown_never_cuts_inside_a_character),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
