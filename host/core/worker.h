/* worker.h - one worker process: loads the plugins, serves HTTP, drains. */
#ifndef PAGOFLEX_WORKER_H
#define PAGOFLEX_WORKER_H

#include <sys/types.h>

#include "config.h"
#include "crashboard.h"

typedef struct worker_params {
    const config *cfg;
    int listen_fd;              /* shared listening socket */
    int admin_fd;               /* shared admin listener socket, or -1 */
    unsigned generation;        /* reload generation this worker belongs to */
    int slot;                   /* its slot on the crash board */
    crashboard *board;
    int ready_fd;               /* write end of the ready pipe, or -1 */
    pid_t master_pid;
    const char *const *quarantine; /* plugin names not to load, or NULL */
} worker_params;

/* Run a worker in the calling (freshly forked) process until SIGTERM or
 * SIGINT, then drain and stop. Returns the process exit status. */
int worker_main(const worker_params *p);

#endif
