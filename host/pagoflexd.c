/* pagoflexd - the Pagoflex payment-connector host.
 *
 *   pagoflexd -c etc/pagoflex.cfg [--port-file FILE]
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "log.h"
#include "master.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: pagoflexd -c CONFIG [--port-file FILE]\n"
               "  -c, --config FILE     host configuration (libconfig syntax; see etc/pagoflex.cfg)\n"
               "      --port-file FILE  write the bound port to FILE once listening\n"
               "  -h, --help            this text\n");
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *port_file = NULL;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"port-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
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
    return master_run(config_path, &cfg, fd, port, port_file);
}
