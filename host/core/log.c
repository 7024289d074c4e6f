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

#include "reqid.h"

static pagoflex_log_level log_threshold = PAGOFLEX_LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};
static char *log_path;          /* the log file, or NULL: stderr as inherited */
static int log_orig_stderr = -1; /* the inherited stderr, kept to go back to it */
static int log_json;             /* one JSON object per line */

void log_set_json(int json)
{
    log_json = json != 0;
}

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

/* Append in[0..len) to out as the inside of a JSON string: '"' and '\\'
 * escaped, every byte outside printable ASCII as \u00NN (so non-ASCII
 * shows byte by byte, as in text lines), stopping where the next character
 * would not fit. Returns the new length of out. */
static size_t log_escape_json(char *out, size_t o, size_t cap, const char *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            if (o + 1 > cap)
                break;
            out[o++] = (char)c;
        } else if (c == '\\' || c == '"') {
            if (o + 2 > cap)
                break;
            out[o++] = '\\';
            out[o++] = (char)c;
        } else {
            if (o + 6 > cap)
                break;
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = digits[c >> 4];
            out[o + 5] = digits[c & 15];
            o += 6;
        }
    }
    return o;
}

/* Append the literal s (ours, no escaping needed) if it fits. */
static size_t log_raw(char *out, size_t o, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (o + n > cap)
        return o;
    memcpy(out + o, s, n);
    return o + n;
}

/* Append one field: text ` name=value`, JSON `,"name":"value"` or a number. */
static size_t log_field_out(char *out, size_t o, size_t cap, const log_field *f)
{
    char num[32];
    const char *v = f->text;
    if (!v)
        snprintf(num, sizeof num, "%lld", f->num);
    if (log_json) {
        o = log_raw(out, o, cap, ",\"");
        o = log_escape_json(out, o, cap, f->name, strlen(f->name));
        o = log_raw(out, o, cap, v ? "\":\"" : "\":");
        o = v ? log_escape_json(out, o, cap, v, strlen(v)) : log_raw(out, o, cap, num);
        return v ? log_raw(out, o, cap, "\"") : o;
    }
    o = log_raw(out, o, cap, " ");
    o = log_escape(out, o, cap, f->name, strlen(f->name));
    o = log_raw(out, o, cap, "=");
    if (!v)
        return log_raw(out, o, cap, num);
    return log_escape(out, o, cap, *v ? v : "-", *v ? strlen(v) : 1);
}

/* Format and write one line: the message `msg` (msg_len bytes, who already
 * in front of it in text mode), then the fields and the request id. */
static void log_write(pagoflex_log_level level, const char *who, const char *msg, size_t msg_len,
                      const log_field *fields, size_t n)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
    /* Room is kept for the closing "}" and the '\n'. */
    size_t cap = sizeof line - 2, o;
    int k = log_json ? snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,", ts,
                                log_names[level], (int)getpid())
                     : snprintf(line, sizeof line, "%s %-5s [%d] ", ts, log_names[level], (int)getpid());
    if (k < 0)
        return;
    o = (size_t)k;
    if (log_json && who) {
        o = log_raw(line, o, cap, "\"who\":\"");
        o = log_escape_json(line, o, cap, who, strlen(who));
        o = log_raw(line, o, cap, "\",");
    }
    /* Whatever the message holds (a bank's ids, a plugin's text), one
     * record stays one line: no newline, carriage return or terminal
     * escape reaches the log raw. */
    if (log_json) {
        o = log_raw(line, o, cap, "\"msg\":\"");
        o = log_escape_json(line, o, cap, msg, msg_len);
        o = log_raw(line, o, cap, "\"");
    } else {
        o = log_escape(line, o, cap, msg, msg_len);
    }
    for (size_t i = 0; i < n; i++)
        o = log_field_out(line, o, cap, &fields[i]);
    const char *id = reqid_current();
    if (id) {
        log_field f = {.name = "request_id", .text = id};
        o = log_field_out(line, o, cap, &f);
    }
    if (log_json)
        line[o++] = '}';
    line[o++] = '\n';
    /* One write(2) per line so lines from threads and processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, o);
    (void)w;
}

void log_vmsg(pagoflex_log_level level, const char *who, const char *fmt, va_list ap)
{
    if (level < log_threshold || level > PAGOFLEX_LOG_ERROR)
        return;
    char msg[2048];
    int m = who && !log_json ? snprintf(msg, sizeof msg, "%s: ", who) : 0;
    if (m < 0 || (size_t)m >= sizeof msg)
        return;
    int k = vsnprintf(msg + m, sizeof msg - (size_t)m, fmt, ap);
    if (k < 0)
        return;
    size_t msg_len = (size_t)m + (size_t)k < sizeof msg ? (size_t)m + (size_t)k : sizeof msg - 1;
    log_write(level, who, msg, msg_len, NULL, 0);
}

void log_fields(pagoflex_log_level level, const char *msg, const log_field *fields, size_t n)
{
    if (level < log_threshold || level > PAGOFLEX_LOG_ERROR)
        return;
    log_write(level, NULL, msg, strlen(msg), fields, n);
}

void log_msg(pagoflex_log_level level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, who, fmt, ap);
    va_end(ap);
}
