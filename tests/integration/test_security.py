"""Issue 6: API keys, plugin trust, master key rotation, hostile input.

Real pagoflexd, real PostgreSQL, the bank simulator, HTTP on loopback.
"""
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import BANCOX_API_KEY, BANCOX_SECRET, Env, http, record_secret  # noqa: E402


def wait_exit(proc, timeout=15):
    try:
        return proc.wait(timeout)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.wait()
        raise AssertionError("pagoflexd did not exit")


def connectors(env):
    return sorted(c["key"] for c in http("GET", env.admin_url + "/v1/connectors").json["connectors"])


def set_config(env, old, new):
    with open(env.config) as f:
        text = f.read()
    assert old in text, old
    with open(env.config, "w") as f:
        f.write(text.replace(old, new))


class ApiKeys(unittest.TestCase):
    def test_created_key_works_and_revoked_key_is_refused_at_once(self):
        env = Env()
        try:
            out = env.cli(["apikey", "create", "--name", "integration", "-c", env.config])
            key = record_secret(out.stdout.strip())
            self.assertRegex(key, r"^pfk_[a-z0-9]{12}_[0-9a-f]{64}$")
            self.assertNotIn(key, out.stderr)
            prefix = key[:16]
            headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
            body = {"amount": 1050, "currency": "ARS", "connector": "BANCO_X"}
            r = http("POST", env.url + "/v1/payments", body, headers)
            self.assertEqual(r.status, 201, r)

            listing = env.cli(["apikey", "list", "-c", env.config]).stdout
            self.assertIn(prefix, listing)
            self.assertIn("integration", listing)
            self.assertNotIn(key, listing)
            digest = env.sql("SELECT encode(hash, 'hex') FROM api_keys WHERE prefix = '%s'" % prefix)
            self.assertEqual(len(digest), 64)
            self.assertNotIn(digest, listing)
            self.assertEqual(env.sql("SELECT count(*) FROM api_keys k WHERE k::text LIKE '%%%s%%'"
                                     % key[17:]), "0")

            env.cli(["apikey", "revoke", "-c", env.config, prefix])
            refused = http("POST", env.url + "/v1/payments", body, headers)
            self.assertEqual(refused.status, 401, refused)
            row = [line for line in env.cli(["apikey", "list", "-c", env.config]).stdout.splitlines()
                   if prefix in line]
            self.assertEqual(len(row), 1)
            self.assertFalse(row[0].rstrip().endswith(" -"), row)
            self.assertNotEqual(env.sql("SELECT revoked_at FROM api_keys WHERE prefix = '%s'" % prefix), "")

            # The 401 never says which part was wrong: revoked, unknown, malformed, absent.
            wrong_secret = key[:17] + ("0" * 64 if key[17] != "0" else "1" * 64)
            answers = set()
            for h in ({"Authorization": "Bearer " + key}, {"Authorization": "Bearer " + wrong_secret},
                      {"Authorization": "Bearer pfk_unknownunkno_" + "a" * 64},
                      {"Authorization": "Bearer nonsense"}, {}):
                h["Content-Type"] = "application/json"
                resp = http("POST", env.url + "/v1/payments", body, h)
                self.assertEqual(resp.status, 401)
                # each answer names its own request; nothing else may differ
                err = dict(resp.json["error"])
                self.assertEqual(err.pop("request_id"), resp.headers.get("X-Request-Id"))
                answers.add(json.dumps(err, sort_keys=True))
            self.assertEqual(len(answers), 1, answers)
            self.assertEqual(http("GET", env.url + "/v1/payments/x",
                                  headers={"Authorization": "Bearer " + key}).status, 401)
            # The bootstrap key of the config still works.
            self.assertEqual(env.pay().status, 201)
            unknown = env.cli(["apikey", "revoke", "-c", env.config, "999999"], check=False)
            self.assertEqual(unknown.returncode, 1)
        finally:
            env.close()


class PluginTrust(unittest.TestCase):
    def test_world_writable_plugin_directory_is_refused(self):
        env = Env(start_host=False)
        try:
            os.chmod(env.plugin_dir, 0o777)
            proc = env.start_host(wait=False)
            self.assertNotEqual(wait_exit(proc), 0)
            log = env.log()
            self.assertIn("chmod go-w " + env.plugin_dir, log)
        finally:
            env.close()

    def test_group_writable_plugin_file_is_refused(self):
        env = Env(start_host=False)
        try:
            so = os.path.join(env.plugin_dir, "banco_x.so")
            os.chmod(so, 0o775)
            env.start_host()
            self.assertEqual(connectors(env), [])
            self.assertIn("file=%s field=permissions" % so, env.log())
            self.assertIn("chmod go-w " + so, env.log())
        finally:
            env.close()

    def test_signatures_when_required(self):
        env = Env(start_host=False)
        try:
            signer = os.path.join(env.dir, "signer")
            other = os.path.join(env.dir, "other")
            env.cli(["plugin", "keygen", "--out", signer])
            env.cli(["plugin", "keygen", "--out", other])
            for k in (signer, other):
                with open(k + ".key") as f:
                    record_secret(f.read().split("-----")[2])
            env.extra_config = ('require_signed_plugins = true;\ntrusted_keys = ["%s.pub"];\n' % signer)
            env.write_config()
            so = os.path.join(env.plugin_dir, "banco_x.so")

            def restart():
                env.stop_host()
                env.start_host()
                return connectors(env)

            # No signature at all.
            self.assertEqual(restart(), [])
            self.assertIn("file=%s field=signature" % so, env.log())
            self.assertIn("no .sig", env.log())
            # Signed by a key the host does not trust.
            env.cli(["plugin", "sign", "--key", other + ".key", so])
            self.assertEqual(restart(), [])
            self.assertIn("untrusted key", env.log())
            # Signed by the trusted key, then changed: the signature no longer matches.
            env.cli(["plugin", "sign", "--key", signer + ".key", so])
            with open(so, "ab") as f:
                f.write(b"\0")
            self.assertEqual(restart(), [])
            self.assertIn("bad signature", env.log())
            # Signed as it is: it loads and serves.
            env.cli(["plugin", "sign", "--key", signer + ".key", so])
            self.assertEqual(restart(), ["BANCO_X"])
            self.assertEqual(env.pay().status, 201)
        finally:
            env.close()

    def test_last_good_version_needs_a_currently_trusted_signature(self):
        env = Env(start_host=False)
        try:
            signer = os.path.join(env.dir, "signer")
            other = os.path.join(env.dir, "other")
            for k in (signer, other):
                env.cli(["plugin", "keygen", "--out", k])
                with open(k + ".key") as f:
                    record_secret(f.read().split("-----")[2])

            def trust(key):
                env.extra_config = 'require_signed_plugins = true;\ntrusted_keys = ["%s.pub"];\n' % key
                env.write_config()

            so = os.path.join(env.plugin_dir, "banco_x.so")
            env.cli(["plugin", "sign", "--key", signer + ".key", so])
            trust(signer)
            env.start_host()
            self.assertEqual(connectors(env), ["BANCO_X"])
            # A replacement that no longer matches its signature: the signed
            # last good version keeps serving.
            with open(so, "ab") as f:
                f.write(b"\0")
            env.reload()
            self.assertEqual(connectors(env), ["BANCO_X"])
            self.assertIn("bad signature", env.connectors()["BANCO_X"]["last_error"])
            self.assertEqual(env.pay().status, 201)
            env.stop_host()
            # The signer is no longer trusted: after a restart neither the file
            # nor its recorded last good version loads, and the log says why.
            trust(other)
            env.start_host()
            self.assertEqual(connectors(env), [])
            log = env.log()
            self.assertIn("last good version refused", log)
            self.assertRegex(log, r"last good version refused: [^\n]*untrusted key")
            (rej,) = http("GET", env.admin_url + "/v1/connectors").json["rejected"]
            self.assertIn("last good version refused", rej["error"])
        finally:
            env.close()


class SimulatorSecrets(unittest.TestCase):
    def test_harness_keeps_the_bank_secrets_off_the_simulator_command_line(self):
        # /proc/<pid>/cmdline is readable by every local user (ps shows it).
        env = Env()
        try:
            with open("/proc/%d/cmdline" % env.sim.pid, "rb") as f:
                cmdline = f.read()
            self.assertNotIn(BANCOX_API_KEY.encode(), cmdline)
            self.assertNotIn(BANCOX_SECRET.encode(), cmdline)
            # ...and the simulator still has both: it accepts the payment
            # (key) and its signed webhook verifies (secret).
            pid = env.pay().json["id"]
            env.wait_status(pid, ["succeeded"])
        finally:
            env.close()


class MasterKeyRotation(unittest.TestCase):
    def test_previous_key_reads_old_files_and_rotate_moves_them(self):
        env = Env(start_host=False)
        try:
            old_key = env.key_file
            new_key = os.path.join(env.dir, "master-new.key")
            env.cli(["secrets", "keygen", "--out", new_key])
            with open(new_key) as f:
                record_secret(f.read())
            # During the rotation: new key configured, old one as previous.
            env.key_file = new_key
            env.extra_config = 'previous_master_key_file = "%s";\n' % old_key
            env.write_config()
            env.start_host()
            self.assertEqual(connectors(env), ["BANCO_X"])
            env.stop_host()

            env.cli(["secrets", "rotate", "--old-key-file", old_key, "--new-key-file", new_key,
                     env.cred_dir])
            env.extra_config = ""
            env.write_config()
            env.start_host()
            self.assertEqual(connectors(env), ["BANCO_X"])
            self.assertEqual(env.pay().status, 201)
            env.stop_host()

            # After the rotation the old key alone no longer reads the file.
            env.key_file = old_key
            env.write_config()
            env.start_host()
            self.assertEqual(connectors(env), [])
            self.assertIn("encrypted under another master key", env.log())
        finally:
            env.close()


class HostileInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # log_level debug: the escaping test reads a webhook's debug line.
        cls.env = Env(start_host=False, extra_config=(
            "max_headers = 20;\nmax_header_bytes = 2048;\nmax_json_depth = 8;\n"
            "connection_timeout_s = 2;\nlog_level = \"debug\";\n"))
        set_config(cls.env, "threads = 8;", "threads = 2;")
        cls.env.start_host()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def post(self, body, extra=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http("POST", self.env.url + "/v1/payments", raw, self.env.auth(extra))

    def assert_error(self, r, status, code):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"]["code"], code, r)

    def test_too_many_headers(self):
        extra = {"X-Pad-%d" % i: "x" for i in range(25)}
        self.assert_error(self.post({"amount": 1}, extra), 431, "request_header_fields_too_large")

    def test_headers_too_large(self):
        self.assert_error(self.post({"amount": 1}, {"X-Pad": "x" * 3000}), 431,
                          "request_header_fields_too_large")

    def test_headers_far_too_large_are_refused_by_the_server(self):
        # Over libmicrohttpd's per-connection memory: it answers 431 itself
        # (its own body, not JSON) and closes the connection.
        s = socket.create_connection(("127.0.0.1", self.env.port))
        s.settimeout(5)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"x" * 40000 + b"\r\n\r\n")
        except OSError:
            pass
        answer = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        s.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:100])

    def test_json_nested_too_deep(self):
        deep = b'{"amount": 1050, "x": ' + b"[" * 9 + b"]" * 9 + b"}"
        self.assert_error(self.post(deep), 400, "invalid_json")
        # Within the limit the body is read; its member "x" is then refused
        # by name (issue 14: no unknown parameter is dropped).
        ok = b'{"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "x": ' + b"[" * 7 + b"]" * 7 + b"}"
        self.assert_error(self.post(ok), 400, "unknown_parameter")
        self.assertEqual(http("POST", self.env.url + "/webhooks/bancox", b"[" * 50000,
                              {"Content-Type": "application/json"}).status, 400)

    def test_brackets_inside_strings_do_not_count(self):
        body = {"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "reference": "[" * 100}
        self.assertEqual(self.post(body).status, 201)

    def test_body_too_large(self):
        self.assert_error(self.post(b"{" + b" " * 70000 + b"}"), 413, "payload_too_large")

    def test_string_too_long(self):
        body = {"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "reference": "r" * 129}
        self.assert_error(self.post(body), 422, "invalid_field")

    def test_slow_clients_do_not_hold_the_workers(self):
        stop = threading.Event()
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.env.port))
            s.sendall(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)

        def dribble():
            while not stop.is_set():
                for s in socks:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
                time.sleep(0.2)

        t = threading.Thread(target=dribble)
        t.start()
        try:
            time.sleep(0.5)
            for _ in range(5):
                start = time.time()
                r = http("GET", self.env.url + "/healthz", timeout=5)
                self.assertEqual(r.status, 200)
                self.assertLess(time.time() - start, 1.0)
        finally:
            stop.set()
            t.join()
            for s in socks:
                s.close()

    def test_bank_ids_with_control_characters_are_escaped_in_the_log(self):
        # Validly signed webhooks whose ids carry a newline, a carriage
        # return and terminal escapes are refused (400: an id must be
        # printable text), and nothing of them reaches the log raw: no
        # forged line, no control byte. A printable id with a literal
        # backslash is applied and logged with the backslash escaped.
        # (tests/unit/test_log.c checks the writer itself byte by byte.)
        env = self.env
        forged = "FORGED-" + uuid.uuid4().hex[:8]
        fake_line = "2026-01-01T00:00:00.000Z info  [1] webhook applied: %s" % forged
        refused = env.webhook({"event_id": "evt_a\n" + fake_line + "\x1b[31m\r",
                               "tx_id": "bx_\r\n%s-tx\x1b]0;title\x07" % forged, "status": "APPROVED"})
        self.assertEqual(refused.status, 400, refused)
        self.assertEqual(refused.json["error"]["code"], "invalid_webhook")
        pid = env.pay().json["id"]
        refused = env.webhook({"event_id": "evt_b\n%s-refused\x1b[0m" % forged, "ref": pid,
                               "status": "APPROVED"})
        self.assertEqual(refused.status, 400, refused)
        # A literal backslash: the text "\x0a" must not read like an escaped newline.
        applied = env.webhook({"event_id": "evt_c-%s-applied\\x0a" % forged, "ref": pid,
                               "status": "APPROVED"})
        self.assertEqual(applied.status, 200, applied)
        deadline = time.time() + 5
        while time.time() < deadline and (forged + "-applied").encode() not in self.raw_log():
            time.sleep(0.05)
        raw = self.raw_log()
        for byte in (b"\x1b", b"\r", b"\x07"):
            self.assertNotIn(byte, raw)
        lines = [line for line in raw.split(b"\n") if forged.encode() in line]
        self.assertGreaterEqual(len(lines), 1, lines)
        for line in lines:
            self.assertRegex(line, rb"^\d{4}-\d\d-\d\dT[0-9:.]+Z \w+ +\[\d+\] ", line)
        self.assertNotIn(b"\n2026-01-01T00:00:00.000Z", raw)
        self.assertIn(b"evt_c-" + forged.encode() + b"-applied\\x5cx0a", raw)
        self.assertEqual(env.get(pid).json["status"], "succeeded")

    def raw_log(self):
        with open(self.env.host_log_path, "rb") as f:
            return f.read()

    def test_idle_connection_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.env.port))
        s.settimeout(8)
        start = time.time()
        try:
            self.assertEqual(s.recv(1), b"")
        except ConnectionResetError:
            pass
        self.assertLess(time.time() - start, 6)
        s.close()


def raw_request(port, head, body=b"", timeout=5):
    """Send one raw HTTP/1.1 request (request line and headers as bytes,
    Connection: close added) and read the answer to EOF. Returns (status,
    headers with lower-case names, body), or None when the connection ended
    without an answer."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    data = b""
    try:
        s.sendall(head + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        s.close()
    if b"\r\n\r\n" not in data:
        return None
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
    return status, headers, rest


class HostileBytes(unittest.TestCase):
    """Issue 10 item 8: any bytes in the path, query, headers or body get a
    JSON 4xx: never an empty reply, a 500 or an SQL encoding error."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env(workers=1, start_host=False)
        cls.echo_secret = record_secret("echo_" + uuid.uuid4().hex)
        cls.env.add_plugin("echo_pay", {"ECHOPAY_SECRET": cls.echo_secret})
        cls.env.start_host()
        cls.auth = b"Authorization: Bearer " + cls.env.api_key.encode()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def ask(self, method, target, headers=(), body=b""):
        head = b"%s %s HTTP/1.1\r\nHost: x\r\n%s" % (method, target, self.auth)
        for h in headers:
            head += b"\r\n" + h
        if body:
            head += b"\r\nContent-Type: application/json"
        return raw_request(self.env.port, head, body)

    def assert_json_error(self, answer, status, code, what):
        self.assertIsNotNone(answer, "%r: the connection closed without an answer" % (what,))
        got, headers, body = answer
        self.assertEqual(got, status, "%r: %d %r" % (what, got, body[:200]))
        self.assertEqual(headers.get("content-type"), "application/json", what)
        doc = json.loads(body)
        self.assertEqual(doc["error"]["code"], code, "%r: %r" % (what, doc))
        return doc

    def assert_no_encoding_error_logged(self):
        log = self.env.log()
        self.assertNotIn("invalid byte sequence", log)
        self.assertNotIn("encoding", log)

    def test_unknown_routes_with_invalid_utf8(self):
        for target in (b"/nope%ff", b"/nope\xff", b"/%c3", b"/\xc3(", b"/x%01%0a%1b%7f", b"/%e2%82"):
            self.assert_json_error(self.ask(b"GET", target), 404, "not_found", target)

    def test_webhook_paths_with_invalid_utf8(self):
        for target in (b"/webhooks/%c3", b"/webhooks/\xff\xfe", b"/webhooks/a%0aforged%20log%20line"):
            self.assert_json_error(self.ask(b"POST", target, body=b"{}"), 404, "not_found", target)
        self.assertNotIn("\nforged log line", self.env.log())

    def test_payment_ids_that_cannot_be_ids_are_404_without_sql(self):
        for target in (b"/v1/payments/%ff", b"/v1/payments/\xff", b"/v1/payments/%c3/events",
                       b"/v1/payments/pay_%00x", b"/v1/payments/pay_%0a", b"/v1/payments/%20"):
            doc = self.assert_json_error(self.ask(b"GET", target), 404, "not_found", target)
            self.assertEqual(doc["error"]["field"], "id")
        self.assert_json_error(self.ask(b"PUT", b"/v1/payments/%ff"), 405, "method_not_allowed", "PUT")
        self.assert_no_encoding_error_logged()

    def test_an_encoded_nul_does_not_cut_the_path(self):
        pid = self.env.pay().json["id"].encode()
        self.assertEqual(self.ask(b"GET", b"/v1/payments/" + pid)[0], 200)
        for target in (b"/v1/payments/" + pid + b"%00junk", b"/healthz%00junk", b"/webhooks/echopay%00x"):
            method = b"POST" if target.startswith(b"/webhooks/") else b"GET"
            self.assert_json_error(self.ask(method, target, body=b"{}" if method == b"POST" else b""), 404,
                                   "not_found", target)

    def test_reference_query_with_invalid_utf8_is_422(self):
        for target in (b"/v1/payments?reference=%ff", b"/v1/payments?reference=a%c3",
                       b"/v1/payments?reference=%c3%28"):
            doc = self.assert_json_error(self.ask(b"GET", target), 422, "invalid_field", target)
            self.assertEqual(doc["error"]["field"], "reference")
        self.assert_no_encoding_error_logged()

    def test_long_urls_cut_inside_a_character(self):
        e = "\u00e9".encode()
        self.assert_json_error(self.ask(b"GET", b"/" + e * 200), 404, "not_found", "GET /e...")
        self.assert_json_error(self.ask(b"POST", b"/v1/payments/" + e * 300), 405, "method_not_allowed",
                               "POST /v1/payments/e...")
        self.assert_json_error(self.ask(b"POST", b"/webhooks/" + e * 100, body=b"{}"), 404, "not_found",
                               "POST /webhooks/e...")

    def test_invalid_bytes_in_headers_and_body(self):
        body = json.dumps({"amount": 1050, "currency": "ARS", "connector": "BANCO_X"}).encode()
        doc = self.assert_json_error(self.ask(b"POST", b"/v1/payments", [b"Idempotency-Key: k\xff\xfe"], body),
                                     422, "invalid_field", "Idempotency-Key")
        self.assertEqual(doc["error"]["field"], "Idempotency-Key")
        head = b"GET /v1/payments/pay_x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pk_\xff\xfe"
        self.assert_json_error(raw_request(self.env.port, head), 401, "unauthorized", "Authorization")
        for bad in (b'{"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "reference": "\xff"}',
                    b'{"amount": 1050, "currency": "ARS", "connector": "BANCO_X\xc3"}', b"\xff\xfe{"):
            self.assert_json_error(self.ask(b"POST", b"/v1/payments", body=bad), 400, "invalid_json", bad)
        signed = b'{"event": "e\xff", "payment": "pay_x", "result": "paid"}'
        self.assert_json_error(self.ask(b"POST", b"/webhooks/bancox", body=signed), 401,
                               "invalid_signature", "unsigned webhook")
        self.assert_no_encoding_error_logged()

    def test_signed_webhook_that_is_not_text_is_400(self):
        # echo_pay reads its fields by hand, so these bytes reach the host.
        for body in (b'{"event": "e-1", "payment": "pay_x", "result": "paid", "note": "\xff"}',
                     b'{"event": "e-2", "payment": "pay_x", "result": "paid", "note": "\x00"}'):
            sig = hmac.new(self.echo_secret.encode(), body, hashlib.sha256).hexdigest()
            self.assert_json_error(self.ask(b"POST", b"/webhooks/echopay", [b"X-Echo-Signature: " + sig.encode()],
                                            body), 400, "invalid_webhook", body)
        self.assert_no_encoding_error_logged()

    def test_random_bytes_anywhere_in_the_target(self):
        import random
        rng = random.Random(1010)
        prefixes = [b"/", b"/v1/payments/", b"/v1/payments/pay_", b"/webhooks/", b"/v1/payments?reference=",
                    b"/v1/connectors/", b"/healthz"]
        for n in range(300):
            target = rng.choice(prefixes)
            for _ in range(rng.randint(1, 40)):
                b = rng.randrange(256)
                if b not in b" \r\n\x00?#%" and rng.random() < 0.5:
                    target += bytes([b])  # the raw byte
                else:
                    target += b"%%%02x" % b
            method = rng.choice([b"GET", b"POST"])
            answer = self.ask(method, target, body=b"{}" if method == b"POST" else b"")
            self.assertIsNotNone(answer, "%r %r: no answer" % (method, target))
            status, headers, body = answer
            self.assertEqual(headers.get("content-type"), "application/json", (method, target, status, body))
            json.loads(body)
            listing = method == b"GET" and target.startswith(b"/v1/payments?")
            self.assertTrue(400 <= status < 500 or (listing and status == 200),
                            "%r %r: %d %r" % (method, target, status, body[:200]))
        self.assert_no_encoding_error_logged()


if __name__ == "__main__":
    unittest.main(verbosity=2)
