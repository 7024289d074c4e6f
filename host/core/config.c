/* config.c - the host configuration file (libconfig syntax). */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "log.h"

/* The top-level names the readers below asked for: they are the known
 * settings, so the unknown-setting check (config_refuse_unknown) can never
 * miss one the reader takes. Hung on the root setting's hook while a file
 * is read. */
#define CONFIG_MAX_SETTINGS 128

typedef struct config_seen {
    const char *names[CONFIG_MAX_SETTINGS];
    size_t count;
    bool overflow;
} config_seen;

/* config_lookup that records `name` as a known setting. Every reader of a
 * top-level setting goes through here. */
static config_setting_t *config_find(const config_t *cf, const char *name)
{
    config_seen *seen = config_setting_get_hook(config_root_setting(cf));
    bool known = false;
    for (size_t i = 0; seen && i < seen->count && !known; i++)
        known = strcmp(seen->names[i], name) == 0;
    if (seen && !known && seen->count < CONFIG_MAX_SETTINGS)
        seen->names[seen->count++] = name;
    else if (seen && !known)
        seen->overflow = true;
    return config_lookup(cf, name);
}

/* Optimal string alignment distance (edits, with swaps of two neighbours
 * counted as one) between two setting names; names longer than 63 bytes
 * count as far from everything. */
static size_t config_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[64][64];
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* Refuse the first top-level setting no reader asked for, naming its file
 * and line and, when one is close (at most a third of the letters differ),
 * the known name it was probably meant to be. */
static int config_refuse_unknown(const config_t *cf, const config_seen *seen, const char *path,
                                 char *err, size_t errlen)
{
    if (seen->overflow) {
        snprintf(err, errlen, "more than %d settings: raise CONFIG_MAX_SETTINGS in config.c",
                 CONFIG_MAX_SETTINGS);
        return -1;
    }
    config_setting_t *root = config_root_setting(cf);
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        bool known = false;
        for (size_t k = 0; k < seen->count && !known; k++)
            known = strcmp(seen->names[k], name) == 0;
        if (known)
            continue;
        const char *best = NULL;
        size_t best_d = SIZE_MAX;
        for (size_t k = 0; k < seen->count; k++) {
            size_t d = config_distance(name, seen->names[k]);
            size_t longer = strlen(name) > strlen(seen->names[k]) ? strlen(name) : strlen(seen->names[k]);
            if (d < best_d && d * 3 <= longer) {
                best_d = d;
                best = seen->names[k];
            }
        }
        const char *file = config_setting_source_file(s);
        if (best)
            snprintf(err, errlen, "%s:%d: unknown setting \"%s\"; did you mean \"%s\"?",
                     file ? file : path, config_setting_source_line(s), name, best);
        else
            snprintf(err, errlen,
                     "%s:%d: unknown setting \"%s\"; etc/pagoflex.cfg documents every setting",
                     file ? file : path, config_setting_source_line(s), name);
        return -1;
    }
    return 0;
}

/* Path `value` made absolute against `base_dir` unless it already is. */
static char *config_path(const char *base_dir, const char *value)
{
    if (value[0] == '/')
        return strdup(value);
    char *out = NULL;
    if (asprintf(&out, "%s/%s", base_dir, value) < 0)
        return NULL;
    return out;
}

static int config_string(const config_t *cf, const char *name, const char *def, const char *base_dir,
                         char **out, char *err, size_t errlen)
{
    const char *v = def;
    config_setting_t *s = config_find(cf, name);
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
            snprintf(err, errlen, "line %d: setting '%s' must be a string", config_setting_source_line(s), name);
            return -1;
        }
        v = config_setting_get_string(s);
    }
    if (!v) {
        *out = NULL;
        return 0;
    }
    *out = base_dir ? config_path(base_dir, v) : strdup(v);
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int config_int(const config_t *cf, const char *name, long long def, long long min, long long max,
                      long long *out, char *err, size_t errlen)
{
    *out = def;
    config_setting_t *s = config_find(cf, name);
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        snprintf(err, errlen, "line %d: setting '%s' must be an integer", config_setting_source_line(s), name);
        return -1;
    }
    long long v = config_setting_get_int64(s);
    if (v < min || v > max) {
        snprintf(err, errlen, "line %d: setting '%s' is %lld; it must be between %lld and %lld",
                 config_setting_source_line(s), name, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int config_bool(const config_t *cf, const char *name, bool def, int *out, char *err,
                       size_t errlen)
{
    config_setting_t *s = config_find(cf, name);
    if (!s) {
        *out = def;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        snprintf(err, errlen, "line %d: setting '%s' must be true or false", config_setting_source_line(s),
                 name);
        return -1;
    }
    *out = config_setting_get_bool(s);
    return 0;
}

static int config_api_keys(const config_t *cf, config *c, char *err, size_t errlen)
{
    config_setting_t *s = config_find(cf, "api_key_sha256");
    if (!s)
        return 0;
    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        snprintf(err, errlen, "line %d: setting 'api_key_sha256' must be a list of strings",
                 config_setting_source_line(s));
        return -1;
    }
    int n = config_setting_length(s);
    c->api_key_sha256 = calloc((size_t)n + 1, sizeof(char *));
    if (!c->api_key_sha256)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *h = config_setting_get_string_elem(s, i);
        if (!h || strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64) {
            snprintf(err, errlen,
                     "line %d: api_key_sha256[%d] must be 64 lower-case hex digits (sha256sum of the key)",
                     config_setting_source_line(s), i);
            return -1;
        }
        c->api_key_sha256[i] = strdup(h);
        c->api_key_count++;
    }
    return 0;
}

/* Time allowed for the database statements around a bank call (the row
 * written before it, the answer after), on top of bank_timeout_ms. */
#define CONFIG_CALL_MARGIN_MS 500L

/* Refuse timings that cannot be safe. bank_timeout_ms bounds every bank
 * call (a connector's own longer timeout is cut to it: bankcall.c), so:
 *  - a claimed payment may take a status query and a re-send, each up to
 *    bank_timeout_ms: its reconciler lease must outlast both, or a second
 *    claimer starts on it while the first still works it;
 *  - a `created` row or an unanswered Idempotency-Key younger than one bank
 *    call may still be in its first call: neither may be taken over sooner. */
static int config_check_timings(const config *c, char *err, size_t errlen)
{
    long t = c->bank_timeout_ms;
    long lease_min = 2 * t + CONFIG_CALL_MARGIN_MS, first_min = t + CONFIG_CALL_MARGIN_MS;
    if (c->reconcile_lease_ms < lease_min) {
        snprintf(err, errlen,
                 "setting 'reconcile_lease_ms' (%ld) must be at least 2 x 'bank_timeout_ms' (%ld) "
                 "+ %ld = %ld: a claimed payment may need a status query and a re-send, each up to "
                 "bank_timeout_ms, and no other reconciler may take it meanwhile; raise "
                 "reconcile_lease_ms or lower bank_timeout_ms",
                 c->reconcile_lease_ms, t, CONFIG_CALL_MARGIN_MS, lease_min);
        return -1;
    }
    static const struct {
        const char *name;
        size_t offset;
        const char *what;
    } first_call[] = {
        {"recover_after_ms", offsetof(config, recover_after_ms), "a created payment"},
        {"idempotency_stale_ms", offsetof(config, idempotency_stale_ms),
         "an unanswered Idempotency-Key"},
    };
    for (size_t i = 0; i < sizeof first_call / sizeof first_call[0]; i++) {
        long v = *(const long *)((const char *)c + first_call[i].offset);
        if (v < first_min) {
            snprintf(err, errlen,
                     "setting '%s' (%ld) must be at least 'bank_timeout_ms' (%ld) + %ld = %ld: %s "
                     "younger than one bank call may still be in its first call; raise %s or "
                     "lower bank_timeout_ms",
                     first_call[i].name, v, t, CONFIG_CALL_MARGIN_MS, first_min, first_call[i].what,
                     first_call[i].name);
            return -1;
        }
    }
    return 0;
}

/* The payment lifecycle settings (idempotency and reconciler). */
static int config_lifecycle(const config_t *cf, config *c, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        long long def, min, max;
        size_t offset;
    } longs[] = {
        {"idempotency_ttl_s", 86400, 1, 90LL * 86400, offsetof(config, idempotency_ttl_s)},
        {"idempotency_wait_ms", 5000, 0, 600000, offsetof(config, idempotency_wait_ms)},
        {"idempotency_stale_ms", 60000, 100, 86400000, offsetof(config, idempotency_stale_ms)},
        {"reconcile_interval_ms", 1000, 10, 3600000, offsetof(config, reconcile_interval_ms)},
        {"reconcile_lease_ms", 60000, 100, 86400000, offsetof(config, reconcile_lease_ms)},
        {"retry_base_ms", 1000, 10, 86400000, offsetof(config, retry_base_ms)},
        {"retry_max_ms", 300000, 10, 86400000, offsetof(config, retry_max_ms)},
        {"webhook_grace_s", 60, 0, 30LL * 86400, offsetof(config, webhook_grace_s)},
        {"payment_deadline_s", 86400, 1, 90LL * 86400, offsetof(config, payment_deadline_s)},
        {"recover_after_ms", 60000, 100, 86400000, offsetof(config, recover_after_ms)},
        {"janitor_interval_ms", 5000, 100, 3600000, offsetof(config, janitor_interval_ms)},
        {"webhook_event_retention_days", 30, 0, 36500,
         offsetof(config, webhook_event_retention_days)},
        {"payment_history_retention_days", 0, 0, 36500,
         offsetof(config, payment_history_retention_days)},
    };
    long long v;
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        if (config_int(cf, longs[i].name, longs[i].def, longs[i].min, longs[i].max, &v, err, errlen))
            return -1;
        *(long *)((char *)c + longs[i].offset) = (long)v;
    }
    if (config_int(cf, "reconcile_workers", 2, 0, 64, &v, err, errlen))
        return -1;
    c->reconcile_workers = (int)v;
    if (config_int(cf, "reconcile_batch", 16, 1, 1000, &v, err, errlen))
        return -1;
    c->reconcile_batch = (int)v;
    if (c->retry_max_ms < c->retry_base_ms) {
        snprintf(err, errlen, "setting 'retry_max_ms' (%ld) must not be below 'retry_base_ms' (%ld)",
                 c->retry_max_ms, c->retry_base_ms);
        return -1;
    }
    return config_check_timings(c, err, errlen);
}

/* The notifier's settings (notifications to merchants, issue 13). */
static int config_notify(const config_t *cf, config *c, char *err, size_t errlen)
{
    static const long default_retry_s[] = {5, 300, 1800, 7200, 18000, 36000, 50400};
    long long v;
    if (config_int(cf, "notify_timeout_ms", 15000, 100, 120000, &v, err, errlen))
        return -1;
    c->notify_timeout_ms = (long)v;
    if (config_int(cf, "notify_max_in_flight", 64, 1, 10000, &v, err, errlen))
        return -1;
    c->notify_max_in_flight = (int)v;
    if (config_int(cf, "notify_endpoint_max_in_flight", 4, 1, 1000, &v, err, errlen))
        return -1;
    c->notify_endpoint_max_in_flight = (int)v;
    if (config_int(cf, "notify_poll_interval_ms", 500, 10, 60000, &v, err, errlen))
        return -1;
    c->notify_poll_interval_ms = (long)v;
    if (config_int(cf, "notify_secret_grace_s", 86400, 0, 30LL * 86400, &v, err, errlen))
        return -1;
    c->notify_secret_grace_s = (long)v;
    if (config_int(cf, "notify_event_retention_days", 30, 0, 36500, &v, err, errlen))
        return -1;
    c->notify_event_retention_days = (long)v;
    if (config_bool(cf, "notify_allow_private_targets", false, &c->notify_allow_private_targets, err, errlen))
        return -1;
    config_setting_t *s = config_find(cf, "notify_retry_schedule_s");
    if (!s) {
        c->notify_retry_count = (int)(sizeof default_retry_s / sizeof default_retry_s[0]);
        memcpy(c->notify_retry_s, default_retry_s, sizeof default_retry_s);
        return 0;
    }
    int n = config_setting_is_array(s) || config_setting_is_list(s) ? config_setting_length(s) : -1;
    if (n < 0 || n > CONFIG_NOTIFY_RETRY_MAX) {
        snprintf(err, errlen,
                 "line %d: setting 'notify_retry_schedule_s' must be a list of at most %d delays in "
                 "seconds, e.g. [5, 300, 1800]",
                 config_setting_source_line(s), CONFIG_NOTIFY_RETRY_MAX);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        long long d = e && config_setting_type(e) == CONFIG_TYPE_INT ? config_setting_get_int(e) : -1;
        if (d < 1 || d > 7LL * 86400 || (i > 0 && d < c->notify_retry_s[i - 1])) {
            snprintf(err, errlen,
                     "line %d: setting 'notify_retry_schedule_s' element %d must be whole seconds from "
                     "1 to 604800, not below the one before it",
                     config_setting_source_line(s), i + 1);
            return -1;
        }
        c->notify_retry_s[i] = (long)d;
    }
    c->notify_retry_count = n;
    return 0;
}

static int config_trusted_keys(const config_t *cf, const char *base, config *c, char *err,
                               size_t errlen)
{
    config_setting_t *s = config_find(cf, "trusted_keys");
    if (!s)
        return 0;
    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        snprintf(err, errlen, "line %d: setting 'trusted_keys' must be a list of file names",
                 config_setting_source_line(s));
        return -1;
    }
    int n = config_setting_length(s);
    c->trusted_keys = calloc((size_t)n + 1, sizeof(char *));
    if (!c->trusted_keys)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *v = config_setting_get_string_elem(s, i);
        if (!v || !*v) {
            snprintf(err, errlen, "line %d: trusted_keys[%d] must be the path of a public key PEM file",
                     config_setting_source_line(s), i);
            return -1;
        }
        c->trusted_keys[i] = config_path(base, v);
        if (!c->trusted_keys[i])
            return -1;
        c->trusted_key_count++;
    }
    return 0;
}

/* connector_settings = { banco_x = { BANCOX_BASE_URL = "https://..."; }; };
 * a group per plugin (named as its .so, without ".so"), string values
 * only: non-secret settings a plugin reads in init with host->setting.
 * Secrets belong in the encrypted credentials files, not here. */
static int config_connector_settings(const config_t *cf, config *c, char *err, size_t errlen)
{
    config_setting_t *s = config_find(cf, "connector_settings");
    if (!s)
        return 0;
    if (!config_setting_is_group(s)) {
        snprintf(err, errlen, "line %d: setting 'connector_settings' must be a group: "
                 "connector_settings = { <plugin> = { NAME = \"value\"; }; };",
                 config_setting_source_line(s));
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(g)) {
            snprintf(err, errlen, "line %d: connector_settings.%s must be a group of "
                     "NAME = \"value\" settings for plugin %s",
                     config_setting_source_line(g), config_setting_name(g), config_setting_name(g));
            return -1;
        }
        total += (size_t)config_setting_length(g);
    }
    c->connector_settings = calloc(total ? total : 1, sizeof *c->connector_settings);
    if (!c->connector_settings)
        return -1;
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        for (int j = 0; j < config_setting_length(g); j++) {
            config_setting_t *v = config_setting_get_elem(g, (unsigned)j);
            const char *text = config_setting_get_string(v);
            if (!text) {
                snprintf(err, errlen, "line %d: connector_settings.%s.%s must be a string "
                         "(write numbers in quotes: \"5000\")",
                         config_setting_source_line(v), config_setting_name(g), config_setting_name(v));
                return -1;
            }
            creds_setting *cs = &c->connector_settings[c->connector_setting_count];
            cs->plugin = strdup(config_setting_name(g));
            cs->name = strdup(config_setting_name(v));
            cs->value = strdup(text);
            c->connector_setting_count++;
            if (!cs->plugin || !cs->name || !cs->value)
                return -1;
        }
    }
    return 0;
}

/* Bounds against hostile clients: see README "Security". */
static int config_limits(const config_t *cf, config *c, char *err, size_t errlen)
{
    long long v;
    int b = 0;
    if (config_int(cf, "max_header_bytes", 8192, 1024, 1 << 20, &v, err, errlen))
        return -1;
    c->max_header_bytes = (size_t)v;
    if (config_int(cf, "max_headers", 64, 8, 1000, &v, err, errlen))
        return -1;
    c->max_headers = (int)v;
    if (config_int(cf, "max_json_depth", 32, 2, 1000, &v, err, errlen))
        return -1;
    c->max_json_depth = (int)v;
    if (config_int(cf, "connection_timeout_s", 30, 1, 3600, &v, err, errlen))
        return -1;
    c->connection_timeout_s = (int)v;
    if (config_int(cf, "max_connections", 4000, 16, 100000, &v, err, errlen))
        return -1;
    c->max_connections = (int)v;
    if (config_int(cf, "max_connections_per_ip", 0, 0, 100000, &v, err, errlen))
        return -1;
    c->max_connections_per_ip = (int)v;
    config_setting_t *s = config_find(cf, "require_signed_plugins");
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
            snprintf(err, errlen, "line %d: setting 'require_signed_plugins' must be true or false",
                     config_setting_source_line(s));
            return -1;
        }
        b = config_setting_get_bool(s);
    }
    c->require_signed_plugins = b;
    return 0;
}

int config_load(const char *path, config *out, char *err, size_t errlen)
{
    config_t cf;
    config c = {0};
    int rc = -1;
    char inner[512] = "";
    bool located = false; /* inner names the file and line itself */
    config_seen seen = {0};
    char *path_copy = strdup(path);
    const char *base = path_copy ? dirname(path_copy) : ".";
    long long v;

    config_init(&cf);
    if (!config_read_file(&cf, path)) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            snprintf(inner, sizeof inner, "cannot read it (%s)", strerror(errno ? errno : ENOENT));
        else
            snprintf(inner, sizeof inner, "line %d: %s", config_error_line(&cf), config_error_text(&cf));
        goto fail;
    }
    config_setting_set_hook(config_root_setting(&cf), &seen);
    if (config_string(&cf, "listen", "127.0.0.1", NULL, &c.listen_address, inner, sizeof inner) ||
        config_string(&cf, "admin_listen", "127.0.0.1", NULL, &c.admin_listen, inner, sizeof inner) ||
        config_string(&cf, "log_format", "text", NULL, &c.log_format, inner, sizeof inner) ||
        config_string(&cf, "plugin_dir", "plugins", base, &c.plugin_dir, inner, sizeof inner) ||
        config_string(&cf, "credentials_dir", "credentials", base, &c.credentials_dir, inner, sizeof inner) ||
        config_string(&cf, "master_key_file", "master.key", base, &c.master_key_file, inner, sizeof inner) ||
        config_string(&cf, "private_dir", "plugin-cache", base, &c.private_dir, inner, sizeof inner) ||
        config_string(&cf, "database", "dbname=pagoflex", NULL, &c.database, inner, sizeof inner) ||
        config_string(&cf, "public_url", NULL, NULL, &c.public_url, inner, sizeof inner) ||
        config_string(&cf, "log_level", "info", NULL, &c.log_level, inner, sizeof inner) ||
        config_string(&cf, "log_file", NULL, base, &c.log_file, inner, sizeof inner) ||
        config_string(&cf, "pid_file", "pagoflexd.pid", base, &c.pid_file, inner, sizeof inner) ||
        config_string(&cf, "previous_master_key_file", NULL, base, &c.previous_master_key_file,
                      inner, sizeof inner))
        goto fail;
    if (config_limits(&cf, &c, inner, sizeof inner) || config_trusted_keys(&cf, base, &c, inner, sizeof inner) ||
        config_connector_settings(&cf, &c, inner, sizeof inner))
        goto fail;
    if (config_int(&cf, "port", 8080, 0, 65535, &v, inner, sizeof inner))
        goto fail;
    c.port = (int)v;
    if (config_int(&cf, "admin_port", 9180, 0, 65535, &v, inner, sizeof inner))
        goto fail;
    c.admin_port = (int)v;
    if (config_bool(&cf, "migrate", true, &c.migrate, inner, sizeof inner) ||
        config_bool(&cf, "access_log", false, &c.access_log, inner, sizeof inner))
        goto fail;
    if (config_int(&cf, "db_pool_size", 8, 1, 64, &v, inner, sizeof inner))
        goto fail;
    c.db_pool_size = (int)v;
    if (config_int(&cf, "db_batch_max", 64, 0, 64, &v, inner, sizeof inner))
        goto fail;
    c.db_batch_max = (int)v;
    if (config_int(&cf, "db_batch_connections", 2, 1, 16, &v, inner, sizeof inner))
        goto fail;
    c.db_batch_connections = (int)v;
    if (config_int(&cf, "threads", 16, 1, 256, &v, inner, sizeof inner))
        goto fail;
    c.threads = (int)v;
    if (config_int(&cf, "max_body_bytes", 65536, 1024, 16 << 20, &v, inner, sizeof inner))
        goto fail;
    c.max_body_bytes = (size_t)v;
    if (config_int(&cf, "bank_timeout_ms", 10000, 100, 300000, &v, inner, sizeof inner))
        goto fail;
    c.bank_timeout_ms = (long)v;
    if (config_int(&cf, "bank_max_connections", 512, 1, 100000, &v, inner, sizeof inner))
        goto fail;
    c.bank_max_connections = (long)v;
    if (config_int(&cf, "blocking_threads", 4, 1, 256, &v, inner, sizeof inner))
        goto fail;
    c.blocking_threads = (int)v;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (config_int(&cf, "workers", cpus > 0 && cpus < 64 ? cpus : 2, 1, 32, &v, inner, sizeof inner))
        goto fail;
    c.workers = (int)v;
    if (config_int(&cf, "drain_timeout_ms", 10000, 0, 600000, &v, inner, sizeof inner))
        goto fail;
    c.drain_timeout_ms = (int)v;
    if (config_int(&cf, "ready_timeout_ms", 30000, 1000, 600000, &v, inner, sizeof inner))
        goto fail;
    c.ready_timeout_ms = (int)v;
    if (config_int(&cf, "quarantine_after", 3, 1, 1000, &v, inner, sizeof inner))
        goto fail;
    c.quarantine_after = (int)v;
    if (config_api_keys(&cf, &c, inner, sizeof inner))
        goto fail;
    if (config_lifecycle(&cf, &c, inner, sizeof inner))
        goto fail;
    if (config_notify(&cf, &c, inner, sizeof inner))
        goto fail;
    if (config_refuse_unknown(&cf, &seen, path, inner, sizeof inner)) {
        located = true;
        goto fail;
    }

    const char *env_port = getenv("PAGOFLEX_PORT");
    if (env_port && *env_port) {
        char *end;
        long p = strtol(env_port, &end, 10);
        if (*end || p < 0 || p > 65535) {
            snprintf(inner, sizeof inner, "PAGOFLEX_PORT=%s is not a port number", env_port);
            goto fail;
        }
        c.port = (int)p;
    }
    const char *env_admin = getenv("PAGOFLEX_ADMIN_PORT");
    if (env_admin && *env_admin) {
        char *end;
        long p = strtol(env_admin, &end, 10);
        if (*end || p < 0 || p > 65535) {
            snprintf(inner, sizeof inner, "PAGOFLEX_ADMIN_PORT=%s is not a port number", env_admin);
            goto fail;
        }
        c.admin_port = (int)p;
    }
    if (c.admin_port && c.admin_port == c.port && strcmp(c.admin_listen, c.listen_address) == 0) {
        snprintf(inner, sizeof inner,
                 "setting 'admin_port' (%d) is the merchant 'port': the admin listener needs a "
                 "port of its own (or admin_port = 0 for none)",
                 c.admin_port);
        goto fail;
    }
    const char *env_db = getenv("PAGOFLEX_DATABASE");
    if (env_db && *env_db) {
        free(c.database);
        c.database = strdup(env_db);
    }
    if (!c.public_url && asprintf(&c.public_url, "http://%s:%d", c.listen_address, c.port) < 0) {
        c.public_url = NULL;
        goto fail;
    }
    if (strcmp(c.log_format, "text") != 0 && strcmp(c.log_format, "json") != 0) {
        snprintf(inner, sizeof inner, "setting 'log_format' is '%s'; use \"text\" or \"json\"",
                 c.log_format);
        goto fail;
    }
    if (log_level_parse(c.log_level) < 0) {
        snprintf(inner, sizeof inner, "setting 'log_level' is '%s'; use debug, info, warn or error", c.log_level);
        goto fail;
    }
    *out = c;
    rc = 0;
fail:
    if (rc && located) {
        snprintf(err, errlen, "%s", inner);
        config_free(&c);
    } else if (rc) {
        snprintf(err, errlen, "config %s: %s", path, inner[0] ? inner : "out of memory");
        config_free(&c);
    }
    config_destroy(&cf);
    free(path_copy);
    return rc;
}

void config_free(config *c)
{
    free(c->listen_address);
    free(c->admin_listen);
    free(c->log_format);
    free(c->public_url);
    free(c->plugin_dir);
    free(c->credentials_dir);
    free(c->master_key_file);
    free(c->private_dir);
    free(c->database);
    free(c->log_level);
    free(c->log_file);
    free(c->pid_file);
    for (size_t i = 0; i < c->api_key_count; i++)
        free(c->api_key_sha256[i]);
    free(c->api_key_sha256);
    free(c->previous_master_key_file);
    for (size_t i = 0; i < c->trusted_key_count; i++)
        free(c->trusted_keys[i]);
    free(c->trusted_keys);
    for (size_t i = 0; i < c->connector_setting_count; i++) {
        free((char *)c->connector_settings[i].plugin);
        free((char *)c->connector_settings[i].name);
        free((char *)c->connector_settings[i].value);
    }
    free(c->connector_settings);
    memset(c, 0, sizeof *c);
}
