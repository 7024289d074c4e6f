"""What the notification tests share: the official Standard Webhooks library
(npm `standardwebhooks`, pinned, installed into the build tree on first use),
the node receiver that verifies every delivery with it
(notify_receiver.js), and helpers for merchants and their endpoints.

Used by test_notify.py and test_two_merchants_e2e.py.
"""
import hashlib
import json
import os
import secrets as pysecrets
import shutil
import subprocess
import tempfile
import time

from harness import BUILD, http, record_secret, wait_for_file

NPM_PKG = "standardwebhooks@1.0.0"
NPM_DIR = os.path.join(BUILD, "npm-standardwebhooks")
RECEIVER_JS = os.path.join(os.path.dirname(__file__), "notify_receiver.js")


def install_official_library():
    """The official library in BUILD/npm-standardwebhooks; False if npm cannot install it."""
    if os.path.isdir(os.path.join(NPM_DIR, "node_modules", "standardwebhooks")):
        return True
    if not shutil.which("npm") or not shutil.which("node"):
        return False
    tmp = NPM_DIR + ".tmp-%d" % os.getpid()
    r = subprocess.run(["timeout", "120", "npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        tmp, NPM_PKG], capture_output=True, text=True)
    if r.returncode != 0:
        print("npm could not install %s:\n%s" % (NPM_PKG, r.stderr[-500:]))
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    try:
        os.rename(tmp, NPM_DIR)
    except OSError:  # another test installed it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return True


class Receiver:
    """The node receiver: per-path secrets and modes, and what it recorded."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pagoflex-recv-")
        self.records_path = os.path.join(self.dir, "records.jsonl")
        self.config_path = os.path.join(self.dir, "config.json")
        self.conf = {}
        self._write()
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "node.log"), "ab")
        self.proc = subprocess.Popen(["node", RECEIVER_JS, port_file, self.records_path, self.config_path],
                                     env=dict(os.environ, NODE_PATH=os.path.join(NPM_DIR, "node_modules")),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = wait_for_file(port_file, self.proc)
        self.base = "http://127.0.0.1:%d" % self.port

    def _write(self):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.conf, f)
        os.rename(tmp, self.config_path)

    def set(self, path, secrets=None, mode=None):
        c = self.conf.setdefault(path, {"secrets": [], "mode": "ok"})
        if secrets is not None:
            c["secrets"] = list(secrets)
        if mode is not None:
            c["mode"] = mode
        self._write()

    def records(self, path=None):
        if not os.path.exists(self.records_path):
            return []
        with open(self.records_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [r for r in rows if path is None or r["path"] == path]

    def wait(self, pred, timeout=20, what="deliveries"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s; received: %s" % (what, json.dumps(self.records())[-3000:]))

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def add_merchant(env, merchant_id, account="default"):
    """A merchant with an API key, made the way the CLI stores one (prefix +
    SHA-256 of the whole key), using Banco X account `account`."""
    prefix = "pfk_" + "".join(pysecrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    key = record_secret(prefix + "_" + pysecrets.token_hex(32))
    env.sql("INSERT INTO merchants (id, name) VALUES ('%s', '%s')" % (merchant_id, merchant_id))
    env.sql("INSERT INTO api_keys (name, prefix, hash, merchant_id) VALUES ('t', '%s', '\\x%s', '%s')"
            % (prefix, hashlib.sha256(key.encode()).hexdigest(), merchant_id))
    # Its Banco X account (connector accounts): by default the operator's "default" one, shared.
    env.sql("INSERT INTO connector_accounts (merchant_id, connector, account) VALUES ('%s', 'BANCO_X', '%s')"
            % (merchant_id, account))
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def endpoints(env, auth, body=None, path="", method=None):
    return http(method or ("POST" if body is not None else "GET"), env.url + "/v1/webhook_endpoints" + path, body,
                auth)


def verified_by_all(rec):
    return bool(rec["verified"]) and all(rec["verified"])
