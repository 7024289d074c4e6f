/* notify.h - tell the service manager (systemd, Type=notify) what the
 * master is doing. Without $NOTIFY_SOCKET (not run by systemd) every call
 * does nothing. Only the master calls these. */
#ifndef PAGOFLEX_NOTIFY_H
#define PAGOFLEX_NOTIFY_H

/* READY=1 with a STATUS= line: the first generation serves, or a reload
 * ended (done, refused or failed: the service is ready either way). */
void notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* RELOADING=1 (with MONOTONIC_USEC): a reload began; notify_ready ends it. */
void notify_reloading(void);

/* STOPPING=1: a graceful stop began. */
void notify_stopping(void);

#endif
