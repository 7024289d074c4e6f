/* Unit tests for the plugin loader (host/registry.c), on the real fixture
 * plugins of tests/fixtures/reject (build/fixtures/<name>.so). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "arena.h"
#include "bankcall.h"
#include "plugin_trust.h"
#include "registry.h"
#include "secrets.h"

/* A scratch tree per test: plugins/, creds/ and a private dir that does
 * not exist yet (the registry must create it). */
typedef struct env {
    char base[64];
    char plugins[128];
    char creds[128];
    char private_dir[160];
    secrets_key key;
    registry *reg;
} env;

static char fixture_dir[PATH_MAX];

/* ---- helpers ---------------------------------------------------------- */

static void find_fixture_dir(void)
{
    const char *envdir = getenv("PAGOFLEX_FIXTURE_DIR");
    if (envdir && *envdir) {
        snprintf(fixture_dir, sizeof fixture_dir, "%s", envdir);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    /* test binaries live in build/tests/unit/ */
    snprintf(fixture_dir, sizeof fixture_dir, "%s/../../fixtures", dirname(exe));
}

static int read_all(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    *len = fread(*out, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

/* Write like cp does over an existing file: same inode, O_TRUNC, write. */
static void write_in_place(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void fixture_path(char *out, size_t cap, const char *fixture)
{
    if (snprintf(out, cap, "%s/%s.so", fixture_dir, fixture) >= (int)cap)
        fail_msg("fixture path too long: %s/%s.so", fixture_dir, fixture);
}

/* Copy fixture <name>.so into the plugin dir as `as` (or <name>.so). */
static void add_plugin(const env *e, const char *fixture, const char *as, char *path,
                       size_t cap)
{
    char src[PATH_MAX];
    unsigned char *data;
    size_t len;
    fixture_path(src, sizeof src, fixture);
    if (read_all(src, &data, &len) != 0)
        fail_msg("fixture %s missing: build the fixture targets first", src);
    char dst[PATH_MAX];
    if (as)
        snprintf(dst, sizeof dst, "%s/%s", e->plugins, as);
    else
        snprintf(dst, sizeof dst, "%s/%s.so", e->plugins, fixture);
    write_in_place(dst, data, len);
    free(data);
    if (path)
        snprintf(path, cap, "%s", dst);
}

static size_t count_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void write_credentials(const env *e, const secrets_key *key, const char *plugin,
                              const char *file_name, const char *text)
{
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    char err[512], path[PATH_MAX];
    assert_int_equal(secrets_encrypt(key, plugin, (const unsigned char *)text, strlen(text),
                                     &blob, &blob_len, err, sizeof err),
                     0);
    snprintf(path, sizeof path, "%s/%s.cfg.enc", e->creds, file_name);
    write_in_place(path, blob, blob_len);
    free(blob);
}

static registry *new_registry(env *e, const secrets_key *key)
{
    registry_options o = {.plugin_dir = e->plugins,
                          .credentials_dir = e->creds,
                          .private_dir = e->private_dir,
                          .master_key = key};
    registry *r = registry_new(&o);
    assert_non_null(r);
    return r;
}

/* Call the plugin's build_request: proves its code is mapped and callable. */
static void call_build_request(const registry_plugin *p, const char *want_url_part,
                               const char *want_auth)
{
    pagoflex_arena *arena = arena_new();
    pagoflex_payment pay = {.id = "pay_1", .amount = 100, .currency = "EUR"};
    pagoflex_http_request req = {0};
    assert_int_equal(p->desc->build_request(p->state, &pay, arena, &req), PAGOFLEX_OK);
    assert_string_equal(req.method, "POST");
    assert_non_null(strstr(req.url, want_url_part));
    if (want_auth) {
        assert_int_equal(req.header_count, 1);
        assert_string_equal(req.headers[0].value, want_auth);
    } else {
        assert_int_equal(req.header_count, 0);
    }
    arena_free(arena);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->base, sizeof e->base, "/tmp/pgfx-registry-XXXXXX");
    if (!mkdtemp(e->base))
        return -1;
    snprintf(e->plugins, sizeof e->plugins, "%s/plugins", e->base);
    snprintf(e->creds, sizeof e->creds, "%s/creds", e->base);
    snprintf(e->private_dir, sizeof e->private_dir, "%s/var/private", e->base);
    if (mkdir(e->plugins, 0755) != 0 || mkdir(e->creds, 0700) != 0)
        return -1;
    if (secrets_key_generate(&e->key) != 0)
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    registry_free(e->reg);
    secrets_key_wipe(&e->key);
    nftw(e->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    return 0;
}

/* ---- a good plugin ---------------------------------------------------- */

static void test_good_a_loads(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_a", NULL, path, sizeof path);
    e->reg = new_registry(e, NULL); /* needs no credentials, so no key */
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), 0);
    assert_int_equal(registry_count(e->reg), 1);

    const registry_plugin *p = registry_find_key(e->reg, "GOOD_A");
    assert_non_null(p);
    assert_ptr_equal(registry_find_webhook(e->reg, "gooda"), p);
    assert_ptr_equal(registry_at(e->reg, 0), p);
    assert_null(registry_find_key(e->reg, "GOOD_B"));
    assert_null(registry_find_webhook(e->reg, "goodb"));
    assert_string_equal(p->file, path);
    assert_string_equal(p->name, "good_a");
    assert_string_equal(p->desc->version, "1.0.0-test");
    assert_true(p->loaded_at > 0);
    call_build_request(p, "/GOOD_A/pay_1", NULL);

    /* the private dir was created 0700 */
    struct stat st;
    assert_int_equal(stat(e->private_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

/* ---- 1.2: settings and the init arena ---------------------------------- */

/* host->setting gives init the settings of its own plugin only, and what
 * init keeps in host->init_arena is still there after init returned. */
static void test_settings_reach_init_and_init_arena_outlives_it(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "settings_probe", NULL, path, sizeof path);
    const creds_setting settings[] = {
        {.plugin = "good_a", .name = "PROBE_BASE_URL", .value = "http://wrong.example"},
        {.plugin = "settings_probe", .name = "PROBE_BASE_URL", .value = "http://127.0.0.1:9/probe"},
    };
    registry_options o = {.plugin_dir = e->plugins, .credentials_dir = e->creds,
                          .private_dir = e->private_dir, .settings = settings,
                          .settings_count = 2};
    e->reg = registry_new(&o);
    assert_non_null(e->reg);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), 0);
    const registry_plugin *p = registry_find_key(e->reg, "SETTINGS_PROBE");
    assert_non_null(p);
    assert_non_null(p->init_arena);
    call_build_request(p, "http://127.0.0.1:9/probe/pay_1", NULL);

    /* Another plugin's setting is not this plugin's: init refuses to load. */
    registry_free(e->reg);
    o.settings = settings;
    o.settings_count = 1;
    e->reg = registry_new(&o);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "field=init"));
}

/* ---- every rejection path --------------------------------------------- */

typedef struct rejection_case {
    const char *fixture;
    const char *parts[5]; /* substrings the err line must contain */
} rejection_case;

static void check_rejection(env *e, const rejection_case *c)
{
    char good[PATH_MAX], path[PATH_MAX], err[1024] = "", want[PATH_MAX + 32];
    add_plugin(e, "good_a", NULL, good, sizeof good);
    add_plugin(e, c->fixture, NULL, path, sizeof path);
    registry_free(e->reg);
    e->reg = new_registry(e, &e->key);
    assert_int_equal(registry_load_file(e->reg, good, err, sizeof err), 0);

    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), -1);
    print_message("  %s\n", err);
    snprintf(want, sizeof want, "plugin rejected: file=%s field=", path);
    assert_ptr_equal(strstr(err, want), err);
    for (size_t i = 0; i < 5 && c->parts[i]; i++)
        if (!strstr(err, c->parts[i]))
            fail_msg("%s: \"%s\" not in: %s", c->fixture, c->parts[i], err);

    /* The rejected plugin left nothing behind; good_a is untouched. */
    assert_int_equal(registry_count(e->reg), 1);
    assert_int_equal(count_entries(e->private_dir), 1);
    call_build_request(registry_find_key(e->reg, "GOOD_A"), "/GOOD_A/", NULL);
    registry_free(e->reg);
    e->reg = NULL;
    assert_int_equal(count_entries(e->private_dir), 0);
    unlink(path);
}

static void test_rejections(void **state)
{
    env *e = *state;
    char size_exp[32], size_found[32], sig_exp[128], creds_exp[PATH_MAX + 16];
    char dup_key_fix[PATH_MAX + 64], dup_path_fix[PATH_MAX + 64];
    snprintf(size_exp, sizeof size_exp, "expected=>=%zu",
             offsetof(pagoflex_connector, parse_webhook) + sizeof(void *));
    snprintf(size_found, sizeof size_found, "found=%zu",
             offsetof(pagoflex_connector, parse_webhook));
    snprintf(sig_exp, sizeof sig_exp, "expected=\"%s\"", PAGOFLEX_BUILD_SIGNATURE);
    snprintf(creds_exp, sizeof creds_exp, "expected=%s/good_b.cfg.enc", e->creds);
    snprintf(dup_key_fix, sizeof dup_key_fix, "key GOOD_A is already served by %s/good_a.so",
             e->plugins);
    snprintf(dup_path_fix, sizeof dup_path_fix,
             "webhook path /webhooks/gooda is already served by %s/good_a.so", e->plugins);

    const rejection_case cases[] = {
        {"no_entry", {"field=entry_point", "expected=pagoflex_connector_v1", "found=absent",
                      "PAGOFLEX_DEFINE_CONNECTOR"}},
        {"bad_magic", {"field=magic", "expected=0x50474658", "found=0x58464750"}},
        {"abi_major2", {"field=abi_major", "expected=1", "found=2",
                        "plugin built for ABI 2, this host speaks ABI 1: rebuild the plugin "
                        "against this host's SDK"}},
        {"short_size", {"field=size", size_exp, size_found, "short"}},
        {"bad_signature", {"field=build_signature", sig_exp,
                           "found=\"pagoflex-abi=1,ptr=4,long=4,size_t=4,endian=le\""}},
        {"dup_key", {"field=key", "expected=unique", "found=\"GOOD_A\"", dup_key_fix}},
        {"dup_path", {"field=webhook_path", "expected=unique", "found=\"gooda\"",
                      dup_path_fix}},
        {"init_fails", {"field=init", "expected=PAGOFLEX_OK",
                        "found=PAGOFLEX_ERR_INTERNAL (7)",
                        "init returned PAGOFLEX_ERR_INTERNAL (7)"}},
        {"null_entry", {"field=build_request", "expected=non-NULL", "found=NULL"}},
        {"flows_no_response", {"field=flow_response", "expected=non-NULL", "found=NULL"}},
        {"undefined_symbol", {"field=dlopen", "undefined symbol: fixture_symbol_nobody_defines"}},
        {"good_b", {"field=credentials", creds_exp, "found=no such file",
                    "create it with: pagoflex secrets encrypt --plugin good_b",
                    "GOODB_TOKEN"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_rejection(e, &cases[i]);
}

/* A plugin of a newer minor has a larger descriptor: accepted. */
static void test_future_minor_loads(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "future_minor", NULL, path, sizeof path);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), 0);
    const registry_plugin *p = registry_find_webhook(e->reg, "future-minor");
    assert_non_null(p);
    assert_int_equal(p->desc->abi_minor, PAGOFLEX_ABI_MINOR + 1);
    assert_true(p->desc->size > sizeof(pagoflex_connector));
    call_build_request(p, "/FUTURE_MINOR/pay_1", NULL);
}

/* A plugin built for ABI 1.0 (no sync entries) still loads, and the host
 * never reads the fields past its size. */
static void test_abi_v10_loads_without_sync(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "abi_v10", NULL, path, sizeof path);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), 0);
    const registry_plugin *p = registry_find_webhook(e->reg, "abi-v10");
    assert_non_null(p);
    assert_int_equal(p->desc->abi_minor, 0);
    assert_true(p->desc->size < sizeof(pagoflex_connector));
    assert_false(PAGOFLEX_HAS_FIELD(p->desc, pagoflex_connector, sync_response));
    assert_false(bankcall_has_sync(p));
    call_build_request(p, "/ABI_V10/pay_1", NULL);
}

/* Plugins without flows are served through the host's adapter: a 1.0
 * plugin creates payments only, a 1.1 plugin with sync also syncs them. */
static void test_old_plugins_get_adapter_flows(void **state)
{
    env *e = *state;
    char p10[PATH_MAX], p11[PATH_MAX], err[1024] = "";
    add_plugin(e, "abi_v1_0", NULL, p10, sizeof p10);
    add_plugin(e, "abi_v1_1", NULL, p11, sizeof p11);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_file(e->reg, p10, err, sizeof err), 0);
    assert_int_equal(registry_load_file(e->reg, p11, err, sizeof err), 0);
    const registry_plugin *a = registry_find_key(e->reg, "ABI_V1_0");
    const registry_plugin *b = registry_find_key(e->reg, "ABI_V1_1");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(b->desc->abi_minor, 1);
    assert_int_equal(a->flows, PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE));
    assert_int_equal(b->flows, PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE) |
                                   PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_PAYMENT_SYNC));
    assert_false(registry_uses_flows(a));
    assert_false(registry_uses_flows(b));
    assert_false(registry_has_flow(b, PAGOFLEX_FLOW_REFUND));
    assert_false(registry_has_flow(b, PAGOFLEX_FLOW_CAPTURE));
    assert_true(bankcall_has_sync(b));
    assert_string_equal(registry_flow_name(PAGOFLEX_FLOW_REFUND_SYNC), "refund_sync");
}

/* The one flow call path serves an old plugin through its 1.1 entry
 * points: create and sync work, what it lacks is refused before any
 * request is built. */
static void test_flow_adapter_calls_old_entry_points(void **state)
{
    env *e = *state;
    char p11[PATH_MAX], err[1024] = "";
    add_plugin(e, "abi_v1_1", NULL, p11, sizeof p11);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_file(e->reg, p11, err, sizeof err), 0);
    const registry_plugin *p = registry_find_key(e->reg, "ABI_V1_1");
    assert_non_null(p);
    pagoflex_arena *a = arena_new();
    pagoflex_payment pay = {.id = "pay_v11", .amount = 1050, .currency = "ARS",
                            .webhook_url = "http://127.0.0.1/webhooks/abi-v1-1"};
    pagoflex_flow_input in = {.size = sizeof in, .flow = PAGOFLEX_FLOW_AUTHORIZE, .payment = &pay,
                              .operation_id = "pay_v11", .capture = 1};
    pagoflex_flow_result res;
    pagoflex_transport tr = PAGOFLEX_TRANSPORT_ERROR;
    assert_int_equal(bankcall_flow(p, &in, 1000, a, &res, &tr, NULL), PAGOFLEX_OK);
    assert_int_equal(tr, PAGOFLEX_TRANSPORT_OK);
    assert_int_equal(res.state, PAGOFLEX_STATE_PENDING);
    assert_string_equal(res.provider_reference_id, "v11_pay_v11");

    in.flow = PAGOFLEX_FLOW_PAYMENT_SYNC;
    assert_int_equal(bankcall_flow(p, &in, 1000, a, &res, NULL, NULL), PAGOFLEX_ERR_NOT_FOUND);
    pay.provider_reference_id = "v11_pay_v11";
    assert_int_equal(bankcall_flow(p, &in, 1000, a, &res, NULL, NULL), PAGOFLEX_OK);
    assert_int_equal(res.state, PAGOFLEX_STATE_SUCCEEDED);

    pagoflex_http_request req;
    in.flow = PAGOFLEX_FLOW_AUTHORIZE;
    in.capture = 0; /* manual capture: an old plugin cannot */
    assert_int_equal(bankcall_flow_request(p, &in, a, &req), PAGOFLEX_ERR_UNSUPPORTED);
    in.capture = 1;
    for (int f = PAGOFLEX_FLOW_CAPTURE; f <= PAGOFLEX_FLOW_REFUND_SYNC; f++) {
        if (f == PAGOFLEX_FLOW_PAYMENT_SYNC)
            continue;
        in.flow = (pagoflex_flow)f;
        in.amount = 100;
        assert_int_equal(bankcall_flow_request(p, &in, a, &req), PAGOFLEX_ERR_UNSUPPORTED);
    }

    /* An answer the plugin maps to a state the flow may not have is unknown. */
    assert_false(bankcall_flow_state_ok(PAGOFLEX_FLOW_REFUND, PAGOFLEX_STATE_REQUIRES_CAPTURE));
    assert_false(bankcall_flow_state_ok(PAGOFLEX_FLOW_AUTHORIZE, PAGOFLEX_STATE_CREATED));
    assert_true(bankcall_flow_state_ok(PAGOFLEX_FLOW_AUTHORIZE, PAGOFLEX_STATE_REQUIRES_CAPTURE));
    pagoflex_http_response garbage = {.transport = PAGOFLEX_TRANSPORT_OK, .status = 200,
                                      .body = (const unsigned char *)"x", .body_len = 1};
    in.flow = PAGOFLEX_FLOW_AUTHORIZE;
    assert_int_equal(bankcall_flow_map(p, &in, &garbage, a, &res), PAGOFLEX_OK);
    assert_int_equal(res.state, PAGOFLEX_STATE_PROCESSING);
    arena_free(a);
}

/* ---- a whole directory ------------------------------------------------ */

static void test_load_dir(void **state)
{
    env *e = *state;
    char err[1024] = "";
    static const char *const fixtures[] = {
        "good_a",     "good_b",        "no_entry",     "bad_magic",        "abi_major2",
        "short_size", "bad_signature", "init_fails",   "null_entry",       "future_minor",
        "undefined_symbol",
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
        add_plugin(e, fixtures[i], NULL, NULL, 0);
    /* The first file in name order wins a duplicate: these sort after good_a. */
    add_plugin(e, "dup_key", "zz_dup_key.so", NULL, 0);
    add_plugin(e, "dup_path", "zz_dup_path.so", NULL, 0);
    /* Neither a dotfile nor a non-.so file is a plugin. */
    add_plugin(e, "good_b", ".hidden.so", NULL, 0);
    add_plugin(e, "good_b", "good_b.so.bak", NULL, 0);

    e->reg = new_registry(e, &e->key);
    assert_int_equal(registry_load_dir(e->reg, err, sizeof err), 2);
    assert_int_equal(registry_count(e->reg), 2);
    assert_string_equal(registry_at(e->reg, 0)->desc->key, "FUTURE_MINOR");
    assert_string_equal(registry_at(e->reg, 1)->desc->key, "GOOD_A");

    const registry_plugin *a = registry_find_key(e->reg, "GOOD_A");
    assert_non_null(a);
    assert_ptr_equal(registry_find_webhook(e->reg, "gooda"), a);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/good_a.so", e->plugins);
    assert_string_equal(a->file, want);
    assert_null(registry_find_key(e->reg, "DUP_PATH"));
    assert_null(registry_find_webhook(e->reg, "dupkey"));
    assert_null(registry_find_key(e->reg, "INIT_FAILS"));
    assert_null(registry_find_key(e->reg, "GOOD_B"));
    assert_int_equal(count_entries(e->private_dir), 2);
}

static void test_load_dir_first_in_name_order_wins(void **state)
{
    env *e = *state;
    char err[1024] = "";
    add_plugin(e, "good_a", NULL, NULL, 0);
    add_plugin(e, "dup_key", "a_dup_key.so", NULL, 0);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_dir(e->reg, err, sizeof err), 1);
    assert_non_null(strstr(registry_find_key(e->reg, "GOOD_A")->file, "/a_dup_key.so"));
}

static void test_load_dir_unreadable(void **state)
{
    env *e = *state;
    char err[1024] = "";
    snprintf(e->plugins, sizeof e->plugins, "%s/absent", e->base);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_dir(e->reg, err, sizeof err), -1);
    assert_non_null(strstr(err, e->plugins));
}

/* ---- credentials ------------------------------------------------------ */

static void test_credentials_loaded(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_b", NULL, path, sizeof path);
    write_credentials(e, &e->key, "good_b", "good_b", "GOODB_TOKEN = \"t0k3n\";\n");
    e->reg = new_registry(e, &e->key);
    if (registry_load_file(e->reg, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    /* init copied the token before the registry wiped the set */
    call_build_request(registry_find_key(e->reg, "GOOD_B"), "/GOOD_B/", "Bearer t0k3n");
}

static void expect_credentials_rejected(env *e, const secrets_key *key, const char *want1,
                                        const char *want2, const char *secret)
{
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_b", NULL, path, sizeof path);
    registry_free(e->reg);
    e->reg = new_registry(e, key);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), -1);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "field=credentials"));
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("want \"%s\" and \"%s\" in: %s", want1, want2 ? want2 : "", err);
    if (secret && strstr(err, secret))
        fail_msg("a credential value leaked into: %s", err);
    assert_int_equal(registry_count(e->reg), 0);
    assert_int_equal(count_entries(e->private_dir), 0);
}

static void test_credentials_missing_name(void **state)
{
    env *e = *state;
    write_credentials(e, &e->key, "good_b", "good_b", "OTHER_SETTING = \"s3cr3t-value\";\n");
    expect_credentials_rejected(e, &e->key, "expected=GOODB_TOKEN", "found=absent",
                                "s3cr3t-value");
    write_credentials(e, &e->key, "good_b", "good_b",
                      "GOODB_TOKEN = \"\";\nOTHER_SETTING = \"s3cr3t-value\";\n");
    expect_credentials_rejected(e, &e->key, "expected=GOODB_TOKEN", "found=empty",
                                "s3cr3t-value");
}

static void test_credentials_undecryptable(void **state)
{
    env *e = *state;
    secrets_key other;
    assert_int_equal(secrets_key_generate(&other), 0);
    /* under another master key */
    write_credentials(e, &other, "good_b", "good_b", "GOODB_TOKEN = \"t0k3n\";\n");
    expect_credentials_rejected(e, &e->key, "expected=decryptable", "/good_b.cfg.enc", "t0k3n");
    /* bound to another plugin, then copied over */
    write_credentials(e, &e->key, "good_a", "good_b", "GOODB_TOKEN = \"t0k3n\";\n");
    expect_credentials_rejected(e, &e->key, "expected=decryptable", "/good_b.cfg.enc", "t0k3n");
    /* a file but no master key */
    expect_credentials_rejected(e, NULL, "expected=a master key", NULL, NULL);
    secrets_key_wipe(&other);
}

/* ---- connector accounts (issue 13) ------------------------------------- */

/* Encrypt `text` for `binding` into <creds>/<plugin>/<account>.cfg.enc. */
static void write_account(const env *e, const secrets_key *key, const char *plugin, const char *account,
                          const char *binding, const char *text)
{
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    char err[512], path[PATH_MAX];
    assert_int_equal(secrets_encrypt(key, binding, (const unsigned char *)text, strlen(text), &blob,
                                     &blob_len, err, sizeof err),
                     0);
    snprintf(path, sizeof path, "%s/%s", e->creds, plugin);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s/%s.cfg.enc", e->creds, plugin, account);
    write_in_place(path, blob, blob_len);
    free(blob);
}

static void test_accounts_each_get_their_own_init_and_state(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_b", NULL, path, sizeof path);
    write_credentials(e, &e->key, "good_b", "good_b", "GOODB_TOKEN = \"tok-default\";\n");
    write_account(e, &e->key, "good_b", "acct-b", "good_b/acct-b", "GOODB_TOKEN = \"tok-b\";\n");
    write_account(e, &e->key, "good_b", "acct-a", "good_b/acct-a", "GOODB_TOKEN = \"tok-a\";\n");
    e->reg = new_registry(e, &e->key);
    if (registry_load_file(e->reg, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    /* One instance per account, adjacent, "default" first, then by name. */
    assert_int_equal(registry_count(e->reg), 3);
    assert_string_equal(registry_at(e->reg, 0)->account, "default");
    assert_string_equal(registry_at(e->reg, 1)->account, "acct-a");
    assert_string_equal(registry_at(e->reg, 2)->account, "acct-b");
    const registry_plugin *d = registry_find_account(e->reg, "GOOD_B", "default");
    const registry_plugin *a = registry_find_account(e->reg, "GOOD_B", "acct-a");
    const registry_plugin *b = registry_find_account(e->reg, "GOOD_B", "acct-b");
    assert_non_null(d);
    assert_non_null(a);
    assert_non_null(b);
    /* Each instance calls the plugin with its own account's state. */
    assert_true(d->state != a->state && a->state != b->state && d->state != b->state);
    call_build_request(d, "/GOOD_B/", "Bearer tok-default");
    call_build_request(a, "/GOOD_B/", "Bearer tok-a");
    call_build_request(b, "/GOOD_B/", "Bearer tok-b");
    /* They share the loaded object and nothing that is the account's. */
    assert_ptr_equal(a->desc, d->desc);
    assert_ptr_equal(registry_find_key(e->reg, "GOOD_B"), d);
    assert_ptr_equal(registry_find_webhook_account(e->reg, d->desc->webhook_path, "acct-b"), b);
    assert_null(registry_find_account(e->reg, "GOOD_B", "acct-c"));
    assert_null(registry_find_webhook_account(e->reg, d->desc->webhook_path, "acct-c"));
    assert_int_equal(registry_account_rejected_count(e->reg), 0);
    /* The webhook URL the bank is given names the account (default: none). */
    pagoflex_arena *arena = arena_new();
    assert_string_equal(bankcall_webhook_url("https://h", b, arena), "https://h/webhooks/goodb/acct-b");
    assert_string_equal(bankcall_webhook_url("https://h", d, arena), "https://h/webhooks/goodb");
    arena_free(arena);
}

static void test_a_bad_account_fails_alone(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "", p2[PATH_MAX];
    add_plugin(e, "good_b", NULL, path, sizeof path);
    write_credentials(e, &e->key, "good_b", "good_b", "GOODB_TOKEN = \"tok-default\";\n");
    write_account(e, &e->key, "good_b", "acct-b", "good_b/acct-b", "GOODB_TOKEN = \"tok-b\";\n");
    /* lacks the required name */
    write_account(e, &e->key, "good_b", "acct-a", "good_b/acct-a", "OTHER = \"s3cr3t-a\";\n");
    /* account acct-b's file copied to acct-c: bound to acct-b, so it does not decrypt as acct-c */
    write_account(e, &e->key, "good_b", "acct-c", "good_b/acct-b", "GOODB_TOKEN = \"s3cr3t-c\";\n");
    /* the default account's file moved under an account: bound to the plugin alone */
    write_account(e, &e->key, "good_b", "acct-d", "good_b", "GOODB_TOKEN = \"s3cr3t-d\";\n");
    /* not an account name */
    write_account(e, &e->key, "good_b", "Bad Name", "good_b/Bad Name", "GOODB_TOKEN = \"s3cr3t-e\";\n");
    snprintf(p2, sizeof p2, "%s/good_b/ignored.txt", e->creds);
    write_in_place(p2, (const unsigned char *)"x", 1);
    e->reg = new_registry(e, &e->key);
    if (registry_load_file(e->reg, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(registry_count(e->reg), 2);
    call_build_request(registry_find_account(e->reg, "GOOD_B", "default"), "/GOOD_B/", "Bearer tok-default");
    call_build_request(registry_find_account(e->reg, "GOOD_B", "acct-b"), "/GOOD_B/", "Bearer tok-b");
    static const struct {
        const char *account, *want;
    } refused[] = {
        {"Bad Name", "field=account"},
        {"acct-a", "expected=GOODB_TOKEN found=absent"},
        {"acct-c", "expected=decryptable"},
        {"acct-d", "expected=decryptable"},
    };
    assert_int_equal(registry_account_rejected_count(e->reg), 4);
    for (size_t i = 0; i < 4; i++) {
        bool seen = false;
        for (size_t k = 0; k < registry_account_rejected_count(e->reg); k++) {
            const registry_account_rejection *ra = registry_account_rejected_at(e->reg, k);
            if (strcmp(ra->account, refused[i].account) != 0)
                continue;
            seen = true;
            print_message("  %s\n", ra->reason);
            assert_string_equal(ra->plugin, "good_b");
            assert_non_null(strstr(ra->reason, "connector account rejected: plugin=good_b account="));
            if (!strstr(ra->reason, refused[i].want))
                fail_msg("want \"%s\" in: %s", refused[i].want, ra->reason);
            if (strstr(ra->reason, "s3cr3t"))
                fail_msg("a credential value leaked into: %s", ra->reason);
        }
        if (!seen)
            fail_msg("account %s was not refused", refused[i].account);
        assert_null(registry_find_account(e->reg, "GOOD_B", refused[i].account));
    }
}

static void test_named_accounts_without_a_default(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_b", NULL, path, sizeof path);
    write_account(e, &e->key, "good_b", "solo", "good_b/solo", "GOODB_TOKEN = \"tok-solo\";\n");
    e->reg = new_registry(e, &e->key);
    if (registry_load_file(e->reg, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(registry_count(e->reg), 1);
    assert_null(registry_find_account(e->reg, "GOOD_B", "default"));
    assert_ptr_equal(registry_find_key(e->reg, "GOOD_B"), registry_find_account(e->reg, "GOOD_B", "solo"));
    call_build_request(registry_find_key(e->reg, "GOOD_B"), "/GOOD_B/", "Bearer tok-solo");
}

static void test_no_account_loads_rejects_the_plugin(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_b", NULL, path, sizeof path);
    write_account(e, &e->key, "good_b", "acct-a", "good_b/acct-a", "OTHER = \"x\";\n");
    write_account(e, &e->key, "good_b", "acct-b", "good_b/acct-a", "GOODB_TOKEN = \"y\";\n");
    e->reg = new_registry(e, &e->key);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), -1);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "plugin rejected: file="));
    assert_non_null(strstr(err, "field=credentials"));
    assert_non_null(strstr(err, "--account acct-a"));
    assert_int_equal(registry_count(e->reg), 0);
    assert_int_equal(registry_account_rejected_count(e->reg), 2);
    /* nothing of it stays: no copy in the private directory */
    assert_int_equal(count_entries(e->private_dir), 0);
}

/* ---- private copies --------------------------------------------------- */

static void test_private_copy_survives_overwrite(void **state)
{
    env *e = *state;
    char path[PATH_MAX], src[PATH_MAX], err[1024] = "";
    unsigned char *orig, *other;
    size_t orig_len, other_len;
    add_plugin(e, "good_a", NULL, path, sizeof path);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), 0);
    const registry_plugin *p = registry_find_key(e->reg, "GOOD_A");

    /* content-named: <private_dir>/good_a-<first 16 hex of sha256>.so */
    assert_int_equal(read_all(path, &orig, &orig_len), 0);
    unsigned char md[32];
    unsigned int md_len = 0;
    assert_true(EVP_Digest(orig, orig_len, md, &md_len, EVP_sha256(), NULL));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(p->sha256, hex);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/good_a-%.16s.so", e->private_dir, hex);
    assert_string_equal(p->private_path, want);
    assert_string_not_equal(p->private_path, p->file);

    /* overwrite the deployed file in place, as cp does */
    fixture_path(src, sizeof src, "bad_magic");
    assert_int_equal(read_all(src, &other, &other_len), 0);
    write_in_place(path, other, other_len);
    call_build_request(p, "/GOOD_A/pay_1", NULL);

    /* a second load of the same path sees the new content, not the old
     * mapping glibc would return for an already-open path */
    registry *r2 = new_registry(e, NULL);
    assert_int_equal(registry_load_file(r2, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "field=magic"));
    free(other);
    fixture_path(src, sizeof src, "future_minor");
    assert_int_equal(read_all(src, &other, &other_len), 0);
    write_in_place(path, other, other_len);
    assert_int_equal(registry_load_file(r2, path, err, sizeof err), 0);
    assert_non_null(registry_find_key(r2, "FUTURE_MINOR"));
    call_build_request(p, "/GOOD_A/pay_1", NULL);
    registry_free(r2);

    /* freeing removes the private copy */
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", p->private_path);
    assert_int_equal(access(copy, F_OK), 0);
    registry_free(e->reg);
    e->reg = NULL;
    assert_int_equal(access(copy, F_OK), -1);
    free(orig);
    free(other);
}

/* Write `text` to private_dir/<name>, with mtime `age_s` seconds ago. */
static void plant(const env *e, const char *name, const char *text, time_t age_s)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", e->private_dir, name);
    write_in_place(path, (const unsigned char *)text, strlen(text));
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age_s;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static bool present(const env *e, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", e->private_dir, name);
    return access(path, F_OK) == 0;
}

/* A copy no loaded plugin and no last-good record uses, and that no process
 * holds loaded, is removed; everything else stays. */
static void test_clean_private_removes_only_unused_copies(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_a", NULL, path, sizeof path);
    registry_options o = {.plugin_dir = e->plugins, .credentials_dir = e->creds,
                          .private_dir = e->private_dir, .keep_last_good = true};
    e->reg = registry_new(&o);
    assert_non_null(e->reg);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), 0);
    const char *in_use = strrchr(registry_find_key(e->reg, "GOOD_A")->private_path, '/') + 1;

    plant(e, "good_a-0000000000000000.so", "an older good_a", 10);   /* unused */
    plant(e, "good_b-1111111111111111.so", "loaded elsewhere", 10);  /* locked by a child */
    plant(e, "old_c-2222222222222222.so", "last good of old_c", 10); /* recorded */
    plant(e, ".good_a.AbCdEf", "a copy left half-written", 7200);   /* stale temp */
    plant(e, ".good_a.GhIjKl", "a copy being written", 5);          /* fresh temp */
    plant(e, "notes.txt", "not ours", 7200);
    char rec[PATH_MAX];
    snprintf(rec, sizeof rec, "%s/last-good/old_c", e->private_dir);
    FILE *f = fopen(rec, "w");
    assert_non_null(f);
    fprintf(f, "%s/old_c-2222222222222222.so\n%064d\n", e->private_dir, 0);
    fclose(f);

    /* Another process has good_b loaded: it holds the copy's load lock. */
    int go[2], held[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(held), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char copy[PATH_MAX], byte = 'h';
        snprintf(copy, sizeof copy, "%s/good_b-1111111111111111.so", e->private_dir);
        int fd = open(copy, O_RDONLY);
        if (fd < 0 || flock(fd, LOCK_SH) != 0 || write(held[1], &byte, 1) != 1)
            _exit(1);
        _exit(read(go[0], &byte, 1) == 1 ? 0 : 2);
    }
    char byte;
    assert_int_equal(read(held[0], &byte, 1), 1);

    assert_int_equal(registry_clean_private(e->reg), 2);
    assert_true(present(e, in_use));
    assert_false(present(e, "good_a-0000000000000000.so"));
    assert_true(present(e, "good_b-1111111111111111.so"));
    assert_true(present(e, "old_c-2222222222222222.so"));
    assert_false(present(e, ".good_a.AbCdEf"));
    assert_true(present(e, ".good_a.GhIjKl"));
    assert_true(present(e, "notes.txt"));
    assert_true(present(e, "last-good"));
    call_build_request(registry_find_key(e->reg, "GOOD_A"), "/GOOD_A/pay_1", NULL);

    /* Once that process has unloaded it, nothing uses good_b's copy. */
    assert_int_equal(write(go[1], "x", 1), 1);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(registry_clean_private(e->reg), 1);
    assert_false(present(e, "good_b-1111111111111111.so"));
    assert_true(present(e, in_use));
    assert_int_equal(registry_clean_private(e->reg), 0);
    close(go[0]);
    close(go[1]);
    close(held[0]);
    close(held[1]);

    /* A registry loading a plugin holds its copy's load lock until freed:
     * with no record naming it, the lock alone keeps it. */
    char b_path[PATH_MAX];
    add_plugin(e, "future_minor", NULL, b_path, sizeof b_path);
    registry *other = registry_new(&o);
    assert_non_null(other);
    assert_int_equal(registry_load_file(other, b_path, err, sizeof err), 0);
    char b_copy[PATH_MAX];
    snprintf(b_copy, sizeof b_copy, "%s", registry_find_key(other, "FUTURE_MINOR")->private_path);
    snprintf(rec, sizeof rec, "%s/last-good/future_minor", e->private_dir);
    assert_int_equal(unlink(rec), 0);
    assert_int_equal(registry_clean_private(e->reg), 0);
    assert_int_equal(access(b_copy, F_OK), 0);
    registry_free(other); /* keep_last_good: the copy stays on disk, unlocked */
    assert_int_equal(access(b_copy, F_OK), 0);
    assert_int_equal(registry_clean_private(e->reg), 1);
    assert_int_equal(access(b_copy, F_OK), -1);

    /* A registry that does not keep last good versions (the CLI's) never
     * touches a shared folder. */
    plant(e, "good_a-3333333333333333.so", "unused", 10);
    registry *cli = new_registry(e, NULL);
    assert_int_equal(registry_clean_private(cli), 0);
    assert_true(present(e, "good_a-3333333333333333.so"));
    registry_free(cli);
}

static void test_private_dir_open_to_others_refused(void **state)
{
    env *e = *state;
    char path[PATH_MAX], err[1024] = "";
    add_plugin(e, "good_a", NULL, path, sizeof path);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/var", e->base);
    mkdir(parent, 0700);
    assert_int_equal(mkdir(e->private_dir, 0700), 0);
    assert_int_equal(chmod(e->private_dir, 0777), 0);
    e->reg = new_registry(e, NULL);
    assert_int_equal(registry_load_file(e->reg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "field=private_dir"));
    assert_non_null(strstr(err, "chmod 0700"));
}


/* ---- last good versions: the same trust checks as a fresh file -------- */

typedef struct signer {
    char key[PATH_MAX];
    char pub[PATH_MAX];
} signer;

static void write_text(const char *path, const char *text, mode_t mode)
{
    write_in_place(path, (const unsigned char *)text, strlen(text));
    assert_int_equal(chmod(path, mode), 0);
}

/* A fresh Ed25519 signer: <base>/<name>.key (0600) and <name>.pub. */
static void make_signer(const env *e, const char *name, signer *s)
{
    char *priv = NULL, *pub = NULL, id[65], err[256];
    assert_int_equal(plugin_trust_keygen(&priv, &pub, id, err, sizeof err), 0);
    snprintf(s->key, sizeof s->key, "%s/%s.key", e->base, name);
    snprintf(s->pub, sizeof s->pub, "%s/%s.pub", e->base, name);
    write_text(s->key, priv, 0600);
    write_text(s->pub, pub, 0644);
    free(priv);
    free(pub);
}

/* Sign `path` as it is now with `s`: writes <path>.sig. */
static void sign_plugin(const signer *s, const char *path)
{
    unsigned char *data;
    size_t len;
    char *text = NULL, err[256], sig[PATH_MAX + 8];
    assert_int_equal(read_all(path, &data, &len), 0);
    if (plugin_trust_sign(s->key, data, len, &text, err, sizeof err) != 0)
        fail_msg("sign %s: %s", path, err);
    snprintf(sig, sizeof sig, "%s.sig", path);
    write_text(sig, text, 0644);
    free(text);
    free(data);
}

static plugin_trust *trust_only(const signer *s)
{
    char err[256];
    const char *keys[1] = {s->pub};
    plugin_trust *t = plugin_trust_new(true, keys, 1, err, sizeof err);
    if (!t)
        fail_msg("trust: %s", err);
    return t;
}

/* Overwrite plugin file `path` with fixture `fixture`, in place. */
static void replace_with(const char *path, const char *fixture)
{
    char src[PATH_MAX];
    unsigned char *data;
    size_t len;
    fixture_path(src, sizeof src, fixture);
    assert_int_equal(read_all(src, &data, &len), 0);
    write_in_place(path, data, len);
    free(data);
}

/* A daemon-like load of the whole directory: keep_last_good, policy `t`.
 * Returns how many loaded; the registry stays in e->reg. */
static int load_dir_as_daemon(env *e, const plugin_trust *t)
{
    char err[1024] = "";
    registry_free(e->reg);
    registry_options o = {.plugin_dir = e->plugins,
                          .credentials_dir = e->creds,
                          .private_dir = e->private_dir,
                          .keep_last_good = true,
                          .trust = t};
    e->reg = registry_new(&o);
    assert_non_null(e->reg);
    return registry_load_dir(e->reg, err, sizeof err);
}

/* The only rejection's reason must hold every one of `parts`. */
static void expect_rejected_reason(const env *e, const char *const *parts)
{
    assert_int_equal(registry_rejected_count(e->reg), 1);
    const char *why = registry_rejected_at(e->reg, 0)->reason;
    print_message("  %s\n", why);
    for (size_t i = 0; parts[i]; i++)
        if (!strstr(why, parts[i]))
            fail_msg("\"%s\" not in: %s", parts[i], why);
}

/* require_signed_plugins: the last good version is served for a refused
 * replacement only while its signature verifies under the trusted keys of
 * *this* load; a signer removed from trusted_keys stops what it signed, on
 * a reload or a restart, fallback included. */
static void test_last_good_checked_against_current_keys(void **state)
{
    env *e = *state;
    signer a, b;
    char path[PATH_MAX];
    make_signer(e, "signer_a", &a);
    make_signer(e, "signer_b", &b);
    plugin_trust *trust_a = trust_only(&a), *trust_b = trust_only(&b);
    add_plugin(e, "good_a", NULL, path, sizeof path);
    sign_plugin(&a, path);
    assert_int_equal(load_dir_as_daemon(e, trust_a), 1);

    /* (a) an unsigned-for-these-bytes replacement: the signed copy serves */
    replace_with(path, "future_minor");
    assert_int_equal(load_dir_as_daemon(e, trust_a), 1);
    const registry_plugin *p = registry_find_key(e->reg, "GOOD_A");
    assert_non_null(p);
    assert_non_null(p->last_error);
    assert_non_null(strstr(p->last_error, "field=signature"));
    call_build_request(p, "/GOOD_A/pay_1", NULL);

    /* (b) signer a is no longer trusted: neither the file nor its last good
     * version loads, and the reason names both */
    assert_int_equal(load_dir_as_daemon(e, trust_b), 0);
    assert_null(registry_find_key(e->reg, "GOOD_A"));
    const char *const why_b[] = {"untrusted key", "last good version", "refused", NULL};
    expect_rejected_reason(e, why_b);

    /* restart with the good file back, still signed by a: still refused */
    replace_with(path, "good_a");
    assert_int_equal(load_dir_as_daemon(e, trust_b), 0);
    expect_rejected_reason(e, why_b);

    /* a trusted again: served again */
    replace_with(path, "future_minor");
    assert_int_equal(load_dir_as_daemon(e, trust_a), 1);
    assert_non_null(registry_find_key(e->reg, "GOOD_A"));
    registry_free(e->reg);
    e->reg = NULL;
    plugin_trust_free(trust_a);
    plugin_trust_free(trust_b);
}

/* The private copy a last good record names passes the owner and mode
 * checks and still has the content the record hashed; a record naming a
 * file outside the private directory is refused. No signature policy: these
 * checks apply always. */
static void test_last_good_copy_checked(void **state)
{
    env *e = *state;
    char path[PATH_MAX], copy[PATH_MAX], record[PATH_MAX];
    add_plugin(e, "good_a", NULL, path, sizeof path);
    assert_int_equal(load_dir_as_daemon(e, NULL), 1);
    snprintf(copy, sizeof copy, "%s", registry_find_key(e->reg, "GOOD_A")->private_path);
    snprintf(record, sizeof record, "%s/last-good/good_a", e->private_dir);
    replace_with(path, "bad_magic");
    assert_int_equal(load_dir_as_daemon(e, NULL), 1); /* the fallback works */

    /* (c) a copy others may write to */
    assert_int_equal(chmod(copy, 0666), 0);
    assert_int_equal(load_dir_as_daemon(e, NULL), 0);
    const char *const why_mode[] = {"field=magic", "last good version", "field=permissions",
                                    "mode 0666", NULL};
    expect_rejected_reason(e, why_mode);
    assert_int_equal(chmod(copy, 0500), 0);
    assert_int_equal(load_dir_as_daemon(e, NULL), 1);

    /* a copy owned by another user */
    if (geteuid() == 0) {
        assert_int_equal(chown(copy, 4242, (gid_t)-1), 0);
        assert_int_equal(load_dir_as_daemon(e, NULL), 0);
        const char *const why_owner[] = {"last good version", "field=owner", "uid 4242", NULL};
        expect_rejected_reason(e, why_owner);
        assert_int_equal(chown(copy, 0, (gid_t)-1), 0);
        assert_int_equal(load_dir_as_daemon(e, NULL), 1);
    }

    /* a copy whose content changed after it was recorded (rewritten in
     * place only once nothing maps it) */
    registry_free(e->reg);
    e->reg = NULL;
    unsigned char *orig, *other;
    size_t orig_len, other_len;
    char src[PATH_MAX];
    assert_int_equal(read_all(copy, &orig, &orig_len), 0);
    fixture_path(src, sizeof src, "future_minor");
    assert_int_equal(read_all(src, &other, &other_len), 0);
    assert_int_equal(chmod(copy, 0700), 0);
    write_in_place(copy, other, other_len);
    assert_int_equal(chmod(copy, 0500), 0);
    assert_int_equal(load_dir_as_daemon(e, NULL), 0);
    assert_null(registry_find_key(e->reg, "FUTURE_MINOR"));
    const char *const why_sha[] = {"last good version", "field=sha256", NULL};
    expect_rejected_reason(e, why_sha);
    registry_free(e->reg);
    e->reg = NULL;
    assert_int_equal(chmod(copy, 0700), 0);
    write_in_place(copy, orig, orig_len);
    assert_int_equal(chmod(copy, 0500), 0);
    assert_int_equal(load_dir_as_daemon(e, NULL), 1);

    /* a record that names a file outside the private directory */
    char outside[PATH_MAX], text[2 * PATH_MAX];
    snprintf(outside, sizeof outside, "%s/elsewhere.so", e->base);
    write_in_place(outside, other, other_len);
    unsigned char md[32];
    unsigned int md_len = 0;
    char hex[65];
    assert_true(EVP_Digest(other, other_len, md, &md_len, EVP_sha256(), NULL));
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(text, sizeof text, "%s\n%s\n", outside, hex);
    write_text(record, text, 0600);
    assert_int_equal(load_dir_as_daemon(e, NULL), 0);
    assert_null(registry_find_key(e->reg, "FUTURE_MINOR"));
    const char *const why_rec[] = {"last good version", "field=last_good", NULL};
    expect_rejected_reason(e, why_rec);
    free(orig);
    free(other);
}

int main(void)
{
    find_fixture_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_a_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_reach_init_and_init_arena_outlives_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_future_minor_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_plugins_get_adapter_flows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_adapter_calls_old_entry_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abi_v10_loads_without_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_dir_first_in_name_order_wins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_dir_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_missing_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_undecryptable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounts_each_get_their_own_init_and_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_account_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_accounts_without_a_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_account_loads_rejects_the_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_copy_survives_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_dir_open_to_others_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_last_good_checked_against_current_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_last_good_copy_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_private_removes_only_unused_copies, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
