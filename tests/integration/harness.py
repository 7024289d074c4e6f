"""Integration harness: real pagoflexd, real PostgreSQL, the bank simulator.

Every test environment gets its own database on the cluster named by
$PAGOFLEX_PG (scripts/test starts it), its own master key, credentials and
plugin directory in a temporary folder, and processes on free loopback ports.
Everything is stopped and dropped in close().
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid


BUILD = os.environ.get("PAGOFLEX_BUILD_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
PG = os.environ.get("PAGOFLEX_PG")

# Every secret a test creates is recorded here; tests/security/scan_secrets.py
# then checks that none of them appears in any log the suite wrote.
SECRETS_FILE = os.path.join(BUILD, "test-secrets.txt")
# Host and simulator logs are kept here after an environment is closed.
LOG_DIR = os.path.join(BUILD, "test-logs")


def record_secret(value):
    """Remember a secret value so the final scan can look for it in the logs."""
    if value:
        with open(SECRETS_FILE, "a") as f:
            f.write(value.strip() + "\n")
    return value


BANCOX_API_KEY = record_secret("sk_test_" + uuid.uuid4().hex)
BANCOX_SECRET = record_secret("whsec_" + uuid.uuid4().hex)


_GIVEN_PORTS = set()


def port_bindable(port):
    """Could a server listen on 127.0.0.1:port now (SO_REUSEADDR, as pagoflexd)?"""
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A free loopback port for a server a test starts, outside the kernel's
    ephemeral range (32768-60999 here). A port picked from that range can be
    taken by any outgoing connection (libcurl, libpq, another test's client)
    between this check and the server's bind: with two listeners per host
    (API and admin) and ctest -j2 that happened. Ports given out by this
    process are not given again."""
    import random
    for _ in range(500):
        port = random.randint(20000, 31999)
        if port in _GIVEN_PORTS:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _GIVEN_PORTS.add(port)
        return port
    raise RuntimeError("no free port in 20000-31999")


def stable_port():
    """A free port outside the kernel's ephemeral range: no other test's
    client can take it while a host that owns it is being restarted."""
    return free_port()


def psql(sql, dbname="postgres"):
    """Run SQL on the test cluster; return stdout stripped."""
    conn = PG.replace("dbname=postgres", "dbname=" + dbname)
    out = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", conn, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wait_for_file(path, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        if proc.poll() is not None:
            raise RuntimeError("process exited with %s before it was ready" % proc.returncode)
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + path)


class Response:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "Response(%d, %r)" % (self.status, self.raw[:300])


# The merchant listeners of the hosts the tests started: every exchange with
# one is checked against the API reference (openapi_check.py).
_HOST_URLS = set()
VIOLATIONS_FILE = os.path.join(BUILD, "openapi-violations.txt")


def register_host_url(url):
    """Check every exchange with the host at `url` (scheme://host:port)."""
    _HOST_URLS.add(url.rstrip("/"))


def check_exchange(method, url, body, headers, status, raw, resp_headers):
    """Hold one exchange to host/http/openapi.yaml when `url` is a host's
    merchant listener; raise openapi_check.Violation (and record it in
    VIOLATIONS_FILE) when the document does not allow it. For tests that
    talk HTTP without http()."""
    base = "/".join(url.split("/", 3)[:3])
    if base not in _HOST_URLS or status is None:
        return
    from openapi_check import Violation, contract
    try:
        contract().check(method, url, body, headers, status, raw, resp_headers)
    except Violation as e:
        with open(VIOLATIONS_FILE, "a") as f:
            f.write("%s\n" % e)
        raise


def http(method, url, body=None, headers=None, timeout=30):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            resp = Response(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        resp = Response(e.code, e.read(), dict(e.headers))
    check_exchange(method, url, data, dict(req.header_items()), resp.status, resp.raw, resp.headers)
    return resp


def sign_bancox(body, secret=BANCOX_SECRET, t=None):
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


class Env:
    """A private Pagoflex: database, key, credentials, simulator, host."""

    def __init__(self, sim_args=(), plugins=("banco_x",), start_host=True, extra_config="", workers=2,
                 bancox=None, extra_hosts=0, port=None, sim_env=None):
        """bancox: credentials merged over the banco_x defaults (e.g. BANCOX_BASE_URL);
        sim_env: more environment for the simulator (e.g. BANCOX_ACCOUNTS, its secrets);
        extra_hosts: that many more pagoflexd on the same database (start_extra_hosts()),
        and the simulator fans every webhook out to all of them."""
        if not PG:
            raise RuntimeError("PAGOFLEX_PG is not set: run the integration tests through scripts/test")
        self.dir = tempfile.mkdtemp(prefix="pagoflex-it-")
        os.chmod(self.dir, 0o755)
        self.db = "pf_it_" + uuid.uuid4().hex[:12]
        psql("CREATE DATABASE %s" % self.db)
        self.conninfo = PG.replace("dbname=postgres", "dbname=" + self.db)
        self.procs = []
        self.sim = None
        self.host = None
        self.api_key = record_secret("pk_test_" + uuid.uuid4().hex)
        self.workers = workers
        self.generation = 1
        self.plugin_dir = os.path.join(self.dir, "plugins")
        self.cred_dir = os.path.join(self.dir, "credentials")
        os.makedirs(self.plugin_dir)
        os.makedirs(self.cred_dir)
        self.key_file = os.path.join(self.dir, "master.key")
        self.cli(["secrets", "keygen", "--out", self.key_file])
        with open(self.key_file) as f:
            record_secret(f.read())
        self.bancox = dict(bancox or {})
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        register_host_url(self.url)
        # /metrics and /v1/connectors live on the admin listener.
        self.admin_port = free_port()
        self.admin_url = "http://127.0.0.1:%d" % self.admin_port
        self.extra_ports = [free_port() for _ in range(extra_hosts)]
        for p in self.extra_ports:
            register_host_url("http://127.0.0.1:%d" % p)
        self.extra_admin_ports = [free_port() for _ in range(extra_hosts)]
        self.extra = []
        self.sim_env = dict(sim_env or {})
        if extra_hosts:
            urls = ["http://127.0.0.1:%d" % p for p in [self.port] + self.extra_ports]
            sim_args = list(sim_args) + ["--webhook-fanout", ",".join(urls)]
        self.start_sim(sim_args)
        for name in plugins:
            self.add_plugin(name)
        self.extra_config = extra_config
        self.write_config()
        if start_host:
            try:
                self.start_host()
            except Exception:
                self.close()  # a host that cannot start must not leave the simulator running
                raise

    # ---- pieces -------------------------------------------------------
    def cli(self, args, input=None, check=True):
        env = dict(os.environ, PAGOFLEX_MASTER_KEY_FILE=getattr(self, "key_file", ""))
        return subprocess.run([os.path.join(BUILD, "host", "pagoflex")] + args, input=input,
                              capture_output=True, text=True, check=check, env=env)

    def start_sim(self, args=()):
        port_file = os.path.join(self.dir, "sim.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.sim_log = open(os.path.join(self.dir, "banksim.log"), "ab")
        # The secrets go through the environment: a command line is public (ps).
        self.sim = subprocess.Popen(
            [os.path.join(BUILD, "tests", "banksim", "banksim"), "--port", "0", "--port-file", port_file,
             "--webhook-delay-ms", "50"] + list(args),
            env=dict(os.environ, BANCOX_API_KEY=BANCOX_API_KEY, BANCOX_SECRET=BANCOX_SECRET,
                     **getattr(self, "sim_env", {})),
            stdout=self.sim_log, stderr=subprocess.STDOUT)
        self.procs.append(self.sim)
        self.sim_port = wait_for_file(port_file, self.sim)
        self.sim_url = "http://127.0.0.1:%d" % self.sim_port

    def add_plugin(self, name, creds=None):
        """Copy a built plugin into the plugin dir and encrypt its credentials."""
        src = os.path.join(BUILD, "plugins", name + ".so")
        if not os.path.exists(src):
            src = os.path.join(BUILD, "fixtures", name + ".so")
        shutil.copy(src, os.path.join(self.plugin_dir, name + ".so"))
        if creds is None and name == "banco_x":
            creds = {"BANCOX_API_KEY": BANCOX_API_KEY, "BANCOX_SECRET": BANCOX_SECRET,
                     "BANCOX_BASE_URL": self.sim_url, "BANCOX_TIMEOUT_MS": "5000"}
            creds.update(self.bancox)
        if creds:
            text = "".join('%s = "%s";\n' % kv for kv in creds.items())
            self.cli(["secrets", "encrypt", "--plugin", name, "--key-file", self.key_file,
                      "--out", os.path.join(self.cred_dir, name + ".cfg.enc")], input=text)

    def add_account(self, account, key, secret, plugin="banco_x"):
        """Write (or replace) the credentials of connector account `account` of `plugin`
        (<credentials_dir>/<plugin>/<account>.cfg.enc): Banco X's key and webhook secret, on
        the simulator. Takes effect at the next reload (or start)."""
        creds = {"BANCOX_API_KEY": key, "BANCOX_SECRET": secret, "BANCOX_BASE_URL": self.sim_url,
                 "BANCOX_TIMEOUT_MS": "5000"}
        text = "".join('%s = "%s";\n' % kv for kv in creds.items())
        os.makedirs(os.path.join(self.cred_dir, plugin), exist_ok=True)
        self.cli(["secrets", "encrypt", "--plugin", plugin, "--account", account, "--key-file", self.key_file,
                  "--out", os.path.join(self.cred_dir, plugin, account + ".cfg.enc")], input=text)

    def create_merchant(self, name, account="default", connector="BANCO_X"):
        """`pagoflex merchant create NAME --json`, then bind the merchant to connector account
        `account` (`merchant account add`). Returns (merchant id, its first API key)."""
        out = self.cli(["merchant", "create", name, "--json", "-c", self.config])
        doc = json.loads(out.stdout)
        key = record_secret(doc["api_key"])
        assert key not in out.stderr
        self.cli(["merchant", "account", "add", doc["merchant"]["id"], "--connector", connector, "--account",
                  account, "-c", self.config])
        return doc["merchant"]["id"], key

    def write_config(self, port=None, name="pagoflex.cfg", admin_port=None):
        digest = hashlib.sha256(self.api_key.encode()).hexdigest()
        path = os.path.join(self.dir, name)
        if port is None:
            self.config = path
        text = ('listen = "127.0.0.1";\nport = %d;\n' % (port or self.port)
                + 'admin_listen = "127.0.0.1";\nadmin_port = %d;\n' % (admin_port or self.admin_port)
                + 'plugin_dir = "%s";\ncredentials_dir = "%s";\n' % (self.plugin_dir, self.cred_dir)
                + 'master_key_file = "%s";\nprivate_dir = "%s";\n'
                % (self.key_file, os.path.join(self.dir, "cache"))
                + 'database = "%s";\napi_key_sha256 = ["%s"];\n' % (self.conninfo, digest)
                + 'threads = 8;\ndb_pool_size = 4;\nlog_level = "info";\n'
                + 'workers = %d;\ndrain_timeout_ms = 5000;\npid_file = "%s";\n'
                % (self.workers, os.path.join(self.dir, name.replace(".cfg", ".pid"))))
        # A setting in extra_config replaces the default of the same name.
        overridden = {line.split("=", 1)[0].strip() for line in self.extra_config.splitlines() if "=" in line}
        kept = [line for line in text.splitlines() if line.split("=", 1)[0].strip() not in overridden]
        with open(path, "w") as f:
            f.write("\n".join(kept) + "\n" + self.extra_config)
        return path

    def start_extra_hosts(self):
        """Start the extra_hosts pagoflexd processes; returns their base URLs."""
        urls = []
        for i, port in enumerate(self.extra_ports):
            cfg = self.write_config(port=port, name="pagoflex-%d.cfg" % (i + 2),
                                    admin_port=self.extra_admin_ports[i])
            port_file = os.path.join(self.dir, "host-%d.port" % (i + 2))
            log = open(os.path.join(self.dir, "pagoflexd-%d.log" % (i + 2)), "ab")
            self.extra_logs = getattr(self, "extra_logs", []) + [log]
            proc = subprocess.Popen([os.path.join(BUILD, "host", "pagoflexd"), "-c", cfg,
                                     "--port-file", port_file], stdout=log, stderr=subprocess.STDOUT)
            self.procs.append(proc)
            self.extra.append(proc)
            wait_for_file(port_file, proc)
            urls.append("http://127.0.0.1:%d" % port)
        return urls

    def start_host(self, wait=True):
        port_file = os.path.join(self.dir, "host.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.host_log_path = os.path.join(self.dir, "pagoflexd.log")
        if getattr(self, "host_log", None):
            self.host_log.close()
        self.host_log = open(self.host_log_path, "ab")
        self.host = subprocess.Popen([os.path.join(BUILD, "host", "pagoflexd"), "-c", self.config,
                                      "--port-file", port_file],
                                     stdout=self.host_log, stderr=subprocess.STDOUT)
        self.procs.append(self.host)
        if wait:
            wait_for_file(port_file, self.host)
        return self.host

    def kill_host_hard(self):
        """SIGKILL the host's master and its workers at once: a machine crash."""
        pid = self.host.pid
        children = []
        for task in os.listdir("/proc/%d/task" % pid):  # any thread may have forked a worker
            try:
                with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                    children += [int(c) for c in f.read().split()]
            except OSError:
                pass
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.host.send_signal(signal.SIGKILL)
        self.host.wait()
        # The workers hold the listening socket until they are gone.
        deadline = time.time() + 10
        for child in children:
            while time.time() < deadline:
                try:
                    with open("/proc/%d/stat" % child) as f:
                        if f.read().split(")")[-1].split()[0] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.02)
        # A worker's leader thread turns zombie before its other threads are
        # gone (one in a write, say), and they share its descriptors: the
        # listening sockets are free only once the last one exits.
        for port in (self.port, self.admin_port):
            while time.time() < deadline and not port_bindable(port):
                time.sleep(0.02)
        return len(children)

    def stop_host(self, sig=signal.SIGTERM, timeout=20):
        if self.host and self.host.poll() is None:
            self.host.send_signal(sig)
            try:
                self.host.wait(timeout)
            except subprocess.TimeoutExpired:
                self.host.kill()
                self.host.wait()
        return self.host.returncode if self.host else None

    def reload(self, timeout=30):
        """SIGHUP the master; return once the next generation serves."""
        self.generation += 1
        want = "generation %d serving" % self.generation
        self.host.send_signal(signal.SIGHUP)
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = self.log()
            if want in log:
                self._wait_old_generation_quiet(log, deadline)
                return self.generation
            if self.host.poll() is not None:
                raise RuntimeError("pagoflexd exited during a reload")
            time.sleep(0.05)
        raise AssertionError("reload to generation %d did not finish: %s" % (self.generation, self.log()[-2000:]))

    def _wait_old_generation_quiet(self, log, deadline):
        """Once the new generation serves, the old one's workers stop accepting
        as soon as each takes its SIGTERM: until then a new connection may
        still reach one of them (and its connectors). Wait for every worker
        of the draining generation to say it no longer accepts."""
        m = re.search(r"generation %d serving \(\d+ workers\); generation (\d+) draining" % self.generation, log)
        if not m:
            return
        old = int(m.group(1))
        while time.time() < deadline:
            log = self.log()
            ready = set(re.findall(r"\[(\d+)\] worker ready: generation=%d " % old, log))
            quiet = set(re.findall(r"\[(\d+)\] worker draining: generation=%d " % old, log))
            gone = set(re.findall(r"worker pid (\d+) \(generation %d\)" % old, log))  # exited or died
            if ready <= quiet | gone:
                return
            time.sleep(0.02)
        raise AssertionError("generation %d still accepts connections after the reload" % old)

    def connectors(self):
        return {c["key"]: c for c in http("GET", self.admin_url + "/v1/connectors").json["connectors"]}

    def metrics(self):
        """GET /metrics on the admin listener: the Prometheus text."""
        r = http("GET", self.admin_url + "/metrics")
        assert r.status == 200, r
        return r.raw.decode()

    def log(self):
        with open(self.host_log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # ---- API --------------------------------------------------------
    def auth(self, extra=None, api_key=None):
        h = {"Authorization": "Bearer " + (api_key or self.api_key), "Content-Type": "application/json"}
        h.update(extra or {})
        return h

    def pay(self, amount=1050, currency="ARS", connector="BANCO_X", **fields):
        body = dict(amount=amount, currency=currency, connector=connector, **fields)
        return http("POST", self.url + "/v1/payments", body, self.auth())

    def pay_idem(self, key, amount=1050, currency="ARS", connector="BANCO_X", timeout=30, **fields):
        body = dict(amount=amount, currency=currency, connector=connector, **fields)
        return http("POST", self.url + "/v1/payments", body, self.auth({"Idempotency-Key": key}),
                    timeout=timeout)

    def events(self, pid):
        return http("GET", self.url + "/v1/payments/%s/events" % pid, headers=self.auth())

    def sim_refs(self, ref):
        """The bank-side payments the simulator holds for Pagoflex payment `ref`."""
        return http("GET", self.sim_url + "/_sim/payments?ref=" + ref).json

    def sim_config(self, **values):
        return http("POST", self.sim_url + "/_sim/config", values, {"Content-Type": "application/json"})

    def get(self, pid, api_key=None):
        """GET /v1/payments/<pid> with the default merchant's key, or `api_key`."""
        return http("GET", self.url + "/v1/payments/" + pid, headers=self.auth(api_key=api_key))

    def wait_status(self, pid, want, timeout=10, api_key=None):
        deadline = time.time() + timeout
        r = None
        while time.time() < deadline:
            r = self.get(pid, api_key)
            if r.status == 200 and r.json["status"] in want:
                return r
            time.sleep(0.05)
        raise AssertionError("payment %s did not reach %s: last %r" % (pid, want, r))

    def webhook(self, body, signature=None, path="bancox"):
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        sig = sign_bancox(raw) if signature is None else signature
        headers = {"Content-Type": "application/json"}
        if sig is not False:
            headers["X-BancoX-Signature"] = sig
        return http("POST", self.url + "/webhooks/" + path, raw, headers)

    def sim_stats(self):
        return http("GET", self.sim_url + "/_sim/stats").json

    def sql(self, query):
        return psql(query, self.db)

    def close(self):
        for f in [getattr(self, "sim_log", None), getattr(self, "host_log", None)] + getattr(self, "extra_logs", []):
            if f:
                f.close()
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for attempt in range(20):
            try:
                psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.5)
        keep = os.path.join(LOG_DIR, os.path.basename(self.dir))
        os.makedirs(keep, exist_ok=True)
        for name in os.listdir(self.dir):
            if name.endswith(".log"):
                shutil.copy(os.path.join(self.dir, name), keep)
        if os.environ.get("PAGOFLEX_KEEP_TEST_DIRS"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
