/* check.h - `pagoflex plugin check`: a connector conformance checker.
 *
 * The plugin is loaded exactly as the host loads it (registry_load_file into
 * a private temporary directory), then exercised: build_request on sample
 * payments, handle_response on canned bank answers, verify_webhook on
 * unsigned and tampered deliveries, parse_webhook on garbage. Every check
 * prints one line, "PASS <check>: <what>" or "FAIL <check>: <reason>".
 * Each load and each behavioural check runs in a forked child, so a plugin
 * that crashes or hangs is reported ("crashed with signal 11 (Segmentation
 * fault) on <case>") instead of killing the checker.
 */
#ifndef PAGOFLEX_CHECK_H
#define PAGOFLEX_CHECK_H

#include <stdio.h>

#include <pagoflex/connector.h>

#include "secrets.h"

typedef struct check_options {
    const char *plugin_file;      /* the .so to check */
    const char *plugin_name;      /* credentials name; NULL: file name without .so */
    const char *credentials_file; /* <name>.cfg.enc, or NULL: dummy values are
                                     generated for every required name */
    const secrets_key *master_key; /* decrypts credentials_file (borrowed) */
    const char *account;          /* the connector account credentials_file is
                                     for (<name>/<account>.cfg.enc), or NULL:
                                     "default" */
    const char *const *credentials; /* "NAME=VALUE" plaintext test credentials
                                       (--credential), used instead of a file */
    size_t credential_count;
    const char *with_dir;         /* plugins loaded first, as the host would, so
                                     duplicate keys and paths show; or NULL */
    int verbose;                  /* show host and plugin log lines on stderr */
    unsigned timeout_s;           /* per child process; 0: 60 s */
} check_options;

/* Run every check on opts->plugin_file, one line per check on `out`.
 * Returns the number of failed checks (0: the plugin conforms), or -1 when
 * the checker itself could not run (reason in err; nothing printed). The
 * temporary directory is removed before returning. */
int check_run(const check_options *opts, FILE *out, char *err, size_t errlen);

/* A captured webhook delivery for check_webhook_replay (all borrowed). */
typedef struct check_delivery {
    const char *method;             /* "POST" */
    const char *path;               /* "/webhooks/<path>" */
    const char *query;              /* without '?', "" when none */
    const pagoflex_header *headers;
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
    int64_t now;                    /* host clock the plugin sees; 0: real time */
} check_delivery;

/* `pagoflex webhook verify`: load opts->plugin_file as plugin check does
 * (credentials from opts, dummy values when none), hand it `dl` through
 * webhook_verify and webhook_parse (1.2) or verify_webhook and
 * parse_webhook (1.0/1.1), and print the verdict ("signature: valid" or
 * "signature: INVALID (status N NAME)"), each event and the answer on
 * `out`. Returns 0 when the signature is valid and the delivery parsed, 1
 * when not, -1 when the plugin could not be loaded (reason in err, which
 * names the user's files). No credential value is printed. */
int check_webhook_replay(const check_options *opts, const check_delivery *dl, FILE *out,
                         char *err, size_t errlen);

#endif
