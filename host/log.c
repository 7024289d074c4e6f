/* log.c - one-line structured log records on stderr.
 *
 * Lines always go to file descriptor 2. With a log file (log_open_file),
 * that file is dup2()ed onto descriptor 2, so what libraries and plugins
 * print to stderr lands there too, and a reopen (SIGUSR1, after logrotate
 * renamed the file) swaps the file under every thread in one dup2: a line
 * goes wholly to the old file or wholly to the new one.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pagoflex_log_level log_threshold = PAGOFLEX_LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};
static char *log_path;          /* the log file, or NULL: stderr as inherited */
static int log_orig_stderr = -1; /* the inherited stderr, kept to go back to it */

void log_set_level(pagoflex_log_level level)
{
    log_threshold = level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

/* Append in[0..len) to out (of cap bytes, o used), every byte outside
 * printable ASCII, and the backslash itself (so a bank that sends the text
 * "\x0a" cannot pass for an escaped newline), as \xNN, stopping where the
 * next character would not fit
 * (an escape is never cut). Returns the new length of out. */
static size_t log_escape(char *out, size_t o, size_t cap, const char *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            if (o + 1 > cap)
                break;
            out[o++] = (char)c;
        } else {
            if (o + 4 > cap)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        }
    }
    return o;
}

/* Open `path` for appending and put it on descriptor 2. 0, or -1 with errno. */
static int log_attach(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int log_open_file(const char *path, char *err, size_t errlen)
{
    char *copy = NULL;
    if (path && !(copy = strdup(path))) {
        snprintf(err, errlen, "log file %s: out of memory", path);
        return -1;
    }
    if (path && log_orig_stderr < 0)
        log_orig_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    if (path && log_attach(path) != 0) {
        snprintf(err, errlen, "cannot open log file %s: %s; create its folder or fix `log_file`",
                 path, strerror(errno));
        free(copy);
        return -1;
    }
    if (!path && log_path && log_orig_stderr >= 0)
        dup2(log_orig_stderr, STDERR_FILENO);
    free(log_path);
    log_path = copy;
    return 0;
}

const char *log_file_path(void)
{
    return log_path;
}

int log_reopen(void)
{
    if (!log_path)
        return 1;
    if (log_attach(log_path) != 0) {
        log_error("cannot reopen log file %s: %s; still writing to the file open before", log_path,
                  strerror(errno));
        return -1;
    }
    log_info("log file reopened: %s", log_path);
    return 0;
}

void log_vmsg(pagoflex_log_level level, const char *who, const char *fmt, va_list ap)
{
    if (level < log_threshold || level > PAGOFLEX_LOG_ERROR)
        return;
    char line[2048], msg[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%d] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), log_names[level], (int)getpid());
    int m = who ? snprintf(msg, sizeof msg, "%s: ", who) : 0;
    if (n < 0 || m < 0 || (size_t)m >= sizeof msg)
        return;
    int k = vsnprintf(msg + m, sizeof msg - (size_t)m, fmt, ap);
    if (k < 0)
        return;
    size_t msg_len = (size_t)m + (size_t)k < sizeof msg ? (size_t)m + (size_t)k : sizeof msg - 1;
    /* Whatever the message holds (a bank's ids, a plugin's text), one
     * record stays one line: no newline, carriage return or terminal
     * escape reaches the log raw. Room is kept for the '\n'. */
    size_t len = log_escape(line, (size_t)n, sizeof line - 1, msg, msg_len);
    line[len++] = '\n';
    /* One write(2) per line so lines from threads and processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(pagoflex_log_level level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, who, fmt, ap);
    va_end(ap);
}
