/* cli_plugin.c - `pagoflex plugin new` and `pagoflex plugin check`.
 *
 * Where `plugin new` finds the template (first that exists):
 *   1. --template DIR;
 *   2. $PAGOFLEX_TEMPLATE_DIR;
 *   3. <directory of this executable>/../share/pagoflex/template, i.e. an
 *      installed SDK next to an installed `pagoflex`;
 *   4. the source tree it was built from (PAGOFLEX_TEMPLATE_SOURCE_DIR), so
 *      the build-tree binary works without an install.
 */
#include "cli_plugin.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "registry.h"
#include "secrets.h"

#define CLI_PLUGIN_NAME_MAX 32
#define CLI_PLUGIN_FILE_MAX (1024 * 1024)
#define CLI_PLUGIN_MAX_CREDENTIALS 64

#ifndef PAGOFLEX_TEMPLATE_SOURCE_DIR
#define PAGOFLEX_TEMPLATE_SOURCE_DIR ""
#endif

/* The placeholders of sdk/template and their values for one plugin. */
typedef struct cli_plugin_subst {
    const char *from[4];
    char to[4][CLI_PLUGIN_NAME_MAX + 16];
} cli_plugin_subst;

/* 0 if s is NAME=VALUE with NAME a libconfig setting name. Shared with
 * `pagoflex webhook verify`. */
int cli_plugin_pair_ok(const char *s)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || isdigit((unsigned char)s[0]))
        return -1;
    for (const char *p = s; p < eq; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return -1;
    return 0;
}

static int cli_plugin_bad_option(const cli_command *cmd, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    return cli_usage_error(cmd, "unknown option or missing value: %s", arg);
}

static int cli_plugin_is_dir(const char *path)
{
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The template directory (see the comment at the top), or NULL. */
static const char *cli_plugin_template_dir(const char *given, char *buf, size_t cap)
{
    if (given)
        return cli_plugin_is_dir(given) ? given : NULL;
    const char *env = getenv("PAGOFLEX_TEMPLATE_DIR");
    if (env && *env)
        return cli_plugin_is_dir(env) ? env : NULL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        int w = snprintf(buf, cap, "%s/../share/pagoflex/template", dirname(exe));
        if (w > 0 && (size_t)w < cap && cli_plugin_is_dir(buf))
            return buf;
    }
    return cli_plugin_is_dir(PAGOFLEX_TEMPLATE_SOURCE_DIR) ? PAGOFLEX_TEMPLATE_SOURCE_DIR : NULL;
}

/* Replace every placeholder of `s` into a malloc'd string; NULL on OOM. */
static char *cli_plugin_substitute(const cli_plugin_subst *sb, const char *s, size_t len,
                                   size_t *out_len)
{
    size_t cap = len * 2 + 64, o = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = 0;
        for (; k < 4; k++) {
            size_t fl = strlen(sb->from[k]);
            if (i + fl <= len && memcmp(s + i, sb->from[k], fl) == 0)
                break;
        }
        const char *piece = k < 4 ? sb->to[k] : s + i;
        size_t pl = k < 4 ? strlen(sb->to[k]) : 1;
        if (o + pl + 1 > cap) {
            cap = 2 * cap + pl;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + o, piece, pl);
        o += pl;
        i += k < 4 ? strlen(sb->from[k]) : 1;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Copy one template file into dir with placeholders replaced. */
static int cli_plugin_emit(const cli_plugin_subst *sb, const char *tdir, const char *name,
                           const char *dir)
{
    char src[PATH_MAX], dst[PATH_MAX], err[512];
    unsigned char *data = NULL;
    char *text = NULL, *fname = NULL;
    size_t len = 0, text_len = 0, fname_len = 0;
    int rc = CLI_ERROR;
    FILE *f = NULL;
    if (snprintf(src, sizeof src, "%s/%s", tdir, name) >= (int)sizeof src) {
        cli_error("template path too long: %s/%s", tdir, name);
        goto fail;
    }
    if (secrets_read_file(src, CLI_PLUGIN_FILE_MAX, &data, &len, err, sizeof err) != 0) {
        cli_error("%s", err);
        goto fail;
    }
    if (!(text = cli_plugin_substitute(sb, (const char *)data, len, &text_len)) ||
        !(fname = cli_plugin_substitute(sb, name, strlen(name), &fname_len))) {
        cli_error("out of memory");
        goto fail;
    }
    if (snprintf(dst, sizeof dst, "%s/%s", dir, fname) >= (int)sizeof dst) {
        cli_error("output path too long: %s/%s", dir, fname);
        goto fail;
    }
    f = fopen(dst, "wx");
    if (!f || fwrite(text, 1, text_len, f) != text_len) {
        cli_error("cannot write %s: %s", dst, strerror(errno));
        goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        cli_error("cannot write %s: %s", dst, strerror(errno));
        goto fail;
    }
    f = NULL;
    printf("  %s\n", dst);
    rc = CLI_OK;
fail:
    if (f)
        fclose(f);
    free(data);
    free(text);
    free(fname);
    return rc;
}

static int cli_plugin_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CLI_PLUGIN_NAME_MAX || !islower((unsigned char)name[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) &&
            name[i] != '_')
            return 0;
    return 1;
}

/* A directory we may fill: absent (created, with missing parents) or empty. */
static int cli_plugin_make_dir(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return cli_error("directory name too long: %s", dir);
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return cli_error("cannot create %s: %s", path, strerror(errno));
        *s = '/';
    }
    if (mkdir(dir, 0755) == 0)
        return CLI_OK;
    if (errno != EEXIST)
        return cli_error("cannot create %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    struct dirent *de;
    int empty = 1;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    if (d)
        closedir(d);
    if (!d || !empty)
        return cli_error("%s exists and is not an empty directory; choose another --dir", dir);
    return CLI_OK;
}

int cli_plugin_new(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"template", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *template_opt = NULL;
    char tbuf[PATH_MAX], dbuf[PATH_MAX];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd')
            dir = optarg;
        else if (c == 't')
            template_opt = optarg;
        else
            return cli_plugin_bad_option(cmd, argv);
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, "give exactly one plugin NAME");
    const char *name = argv[optind];
    if (!cli_plugin_name_ok(name))
        return cli_usage_error(cmd, "invalid plugin name '%s': use 1-%d characters of a-z, 0-9 "
                               "and '_', starting with a letter (e.g. acme_pay)",
                               name, CLI_PLUGIN_NAME_MAX);
    const char *tdir = cli_plugin_template_dir(template_opt, tbuf, sizeof tbuf);
    if (!tdir)
        return cli_error("cannot find the plugin template%s%s; pass --template DIR (the SDK's "
                         "share/pagoflex/template) or set $PAGOFLEX_TEMPLATE_DIR",
                         template_opt ? " at " : "", template_opt ? template_opt : "");
    if (!dir) {
        snprintf(dbuf, sizeof dbuf, "./%s", name);
        dir = dbuf;
    }
    cli_plugin_subst sb = {.from = {"@NAME@", "@KEY@", "@PATH@", "@SECRET@"}};
    size_t n = strlen(name);
    for (size_t i = 0; i <= n; i++) {
        sb.to[0][i] = name[i];
        sb.to[1][i] = (char)toupper((unsigned char)name[i]);
        sb.to[2][i] = name[i];
    }
    int w = snprintf(sb.to[3], sizeof sb.to[3], "%.*s_SECRET", CLI_PLUGIN_NAME_MAX, sb.to[1]);
    if (w < 0 || (size_t)w >= sizeof sb.to[3])
        return cli_error("plugin name too long");

    DIR *td = opendir(tdir);
    if (!td)
        return cli_error("cannot read template %s: %s", tdir, strerror(errno));
    int rc = cli_plugin_make_dir(dir);
    if (rc == CLI_OK)
        printf("creating connector %s (key %s, webhook /webhooks/%s, credential %s) in %s from "
               "%s:\n",
               name, sb.to[1], sb.to[2], sb.to[3], dir, tdir);
    struct dirent *de;
    while (rc == CLI_OK && (de = readdir(td)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.' ||
            snprintf(path, sizeof path, "%s/%s", tdir, de->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        rc = cli_plugin_emit(&sb, tdir, de->d_name, dir);
    }
    closedir(td);
    if (rc == CLI_OK)
        printf("next: build it against the installed SDK (see %s/README.md), then run\n"
               "  pagoflex plugin check %s.so\n",
               dir, name);
    return rc;
}

int cli_plugin_check(const cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"credentials", required_argument, NULL, 'c'},
        {"key-file", required_argument, NULL, 'k'},
        {"plugin-name", required_argument, NULL, 'n'},
        {"account", required_argument, NULL, 'a'},
        {"with", required_argument, NULL, 'w'},
        {"verbose", no_argument, NULL, 'v'},
        {"credential", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    check_options co = {0};
    const char *pairs[CLI_PLUGIN_MAX_CREDENTIALS];
    const char *key_file = NULL;
    secrets_key key;
    char err[1024];
    int c, have_key = 0, rc = CLI_ERROR;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': co.credentials_file = optarg; break;
        case 'k': key_file = optarg; break;
        case 'n': co.plugin_name = optarg; break;
        case 'a': co.account = optarg; break;
        case 'w': co.with_dir = optarg; break;
        case 'v': co.verbose = 1; break;
        case 'C':
            if (cli_plugin_pair_ok(optarg) != 0)
                return cli_usage_error(cmd, "--credential needs NAME=VALUE with a setting name "
                                       "[A-Za-z_][A-Za-z0-9_]* before the '='");
            if (co.credential_count == CLI_PLUGIN_MAX_CREDENTIALS)
                return cli_usage_error(cmd, "at most %d --credential options",
                                       CLI_PLUGIN_MAX_CREDENTIALS);
            pairs[co.credential_count++] = optarg;
            break;
        default: return cli_plugin_bad_option(cmd, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, "give exactly one plugin FILE.so");
    co.plugin_file = argv[optind];
    if (co.plugin_name && !*co.plugin_name)
        return cli_usage_error(cmd, "--plugin-name needs a non-empty NAME");
    co.credentials = pairs;
    if (co.credential_count && co.credentials_file)
        return cli_usage_error(cmd, "give either --credentials FILE or --credential NAME=VALUE, "
                               "not both");
    if (key_file && !co.credentials_file)
        return cli_usage_error(cmd, "--key-file only makes sense with --credentials");
    if (co.account && (!co.credentials_file || !registry_account_name_valid(co.account)))
        return cli_usage_error(cmd, "--account NAME ([a-z0-9_-]{1,32}) names the connector account of "
                                    "--credentials FILE");
    if (co.credentials_file) {
        const char *env = getenv(SECRETS_ENV_KEY), *env_file = getenv(SECRETS_ENV_KEY_FILE);
        if (!key_file && (!env || !*env) && (!env_file || !*env_file))
            return cli_usage_error(cmd, "--credentials needs the master key: pass --key-file "
                                   "FILE or set $" SECRETS_ENV_KEY_FILE);
        int krc = key_file ? secrets_key_from_file(key_file, &key, err, sizeof err)
                           : secrets_key_load(NULL, &key, err, sizeof err);
        if (krc != 0)
            return cli_error("%s", err);
        have_key = 1;
        co.master_key = &key;
    }
    int failed = check_run(&co, stdout, err, sizeof err);
    if (failed < 0)
        cli_error("cannot check %s: %s", co.plugin_file, err);
    else
        rc = failed == 0 ? CLI_OK : CLI_ERROR;
    if (have_key)
        secrets_key_wipe(&key);
    return rc;
}
