"""Issue 15, running it like nginx or PostgreSQL: one scrape shows the whole
process group, request ids end to end, the admin listener, access and JSON
log lines, `pagoflexd -t`, `--version`, and a daemon role with no DDL rights."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Env, http, psql, record_secret  # noqa: E402

PAGOFLEXD = os.path.join(BUILD, "host", "pagoflexd")


def sample_sum(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, value = line.rsplit(" ", 1)
        if all('%s="%s"' % kv in series for kv in labels.items()):
            total += float(value)
    return total


def worker_pids(master_pid):
    pids = []
    for task in os.listdir("/proc/%d/task" % master_pid):
        with open("/proc/%d/task/%s/children" % (master_pid, task)) as f:
            pids += [int(p) for p in f.read().split()]
    return pids


class OneScrapeAllWorkers(unittest.TestCase):
    """/metrics counts what every worker served, and keeps it when one dies."""

    def test_one_scrape_after_n_payments_counts_n_and_survives_a_worker_restart(self):
        env = Env(sim_args=["--no-webhooks"], workers=2, extra_config="access_log = true;\n")
        try:
            n = 40
            for _ in range(n):
                r = env.pay(amount=1050)
                self.assertEqual(r.status, 201, r)
            # the payments really were spread over both workers (access lines by pid)
            pids = set(re.findall(r"\[(\d+)\] access method=POST route=payment_create", env.log()))
            self.assertEqual(len(pids), 2, "the %d payments all went to one worker" % n)
            for _ in range(3):  # any worker's answer is the whole group's
                text = env.metrics()
                self.assertEqual(sample_sum(text, "pagoflex_http_requests_total", route="payment_create",
                                            code="201"), n)
                self.assertEqual(sample_sum(text, "pagoflex_payment_outcomes_total", connector="BANCO_X",
                                            state="pending"), n)
                self.assertNotIn('worker="', text)
            victim = worker_pids(env.host.pid)[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.time() + 10
            while time.time() < deadline and sample_sum(env.metrics(), "pagoflex_worker_restarts_total") < 1:
                time.sleep(0.1)
            text = env.metrics()
            self.assertEqual(sample_sum(text, "pagoflex_worker_restarts_total"), 1)
            self.assertEqual(sample_sum(text, "pagoflex_http_requests_total", route="payment_create",
                                        code="201"), n, "a dead worker's counts were lost")
            self.assertEqual(sample_sum(text, "pagoflex_payments_in_flight"), 0)
        finally:
            env.close()


class AdminListener(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(workers=1)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_merchant_port_serves_no_metrics_nor_connectors(self):
        for path in ("/metrics", "/v1/connectors"):
            r = http("GET", self.env.url + path)
            self.assertEqual(r.status, 404, r)
            self.assertIn("admin listener", r.json["error"]["message"])
            self.assertEqual(http("GET", self.env.admin_url + path).status, 200)

    def test_admin_port_serves_nothing_of_the_merchant_api(self):
        r = http("POST", self.env.admin_url + "/v1/payments",
                 {"amount": 1050, "currency": "ARS", "connector": "BANCO_X"}, self.env.auth())
        self.assertEqual(r.status, 404, r)

    def test_probes_on_both_listeners(self):
        for base in (self.env.url, self.env.admin_url):
            live = http("GET", base + "/livez")
            self.assertEqual((live.status, live.json["status"]), (200, "alive"))
            ready = http("GET", base + "/readyz")
            self.assertEqual(ready.status, 200, ready)
            self.assertEqual((ready.json["database"], ready.json["schema"]), ("ok", "ok"))
            self.assertEqual(http("GET", base + "/healthz").status, 200)

    def test_every_route_is_named_in_the_metrics(self):
        env = self.env
        created = env.pay(amount=1050, reference="ref-" + uuid.uuid4().hex)
        self.assertEqual(created.status, 201, created)
        env.get(created.json["id"])
        env.events(created.json["id"])
        http("GET", env.url + "/v1/payments?reference=" + created.json["reference"], headers=env.auth())
        http("GET", env.url + "/livez")
        http("GET", env.url + "/readyz")
        text = env.metrics()
        for route in ("payment_create", "payment_get", "payment_events", "payment_list", "livez", "readyz"):
            self.assertGreaterEqual(sample_sum(text, "pagoflex_http_requests_total", route=route), 1, route)


class AccessLogOff(unittest.TestCase):
    """By default the hot path writes no info line per request (issue 16): no
    access line, no per-webhook line; access_log = true brings the access
    lines back (RequestIds, JsonLogs)."""

    def test_no_line_per_request_by_default(self):
        env = Env(workers=1, sim_args=["--no-webhooks"])
        try:
            rid = "quiet-" + uuid.uuid4().hex
            r = http("POST", env.url + "/v1/payments", {"amount": 1050, "currency": "ARS", "connector": "BANCO_X"},
                     env.auth({"X-Request-Id": rid}))
            self.assertEqual(r.status, 201, r)
            pid = r.json["id"]
            w = env.webhook({"event_id": "evt_quiet_" + uuid.uuid4().hex[:8], "ref": pid, "status": "APPROVED"})
            self.assertEqual(w.status, 200, w)
            self.assertEqual(w.json["result"], "applied", w)
            self.assertEqual(env.get(pid).json["status"], "succeeded")
            time.sleep(1)  # the access line would be written as each request completes
            log = env.log()
            self.assertNotIn(" access ", log)
            self.assertNotIn("webhook applied", log)
            self.assertNotIn(rid, log)
            text = env.metrics()  # the requests are still counted
            self.assertEqual(sample_sum(text, "pagoflex_http_requests_total", route="payment_create", code="201"), 1)
        finally:
            env.close()


class RequestIds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(workers=1, extra_config="access_log = true;\n")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_request_id_in_the_answer_the_log_and_the_banks_headers(self):
        env = self.env
        rid = "it-" + uuid.uuid4().hex
        trace = "0af7651916cd43dd8448eb211c80319c"
        tp = "00-%s-b7ad6b7169203331-01" % trace
        r = http("POST", env.url + "/v1/payments", {"amount": 1050, "currency": "ARS", "connector": "BANCO_X"},
                 env.auth({"X-Request-Id": rid, "traceparent": tp}))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.headers.get("X-Request-Id"), rid)
        pid = r.json["id"]
        bank = env.sim_refs(pid)
        self.assertEqual(bank["last_request_id"], rid)
        # the same trace, our own span as the parent
        self.assertRegex(bank["last_traceparent"], r"^00-%s-[0-9a-f]{16}-01$" % trace)
        self.assertNotEqual(bank["last_traceparent"], tp)
        deadline = time.time() + 5
        while time.time() < deadline and "route=payment_create status=201" not in env.log():
            time.sleep(0.05)
        lines = [line for line in env.log().splitlines() if "request_id=" + rid in line]
        access = [line for line in lines if " access " in line]
        self.assertEqual(len(access), 1, lines)
        self.assertRegex(access[0], r"access method=POST route=payment_create status=201 duration_ms=[0-9.]+ "
                                    r"key=config merchant=mer_default completed=true request_id=" + rid + "$")
        self.assertNotIn(env.api_key, env.log())

    def test_every_error_body_names_the_request(self):
        env = self.env
        rid = "err-" + uuid.uuid4().hex
        r = http("POST", env.url + "/v1/payments", {"amount": 1050, "currency": "ARS", "connector": "NOPE"},
                 env.auth({"X-Request-Id": rid}))
        self.assertEqual(r.status, 422)
        self.assertEqual((r.headers.get("X-Request-Id"), r.json["error"]["request_id"]), (rid, rid))
        r = http("GET", env.url + "/nope")
        self.assertEqual(r.status, 404)
        self.assertRegex(r.json["error"]["request_id"], r"^[0-9a-f]{32}$")
        self.assertEqual(r.headers.get("X-Request-Id"), r.json["error"]["request_id"])
        r = http("GET", env.url + "/v1/payments/pay_x")  # no key: 401, still named
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json["error"]["request_id"], r.headers.get("X-Request-Id"))

    def test_an_unsafe_incoming_id_is_replaced(self):
        env = self.env
        for bad in ('has"quote', "x" * 129, "back\\slash", "sp ace"):
            r = http("GET", env.url + "/livez", headers={"X-Request-Id": bad})
            self.assertEqual(r.status, 200)
            self.assertRegex(r.headers.get("X-Request-Id"), r"^[0-9a-f]{32}$", bad)
        self.assertNotIn('has"quote', env.log())


class JsonLogs(unittest.TestCase):
    def test_log_format_json_writes_one_object_per_line(self):
        env = Env(workers=1, extra_config='log_format = "json";\naccess_log = true;\n')
        try:
            rid = "json-" + uuid.uuid4().hex
            r = http("GET", env.url + "/v1/payments/pay_nope", headers=env.auth({"X-Request-Id": rid}))
            self.assertEqual(r.status, 404)
            deadline = time.time() + 5
            while time.time() < deadline and rid not in env.log():
                time.sleep(0.05)
            records = [json.loads(line) for line in env.log().splitlines() if line.strip()]
            self.assertTrue(all({"ts", "level", "pid", "msg"} <= set(rec) for rec in records))
            (access,) = [rec for rec in records if rec.get("request_id") == rid and rec["msg"] == "access"]
            self.assertEqual((access["method"], access["route"], access["status"], access["key"],
                              access["merchant"]), ("GET", "payment_get", 404, "config", "mer_default"))
            self.assertIsInstance(float(access["duration_ms"]), float)
        finally:
            env.close()


class ConfigTest(unittest.TestCase):
    """pagoflexd -t: 0 on a good config, 1 naming what is wrong on each kind of bad one."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env(start_host=False)
        cls.env.add_plugin("echo_pay", {"ECHOPAY_SECRET": record_secret("s_" + uuid.uuid4().hex)})

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def t(self, config):
        return subprocess.run([PAGOFLEXD, "-t", "-c", config], capture_output=True, text=True, timeout=30)

    def variant(self, name, text):
        path = os.path.join(self.env.dir, name)
        with open(self.env.config) as f:
            base = f.read()
        with open(path, "w") as f:
            f.write(base + text)
        return path

    def test_good_config(self):
        r = self.t(self.env.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("test is successful", r.stderr)
        self.assertRegex(r.stderr, r"plugin .*banco_x\.so loads: BANCO_X")
        self.assertIn("credentials %s/banco_x.cfg.enc decrypt" % self.env.cred_dir, r.stderr)

    def test_each_kind_of_bad_config(self):
        env = self.env
        cases = {
            "syntax": ("threads = ;\n", "syntax error"),
            "unknown setting": ("thraeds = 4;\n", 'unknown setting "thraeds"; did you mean "threads"?'),
            "out of range": ("workers = 0;\n", "setting 'workers' is 0"),
            "unsafe timing": ("bank_timeout_ms = 60000;\n", "reconcile_lease_ms"),
            "missing master key": ('master_key_file = "%s/none.key";\n' % env.dir, "master key"),
            "bad admin address": ('admin_listen = "nowhere";\n', "admin_listen"),
        }
        for i, (kind, (extra, want)) in enumerate(cases.items()):
            # a setting given twice: libconfig refuses duplicates, so replace it
            path = self.variant("bad-%d.cfg" % i, "")
            with open(path) as f:
                lines = [ln for ln in f.read().splitlines() if ln.split("=")[0].strip() != extra.split("=")[0].strip()]
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n" + extra)
            r = self.t(path)
            self.assertEqual(r.returncode, 1, "%s: %s" % (kind, r.stderr))
            self.assertIn(want, r.stderr, kind)
            self.assertIn("test failed", r.stderr, kind)

    def test_credentials_it_cannot_decrypt_and_plugins_it_would_refuse(self):
        env = self.env
        cred_dir = os.path.join(env.dir, "creds-bad")
        plugin_dir = os.path.join(env.dir, "plugins-bad")
        shutil.copytree(env.cred_dir, cred_dir)
        shutil.copytree(env.plugin_dir, plugin_dir)
        # another plugin's file under this name: refused (authenticated data)
        shutil.copy(os.path.join(cred_dir, "banco_x.cfg.enc"), os.path.join(cred_dir, "echo_pay.cfg.enc"))
        shutil.copy(os.path.join(BUILD, "fixtures", "bad_magic.so"), os.path.join(plugin_dir, "bad_magic.so"))
        path = self.variant("bad-files.cfg", "")
        with open(path) as f:
            text = f.read().replace(env.cred_dir, cred_dir).replace(env.plugin_dir, plugin_dir)
        with open(path, "w") as f:
            f.write(text)
        r = self.t(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"FAIL: credentials .*echo_pay\.cfg\.enc")
        self.assertRegex(r.stderr, r"FAIL: plugin .*bad_magic\.so")
        self.assertIn("banco_x.so loads", r.stderr)
        with open(env.key_file) as f:
            self.assertNotIn(f.read().strip(), r.stderr)

    def test_versions(self):
        for prog in ("pagoflexd", "pagoflex"):
            r = subprocess.run([os.path.join(BUILD, "host", prog), "--version"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0)
            self.assertRegex(r.stdout, r"^%s \d+\.\d+\.\d+ \(ABI 1\.\d+; libcurl [\d.]+, OpenSSL 3[\d.]+, "
                                       r"Jansson [\d.]+, libmicrohttpd [\d.]+, libpq \d+\.\d+, libconfig [\d.]+\)$"
                             % prog)


class SystemdNotify(unittest.TestCase):
    """The master's sd_notify messages, read from a NOTIFY_SOCKET of our own
    (no systemd needed): READY=1, RELOADING=1 then READY=1, STOPPING=1."""

    def test_ready_reloading_stopping(self):
        import socket
        env = Env(start_host=False, workers=1)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = os.path.join(env.dir, "notify.sock")
        sock.bind(path)
        sock.settimeout(15)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            env.start_host()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        try:
            def next_message():
                data, _ = sock.recvfrom(4096)
                return dict(line.split("=", 1) for line in data.decode().splitlines())
            m = next_message()
            self.assertEqual(m.get("READY"), "1", m)
            self.assertIn("generation 1 serving", m.get("STATUS", ""))
            env.host.send_signal(signal.SIGHUP)
            m = next_message()
            self.assertEqual(m.get("RELOADING"), "1", m)
            self.assertRegex(m.get("MONOTONIC_USEC", ""), r"^\d+$")
            m = next_message()
            self.assertEqual(m.get("READY"), "1", m)
            self.assertIn("generation 2 serving", m.get("STATUS", ""))
            env.host.send_signal(signal.SIGTERM)
            m = next_message()
            self.assertEqual(m.get("STOPPING"), "1", m)
            self.assertEqual(env.host.wait(20), 0)
        finally:
            sock.close()
            env.close()


class RoleWithoutDdl(unittest.TestCase):
    """`pagoflex db migrate` as the owner; the daemon as a role with DML rights only."""

    def test_daemon_runs_as_a_dml_role_and_refuses_a_schema_that_is_behind(self):
        role = "pf_app_" + uuid.uuid4().hex[:10]
        password = record_secret("pw_" + uuid.uuid4().hex)
        psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
        env = None
        try:
            env = Env(start_host=False)
            app = env.conninfo.replace("user=postgres", "user=%s" % role)
            env.extra_config = 'database = "%s";\nmigrate = false;\n' % app
            env.write_config()
            psql("GRANT CONNECT ON DATABASE %s TO %s" % (env.db, role))
            # 1. schema not there yet: the daemon refuses to start, saying what to run
            proc = env.start_host(wait=False)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.fail("pagoflexd started on a database whose schema is behind")
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("run `pagoflex db migrate", env.log())
            # 2. the owner migrates; status says so
            st = env.cli(["db", "status", "--database", env.conninfo], check=False)
            self.assertEqual(st.returncode, 1, st.stdout + st.stderr)
            self.assertIn("pending", st.stdout)
            mig = env.cli(["db", "migrate", "--database", env.conninfo], check=False)
            self.assertEqual(mig.returncode, 0, mig.stderr)
            self.assertRegex(mig.stdout, r"schema migrated from version 0 to \d+")
            st = env.cli(["db", "status", "--database", env.conninfo], check=False)
            self.assertEqual(st.returncode, 0, st.stdout + st.stderr)
            self.assertIn("up to date", st.stdout)
            env.sql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s; "
                    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %s" % (role, role))
            # the role really has no DDL right
            denied = subprocess.run(["psql", "-X", "-qAt", "-d", app, "-c", "CREATE TABLE nope (x int)"],
                                    capture_output=True, text=True)
            self.assertIn("permission denied", denied.stderr)
            # 3. the daemon as that role: payments, webhooks, the janitor's lock, metrics gauges
            env.start_host()
            created = env.pay(amount=1050)
            self.assertEqual(created.status, 201, created)
            env.wait_status(created.json["id"], {"succeeded"})
            self.assertEqual(http("GET", env.url + "/readyz").status, 200)
            self.assertIn("pagoflex_payments_requires_review 0", env.metrics())
            self.assertNotIn("permission denied", env.log())
        finally:
            if env:
                env.close()
            psql("DROP ROLE IF EXISTS %s" % role)


if __name__ == "__main__":
    unittest.main(verbosity=2)
