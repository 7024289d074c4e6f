/* cli_secrets_tools.c - `pagoflex secrets edit | rotate | check`.
 *
 * edit keeps the plaintext in one place only: a 0600 file inside a fresh
 * 0700 folder on tmpfs (RAM, never written to a disk). Every file found in
 * that folder afterwards (the editor's backup and swap files too) is
 * overwritten with zeros and removed, and so is the folder, whatever the
 * outcome. SIGINT and SIGQUIT go to the editor in the foreground (this
 * process ignores them while it waits, as system(3) does); SIGTERM and
 * SIGHUP stop the editor, then the files are wiped and the signal is raised
 * again with its default action.
 */
#include "cli_secrets_tools.h"
#include "cli_secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "registry.h"
#include "secrets.h"

#define TOOLS_ERRLEN 1024
#define TOOLS_TMPFS_MAGIC 0x01021994
#define TOOLS_RAMFS_MAGIC 0x858458f6

static volatile sig_atomic_t tools_signal;

static void tools_on_signal(int sig)
{
    tools_signal = sig;
}

static int tools_bad_option(const cli_command *cmd, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (c == ':')
        return cli_usage_error(cmd, "option %s needs a value", arg);
    return cli_usage_error(cmd, "unknown option %s", arg);
}

/* --key-file wins; else $PAGOFLEX_MASTER_KEY, then $PAGOFLEX_MASTER_KEY_FILE. */
static int tools_load_key(const char *key_file, secrets_key *key)
{
    char err[TOOLS_ERRLEN];
    int rc = key_file ? secrets_key_from_file(key_file, key, err, sizeof err)
                      : secrets_key_load(NULL, key, err, sizeof err);
    return rc == 0 ? CLI_OK : cli_error("%s", err);
}

static int tools_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static void tools_free_plain(unsigned char *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

/* ---- edit ------------------------------------------------------------- */

static int tools_is_tmpfs(const char *dir)
{
    struct statfs fs;
    struct stat st;
    if (!dir || !*dir || statfs(dir, &fs) != 0 || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    return (unsigned long)fs.f_type == TOOLS_TMPFS_MAGIC ||
           (unsigned long)fs.f_type == TOOLS_RAMFS_MAGIC;
}

/* Where the plaintext may go: a tmpfs, or with insecure any temp folder. */
static const char *tools_pick_tmp(int insecure)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (tools_is_tmpfs(xdg))
        return xdg;
    if (tools_is_tmpfs("/dev/shm"))
        return "/dev/shm";
    if (!insecure)
        return NULL;
    const char *tmp = getenv("TMPDIR");
    return tmp && *tmp ? tmp : "/tmp";
}

/* Overwrite a regular file with zeros, then remove it. */
static void tools_wipe_file(int dirfd, const char *name)
{
    struct stat st;
    int fd = openat(dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        static const char zeros[4096];
        off_t left = st.st_size;
        while (left > 0) {
            size_t n = left > (off_t)sizeof zeros ? sizeof zeros : (size_t)left;
            ssize_t w = write(fd, zeros, n);
            if (w <= 0)
                break;
            left -= w;
        }
        fsync(fd);
    }
    if (fd >= 0)
        close(fd);
    if (unlinkat(dirfd, name, 0) != 0 && errno == EISDIR)
        unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* Wipe every file of the private folder, then remove it. */
static void tools_wipe_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            tools_wipe_file(dirfd(d), de->d_name);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int tools_write_private(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    return close(fd);
}

/* Run $EDITOR (through /bin/sh, so "code --wait" works) on `path`; its
 * exit status, or -1 if it could not run or a signal stopped us (then
 * tools_signal is set). */
static int tools_run_editor(const char *path)
{
    const char *editor = getenv("VISUAL");
    if (!editor || !*editor)
        editor = getenv("EDITOR");
    if (!editor || !*editor)
        editor = "vi";
    struct sigaction ign = {.sa_handler = SIG_IGN}, catch = {.sa_handler = tools_on_signal};
    struct sigaction old_int, old_quit, old_term, old_hup;
    sigemptyset(&ign.sa_mask);
    sigemptyset(&catch.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    sigaction(SIGTERM, &catch, &old_term);
    sigaction(SIGHUP, &catch, &old_hup);
    int status = -1;
    pid_t pid = tools_signal ? -1 : fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        char script[4096];
        int n = snprintf(script, sizeof script, "%s \"$1\"", editor);
        if (n < 0 || (size_t)n >= sizeof script)
            _exit(127);
        execl("/bin/sh", "sh", "-c", script, "sh", path, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) {
        int forwarded = 0;
        for (;;) {
            pid_t w = waitpid(pid, &status, 0);
            if (w == pid)
                break;
            if (w < 0 && errno != EINTR) {
                status = -1;
                break;
            }
            if (tools_signal && !forwarded) {
                kill(pid, SIGTERM);
                forwarded = 1;
            }
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (tools_signal || status < 0)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The steps of edit once the plaintext is in `file`: editor, validation,
 * encryption. The caller wipes the folder afterwards. */
static int tools_edit_file(const secrets_key *key, const char *plugin, const char *enc_path,
                           const char *file, const unsigned char *before, size_t before_len)
{
    unsigned char *after = NULL, *enc = NULL;
    size_t after_len = 0, enc_len = 0;
    pagoflex_credentials *creds = NULL;
    char err[TOOLS_ERRLEN];
    int rc = CLI_ERROR;
    int status = tools_run_editor(file);
    if (tools_signal)
        goto fail;
    if (status != 0) {
        rc = cli_error("the editor failed (%s %d); %s was not changed",
                       status < 0 ? "could not run it, status" : "exit status", status, enc_path);
        goto fail;
    }
    if (secrets_read_file(file, SECRETS_MAX_PLAIN, &after, &after_len, err, sizeof err) != 0) {
        rc = cli_error("cannot read back the edited text (%s); %s was not changed", err, enc_path);
        goto fail;
    }
    if (after_len == before_len && (before_len == 0 || memcmp(after, before, after_len) == 0)) {
        fprintf(stderr, "pagoflex: no changes; %s left as it was\n", enc_path);
        rc = CLI_OK;
        goto fail;
    }
    if (secrets_parse_credentials((const char *)after, after_len, &creds, err, sizeof err) != 0) {
        rc = cli_error("the edited credentials are not valid: %s; %s was not changed "
                       "(run edit again)", err, enc_path);
        goto fail;
    }
    if (secrets_encrypt(key, plugin, after, after_len, &enc, &enc_len, err, sizeof err) != 0 ||
        cli_write_file(enc_path, enc, enc_len, CLI_WRITE_REPLACE, err, sizeof err) != 0) {
        rc = cli_error("%s; %s was not changed", err, enc_path);
        goto fail;
    }
    fprintf(stderr, "pagoflex: wrote %s for plugin %s (%zu setting%s)\n", enc_path, plugin,
            creds->count, creds->count == 1 ? "" : "s");
    rc = CLI_OK;
fail:
    creds_free(creds);
    tools_free_plain(after, after_len);
    free(enc);
    return rc;
}

int cli_secrets_edit(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugin", required_argument, NULL, 'p'},
        {"account", required_argument, NULL, 'a'},
        {"key-file", required_argument, NULL, 'k'},
        {"insecure-tmp", no_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    const char *plugin = NULL, *account = NULL, *key_file = NULL, *path = NULL, *base = NULL;
    char binding[SECRETS_MAX_PLUGIN_NAME + 40];
    unsigned char *file = NULL, *plain = NULL;
    size_t file_len = 0, plain_len = 0;
    char dir[4096] = "", tmpfile[4200], err[TOOLS_ERRLEN];
    int insecure = 0, c, rc = CLI_ERROR;
    secrets_key key;

    memset(&key, 0, sizeof key);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:a:k:I", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plugin = optarg; break;
        case 'a':
            account = optarg;
            break;
        case 'k': key_file = optarg; break;
        case 'I': insecure = 1; break;
        default: rc = tools_bad_option(cmd, c, argv); goto fail;
        }
    }
    if (optind != argc - 1) {
        rc = cli_usage_error(cmd, "name exactly one encrypted file to edit");
        goto fail;
    }
    path = argv[optind];
    if ((rc = cli_secrets_binding(cmd, plugin, account, binding, sizeof binding)) != CLI_OK)
        goto fail;
    rc = CLI_ERROR;
    if (tools_load_key(key_file, &key) != CLI_OK)
        goto fail;
    if (access(path, F_OK) == 0) {
        if (secrets_read_file(path, SECRETS_MAX_FILE, &file, &file_len, err, sizeof err) != 0 ||
            secrets_decrypt(&key, binding, file, file_len, &plain, &plain_len, err, sizeof err) != 0) {
            rc = cli_error("cannot decrypt %s for %s: %s", path, binding, err);
            goto fail;
        }
    } else {
        fprintf(stderr, "pagoflex: %s does not exist; starting from an empty file\n", path);
    }
    base = tools_pick_tmp(insecure);
    if (!base) {
        rc = cli_error("neither $XDG_RUNTIME_DIR nor /dev/shm is a tmpfs, so the plaintext would "
                       "reach a disk; mount one, or pass --insecure-tmp to accept that risk");
        goto fail;
    }
    if (base && insecure && !tools_is_tmpfs(base))
        cli_warn("--insecure-tmp: the plaintext goes to %s, which is not a tmpfs", base);
    int n = snprintf(dir, sizeof dir, "%s/pagoflex-edit.XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof dir || !mkdtemp(dir)) {
        dir[0] = '\0';
        rc = cli_error("cannot create a private folder in %s: %s", base, strerror(errno));
        goto fail;
    }
    n = snprintf(tmpfile, sizeof tmpfile, "%s/%s.cfg", dir, plugin);
    if (n < 0 || (size_t)n >= sizeof tmpfile ||
        tools_write_private(tmpfile, plain ? plain : (const unsigned char *)"", plain_len) != 0) {
        rc = cli_error("cannot write the plaintext into %s: %s", dir, strerror(errno));
        goto fail;
    }
    rc = tools_edit_file(&key, binding, path, tmpfile, plain, plain_len);
fail:
    if (dir[0])
        tools_wipe_dir(dir);
    free(file);
    tools_free_plain(plain, plain_len);
    secrets_key_wipe(&key);
    if (tools_signal) {
        int sig = tools_signal;
        fprintf(stderr, "pagoflex: signal %d: plaintext wiped; nothing was changed\n", sig);
        signal(sig, SIG_DFL);
        raise(sig);
    }
    return rc;
}

/* ---- rotate ----------------------------------------------------------- */

/* Re-encrypt one file; 0 done or nothing to do, -1 reported. */
static int tools_rotate_file(const secrets_key *old_key, const secrets_key *new_key,
                             const char *path, const char *plugin)
{
    unsigned char *file = NULL, *plain = NULL, *enc = NULL;
    size_t file_len = 0, plain_len = 0, enc_len = 0;
    pagoflex_credentials *creds = NULL;
    char err[TOOLS_ERRLEN];
    const secrets_key *keys[1] = {new_key};
    int rc = -1;
    if (secrets_read_file(path, SECRETS_MAX_FILE, &file, &file_len, err, sizeof err) != 0) {
        cli_error("%s", err);
        goto fail;
    }
    if (secrets_key_for_file(keys, 1, file, file_len)) {
        fprintf(stderr, "pagoflex: %s is already under the new key; left alone\n", path);
        rc = 0;
        goto fail;
    }
    if (secrets_decrypt(old_key, plugin, file, file_len, &plain, &plain_len, err, sizeof err) != 0 ||
        secrets_parse_credentials((const char *)plain, plain_len, &creds, err, sizeof err) != 0 ||
        secrets_encrypt(new_key, plugin, plain, plain_len, &enc, &enc_len, err, sizeof err) != 0 ||
        cli_write_file(path, enc, enc_len, CLI_WRITE_REPLACE, err, sizeof err) != 0) {
        cli_error("cannot rotate %s (plugin %s): %s; the file was not changed", path, plugin, err);
        goto fail;
    }
    fprintf(stderr, "pagoflex: rotated %s\n", path);
    rc = 0;
fail:
    creds_free(creds);
    free(file);
    free(enc);
    tools_free_plain(plain, plain_len);
    return rc;
}

/* Rotate every *.cfg.enc of `dir`: a plugin's file (<plugin>.cfg.enc) when
 * `plugin` is NULL, else the account files of `plugin` (<account>.cfg.enc,
 * bound to "<plugin>/<account>"), whose folders are visited from the top
 * level. Counts into *done and *failed. -1 if `dir` cannot be read. */
static int tools_rotate_dir(const secrets_key *old_key, const secrets_key *new_key, const char *dir,
                            const char *plugin, int *done, int *failed)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[4096], name[256], binding[600];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof path) {
            cli_error("path too long: %s/%s", dir, de->d_name);
            (*failed)++;
            continue;
        }
        if (!plugin && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (tools_rotate_dir(old_key, new_key, path, de->d_name, done, failed) != 0) {
                cli_error("cannot read account folder %s: %s", path, strerror(errno));
                (*failed)++;
            }
            continue;
        }
        if (!tools_has_suffix(de->d_name, ".cfg.enc"))
            continue;
        size_t stem = strlen(de->d_name) - strlen(".cfg.enc");
        if (stem >= sizeof name) {
            cli_error("name too long: %s", path);
            (*failed)++;
            continue;
        }
        memcpy(name, de->d_name, stem);
        name[stem] = '\0';
        if (secrets_binding_name(plugin ? plugin : name, plugin ? name : NULL, binding, sizeof binding) !=
                0 ||
            tools_rotate_file(old_key, new_key, path, binding) != 0)
            (*failed)++;
        else
            (*done)++;
    }
    closedir(d);
    return 0;
}

int cli_secrets_rotate(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"old-key-file", required_argument, NULL, 'o'},
        {"new-key-file", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    const char *old_file = NULL, *new_file = NULL, *dir = NULL;
    secrets_key old_key, new_key;
    char old_id[2 * SECRETS_KEY_ID_LEN + 1], new_id[2 * SECRETS_KEY_ID_LEN + 1];
    int c, rc = CLI_ERROR, failed = 0, done = 0;

    memset(&old_key, 0, sizeof old_key);
    memset(&new_key, 0, sizeof new_key);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:n:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': old_file = optarg; break;
        case 'n': new_file = optarg; break;
        default: rc = tools_bad_option(cmd, c, argv); goto fail;
        }
    }
    if (!old_file || !new_file || optind != argc - 1) {
        rc = cli_usage_error(cmd, "give --old-key-file, --new-key-file and the credentials folder");
        goto fail;
    }
    dir = argv[optind];
    if (tools_load_key(old_file, &old_key) != CLI_OK || tools_load_key(new_file, &new_key) != CLI_OK)
        goto fail;
    secrets_key_id_hex(&old_key, old_id);
    secrets_key_id_hex(&new_key, new_id);
    if (strcmp(old_id, new_id) == 0) {
        rc = cli_error("the old and the new key are the same key (id %s); make a new one with: "
                       "pagoflex secrets keygen --out FILE", new_id);
        goto fail;
    }
    if (tools_rotate_dir(&old_key, &new_key, dir, NULL, &done, &failed) != 0) {
        rc = cli_error("cannot read credentials folder %s: %s", dir, strerror(errno));
        goto fail;
    }
    fprintf(stderr, "pagoflex: %d file%s under key %s (from %s), %d failed\n", done,
            done == 1 ? "" : "s", new_id, old_id, failed);
    rc = failed ? CLI_ERROR : CLI_OK;
fail:
    secrets_key_wipe(&old_key);
    secrets_key_wipe(&new_key);
    return rc;
}

/* ---- check ------------------------------------------------------------ */

/* Decrypt every credentials file; print its setting names. Problems counted.
 * `plugin` NULL: the top folder (<plugin>.cfg.enc, and each <plugin>/ folder
 * of account files); else the account files of `plugin` in `dir`. */
static int tools_check_credentials(const char *dir, const secrets_key *const *keys, const char *plugin)
{
    int problems = 0;
    DIR *d = opendir(dir);
    if (!d) {
        cli_error("cannot read credentials folder %s: %s", dir, strerror(errno));
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[4096], name[256], binding[600], err[TOOLS_ERRLEN];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof path) {
            problems++;
            continue;
        }
        if (!plugin && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            problems += tools_check_credentials(path, keys, de->d_name);
            continue;
        }
        if (!tools_has_suffix(de->d_name, ".cfg.enc"))
            continue;
        size_t stem = strlen(de->d_name) - strlen(".cfg.enc");
        if (stem >= sizeof name) {
            problems++;
            continue;
        }
        memcpy(name, de->d_name, stem);
        name[stem] = '\0';
        if (secrets_binding_name(plugin ? plugin : name, plugin ? name : NULL, binding, sizeof binding) != 0) {
            problems++;
            continue;
        }
        pagoflex_credentials *creds = NULL;
        if (secrets_load_credentials_keys(keys, 2, path, binding, &creds, err, sizeof err) != 0) {
            printf("FAIL credentials %s: %s\n", path, err);
            problems++;
            continue;
        }
        printf("ok   credentials %s: %zu setting%s:", path, creds->count,
               creds->count == 1 ? "" : "s");
        for (size_t i = 0; i < creds->count; i++)
            printf(" %s", creds->names[i]);
        printf("\n");
        creds_free(creds);
    }
    closedir(d);
    return problems;
}

static int tools_count_plugins(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && tools_has_suffix(de->d_name, ".so"))
            n++;
    closedir(d);
    return n;
}

/* Load every plugin as the host does (rejections are logged on stderr). */
static int tools_check_plugins(const char *plugin_dir, const char *cred_dir,
                               const secrets_key *key, const secrets_key *prev)
{
    char private_dir[] = "/tmp/pagoflex-check.XXXXXX", err[TOOLS_ERRLEN];
    registry *reg = NULL;
    int problems = 1;
    if (!mkdtemp(private_dir)) {
        cli_error("cannot create a private folder in /tmp: %s", strerror(errno));
        return 1;
    }
    registry_options ro = {.plugin_dir = plugin_dir, .credentials_dir = cred_dir,
                           .private_dir = private_dir, .master_key = key,
                           .previous_master_key = prev};
    reg = registry_new(&ro);
    int total = tools_count_plugins(plugin_dir);
    int loaded = reg ? registry_load_dir(reg, err, sizeof err) : -1;
    if (loaded < 0 || total < 0) {
        printf("FAIL plugins %s: %s\n", plugin_dir, reg ? err : "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < registry_count(reg); i++) {
        const registry_plugin *p = registry_at(reg, i);
        printf("ok   plugin %s: key %s, account %s, required credentials present:", p->file, p->desc->key,
               p->account);
        for (size_t k = 0; p->desc->required_credentials && p->desc->required_credentials[k]; k++)
            printf(" %s", p->desc->required_credentials[k]);
        printf("\n");
    }
    for (size_t i = 0; i < registry_account_rejected_count(reg); i++) {
        const registry_account_rejection *ra = registry_account_rejected_at(reg, i);
        printf("FAIL plugin %s account %s: %s\n", ra->plugin, ra->account, ra->reason);
    }
    if (loaded < total)
        printf("FAIL plugins: %d of %d refused (reasons above)\n", total - loaded, total);
    problems = total - loaded + (int)registry_account_rejected_count(reg);
fail:
    registry_free(reg);
    rmdir(private_dir);
    return problems;
}

int cli_secrets_check(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"credentials-dir", required_argument, NULL, 'd'},
        {"plugin-dir", required_argument, NULL, 'P'},
        {"key-file", required_argument, NULL, 'k'},
        {"previous-key-file", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    const char *cred_dir = NULL, *plugin_dir = NULL, *key_file = NULL, *prev_file = NULL;
    secrets_key key, prev;
    int c, rc = CLI_ERROR, have_prev = 0;

    memset(&key, 0, sizeof key);
    memset(&prev, 0, sizeof prev);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":d:P:k:K:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': cred_dir = optarg; break;
        case 'P': plugin_dir = optarg; break;
        case 'k': key_file = optarg; break;
        case 'K': prev_file = optarg; break;
        default: rc = tools_bad_option(cmd, c, argv); goto fail;
        }
    }
    if (!cred_dir || !plugin_dir || optind != argc) {
        rc = cli_usage_error(cmd, "give --credentials-dir and --plugin-dir");
        goto fail;
    }
    if (tools_load_key(key_file, &key) != CLI_OK)
        goto fail;
    if (prev_file) {
        if (tools_load_key(prev_file, &prev) != CLI_OK)
            goto fail;
        have_prev = 1;
    }
    const secrets_key *keys[2] = {&key, have_prev ? &prev : NULL};
    int problems = tools_check_credentials(cred_dir, keys, NULL);
    fflush(stdout);
    problems += tools_check_plugins(plugin_dir, cred_dir, &key, keys[1]);
    fflush(stdout);
    if (problems)
        rc = cli_error("%d problem%s found (listed above)", problems, problems == 1 ? "" : "s");
    else
        rc = CLI_OK;
fail:
    secrets_key_wipe(&key);
    secrets_key_wipe(&prev);
    return rc;
}
