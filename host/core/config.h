/* config.h - the host configuration file (libconfig syntax). */
#ifndef PAGOFLEX_CONFIG_H
#define PAGOFLEX_CONFIG_H

#include <stddef.h>

#include "creds.h"

typedef struct config {
    char *listen_address;  /* "127.0.0.1" */
    int port;              /* 8080; $PAGOFLEX_PORT overrides */
    char *admin_listen;    /* admin listener (/metrics, /v1/connectors): "127.0.0.1" */
    int admin_port;        /* 9180; 0: no admin listener; $PAGOFLEX_ADMIN_PORT overrides */
    char *public_url;      /* base URL banks call back, e.g. http://127.0.0.1:8080 */
    char *plugin_dir;      /* *.so connectors */
    char *credentials_dir; /* <plugin>.cfg.enc */
    char *master_key_file; /* 0600 file with 64 hex digits ($PAGOFLEX_MASTER_KEY wins) */
    char *private_dir;     /* private copies of loaded plugins */
    char *database;        /* libpq conninfo; $PAGOFLEX_DATABASE overrides */
    int db_pool_size;      /* connections per process */
    int db_batch_max;      /* hot-path writes per group commit; 0: each write commits alone (pool) */
    int db_batch_connections; /* the group-commit writers' own connections per process */
    int threads;           /* HTTP threads per process */
    size_t max_body_bytes; /* request body limit (413 above) */
    long bank_timeout_ms;  /* default timeout of a bank call */
    long bank_max_connections; /* per bank host and worker; more calls queue */
    int blocking_threads;  /* pool for connectors' own blocking execute_request */
    char **api_key_sha256; /* hex SHA-256 of each accepted API key */
    size_t api_key_count;
    char *log_level;       /* debug | info | warn | error */
    char *log_file;        /* NULL: stderr; else appended to, reopened on SIGUSR1 */
    char *log_format;      /* "text" | "json" (one JSON object per line) */
    int migrate;           /* apply schema migrations at start (false: only check the version) */
    int access_log;        /* one info line per request (default false: /metrics counts them) */
    int workers;           /* worker processes; default: number of CPUs */
    int drain_timeout_ms;  /* how long a stopping worker may finish its requests */
    int ready_timeout_ms;  /* how long a new worker may take to load and listen */
    int quarantine_after;  /* worker crashes blamed on one plugin before it is quarantined */
    char *pid_file;        /* the master's pid, for `pagoflex reload` */
    /* security (issue 6) */
    char *previous_master_key_file; /* NULL, or the key being rotated away from */
    int require_signed_plugins;     /* load only plugins signed by trusted_keys */
    char **trusted_keys;            /* paths of Ed25519 public key PEM files */
    size_t trusted_key_count;
    creds_setting *connector_settings; /* connector_settings = { <plugin> = {
                                          NAME = "value"; ... }; ... }: what
                                          host->setting gives each plugin */
    size_t connector_setting_count;
    size_t max_header_bytes;        /* sum of header names and values (431 above) */
    int max_headers;                /* header count (431 above) */
    int max_json_depth;             /* nesting of a JSON body (400 above) */
    int connection_timeout_s;       /* idle connection timeout */
    int max_connections;            /* open connections per process */
    int max_connections_per_ip;     /* 0: no per-address limit */

    /* Payment lifecycle (idempotency, reconciler); see etc/pagoflex.cfg. */
    long idempotency_ttl_s;     /* how long an Idempotency-Key is remembered */
    long idempotency_wait_ms;   /* a second request waits this long for the first */
    long idempotency_stale_ms;  /* an unanswered key this old: answer from the payment */
    long reconcile_interval_ms; /* reconciler poll period */
    int reconcile_workers;      /* reconciler threads per process (0: none) */
    int reconcile_batch;        /* payments claimed per poll and worker */
    long reconcile_lease_ms;    /* a claimed payment is left alone this long */
    long retry_base_ms;         /* first retry delay, doubling ... */
    long retry_max_ms;          /* ... up to this, with jitter */
    long webhook_grace_s;       /* a pending payment is synced after this */
    long payment_deadline_s;    /* then it gets a final state that says why */
    long recover_after_ms;      /* a `created` row this old: its host died */

    /* Retention (janitor.c): expired keys and old rows are purged. */
    long janitor_interval_ms;            /* how often each worker's janitor wakes */
    long webhook_event_retention_days;   /* events of terminal payments kept (0: forever) */
    long payment_history_retention_days; /* history of terminal payments kept (0: forever) */

    /* Notifications to merchants (notifier.c, issue 13). */
    long notify_timeout_ms;          /* one delivery attempt, connect to last byte */
    int notify_max_in_flight;        /* deliveries in flight per worker */
    int notify_endpoint_max_in_flight; /* of those, to one endpoint */
    long notify_poll_interval_ms;    /* how often each worker looks for due deliveries */
    long notify_secret_grace_s;      /* a rotated-away secret keeps signing this long */
    long notify_event_retention_days; /* delivered events kept (janitor; 0: forever) */
    int notify_allow_private_targets; /* allow loopback/private/link-local targets (dev, tests) */
#define CONFIG_NOTIFY_RETRY_MAX 16
    long notify_retry_s[CONFIG_NOTIFY_RETRY_MAX]; /* delay before retry i+1 */
    int notify_retry_count;                       /* retries after the first attempt */
} config;

/* Read `path` into *out (defaults for absent settings; relative paths are
 * taken relative to the folder of `path`). A top-level setting the host
 * does not know is refused ("<file>:<line>: unknown setting "prot"; did
 * you mean "port"?"). 0 on success; -1 with a one-line reason naming the
 * file, line and setting in err. *out untouched on error. */
int config_load(const char *path, config *out, char *err, size_t errlen);

/* Free everything config_load allocated. */
void config_free(config *c);

#endif
