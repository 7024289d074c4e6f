/* log.h - one-line structured log records on stderr (or a log file put there). */
#ifndef PAGOFLEX_LOG_H
#define PAGOFLEX_LOG_H

#include <stdarg.h>

#include <pagoflex/connector.h>

/* Lines below `level` are dropped. Default: PAGOFLEX_LOG_INFO. */
void log_set_level(pagoflex_log_level level);

/* Write lines as text (default) or, with json true, as one JSON object per
 * line: {"ts", "level", "pid", "who"?, "msg", "request_id"?, ...fields}.
 * Not thread-safe: call it before starting threads. */
void log_set_json(int json);

/* Parse "debug" | "info" | "warn" | "error"; -1 if unknown. */
int log_level_parse(const char *name);

/* Log to the file `path` from now on (created 0640 if absent, appended
 * to): it replaces descriptor 2, so stray stderr output lands there too.
 * NULL goes back to the stderr the process started with. 0 on success;
 * -1 with the reason in err, and logging goes on where it went before.
 * Not thread-safe: call it before starting threads. */
int log_open_file(const char *path, char *err, size_t errlen);

/* The log file set by log_open_file, or NULL (stderr). */
const char *log_file_path(void);

/* Open the log file again by its name (after logrotate renamed it) and
 * log "log file reopened" there. 0 reopened; 1 no log file, nothing done;
 * -1 it could not be opened (logged), lines keep going to the old file.
 * Safe while other threads log: each line goes to one file or the other. */
int log_reopen(void);

/* Write "<time> <level> [<pid>] [<who>: ]<message>[ request_id=<id>]\n"
 * atomically (one write) to stderr (the log file, after log_open_file);
 * the request id is the calling thread's current one (reqid.h), if any.
 * With log_set_json, the same as one JSON object. Every byte of who
 * and the message outside printable
 * ASCII (newline, carriage return, escape, other control bytes, non-ASCII)
 * and the backslash
 * is written as \xNN, so a string a bank or plugin sent can neither end
 * the record nor forge another. `who` may be NULL (the host itself). A
 * line longer than 2047 bytes is cut. Never pass a secret. */
void log_msg(pagoflex_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(pagoflex_log_level level, const char *who, const char *fmt, va_list ap);

/* One field of a structured line: a string (text, escaped like the
 * message) or, when text is NULL, the integer num. */
typedef struct log_field {
    const char *name;
    const char *text;
    long long num;
} log_field;

/* Write `msg` and `n` fields as one line: text "<msg> name=value ..."
 * (values escaped as above; an empty one as "-"), or JSON members after
 * "msg". Same atomicity, level filter and request id as log_msg. */
void log_fields(pagoflex_log_level level, const char *msg, const log_field *fields, size_t n);

#define log_debug(...) log_msg(PAGOFLEX_LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(PAGOFLEX_LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(PAGOFLEX_LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(PAGOFLEX_LOG_ERROR, NULL, __VA_ARGS__)

#endif
