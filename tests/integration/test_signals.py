"""Signals: what each catchable signal does to the master and its workers.

SIGUSR1 (what every logrotate recipe sends) reopens the log file and kills
nothing; SIGQUIT stops gracefully like SIGTERM; stray signals (SIGUSR2,
SIGALRM, SIGTTIN, ...) are ignored; with `log_file`, rename + SIGUSR1 makes
the master and every worker write to the new file."""
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402


def workers_of(master_pid):
    """The live child processes of the master (its workers)."""
    pids = []
    for task in os.listdir("/proc/%d/task" % master_pid):
        try:
            with open("/proc/%d/task/%s/children" % (master_pid, task)) as f:
                pids += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return sorted(pids)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


class Signals(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(workers=2)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def assert_all_serving(self, master, workers):
        self.assertIsNone(self.env.host.poll(), "the master died: " + self.env.log()[-1500:])
        for pid in workers:
            self.assertTrue(alive(pid), "worker %d died: %s" % (pid, self.env.log()[-1500:]))
        self.assertEqual(workers_of(master), workers, "a worker was replaced")
        for _ in range(4):
            r = self.env.pay(amount=1000)
            self.assertEqual(r.status, 201, r)
        self.assertEqual(http("GET", self.env.url + "/healthz").status, 200)

    def test_sigusr1_to_master_and_worker_kills_nothing(self):
        master = self.env.host.pid
        workers = workers_of(master)
        self.assertEqual(len(workers), 2)
        os.kill(master, signal.SIGUSR1)
        time.sleep(0.5)
        self.assert_all_serving(master, workers)
        os.kill(workers[0], signal.SIGUSR1)
        time.sleep(0.5)
        self.assert_all_serving(master, workers)

    def test_stray_signals_are_ignored(self):
        master = self.env.host.pid
        workers = workers_of(master)
        stray = [signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO,
                 signal.SIGTTIN, signal.SIGTTOU, signal.SIGXFSZ, signal.SIGWINCH, signal.SIGURG]
        for sig in stray:
            os.kill(master, sig)
            os.kill(workers[-1], sig)
        time.sleep(0.5)
        self.assert_all_serving(master, workers)
        self.assertIn("SIGUSR2 ignored", self.env.log())


class Stop(unittest.TestCase):
    def test_sigquit_stops_gracefully(self):
        env = Env(workers=1)
        try:
            env.host.send_signal(signal.SIGQUIT)
            env.host.wait(20)
            self.assertEqual(env.host.returncode, 0, env.log()[-1500:])
            self.assertIn("stopping gracefully", env.log())
            self.assertIn("drained and exited", env.log())
        finally:
            env.close()


class LogFile(unittest.TestCase):
    def test_rename_and_sigusr1_reopen_in_master_and_every_worker(self):
        env = Env(workers=2, extra_config='log_file = "pagoflexd-file.log";\n')
        try:
            path = os.path.join(env.dir, "pagoflexd-file.log")
            master = env.host.pid
            workers = workers_of(master)
            self.assertEqual(len(workers), 2)
            wait_for(lambda: all("[%d] worker ready" % w in read(path) for w in workers), 10,
                     "both workers' ready lines in the log file: " + read(path)[-800:])
            self.assertIn("[%d] pagoflexd ready" % master, read(path))

            os.rename(path, path + ".1")
            os.kill(master, signal.SIGUSR1)
            # Every process says it reopened, in the new file.
            wait_for(lambda: all("[%d] log file reopened" % p in read(path) for p in [master] + workers),
                     10, "reopen lines of the master and both workers: " + read(path)[-800:])
            old_size = os.path.getsize(path + ".1")
            # What they log from now on lands in the new file, not the rotated one.
            self.assertEqual(env.pay(amount=1000).status, 201)
            env.host.send_signal(signal.SIGHUP)
            wait_for(lambda: "generation 2 serving" in read(path), 20, "the reload in the new file")
            self.assertEqual(os.path.getsize(path + ".1"), old_size)
            self.assertTrue(alive(master))
        finally:
            env.close()

    def test_reopen_failure_keeps_the_old_file(self):
        env = Env(workers=1, extra_config='log_file = "logs/pagoflexd.log";\n',
                  start_host=False)
        try:
            logs = os.path.join(env.dir, "logs")
            os.makedirs(logs)
            env.start_host()
            path = os.path.join(logs, "pagoflexd.log")
            wait_for(lambda: "worker ready" in read(path), 10, "the log file")
            # The folder is gone: the reopen fails, and the processes keep
            # writing to the file they have (now renamed), saying why.
            os.rename(logs, logs + ".old")
            os.kill(env.host.pid, signal.SIGUSR1)
            moved = os.path.join(logs + ".old", "pagoflexd.log")
            wait_for(lambda: re.search(r"cannot reopen log file .*pagoflexd.log", read(moved)), 10,
                     "the reopen error in the old file: " + read(moved)[-800:])
            self.assertIsNone(env.host.poll())
            self.assertEqual(env.pay(amount=1000).status, 201)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
