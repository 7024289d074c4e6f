/* pagoflexd - the Pagoflex payment-connector host.
 *
 *   pagoflexd -c etc/pagoflex.cfg [--port-file FILE]
 *   pagoflexd -t [-c FILE]     test the configuration (nginx -t), exit 0/1
 *   pagoflexd --version        version, plugin ABI and library versions
 *
 * Reads the config, opens the listening socket and hands both to the master
 * process (master.c), which runs worker processes (worker.c) that load the
 * connector plugins and serve the HTTP API. SIGHUP reloads; SIGINT, SIGTERM
 * and SIGQUIT stop gracefully (a second signal stops at once); SIGUSR1
 * reopens `log_file` (master.c has the whole table).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "configtest.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "version.h"

/* The config tested by -t without -c: where the package installs it. */
#define PAGOFLEXD_DEFAULT_CONFIG "/etc/pagoflex/pagoflex.cfg"

static void usage(FILE *f)
{
    fprintf(f, "usage: pagoflexd -c CONFIG [--port-file FILE]\n"
               "       pagoflexd -t [-c CONFIG]\n"
               "  -c, --config FILE     host configuration (libconfig syntax; see etc/pagoflex.cfg)\n"
               "      --port-file FILE  write the bound port to FILE once listening\n"
               "  -t, --test            test the configuration, master key, credentials and\n"
               "                        plugins, then exit: 0 all good, 1 (with what is wrong)\n"
               "                        (default CONFIG: " PAGOFLEXD_DEFAULT_CONFIG ")\n"
               "  -V, --version         version, plugin ABI and library versions\n"
               "  -h, --help            this text\n");
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *port_file = NULL;
    bool test = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"port-file", required_argument, NULL, 'p'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'V':
            version_print(stdout, "pagoflexd");
            return 0;
        case 'p':
            port_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (test)
        return configtest_run(config_path ? config_path : PAGOFLEXD_DEFAULT_CONFIG);
    if (!config_path) {
        usage(stderr);
        return 2;
    }

    /* Each payment waiting on a bank holds two sockets (client and bank):
     * take all the file descriptors the system allows this process. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    char err[1024];
    config cfg;
    if (config_load(config_path, &cfg, err, sizeof err)) {
        log_error("%s", err);
        return 1;
    }
    log_set_level((pagoflex_log_level)log_level_parse(cfg.log_level));
    log_set_json(strcmp(cfg.log_format, "json") == 0);
    metrics_set_build_info(version_string(), version_abi());
    if (cfg.log_file && log_open_file(cfg.log_file, err, sizeof err) != 0) {
        log_error("%s", err);
        config_free(&cfg);
        return 1;
    }
    int port = 0;
    int fd = api_listen(cfg.listen_address, cfg.port, &port, err, sizeof err);
    if (fd < 0) {
        log_error("%s", err);
        config_free(&cfg);
        return 1;
    }
    /* The admin listener (metrics, connectors), opened here like the API's
     * socket so every worker generation serves it. */
    int admin_fd = -1, admin_port = 0;
    if (cfg.admin_port) {
        admin_fd = api_listen(cfg.admin_listen, cfg.admin_port, &admin_port, err, sizeof err);
        if (admin_fd < 0) {
            log_error("admin listener (admin_listen, admin_port): %s", err);
            close(fd);
            config_free(&cfg);
            return 1;
        }
    }
    return master_run(config_path, &cfg, fd, port, admin_fd, port_file);
}
