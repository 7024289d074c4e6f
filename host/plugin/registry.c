/* registry.c - loading connector plugins from a directory with dlopen.
 *
 * A load goes through fixed steps, each of which may reject the plugin:
 *   1. read the file, check its owner, mode and signature (plugin_trust.h),
 *      hash it, copy it (and its .sig) to a private content-named path;
 *   2. check the copy as a fresh file is checked (content hash, owner, mode,
 *      signature under the trusted keys of this load), then dlopen it with
 *      RTLD_NOW | RTLD_LOCAL. A last good version, served when a newer file
 *      fails, is an existing copy and enters here: the same checks apply;
 *   3. find and call the entry point, get the descriptor;
 *   4. check the descriptor field by field (header first, so nothing beyond
 *      what the plugin says it has is ever read);
 *   5. for each of its accounts (registry.h): an instance sharing the
 *      loaded object, whose credentials are decrypted and checked;
 *   6. that instance's init.
 * A rejection is collected in a `rejection` (field, expected, found, how to
 * fix), turned into one log line, and the plugin is undone. Strings taken
 * from the plugin are copied into the rejection before dlclose.
 */
#include "registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "arena.h"
#include "creds.h"
#include "log.h"

/* A v1.0 descriptor ends with parse_webhook; later minors only append, so a
 * larger size is a newer plugin (accepted) and a smaller one is short. */
#define REGISTRY_V1_MIN_SIZE                                                  \
    (offsetof(pagoflex_connector, parse_webhook) +                            \
     sizeof(((pagoflex_connector *)0)->parse_webhook))

/* The flows this host knows; a newer plugin's other bits are ignored. */
#define REGISTRY_KNOWN_FLOWS ((1u << PAGOFLEX_FLOW_COUNT) - 1u)

#define REGISTRY_MAX_FILE (256u << 20)   /* refuse absurd plugin files */
#define REGISTRY_MAX_SIG 4096            /* a .sig file is ~200 bytes */
#define REGISTRY_MAX_CREDENTIALS 64      /* bound on required_credentials */
#define REGISTRY_NAME_MAX 32             /* key and webhook path length */
#define REGISTRY_QUOTE_MAX 64            /* plugin strings shown in logs */
#define REGISTRY_TMP_GRACE_S 3600        /* a copy's temp file this old was left by a crash */

struct registry {
    char *plugin_dir;
    char *credentials_dir;
    char *private_dir;
    const secrets_key *master_key;
    bool keep_last_good;
    char **skip; /* NULL-terminated copy of opts->skip, or NULL */
    registry_rejection *rejected;
    size_t rejected_count;
    const secrets_key *previous_master_key;
    const creds_setting *settings; /* borrowed from the options */
    size_t settings_count;
    const plugin_trust *trust;
    registry_plugin **plugins; /* pointers: a plugin's services table must
                                  not move once init has seen it */
    registry_account_rejection *acct_rejected;
    size_t acct_rejected_count;
    size_t count;
    size_t cap;
};

/* Why a plugin was refused; becomes the log line. */
typedef struct rejection {
    const char *field;
    char expected[160];
    char found[400];
    char fix[768];
} rejection;

/* ---- helpers ---------------------------------------------------------- */

static int reject(rejection *rj, const char *field, const char *expected, const char *found,
                  const char *fix_fmt, ...) __attribute__((format(printf, 5, 6)));

/* Record a rejection; always returns -1 so callers can `return reject(...)`. */
static int reject(rejection *rj, const char *field, const char *expected, const char *found,
                  const char *fix_fmt, ...)
{
    va_list ap;
    rj->field = field;
    snprintf(rj->expected, sizeof rj->expected, "%s", expected);
    snprintf(rj->found, sizeof rj->found, "%s", found);
    va_start(ap, fix_fmt);
    vsnprintf(rj->fix, sizeof rj->fix, fix_fmt, ap);
    va_end(ap);
    return -1;
}

/* Quote an untrusted string for a log line: at most `max` characters,
 * anything but printable ASCII (and quotes, backslashes) as \xNN. NULL is
 * shown as the bare word NULL. */
static void quote(char *out, size_t cap, const char *s, size_t max)
{
    size_t o = 0;
    if (cap < 8) {
        if (cap)
            out[0] = '\0';
        return;
    }
    if (!s) {
        snprintf(out, cap, "NULL");
        return;
    }
    out[o++] = '"';
    size_t i = 0;
    for (; s[i] && i < max && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (s[i] && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Like quote(), without the quotes: for names shown as in a config file. */
static void quote_bare(char *out, size_t cap, const char *s)
{
    quote(out, cap, s, REGISTRY_QUOTE_MAX);
    size_t n = strlen(out);
    if (n >= 2 && out[0] == '"') {
        memmove(out, out + 1, n - 2);
        out[n - 2] = '\0';
    }
}

static const char *status_name(int status)
{
    static const char *const names[] = {
        "PAGOFLEX_OK",          "PAGOFLEX_ERR_INVALID", "PAGOFLEX_ERR_UNSUPPORTED",
        "PAGOFLEX_ERR_SIGNATURE", "PAGOFLEX_ERR_CREDENTIALS", "PAGOFLEX_ERR_NOMEM",
        "PAGOFLEX_ERR_TRANSPORT", "PAGOFLEX_ERR_INTERNAL",
    };
    if (status >= 0 && (size_t)status < sizeof names / sizeof names[0])
        return names[status];
    return "unknown status";
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static int is_key_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_path_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* 1 if s is 1..REGISTRY_NAME_MAX characters, each accepted by `ok`. */
static int name_matches(const char *s, int (*ok)(int))
{
    if (!s)
        return 0;
    size_t n = strnlen(s, REGISTRY_NAME_MAX + 1);
    if (n == 0 || n > REGISTRY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)s[i]))
            return 0;
    return 1;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* <path>.sig: where plugin_trust looks for the signature of `path`. */
static char *sig_path_of(const char *path)
{
    char *sig = NULL;
    if (asprintf(&sig, "%s" PLUGIN_TRUST_SIG_SUFFIX, path) < 0)
        return NULL;
    return sig;
}

/* Remove a private copy and the signature kept next to it. */
static void private_unlink(const char *private_path)
{
    char *sig = sig_path_of(private_path);
    unlink(private_path);
    if (sig)
        unlink(sig);
    free(sig);
}

/* ---- last good versions ------------------------------------------------ */

/* <private_dir>/last-good/<name> holds two lines: the private copy that last
 * loaded for plugin <name>, and its SHA-256. Written after each successful
 * load (keep_last_good), read when a newer file of that name fails. */
static char *lastgood_path(const registry *r, const char *name)
{
    char *path = NULL;
    if (asprintf(&path, "%s/last-good/%s", r->private_dir, name) < 0)
        return NULL;
    return path;
}

/* Read the record of `name`: 0 and the copy's path (malloc'd) and hash, or -1. */
static int lastgood_read(const registry *r, const char *name, char **copy, char sha[65])
{
    char line1[4096], line2[128];
    int rc = -1;
    char *path = lastgood_path(r, name);
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f || !fgets(line1, sizeof line1, f) || !fgets(line2, sizeof line2, f))
        goto fail;
    line1[strcspn(line1, "\n")] = '\0';
    line2[strcspn(line2, "\n")] = '\0';
    if (strlen(line2) != 64 || strspn(line2, "0123456789abcdef") != 64 ||
        !(*copy = strdup(line1)))
        goto fail;
    memcpy(sha, line2, 65);
    rc = 0;
fail:
    if (f)
        fclose(f);
    free(path);
    return rc;
}

/* True if `copy` is the recorded last good version of `name`. */
static bool lastgood_is(const registry *r, const char *name, const char *copy)
{
    char *rec = NULL, sha[65];
    if (!r->keep_last_good || lastgood_read(r, name, &rec, sha) != 0)
        return false;
    bool same = strcmp(rec, copy) == 0;
    free(rec);
    return same;
}

/* Record p as the last good version of its plugin (best effort: a failure
 * only costs the fallback, and is logged). */
static void lastgood_write(const registry *r, const registry_plugin *p)
{
    char *dir = NULL, *path = NULL, *tmp = NULL;
    FILE *f = NULL;
    if (asprintf(&dir, "%s/last-good", r->private_dir) < 0)
        dir = NULL;
    path = lastgood_path(r, p->name);
    if (!dir || !path || asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0) {
        tmp = NULL;
        goto fail;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        goto fail;
    f = fopen(tmp, "we");
    if (!f || fprintf(f, "%s\n%s\n", p->private_path, p->sha256) < 0 || fclose(f) != 0) {
        f = NULL;
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        goto fail;
    goto done;
fail:
    log_warn("cannot record the last good version of plugin %s in %s: %s", p->name,
             dir ? dir : r->private_dir, strerror(errno));
    if (f)
        fclose(f);
    if (tmp)
        unlink(tmp);
done:
    free(dir);
    free(path);
    free(tmp);
}

static bool registry_skipped(const registry *r, const char *name)
{
    for (char **s = r->skip; s && *s; s++)
        if (strcmp(*s, name) == 0)
            return true;
    return false;
}

static void registry_note_rejected(registry *r, const char *file, const char *reason)
{
    registry_rejection *grown = realloc(r->rejected, (r->rejected_count + 1) * sizeof *grown);
    if (!grown)
        return;
    r->rejected = grown;
    grown[r->rejected_count].file = strdup(file);
    grown[r->rejected_count].reason = strdup(reason);
    if (grown[r->rejected_count].file && grown[r->rejected_count].reason) {
        r->rejected_count++;
    } else {
        free(grown[r->rejected_count].file);
        free(grown[r->rejected_count].reason);
    }
}

/* ---- plugin objects --------------------------------------------------- */

static void plugin_free(registry_plugin *p)
{
    if (!p)
        return;
    if (p->private_fd >= 0)
        close(p->private_fd);
    arena_free(p->init_arena); /* after fini, which may still use it */
    tlscreds_free(p->tls);
    banktoken_free(p->token);
    keyset_free(p->keys);
    free(p->name);
    free(p->account);
    free(p->file);
    free(p->private_path);
    free(p->last_error);
    free(p);
}

/* A plugin record for `path`: name is the basename without ".so". */
static registry_plugin *plugin_new(const char *path)
{
    registry_plugin *p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    p->private_fd = -1;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (has_suffix(base, ".so"))
        n -= 3;
    p->file = strdup(path);
    p->name = strndup(base, n);
    if (!p->file || !p->name)
        goto fail;
    return p;
fail:
    plugin_free(p);
    return NULL;
}

static int registry_private_in_use(const registry *r, const char *private_path)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->plugins[i]->private_path, private_path) == 0)
            return 1;
    return 0;
}

/* Undo a plugin that did not make it into the registry (init not called or
 * failed, so there is nothing to fini). */
static void plugin_discard(registry *r, registry_plugin *p)
{
    if (p->handle)
        dlclose(p->handle);
    if (p->private_path && !registry_private_in_use(r, p->private_path) &&
        !lastgood_is(r, p->name, p->private_path))
        private_unlink(p->private_path);
    plugin_free(p);
}

/* ---- step 1: private content-named copy ------------------------------- */

/* Read the plugin file (a regular file of at most REGISTRY_MAX_FILE bytes)
 * with the host's one file reader. */
static int read_file(const char *path, unsigned char **out, size_t *out_len, rejection *rj)
{
    char why[sizeof rj->found];
    if (secrets_read_file(path, REGISTRY_MAX_FILE, out, out_len, why, sizeof why) == 0)
        return 0;
    return reject(rj, "file", "a readable regular file of at most 256 MiB", why,
                  "check that the file exists, is a connector plugin, and this process may read it");
}

/* Create `dir` (and missing parents) 0700; refuse one others may write to,
 * since whoever can swap a private copy runs code in this process. */
static int ensure_private_dir(const char *dir, rejection *rj)
{
    char *path = strdup(dir);
    struct stat st;
    if (!path) {
        reject(rj, "private_dir", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            reject(rj, "private_dir", dir, strerror(errno),
                   "create %s or set another private directory", path);
            goto fail;
        }
        *s = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        reject(rj, "private_dir", dir, strerror(errno),
               "create it (mode 0700) or set another private directory");
        goto fail;
    }
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        reject(rj, "private_dir", "a directory", "not a directory",
               "point the private directory at a directory this process owns");
        goto fail;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        char found[64];
        snprintf(found, sizeof found, "uid %ld mode %04o", (long)st.st_uid,
                 (unsigned)(st.st_mode & 07777));
        reject(rj, "private_dir", "owned by this user, not writable by others", found,
               "run: chown %ld %s && chmod 0700 %s", (long)geteuid(), dir, dir);
        goto fail;
    }
    free(path);
    return 0;
fail:
    free(path);
    return -1;
}

static int sha256_hex(const unsigned char *data, size_t len, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        return -1;
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* Owner, mode and signature of plugin file `path` whose bytes are data/len
 * (plugin_trust.h), under the signature policy of this load. */
static int plugin_trusted(const registry *r, const char *path, const unsigned char *data,
                          size_t len, rejection *rj)
{
    plugin_trust_problem pb;
    if (plugin_trust_check_file(r->trust, path, data, len, &pb) == 0)
        return 0;
    return reject(rj, pb.field, pb.expected, pb.found, "%s", pb.fix);
}

/* Write data/len to `final` (in the private directory) through a temp file
 * and rename, mode `mode`, so `final` is complete whenever it exists. */
static int private_write(const registry *r, const char *name, const char *final,
                         const unsigned char *data, size_t len, mode_t mode, rejection *rj)
{
    char *tmp = NULL;
    int fd = -1, rc = -1;
    /* asprintf leaves its pointer undefined on failure: reset it. */
    if (asprintf(&tmp, "%s/.%s.XXXXXX", r->private_dir, name) < 0) {
        tmp = NULL;
        reject(rj, "private_copy", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        reject(rj, "private_copy", r->private_dir, strerror(errno),
               "make the private directory writable by this process");
        goto fail;
    }
    int werr = write_all(fd, data, len) != 0 || fchmod(fd, mode) != 0;
    int cerr = close(fd) != 0;
    fd = -1;
    if (werr || cerr || rename(tmp, final) != 0) {
        reject(rj, "private_copy", final, strerror(errno),
               "check free space and permissions of the private directory");
        unlink(tmp);
        goto fail;
    }
    rc = 0;
fail:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* Keep the signature of p->file next to its private copy `final` (as
 * <final>.sig), so that every later load of that copy, a last good version
 * after a restart included, verifies it again under the trusted keys of
 * that load. A plugin without a .sig: nothing to keep. */
static int plugin_keep_signature(const registry *r, const registry_plugin *p, const char *final,
                                 rejection *rj)
{
    char *src = sig_path_of(p->file), *dst = sig_path_of(final);
    unsigned char *text = NULL;
    size_t len = 0;
    char why[sizeof rj->found];
    int rc = -1;
    if (!src || !dst) {
        reject(rj, "signature", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (access(src, F_OK) != 0 && errno == ENOENT) {
        rc = 0;
        goto fail;
    }
    if (secrets_read_file(src, REGISTRY_MAX_SIG, &text, &len, why, sizeof why) != 0) {
        reject(rj, "signature", "a readable signature file of at most 4096 bytes", why,
               "sign the plugin again with: pagoflex plugin sign --key <signer.key> %s",
               p->file);
        goto fail;
    }
    rc = private_write(r, p->name, dst, text, len, 0400, rj);
fail:
    free(text);
    free(src);
    free(dst);
    return rc;
}

/* Copy p->file to <private_dir>/<name>-<sha256 prefix>.so (and its .sig
 * next to it) through temp files and rename, so the copy is complete
 * whenever it has its final name. Sets p->sha256 and, once the copy
 * exists, p->private_path. */
static int plugin_copy_private(registry *r, registry_plugin *p, rejection *rj)
{
    unsigned char *data = NULL;
    size_t len = 0;
    char *final = NULL;
    int rc = -1;

    if (read_file(p->file, &data, &len, rj) != 0)
        goto fail;
    /* Checked on the very bytes that will be copied. */
    if (plugin_trusted(r, p->file, data, len, rj) != 0)
        goto fail;
    if (sha256_hex(data, len, p->sha256) != 0) {
        reject(rj, "file", "a SHA-256 digest", "OpenSSL EVP_Digest failed",
               "check the OpenSSL installation");
        goto fail;
    }
    if (ensure_private_dir(r->private_dir, rj) != 0)
        goto fail;
    if (asprintf(&final, "%s/%s-%.16s.so", r->private_dir, p->name, p->sha256) < 0) {
        final = NULL;
        reject(rj, "private_copy", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    /* The signature first: whoever finds the copy finds its .sig too. */
    if (plugin_keep_signature(r, p, final, rj) != 0 ||
        private_write(r, p->name, final, data, len, 0500, rj) != 0)
        goto fail;
    p->private_path = final;
    final = NULL;
    rc = 0;
fail:
    free(final);
    free(data);
    return rc;
}

/* ---- steps 2-3: dlopen and the entry point ---------------------------- */

/* The one gate before dlopen, for a fresh copy and a last good version
 * alike: p->private_path must still hold the content hashed as p->sha256,
 * and pass the same checks as a fresh file, on itself: owner and mode of
 * the copy and of the private directory, and, when signatures are
 * required, its kept .sig under the trusted keys of *this* load (a signer
 * removed from trusted_keys stops what it signed, last good versions
 * included). */
static int plugin_check_copy(const registry *r, const registry_plugin *p, rejection *rj)
{
    unsigned char *data = NULL;
    size_t len = 0;
    char sha[65], found[96];
    int rc = -1;
    if (ensure_private_dir(r->private_dir, rj) != 0 ||
        read_file(p->private_path, &data, &len, rj) != 0)
        goto fail;
    if (sha256_hex(data, len, sha) != 0) {
        reject(rj, "sha256", "a SHA-256 digest", "OpenSSL EVP_Digest failed",
               "check the OpenSSL installation");
        goto fail;
    }
    if (strcmp(sha, p->sha256) != 0) {
        snprintf(found, sizeof found, "%.16s (the file changed after it was copied)", sha);
        char expected[32];
        snprintf(expected, sizeof expected, "%.16s", p->sha256);
        reject(rj, "sha256", expected, found,
               "something rewrote %s; remove it and check who else can write to %s",
               p->private_path, r->private_dir);
        goto fail;
    }
    rc = plugin_trusted(r, p->private_path, data, len, rj);
fail:
    free(data);
    return rc;
}

/* Open p->private_path and hold a shared flock() on it until the plugin is
 * freed, so registry_clean_private in any process leaves it alone. When
 * another loader renamed a new file over the name meanwhile, lock that
 * one. -1 with errno ENOENT when the copy is gone (the caller copies it
 * again). */
static int private_hold(registry_plugin *p, rejection *rj)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        struct stat held, named;
        int fd = open(p->private_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            break;
        if (flock(fd, LOCK_SH) != 0 || fstat(fd, &held) != 0) {
            close(fd);
            break;
        }
        if (stat(p->private_path, &named) == 0 && named.st_dev == held.st_dev &&
            named.st_ino == held.st_ino) {
            p->private_fd = fd;
            return 0;
        }
        close(fd);
    }
    int saved = errno;
    reject(rj, "private_copy", p->private_path, strerror(errno),
           "check the private directory; the copy is made again on the next load");
    errno = saved;
    return -1;
}

static int plugin_open(const registry *r, registry_plugin *p, rejection *rj)
{
    char found[sizeof rj->found];
    void *sym;
    pagoflex_connector_entry_fn entry;

    if (p->private_fd < 0 && private_hold(p, rj) != 0)
        return -1;
    if (plugin_check_copy(r, p, rj) != 0)
        return -1;
    dlerror();
    p->handle = dlopen(p->private_path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        const char *why = dlerror();
        quote(found, sizeof found, why ? why : "unknown dlopen error", 300);
        return reject(rj, "dlopen", "a shared object whose symbols all resolve", found,
                      "rebuild the plugin against this host's SDK and link every library "
                      "it uses (RTLD_NOW resolves all symbols at load)");
    }
    dlerror();
    sym = dlsym(p->handle, PAGOFLEX_ENTRY_SYMBOL);
    if (!sym)
        return reject(rj, "entry_point", PAGOFLEX_ENTRY_SYMBOL, "absent",
                      "export it with PAGOFLEX_DEFINE_CONNECTOR(descriptor) "
                      "from <pagoflex/connector.h>");
    /* POSIX guarantees a function pointer survives the round trip. */
    memcpy(&entry, &sym, sizeof entry);
    p->desc = entry();
    if (!p->desc)
        return reject(rj, "descriptor", "a descriptor", "NULL",
                      PAGOFLEX_ENTRY_SYMBOL "() must return the address of a static "
                      "const struct pagoflex_connector");
    return 0;
}

/* 1 if the private copy of p, or the signature kept next to it, is gone. */
static int private_copy_gone(const registry_plugin *p)
{
    if (access(p->private_path, F_OK) != 0 && errno == ENOENT)
        return 1;
    char *src = sig_path_of(p->file), *kept = sig_path_of(p->private_path);
    int gone = src && kept && access(src, F_OK) == 0 && access(kept, F_OK) != 0 &&
               errno == ENOENT;
    free(src);
    free(kept);
    return gone;
}

/* Copy, then check and dlopen the copy. Another process sharing
 * private_dir may remove that copy (its registry_free) between our rename
 * and dlopen: when the copy or its .sig is gone, copy once more. */
static int plugin_copy_and_open(registry *r, registry_plugin *p, rejection *rj)
{
    if (plugin_copy_private(r, p, rj) != 0)
        return -1;
    if (plugin_open(r, p, rj) == 0)
        return 0;
    if (p->handle || !private_copy_gone(p))
        return -1;
    free(p->private_path);
    p->private_path = NULL;
    if (p->private_fd >= 0)
        close(p->private_fd);
    p->private_fd = -1;
    if (plugin_copy_private(r, p, rj) != 0)
        return -1;
    return plugin_open(r, p, rj);
}

/* ---- step 4: the descriptor ------------------------------------------- */

static int check_header(const pagoflex_connector *d, rejection *rj)
{
    char exp[64], found[sizeof rj->found];

    if (d->magic != PAGOFLEX_MAGIC) {
        snprintf(exp, sizeof exp, "0x%08x", (unsigned)PAGOFLEX_MAGIC);
        snprintf(found, sizeof found, "0x%08x", (unsigned)d->magic);
        return reject(rj, "magic", exp, found,
                      "not a Pagoflex connector descriptor; fill its header with "
                      "PAGOFLEX_CONNECTOR_HEADER and rebuild against this host's SDK");
    }
    if (d->abi_major != PAGOFLEX_ABI_MAJOR) {
        snprintf(exp, sizeof exp, "%d", PAGOFLEX_ABI_MAJOR);
        snprintf(found, sizeof found, "%u", (unsigned)d->abi_major);
        return reject(rj, "abi_major", exp, found,
                      "plugin built for ABI %u, this host speaks ABI %d: rebuild the plugin "
                      "against this host's SDK",
                      (unsigned)d->abi_major, PAGOFLEX_ABI_MAJOR);
    }
    if (d->size < REGISTRY_V1_MIN_SIZE) {
        snprintf(exp, sizeof exp, ">=%zu", (size_t)REGISTRY_V1_MIN_SIZE);
        snprintf(found, sizeof found, "%u", (unsigned)d->size);
        return reject(rj, "size", exp, found,
                      "descriptor is short for ABI %d.0: fill its header with "
                      "PAGOFLEX_CONNECTOR_HEADER and rebuild against this host's SDK",
                      PAGOFLEX_ABI_MAJOR);
    }
    if (!d->build_signature || strcmp(d->build_signature, PAGOFLEX_BUILD_SIGNATURE) != 0) {
        quote(exp, sizeof exp, PAGOFLEX_BUILD_SIGNATURE, REGISTRY_QUOTE_MAX);
        quote(found, sizeof found, d->build_signature, REGISTRY_QUOTE_MAX);
        return reject(rj, "build_signature", exp, found,
                      "plugin built for another platform (pointer, long or size_t width, "
                      "byte order): rebuild it on this platform against this host's SDK");
    }
    return 0;
}

static int check_identity(const pagoflex_connector *d, rejection *rj)
{
    char found[sizeof rj->found];

    if (!name_matches(d->key, is_key_char)) {
        quote(found, sizeof found, d->key, REGISTRY_QUOTE_MAX);
        return reject(rj, "key", "[A-Z0-9_]{1,32}", found,
                      "set .key to the connector key clients use, e.g. \"BANCO_X\"");
    }
    if (!name_matches(d->webhook_path, is_path_char)) {
        quote(found, sizeof found, d->webhook_path, REGISTRY_QUOTE_MAX);
        return reject(rj, "webhook_path", "[a-z0-9_-]{1,32}", found,
                      "set .webhook_path to the last segment of /webhooks/<path>, "
                      "e.g. \"bancox\"");
    }
    if (!d->version || !d->version[0]) {
        quote(found, sizeof found, d->version, REGISTRY_QUOTE_MAX);
        return reject(rj, "version", "non-empty string", found,
                      "set .version to the plugin's version, e.g. \"1.0.0\"");
    }
    return 0;
}

/* True if a 1.2 plugin declares flows (it is then served through
 * flow_request/flow_response); reads `flows` only when size says it is there. */
static bool registry_desc_has_flows(const pagoflex_connector *d)
{
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, flow_response) &&
           (d->flows & REGISTRY_KNOWN_FLOWS) != 0;
}

static bool registry_desc_has_sync(const pagoflex_connector *d)
{
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, sync_response) && d->sync_request &&
           d->sync_response;
}

static bool registry_desc_has_webhook12(const pagoflex_connector *d)
{
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, webhook_parse) && d->webhook_verify &&
           d->webhook_parse;
}

/* A 1.2 plugin with flows: flow_request, flow_response, the AUTHORIZE flow
 * (the API creates every payment with it), and one webhook pair. */
static int check_flow_entry_points(const pagoflex_connector *d, rejection *rj)
{
    if (!d->init)
        return reject(rj, "init", "non-NULL", "NULL",
                      "every ABI %d connector implements init", PAGOFLEX_ABI_MAJOR);
    if (!d->flow_request || !d->flow_response)
        return reject(rj, d->flow_request ? "flow_response" : "flow_request", "non-NULL", "NULL",
                      "a connector that declares flows implements flow_request and "
                      "flow_response; set both, or set flows to 0 and use build_request");
    if (!(d->flows & PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE))) {
        char found[32];
        snprintf(found, sizeof found, "0x%x", (unsigned)d->flows);
        return reject(rj, "flows", "AUTHORIZE bit set", found,
                      "every connector creates payments: add "
                      "PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE) to flows");
    }
    bool partial12 = PAGOFLEX_HAS_FIELD(d, pagoflex_connector, webhook_parse) &&
                     (d->webhook_verify != NULL) != (d->webhook_parse != NULL);
    if (partial12)
        return reject(rj, d->webhook_verify ? "webhook_parse" : "webhook_verify", "non-NULL",
                      "NULL", "set both webhook_verify and webhook_parse, or neither");
    if (!registry_desc_has_webhook12(d) && (!d->verify_webhook || !d->parse_webhook))
        return reject(rj, "webhook_verify", "non-NULL", "NULL",
                      "a connector receives webhooks: set webhook_verify and webhook_parse "
                      "(or the 1.0 verify_webhook and parse_webhook)");
    return 0;
}

static int check_entry_points(const pagoflex_connector *d, rejection *rj)
{
    if (registry_desc_has_flows(d))
        return check_flow_entry_points(d, rj);
    const struct {
        const char *name;
        int present;
    } required[] = {
        {"init", d->init != NULL},
        {"build_request", d->build_request != NULL},
        {"handle_response", d->handle_response != NULL},
        {"verify_webhook", d->verify_webhook != NULL},
        {"parse_webhook", d->parse_webhook != NULL},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i].present)
            return reject(rj, required[i].name, "non-NULL", "NULL",
                          "every ABI %d connector implements %s; only fini and "
                          "execute_request may be NULL (or, from ABI 1.2, declare flows "
                          "and implement flow_request and flow_response)",
                          PAGOFLEX_ABI_MAJOR, required[i].name);
    return 0;
}

uint32_t registry_flows_of(const pagoflex_connector *d)
{
    if (registry_desc_has_flows(d))
        return d->flows & REGISTRY_KNOWN_FLOWS;
    uint32_t f = PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_AUTHORIZE);
    if (registry_desc_has_sync(d))
        f |= PAGOFLEX_FLOW_BIT(PAGOFLEX_FLOW_PAYMENT_SYNC);
    return f;
}

bool registry_has_flow(const registry_plugin *p, pagoflex_flow flow)
{
    return (p->flows & PAGOFLEX_FLOW_BIT(flow)) != 0;
}

bool registry_uses_flows(const registry_plugin *p)
{
    return registry_desc_has_flows(p->desc);
}

bool registry_uses_webhook12(const registry_plugin *p)
{
    return registry_desc_has_webhook12(p->desc);
}

const char *registry_flow_name(pagoflex_flow flow)
{
    static const char *const names[PAGOFLEX_FLOW_COUNT] = {
        "authorize", "capture", "void", "refund", "payment_sync", "refund_sync"};
    return (unsigned)flow < PAGOFLEX_FLOW_COUNT ? names[flow] : "unknown";
}

static int check_unique(const registry *r, const pagoflex_connector *d, rejection *rj)
{
    char found[sizeof rj->found];
    for (size_t i = 0; i < r->count; i++) {
        const registry_plugin *o = r->plugins[i];
        if (strcmp(o->desc->key, d->key) == 0) {
            quote(found, sizeof found, d->key, REGISTRY_QUOTE_MAX);
            return reject(rj, "key", "unique", found,
                          "key %s is already served by %s; remove one of the two plugins",
                          d->key, o->file);
        }
        if (strcmp(o->desc->webhook_path, d->webhook_path) == 0) {
            quote(found, sizeof found, d->webhook_path, REGISTRY_QUOTE_MAX);
            return reject(rj, "webhook_path", "unique", found,
                          "webhook path /webhooks/%s is already served by %s (key %s); "
                          "give one of the two plugins another path",
                          d->webhook_path, o->file, o->desc->key);
        }
    }
    return 0;
}

/* The checks in the order the header promises: nothing past the header is
 * read before size says it is there. A loaded v1 descriptor has every v1.0
 * field; a field added by a later minor must be read only when
 * PAGOFLEX_HAS_FIELD(desc, pagoflex_connector, field) holds. */
static int check_descriptor(const registry *r, const pagoflex_connector *d, rejection *rj)
{
    if (check_header(d, rj) != 0 || check_identity(d, rj) != 0 ||
        check_entry_points(d, rj) != 0 || check_unique(r, d, rj) != 0)
        return -1;
    return 0;
}

/* ---- step 5: accounts and their credentials ---------------------------- */

bool registry_account_name_valid(const char *account)
{
    return name_matches(account, is_path_char) != 0;
}

static bool is_default(const char *account)
{
    return strcmp(account, "default") == 0;
}

/* " --account" and "<account>" for a fix hint, or "" and "" for "default". */
static const char *account_opt(const registry_plugin *p)
{
    return is_default(p->account) ? "" : " --account ";
}

static const char *account_arg(const registry_plugin *p)
{
    return is_default(p->account) ? "" : p->account;
}

/* The credentials file of (name, account), malloc'd; NULL on OOM. */
static char *account_path(const registry *r, const char *name, const char *account)
{
    char *path = NULL;
    int n = is_default(account) ? asprintf(&path, "%s/%s.cfg.enc", r->credentials_dir, name)
                                : asprintf(&path, "%s/%s/%s.cfg.enc", r->credentials_dir, name, account);
    return n < 0 ? NULL : path;
}

static void registry_note_account_rejected(registry *r, const char *plugin, const char *account,
                                           const char *reason)
{
    registry_account_rejection *grown =
        realloc(r->acct_rejected, (r->acct_rejected_count + 1) * sizeof *grown);
    if (!grown)
        return;
    r->acct_rejected = grown;
    registry_account_rejection *a = &grown[r->acct_rejected_count];
    a->plugin = strdup(plugin);
    a->account = strdup(account);
    a->reason = strdup(reason);
    if (a->plugin && a->account && a->reason) {
        r->acct_rejected_count++;
    } else {
        free(a->plugin);
        free(a->account);
        free(a->reason);
    }
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The accounts of plugin p, into *out (malloc'd names, *n of them):
 * "default" when <name>.cfg.enc exists or p requires no credential, then
 * each <name>/<account>.cfg.enc by name; just "default" when there is no
 * file at all (it then fails as a plugin without its file always has). A
 * file in <name>/ whose name is not a valid account (or is "default") is
 * refused and logged. -1 on OOM. */
static int plugin_accounts(registry *r, const registry_plugin *p, char ***out, size_t *n)
{
    char **names = NULL, *dir = NULL, *path = NULL;
    size_t count = 0, cap = 0;
    const char *const *req = p->desc->required_credentials;
    struct stat st;
    DIR *d = NULL;
    int rc = -1;
    if (!(path = account_path(r, p->name, "default")) ||
        asprintf(&dir, "%s/%s", r->credentials_dir, p->name) < 0) {
        dir = NULL;
        goto fail;
    }
    bool has_default = stat(path, &st) == 0 || !req || !req[0];
    if (!(d = opendir(dir)) && errno != ENOENT)
        log_error("connector accounts of plugin %s: cannot read %s: %s; only its account \"default\" "
                  "is loaded",
                  p->name, dir, strerror(errno));
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".cfg.enc"))
                continue;
            char *account = strndup(de->d_name, strlen(de->d_name) - strlen(".cfg.enc"));
            if (!account)
                goto fail;
            if (!registry_account_name_valid(account) || is_default(account)) {
                char q[REGISTRY_QUOTE_MAX * 4 + 8], line[1024];
                quote(q, sizeof q, account, REGISTRY_QUOTE_MAX);
                snprintf(line, sizeof line,
                         "connector account rejected: plugin=%s account=%s file=%s/%s field=account "
                         "expected=[a-z0-9_-]{1,32}, not \"default\" found=%s: rename the file "
                         "(account \"default\" is %s)",
                         p->name, q, dir, de->d_name, q, path);
                log_error("%s", line);
                registry_note_account_rejected(r, p->name, account, line);
                free(account);
                continue;
            }
            if (count + 1 >= cap) {
                size_t ncap = cap ? 2 * cap : 8;
                char **grown = realloc(names, ncap * sizeof *grown);
                if (!grown) {
                    free(account);
                    goto fail;
                }
                names = grown;
                cap = ncap;
            }
            names[count++] = account;
        }
    }
    if (count)
        qsort(names, count, sizeof *names, compare_strings);
    if (has_default || count == 0) {
        char **grown = realloc(names, (count + 1) * sizeof *grown);
        if (!grown)
            goto fail;
        names = grown;
        memmove(names + 1, names, count * sizeof *names);
        if (!(names[0] = strdup("default"))) {
            memmove(names, names + 1, count * sizeof *names);
            goto fail;
        }
        count++;
    }
    *out = names;
    *n = count;
    names = NULL;
    count = 0;
    rc = 0;
fail:
    if (d)
        closedir(d);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    free(dir);
    free(path);
    return rc;
}

/* "A, B, C" from a plugin's required_credentials, for a hint. */
static void list_names(const char *const *names, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; names && names[i] && i < REGISTRY_MAX_CREDENTIALS && o < cap; i++) {
        char q[REGISTRY_QUOTE_MAX * 4 + 8];
        quote_bare(q, sizeof q, names[i]);
        int w = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", q);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static int required_present(const registry_plugin *p, const pagoflex_credentials *creds,
                            const char *path, rejection *rj)
{
    const char *const *req = p->desc->required_credentials;
    char name[REGISTRY_QUOTE_MAX * 4 + 8];
    for (size_t i = 0; req && req[i]; i++) {
        if (i >= REGISTRY_MAX_CREDENTIALS)
            return reject(rj, "required_credentials", "at most 64 names", "more",
                          "is required_credentials NULL-terminated?");
        const char *v = creds_get(creds, req[i]);
        if (v && v[0])
            continue;
        quote_bare(name, sizeof name, req[i]);
        return reject(rj, "credentials", name, v ? "empty" : "absent",
                      "%s has no non-empty %s; re-create it with: pagoflex secrets encrypt "
                      "--plugin %s%s%s --in <plain.cfg> --out %s",
                      path, name, p->name, account_opt(p), account_arg(p), path);
    }
    return 0;
}

/* Decrypt the credentials file of account p->account (registry.h; or an
 * empty set when the file is absent and nothing is required), bound to
 * that plugin and account, and check the required names. */
static int plugin_credentials(registry *r, registry_plugin *p, pagoflex_credentials **out,
                              rejection *rj)
{
    const char *const *req = p->desc->required_credentials;
    pagoflex_credentials *creds = NULL;
    char *path = NULL;
    char why[sizeof rj->found - 2], found[sizeof rj->found];
    char binding[SECRETS_MAX_PLUGIN_NAME + REGISTRY_NAME_MAX + 2];
    struct stat st;
    int rc = -1;

    if (!(path = account_path(r, p->name, p->account)) ||
        secrets_binding_name(p->name, p->account, binding, sizeof binding) != 0) {
        reject(rj, "credentials", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (stat(path, &st) != 0 && errno == ENOENT) {
        if (req && req[0]) {
            char names[256];
            list_names(req, names, sizeof names);
            reject(rj, "credentials", path, "no such file",
                   "create it with: pagoflex secrets encrypt --plugin %s%s%s --in <plain.cfg> "
                   "--out %s (settings: %s)",
                   p->name, account_opt(p), account_arg(p), path, names);
            goto fail;
        }
        creds = creds_new();
        if (!creds) {
            reject(rj, "credentials", "memory", "out of memory", "free memory and retry");
            goto fail;
        }
    } else {
        if (!r->master_key) {
            reject(rj, "credentials", "a master key", "none",
                   "set PAGOFLEX_MASTER_KEY or the master key file so %s can be decrypted",
                   path);
            goto fail;
        }
        why[0] = '\0';
        const secrets_key *keys[2] = {r->master_key, r->previous_master_key};
        if (secrets_load_credentials_keys(keys, 2, path, binding, &creds, why, sizeof why) != 0) {
            creds = NULL;
            quote(found, sizeof found, why[0] ? why : "cannot decrypt", sizeof why);
            reject(rj, "credentials", "decryptable", found,
                   "re-create it under this host's master key with: pagoflex secrets "
                   "encrypt --plugin %s%s%s --in <plain.cfg> --out %s",
                   p->name, account_opt(p), account_arg(p), path);
            goto fail;
        }
    }
    if (required_present(p, creds, path, rj) != 0)
        goto fail;
    for (size_t i = 0; i < r->settings_count; i++) {
        const creds_setting *st = &r->settings[i];
        if (strcmp(st->plugin, p->name) == 0 && creds_set_setting(creds, st->name, st->value) != 0) {
            reject(rj, "settings", "memory", "out of memory", "free memory and retry");
            goto fail;
        }
    }
    *out = creds;
    creds = NULL;
    rc = 0;
fail:
    creds_free(creds);
    free(path);
    return rc;
}

/* ---- step 5b: mutual TLS ---------------------------------------------- */

/* Read and check the client certificate a 1.2 plugin names (tlscreds.h):
 * an unusable one (absent, not PEM, expired, key mismatch) refuses the
 * plugin, naming the credential, never showing it. Make the token and key
 * set caches of a plugin that has token_request or keys_request. */
static int plugin_tls(registry_plugin *p, const pagoflex_credentials *creds, rejection *rj)
{
    char why[256];
    if (tlscreds_load(p->desc, creds, (int64_t)time(NULL), &p->tls, why, sizeof why) != 0)
        return reject(rj, "credentials", "a usable client certificate", "unusable", "%s", why);
    /* Caches of what the host fetches for the account (bankcall.c). */
    const pagoflex_connector *d = p->desc;
    if (PAGOFLEX_HAS_FIELD(d, pagoflex_connector, keys_request)) {
        if ((d->token_request && d->token_response && !(p->token = banktoken_new())) ||
            (d->keys_request && !(p->keys = keyset_new())))
            return reject(rj, "init", "memory", "out of memory", "free memory and retry");
    }
    return 0;
}

/* ---- step 6: init ----------------------------------------------------- */

static int plugin_init(registry_plugin *p, const pagoflex_credentials *creds, rejection *rj)
{
    char found[64];
    void *state = NULL;
    services_init(&p->services, p->desc->key);
    int status = p->desc->init(&p->services.table, creds, &state);
    if (status != PAGOFLEX_OK) {
        snprintf(found, sizeof found, "%s (%d)", status_name(status), status);
        return reject(rj, "init", "PAGOFLEX_OK", found,
                      "init returned %s (%d); the plugin's log lines above say why",
                      status_name(status), status);
    }
    p->state = state;
    p->init_arena = creds_take_init_arena((pagoflex_credentials *)creds);
    return 0;
}

/* ---- the registry ----------------------------------------------------- */

registry *registry_new(const registry_options *opts)
{
    registry *r = NULL;
    if (!opts || !opts->credentials_dir || !opts->private_dir)
        goto fail;
    r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    r->plugin_dir = opts->plugin_dir ? strdup(opts->plugin_dir) : NULL;
    r->credentials_dir = strdup(opts->credentials_dir);
    r->private_dir = strdup(opts->private_dir);
    r->master_key = opts->master_key;
    r->keep_last_good = opts->keep_last_good;
    if (opts->skip) {
        size_t n = 0;
        while (opts->skip[n])
            n++;
        if (!(r->skip = calloc(n + 1, sizeof *r->skip)))
            goto fail;
        for (size_t i = 0; i < n; i++)
            if (!(r->skip[i] = strdup(opts->skip[i])))
                goto fail;
    }
    r->previous_master_key = opts->previous_master_key;
    r->settings = opts->settings;
    r->settings_count = opts->settings_count;
    r->trust = opts->trust;
    if ((opts->plugin_dir && !r->plugin_dir) || !r->credentials_dir || !r->private_dir)
        goto fail;
    return r;
fail:
    registry_free(r);
    return NULL;
}

static int registry_reserve(registry *r)
{
    if (r->count < r->cap)
        return 0;
    size_t cap = r->cap ? 2 * r->cap : 8;
    registry_plugin **p = realloc(r->plugins, cap * sizeof *p);
    if (!p)
        return -1;
    r->plugins = p;
    r->cap = cap;
    return 0;
}

/* Log the rejection of `path` (of its last good version `copy`, if not
 * NULL) as one line, and copy that line to err. */
static void report_rejection(const rejection *rj, const char *path, const char *copy, char *err,
                             size_t errlen)
{
    char line[2048];
    if (copy)
        snprintf(line, sizeof line,
                 "last good version refused: file=%s copy=%s field=%s expected=%s found=%s: %s; "
                 "it is not served: deploy a %s that loads and reload",
                 path, copy, rj->field ? rj->field : "?", rj->expected, rj->found, rj->fix,
                 path);
    else
        snprintf(line, sizeof line, "plugin rejected: file=%s field=%s expected=%s found=%s: %s",
                 path, rj->field ? rj->field : "?", rj->expected, rj->found, rj->fix);
    log_error("%s", line);
    if (err && errlen)
        snprintf(err, errlen, "%s", line);
}

/* A last good record names the copy the registry itself would have made
 * for that content: <private_dir>/<name>-<sha256 prefix>.so, and it exists. */
static int lastgood_check(const registry *r, const registry_plugin *p, const char *copy,
                          const char *record, rejection *rj)
{
    char *want = NULL;
    int rc = -1;
    if (asprintf(&want, "%s/%s-%.16s.so", r->private_dir, p->name, p->sha256) < 0) {
        want = NULL;
        reject(rj, "last_good", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (strcmp(copy, want) != 0) {
        reject(rj, "last_good", want, copy,
               "the record %s names a file the registry did not copy; remove the record",
               record);
        goto fail;
    }
    if (access(copy, F_OK) != 0) {
        reject(rj, "last_good", "an existing private copy", strerror(errno),
               "the recorded copy is gone; remove the record %s", record);
        goto fail;
    }
    rc = 0;
fail:
    free(want);
    return rc;
}

/* A new instance of loaded plugin p for `account`: the same object (one
 * more dlopen reference to it) and descriptor, the same load lock (a dup of
 * its descriptor), nothing else shared. NULL with the reason in rj. */
static registry_plugin *plugin_instance(const registry_plugin *p, const char *account, rejection *rj)
{
    registry_plugin *a = plugin_new(p->file);
    if (!a || !(a->account = strdup(account)) || !(a->private_path = strdup(p->private_path)) ||
        (p->last_error && !(a->last_error = strdup(p->last_error)))) {
        reject(rj, "account", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    memcpy(a->sha256, p->sha256, sizeof a->sha256);
    /* RTLD_NOLOAD: the object p mapped, never another file. */
    if (!(a->handle = dlopen(p->private_path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) ||
        (a->private_fd = fcntl(p->private_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        reject(rj, "account", "the loaded plugin", "cannot reference it again",
               "reload; if it persists, report it");
        goto fail;
    }
    a->desc = p->desc;
    a->flows = p->flows;
    a->loaded_at = p->loaded_at;
    return a;
fail:
    if (a && a->handle)
        dlclose(a->handle);
    plugin_free(a);
    return NULL;
}

/* Steps 5 and 6 for one account of loaded plugin p: its instance, its
 * credentials, client certificate and init; 0 and the instance is served,
 * or -1 with the reason in rj and nothing of the account left. */
static int plugin_account_load(registry *r, const registry_plugin *p, const char *account, rejection *rj)
{
    pagoflex_credentials *creds = NULL;
    registry_plugin *a = NULL;
    if (registry_reserve(r) != 0) {
        reject(rj, "registry", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (!(a = plugin_instance(p, account, rj)) || plugin_credentials(r, a, &creds, rj) != 0 ||
        plugin_tls(a, creds, rj) != 0 || plugin_init(a, creds, rj) != 0)
        goto fail;
    /* The plugin copied what it needs during init. */
    creds_free(creds);
    r->plugins[r->count++] = a;
    if (!is_default(account))
        log_info("connector account loaded: plugin=%s account=%s key=%s", a->name, account, a->desc->key);
    return 0;
fail:
    creds_free(creds);
    if (a) {
        dlclose(a->handle);
        plugin_free(a);
    }
    return -1;
}

/* Log account `account` of plugin `name` as refused because of rj, and
 * record it for the listings. */
static void report_account_rejection(registry *r, const rejection *rj, const char *name, const char *account)
{
    char line[2048];
    snprintf(line, sizeof line,
             "connector account rejected: plugin=%s account=%s field=%s expected=%s found=%s: %s; "
             "the plugin's other accounts serve",
             name, account, rj->field ? rj->field : "?", rj->expected, rj->found, rj->fix);
    log_error("%s", line);
    registry_note_account_rejected(r, name, account, line);
}

/* Load the plugin of file `path`: from a fresh private copy of it, or, when
 * `copy` is given, from that existing private copy (its last good version,
 * with hash `sha`, served because of `last_error`). Both go through the same
 * checks before dlopen (plugin_open). */
static int registry_load(registry *r, const char *path, const char *copy, const char *sha,
                         const char *last_error, char *err, size_t errlen)
{
    rejection rj = {0};
    char *record = NULL, **accounts = NULL;
    size_t naccounts = 0;
    registry_plugin *p = plugin_new(path);

    if (!p) {
        reject(&rj, "file", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    if (copy) {
        memcpy(p->sha256, sha, sizeof p->sha256);
        p->private_path = strdup(copy);
        record = lastgood_path(r, p->name);
        if (!p->private_path || !record ||
            (last_error && !(p->last_error = strdup(last_error)))) {
            reject(&rj, "file", "memory", "out of memory", "free memory and retry");
            goto fail;
        }
        if (lastgood_check(r, p, copy, record, &rj) != 0 || plugin_open(r, p, &rj) != 0)
            goto fail;
    } else if (plugin_copy_and_open(r, p, &rj) != 0) {
        goto fail;
    }
    if (check_descriptor(r, p->desc, &rj) != 0)
        goto fail;
    p->flows = registry_flows_of(p->desc);
    p->loaded_at = time(NULL);
    if (plugin_accounts(r, p, &accounts, &naccounts) != 0) {
        reject(&rj, "credentials", "memory", "out of memory", "free memory and retry");
        goto fail;
    }
    size_t first = r->count;
    for (size_t i = 0; i < naccounts; i++) {
        rejection arj = {0};
        if (plugin_account_load(r, p, accounts[i], &arj) == 0)
            continue;
        if (i == 0)
            rj = arj; /* the plugin's reason if no account loads: its first account's */
        if (naccounts > 1)
            report_account_rejection(r, &arj, p->name, accounts[i]);
    }
    if (r->count == first)
        goto fail;
    free(record);
    for (size_t i = 0; i < naccounts; i++)
        free(accounts[i]);
    free(accounts);
    if (r->keep_last_good && !copy)
        lastgood_write(r, r->plugins[first]);
    char version[REGISTRY_QUOTE_MAX * 4 + 8];
    quote(version, sizeof version, p->desc->version, REGISTRY_QUOTE_MAX);
    log_info("plugin loaded: file=%s key=%s version=%s abi=%u.%u webhook=/webhooks/%s "
             "sha256=%.16s accounts=%zu%s",
             p->file, p->desc->key, version, (unsigned)p->desc->abi_major, (unsigned)p->desc->abi_minor,
             p->desc->webhook_path, p->sha256, r->count - first, copy ? " (last good version)" : "");
    /* The instances hold the object and the load lock now. */
    plugin_discard(r, p);
    return 0;
fail:
    for (size_t i = 0; i < naccounts; i++)
        free(accounts[i]);
    free(accounts);
    free(record);
    /* Report before dlclose: rj holds copies, but say it while all is mapped. */
    report_rejection(&rj, path, copy, err, errlen);
    if (p)
        plugin_discard(r, p);
    return -1;
}

int registry_load_file(registry *r, const char *path, char *err, size_t errlen)
{
    return registry_load(r, path, NULL, NULL, NULL, err, errlen);
}

/* `path` (plugin `name`) did not load because of `why`: serve its last good
 * version if there is one. 0 if it now serves; -1 if there is none, or it
 * was refused too (then why, of size whylen, gets that reason appended). */
static int registry_fall_back(registry *r, const char *path, const char *name, char *why,
                              size_t whylen)
{
    char *copy = NULL, sha[65];
    char err[2048];
    int rc = -1;
    if (!r->keep_last_good || lastgood_read(r, name, &copy, sha) != 0)
        goto done;
    if (registry_load(r, path, copy, sha, why, err, sizeof err) != 0) {
        size_t n = strlen(why);
        if (n < whylen)
            snprintf(why + n, whylen - n, "; %s", err);
        goto done;
    }
    log_warn("plugin %s: serving its last good version (sha256 %.16s) because the new file was "
             "rejected",
             name, sha);
    rc = 0;
done:
    free(copy);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of *.so entries in `dir` (no dotfiles), sorted. */
static int list_plugin_files(const char *dir, char ***out, size_t *out_n, char *err,
                             size_t errlen)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read plugin directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".so"))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **grown = realloc(names, ncap * sizeof *grown);
            if (!grown)
                goto oom;
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name)))
            goto oom;
        n++;
        errno = 0;
    }
    if (errno) {
        snprintf(err, errlen, "cannot read plugin directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    *out = names;
    *out_n = n;
    return 0;
oom:
    snprintf(err, errlen, "cannot list plugin directory %s: out of memory", dir);
fail:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return -1;
}

int registry_load_dir(registry *r, char *err, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    int loaded = 0;

    if (!r->plugin_dir) {
        snprintf(err, errlen, "no plugin directory configured");
        return -1;
    }
    plugin_trust_problem pb;
    if (plugin_trust_check_mode(r->plugin_dir, true, &pb) != 0) {
        snprintf(err, errlen, "plugin directory refused: %s (%s): %s", pb.found, pb.expected,
                 pb.fix);
        return -1;
    }
    if (list_plugin_files(r->plugin_dir, &names, &n, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *path = NULL;
        char why[4096];
        if (asprintf(&path, "%s/%s", r->plugin_dir, names[i]) < 0) {
            log_error("plugin rejected: file=%s/%s: out of memory", r->plugin_dir, names[i]);
            continue;
        }
        char *name = strndup(names[i], strlen(names[i]) - 3);
        if (!name) {
            free(path);
            continue;
        }
        if (registry_skipped(r, name)) {
            snprintf(why, sizeof why,
                     "plugin skipped: file=%s: quarantined after repeated worker crashes; it is "
                     "loaded again after the next reload (SIGHUP)",
                     path);
            log_warn("%s", why);
            registry_note_rejected(r, path, why);
        } else if (registry_load_file(r, path, why, sizeof why) == 0 ||
                   registry_fall_back(r, path, name, why, sizeof why) == 0) {
            loaded++;
        } else {
            registry_note_rejected(r, path, why);
        }
        free(name);
        free(path);
    }
    log_info("plugins: %d loaded, %zu rejected from %s", loaded, n - (size_t)loaded,
             r->plugin_dir);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return loaded;
}

const registry_plugin *registry_find_key(const registry *r, const char *key)
{
    for (size_t i = 0; r && key && i < r->count; i++)
        if (strcmp(r->plugins[i]->desc->key, key) == 0)
            return r->plugins[i];
    return NULL;
}

const registry_plugin *registry_find_webhook(const registry *r, const char *path)
{
    for (size_t i = 0; r && path && i < r->count; i++)
        if (strcmp(r->plugins[i]->desc->webhook_path, path) == 0)
            return r->plugins[i];
    return NULL;
}

const registry_plugin *registry_find_account(const registry *r, const char *key, const char *account)
{
    for (size_t i = 0; r && key && account && i < r->count; i++)
        if (strcmp(r->plugins[i]->desc->key, key) == 0 && strcmp(r->plugins[i]->account, account) == 0)
            return r->plugins[i];
    return NULL;
}

const registry_plugin *registry_find_webhook_account(const registry *r, const char *path, const char *account)
{
    for (size_t i = 0; r && path && account && i < r->count; i++)
        if (strcmp(r->plugins[i]->desc->webhook_path, path) == 0 &&
            strcmp(r->plugins[i]->account, account) == 0)
            return r->plugins[i];
    return NULL;
}

size_t registry_account_rejected_count(const registry *r)
{
    return r ? r->acct_rejected_count : 0;
}

const registry_account_rejection *registry_account_rejected_at(const registry *r, size_t i)
{
    return r && i < r->acct_rejected_count ? &r->acct_rejected[i] : NULL;
}

size_t registry_rejected_count(const registry *r)
{
    return r ? r->rejected_count : 0;
}

const registry_rejection *registry_rejected_at(const registry *r, size_t i)
{
    return r && i < r->rejected_count ? &r->rejected[i] : NULL;
}

size_t registry_count(const registry *r)
{
    return r ? r->count : 0;
}

const registry_plugin *registry_at(const registry *r, size_t i)
{
    return r && i < r->count ? r->plugins[i] : NULL;
}

/* ---- cleaning the private directory ------------------------------------ */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* True when file `file` of the private directory is loaded by `r` or is
 * the last good version recorded for its plugin (names compared without
 * their folder, so a private_dir spelled another way still matches). */
static bool private_referenced(const registry *r, const char *file)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(base_name(r->plugins[i]->private_path), file) == 0)
            return true;
    const char *dash = strrchr(file, '-');
    if (!dash || dash == file)
        return false;
    char *name = strndup(file, (size_t)(dash - file)), *copy = NULL, sha[65];
    bool used = name && lastgood_read(r, name, &copy, sha) == 0 && strcmp(base_name(copy), file) == 0;
    free(copy);
    free(name);
    return !name || used; /* out of memory: keep it */
}

/* Remove `path` (entry `file`) if no process holds its load lock and
 * nothing of `r` references it. 1 if removed. */
static int private_remove_unused(const registry *r, const char *path, const char *file)
{
    struct stat held, named;
    int removed = 0;
    if (private_referenced(r, file))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return 0;
    /* Exclusive only while no loader holds its shared lock; the references
     * are looked at again under it, since a loader records its last good
     * version while it holds the lock. */
    if (fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        !private_referenced(r, file) && lstat(path, &named) == 0 && named.st_dev == held.st_dev &&
        named.st_ino == held.st_ino && unlink(path) == 0)
        removed = 1;
    close(fd);
    return removed;
}

int registry_clean_private(const registry *r)
{
    if (!r || !r->keep_last_good)
        return 0;
    DIR *d = opendir(r->private_dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int removed = 0;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *file = de->d_name;
        char *path = NULL;
        struct stat st;
        if (strcmp(file, ".") == 0 || strcmp(file, "..") == 0 ||
            asprintf(&path, "%s/%s", r->private_dir, file) < 0)
            continue;
        if (file[0] == '.') {
            /* .<name>.XXXXXX: a copy being written, or left by a crash. */
            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                now - st.st_mtime > REGISTRY_TMP_GRACE_S && unlink(path) == 0)
                removed++;
        } else if (has_suffix(file, ".so")) {
            removed += private_remove_unused(r, path, file);
        }
        free(path);
    }
    closedir(d);
    if (removed)
        log_info("plugins: removed %d private cop%s nothing uses any more from %s", removed,
                 removed == 1 ? "y" : "ies", r->private_dir);
    return removed;
}

void registry_free(registry *r)
{
    if (!r)
        return;
    /* Reverse load order, like destructors. */
    for (size_t i = r->count; i-- > 0;) {
        registry_plugin *p = r->plugins[i];
        if (p->desc->fini)
            p->desc->fini(p->state);
        dlclose(p->handle);
        if (!r->keep_last_good)
            private_unlink(p->private_path);
        plugin_free(p);
    }
    for (size_t i = 0; i < r->rejected_count; i++) {
        free(r->rejected[i].file);
        free(r->rejected[i].reason);
    }
    free(r->rejected);
    for (size_t i = 0; i < r->acct_rejected_count; i++) {
        free(r->acct_rejected[i].plugin);
        free(r->acct_rejected[i].account);
        free(r->acct_rejected[i].reason);
    }
    free(r->acct_rejected);
    for (char **s = r->skip; s && *s; s++)
        free(*s);
    free(r->skip);
    free(r->plugins);
    free(r->plugin_dir);
    free(r->credentials_dir);
    free(r->private_dir);
    free(r);
}
