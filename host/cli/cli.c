/* cli.c - shared helpers of the operator CLI `pagoflex`. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h"

#define CLI_ERRLEN 1024

static void cli_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cli_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void cli_print_usage(FILE *f, const cli_command *cmd)
{
    fprintf(f, "usage: pagoflex %s%s%s%s%s\n", cmd->group ? cmd->group : "",
            cmd->group ? " " : "", cmd->name, cmd->args && *cmd->args ? " " : "",
            cmd->args ? cmd->args : "");
}

void cli_print_help(FILE *f, const cli_command *cmd)
{
    cli_print_usage(f, cmd);
    fprintf(f, "\n%s\n", cmd->summary);
    if (cmd->help)
        fprintf(f, "\n%s", cmd->help);
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pagoflex: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_ERROR;
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pagoflex: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pagoflex: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cli_print_usage(stderr, cmd);
    return CLI_USAGE;
}

int cli_read_stdin(size_t max, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    unsigned char *buf = malloc(max + 2);
    size_t got = 0;
    int rc = -1;
    if (!buf) {
        cli_err(err, errlen, "out of memory reading standard input");
        goto fail;
    }
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf + got, max + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_err(err, errlen, "cannot read standard input: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max) {
            cli_err(err, errlen, "standard input is larger than %zu bytes", max);
            goto fail;
        }
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
    rc = 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, max + 2);
        free(buf);
    }
    return rc;
}

static int cli_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cli_write_stdout(const void *data, size_t len)
{
    fflush(stdout); /* keep order with anything printed through stdio */
    return cli_write_all(STDOUT_FILENO, data, len);
}

/* fsync the directory holding `path` so a rename survives a crash.
 * Best effort: some filesystems refuse fsync on a directory. */
static void cli_sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int cli_write_excl(const char *path, const void *data, size_t len, char *err,
                          size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    int rc = -1;
    if (fd < 0) {
        if (errno == EEXIST)
            cli_err(err, errlen, "%s already exists; refusing to overwrite it (pass --force to "
                    "replace it)", path);
        else
            cli_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) != 0 || cli_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        cli_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        cli_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    cli_sync_dir(path);
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(path);
    return rc;
}

static int cli_write_replace(const char *path, const void *data, size_t len, char *err,
                             size_t errlen)
{
    char tmp[4096];
    const char *slash = strrchr(path, '/');
    int fd = -1, rc = -1, made = 0;
    int n;
    if (slash)
        n = snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp.XXXXXX", (int)(slash - path), path,
                     slash + 1);
    else
        n = snprintf(tmp, sizeof tmp, ".%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        cli_err(err, errlen, "output path is too long: %.80s...", path);
        goto fail;
    }
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        cli_err(err, errlen, "cannot create a temporary file next to %s: %s", path,
                strerror(errno));
        goto fail;
    }
    made = 1;
    if (fchmod(fd, 0600) != 0 || cli_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        cli_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    int c = close(fd);
    fd = -1;
    if (c != 0) {
        cli_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        cli_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    made = 0;
    cli_sync_dir(path);
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    if (made)
        unlink(tmp);
    return rc;
}

int cli_write_file(const char *path, const void *data, size_t len, int mode, char *err,
                   size_t errlen)
{
    if (mode == CLI_WRITE_EXCL)
        return cli_write_excl(path, data, len, err, errlen);
    return cli_write_replace(path, data, len, err, errlen);
}

int cli_open_store(const char *database, const char *config_path, cli_schema schema, store **out)
{
    char err[CLI_ERRLEN];
    char *conninfo = NULL;
    if (database) {
        conninfo = strdup(database);
    } else if (config_path) {
        config cfg;
        if (config_load(config_path, &cfg, err, sizeof err) != 0)
            return cli_error("%s", err);
        conninfo = strdup(cfg.database);
        config_free(&cfg);
    } else {
        const char *env = getenv("PAGOFLEX_DATABASE");
        if (!env || !*env)
            return cli_error("no database given; pass -c CONFIG (its `database` setting) or set "
                             "$PAGOFLEX_DATABASE to a libpq conninfo");
        conninfo = strdup(env);
    }
    if (!conninfo)
        return cli_error("out of memory");
    store *s = store_open(conninfo, 1);
    free(conninfo);
    if (!s)
        return cli_error("out of memory");
    int applied = 0, pending = 0;
    if (schema == CLI_SCHEMA_MIGRATE && store_migrate(s, err, sizeof err) != STORE_OK) {
        store_close(s);
        return cli_error("database: %s; check the conninfo and that PostgreSQL is up", err);
    }
    if (schema == CLI_SCHEMA_CURRENT &&
        (store_schema_status(s, &applied, &pending, err, sizeof err) != STORE_OK || pending > 0)) {
        store_close(s);
        return cli_error("database: %s; run `pagoflex db migrate` first if versions are pending",
                         pending > 0 ? "the schema is behind this build" : err);
    }
    *out = s;
    return CLI_OK;
}
