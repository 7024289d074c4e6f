/* master.h - the master process: owns the socket, supervises workers. */
#ifndef PAGOFLEX_MASTER_H
#define PAGOFLEX_MASTER_H

#include "config.h"

/* Supervise worker processes serving `listen_fd` (and the admin listener
 * `admin_fd`, or -1) until SIGTERM/SIGINT. Takes ownership of *cfg
 * (re-read from config_path on SIGHUP). Writes the bound `port` to
 * port_file (if not NULL) once the first generation is ready, and tells
 * systemd (notify.h) when it is ready, reloading and stopping. Returns the
 * process exit status. */
int master_run(const char *config_path, config *cfg, int listen_fd, int port, int admin_fd,
               const char *port_file);

#endif
