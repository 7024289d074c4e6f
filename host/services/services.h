/* services.h - the host-services table handed to each plugin. */
#ifndef PAGOFLEX_SERVICES_H
#define PAGOFLEX_SERVICES_H

#include <pagoflex/connector.h>

/* One table per loaded plugin, so log lines name the plugin. The table is
 * the first member: a plugin's `host` pointer is this struct. */
typedef struct services_plugin {
    pagoflex_host_services table;
    char name[64];
} services_plugin;

/* Fill `sp` with the host's implementations, attributed to `name`. */
void services_init(services_plugin *sp, const char *name);

/* Override the clock returned by host->now (0 restores the real clock).
 * For tests only. */
void services_set_now(int64_t fixed_unix_seconds);

/* The clock host->now returns (Unix seconds): token expiries are read on it. */
int64_t services_now(void);

#endif
