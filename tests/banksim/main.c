/* main.c: banksim's command line, start-up and shutdown.
 *
 * Start-up: parse options, start the timer, the webhook thread and the HTTP
 * server, write --port-file, then wait for SIGINT/SIGTERM in sigwait() (the
 * signals are blocked in every thread, so no handler runs concurrently with
 * anything). Shutdown: stop accepting, let webhook attempts in flight finish
 * (1 s), answer every waiting request at once, wait for requests in flight
 * (3 s), stop, exit 0. */
#include "banksim.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    OPT_PORT = 256, OPT_BIND, OPT_API_KEY, OPT_SECRET, OPT_EXTRA_SECRET, OPT_LATENCY,
    OPT_WEBHOOK_DELAY, OPT_FAIL_RATE, OPT_TIMEOUT_RATE, OPT_TIMEOUT_MS, OPT_DUP_RATE,
    OPT_REORDER, OPT_REORDER_MS, OPT_WEBHOOK_FIRST, OPT_NO_WEBHOOKS, OPT_FANOUT, OPT_SEED,
    OPT_PORT_FILE, OPT_QUIET, OPT_THREADS, OPT_WH_ATTEMPTS, OPT_WH_BACKOFF, OPT_WH_BACKOFF_MAX,
    OPT_WH_TIMEOUT, OPT_WH_CONCURRENCY, OPT_AUTH_EXPIRY, OPT_CHALLENGE_EXPIRY, OPT_PUBLIC_URL,
    OPT_HELP,
};

static const struct option long_options[] = {
    { "port", required_argument, NULL, OPT_PORT },
    { "bind", required_argument, NULL, OPT_BIND },
    { "api-key", required_argument, NULL, OPT_API_KEY },
    { "secret", required_argument, NULL, OPT_SECRET },
    { "extra-secret", required_argument, NULL, OPT_EXTRA_SECRET },
    { "latency-ms", required_argument, NULL, OPT_LATENCY },
    { "webhook-delay-ms", required_argument, NULL, OPT_WEBHOOK_DELAY },
    { "fail-rate", required_argument, NULL, OPT_FAIL_RATE },
    { "timeout-rate", required_argument, NULL, OPT_TIMEOUT_RATE },
    { "timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS },
    { "duplicate-rate", required_argument, NULL, OPT_DUP_RATE },
    { "reorder", no_argument, NULL, OPT_REORDER },
    { "reorder-ms", required_argument, NULL, OPT_REORDER_MS },
    { "webhook-first", no_argument, NULL, OPT_WEBHOOK_FIRST },
    { "no-webhooks", no_argument, NULL, OPT_NO_WEBHOOKS },
    { "webhook-fanout", required_argument, NULL, OPT_FANOUT },
    { "seed", required_argument, NULL, OPT_SEED },
    { "port-file", required_argument, NULL, OPT_PORT_FILE },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "webhook-attempts", required_argument, NULL, OPT_WH_ATTEMPTS },
    { "webhook-backoff-ms", required_argument, NULL, OPT_WH_BACKOFF },
    { "webhook-backoff-max-ms", required_argument, NULL, OPT_WH_BACKOFF_MAX },
    { "webhook-timeout-ms", required_argument, NULL, OPT_WH_TIMEOUT },
    { "webhook-concurrency", required_argument, NULL, OPT_WH_CONCURRENCY },
    { "auth-expiry-s", required_argument, NULL, OPT_AUTH_EXPIRY },
    { "challenge-expiry-s", required_argument, NULL, OPT_CHALLENGE_EXPIRY },
    { "public-url", required_argument, NULL, OPT_PUBLIC_URL },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static void usage(FILE *out)
{
    fputs(
"usage: banksim [options]\n"
"Banco X bank simulator (tests/banksim), API v1.1. Sandbox outcome by amount\n"
"% 100: 13 webhook DECLINED; 55 503 first time per Idempotency-Key then OK;\n"
"77 OK, no webhook, GET says APPROVED; 99 REJECTED; 42 ACTION_REQUIRED (3-D\n"
"Secure page at /3ds/{id}); else webhook APPROVED (AUTHORIZED with\n"
"\"capture\":false). card_token tok_insufficient: REJECTED. Refunds by the\n"
"refund amount: 13 REFUND_FAILED; 55 503 once; 77 no webhook; 99 REJECTED;\n"
"else REFUNDED. A capture of an amount ending in 55: 503 once per key.\n"
"\n"
"  --port N                 listen port, 0 = any free port (default 0)\n"
"  --bind ADDR              numeric address to bind (default 127.0.0.1)\n"
"  --port-file PATH         write the bound port there once listening\n"
"  --latency-ms N           delay before answering every Banco X API request (0)\n"
"  --webhook-delay-ms N     payment creation to first webhook attempt (100);\n"
"                           GET /pay/{id} says PENDING until then\n"
"  --fail-rate P            P(a Banco X POST answers 503 before doing anything) (0)\n"
"  --timeout-rate P         P(a Banco X POST is done but answered 503 only after\n"
"                           --timeout-ms: a reply lost in transit) (0)\n"
"  --timeout-ms N           wait of a timed-out request (30000)\n"
"  --duplicate-rate P       P(a webhook is delivered twice, same event_id) (0)\n"
"  --reorder                add a random 0..reorder-ms delay to each webhook\n"
"  --reorder-ms N           maximum extra delay with --reorder (1000)\n"
"  --webhook-first          deliver a request's webhook, wait for the receiver's\n"
"                           first answer, then answer the request (POST /pay,\n"
"                           capture, void, refunds, POST /3ds/{id})\n"
"  --no-webhooks            never send webhooks (GET still settles)\n"
"  --webhook-fanout B1[,B2] send each webhook to the callback_url's path on\n"
"                           every base URL Bi instead of callback_url itself\n"
"  --webhook-attempts N     attempts per webhook delivery (8)\n"
"  --webhook-backoff-ms N   first retry delay, doubling (200)\n"
"  --webhook-backoff-max-ms N  retry delay cap (5000)\n"
"  --webhook-timeout-ms N   per-attempt timeout (5000)\n"
"  --webhook-concurrency N  webhook attempts in flight at most (256)\n"
"  --auth-expiry-s S        an authorization not captured within S seconds is\n"
"                           voided, with a VOIDED webhook (604800 = 7 days);\n"
"                           decimals allowed (0.5)\n"
"  --challenge-expiry-s S   a 3-D Secure challenge not answered within S seconds\n"
"                           ends DECLINED (900 = 15 minutes); decimals allowed\n"
"  --public-url URL         base URL browsers reach the simulator at, for\n"
"                           redirect_url (default http://BIND:PORT)\n"
"  --threads N              HTTP server threads (4); waits never hold a thread\n"
"  --seed N                 seed of the fault-injection random generator\n"
"  --quiet                  no per-request log lines\n"
"  --help                   this text\n"
"\n"
"Secrets come from the environment, never the command line (which any local\n"
"user can read with ps):\n"
"  BANCOX_API_KEY           expected Bearer key (default \"bx_test_key\")\n"
"  BANCOX_SECRET            webhook signing secret (default \"bx_test_secret\")\n"
"  BANCOX_EXTRA_SECRET      also sign with it: a second v1= entry (rotation)\n"
"  BANCOX_ACCOUNTS          more merchant accounts, NAME:API_KEY:SECRET,...; a payment\n"
"                           belongs to the account whose key made it (others get 404),\n"
"                           its webhooks are signed with that account's secret\n"
"\n"
"Test endpoints (no auth): GET /_sim/stats, GET /_sim/payments?ref=R,\n"
"GET /_sim/payments/{id}, GET /_sim/refunds?ref=R, GET|POST /_sim/config\n"
"(latency_ms, webhook_delay_ms, reorder_ms, fail_rate, fail_status, timeout_rate,\n"
"duplicate_rate, reorder, webhook_first, no_webhooks).\n",
        out);
}

/* Parses an unsigned decimal in [min, max]; on error prints why and exits 2. */
static unsigned long long parse_uint(const char *opt, const char *s, unsigned long long min,
                                     unsigned long long max)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < min || v > max) {
        fprintf(stderr, "banksim: --%s %s: expected an integer in %llu..%llu\n", opt, s, min, max);
        exit(2);
    }
    return v;
}

static double parse_rate(const char *opt, const char *s)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0)) {
        fprintf(stderr, "banksim: --%s %s: expected a probability in 0..1\n", opt, s);
        exit(2);
    }
    return v;
}

/* Parses seconds (decimals allowed, at least 1 ms, at most 30 days) into
 * milliseconds; on error prints why and exits 2. */
static uint64_t parse_seconds(const char *opt, const char *s)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.001 && v <= 30.0 * 86400)) {
        fprintf(stderr, "banksim: --%s %s: expected seconds in 0.001..2592000\n", opt, s);
        exit(2);
    }
    return (uint64_t)(v * 1000.0 + 0.5);
}

/* Splits a comma-separated list of base URLs into bs_cfg.fanout. */
static void parse_fanout(const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        goto oom;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char **v = realloc(bs_cfg.fanout, (bs_cfg.fanout_n + 1) * sizeof *v);
        if (!v)
            goto oom;
        bs_cfg.fanout = v;
        if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0) {
            fprintf(stderr, "banksim: --webhook-fanout: \"%s\" is not an http(s) base URL\n", tok);
            exit(2);
        }
        if (!(bs_cfg.fanout[bs_cfg.fanout_n++] = strdup(tok)))
            goto oom;
    }
    free(copy);
    if (!bs_cfg.fanout_n) {
        fprintf(stderr, "banksim: --webhook-fanout needs at least one base URL\n");
        exit(2);
    }
    return;
oom:
    fprintf(stderr, "banksim: out of memory\n");
    exit(1);
}

/* BANCOX_ACCOUNTS="NAME:API_KEY:SECRET,NAME2:KEY2:SECRET2": more merchant
 * accounts besides the default one (names are labels; keys and secrets
 * are never shown). A malformed list stops the simulator. */
static void accounts_from_env(void)
{
    const char *env = getenv("BANCOX_ACCOUNTS");
    if (!env || !*env)
        return;
    char *list = strdup(env), *save = NULL;
    if (!list)
        goto oom;
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *key = strchr(item, ':'), *secret = key ? strchr(key + 1, ':') : NULL;
        if (!key || !secret || key == item || secret == key + 1 || !secret[1] ||
            bs_cfg.account_n >= BS_MAX_ACCOUNTS) {
            fprintf(stderr, "banksim: BANCOX_ACCOUNTS entry %zu is not NAME:API_KEY:SECRET (at most %d "
                            "accounts); fix the variable\n",
                    bs_cfg.account_n, BS_MAX_ACCOUNTS - 1);
            exit(2);
        }
        *key++ = '\0';
        *secret++ = '\0';
        bs_cfg.accounts[bs_cfg.account_n++] = (struct bs_account){item, key, secret};
    }
    return; /* list stays: the accounts point into it */
oom:
    fprintf(stderr, "banksim: out of memory\n");
    exit(1);
}

static void defaults(void)
{
    const char *k = getenv("BANCOX_API_KEY"), *s = getenv("BANCOX_SECRET");
    const char *x = getenv("BANCOX_EXTRA_SECRET");
    snprintf(bs_cfg.bind_addr, sizeof bs_cfg.bind_addr, "127.0.0.1");
    bs_cfg.api_key = k && *k ? k : "bx_test_key";
    bs_cfg.secret = s && *s ? s : "bx_test_secret";
    bs_cfg.extra_secret = x && *x ? x : NULL;
    bs_cfg.accounts[0] = (struct bs_account){"default", bs_cfg.api_key, bs_cfg.secret};
    bs_cfg.account_n = 1;
    accounts_from_env();
    bs_cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    bs_cfg.threads = 4;
    bs_cfg.timeout_ms = 30000;
    bs_cfg.webhook_attempts = 8;
    bs_cfg.webhook_backoff_ms = 200;
    bs_cfg.webhook_backoff_max_ms = 5000;
    bs_cfg.webhook_timeout_ms = 5000;
    bs_cfg.webhook_concurrency = 256;
    bs_cfg.auth_expiry_ms = 7ull * 86400 * 1000;
    bs_cfg.challenge_expiry_ms = 15ull * 60 * 1000;
    bs_cfg.initial.webhook_delay_ms = 100;
    bs_cfg.initial.reorder_ms = 1000;
    bs_cfg.initial.fail_status = 503;
}

static void parse_args(int argc, char **argv)
{
    const unsigned long long ms_max = 3600000; /* one hour */
    struct bs_tunables *t = &bs_cfg.initial;
    const char *name;
    int c;

    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        name = c >= OPT_PORT && c <= OPT_HELP ? long_options[c - OPT_PORT].name : "?";
        switch (c) {
        case OPT_PORT: bs_cfg.port = (unsigned)parse_uint(name, optarg, 0, 65535); break;
        case OPT_BIND:
            if (strlen(optarg) >= sizeof bs_cfg.bind_addr) {
                fprintf(stderr, "banksim: --bind %s: address too long\n", optarg);
                exit(2);
            }
            snprintf(bs_cfg.bind_addr, sizeof bs_cfg.bind_addr, "%s", optarg);
            break;
        case OPT_API_KEY:
        case OPT_SECRET:
        case OPT_EXTRA_SECRET:
            /* The value is not repeated: it is a secret. */
            fprintf(stderr, "banksim: --%s is refused: a secret on the command line is visible to "
                    "every local user (ps, /proc/<pid>/cmdline); set %s in banksim's environment "
                    "instead\n", name,
                    c == OPT_API_KEY ? "BANCOX_API_KEY" : c == OPT_SECRET ? "BANCOX_SECRET"
                                                                          : "BANCOX_EXTRA_SECRET");
            exit(2);
        case OPT_LATENCY: t->latency_ms = (unsigned)parse_uint(name, optarg, 0, ms_max); break;
        case OPT_WEBHOOK_DELAY: t->webhook_delay_ms = (unsigned)parse_uint(name, optarg, 0, ms_max); break;
        case OPT_FAIL_RATE: t->fail_rate = parse_rate(name, optarg); break;
        case OPT_TIMEOUT_RATE: t->timeout_rate = parse_rate(name, optarg); break;
        case OPT_TIMEOUT_MS: bs_cfg.timeout_ms = (unsigned)parse_uint(name, optarg, 0, ms_max); break;
        case OPT_DUP_RATE: t->duplicate_rate = parse_rate(name, optarg); break;
        case OPT_REORDER: t->reorder = true; break;
        case OPT_REORDER_MS: t->reorder_ms = (unsigned)parse_uint(name, optarg, 0, ms_max); break;
        case OPT_WEBHOOK_FIRST: t->webhook_first = true; break;
        case OPT_NO_WEBHOOKS: t->no_webhooks = true; break;
        case OPT_FANOUT: parse_fanout(optarg); break;
        case OPT_SEED: bs_cfg.seed = parse_uint(name, optarg, 0, UINT64_MAX); break;
        case OPT_PORT_FILE: bs_cfg.port_file = optarg; break;
        case OPT_QUIET: bs_cfg.quiet = true; break;
        case OPT_THREADS: bs_cfg.threads = (unsigned)parse_uint(name, optarg, 1, 256); break;
        case OPT_WH_ATTEMPTS: bs_cfg.webhook_attempts = (unsigned)parse_uint(name, optarg, 1, 1000); break;
        case OPT_WH_BACKOFF: bs_cfg.webhook_backoff_ms = (unsigned)parse_uint(name, optarg, 1, ms_max); break;
        case OPT_WH_BACKOFF_MAX: bs_cfg.webhook_backoff_max_ms = (unsigned)parse_uint(name, optarg, 1, ms_max); break;
        case OPT_WH_TIMEOUT: bs_cfg.webhook_timeout_ms = (unsigned)parse_uint(name, optarg, 1, ms_max); break;
        case OPT_WH_CONCURRENCY: bs_cfg.webhook_concurrency = (unsigned)parse_uint(name, optarg, 1, 10000); break;
        case OPT_AUTH_EXPIRY: bs_cfg.auth_expiry_ms = parse_seconds(name, optarg); break;
        case OPT_CHALLENGE_EXPIRY: bs_cfg.challenge_expiry_ms = parse_seconds(name, optarg); break;
        case OPT_PUBLIC_URL:
            if ((strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0) ||
                strlen(optarg) > 256 || strpbrk(optarg, " \t\r\n")) {
                fprintf(stderr, "banksim: --public-url %s: expected an http(s) base URL of at "
                                "most 256 characters\n", optarg);
                exit(2);
            }
            bs_cfg.public_url = optarg;
            break;
        case OPT_HELP:
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "banksim: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        exit(2);
    }
}

/* Writes the port to PATH.tmp and renames it, so a reader never sees half
 * a number. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    FILE *f;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    sigset_t sigs;
    unsigned port = 0;
    int sig = 0, rc = 1;

    defaults();
    parse_args(argc, argv);
    bs_rng_seed(bs_cfg.seed);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread */

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        bs_err("curl_global_init failed");
        return 1;
    }
    if (store_init() != 0 || timer_start() != 0 || sink_start() != 0) {
        bs_err("out of memory at start-up");
        goto out;
    }
    if (webhook_start() != 0 || http_start(&port) != 0)
        goto stop;
    if (bs_cfg.port_file && write_port_file(bs_cfg.port_file, port) != 0) {
        bs_err("--port-file %s: cannot write: %s", bs_cfg.port_file, strerror(errno));
        goto stop;
    }
    bs_log("listening on %s port %u (threads %u, latency %u ms, webhook delay %u ms, "
           "fail %.2f, timeout %.2f, duplicate %.2f%s%s%s, fanout %zu, seed %llu)",
           bs_cfg.bind_addr, port, bs_cfg.threads, bs_cfg.initial.latency_ms,
           bs_cfg.initial.webhook_delay_ms, bs_cfg.initial.fail_rate,
           bs_cfg.initial.timeout_rate, bs_cfg.initial.duplicate_rate,
           bs_cfg.initial.reorder ? ", reorder" : "",
           bs_cfg.initial.webhook_first ? ", webhook-first" : "",
           bs_cfg.initial.no_webhooks ? ", no webhooks" : "", bs_cfg.fanout_n,
           (unsigned long long)bs_cfg.seed);
    while (sigwait(&sigs, &sig) != 0)
        ;
    bs_log("signal %d: shutting down", sig);
    rc = 0;
stop:
    http_quiesce();
    webhook_stop(1000);
    http_stop(3000);
    timer_stop();
out:
    sink_stop();
    store_fini();
    curl_global_cleanup();
    for (size_t i = 0; i < bs_cfg.fanout_n; i++)
        free(bs_cfg.fanout[i]);
    free(bs_cfg.fanout);
    return rc;
}
