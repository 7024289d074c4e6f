/* log.c - one-line structured log records on stderr. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pagoflex_log_level log_threshold = PAGOFLEX_LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};

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

void log_vmsg(pagoflex_log_level level, const char *who, const char *fmt, va_list ap)
{
    if (level < log_threshold || level > PAGOFLEX_LOG_ERROR)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%d]%s%s%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), log_names[level], (int)getpid(),
                     who ? " " : "", who ? who : "", who ? ":" : "");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if ((size_t)n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* One write(2) per line so lines from threads and processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void log_msg(pagoflex_log_level level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, who, fmt, ap);
    va_end(ap);
}
