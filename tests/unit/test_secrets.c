/* Unit tests for encrypted credential files (host/secrets.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secrets.h"

#define PLUGIN "banco_x"
#define SECRET_VALUE "sk_live_9f8e7d6c5b4a"
#define SECRET_VALUE2 "whsec_0a1b2c3d4e5f"
#define KEY1_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY2_HEX "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"

static const char PLAIN[] = "BANCOX_API_KEY = \"" SECRET_VALUE "\";\n"
                            "BANCOX_SECRET = \"" SECRET_VALUE2 "\";\n";

/* No error may ever show a secret value or a key. */
static void assert_err_clean(const char *err)
{
    assert_true(err[0] != '\0');
    assert_null(strstr(err, SECRET_VALUE));
    assert_null(strstr(err, SECRET_VALUE2));
    assert_null(strstr(err, KEY1_HEX));
    assert_null(strstr(err, KEY2_HEX));
    assert_null(strstr(err, "0001020304050607")); /* not even a prefix of the key */
    assert_null(strstr(err, "f0e1d2c3b4a59687"));
    assert_null(strchr(err, '\n'));
}

static void key_from(const char *hex, secrets_key *key)
{
    char err[256];
    assert_int_equal(secrets_key_from_hex(hex, key, err, sizeof err), 0);
}

/* A temporary file holding `data`, with `mode`. Caller unlinks and frees. */
static char *tmp_file(const void *data, size_t len, mode_t mode)
{
    char *path = strdup("/tmp/test_secrets.XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

static void tmp_remove(char *path)
{
    unlink(path);
    free(path);
}

static void encrypt_plain(const secrets_key *key, const char *plugin, const char *plain,
                          unsigned char **out, size_t *out_len)
{
    char err[256];
    assert_int_equal(secrets_encrypt(key, plugin, (const unsigned char *)plain, strlen(plain), out,
                                     out_len, err, sizeof err),
                     0);
}

/* Decrypt and expect failure; return the message in err. */
static void expect_decrypt_fail(const secrets_key *key, const char *plugin,
                                const unsigned char *in, size_t len, char *err, size_t errlen)
{
    unsigned char *plain = (unsigned char *)"untouched";
    size_t plain_len = 12345;
    err[0] = '\0';
    assert_int_equal(secrets_decrypt(key, plugin, in, len, &plain, &plain_len, err, errlen), -1);
    assert_string_equal((const char *)plain, "untouched");
    assert_int_equal(plain_len, 12345);
    assert_err_clean(err);
}

static void test_round_trip(void **unused)
{
    (void)unused;
    secrets_key key;
    unsigned char *enc = NULL, *plain = NULL;
    size_t enc_len = 0, plain_len = 0;
    char err[256];
    key_from(KEY1_HEX, &key);
    encrypt_plain(&key, PLUGIN, PLAIN, &enc, &enc_len);
    assert_int_equal(enc_len, SECRETS_HEADER_LEN + strlen(PLAIN) + SECRETS_TAG_LEN);
    assert_memory_equal(enc, "PGFXCRED\x01", 9);
    assert_memory_equal(enc + 9, key.id, SECRETS_KEY_ID_LEN);
    /* The plaintext is not visible in the file. */
    assert_null(memmem(enc, enc_len, SECRET_VALUE, strlen(SECRET_VALUE)));
    assert_int_equal(secrets_decrypt(&key, PLUGIN, enc, enc_len, &plain, &plain_len, err,
                                     sizeof err),
                     0);
    assert_int_equal(plain_len, strlen(PLAIN));
    assert_string_equal((char *)plain, PLAIN);
    free(plain);

    /* Two encryptions of the same text differ (fresh nonce). */
    unsigned char *enc2 = NULL;
    size_t enc2_len = 0;
    encrypt_plain(&key, PLUGIN, PLAIN, &enc2, &enc2_len);
    assert_int_equal(enc2_len, enc_len);
    assert_true(memcmp(enc, enc2, enc_len) != 0);
    free(enc2);
    free(enc);

    /* An empty document round-trips too. */
    encrypt_plain(&key, PLUGIN, "", &enc, &enc_len);
    assert_int_equal(secrets_decrypt(&key, PLUGIN, enc, enc_len, &plain, &plain_len, err,
                                     sizeof err),
                     0);
    assert_int_equal(plain_len, 0);
    assert_string_equal((char *)plain, "");
    free(plain);
    free(enc);
}

static void test_key_id_is_sha256_prefix(void **unused)
{
    (void)unused;
    secrets_key key;
    char id[2 * SECRETS_KEY_ID_LEN + 1];
    key_from(KEY1_HEX, &key);
    secrets_key_id_hex(&key, id);
    /* sha256 of bytes 00..1f */
    assert_string_equal(id, "630dcd2966c43366");
}

static void test_wrong_key(void **unused)
{
    (void)unused;
    secrets_key k1, k2;
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    char err[512], id1[17], id2[17];
    key_from(KEY1_HEX, &k1);
    key_from(KEY2_HEX, &k2);
    secrets_key_id_hex(&k1, id1);
    secrets_key_id_hex(&k2, id2);
    encrypt_plain(&k1, PLUGIN, PLAIN, &enc, &enc_len);
    expect_decrypt_fail(&k2, PLUGIN, enc, enc_len, err, sizeof err);
    assert_non_null(strstr(err, "another master key"));
    assert_non_null(strstr(err, id1));
    assert_non_null(strstr(err, id2));

    /* Same key id but another key (forged header): the tag catches it. */
    memcpy(enc + 9, k2.id, SECRETS_KEY_ID_LEN);
    expect_decrypt_fail(&k2, PLUGIN, enc, enc_len, err, sizeof err);
    assert_non_null(strstr(err, "authentication failed"));
    free(enc);
}

static void test_flipped_byte_anywhere(void **unused)
{
    (void)unused;
    secrets_key key;
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    char err[512];
    key_from(KEY1_HEX, &key);
    encrypt_plain(&key, PLUGIN, PLAIN, &enc, &enc_len);
    for (size_t i = 0; i < enc_len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            enc[i] ^= (unsigned char)(1u << bit);
            expect_decrypt_fail(&key, PLUGIN, enc, enc_len, err, sizeof err);
            enc[i] ^= (unsigned char)(1u << bit);
            const char *want;
            if (i < 8)
                want = "bad magic";
            else if (i == 8)
                want = "unsupported version";
            else if (i < 17)
                want = "another master key";
            else /* nonce, ciphertext, tag */
                want = "authentication failed";
            if (!strstr(err, want))
                fail_msg("byte %zu flipped: expected \"%s\", got \"%s\"", i, want, err);
        }
    }
    /* Undamaged, it still decrypts. */
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(secrets_decrypt(&key, PLUGIN, enc, enc_len, &plain, &plain_len, err,
                                     sizeof err),
                     0);
    free(plain);
    free(enc);
}

static void test_other_plugin(void **unused)
{
    (void)unused;
    secrets_key key;
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    char err[512];
    key_from(KEY1_HEX, &key);
    encrypt_plain(&key, PLUGIN, PLAIN, &enc, &enc_len);
    expect_decrypt_fail(&key, "banco_y", enc, enc_len, err, sizeof err);
    assert_non_null(strstr(err, "another plugin"));
    expect_decrypt_fail(&key, "banco_x2", enc, enc_len, err, sizeof err);
    expect_decrypt_fail(&key, "banco_", enc, enc_len, err, sizeof err);
    expect_decrypt_fail(&key, "", enc, enc_len, err, sizeof err);
    free(enc);
}

static void test_truncated_and_extended(void **unused)
{
    (void)unused;
    secrets_key key;
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    char err[512];
    key_from(KEY1_HEX, &key);
    encrypt_plain(&key, PLUGIN, PLAIN, &enc, &enc_len);
    for (size_t len = 0; len < enc_len; len++) {
        expect_decrypt_fail(&key, PLUGIN, enc, len, err, sizeof err);
        if (len > 0 && len < SECRETS_HEADER_LEN + SECRETS_TAG_LEN &&
            !strstr(err, "too short"))
            fail_msg("length %zu: expected \"too short\", got \"%s\"", len, err);
    }
    unsigned char *longer = malloc(enc_len + 1);
    assert_non_null(longer);
    memcpy(longer, enc, enc_len);
    longer[enc_len] = 0;
    expect_decrypt_fail(&key, PLUGIN, longer, enc_len + 1, err, sizeof err);
    assert_non_null(strstr(err, "authentication failed"));
    free(longer);

    /* Not a credentials file at all. */
    const char *text = "BANCOX_API_KEY = \"" SECRET_VALUE "\"; # forgot to encrypt";
    expect_decrypt_fail(&key, PLUGIN, (const unsigned char *)text, strlen(text), err, sizeof err);
    assert_non_null(strstr(err, "not a Pagoflex credentials file"));
    free(enc);
}

static void test_key_hex_errors(void **unused)
{
    (void)unused;
    secrets_key key;
    char err[512];
    memset(&key, 0xAA, sizeof key);
    assert_int_equal(secrets_key_from_hex(KEY1_HEX "00", &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "66 characters"));
    assert_err_clean(err);
    char bad[] = KEY1_HEX;
    bad[0] = 'g';
    assert_int_equal(secrets_key_from_hex(bad, &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a hex digit at position 1"));
    assert_err_clean(err);
    assert_int_equal(secrets_key_from_hex("", &key, err, sizeof err), -1);
    assert_err_clean(err);
    for (size_t i = 0; i < sizeof key; i++) /* outputs untouched on failure */
        assert_int_equal(((unsigned char *)&key)[i], 0xAA);
    /* Whitespace around is fine; upper case is fine. */
    secrets_key a, b;
    key_from("  \n" KEY1_HEX "\r\n", &a);
    key_from("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", &b);
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_key_file_modes(void **unused)
{
    (void)unused;
    secrets_key key, want;
    char err[512];
    key_from(KEY1_HEX, &want);
    char *path = tmp_file(KEY1_HEX "\n", strlen(KEY1_HEX) + 1, 0644);

    assert_int_equal(secrets_key_from_file(path, &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by group or others (mode 0644)"));
    assert_non_null(strstr(err, "chmod 600"));
    assert_non_null(strstr(err, path));
    assert_err_clean(err);

    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(secrets_key_from_file(path, &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "mode 0640"));
    assert_int_equal(chmod(path, 0602), 0);
    assert_int_equal(secrets_key_from_file(path, &key, err, sizeof err), -1);

    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(secrets_key_from_file(path, &key, err, sizeof err), 0);
    assert_memory_equal(&key, &want, sizeof key);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(secrets_key_from_file(path, &key, err, sizeof err), 0);
    tmp_remove(path);

    /* Malformed contents: say what is wrong, never show the contents. */
    path = tmp_file(KEY1_HEX KEY1_HEX, 2 * strlen(KEY1_HEX), 0600);
    assert_int_equal(secrets_key_from_file(path, &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "128 characters"));
    assert_err_clean(err);
    tmp_remove(path);

    /* Not a regular file; missing file. */
    assert_int_equal(secrets_key_from_file("/tmp", &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(secrets_key_from_file("/nonexistent/master.key", &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/master.key"));
}

static void test_env_precedence(void **unused)
{
    (void)unused;
    secrets_key key, k1, k2;
    char err[512];
    key_from(KEY1_HEX, &k1);
    key_from(KEY2_HEX, &k2);
    char *path = tmp_file(KEY2_HEX "\n", strlen(KEY2_HEX) + 1, 0600);
    unsetenv(SECRETS_ENV_KEY);
    unsetenv(SECRETS_ENV_KEY_FILE);

    /* Nothing given. */
    assert_int_equal(secrets_key_load(NULL, &key, err, sizeof err), -1);
    assert_non_null(strstr(err, SECRETS_ENV_KEY_FILE));

    /* The file alone. */
    assert_int_equal(secrets_key_load(path, &key, err, sizeof err), 0);
    assert_memory_equal(&key, &k2, sizeof key);

    /* $PAGOFLEX_MASTER_KEY_FILE when no file is named. */
    setenv(SECRETS_ENV_KEY_FILE, path, 1);
    assert_int_equal(secrets_key_load(NULL, &key, err, sizeof err), 0);
    assert_memory_equal(&key, &k2, sizeof key);

    /* $PAGOFLEX_MASTER_KEY wins over both. */
    setenv(SECRETS_ENV_KEY, KEY1_HEX, 1);
    assert_int_equal(secrets_key_load(path, &key, err, sizeof err), 0);
    assert_memory_equal(&key, &k1, sizeof key);
    assert_int_equal(secrets_key_load(NULL, &key, err, sizeof err), 0);
    assert_memory_equal(&key, &k1, sizeof key);

    /* A bad env key is reported as such, without its value. */
    setenv(SECRETS_ENV_KEY, KEY1_HEX "zz", 1);
    assert_int_equal(secrets_key_load(path, &key, err, sizeof err), -1);
    assert_non_null(strstr(err, "$" SECRETS_ENV_KEY));
    assert_err_clean(err);

    unsetenv(SECRETS_ENV_KEY);
    unsetenv(SECRETS_ENV_KEY_FILE);
    tmp_remove(path);
}

/* Encrypt `plain` for PLUGIN into a temp file; caller removes it. */
static char *enc_file(const secrets_key *key, const char *plain)
{
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    encrypt_plain(key, PLUGIN, plain, &enc, &enc_len);
    char *path = tmp_file(enc, enc_len, 0600);
    free(enc);
    return path;
}

static void test_load_credentials(void **unused)
{
    (void)unused;
    secrets_key key;
    pagoflex_credentials *creds = NULL;
    char err[512];
    key_from(KEY1_HEX, &key);
    char *path = enc_file(&key, PLAIN);
    assert_int_equal(secrets_load_credentials(&key, path, PLUGIN, &creds, err, sizeof err), 0);
    assert_non_null(creds);
    assert_int_equal(creds->count, 2);
    assert_string_equal(creds_get(creds, "BANCOX_API_KEY"), SECRET_VALUE);
    assert_string_equal(creds_get(creds, "BANCOX_SECRET"), SECRET_VALUE2);
    creds_free(creds);

    /* Wrong plugin through the file API: refused, path named. */
    creds = (pagoflex_credentials *)0x1;
    assert_int_equal(secrets_load_credentials(&key, path, "banco_y", &creds, err, sizeof err), -1);
    assert_ptr_equal(creds, (pagoflex_credentials *)0x1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "authentication failed"));
    assert_err_clean(err);
    tmp_remove(path);

    /* Missing file. */
    assert_int_equal(
        secrets_load_credentials(&key, "/nonexistent/x.cfg.enc", PLUGIN, &creds, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "/nonexistent/x.cfg.enc"));
}

static void test_file_too_large(void **unused)
{
    (void)unused;
    secrets_key key;
    pagoflex_credentials *creds = NULL;
    char err[512];
    key_from(KEY1_HEX, &key);
    char *path = tmp_file("PGFXCRED", 8, 0600);
    assert_int_equal(truncate(path, SECRETS_MAX_FILE + 1), 0);
    assert_int_equal(secrets_load_credentials(&key, path, PLUGIN, &creds, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most"));
    tmp_remove(path);
}

static void test_non_string_setting(void **unused)
{
    (void)unused;
    secrets_key key;
    pagoflex_credentials *creds = NULL;
    char err[512];
    key_from(KEY1_HEX, &key);
    char *path = enc_file(&key, "BANCOX_API_KEY = \"" SECRET_VALUE "\";\n"
                                "BANCOX_PIN = 987654;\n");
    assert_int_equal(secrets_load_credentials(&key, path, PLUGIN, &creds, err, sizeof err), -1);
    assert_null(creds);
    assert_non_null(strstr(err, "BANCOX_PIN"));
    assert_non_null(strstr(err, "not a string"));
    assert_null(strstr(err, "987654"));
    assert_err_clean(err);
    tmp_remove(path);

    /* A group is refused too. */
    const char *grp = "BANCOX = { KEY = \"" SECRET_VALUE "\"; };\n";
    assert_int_equal(secrets_parse_credentials(grp, strlen(grp), &creds, err, sizeof err), -1);
    assert_non_null(strstr(err, "BANCOX is a group"));
    assert_err_clean(err);
}

static void test_syntax_error_line(void **unused)
{
    (void)unused;
    secrets_key key;
    pagoflex_credentials *creds = NULL;
    char err[512];
    key_from(KEY1_HEX, &key);
    char *path = enc_file(&key, "BANCOX_API_KEY = \"" SECRET_VALUE "\";\n"
                                "# a comment\n"
                                "BANCOX_SECRET = " SECRET_VALUE2 ";\n");
    assert_int_equal(secrets_load_credentials(&key, path, PLUGIN, &creds, err, sizeof err), -1);
    assert_null(creds);
    assert_non_null(strstr(err, "line 3"));
    assert_non_null(strstr(err, path));
    assert_err_clean(err);
    tmp_remove(path);
}

static void test_parse_refusals(void **unused)
{
    (void)unused;
    pagoflex_credentials *creds = NULL;
    char err[512];
    const char *inc = "A = \"" SECRET_VALUE "\";\n  @include \"/etc/passwd\"\n";
    assert_int_equal(secrets_parse_credentials(inc, strlen(inc), &creds, err, sizeof err), -1);
    assert_non_null(strstr(err, "@include"));
    assert_err_clean(err);

    const char nul[] = "A = \"x\";\0B = \"" SECRET_VALUE "\";\n";
    assert_int_equal(secrets_parse_credentials(nul, sizeof nul - 1, &creds, err, sizeof err), -1);
    assert_non_null(strstr(err, "NUL"));
    assert_err_clean(err);
    assert_null(creds);

    /* Not NUL-terminated input is fine: only len bytes are read. */
    char buf[16];
    memcpy(buf, "A = \"b\";XXXXXXXX", 16);
    assert_int_equal(secrets_parse_credentials(buf, 8, &creds, err, sizeof err), 0);
    assert_int_equal(creds->count, 1);
    assert_string_equal(creds_get(creds, "A"), "b");
    creds_free(creds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_key_id_is_sha256_prefix),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_flipped_byte_anywhere),
        cmocka_unit_test(test_other_plugin),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_key_hex_errors),
        cmocka_unit_test(test_key_file_modes),
        cmocka_unit_test(test_env_precedence),
        cmocka_unit_test(test_load_credentials),
        cmocka_unit_test(test_file_too_large),
        cmocka_unit_test(test_non_string_setting),
        cmocka_unit_test(test_syntax_error_line),
        cmocka_unit_test(test_parse_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
