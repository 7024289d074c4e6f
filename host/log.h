/* log.h - one-line structured log records on stderr. */
#ifndef PAGOFLEX_LOG_H
#define PAGOFLEX_LOG_H

#include <stdarg.h>

#include <pagoflex/connector.h>

/* Lines below `level` are dropped. Default: PAGOFLEX_LOG_INFO. */
void log_set_level(pagoflex_log_level level);

/* Parse "debug" | "info" | "warn" | "error"; -1 if unknown. */
int log_level_parse(const char *name);

/* Write "<time> <level> [<pid>] [<who>: ]<message>\n" atomically (one
 * write) to stderr. Every byte of who and the message outside printable
 * ASCII (newline, carriage return, escape, other control bytes, non-ASCII)
 * is written as \xNN, so a string a bank or plugin sent can neither end
 * the record nor forge another. `who` may be NULL (the host itself). A
 * line longer than 2047 bytes is cut. Never pass a secret. */
void log_msg(pagoflex_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(pagoflex_log_level level, const char *who, const char *fmt, va_list ap);

#define log_debug(...) log_msg(PAGOFLEX_LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(PAGOFLEX_LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(PAGOFLEX_LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(PAGOFLEX_LOG_ERROR, NULL, __VA_ARGS__)

#endif
