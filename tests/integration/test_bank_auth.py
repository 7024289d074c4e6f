"""What banks demand before a call (issue 17): OAuth2 client-credentials
tokens, mutual TLS and JWKS-signed webhooks, run by the host for a connector
that declares them (tests/fixtures/oauth_bank, bank tests/banksim/oauthsim.py)."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "banksim"))
import harness  # noqa: E402
import oauthsim  # noqa: E402

CLIENT_ID = "merchant-1"
CLIENT_SECRET = harness.record_secret("cs_" + uuid.uuid4().hex)


def _read(path):
    with open(path) as f:
        return f.read()


def _pem_secret(path):
    """Record the middle of a PEM private key as a secret (the log scan
    looks for it) and return the whole text."""
    with open(path) as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
    if lines:
        harness.record_secret(lines[0])
    return text


class OAuthBank:
    """The simulator on loopback, with its own PKI in a temporary folder."""

    def __init__(self, **opts):
        self.dir = tempfile.mkdtemp(prefix="pagoflex-oauth-")
        self.pki = oauthsim.make_pki(self.dir)
        port_file = os.path.join(self.dir, "ports")
        args = [sys.executable, os.path.join(os.path.dirname(oauthsim.__file__), "oauthsim.py"),
                "--dir", self.dir, "--port-file", port_file, "--lifetime-s", "300"]
        for k, v in opts.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.log = open(os.path.join(self.dir, "oauthsim.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, OAUTH_CLIENT_ID=CLIENT_ID,
                                              OAUTH_CLIENT_SECRET=CLIENT_SECRET))
        deadline = time.time() + 15
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("oauthsim did not start; see %s" % self.log.name)
            time.sleep(0.05)
        with open(port_file) as f:
            bank, control = f.read().split()
        self.url = "https://127.0.0.1:%s" % bank
        self.control = "http://127.0.0.1:%s" % control

    def creds(self, client="client"):
        return {"OAUTH_BASE_URL": self.url, "OAUTH_CLIENT_ID": CLIENT_ID, "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
                "OAUTH_TLS_CERT": _read(self.pki[client]),
                "OAUTH_TLS_KEY": _pem_secret(self.pki[client + "_key"]),
                "OAUTH_TLS_CA": _read(self.pki["ca"])}

    def stats(self):
        return harness.http("GET", self.control + "/stats").json

    def post(self, what, body=b"{}"):
        return harness.http("POST", self.control + "/" + what, body if isinstance(body, bytes) else
                            json.dumps(body).encode())

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def make_env(bank, client="client", start=True):
    env = harness.Env(plugins=(), start_host=False, workers=1)
    try:
        env.add_plugin("oauth_bank", creds=bank.creds(client))
        env.write_config()
        if start:
            env.start_host()
    except Exception:
        env.close()
        raise
    return env


def pay(env):
    return env.pay(currency="USD", connector="OAUTH_BANK")


class BankAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bank = OAuthBank(token_delay_ms=300)
        cls.env = make_env(cls.bank)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()
        cls.bank.close()

    def setUp(self):
        self.bank.post("config", {"token_ttl": 300, "token_min_interval_ms": 0, "token_delay_ms": 0})

    def test_1_one_fetch_serves_concurrent_payments(self):
        # Runs first (name order): the worker has no token yet. A slow token
        # endpoint with a rate limit: a second fetch would be refused (429).
        self.bank.post("config", {"token_delay_ms": 300, "token_min_interval_ms": 5000})
        before = self.bank.stats()
        results = [None] * 20

        def one(i):
            results[i] = pay(self.env)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in results:
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "succeeded", r)
        after = self.bank.stats()
        self.assertEqual(after["token_fetches"] - before["token_fetches"], 1, after)
        self.assertEqual(after["token_429"], before["token_429"], after)
        self.assertEqual(after["payments"] - before["payments"], 20, after)

    def test_expired_token_is_refreshed_once(self):
        self.bank.post("config", {"token_ttl": 2})
        self.bank.post("revoke")  # start from a token with the short lifetime
        r = pay(self.env)
        self.assertEqual(r.json["status"], "succeeded", r)
        before = self.bank.stats()
        time.sleep(2.5)  # the token expired (the host refreshes it before use)
        for _ in range(3):
            r = pay(self.env)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "succeeded", r)
        after = self.bank.stats()
        self.assertEqual(after["token_fetches"] - before["token_fetches"], 1, after)
        self.assertEqual(after["payment_401"], before["payment_401"], after)

    def test_revoked_token_one_refresh_one_retry(self):
        r = pay(self.env)
        self.assertEqual(r.json["status"], "succeeded", r)
        self.bank.post("revoke")
        before = self.bank.stats()
        r = pay(self.env)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "succeeded", r)
        after = self.bank.stats()
        self.assertEqual(after["payment_401"] - before["payment_401"], 1, after)
        self.assertEqual(after["token_fetches"] - before["token_fetches"], 1, after)
        self.assertEqual(after["payments"] - before["payments"], 1, after)

    def _webhook(self, pid, signer="sign"):
        body = json.dumps({"event_id": "evt_" + uuid.uuid4().hex, "payment_id": pid,
                           "status": "succeeded"}).encode()
        jws = self.bank.post(signer, body).json["jws"]
        return harness.http("POST", self.env.url + "/webhooks/oauthbank", body,
                            {"Content-Type": "application/json", "X-JWS-Signature": jws})

    def test_4_webhook_signed_by_rotated_key_verifies_after_one_refetch(self):
        pid = pay(self.env).json["id"]
        r = self._webhook(pid)
        self.assertEqual(r.status, 200, r)
        before = self.bank.stats()
        r = self._webhook(pid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.bank.stats()["jwks_fetches"], before["jwks_fetches"], "cached key set")
        self.bank.post("rotate")
        r = self._webhook(pid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.bank.stats()["jwks_fetches"] - before["jwks_fetches"], 1)

    def test_5_webhook_key_unknown_storm_refetches_at_most_once_a_minute(self):
        # After test_4 (name order): its refetch must not be spent by the storm.
        pid = pay(self.env).json["id"]
        self._webhook(pid)  # the key set is cached
        before = self.bank.stats()
        for _ in range(8):
            r = self._webhook(pid, signer="sign_unknown")
            self.assertEqual(r.status, 401, r)
        fetched = self.bank.stats()["jwks_fetches"] - before["jwks_fetches"]
        self.assertLessEqual(fetched, 1, "a storm of unknown key ids refetched %d times" % fetched)
        r = self._webhook(pid)  # a known key still verifies
        self.assertEqual(r.status, 200, r)


class ClientCertificateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bank = OAuthBank()

    @classmethod
    def tearDownClass(cls):
        cls.bank.close()

    def test_wrong_client_certificate_keeps_payment_unknown(self):
        env = make_env(self.bank, client="other_client")
        try:
            r = pay(env)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "processing", r)
            time.sleep(1.0)
            self.assertNotEqual(env.get(r.json["id"]).json["status"], "failed")
            stats = self.bank.stats()
            self.assertEqual(stats["token_fetches"], 0, stats)
            self.assertEqual(stats["payments"], 0, stats)
        finally:
            env.close()

    def test_checks_name_an_expired_certificate(self):
        env = make_env(self.bank, client="expired_client", start=False)
        try:
            cert_body = [line for line in _read(self.bank.pki["expired_client"]).splitlines()
                         if line and not line.startswith("-----")][1]
            out = env.cli(["secrets", "check", "--credentials-dir", env.cred_dir, "--plugin-dir",
                           env.plugin_dir, "--key-file", env.key_file], check=False)
            text = out.stdout + out.stderr
            self.assertNotEqual(out.returncode, 0, text)
            self.assertIn("OAUTH_TLS_CERT", text)
            self.assertIn("certificate expired", text)
            self.assertNotIn(cert_body, text)
            self.assertNotIn("BEGIN", text)
            out = env.cli(["plugin", "check", "--credentials", os.path.join(env.cred_dir, "oauth_bank.cfg.enc"),
                           "--key-file", env.key_file, os.path.join(env.plugin_dir, "oauth_bank.so")],
                          check=False)
            text = out.stdout + out.stderr
            self.assertNotEqual(out.returncode, 0, text)
            self.assertIn("OAUTH_TLS_CERT", text)
            self.assertIn("certificate expired", text)
            self.assertNotIn(cert_body, text)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
