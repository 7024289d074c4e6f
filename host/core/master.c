/* master.c - the master process: owns the socket, supervises workers.
 *
 * Model: nginx. The master reads the config, holds the listening socket,
 * writes the pid file and forks `workers` worker processes; it never loads
 * or calls plugin code, and stays single-threaded so fork() is safe.
 *
 *   SIGHUP          reload: re-read the config, start a new generation of
 *                   workers (which load the plugin directory as it is now);
 *                   once all are ready, the old generation drains and exits.
 *                   A reload during a reload is queued (merged into one).
 *                   A generation that fails to start leaves the old serving.
 *   SIGCHLD         a worker died: log how, blame the plugins it was running
 *                   (crash board), quarantine a plugin blamed `quarantine_after`
 *                   times, and start a replacement at once.
 *   SIGTERM/SIGINT/ graceful stop: every worker drains; a second signal
 *   SIGQUIT         kills them at once. (nginx stops fast on SIGTERM and
 *                   gracefully on SIGQUIT; here all three drain, since a
 *                   payment host never wants to cut requests short.)
 *   SIGUSR1         reopen the log file (logrotate) and have every worker
 *                   do the same; without `log_file` nothing to do.
 *   SIGUSR2         ignored, with a log line (nginx's binary upgrade; here
 *                   a new binary means a restart).
 *   SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGTTIN, SIGTTOU, SIGXFSZ
 *                   ignored (master_ignore_stray), and so in the workers it
 *                   forks: nothing here uses them, and their default action
 *                   (stop or terminate) must not take a payment host down.
 *                   SIGXFSZ ignored: a log write over the file size limit
 *                   fails instead of killing the process.
 *   Everything else keeps its default on purpose: SIGWINCH, SIGURG, SIGCONT
 *   are ignored by default; SIGTSTP stops (the operator asked for it);
 *   SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS and SIGXCPU
 *   end the process with a core, which for a worker is how a plugin crash
 *   is seen and blamed; SIGKILL and SIGSTOP cannot be caught.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crashboard.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "worker.h"

#define MASTER_MAX_QUARANTINE 64

_Static_assert(METRICS_WORKER_SLOTS == CRASHBOARD_SLOTS, "metrics track one gauge per worker slot");

typedef struct master_worker {
    pid_t pid; /* 0: free */
    unsigned generation;
    int ready_fd; /* read end of its ready pipe, -1 once read */
    bool ready;
    bool stopping;
    long long deadline_ms; /* when stopping: SIGKILL after this */
} master_worker;

typedef struct master_blame {
    char name[CRASHBOARD_NAME];
    int crashes;
} master_blame;

typedef struct master {
    const char *config_path;
    config cfg;
    int listen_fd;
    int admin_fd; /* -1: no admin listener */
    const char *port_file;
    int port;
    int sigfd;
    crashboard *board;
    master_worker workers[CRASHBOARD_SLOTS];
    unsigned serving_gen;  /* 0 until the first generation is ready */
    unsigned starting_gen; /* 0 when no generation is starting */
    unsigned last_gen;
    long long starting_deadline_ms;
    bool reload_queued;
    int stop_signals; /* 0 running; 1 draining; 2 killing */
    long long respawn_not_before_ms;
    master_blame blames[MASTER_MAX_QUARANTINE];
    size_t blame_count;
    char *quarantine[MASTER_MAX_QUARANTINE + 1]; /* NULL-terminated names */
    size_t quarantine_count;
} master;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int master_write_file(const char *path, long value)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", value);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* ---- workers ------------------------------------------------------------ */

static size_t master_count(const master *m, unsigned generation, bool ready_only)
{
    size_t n = 0;
    for (int i = 0; i < CRASHBOARD_SLOTS; i++) {
        const master_worker *w = &m->workers[i];
        if (w->pid && w->generation == generation && !w->stopping && (!ready_only || w->ready))
            n++;
    }
    return n;
}

static size_t master_live(const master *m)
{
    size_t n = 0;
    for (int i = 0; i < CRASHBOARD_SLOTS; i++)
        n += m->workers[i].pid != 0;
    return n;
}

/* Fork one worker of `generation`. 0 on success. */
static int master_spawn(master *m, unsigned generation)
{
    int slot = -1, fds[2];
    for (int i = 0; i < CRASHBOARD_SLOTS && slot < 0; i++)
        if (!m->workers[i].pid)
            slot = i;
    if (slot < 0) {
        log_error("cannot start a worker: all %d worker slots are in use (too many draining)",
                  CRASHBOARD_SLOTS);
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        log_error("cannot start a worker: pipe: %s", strerror(errno));
        return -1;
    }
    crashboard_reset(m->board, slot);
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot start a worker: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        close(m->sigfd);
        worker_params p = {.cfg = &m->cfg, .listen_fd = m->listen_fd, .admin_fd = m->admin_fd,
                           .generation = generation,
                           .slot = slot, .board = m->board, .ready_fd = fds[1],
                           .master_pid = master_pid,
                           .quarantine = (const char *const *)m->quarantine};
        exit(worker_main(&p));
    }
    close(fds[1]);
    m->workers[slot] = (master_worker){.pid = pid, .generation = generation, .ready_fd = fds[0]};
    return 0;
}

static void master_signal_generation(master *m, unsigned generation, int sig, long long deadline)
{
    for (int i = 0; i < CRASHBOARD_SLOTS; i++) {
        master_worker *w = &m->workers[i];
        if (w->pid && w->generation == generation) {
            kill(w->pid, sig);
            if (sig == SIGTERM && !w->stopping) {
                w->stopping = true;
                w->deadline_ms = deadline;
            }
        }
    }
}

static void master_stop_all(master *m, int sig)
{
    long long deadline = now_ms() + m->cfg.drain_timeout_ms + 2000;
    for (int i = 0; i < CRASHBOARD_SLOTS; i++) {
        master_worker *w = &m->workers[i];
        if (!w->pid)
            continue;
        kill(w->pid, sig);
        if (!w->stopping) {
            w->stopping = true;
            w->deadline_ms = deadline;
        }
    }
}

/* ---- crashes and quarantine ------------------------------------------------ */

static bool master_quarantined(const master *m, const char *name)
{
    for (size_t i = 0; i < m->quarantine_count; i++)
        if (strcmp(m->quarantine[i], name) == 0)
            return true;
    return false;
}

static void master_blame_plugin(master *m, const char *name)
{
    master_blame *b = NULL;
    for (size_t i = 0; i < m->blame_count && !b; i++)
        if (strcmp(m->blames[i].name, name) == 0)
            b = &m->blames[i];
    if (!b && m->blame_count < MASTER_MAX_QUARANTINE) {
        b = &m->blames[m->blame_count++];
        snprintf(b->name, sizeof b->name, "%s", name);
        b->crashes = 0;
    }
    if (!b)
        return;
    b->crashes++;
    log_error("worker crash blamed on plugin %s (crash %d; quarantined at %d)", name, b->crashes,
              m->cfg.quarantine_after);
    if (b->crashes >= m->cfg.quarantine_after && !master_quarantined(m, name) &&
        m->quarantine_count < MASTER_MAX_QUARANTINE) {
        m->quarantine[m->quarantine_count] = strdup(name);
        if (m->quarantine[m->quarantine_count]) {
            m->quarantine_count++;
            log_error("plugin %s quarantined after %d worker crashes: new workers do not load it "
                      "until the next reload (SIGHUP)",
                      name, b->crashes);
        }
    }
}

static void master_quarantine_clear(master *m)
{
    for (size_t i = 0; i < m->quarantine_count; i++)
        free(m->quarantine[i]);
    memset(m->quarantine, 0, sizeof m->quarantine);
    m->quarantine_count = 0;
    m->blame_count = 0;
}

static void master_describe(int status, char *out, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(out, cap, "stopped (status 0x%x)", (unsigned)status);
}

static void master_reap(master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int slot = -1;
        for (int i = 0; i < CRASHBOARD_SLOTS && slot < 0; i++)
            if (m->workers[i].pid == pid)
                slot = i;
        if (slot < 0)
            continue;
        master_worker *w = &m->workers[slot];
        metrics_worker_gone(slot); /* its payments are no longer in flight */
        char how[128];
        master_describe(status, how, sizeof how);
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (w->stopping && clean) {
            log_info("worker pid %d (generation %u) drained and exited", (int)pid, w->generation);
        } else if (w->stopping) {
            log_warn("worker pid %d (generation %u) %s while stopping", (int)pid, w->generation, how);
        } else {
            log_error("worker pid %d (generation %u) %s; starting a replacement", (int)pid, w->generation,
                      how);
            metrics_worker_restart();
            if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
                char names[CRASHBOARD_PLUGINS][CRASHBOARD_NAME];
                size_t n = crashboard_blame(m->board, slot, names, CRASHBOARD_PLUGINS);
                for (size_t i = 0; i < n; i++)
                    master_blame_plugin(m, names[i]);
            }
            if (!w->ready)
                m->respawn_not_before_ms = now_ms() + 1000; /* failed at start: don't spin */
        }
        if (w->generation == m->starting_gen && !w->ready && !w->stopping) {
            log_error("reload failed: a worker of generation %u %s before it was ready; generation %u "
                      "keeps serving",
                      w->generation, how, m->serving_gen);
            master_signal_generation(m, m->starting_gen, SIGKILL, 0);
            m->starting_gen = 0;
            if (m->serving_gen)
                notify_ready("reload failed; generation %u serving", m->serving_gen);
        }
        if (w->ready_fd >= 0)
            close(w->ready_fd);
        memset(w, 0, sizeof *w);
        w->ready_fd = -1;
    }
}

/* ---- generations ------------------------------------------------------------ */

static void master_start_generation(master *m)
{
    m->starting_gen = ++m->last_gen;
    m->starting_deadline_ms = now_ms() + m->cfg.ready_timeout_ms;
    log_info("starting generation %u (%d workers)", m->starting_gen, m->cfg.workers);
    for (int i = 0; i < m->cfg.workers; i++)
        if (master_spawn(m, m->starting_gen) != 0)
            break;
}

/* After a reload: a new `log_file` takes effect here and in the new
 * generation (which inherits it); the old one drains into the old file. */
static void master_log_file_changed(master *m)
{
    const char *now = log_file_path();
    if ((!now && !m->cfg.log_file) || (now && m->cfg.log_file && strcmp(now, m->cfg.log_file) == 0))
        return;
    char err[1024];
    if (log_open_file(m->cfg.log_file, err, sizeof err) != 0)
        log_error("reload: %s; logging on to %s", err, now ? now : "stderr");
    else
        log_info("reload: logging to %s", m->cfg.log_file ? m->cfg.log_file : "stderr");
}

static void master_reload(master *m)
{
    if (m->stop_signals)
        return;
    if (m->starting_gen) {
        m->reload_queued = true;
        log_info("reload requested while generation %u is starting: queued", m->starting_gen);
        return;
    }
    config fresh;
    char err[1024];
    notify_reloading();
    if (config_load(m->config_path, &fresh, err, sizeof err) != 0) {
        log_error("reload refused: %s; generation %u keeps serving", err, m->serving_gen);
        notify_ready("reload refused (see the log); generation %u serving", m->serving_gen);
        return;
    }
    if (strcmp(fresh.listen_address, m->cfg.listen_address) != 0 || fresh.port != m->cfg.port)
        log_warn("reload: listen address and port are not reloadable; restart pagoflexd to change "
                 "them (keeping %s:%d)",
                 m->cfg.listen_address, m->port);
    if (strcmp(fresh.admin_listen, m->cfg.admin_listen) != 0 || fresh.admin_port != m->cfg.admin_port)
        log_warn("reload: admin_listen and admin_port are not reloadable; restart pagoflexd to "
                 "change them (keeping %s:%d)",
                 m->cfg.admin_listen, m->cfg.admin_port);
    free(fresh.listen_address);
    fresh.listen_address = strdup(m->cfg.listen_address);
    fresh.port = m->cfg.port;
    free(fresh.admin_listen);
    fresh.admin_listen = strdup(m->cfg.admin_listen);
    fresh.admin_port = m->cfg.admin_port;
    config_free(&m->cfg);
    m->cfg = fresh;
    log_set_level((pagoflex_log_level)log_level_parse(m->cfg.log_level));
    log_set_json(strcmp(m->cfg.log_format, "json") == 0);
    master_log_file_changed(m);
    master_quarantine_clear(m);
    metrics_reload();
    master_start_generation(m);
}

static void master_promote(master *m)
{
    unsigned old = m->serving_gen;
    m->serving_gen = m->starting_gen;
    m->starting_gen = 0;
    if (old) {
        master_signal_generation(m, old, SIGTERM, now_ms() + m->cfg.drain_timeout_ms + 2000);
        log_info("generation %u serving (%d workers); generation %u draining", m->serving_gen,
                 m->cfg.workers, old);
        notify_ready("generation %u serving on %s:%d", m->serving_gen, m->cfg.listen_address, m->port);
    } else {
        log_info("pagoflexd ready on http://%s:%d: generation %u, %d workers, master pid %d",
                 m->cfg.listen_address, m->port, m->serving_gen, m->cfg.workers, (int)getpid());
        if (m->port_file && master_write_file(m->port_file, m->port) != 0)
            log_error("cannot write port file %s: %s", m->port_file, strerror(errno));
        notify_ready("generation %u serving on %s:%d (%d workers)", m->serving_gen,
                     m->cfg.listen_address, m->port, m->cfg.workers);
    }
    if (m->reload_queued) {
        m->reload_queued = false;
        master_reload(m);
    }
}

/* Per tick: readiness, deadlines, replacements. */
static void master_tick(master *m)
{
    long long now = now_ms();
    for (int i = 0; i < CRASHBOARD_SLOTS; i++) {
        master_worker *w = &m->workers[i];
        if (w->pid && w->stopping && w->deadline_ms && now > w->deadline_ms) {
            log_warn("worker pid %d (generation %u) missed its drain deadline: killing it", (int)w->pid,
                     w->generation);
            kill(w->pid, SIGKILL);
            w->deadline_ms = 0;
        }
    }
    if (m->stop_signals)
        return;
    if (m->starting_gen) {
        if (master_count(m, m->starting_gen, true) >= (size_t)m->cfg.workers) {
            master_promote(m);
        } else if (now > m->starting_deadline_ms) {
            log_error("reload failed: generation %u was not ready within %d ms; generation %u keeps "
                      "serving",
                      m->starting_gen, m->cfg.ready_timeout_ms, m->serving_gen);
            master_signal_generation(m, m->starting_gen, SIGKILL, 0);
            m->starting_gen = 0;
            if (m->serving_gen)
                notify_ready("reload failed; generation %u serving", m->serving_gen);
        } else {
            /* A starting worker that died is replaced like any other. */
            size_t have = master_count(m, m->starting_gen, false);
            for (size_t i = have; i < (size_t)m->cfg.workers && now >= m->respawn_not_before_ms; i++)
                master_spawn(m, m->starting_gen);
        }
    }
    if (m->serving_gen && now >= m->respawn_not_before_ms) {
        size_t have = master_count(m, m->serving_gen, false);
        for (size_t i = have; i < (size_t)m->cfg.workers; i++)
            master_spawn(m, m->serving_gen);
    }
}

static void master_read_ready(master *m, int slot)
{
    master_worker *w = &m->workers[slot];
    char byte;
    ssize_t n = read(w->ready_fd, &byte, 1);
    if (n == 1)
        w->ready = true;
    close(w->ready_fd);
    w->ready_fd = -1;
}

/* SIGUSR1: reopen the log file here, then in every worker (each holds its
 * own descriptor of the file). */
static void master_reopen_log(master *m)
{
    if (log_reopen() == 1) {
        log_info("SIGUSR1: no log_file set, logging to stderr: nothing to reopen");
        return;
    }
    for (int i = 0; i < CRASHBOARD_SLOTS; i++)
        if (m->workers[i].pid)
            kill(m->workers[i].pid, SIGUSR1);
}

/* Signals nothing here uses, whose default action would stop or end the
 * process (see the table at the top). Inherited by the workers. */
static void master_ignore_stray(void)
{
    static const int stray[] = {SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF, SIGIO,
                                SIGTTIN, SIGTTOU, SIGXFSZ};
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof stray / sizeof stray[0]; i++)
        sigaction(stray[i], &sa, NULL);
}

static bool master_handle_signals(master *m)
{
    struct signalfd_siginfo si;
    while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            master_reap(m);
            break;
        case SIGHUP:
            log_info("SIGHUP: reloading");
            master_reload(m);
            break;
        case SIGUSR1:
            master_reopen_log(m);
            break;
        case SIGUSR2:
            log_info("SIGUSR2 ignored: pagoflexd has no binary upgrade; to run a new binary, "
                     "restart it (SIGTERM drains the workers)");
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            m->stop_signals++;
            if (m->stop_signals == 1) {
                notify_stopping();
                log_info("signal %u: stopping gracefully (workers finish their requests; send it again "
                         "to stop at once)",
                         si.ssi_signo);
                master_stop_all(m, SIGTERM);
            } else {
                log_warn("signal %u again: stopping at once", si.ssi_signo);
                master_stop_all(m, SIGKILL);
            }
            break;
        default:
            break;
        }
    }
    return m->stop_signals > 0 && master_live(m) == 0;
}

int master_run(const char *config_path, config *cfg, int listen_fd, int port, int admin_fd,
               const char *port_file)
{
    master *m = calloc(1, sizeof *m);
    int rc = 1;
    if (!m) {
        log_error("out of memory");
        return 1;
    }
    m->config_path = config_path;
    m->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg); /* the master owns it now */
    m->listen_fd = listen_fd;
    m->admin_fd = admin_fd;
    m->port = port;
    m->port_file = port_file;
    for (int i = 0; i < CRASHBOARD_SLOTS; i++)
        m->workers[i].ready_fd = -1;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGCHLD);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    master_ignore_stray();
    m->sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    m->board = crashboard_create();
    if (m->sigfd < 0 || !m->board || metrics_share() != 0) {
        log_error("cannot set up the master (signalfd/mmap): %s", strerror(errno));
        goto out;
    }
    if (m->cfg.pid_file && master_write_file(m->cfg.pid_file, (long)getpid()) != 0) {
        log_error("cannot write pid file %s: %s; set pid_file to a writable path", m->cfg.pid_file,
                  strerror(errno));
        goto out;
    }
    master_start_generation(m);

    for (;;) {
        struct pollfd fds[1 + CRASHBOARD_SLOTS];
        int slots[1 + CRASHBOARD_SLOTS];
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = m->sigfd, .events = POLLIN};
        for (int i = 0; i < CRASHBOARD_SLOTS; i++) {
            if (m->workers[i].pid && m->workers[i].ready_fd >= 0) {
                slots[n] = i;
                fds[n++] = (struct pollfd){.fd = m->workers[i].ready_fd, .events = POLLIN};
            }
        }
        int ready = poll(fds, n, 100);
        if (ready < 0 && errno != EINTR) {
            log_error("master poll: %s", strerror(errno));
            break;
        }
        for (nfds_t i = 1; ready > 0 && i < n; i++)
            if (fds[i].revents)
                master_read_ready(m, slots[i]);
        if (master_handle_signals(m)) {
            rc = 0;
            break;
        }
        if (!m->serving_gen && !m->starting_gen && !m->stop_signals) {
            log_error("pagoflexd could not start its workers; see the lines above");
            master_stop_all(m, SIGKILL);
            break;
        }
        master_tick(m);
    }
out:
    if (m->cfg.pid_file)
        unlink(m->cfg.pid_file);
    log_info("pagoflexd stopped");
    master_quarantine_clear(m);
    config_free(&m->cfg);
    if (m->sigfd >= 0)
        close(m->sigfd);
    free(m);
    return rc;
}
