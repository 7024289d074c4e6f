"""What the PSP connectors' host tests share (tests/psp/test_<name>.py
HostFlows): a pagoflexd with one out-of-tree plugin and its encrypted
credentials, its base URL given as a connector_settings entry, and a
FaultProxy between the host and the PSP simulator that can answer 503 or
hang after forwarding (the PSP did it; the host cannot know).
"""
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

FAST = """
bank_timeout_ms = 1500;
reconcile_interval_ms = 100;
retry_base_ms = 200;
retry_max_ms = 800;
webhook_grace_s = 1;
recover_after_ms = 2000;
reconcile_lease_ms = 4000;
idempotency_wait_ms = 3000;
idempotency_stale_ms = 3000;
"""


class FaultProxy:
    """Forwards every request to `target`. fail(n, mode) makes the next n
    requests whose path contains `match` go wrong: "503" answers 503 without
    forwarding; "after" forwards, then answers 503 (the PSP has it);
    "hang" forwards, then answers nothing until the caller gives up."""

    def __init__(self, target):
        self.target = target.rstrip("/")
        self.lock = threading.Lock()
        self.left, self.mode, self.match = 0, None, ""
        self.seen = []  # (method, path, what happened)
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def relay(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    fault = None
                    if outer.left > 0 and outer.match in self.path:
                        outer.left -= 1
                        fault = outer.mode
                    outer.seen.append((self.command, self.path, fault or "pass"))
                if fault == "503":
                    return self.answer(503, b'{"error":"unavailable"}', "application/json")
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                req = urllib.request.Request(outer.target + self.path, data=raw if raw else None,
                                             method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        status, body, ctype = r.status, r.read(), r.headers.get("Content-Type")
                except urllib.error.HTTPError as e:
                    status, body, ctype = e.code, e.read(), e.headers.get("Content-Type")
                if fault == "after":
                    return self.answer(503, b"<html>upstream unavailable</html>", "text/html")
                if fault == "hang":
                    time.sleep(4)
                    return
                self.answer(status, body, ctype or "application/json")

            def answer(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = relay

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def fail(self, n, mode, match=""):
        with self.lock:
            self.left, self.mode, self.match = n, mode, match

    def faults(self):
        with self.lock:
            return [s for s in self.seen if s[2] != "pass"]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class HostEnv:
    """harness.Env with plugin `name` (build/psp/<name>.so), `creds`
    encrypted for it, and start(settings): connector_settings for it, then
    pagoflexd. webhook_url is known before the host starts."""

    def __init__(self, name, so_path, creds, extra_config=""):
        self.name = name
        names = {line.split("=", 1)[0].strip() for line in extra_config.splitlines() if "=" in line}
        self.extra = "".join(line + "\n" for line in FAST.splitlines()
                             if line.split("=", 1)[0].strip() not in names) + extra_config
        self.env = harness.Env(plugins=(), start_host=False, extra_config=self.extra)
        shutil.copy(so_path, os.path.join(self.env.plugin_dir, name + ".so"))
        self.env.cli(["secrets", "encrypt", "--plugin", name, "--key-file", self.env.key_file,
                      "--out", os.path.join(self.env.cred_dir, name + ".cfg.enc")],
                     input="".join('%s = "%s";\n' % kv for kv in creds.items()))
        self.url = self.env.url
        self.webhook_url = self.env.url + "/webhooks/" + name

    def start(self, settings):
        group = "".join(' %s = "%s";' % kv for kv in settings.items())
        self.env.extra_config = self.extra + "connector_settings = { %s = {%s }; };\n" % (self.name, group)
        self.env.write_config()
        self.env.start_host()

    def post(self, path, body=None, key=None):
        h = self.env.auth({"Idempotency-Key": key} if key else None)
        return harness.http("POST", self.env.url + path, body if body is not None else {}, h)

    def refund(self, rid):
        return harness.http("GET", self.env.url + "/v1/refunds/" + rid, headers=self.env.auth())

    def wait_refund(self, rid, want, timeout=15):
        deadline = time.time() + timeout
        while True:
            f = self.refund(rid)
            if f.json.get("status") in want or time.time() > deadline:
                return f.json
            time.sleep(0.05)

    def wait(self, pred, timeout=10):
        deadline = time.time() + timeout
        while True:
            v = pred()
            if v or time.time() > deadline:
                return v
            time.sleep(0.05)

    def history(self, pid):
        """[(to, source)] of the payment's transitions."""
        return [(e["to"], e["source"]) for e in self.env.events(pid).json["events"]]

    def concurrent_refunds(self, pid, amount, n):
        out = []
        threads = [threading.Thread(target=lambda: out.append(
            self.post("/v1/refunds", {"payment_id": pid, "amount": amount}))) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    def close(self):
        self.env.close()
