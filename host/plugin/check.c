/* check.c - the connector conformance checker (see check.h).
 *
 * Layout of a run:
 *   1. a 0700 temporary directory with plugins/<name>.so (a copy of the
 *      file), credentials/<name>.cfg.enc and the registry's private dir;
 *   2. credentials: the given file, or, when the plugin requires some and
 *      none is given, dummy values encrypted under a throwaway key that
 *      never leaves memory (the names come from the descriptor, read in a
 *      child process);
 *   3. the "load" child: registry_load_file as the host does it, reporting
 *      load, abi, descriptor, credentials, init and fini;
 *   4. one child per behavioural check, each loading the plugin again.
 * Children print their own lines and count failures in a shared page; the
 * parent reports a child killed by a signal with the check and case it was
 * running (also kept in the shared page).
 */
#include "check.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "arena.h"
#include "creds.h"
#include "log.h"
#include "registry.h"
#include "services.h"

#define CHECK_PATH_MAX 1024
#define CHECK_MAX_NAMES 64
#define CHECK_NAME_MAX 128
#define CHECK_REASON_MAX 1024
#define CHECK_BIG_BODY (1024 * 1024)
#define CHECK_LARGE_AMOUNT INT64_C(99999999999)
#define CHECK_STRING_MAX (1u << 20)
#define CHECK_MAX_CURRENCIES 256
#define CHECK_DEFAULT_TIMEOUT_S 60

/* Shared between the parent and its children (MAP_SHARED). */
typedef struct check_shared {
    char check[32];  /* check being run */
    char what[160];  /* case being run */
    int failures;
    int loaded;      /* the load child loaded the plugin */
    int peek_ok;     /* the descriptor was readable */
    int old_create;  /* build_request and handle_response are set */
    int old_webhooks; /* verify_webhook and parse_webhook are set */
    int flows;       /* 1.2 flows declared, flow_request and flow_response set */
    int webhooks;    /* 1.2 webhook_verify and webhook_parse set */
    size_t name_count;
    char names[CHECK_MAX_NAMES][CHECK_NAME_MAX]; /* required credentials */
} check_shared;

typedef struct check_ctx {
    const check_options *opts;
    FILE *out;
    check_shared *sh;
    char dir[CHECK_PATH_MAX];
    char plugin_copy[CHECK_PATH_MAX];
    char creds_dir[CHECK_PATH_MAX];
    char private_dir[CHECK_PATH_MAX];
    char name[256];
    secrets_key key; /* throwaway key for dummy credentials */
    const secrets_key *use_key;
    pagoflex_credentials *secrets; /* values known to sign webhooks with */
    int dummy;
    /* in a child */
    registry *reg;
    const registry_plugin *pl;
    char reason[CHECK_REASON_MAX]; /* first failure of the running check */
} check_ctx;

typedef void (*check_fn)(check_ctx *c);

/* ---- output ----------------------------------------------------------- */

static void check_line(check_ctx *c, int pass, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Print one PASS/FAIL line and count a failure. */
static void check_line(check_ctx *c, int pass, const char *check, const char *fmt, ...)
{
    va_list ap;
    fprintf(c->out, "%s %s: ", pass ? "PASS" : "FAIL", check);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
    fflush(c->out);
    if (!pass)
        c->sh->failures++;
}

/* Note which case runs now, for a crash report. */
static void check_case(check_ctx *c, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check_case(check_ctx *c, const char *check, const char *fmt, ...)
{
    va_list ap;
    snprintf(c->sh->check, sizeof c->sh->check, "%s", check);
    va_start(ap, fmt);
    if (vsnprintf(c->sh->what, sizeof c->sh->what, fmt, ap) < 0)
        c->sh->what[0] = '\0';
    va_end(ap);
}

/* Record the first failure of the running check (later ones are dropped). */
static void check_fail(check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check_fail(check_ctx *c, const char *fmt, ...)
{
    if (c->reason[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(c->reason, sizeof c->reason, fmt, ap) < 0)
        snprintf(c->reason, sizeof c->reason, "failed");
    va_end(ap);
}

static const char *check_status_name(int rc)
{
    static const char *const names[] = {
        "PAGOFLEX_OK",           "PAGOFLEX_ERR_INVALID",     "PAGOFLEX_ERR_UNSUPPORTED",
        "PAGOFLEX_ERR_SIGNATURE", "PAGOFLEX_ERR_CREDENTIALS", "PAGOFLEX_ERR_NOMEM",
        "PAGOFLEX_ERR_TRANSPORT", "PAGOFLEX_ERR_INTERNAL",   "PAGOFLEX_ERR_NOT_FOUND",
        "PAGOFLEX_ERR_TOKEN",     "PAGOFLEX_ERR_KEY_UNKNOWN",
    };
    return rc >= 0 && rc < (int)(sizeof names / sizeof names[0]) ? names[rc] : NULL;
}

static const char *check_state_name(int s)
{
    static const char *const names[] = {"CREATED", "PROCESSING", "PENDING", "SUCCEEDED",
                                        "FAILED",  "REQUIRES_ACTION", "CANCELED"};
    return s >= 0 && s < (int)(sizeof names / sizeof names[0]) ? names[s] : NULL;
}

/* Every state of ABI 1.2 (check_state_name keeps to the 1.0 ones). */
static const char *check_state_label(int s)
{
    static const char *const names[] = {"CREATED",  "PROCESSING",      "PENDING",
                                        "SUCCEEDED", "FAILED",         "REQUIRES_ACTION",
                                        "CANCELED",  "REQUIRES_REVIEW", "REQUIRES_CAPTURE"};
    return s >= 0 && s < (int)(sizeof names / sizeof names[0]) ? names[s] : NULL;
}

/* Rewrite, in place, every path inside the checker's temporary directory
 * as the file the user gave: the private copy dlopen saw as the plugin
 * file, the credentials copy as --credentials (or what stands for the
 * --credential or dummy values), so a reason names the user's file. */
static void check_user_path(const check_ctx *c, char *s, size_t cap)
{
    size_t dl = strlen(c->dir), cl = strlen(c->creds_dir);
    char *p;
    if (!dl)
        return;
    while ((p = strstr(s, c->dir)) != NULL) {
        const char *to = c->opts->plugin_file;
        if (strncmp(p, c->creds_dir, cl) == 0)
            to = c->opts->credentials_file  ? c->opts->credentials_file
                 : c->opts->credential_count ? "<the --credential values>"
                                             : "<the generated dummy credentials>";
        size_t n = strcspn(p, ":\" ,)"), tl = strlen(to), rest = strlen(p + n);
        if ((size_t)(p - s) + tl + rest + 1 > cap)
            return;
        memmove(p + tl, p + n, rest + 1);
        memcpy(p, to, tl);
    }
}

/* ---- files ------------------------------------------------------------ */

static int check_path(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int check_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return close(fd);
}

static int check_copy(const char *from, const char *to, char *err, size_t errlen)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = -1;
    if (secrets_read_file(from, 256u << 20, &data, &len, err, errlen) != 0)
        goto fail;
    if (check_write(to, data, len) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", to, strerror(errno));
        goto fail;
    }
    rc = 0;
fail:
    free(data);
    return rc;
}

static int check_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

/* ---- child processes -------------------------------------------------- */

/* Run fn in a forked child; report a crash, a hang or an odd exit status
 * under the check and case the child was running. */
static void check_in_child(check_ctx *c, const char *check, check_fn fn)
{
    unsigned timeout = c->opts->timeout_s ? c->opts->timeout_s : CHECK_DEFAULT_TIMEOUT_S;
    int status = 0;
    check_case(c, check, "start");
    fflush(c->out);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        check_line(c, 0, check, "cannot fork a child to run it: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        alarm(timeout);
        fn(c);
        fflush(c->out);
        fflush(stderr);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGALRM)
            check_line(c, 0, c->sh->check, "did not return within %u s on %s", timeout,
                       c->sh->what);
        else
            check_line(c, 0, c->sh->check, "crashed with signal %d (%s) on %s", sig,
                       strsignal(sig), c->sh->what);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        check_line(c, 0, c->sh->check,
                   "the check process exited with status %d (the plugin called exit, or "
                   "valgrind found errors) after %s",
                   WEXITSTATUS(status), c->sh->what);
    }
}

/* ---- reading the descriptor for credential names ---------------------- */

/* Child: dlopen the copy, read required_credentials if the header is sound. */
static void check_peek(check_ctx *c)
{
    void *h = dlopen(c->plugin_copy, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    void *sym = dlsym(h, PAGOFLEX_ENTRY_SYMBOL);
    pagoflex_connector_entry_fn entry;
    if (!sym)
        goto done;
    memcpy(&entry, &sym, sizeof entry);
    check_case(c, "load", "calling " PAGOFLEX_ENTRY_SYMBOL "()");
    const pagoflex_connector *d = entry();
    size_t min = offsetof(pagoflex_connector, parse_webhook) + sizeof d->parse_webhook;
    if (!d || d->magic != PAGOFLEX_MAGIC || d->abi_major != PAGOFLEX_ABI_MAJOR || d->size < min)
        goto done;
    c->sh->peek_ok = 1;
    check_case(c, "descriptor", "reading required_credentials");
    for (size_t i = 0; d->required_credentials && d->required_credentials[i]; i++) {
        if (i == CHECK_MAX_NAMES)
            break;
        const char *n = d->required_credentials[i];
        if (strlen(n) >= CHECK_NAME_MAX)
            continue; /* the registry reports it */
        snprintf(c->sh->names[c->sh->name_count++], CHECK_NAME_MAX, "%s", n);
    }
done:
    dlclose(h);
}

/* Encrypt c->secrets as a libconfig document under a throwaway key that
 * never leaves memory, and put it where the registry looks. */
static int check_write_credentials(check_ctx *c, char *err, size_t errlen)
{
    char *doc = NULL, path[CHECK_PATH_MAX], fname[300];
    unsigned char *enc = NULL;
    size_t cap = 1, used = 0;
    int rc = -1;
    for (size_t i = 0; i < c->secrets->count; i++)
        cap += strlen(c->secrets->names[i]) + 2 * strlen(c->secrets->values[i]) + 16;
    if (!(doc = calloc(1, cap)) || secrets_key_generate(&c->key) != 0) {
        snprintf(err, errlen, "out of memory or no randomness for the test credentials");
        goto fail;
    }
    for (size_t i = 0; i < c->secrets->count; i++) {
        used += (size_t)snprintf(doc + used, cap - used, "%s = \"", c->secrets->names[i]);
        for (const char *v = c->secrets->values[i]; *v; v++) {
            if (*v == '"' || *v == '\\')
                doc[used++] = '\\';
            doc[used++] = *v;
        }
        used += (size_t)snprintf(doc + used, cap - used, "\";\n");
    }
    size_t enc_len = 0;
    if (secrets_encrypt(&c->key, c->name, (unsigned char *)doc, used, &enc, &enc_len, err,
                        errlen) != 0)
        goto fail;
    if (snprintf(fname, sizeof fname, "%s.cfg.enc", c->name) >= (int)sizeof fname ||
        check_path(path, sizeof path, c->creds_dir, fname) != 0 ||
        check_write(path, enc, enc_len) != 0) {
        snprintf(err, errlen, "cannot write the test credentials in %s", c->creds_dir);
        goto fail;
    }
    c->use_key = &c->key;
    rc = 0;
fail:
    if (rc != 0 && !err[0])
        snprintf(err, errlen, "cannot build the test credentials");
    if (doc)
        OPENSSL_cleanse(doc, cap);
    free(doc);
    free(enc);
    return rc;
}

/* Generate "dummy-<hex>" for every required name and write them. */
static int check_dummy_credentials(check_ctx *c, char *err, size_t errlen)
{
    if (!(c->secrets = creds_new())) {
        snprintf(err, errlen, "out of memory for dummy credentials");
        return -1;
    }
    for (size_t i = 0; i < c->sh->name_count; i++) {
        unsigned char rnd[12];
        char value[64] = "dummy-";
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            return -1;
        for (size_t k = 0; k < sizeof rnd; k++)
            snprintf(value + 6 + 2 * k, 3, "%02x", rnd[k]);
        if (creds_set(c->secrets, c->sh->names[i], value) != 0) {
            snprintf(err, errlen, "out of memory for dummy credentials");
            return -1;
        }
    }
    if (check_write_credentials(c, err, errlen) != 0)
        return -1;
    c->dummy = 1;
    return 0;
}

/* --credential NAME=VALUE pairs: plaintext test credentials. */
static int check_given_credentials(check_ctx *c, char *err, size_t errlen)
{
    if (!(c->secrets = creds_new())) {
        snprintf(err, errlen, "out of memory for the test credentials");
        return -1;
    }
    for (size_t i = 0; i < c->opts->credential_count; i++) {
        const char *kv = c->opts->credentials[i], *eq = strchr(kv, '=');
        char name[CHECK_NAME_MAX];
        if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof name) {
            size_t shown = eq ? (size_t)(eq - kv) : strlen(kv); /* never the value */
            snprintf(err, errlen, "--credential %.*s: expected NAME=VALUE",
                     (int)(shown > 64 ? 64 : shown), kv);
            return -1;
        }
        memcpy(name, kv, (size_t)(eq - kv));
        name[eq - kv] = '\0';
        for (const char *v = eq + 1; *v; v++)
            if ((unsigned char)*v < 0x20) {
                snprintf(err, errlen, "--credential %s: the value holds a control character",
                         name);
                return -1;
            }
        if (creds_set(c->secrets, name, eq + 1) != 0) {
            snprintf(err, errlen, "out of memory for the test credentials");
            return -1;
        }
    }
    return check_write_credentials(c, err, errlen);
}

/* ---- loading ---------------------------------------------------------- */

/* Load the plugins of --with DIR (except one named like ours), then ours.
 * 0 with c->pl set, or -1 with the registry's rejection line in err. */
static int check_load(check_ctx *c, char *err, size_t errlen)
{
    registry_options ro = {.credentials_dir = c->creds_dir, .private_dir = c->private_dir,
                           .master_key = c->use_key};
    c->reg = registry_new(&ro);
    if (!c->reg) {
        snprintf(err, errlen, "field=registry: out of memory");
        return -1;
    }
    if (c->opts->with_dir) {
        DIR *d = opendir(c->opts->with_dir);
        struct dirent *de;
        char own[300], path[CHECK_PATH_MAX], why[1024];
        snprintf(own, sizeof own, "%s.so", c->name);
        while (d && (de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            if (de->d_name[0] == '.' || n < 4 || strcmp(de->d_name + n - 3, ".so") != 0 ||
                strcmp(de->d_name, own) == 0 ||
                check_path(path, sizeof path, c->opts->with_dir, de->d_name) != 0)
                continue;
            check_case(c, "load", "loading %s from --with", de->d_name);
            registry_load_file(c->reg, path, why, sizeof why);
        }
        if (d)
            closedir(d);
    }
    check_case(c, "init", "registry_load_file (dlopen, descriptor checks, credentials, init)");
    if (registry_load_file(c->reg, c->plugin_copy, err, errlen) != 0) {
        check_user_path(c, err, errlen);
        return -1;
    }
    c->pl = registry_at(c->reg, registry_count(c->reg) - 1);
    return 0;
}

static void check_unload(check_ctx *c)
{
    check_case(c, "fini", "fini (registry_free)");
    registry_free(c->reg);
    c->reg = NULL;
    c->pl = NULL;
}

/* The check a registry rejection belongs to, from its field=... */
static const char *check_for_field(const char *line)
{
    static const struct {
        const char *field, *check;
    } map[] = {
        {"magic", "abi"},          {"abi_major", "abi"},         {"size", "abi"},
        {"build_signature", "abi"}, {"key", "descriptor"},        {"webhook_path", "descriptor"},
        {"version", "descriptor"}, {"build_request", "descriptor"}, {"handle_response", "descriptor"},
        {"verify_webhook", "descriptor"}, {"parse_webhook", "descriptor"},
        {"required_credentials", "descriptor"}, {"credentials", "credentials"},
    };
    const char *f = strstr(line, "field=");
    if (!f)
        return "load";
    f += 6;
    size_t n = strcspn(f, " ");
    if (n == 4 && strncmp(f, "init", 4) == 0)
        return strstr(f, "expected=non-NULL") ? "descriptor" : "init";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].field) == n && strncmp(f, map[i].field, n) == 0)
            return map[i].check;
    return "load";
}

static int check_token(const char *s, size_t max, int (*ok)(int))
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)s[i]))
            return 0;
    return 1;
}

static int check_is_upper(int ch)
{
    return ch >= 'A' && ch <= 'Z';
}

static int check_is_setting_char(int ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* What the registry does not check: currency codes and credential names. */
static void check_descriptor_extra(check_ctx *c, const pagoflex_connector *d)
{
    size_t ncur = 0;
    for (; d->currencies && d->currencies[ncur]; ncur++) {
        if (ncur == CHECK_MAX_CURRENCIES) {
            check_fail(c, "field=currencies expected=a NULL-terminated list of at most %d "
                          "codes found=more: is currencies NULL-terminated?",
                       CHECK_MAX_CURRENCIES);
            return;
        }
        const char *cur = d->currencies[ncur];
        if (!check_token(cur, 3, check_is_upper) || strlen(cur) != 3)
            check_fail(c, "field=currencies expected=ISO 4217 codes like \"USD\" found=\"%.8s\": "
                          "list upper-case three-letter codes, or set currencies to NULL for any",
                       cur);
    }
    if (d->currencies && ncur == 0)
        check_fail(c, "field=currencies expected=at least one code, or NULL for any found=an "
                      "empty list: the host would refuse every payment");
    for (size_t i = 0; d->required_credentials && d->required_credentials[i] && i < 64; i++) {
        const char *n = d->required_credentials[i];
        if (!check_token(n, 64, check_is_setting_char) || (n[0] >= '0' && n[0] <= '9'))
            check_fail(c, "field=required_credentials expected=libconfig setting names "
                          "[A-Za-z_][A-Za-z0-9_]* found=\"%.64s\": rename the credential",
                       n);
    }
}

static int check_has_flows(const pagoflex_connector *d)
{
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, flow_response) && d->flows &&
           d->flow_request && d->flow_response;
}

static int check_has_webhooks(const pagoflex_connector *d)
{
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, webhook_parse) && d->webhook_verify &&
           d->webhook_parse;
}

/* Child "load": every load-time check, then fini, then a second load. */
static void check_load_child(check_ctx *c)
{
    char err[2048] = "";
    if (check_load(c, err, sizeof err) != 0) {
        const char *check = check_for_field(err);
        const char *f = strstr(err, "field=");
        static const char *const order[] = {"load", "abi", "descriptor", "credentials", "init"};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            if (strcmp(order[i], check) == 0)
                break;
            check_line(c, 1, order[i], "ok");
        }
        check_line(c, 0, check, "%s%s", f ? f : err,
                   strcmp(check, "init") == 0 && !c->opts->verbose
                       ? " (rerun with --verbose to see them)"
                       : "");
        check_unload(c);
        return;
    }
    const pagoflex_connector *d = c->pl->desc;
    check_line(c, 1, "load", "dlopen(RTLD_NOW | RTLD_LOCAL) of a private copy, entry point %s",
               PAGOFLEX_ENTRY_SYMBOL);
    if (d->abi_minor > PAGOFLEX_ABI_MINOR)
        check_line(c, 1, "abi", "built for ABI %u.%u (size %u), host speaks %d.%d: the fields "
                                "it appended are ignored by this host",
                   (unsigned)d->abi_major, (unsigned)d->abi_minor, (unsigned)d->size,
                   PAGOFLEX_ABI_MAJOR, PAGOFLEX_ABI_MINOR);
    else
        check_line(c, 1, "abi", "built for ABI %u.%u (size %u), host speaks %d.%d, build "
                                "signature matches",
                   (unsigned)d->abi_major, (unsigned)d->abi_minor, (unsigned)d->size,
                   PAGOFLEX_ABI_MAJOR, PAGOFLEX_ABI_MINOR);
    c->reason[0] = '\0';
    check_descriptor_extra(c, d);
    if (c->reason[0])
        check_line(c, 0, "descriptor", "%s", c->reason);
    else
        check_line(c, 1, "descriptor", "key=%s webhook_path=%s version=%.32s, %s, %s", d->key,
                   d->webhook_path, d->version,
                   d->currencies ? "currencies listed" : "any currency",
                   d->execute_request ? "own execute_request" : "host's libcurl executor");
    check_line(c, 1, "credentials", "every required credential present%s",
               c->dummy ? " (generated dummy values)" : "");
    check_line(c, 1, "init", "returned PAGOFLEX_OK");
    check_unload(c);
    check_case(c, "init", "a second load after fini (as a reload does)");
    if (check_load(c, err, sizeof err) != 0) {
        const char *f = strstr(err, "field=");
        check_line(c, 0, "fini", "the plugin does not load again after fini: %s", f ? f : err);
    } else {
        check_line(c, 1, "fini", "returned; the plugin loads and initialises again after it");
        c->sh->loaded = 1;
        c->sh->old_create = d->build_request && d->handle_response;
        c->sh->old_webhooks = d->verify_webhook && d->parse_webhook;
        c->sh->flows = check_has_flows(d);
        c->sh->webhooks = check_has_webhooks(d);
    }
    check_unload(c);
}

/* ---- build_request ---------------------------------------------------- */

static int check_header_name_char(int ch)
{
    return ch > 0x20 && ch < 0x7f && ch != ':';
}

/* Well-formed request: method, URL, headers, body. Sets c->reason. */
static void check_request(check_ctx *c, const pagoflex_http_request *r, const char *what)
{
    const pagoflex_connector *d = c->pl->desc;
    if (!check_token(r->method, 16, check_is_upper))
        return check_fail(c, "%s: method is %s, expected an upper-case HTTP method like POST",
                          what, r->method ? "not upper-case letters" : "NULL");
    if (!r->url)
        return check_fail(c, "%s: url is NULL", what);
    size_t ulen = strnlen(r->url, 8193);
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)r->url[i] <= 0x20 || (unsigned char)r->url[i] >= 0x7f)
            return check_fail(c, "%s: url holds a space or control character at offset %zu",
                              what, i);
    if (ulen > 8192)
        return check_fail(c, "%s: url is longer than 8192 bytes", what);
    if (!d->execute_request) {
        size_t s = strncmp(r->url, "http://", 7) == 0    ? 7
                   : strncmp(r->url, "https://", 8) == 0 ? 8
                                                         : 0;
        if (!s || ulen == s || r->url[s] == '/')
            return check_fail(c, "%s: url \"%.80s\" is not an absolute http(s) URL (the host's "
                                 "libcurl executor runs it)",
                              what, r->url);
    } else if (!strchr(r->url, ':')) {
        return check_fail(c, "%s: url \"%.80s\" has no scheme", what, r->url);
    }
    if (r->header_count && !r->headers)
        return check_fail(c, "%s: header_count is %zu but headers is NULL", what,
                          r->header_count);
    if (r->header_count > 1000)
        return check_fail(c, "%s: header_count %zu is absurd", what, r->header_count);
    for (size_t i = 0; i < r->header_count; i++) {
        const pagoflex_header *h = &r->headers[i];
        if (!check_token(h->name, 256, check_header_name_char))
            return check_fail(c, "%s: header %zu has a %s name", what, i,
                              h->name ? "malformed" : "NULL");
        if (!h->value)
            return check_fail(c, "%s: header %s has a NULL value", what, h->name);
        if (strpbrk(h->value, "\r\n"))
            return check_fail(c, "%s: header %s value holds CR or LF", what, h->name);
        if (strcasecmp(h->name, "Content-Length") == 0 &&
            strtoull(h->value, NULL, 10) != (unsigned long long)r->body_len)
            return check_fail(c, "%s: Content-Length %s differs from body_len %zu", what,
                              h->value, r->body_len);
    }
    if (r->body_len && !r->body)
        return check_fail(c, "%s: body_len is %zu but body is NULL", what, r->body_len);
    unsigned sum = 0; /* touch every byte: a wrong body_len shows here */
    for (size_t i = 0; i < r->body_len; i++)
        sum += r->body[i];
    (void)sum;
    if (r->timeout_ms < 0)
        return check_fail(c, "%s: timeout_ms %ld is negative", what, r->timeout_ms);
}

static void check_build_request_child(check_ctx *c)
{
    static const char *const common[] = {"USD", "EUR", "ARS", "BRL", "JPY", NULL};
    static const int64_t amounts[] = {1, CHECK_LARGE_AMOUNT};
    char err[2048];
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "build_request", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    const char *const *cur = d->currencies ? d->currencies : common;
    size_t ok = 0, cases = 0;
    c->reason[0] = '\0';
    for (size_t i = 0; cur[i] && i < CHECK_MAX_CURRENCIES; i++) {
        for (size_t k = 0; k < 2; k++) {
            char what[96], id[48];
            snprintf(what, sizeof what, "%s amount %lld", cur[i], (long long)amounts[k]);
            snprintf(id, sizeof id, "pay_check_%zu_%zu", i, k);
            pagoflex_arena *a = arena_new();
            pagoflex_payment p = {.id = id, .amount = amounts[k], .currency = cur[i],
                                  .reference = "check-order", .description = "Pagoflex check",
                                  .webhook_url = "https://pagoflex.invalid/webhooks/check"};
            pagoflex_http_request req = {0};
            check_case(c, "build_request", "%s", what);
            int rc = a ? d->build_request(c->pl->state, &p, a, &req) : PAGOFLEX_ERR_NOMEM;
            cases++;
            if (rc == PAGOFLEX_OK) {
                ok++;
                check_request(c, &req, what);
            } else if (!check_status_name(rc)) {
                check_fail(c, "%s: returned %d, not a pagoflex_status", what, rc);
            } else if (d->currencies && k == 0) {
                check_fail(c, "%s: returned %s although the descriptor lists %s", what,
                           check_status_name(rc), cur[i]);
            } else if (rc != PAGOFLEX_ERR_UNSUPPORTED && rc != PAGOFLEX_ERR_INVALID) {
                check_fail(c, "%s: returned %s (only UNSUPPORTED or INVALID refuse a payment)",
                           what, check_status_name(rc));
            }
            arena_free(a);
        }
    }
    if (!c->reason[0] && ok == 0)
        check_fail(c, "no sample payment produced a request");
    if (c->reason[0])
        check_line(c, 0, "build_request", "%s", c->reason);
    else
        check_line(c, 1, "build_request", "%zu of %zu sample payments give a well-formed "
                                          "request (amounts 1 and %lld)",
                   ok, cases, (long long)CHECK_LARGE_AMOUNT);
    check_unload(c);
}

/* ---- handle_response -------------------------------------------------- */

enum { CHECK_ANY, CHECK_NOT_SUCCEEDED, CHECK_PROCESSING };

typedef struct check_answer {
    const char *what;
    pagoflex_transport transport;
    int status;
    const char *body; /* NULL: the 1 MiB body */
    int rule;
} check_answer;

static const check_answer check_answers[] = {
    {"200 success-like JSON", PAGOFLEX_TRANSPORT_OK, 200,
     "{\"status\":\"OK\",\"id\":\"chk_0000000000000000000000001\",\"state\":\"approved\"}",
     CHECK_ANY},
    {"200 refusal JSON", PAGOFLEX_TRANSPORT_OK, 200,
     "{\"status\":\"REJECTED\",\"id\":\"chk_0000000000000000000000002\",\"reason\":"
     "\"insufficient funds\",\"error\":\"declined\"}",
     CHECK_ANY},
    {"401 unauthorized", PAGOFLEX_TRANSPORT_OK, 401, "{\"error\":\"unauthorized\"}",
     CHECK_NOT_SUCCEEDED},
    {"422 invalid request", PAGOFLEX_TRANSPORT_OK, 422, "{\"error\":\"invalid amount\"}",
     CHECK_NOT_SUCCEEDED},
    {"429 too many requests", PAGOFLEX_TRANSPORT_OK, 429, "{\"error\":\"slow down\"}",
     CHECK_PROCESSING},
    {"500 internal error", PAGOFLEX_TRANSPORT_OK, 500, "{\"error\":\"internal\"}",
     CHECK_PROCESSING},
    {"503 unavailable", PAGOFLEX_TRANSPORT_OK, 503, "", CHECK_PROCESSING},
    {"timeout", PAGOFLEX_TRANSPORT_TIMEOUT, 0, "", CHECK_PROCESSING},
    {"connect error", PAGOFLEX_TRANSPORT_CONNECT, 0, "", CHECK_PROCESSING},
    {"transport error", PAGOFLEX_TRANSPORT_ERROR, 0, "", CHECK_PROCESSING},
    {"200 empty body", PAGOFLEX_TRANSPORT_OK, 200, "", CHECK_ANY},
    {"200 non-JSON body", PAGOFLEX_TRANSPORT_OK, 200, "<html>502 Bad Gateway</html>", CHECK_ANY},
    {"200 1 MiB body", PAGOFLEX_TRANSPORT_OK, 200, NULL, CHECK_ANY},
};

static void check_result_strings(check_ctx *c, const pagoflex_payment_result *r, const char *what)
{
    const char *s[] = {r->provider_reference_id, r->error_code, r->error_message};
    for (size_t i = 0; i < 3; i++)
        if (s[i] && strnlen(s[i], CHECK_STRING_MAX) == CHECK_STRING_MAX)
            check_fail(c, "%s: a result string is over 1 MiB or not NUL-terminated", what);
}

static void check_handle_response_child(check_ctx *c)
{
    char err[2048];
    unsigned char *big = NULL;
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "handle_response", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    c->reason[0] = '\0';
    if (!(big = malloc(CHECK_BIG_BODY))) {
        check_fail(c, "out of memory");
        goto done;
    }
    memset(big, 'A', CHECK_BIG_BODY);
    memcpy(big, "{\"id\":\"", 7);
    pagoflex_payment p = {.id = "pay_check_1", .amount = 1050,
                          .currency = d->currencies && d->currencies[0] ? d->currencies[0]
                                                                        : "USD",
                          .webhook_url = "https://pagoflex.invalid/webhooks/check"};
    for (size_t i = 0; i < sizeof check_answers / sizeof check_answers[0]; i++) {
        const check_answer *ca = &check_answers[i];
        pagoflex_header hdr = {"Content-Type", "application/json"};
        pagoflex_http_response resp = {.transport = ca->transport, .status = ca->status};
        if (ca->transport == PAGOFLEX_TRANSPORT_OK) {
            resp.headers = &hdr;
            resp.header_count = 1;
            resp.body = ca->body ? (const unsigned char *)ca->body : big;
            resp.body_len = ca->body ? strlen(ca->body) : CHECK_BIG_BODY;
        }
        pagoflex_payment_result res;
        memset(&res, 0, sizeof res);
        pagoflex_arena *a = arena_new();
        check_case(c, "handle_response", "%s", ca->what);
        int rc = a ? d->handle_response(c->pl->state, &p, &resp, a, &res) : PAGOFLEX_ERR_NOMEM;
        if (rc != PAGOFLEX_OK) {
            if (!check_status_name(rc))
                check_fail(c, "%s: returned %d, not a pagoflex_status", ca->what, rc);
            /* Otherwise the host keeps the payment processing: acceptable. */
        } else if (!check_state_name((int)res.state)) {
            check_fail(c, "%s: state %d is not a pagoflex_state", ca->what, (int)res.state);
        } else if (res.state == PAGOFLEX_STATE_CREATED) {
            check_fail(c, "%s: returned PAGOFLEX_OK without setting a state (CREATED)", ca->what);
        } else if (ca->rule == CHECK_PROCESSING && res.state != PAGOFLEX_STATE_PROCESSING) {
            check_fail(c, "%s: mapped to %s; a transient answer must map to PROCESSING (the "
                          "bank may still take the payment), never %s",
                       ca->what, check_state_name((int)res.state),
                       res.state == PAGOFLEX_STATE_FAILED ? "FAILED" : "a final state");
        } else if (ca->rule == CHECK_NOT_SUCCEEDED && res.state == PAGOFLEX_STATE_SUCCEEDED) {
            check_fail(c, "%s: mapped to SUCCEEDED; the bank refused the request", ca->what);
        } else {
            check_result_strings(c, &res, ca->what);
        }
        arena_free(a);
    }
done:
    free(big);
    if (c->reason[0])
        check_line(c, 0, "handle_response", "%s", c->reason);
    else
        check_line(c, 1, "handle_response", "%zu canned answers mapped to valid states; "
                                            "timeout, connect, 429 and 5xx stay PROCESSING",
                   sizeof check_answers / sizeof check_answers[0]);
    check_unload(c);
}

/* ---- verify_webhook --------------------------------------------------- */

#define CHECK_WEBHOOK_BODY                                                                 \
    "{\"event_id\":\"evt_check_1\",\"event\":\"evt_check_1\",\"tx_id\":\"chk_1\","         \
    "\"ref\":\"pay_check_1\",\"payment_id\":\"pay_check_1\",\"payment\":\"pay_check_1\","  \
    "\"status\":\"APPROVED\",\"result\":\"paid\",\"amount\":1050,\"currency\":\"USD\"}"
#define CHECK_MAX_SIG_NAMES 12

/* Header names a bank might sign with, some derived from the key and path. */
static size_t check_sig_names(const pagoflex_connector *d, char names[][80])
{
    static const char *const fixed[] = {"X-Signature", "Signature", "X-Webhook-Signature",
                                        "Webhook-Signature", "X-Hub-Signature-256",
                                        "Authorization"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        snprintf(names[n++], 80, "%s", fixed[i]);
    char key[40], nounder[40], first[40];
    snprintf(key, sizeof key, "%s", d->key);
    size_t k = 0, f = 0;
    for (size_t i = 0; key[i]; i++) {
        if (key[i] != '_')
            nounder[k++] = key[i];
        if (f == i && key[i] != '_')
            first[f++] = key[i];
        if (key[i] == '_')
            key[i] = '-';
    }
    nounder[k] = first[f] = '\0';
    const char *derived[] = {d->webhook_path, key, nounder, first};
    for (size_t i = 0; i < 4 && n < CHECK_MAX_SIG_NAMES; i++)
        if (snprintf(names[n], 80, "X-%s-Signature", derived[i]) < 80)
            n++;
    return n;
}

static void check_random_hex(char *out, size_t bytes)
{
    unsigned char r[64];
    if (bytes > sizeof r)
        bytes = sizeof r;
    if (RAND_bytes(r, (int)bytes) != 1)
        memset(r, 0x5a, bytes);
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* One delivery: each candidate header set to value(i); must be refused. */
static void check_refused(check_ctx *c, const char *what, char names[][80], size_t n,
                          char values[][200], const char *body)
{
    const pagoflex_connector *d = c->pl->desc;
    pagoflex_header h[CHECK_MAX_SIG_NAMES + 1];
    for (size_t i = 0; i < n; i++) {
        h[i].name = names[i];
        h[i].value = values[i];
    }
    h[n].name = "Content-Type";
    h[n].value = "application/json";
    pagoflex_arena *a = arena_new();
    check_case(c, "verify_webhook", "%s", what);
    int rc = a ? d->verify_webhook(c->pl->state, n ? h : NULL, n ? n + 1 : 0,
                                   (const unsigned char *)body, strlen(body), a)
               : PAGOFLEX_ERR_NOMEM;
    if (rc == PAGOFLEX_OK)
        check_fail(c, "%s: accepted (PAGOFLEX_OK); it must be refused with "
                      "PAGOFLEX_ERR_SIGNATURE",
                   what);
    else if (!check_status_name(rc))
        check_fail(c, "%s: returned %d, not a pagoflex_status", what, rc);
    arena_free(a);
}

/* Sign `signed_body` with `secret` in the styles banks use, per header. */
static void check_signed_values(const char *secret, const char *signed_body, size_t n,
                                char values[][200], int bancox_style)
{
    unsigned char mac[32];
    char hex[65];
    long long t = (long long)time(NULL);
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", t);
    size_t blen = strlen(signed_body), tlen = strlen(ts);
    unsigned char *msg = malloc(tlen + 1 + blen);
    const pagoflex_host_services *h = NULL;
    services_plugin sp;
    services_init(&sp, "check");
    h = &sp.table;
    if (!msg)
        return;
    if (bancox_style) {
        memcpy(msg, ts, tlen);
        msg[tlen] = '.';
        memcpy(msg + tlen + 1, signed_body, blen);
        h->hmac_sha256(secret, strlen(secret), msg, tlen + 1 + blen, mac);
    } else {
        h->hmac_sha256(secret, strlen(secret), signed_body, blen, mac);
    }
    h->hex_encode(mac, sizeof mac, hex);
    for (size_t i = 0; i < n; i++) {
        if (bancox_style)
            snprintf(values[i], 200, "t=%s,v1=%s", ts, hex);
        else
            snprintf(values[i], 200, "%s", hex);
    }
    h->wipe(mac, sizeof mac);
    free(msg);
}

static void check_verify_webhook_child(check_ctx *c)
{
    char err[2048];
    char names[CHECK_MAX_SIG_NAMES][80];
    char values[CHECK_MAX_SIG_NAMES][200];
    char tampered[sizeof CHECK_WEBHOOK_BODY];
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "verify_webhook", "the plugin did not load again: %s", err);
    c->reason[0] = '\0';
    size_t n = check_sig_names(c->pl->desc, names);
    check_refused(c, "unsigned body (no headers)", names, 0, values, CHECK_WEBHOOK_BODY);
    for (size_t i = 0; i < n; i++)
        check_random_hex(values[i], 32);
    check_refused(c, "random hex signature headers", names, n, values, CHECK_WEBHOOK_BODY);
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        check_random_hex(hex, 32);
        snprintf(values[i], sizeof values[i], "t=%lld,v1=%s", (long long)time(NULL), hex);
    }
    check_refused(c, "random t=,v1= signature headers", names, n, values, CHECK_WEBHOOK_BODY);
    /* Signed with a credential the plugin holds, then altered. */
    memcpy(tampered, CHECK_WEBHOOK_BODY, sizeof tampered);
    memcpy(strstr(tampered, "1050"), "9050", 4);
    size_t signed_with = 0;
    for (size_t k = 0; c->secrets && k < c->secrets->count; k++) {
        for (int style = 0; style < 2; style++) {
            char what[200];
            check_signed_values(c->secrets->values[k], CHECK_WEBHOOK_BODY, n, values, style);
            snprintf(what, sizeof what, "tampered body signed with %.64s (%s)",
                     c->secrets->names[k], style ? "t=,v1= HMAC" : "hex HMAC of the body");
            check_refused(c, what, names, n, values, tampered);
        }
        signed_with++;
    }
    if (c->reason[0])
        check_line(c, 0, "verify_webhook", "%s", c->reason);
    else
        check_line(c, 1, "verify_webhook", "refuses unsigned, randomly signed%s webhooks",
                   signed_with ? " and tampered signed" : "");
    check_unload(c);
}

/* ---- parse_webhook ---------------------------------------------------- */

static void check_parse_webhook_child(check_ctx *c)
{
    static const struct {
        const char *what, *body;
    } cases[] = {
        {"empty body", ""},          {"non-JSON body", "not json at all"},
        {"empty object", "{}"},      {"JSON array", "[1,2,3]"},
        {"truncated JSON", "{\"event_id\":\"evt_1\",\"sta"},
        {"wrong types", "{\"event_id\":42,\"status\":[],\"tx_id\":{}}"},
    };
    char err[2048];
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "parse_webhook", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    c->reason[0] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pagoflex_webhook_event ev;
        memset(&ev, 0, sizeof ev);
        pagoflex_arena *a = arena_new();
        check_case(c, "parse_webhook", "%s", cases[i].what);
        int rc = a ? d->parse_webhook(c->pl->state, (const unsigned char *)cases[i].body,
                                      strlen(cases[i].body), a, &ev)
                   : PAGOFLEX_ERR_NOMEM;
        if (!check_status_name(rc))
            check_fail(c, "%s: returned %d, not a pagoflex_status", cases[i].what, rc);
        else if (rc == PAGOFLEX_OK && (!ev.event_id || !ev.event_id[0]))
            check_fail(c, "%s: returned PAGOFLEX_OK without an event_id", cases[i].what);
        else if (rc == PAGOFLEX_OK && !check_state_name((int)ev.state))
            check_fail(c, "%s: state %d is not a pagoflex_state", cases[i].what, (int)ev.state);
        arena_free(a);
    }
    if (c->reason[0])
        check_line(c, 0, "parse_webhook", "%s", c->reason);
    else
        check_line(c, 1, "parse_webhook", "garbage bodies are refused or parsed safely");
    check_unload(c);
}

/* ---- flows (ABI 1.2) -------------------------------------------------- */

static const char *const check_flow_names[PAGOFLEX_FLOW_COUNT] = {
    "AUTHORIZE", "CAPTURE", "VOID", "REFUND", "PAYMENT_SYNC", "REFUND_SYNC"};


static int check_is_sync(int flow)
{
    return flow == PAGOFLEX_FLOW_PAYMENT_SYNC || flow == PAGOFLEX_FLOW_REFUND_SYNC;
}

/* A realistic input for `flow`; variant 0 is the common case (must give a
 * request), 1 the other shape (manual capture, partial amount, no bank id
 * yet for the syncs). p and in are filled; strings are literals. */
static void check_flow_input(const pagoflex_connector *d, int flow, int variant,
                             pagoflex_payment *p, pagoflex_flow_input *in)
{
    int sync_without_id = check_is_sync(flow) && variant == 1;
    *p = (pagoflex_payment){
        .id = "pay_check_1", .amount = 1050,
        .currency = d->currencies && d->currencies[0] ? d->currencies[0] : "USD",
        .reference = "check-order", .description = "Pagoflex check",
        .webhook_url = "https://pagoflex.invalid/webhooks/check",
        .provider_reference_id = flow == PAGOFLEX_FLOW_AUTHORIZE ||
                                         (flow == PAGOFLEX_FLOW_PAYMENT_SYNC && sync_without_id)
                                     ? NULL
                                     : "chk_0000000000000000000000001"};
    *in = (pagoflex_flow_input){.size = (uint32_t)sizeof *in, .flow = (pagoflex_flow)flow,
                                .payment = p, .request_id = "req_check_1"};
    if (PAGOFLEX_HAS_FIELD(d, pagoflex_connector, token_request) && d->token_request)
        in->access_token = "check-access-token";
    switch (flow) {
    case PAGOFLEX_FLOW_AUTHORIZE:
        in->operation_id = p->id;
        in->capture = variant == 0;
        in->return_url = "https://merchant.invalid/return";
        in->payment_method_type = "card_token";
        in->payment_method_token = "tok_check_visa";
        break;
    case PAGOFLEX_FLOW_CAPTURE:
        in->operation_id = "cap_check_1";
        in->amount = variant == 0 ? p->amount : 500;
        break;
    case PAGOFLEX_FLOW_VOID:
        in->operation_id = "void_check_1";
        break;
    case PAGOFLEX_FLOW_REFUND:
    case PAGOFLEX_FLOW_REFUND_SYNC:
        in->operation_id = "ref_check_1";
        in->refund_id = "ref_check_1";
        in->amount = flow == PAGOFLEX_FLOW_REFUND ? (variant == 0 ? 500 : p->amount) : 0;
        in->amount_captured = p->amount;
        in->reason = "requested_by_customer";
        if (flow == PAGOFLEX_FLOW_REFUND_SYNC && !sync_without_id)
            in->refund_provider_reference_id = "chkr_0000000000000000000000001";
        break;
    default: /* PAYMENT_SYNC */
        in->operation_id = p->id;
        in->amount_captured = p->amount;
        break;
    }
}

/* Does the request carry `id` (URL, a header value or the body)? */
static int check_request_carries(const pagoflex_http_request *r, const char *id)
{
    size_t n = strlen(id);
    if (r->url && strstr(r->url, id))
        return 1;
    for (size_t i = 0; i < r->header_count; i++)
        if (r->headers[i].value && strstr(r->headers[i].value, id))
            return 1;
    for (size_t i = 0; r->body && i + n <= r->body_len; i++)
        if (memcmp(r->body + i, id, n) == 0)
            return 1;
    return 0;
}

static void check_flow_request_child(check_ctx *c)
{
    char err[2048];
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "flow_request", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    size_t requests = 0, declared = 0;
    c->reason[0] = '\0';
    for (int f = 0; f < PAGOFLEX_FLOW_COUNT; f++) {
        if (!(d->flows & PAGOFLEX_FLOW_BIT(f)))
            continue;
        declared++;
        for (int v = 0; v < 2; v++) {
            pagoflex_payment p;
            pagoflex_flow_input in;
            pagoflex_http_request req = {0};
            char what[96];
            check_flow_input(d, f, v, &p, &in);
            snprintf(what, sizeof what, "%s (%s)", check_flow_names[f],
                     f == PAGOFLEX_FLOW_AUTHORIZE ? (v ? "capture=0" : "capture=1")
                     : check_is_sync(f)           ? (v ? "no bank id yet" : "with the bank's id")
                     : v                          ? "other amount"
                                                  : "common case");
            pagoflex_arena *a = arena_new();
            check_case(c, "flow_request", "%s", what);
            int rc = a ? d->flow_request(c->pl->state, &in, a, &req) : PAGOFLEX_ERR_NOMEM;
            if (rc == PAGOFLEX_OK) {
                requests++;
                check_request(c, &req, what);
                if (!check_is_sync(f) && !check_request_carries(&req, in.operation_id))
                    check_fail(c, "%s: the request does not carry operation_id \"%s\" (URL, "
                                  "header or body): send it as the bank's idempotency key, or "
                                  "a retry may do the operation twice",
                               what, in.operation_id);
            } else if (!check_status_name(rc)) {
                check_fail(c, "%s: returned %d, not a pagoflex_status", what, rc);
            } else if (v == 0) {
                check_fail(c, "%s: returned %s for a realistic input of a flow the plugin "
                              "declares in `flows`",
                           what, check_status_name(rc));
            } else if (rc == PAGOFLEX_ERR_NOT_FOUND ? !check_is_sync(f)
                                                    : rc != PAGOFLEX_ERR_UNSUPPORTED &&
                                                          rc != PAGOFLEX_ERR_INVALID) {
                check_fail(c, "%s: returned %s; flow_request refuses with UNSUPPORTED or "
                              "INVALID (and NOT_FOUND for a sync with nothing to ask by)",
                           what, check_status_name(rc));
            }
            arena_free(a);
        }
    }
    if (c->reason[0])
        check_line(c, 0, "flow_request", "%s", c->reason);
    else
        check_line(c, 1, "flow_request", "%zu declared flow(s), %zu well-formed request(s) "
                                         "carrying their operation_id",
                   declared, requests);
    check_unload(c);
}

/* Is state s one flow f may answer (pagoflex_flow_result's comment)? */
static int check_flow_state_ok(int f, int s)
{
    switch (s) {
    case PAGOFLEX_STATE_PROCESSING:
    case PAGOFLEX_STATE_PENDING:
    case PAGOFLEX_STATE_SUCCEEDED:
    case PAGOFLEX_STATE_FAILED:
        return 1;
    case PAGOFLEX_STATE_REQUIRES_CAPTURE:
    case PAGOFLEX_STATE_REQUIRES_ACTION:
    case PAGOFLEX_STATE_CANCELED:
        return f == PAGOFLEX_FLOW_AUTHORIZE || f == PAGOFLEX_FLOW_PAYMENT_SYNC;
    default:
        return 0;
    }
}

static void check_flow_answer(check_ctx *c, const pagoflex_connector *d, int f,
                              const check_answer *ca, const unsigned char *big)
{
    pagoflex_payment p;
    pagoflex_flow_input in;
    char what[160];
    check_flow_input(d, f, 0, &p, &in);
    snprintf(what, sizeof what, "%s, %s", check_flow_names[f], ca->what);
    pagoflex_header hdr = {"Content-Type", ca->body && ca->body[0] == '<' ? "text/html"
                                                                          : "application/json"};
    pagoflex_http_response resp = {.transport = ca->transport, .status = ca->status};
    if (ca->transport == PAGOFLEX_TRANSPORT_OK) {
        resp.headers = &hdr;
        resp.header_count = 1;
        resp.body = ca->body ? (const unsigned char *)ca->body : big;
        resp.body_len = ca->body ? strlen(ca->body) : CHECK_BIG_BODY;
    }
    pagoflex_flow_result res;
    memset(&res, 0, sizeof res);
    res.size = (uint32_t)sizeof res;
    pagoflex_arena *a = arena_new();
    check_case(c, "flow_response", "%s", what);
    int rc = a ? d->flow_response(c->pl->state, &in, &resp, a, &res) : PAGOFLEX_ERR_NOMEM;
    if (rc != PAGOFLEX_OK) {
        if (!check_status_name(rc))
            check_fail(c, "%s: returned %d, not a pagoflex_status", what, rc);
        else if (rc == PAGOFLEX_ERR_NOT_FOUND && (!check_is_sync(f) || ca->rule != CHECK_ANY))
            check_fail(c, "%s: returned PAGOFLEX_ERR_NOT_FOUND; only a sync may, and only when "
                          "the bank says in its own words it has no such object (the host may "
                          "then end it failed)",
                       what);
        /* Otherwise the host keeps the operation unknown: acceptable. */
    } else if (!check_flow_state_ok(f, (int)res.state)) {
        check_fail(c, "%s: state %s (%d) is not one %s answers (see pagoflex_flow_result)",
                   what, check_state_label((int)res.state) ? check_state_label((int)res.state)
                                                            : "unknown",
                   (int)res.state, check_flow_names[f]);
    } else if (ca->rule == CHECK_PROCESSING && res.state != PAGOFLEX_STATE_PROCESSING) {
        check_fail(c, "%s: mapped to %s; a timeout, 429 or 5xx proves nothing and must map to "
                      "PROCESSING (the host retries with the same operation_id), never %s",
                   what, check_state_label((int)res.state),
                   res.state == PAGOFLEX_STATE_FAILED ? "FAILED" : "a final state");
    } else if (ca->rule == CHECK_NOT_SUCCEEDED && res.state == PAGOFLEX_STATE_SUCCEEDED) {
        check_fail(c, "%s: mapped to SUCCEEDED; the bank refused the request", what);
    } else if (res.state == PAGOFLEX_STATE_REQUIRES_ACTION &&
               (!res.redirect_url || strncmp(res.redirect_url, "http", 4) != 0)) {
        check_fail(c, "%s: REQUIRES_ACTION without an absolute redirect_url", what);
    } else {
        const char *s[] = {res.provider_reference_id, res.error_code, res.error_message,
                           res.redirect_url};
        for (size_t i = 0; i < 4; i++)
            if (s[i] && strnlen(s[i], CHECK_STRING_MAX) == CHECK_STRING_MAX)
                check_fail(c, "%s: a result string is over 1 MiB or not NUL-terminated", what);
        if (res.amount < 0)
            check_fail(c, "%s: amount %lld is negative", what, (long long)res.amount);
    }
    arena_free(a);
}

/* Answers flows get beyond handle_response's: a 404 that may come from a
 * proxy (never NOT_FOUND, never FAILED) and bytes that are not UTF-8. */
static const check_answer check_flow_answers[] = {
    {"404 from a proxy (HTML)", PAGOFLEX_TRANSPORT_OK, 404, "<html>Not Found</html>",
     CHECK_PROCESSING},
    {"200 not UTF-8", PAGOFLEX_TRANSPORT_OK, 200, "{\"status\":\"\xff\xfe\xc0\",\"id\":\"\x80\"}",
     CHECK_ANY},
    {"302 redirect", PAGOFLEX_TRANSPORT_OK, 302, "", CHECK_ANY},
    {"100 continue", PAGOFLEX_TRANSPORT_OK, 100, "", CHECK_ANY},
};

static void check_flow_response_child(check_ctx *c)
{
    char err[2048];
    unsigned char *big = NULL;
    size_t n = 0;
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "flow_response", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    c->reason[0] = '\0';
    if (!(big = malloc(CHECK_BIG_BODY))) {
        check_fail(c, "out of memory");
        goto done;
    }
    memset(big, 'A', CHECK_BIG_BODY);
    memcpy(big, "{\"id\":\"", 7);
    for (int f = 0; f < PAGOFLEX_FLOW_COUNT; f++) {
        if (!(d->flows & PAGOFLEX_FLOW_BIT(f)))
            continue;
        for (size_t i = 0; i < sizeof check_answers / sizeof check_answers[0]; i++, n++)
            check_flow_answer(c, d, f, &check_answers[i], big);
        for (size_t i = 0; i < sizeof check_flow_answers / sizeof check_flow_answers[0]; i++, n++)
            check_flow_answer(c, d, f, &check_flow_answers[i], big);
    }
done:
    free(big);
    if (c->reason[0])
        check_line(c, 0, "flow_response", "%s", c->reason);
    else
        check_line(c, 1, "flow_response", "%zu canned answers over the declared flows mapped to "
                                          "states valid for each flow; timeout, connect, 429, "
                                          "5xx and a proxy's 404 stay PROCESSING",
                   n);
    check_unload(c);
}

/* ---- whole-request webhooks (ABI 1.2) --------------------------------- */


/* The host clock the plugin sees during the webhook checks (counted, so
 * the checker knows whether the plugin reads it). */
static int64_t check_clock_value;
static unsigned check_clock_reads;

static int64_t check_clock(void)
{
    check_clock_reads++;
    return check_clock_value;
}

#define CHECK_MAX_WH_HEADERS 32

/* A private, mutable copy of a webhook request (in arena a). */
typedef struct check_wh {
    pagoflex_webhook_request req;
    pagoflex_header h[CHECK_MAX_WH_HEADERS];
    char *body;
    char *query;
    char *values[CHECK_MAX_WH_HEADERS];
} check_wh;

static int check_wh_copy(check_wh *w, const pagoflex_webhook_request *src, pagoflex_arena *a)
{
    if (src->header_count > CHECK_MAX_WH_HEADERS || (src->header_count && !src->headers) ||
        (src->body_len && !src->body))
        return -1;
    memset(w, 0, sizeof *w);
    w->req = *src;
    w->req.size = (uint32_t)sizeof w->req;
    w->body = arena_alloc(a, src->body_len + 1);
    w->query = arena_strdup(a, src->query ? src->query : "");
    if (!w->body || !w->query)
        return -1;
    if (src->body_len)
        memcpy(w->body, src->body, src->body_len);
    for (size_t i = 0; i < src->header_count; i++) {
        if (!src->headers[i].name || !src->headers[i].value ||
            !(w->values[i] = arena_strdup(a, src->headers[i].value)))
            return -1;
        w->h[i].name = src->headers[i].name;
        w->h[i].value = w->values[i];
    }
    w->req.headers = w->h;
    w->req.body = (const unsigned char *)w->body;
    w->req.query = w->query;
    if (!w->req.method)
        w->req.method = "POST";
    if (!w->req.path)
        w->req.path = "/webhooks/check";
    return 0;
}

static int check_wh_verify(check_ctx *c, const pagoflex_webhook_request *req)
{
    pagoflex_arena *a = arena_new();
    int rc = a ? c->pl->desc->webhook_verify(c->pl->state, req, a) : PAGOFLEX_ERR_NOMEM;
    arena_free(a);
    return rc;
}

/* One tampered copy: must be refused. */
static void check_wh_refused(check_ctx *c, const pagoflex_webhook_request *req, const char *what)
{
    check_case(c, "webhook_verify", "%s", what);
    int rc = check_wh_verify(c, req);
    if (rc == PAGOFLEX_OK)
        check_fail(c, "%s: accepted (PAGOFLEX_OK); it must be refused with "
                      "PAGOFLEX_ERR_SIGNATURE (does webhook_verify compare the signature?)",
                   what);
    else if (!check_status_name(rc))
        check_fail(c, "%s: returned %d, not a pagoflex_status", what, rc);
}

static void check_flip(char *s)
{
    *s = (char)(*s == 'A' ? 'B' : *s == '0' ? '1' : (*s ^ 0x01));
}

/* Every tampering of the genuine sample `w` (signed at check_clock_value). */
static size_t check_tamper(check_ctx *c, check_wh *w)
{
    size_t n = 0;
    char what[200];
    size_t len = w->req.body_len;
    size_t pos[3] = {0, len / 2, len ? len - 1 : 0};
    for (size_t k = 0; len && k < 3; k++) {
        char saved = w->body[pos[k]];
        check_flip(&w->body[pos[k]]);
        snprintf(what, sizeof what, "its own signed sample with body byte %zu of %zu changed",
                 pos[k], len);
        check_wh_refused(c, &w->req, what);
        w->body[pos[k]] = saved;
        n++;
    }
    /* A header (or the query) is signed if the sample fails without it;
     * then a changed value must fail too. */
    size_t count = w->req.header_count;
    for (size_t i = 0; i < count; i++) {
        pagoflex_header saved = w->h[i];
        w->h[i] = w->h[count - 1];
        w->req.header_count = count - 1;
        int dropped = check_wh_verify(c, &w->req);
        w->h[count - 1] = w->h[i];
        w->h[i] = saved;
        w->req.header_count = count;
        if (dropped == PAGOFLEX_OK || !w->values[i][0])
            continue;
        size_t vl = strlen(w->values[i]);
        char old = w->values[i][vl - 1];
        check_flip(&w->values[i][vl - 1]);
        snprintf(what, sizeof what, "its own signed sample with the last byte of header %.64s "
                                    "changed",
                 w->h[i].name);
        check_wh_refused(c, &w->req, what);
        w->values[i][vl - 1] = old;
        n += 2;
    }
    if (w->query[0]) {
        w->req.query = "";
        int dropped = check_wh_verify(c, &w->req);
        w->req.query = w->query;
        if (dropped != PAGOFLEX_OK) {
            size_t ql = strlen(w->query);
            char old = w->query[ql - 1];
            check_flip(&w->query[ql - 1]);
            check_wh_refused(c, &w->req, "its own signed sample with the query string changed");
            w->query[ql - 1] = old;
            n += 2;
        }
    }
    return n;
}

/* Does webhook_parse give `want` back from the sample? */
static void check_parse_back(check_ctx *c, const pagoflex_webhook_request *req,
                             const pagoflex_event *want, const char *what)
{
    pagoflex_webhook_parsed out;
    memset(&out, 0, sizeof out);
    out.size = (uint32_t)sizeof out;
    pagoflex_arena *a = arena_new();
    check_case(c, "webhook_sample", "webhook_parse of %s", what);
    int rc = a ? c->pl->desc->webhook_parse(c->pl->state, req, a, &out) : PAGOFLEX_ERR_NOMEM;
    const pagoflex_event *got = NULL;
    for (size_t i = 0; rc == PAGOFLEX_OK && out.events && i < out.event_count && i < 1000; i++)
        if (out.events[i].event_id && strcmp(out.events[i].event_id, want->event_id) == 0)
            got = &out.events[i];
    if (rc != PAGOFLEX_OK)
        check_fail(c, "%s: webhook_parse returned %s on the plugin's own sample", what,
                   check_status_name(rc) ? check_status_name(rc) : "a non-status");
    else if (!got)
        check_fail(c, "%s: webhook_parse gave %zu event(s), none with event_id %s", what,
                   out.event_count, want->event_id);
    else if (got->kind != want->kind)
        check_fail(c, "%s: parsed as kind %d, sampled as %d", what, (int)got->kind,
                   (int)want->kind);
    else if (want->kind == PAGOFLEX_EVENT_PAYMENT &&
             !((got->payment_id && strcmp(got->payment_id, want->payment_id) == 0) ||
               (got->tx_id && strcmp(got->tx_id, want->tx_id) == 0)))
        check_fail(c, "%s: the parsed event names neither payment %s nor bank id %s", what,
                   want->payment_id, want->tx_id);
    else if (want->kind == PAGOFLEX_EVENT_REFUND &&
             !((got->refund_id && strcmp(got->refund_id, want->refund_id) == 0) ||
               (got->refund_provider_reference_id &&
                strcmp(got->refund_provider_reference_id, want->refund_provider_reference_id) ==
                    0)))
        check_fail(c, "%s: the parsed event names neither refund %s nor bank id %s", what,
                   want->refund_id, want->refund_provider_reference_id);
    else if (want->kind != PAGOFLEX_EVENT_IGNORED && got->look_up != want->look_up)
        check_fail(c, "%s: look_up %d, sampled %d", what, got->look_up, want->look_up);
    else if (want->kind != PAGOFLEX_EVENT_IGNORED && !want->look_up && got->state != want->state)
        check_fail(c, "%s: state %s, sampled %s", what,
                   check_state_label((int)got->state) ? check_state_label((int)got->state) : "?",
                   check_state_label((int)want->state));
    arena_free(a);
}

static void check_webhook_verify_child(check_ctx *c)
{
    static const pagoflex_event samples[] = {
        {.event_id = "evt_check_1", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_check_1",
         .tx_id = "chk_0000000000000000000000001", .state = PAGOFLEX_STATE_SUCCEEDED,
         .amount = 1050},
        {.event_id = "evt_check_2", .kind = PAGOFLEX_EVENT_REFUND, .payment_id = "pay_check_1",
         .tx_id = "chk_0000000000000000000000001", .refund_id = "ref_check_1",
         .refund_provider_reference_id = "chkr_0000000000000000000000001",
         .state = PAGOFLEX_STATE_FAILED, .amount = 500, .error_code = "declined"},
        {.event_id = "evt_check_3", .kind = PAGOFLEX_EVENT_PAYMENT, .payment_id = "pay_check_1",
         .tx_id = "chk_0000000000000000000000001", .look_up = 1},
        {.event_id = "evt_check_4", .kind = PAGOFLEX_EVENT_IGNORED,
         .type = "pagoflex_check.unknown_type"},
    };
    static const char *const labels[] = {"a payment-succeeded sample", "a refund-failed sample",
                                         "a look-up sample", "a sample of a type it ignores"};
    char err[2048], what[160];
    char names[CHECK_MAX_SIG_NAMES][80];
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "webhook_verify", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    /* The plugin reads the host's clock through its table: ours now. */
    ((registry_plugin *)c->pl)->services.table.now = check_clock;
    check_clock_value = (int64_t)time(NULL);
    c->reason[0] = '\0';
    /* Random probes, as for verify_webhook. */
    size_t n = check_sig_names(d, names);
    pagoflex_header h[CHECK_MAX_SIG_NAMES + 3];
    char values[CHECK_MAX_SIG_NAMES + 3][200];
    const char *body = CHECK_WEBHOOK_BODY;
    pagoflex_webhook_request probe = {.size = (uint32_t)sizeof probe, .method = "POST",
                                      .path = "/webhooks/check", .query = "",
                                      .body = (const unsigned char *)body,
                                      .body_len = strlen(body)};
    check_wh_refused(c, &probe, "an unsigned delivery (no headers)");
    snprintf(names[n++], 80, "webhook-id");
    snprintf(names[n++], 80, "webhook-timestamp");
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        check_random_hex(hex, 32);
        h[i].name = names[i];
        h[i].value = values[i];
        if (strcmp(names[i], "webhook-timestamp") == 0)
            snprintf(values[i], sizeof values[i], "%lld", (long long)check_clock_value);
        else if (strcmp(names[i], "Webhook-Signature") == 0)
            snprintf(values[i], sizeof values[i], "v1,%.43s=", hex);
        else
            snprintf(values[i], sizeof values[i], "t=%lld,v1=%s", (long long)check_clock_value,
                     hex);
    }
    probe.headers = h;
    probe.header_count = n;
    check_wh_refused(c, &probe, "a delivery with random signature headers");

    size_t sampled = 0, tampered = 0;
    int uses_clock = 0, have_sample = d->webhook_sample != NULL;
    for (size_t s = 0; have_sample && s < sizeof samples / sizeof samples[0]; s++) {
        pagoflex_webhook_request out;
        memset(&out, 0, sizeof out);
        out.size = (uint32_t)sizeof out;
        pagoflex_arena *a = arena_new();
        check_wh w;
        check_case(c, "webhook_sample", "webhook_sample of %s", labels[s]);
        int rc = a ? d->webhook_sample(c->pl->state, &samples[s], check_clock_value, a, &out)
                   : PAGOFLEX_ERR_NOMEM;
        if (rc == PAGOFLEX_ERR_UNSUPPORTED) {
            arena_free(a);
            continue; /* the scheme cannot say this (e.g. look-ups only) */
        }
        if (rc != PAGOFLEX_OK) {
            check_fail(c, "webhook_sample of %s returned %s", labels[s],
                       check_status_name(rc) ? check_status_name(rc) : "a non-status");
        } else if (check_wh_copy(&w, &out, a) != 0) {
            check_fail(c, "webhook_sample of %s gave a malformed request (NULL header, body or "
                          "more than %d headers)",
                       labels[s], CHECK_MAX_WH_HEADERS);
        } else {
            sampled++;
            unsigned before = check_clock_reads;
            check_case(c, "webhook_sample", "webhook_verify of %s", labels[s]);
            rc = check_wh_verify(c, &w.req);
            if (rc != PAGOFLEX_OK) {
                check_fail(c, "webhook_verify refused %s signed by the plugin itself with its "
                              "credentials: %s",
                           labels[s], check_status_name(rc) ? check_status_name(rc) : "?");
            } else {
                uses_clock |= check_clock_reads != before;
                check_parse_back(c, &w.req, &samples[s], labels[s]);
                tampered += check_tamper(c, &w);
                if (check_clock_reads != before) {
                    int64_t t = check_clock_value;
                    for (int k = -1; k <= 1; k += 2) {
                        check_clock_value = t + k * 86400;
                        snprintf(what, sizeof what, "%s verified with the host clock %s",
                                 labels[s], k < 0 ? "a day earlier" : "a day later (a replay)");
                        check_wh_refused(c, &w.req, what);
                        tampered++;
                    }
                    check_clock_value = t;
                }
            }
        }
        arena_free(a);
    }
    if (have_sample && !sampled && !c->reason[0])
        check_fail(c, "webhook_sample answered PAGOFLEX_ERR_UNSUPPORTED for every sample event "
                      "(payment, refund, look-up, ignored type): it must sign at least one");
    /* Report: the sample round trip, then verification. */
    if (!have_sample)
        fprintf(c->out, "note webhook_sample: not set: webhook_verify is probed with unsigned and "
                        "random deliveries only; set webhook_sample so `plugin check` signs a "
                        "delivery your way and proves tampered copies are refused\n");
    if (c->reason[0]) {
        const char *sample_fault = strncmp(c->reason, "webhook_sample", 14) == 0 ||
                                           strstr(c->reason, "webhook_parse") ||
                                           strstr(c->reason, "signed by the plugin itself")
                                       ? "webhook_sample"
                                       : "webhook_verify";
        check_line(c, 0, sample_fault, "%s", c->reason);
    } else {
        if (have_sample)
            check_line(c, 1, "webhook_sample", "%zu sample event(s) signed by the plugin verify "
                                               "and parse back to the same event",
                       sampled);
        check_line(c, 1, "webhook_verify", "refuses unsigned and random deliveries%s%s",
                   tampered ? " and every tampered copy of its own signed samples" : "",
                   have_sample ? (uses_clock ? " (body, signed headers, clock a day off)"
                                             : " (body, signed headers; it does not read the "
                                               "host clock, so an old delivery is not refused "
                                               "by age)")
                               : "");
    }
    check_unload(c);
}

static void check_webhook_parse_child(check_ctx *c)
{
    static const struct {
        const char *what, *body;
    } cases[] = {
        {"empty body", ""},          {"non-JSON body", "not json at all"},
        {"empty object", "{}"},      {"JSON array", "[1,2,3]"},
        {"truncated JSON", "{\"event_id\":\"evt_1\",\"sta"},
        {"wrong types", "{\"event_id\":42,\"status\":[],\"tx_id\":{},\"data\":7,\"type\":[]}"},
        {"not UTF-8", "{\"type\":\"\xff\xfe\",\"data\":{\"payment_id\":\"\xc0\x80\"}}"},
    };
    static const pagoflex_header hdr[] = {{"Content-Type", "application/json"},
                                          {"webhook-id", "evt_check_garbage"},
                                          {"webhook-timestamp", "0"}};
    char err[2048];
    if (check_load(c, err, sizeof err) != 0)
        return check_line(c, 0, "webhook_parse", "the plugin did not load again: %s", err);
    const pagoflex_connector *d = c->pl->desc;
    c->reason[0] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = "POST",
                                        .path = "/webhooks/check", .query = "",
                                        .headers = hdr, .header_count = 3,
                                        .body = (const unsigned char *)cases[i].body,
                                        .body_len = strlen(cases[i].body)};
        pagoflex_webhook_parsed out;
        memset(&out, 0, sizeof out);
        out.size = (uint32_t)sizeof out;
        pagoflex_arena *a = arena_new();
        check_case(c, "webhook_parse", "%s", cases[i].what);
        int rc = a ? d->webhook_parse(c->pl->state, &req, a, &out) : PAGOFLEX_ERR_NOMEM;
        if (!check_status_name(rc)) {
            check_fail(c, "%s: returned %d, not a pagoflex_status", cases[i].what, rc);
        } else if (rc == PAGOFLEX_OK) {
            if (out.event_count && !out.events)
                check_fail(c, "%s: event_count %zu with events NULL", cases[i].what,
                           out.event_count);
            for (size_t k = 0; out.events && k < out.event_count && k < 1000; k++) {
                const pagoflex_event *e = &out.events[k];
                if (!e->event_id || !e->event_id[0])
                    check_fail(c, "%s: event %zu has no event_id", cases[i].what, k);
                else if ((int)e->kind < 0 || e->kind > PAGOFLEX_EVENT_IGNORED)
                    check_fail(c, "%s: event %zu has kind %d", cases[i].what, k, (int)e->kind);
                else if (e->kind != PAGOFLEX_EVENT_IGNORED && !e->look_up &&
                         !check_state_label((int)e->state))
                    check_fail(c, "%s: event %zu has state %d", cases[i].what, k, (int)e->state);
            }
        }
        arena_free(a);
    }
    if (c->reason[0])
        check_line(c, 0, "webhook_parse", "%s", c->reason);
    else
        check_line(c, 1, "webhook_parse", "garbage and non-UTF-8 bodies are refused or parsed "
                                          "safely");
    check_unload(c);
}

/* ---- the run ---------------------------------------------------------- */

static int check_setup(check_ctx *c, char *err, size_t errlen)
{
    const check_options *o = c->opts;
    const char *tmp = getenv("TMPDIR");
    char plugins[CHECK_PATH_MAX], file[300];
    if (o->plugin_name) {
        snprintf(c->name, sizeof c->name, "%s", o->plugin_name);
    } else {
        const char *base = strrchr(o->plugin_file, '/');
        base = base ? base + 1 : o->plugin_file;
        size_t n = strlen(base);
        if (n > 3 && strcmp(base + n - 3, ".so") == 0)
            n -= 3;
        if (n == 0 || n >= sizeof c->name) {
            snprintf(err, errlen, "cannot derive a plugin name from %s; pass --plugin-name",
                     o->plugin_file);
            return -1;
        }
        memcpy(c->name, base, n);
        c->name[n] = '\0';
    }
    if (snprintf(c->dir, sizeof c->dir, "%s/pagoflex-check-XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
            (int)sizeof c->dir ||
        !mkdtemp(c->dir)) {
        c->dir[0] = '\0';
        snprintf(err, errlen, "cannot create a temporary directory: %s", strerror(errno));
        return -1;
    }
    if (snprintf(file, sizeof file, "%s.so", c->name) >= (int)sizeof file ||
        check_path(plugins, sizeof plugins, c->dir, "plugins") != 0 ||
        check_path(c->plugin_copy, sizeof c->plugin_copy, plugins, file) != 0 ||
        check_path(c->creds_dir, sizeof c->creds_dir, c->dir, "credentials") != 0 ||
        check_path(c->private_dir, sizeof c->private_dir, c->dir, "private") != 0 ||
        mkdir(plugins, 0700) != 0 || mkdir(c->creds_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot prepare %s", c->dir);
        return -1;
    }
    if (check_copy(o->plugin_file, c->plugin_copy, err, errlen) != 0)
        return -1;
    if (o->credentials_file) {
        char dest[CHECK_PATH_MAX], why[512], binding[SECRETS_MAX_PLUGIN_NAME + 40], sub[CHECK_PATH_MAX];
        /* Where the host looks for that account's file (registry.h), so it
         * loads as that account and decrypts bound to it. */
        if (o->account && (check_path(sub, sizeof sub, c->creds_dir, c->name) != 0 || mkdir(sub, 0700) != 0 ||
                           snprintf(file, sizeof file, "%s/%s.cfg.enc", c->name, o->account) >= (int)sizeof file)) {
            snprintf(err, errlen, "cannot prepare %s for account %s", c->dir, o->account);
            return -1;
        }
        if ((!o->account && snprintf(file, sizeof file, "%s.cfg.enc", c->name) >= (int)sizeof file) ||
            secrets_binding_name(c->name, o->account, binding, sizeof binding) != 0 ||
            check_path(dest, sizeof dest, c->creds_dir, file) != 0 ||
            check_copy(o->credentials_file, dest, err, errlen) != 0)
            return -1;
        c->use_key = o->master_key;
        /* The values sign the tampered-webhook probes; they are never shown. */
        if (o->master_key && secrets_load_credentials(o->master_key, dest, binding, &c->secrets,
                                                      why, sizeof why) != 0)
            c->secrets = NULL; /* the load child reports why */
    }
    return 0;
}

int check_run(const check_options *opts, FILE *out, char *err, size_t errlen)
{
    check_ctx c = {.opts = opts, .out = out};
    int rc = -1;
    err[0] = '\0';
    c.sh = mmap(NULL, sizeof *c.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (c.sh == MAP_FAILED) {
        c.sh = NULL;
        snprintf(err, errlen, "cannot map shared memory: %s", strerror(errno));
        goto fail;
    }
    memset(c.sh, 0, sizeof *c.sh);
    log_set_level(opts->verbose ? PAGOFLEX_LOG_DEBUG : (pagoflex_log_level)(PAGOFLEX_LOG_ERROR + 1));
    if (check_setup(&c, err, errlen) != 0)
        goto fail;
    fprintf(out, "checking %s (plugin name %s, host ABI %d.%d)\n", opts->plugin_file, c.name,
            PAGOFLEX_ABI_MAJOR, PAGOFLEX_ABI_MINOR);
    if (opts->credential_count) {
        if (check_given_credentials(&c, err, errlen) != 0)
            goto fail;
    } else if (!opts->credentials_file) {
        check_in_child(&c, "load", check_peek);
        if (c.sh->peek_ok && c.sh->name_count > 0) {
            if (check_dummy_credentials(&c, err, errlen) != 0)
                goto fail;
            fprintf(out, "note: no --credentials given; using generated dummy values for");
            for (size_t i = 0; i < c.sh->name_count; i++)
                fprintf(out, "%s %s", i ? "," : "", c.sh->names[i]);
            fprintf(out, "\n");
        }
    }
    check_in_child(&c, "load", check_load_child);
    if (c.sh->loaded) {
        /* The 1.0/1.1 entry points when set (a 1.2 plugin may set them for
         * 1.1 hosts), then the 1.2 flows and whole-request webhooks. */
        if (c.sh->old_create) {
            check_in_child(&c, "build_request", check_build_request_child);
            check_in_child(&c, "handle_response", check_handle_response_child);
        }
        if (c.sh->old_webhooks) {
            check_in_child(&c, "verify_webhook", check_verify_webhook_child);
            check_in_child(&c, "parse_webhook", check_parse_webhook_child);
        }
        if (c.sh->flows) {
            check_in_child(&c, "flow_request", check_flow_request_child);
            check_in_child(&c, "flow_response", check_flow_response_child);
        }
        if (c.sh->webhooks) {
            check_in_child(&c, "webhook_verify", check_webhook_verify_child);
            check_in_child(&c, "webhook_parse", check_webhook_parse_child);
        }
    } else {
        fprintf(out, "skipped the behavioural checks (requests, answers, webhooks): the plugin "
                     "does not load\n");
    }
    fprintf(out, "%s: %d check(s) failed\n", c.sh->failures ? "FAILED" : "OK", c.sh->failures);
    fflush(out);
    rc = c.sh->failures;
fail:
    if (c.dir[0])
        nftw(c.dir, check_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    creds_free(c.secrets);
    secrets_key_wipe(&c.key);
    if (c.sh)
        munmap(c.sh, sizeof *c.sh);
    return rc;
}

/* ---- webhook replay (`pagoflex webhook verify`) ---------------------- */

static const char *check_kind_name(int k)
{
    return k == PAGOFLEX_EVENT_PAYMENT ? "payment"
           : k == PAGOFLEX_EVENT_REFUND ? "refund"
           : k == PAGOFLEX_EVENT_IGNORED ? "ignored"
                                         : "unknown";
}

#define CHECK_OR_DASH(s) ((s) ? (s) : "-")

static void check_print_event(FILE *out, size_t i, const pagoflex_event *e)
{
    fprintf(out, "event %zu: id=%s kind=%s type=%s payment_id=%s tx_id=%s refund_id=%s "
                 "refund_tx_id=%s ",
            i + 1, CHECK_OR_DASH(e->event_id), check_kind_name((int)e->kind),
            CHECK_OR_DASH(e->type), CHECK_OR_DASH(e->payment_id), CHECK_OR_DASH(e->tx_id),
            CHECK_OR_DASH(e->refund_id), CHECK_OR_DASH(e->refund_provider_reference_id));
    if (e->kind == PAGOFLEX_EVENT_IGNORED)
        fprintf(out, "(acknowledged, changes nothing)");
    else if (e->look_up)
        fprintf(out, "look_up (the host runs the %s's sync flow)",
                e->kind == PAGOFLEX_EVENT_REFUND ? "refund" : "payment");
    else
        fprintf(out, "state=%s", check_state_label((int)e->state) ? check_state_label((int)e->state)
                                                                  : "INVALID");
    fprintf(out, " amount=%lld", (long long)e->amount);
    if (e->error_code)
        fprintf(out, " error_code=%s", e->error_code);
    fputc('\n', out);
}

static void check_print_status(FILE *out, const char *what, int rc)
{
    fprintf(out, "%s (status %d %s)\n", what, rc,
            check_status_name(rc) ? check_status_name(rc) : "not a pagoflex_status");
}

static int check_replay_new(check_ctx *c, const check_delivery *dl, FILE *out)
{
    const pagoflex_connector *d = c->pl->desc;
    pagoflex_webhook_request req = {.size = (uint32_t)sizeof req, .method = dl->method,
                                    .path = dl->path, .query = dl->query,
                                    .headers = dl->headers, .header_count = dl->header_count,
                                    .body = dl->body, .body_len = dl->body_len};
    pagoflex_arena *a = arena_new();
    int rc = a ? d->webhook_verify(c->pl->state, &req, a) : PAGOFLEX_ERR_NOMEM;
    int result = 1;
    if (rc != PAGOFLEX_OK) {
        check_print_status(out, "signature: INVALID", rc);
        goto done;
    }
    fprintf(out, "signature: valid\n");
    pagoflex_webhook_parsed p;
    memset(&p, 0, sizeof p);
    p.size = (uint32_t)sizeof p;
    rc = d->webhook_parse(c->pl->state, &req, a, &p);
    if (rc != PAGOFLEX_OK) {
        check_print_status(out, "parse: FAILED", rc);
        goto done;
    }
    fprintf(out, "parse: %zu event(s)\n", p.event_count);
    for (size_t i = 0; p.events && i < p.event_count; i++)
        check_print_event(out, i, &p.events[i]);
    if (p.answer_status || p.answer_body)
        fprintf(out, "answer: status %d, content-type %s, body %.*s\n",
                p.answer_status ? p.answer_status : 200, CHECK_OR_DASH(p.answer_content_type),
                (int)(p.answer_body_len > 512 ? 512 : p.answer_body_len),
                p.answer_body ? (const char *)p.answer_body : "");
    else
        fprintf(out, "answer: the host's default (200, JSON)\n");
    result = 0;
done:
    arena_free(a);
    return result;
}

static int check_replay_old(check_ctx *c, const check_delivery *dl, FILE *out)
{
    const pagoflex_connector *d = c->pl->desc;
    pagoflex_arena *a = arena_new();
    int rc = a ? d->verify_webhook(c->pl->state, dl->headers, dl->header_count, dl->body,
                                   dl->body_len, a)
               : PAGOFLEX_ERR_NOMEM;
    int result = 1;
    if (rc != PAGOFLEX_OK) {
        check_print_status(out, "signature: INVALID", rc);
        goto done;
    }
    fprintf(out, "signature: valid\n");
    pagoflex_webhook_event ev;
    memset(&ev, 0, sizeof ev);
    rc = d->parse_webhook(c->pl->state, dl->body, dl->body_len, a, &ev);
    if (rc != PAGOFLEX_OK) {
        check_print_status(out, "parse: FAILED", rc);
        goto done;
    }
    pagoflex_event e = {.event_id = ev.event_id, .kind = PAGOFLEX_EVENT_PAYMENT,
                        .payment_id = ev.payment_id, .tx_id = ev.tx_id, .state = ev.state,
                        .error_code = ev.error_code};
    fprintf(out, "parse: 1 event(s) (ABI %u.%u verify_webhook/parse_webhook)\n",
            (unsigned)d->abi_major, (unsigned)d->abi_minor);
    check_print_event(out, 0, &e);
    fprintf(out, "answer: the host's default (200, JSON)\n");
    result = 0;
done:
    arena_free(a);
    return result;
}

int check_webhook_replay(const check_options *opts, const check_delivery *dl, FILE *out,
                         char *err, size_t errlen)
{
    check_ctx c = {.opts = opts, .out = out};
    int rc = -1;
    err[0] = '\0';
    c.sh = calloc(1, sizeof *c.sh);
    if (!c.sh) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    log_set_level(opts->verbose ? PAGOFLEX_LOG_DEBUG : (pagoflex_log_level)(PAGOFLEX_LOG_ERROR + 1));
    if (check_setup(&c, err, errlen) != 0)
        goto fail;
    if (opts->credential_count) {
        if (check_given_credentials(&c, err, errlen) != 0)
            goto fail;
    } else if (!opts->credentials_file) {
        check_peek(&c);
        if (c.sh->peek_ok && c.sh->name_count > 0) {
            if (check_dummy_credentials(&c, err, errlen) != 0)
                goto fail;
            fprintf(out, "note: no credentials given; using generated dummy values (a real "
                         "signature will not verify)\n");
        }
    }
    if (check_load(&c, err, errlen) != 0)
        goto fail;
    /* The plugin's clock is --now from here on. */
    check_clock_value = dl->now ? dl->now : (int64_t)time(NULL);
    ((registry_plugin *)c.pl)->services.table.now = check_clock;
    const pagoflex_connector *d = c.pl->desc;
    fprintf(out, "plugin: %s (key %s, ABI %u.%u, version %.32s), host clock %lld\n",
            opts->plugin_file, d->key, (unsigned)d->abi_major, (unsigned)d->abi_minor,
            d->version, (long long)check_clock_value);
    if (check_has_webhooks(d))
        rc = check_replay_new(&c, dl, out);
    else if (d->verify_webhook && d->parse_webhook)
        rc = check_replay_old(&c, dl, out);
    else
        snprintf(err, errlen, "%s has neither webhook_verify/webhook_parse nor "
                              "verify_webhook/parse_webhook", opts->plugin_file);
    fflush(out);
fail:
    if (c.reg)
        check_unload(&c);
    if (c.dir[0])
        nftw(c.dir, check_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    creds_free(c.secrets);
    secrets_key_wipe(&c.key);
    free(c.sh);
    return rc;
}
