/* Unit tests for issue 6 modules: http_limits (JSON depth), secrets with
 * two keys (rotation), plugin_trust (modes, signatures), apikey shapes. */
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

#include "apikey.h"
#include "http_limits.h"
#include "plugin_trust.h"
#include "secrets.h"

static void test_json_depth(void **state)
{
    (void)state;
    assert_false(http_limits_json_too_deep("[[[]]]", 6, 3));
    assert_true(http_limits_json_too_deep("[[[[]]]]", 8, 3));
    assert_false(http_limits_json_too_deep("{\"a\":\"[[[[[[\"}", 14, 1));
    assert_false(http_limits_json_too_deep("[\"\\\"[[[[\"]", 10, 1));
    assert_true(http_limits_json_too_deep("{\"a\":{\"b\":{}}}", 14, 2));
    assert_false(http_limits_json_too_deep("]]]]{}", 6, 1));
}

static void test_two_keys(void **state)
{
    (void)state;
    secrets_key a, b;
    char err[512];
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    assert_int_equal(secrets_key_generate(&a), 0);
    assert_int_equal(secrets_key_generate(&b), 0);
    const char *plain = "K = \"v\";\n";
    assert_int_equal(secrets_encrypt(&a, "p", (const unsigned char *)plain, strlen(plain), &enc,
                                     &enc_len, err, sizeof err), 0);
    const secrets_key *both[2] = {&b, &a}, *only_b[1] = {&b};
    assert_ptr_equal(secrets_key_for_file(both, 2, enc, enc_len), &a);
    assert_null(secrets_key_for_file(only_b, 1, enc, enc_len));
    assert_null(secrets_key_for_file(both, 2, enc, 10));

    char path[] = "/tmp/test_security.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, enc, enc_len), (ssize_t)enc_len);
    close(fd);
    pagoflex_credentials *creds = NULL;
    assert_int_equal(secrets_load_credentials_keys(both, 2, path, "p", &creds, err, sizeof err), 0);
    assert_string_equal(creds_get(creds, "K"), "v");
    creds_free(creds);
    creds = NULL;
    const secrets_key *b_and_none[2] = {&b, NULL};
    assert_int_equal(secrets_load_credentials_keys(b_and_none, 2, path, "p", &creds, err, sizeof err), -1);
    assert_non_null(strstr(err, "encrypted under another master key"));
    unlink(path);
    free(enc);
}

static void test_trust_modes_and_signatures(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_security_trust.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char so[128], sig[140], key[128], pub[128], err[512];
    snprintf(so, sizeof so, "%s/x.so", dir);
    snprintf(sig, sizeof sig, "%s/x.so.sig", dir);
    snprintf(key, sizeof key, "%s/k.key", dir);
    snprintf(pub, sizeof pub, "%s/k.pub", dir);
    FILE *f = fopen(so, "w");
    fputs("not really elf", f);
    fclose(f);
    chmod(so, 0644);
    chmod(dir, 0755);
    plugin_trust_problem pb;
    assert_int_equal(plugin_trust_check_mode(dir, true, &pb), 0);
    chmod(dir, 0775);
    assert_int_equal(plugin_trust_check_mode(dir, true, &pb), -1);
    assert_non_null(strstr(pb.fix, "chmod go-w"));
    chmod(dir, 0755);

    char *priv = NULL, *pubtext = NULL, id[65];
    assert_int_equal(plugin_trust_keygen(&priv, &pubtext, id, err, sizeof err), 0);
    f = fopen(key, "w");
    fputs(priv, f);
    fclose(f);
    chmod(key, 0600);
    f = fopen(pub, "w");
    fputs(pubtext, f);
    fclose(f);
    const char *keys[1] = {pub};
    plugin_trust *t = plugin_trust_new(true, keys, 1, err, sizeof err);
    assert_non_null(t);
    const unsigned char *data = (const unsigned char *)"not really elf";
    assert_int_equal(plugin_trust_check_file(t, so, data, 14, &pb), -1);
    assert_non_null(strstr(pb.found, "no .sig"));
    char *text = NULL;
    assert_int_equal(plugin_trust_sign(key, data, 14, &text, err, sizeof err), 0);
    f = fopen(sig, "w");
    fputs(text, f);
    fclose(f);
    chmod(sig, 0644);
    assert_int_equal(plugin_trust_check_file(t, so, data, 14, &pb), 0);
    assert_int_equal(plugin_trust_check_file(t, so, (const unsigned char *)"not really elF", 14, &pb), -1);
    assert_non_null(strstr(pb.found, "bad signature"));
    assert_null(plugin_trust_new(true, NULL, 0, err, sizeof err));
    chmod(key, 0644);
    free(text);
    text = NULL;
    assert_int_equal(plugin_trust_sign(key, data, 14, &text, err, sizeof err), -1);
    plugin_trust_free(t);
    free(priv);
    free(pubtext);
    unlink(so);
    unlink(sig);
    unlink(key);
    unlink(pub);
    rmdir(dir);
}

static void test_apikey_shape(void **state)
{
    (void)state;
    char prefix[APIKEY_PREFIX_LEN + 1];
    assert_int_equal(apikey_prefix_of("pfk_abcdefghij12_0123456789abcdef0123456789abcdef"
                                      "0123456789abcdef0123456789abcdef", prefix), 0);
    assert_string_equal(prefix, "pfk_abcdefghij12");
    assert_int_equal(apikey_prefix_of("pfk_ABCDEFGHIJ12_0123456789abcdef0123456789abcdef"
                                      "0123456789abcdef0123456789abcdef", prefix), -1);
    assert_int_equal(apikey_prefix_of("pk_test_x", prefix), -1);
    assert_int_equal(apikey_prefix_of("", prefix), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_two_keys),
        cmocka_unit_test(test_trust_modes_and_signatures),
        cmocka_unit_test(test_apikey_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
