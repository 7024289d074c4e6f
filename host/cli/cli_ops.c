/* cli_ops.c - operating a running pagoflexd: `pagoflex reload`, `pagoflex status`. */
#include "cli_ops.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"

/* Parse "-c CONFIG" (default $PAGOFLEX_CONFIG) and load it. */
static int cli_ops_config(const cli_command *cmd, int argc, char **argv, config *cfg)
{
    const char *path = getenv("PAGOFLEX_CONFIG");
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c != 'c')
            return cli_usage_error(cmd, "unknown option");
        path = optarg;
    }
    if (!path)
        return cli_usage_error(cmd, "name the host's config with -c FILE (or set PAGOFLEX_CONFIG)");
    char err[1024];
    if (config_load(path, cfg, err, sizeof err) != 0)
        return cli_error("%s", err);
    return CLI_OK;
}

int cli_ops_reload(const cli_command *cmd, int argc, char **argv)
{
    config cfg;
    int rc = cli_ops_config(cmd, argc, argv, &cfg);
    if (rc != CLI_OK)
        return rc;
    FILE *f = fopen(cfg.pid_file, "r");
    long pid = 0;
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        rc = cli_error("cannot read the master's pid from %s (%s); is pagoflexd running with this config?",
                       cfg.pid_file, f ? "no pid in it" : strerror(errno));
    } else if (kill((pid_t)pid, SIGHUP) != 0) {
        rc = cli_error("cannot signal pagoflexd (pid %ld from %s): %s", pid, cfg.pid_file, strerror(errno));
    } else {
        printf("reload requested: SIGHUP sent to pagoflexd master pid %ld; the new generation serves once "
               "its workers are ready (see the log, or `pagoflex status`)\n",
               pid);
    }
    if (f)
        fclose(f);
    config_free(&cfg);
    return rc;
}

struct cli_ops_body {
    char *data;
    size_t len;
};

static size_t cli_ops_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct cli_ops_body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > (4u << 20))
        return 0;
    char *p = realloc(b->data, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->len += n;
    p[b->len] = '\0';
    b->data = p;
    return n;
}

/* GET base+path; the parsed JSON answer (caller decrefs) or NULL. *status
 * gets the HTTP status (0 if none). */
static json_t *cli_ops_get(const char *base, const char *path, long *status)
{
    struct cli_ops_body body = {0};
    char url[1024];
    json_t *doc = NULL;
    *status = 0;
    if (snprintf(url, sizeof url, "%s%s", base, path) >= (int)sizeof url)
        return NULL;
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_ops_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        doc = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    }
    curl_easy_cleanup(h);
    free(body.data);
    return doc;
}

static const char *cli_ops_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

int cli_ops_status(const cli_command *cmd, int argc, char **argv)
{
    config cfg;
    int rc = cli_ops_config(cmd, argc, argv, &cfg);
    if (rc != CLI_OK)
        return rc;
    char base[512];
    snprintf(base, sizeof base, "http://%s:%d", cfg.listen_address, cfg.port);
    long status;
    json_t *health = cli_ops_get(base, "/healthz", &status);
    if (!health) {
        rc = cli_error("pagoflexd does not answer at %s (%s); is it running?", base,
                       status ? "not JSON" : "no answer");
        goto out;
    }
    printf("pagoflexd at %s: %s, database: %s, generation %lld, connectors %lld\n", base,
           cli_ops_str(health, "status"), cli_ops_str(health, "database"),
           (long long)json_integer_value(json_object_get(health, "generation")),
           (long long)json_integer_value(json_object_get(health, "connectors")));
    json_decref(health);
    if (!cfg.admin_port) {
        printf("admin_port is 0: no admin listener, so the connectors cannot be listed\n");
        goto out;
    }
    char admin[512];
    snprintf(admin, sizeof admin, "http://%s:%d", cfg.admin_listen, cfg.admin_port);
    json_t *list = cli_ops_get(admin, "/v1/connectors", &status);
    json_t *c;
    size_t i;
    printf("%-12s %-10s %-5s %-12s %-10s %-17s %s\n", "KEY", "VERSION", "ABI", "WEBHOOK", "GENERATION",
           "SHA256", "FILE");
    json_array_foreach(json_object_get(list, "connectors"), i, c)
    {
        printf("%-12s %-10s %-5s %-12s %-10lld %-17.16s %s\n", cli_ops_str(c, "key"), cli_ops_str(c, "version"),
               cli_ops_str(c, "abi_version"), cli_ops_str(c, "webhook_path"),
               (long long)json_integer_value(json_object_get(c, "generation")), cli_ops_str(c, "sha256"),
               cli_ops_str(c, "file"));
        if (json_is_string(json_object_get(c, "last_error")))
            printf("  serving its last good version; the new file was rejected: %s\n",
                   cli_ops_str(c, "last_error"));
    }
    json_array_foreach(json_object_get(list, "rejected"), i, c)
        printf("rejected: %s\n", cli_ops_str(c, "error"));
    json_decref(list);
out:
    config_free(&cfg);
    return rc;
}
