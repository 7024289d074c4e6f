"""Issue 14: the API as a contract.

The document is served and is the file in the tree; the checker that holds
every exchange of the suite to it refuses what it must; parameters are
strict (unknown, wrong type, out of range, beyond 64 bits); metadata is
stored, returned, limited and never sent to the bank; lists page newest
first with cursors and filters, per merchant; 405/401/errors carry what
HTTP and the document say; Idempotency-Key compares parameters, not bytes,
and still matches a key stored as a hash of the bytes before the upgrade;
`pagoflex payment resolve` settles a payment that requires review.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse
import uuid

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import openapi_check  # noqa: E402
from harness import BUILD, Env, http, record_secret  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host", "http", "openapi.yaml")


def payment_count(env):
    return int(env.sql("SELECT count(*) FROM payments"))


class Checker(unittest.TestCase):
    """The checker itself: an exchange that breaks the document fails."""

    def setUp(self):
        self.c = openapi_check.contract()
        self.err = json.dumps({"error": {"code": "not_found", "message": "m", "field": None, "request_id": "r",
                                         "doc_url": "http://h/openapi.yaml#/components/x-error-codes/not_found"}})
        self.json = {"Content-Type": "application/json", "X-Request-Id": "r"}

    def payment(self, **extra):
        p = {"id": "pay_1", "object": "payment", "status": "succeeded", "amount": 1, "currency": "ARS",
             "connector": "BANCO_X", "provider_reference_id": None, "reference": None, "description": None,
             "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", "error": None,
             "capture_method": "automatic", "amount_capturable": 0, "amount_received": 1, "amount_refunded": 0,
             "return_url": None, "next_action": None, "pending_operation": None, "metadata": {}}
        p.update(extra)
        return json.dumps(p).encode()

    def test_a_valid_exchange_passes(self):
        self.c.check("GET", "http://h/v1/payments/pay_1", None, {}, 200, self.payment(), self.json)

    def test_an_undocumented_field_fails(self):
        with self.assertRaisesRegex(openapi_check.Violation, "surprise"):
            self.c.check("GET", "http://h/v1/payments/pay_1", None, {}, 200, self.payment(surprise=1), self.json)

    def test_an_undocumented_route_or_status_fails(self):
        with self.assertRaisesRegex(openapi_check.Violation, "undocumented route"):
            self.c.check("GET", "http://h/v1/secret", None, {}, 200, b"{}", self.json)
        self.c.check("GET", "http://h/v1/secret", None, {}, 404, self.err.encode(), self.json)
        with self.assertRaisesRegex(openapi_check.Violation, "status 418"):
            self.c.check("GET", "http://h/v1/payments/pay_1", None, {}, 418, self.err.encode(), self.json)

    def test_a_405_needs_the_documented_allow(self):
        body = self.err.replace("not_found", "method_not_allowed").encode()
        with self.assertRaisesRegex(openapi_check.Violation, "Allow"):
            self.c.check("DELETE", "http://h/v1/payments", None, {}, 405, body, self.json)
        self.c.check("DELETE", "http://h/v1/payments", None, {}, 405, body, dict(self.json, Allow="GET, POST"))

    def test_a_refused_request_must_not_be_taken(self):
        body = json.dumps({"amount": 1, "currency": "ARS", "connector": "BANCO_X", "foo": 1}).encode()
        with self.assertRaisesRegex(openapi_check.Violation, "took a request the document refuses"):
            self.c.check("POST", "http://h/v1/payments", body, {"Content-Type": "application/json"}, 201,
                         self.payment(), self.json)
        with self.assertRaisesRegex(openapi_check.Violation, "query parameter 'colour'"):
            self.c.check("GET", "http://h/v1/payments?colour=red", None, {}, 200,
                         json.dumps({"object": "list", "url": "/v1/payments", "has_more": False,
                                     "data": []}).encode(), self.json)

    def test_required_headers(self):
        body = self.err.replace("not_found", "unauthorized").encode()
        with self.assertRaisesRegex(openapi_check.Violation, "WWW-Authenticate"):
            self.c.check("GET", "http://h/v1/payments/pay_1", None, {}, 401, body, self.json)
        body = self.err.replace("not_found", "database_unavailable").encode()
        with self.assertRaisesRegex(openapi_check.Violation, "Retry-After"):
            self.c.check("GET", "http://h/v1/payments/pay_1", None, {}, 503, body, self.json)


class Contract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def url(self, path):
        return self.env.url + path

    def post(self, path, body, extra=None):
        return http("POST", self.url(path), body, self.env.auth(extra))

    def get(self, path, headers=None):
        return http("GET", self.url(path), headers=headers if headers is not None else self.env.auth())

    def assertError(self, r, status, code, field):
        self.assertEqual((r.status, r.json["error"]["code"], r.json["error"]["field"]), (status, code, field), r)

    # ---- the document -----------------------------------------------------
    def test_document_is_served_as_built(self):
        r = http("GET", self.url("/openapi.yaml"))
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("application/yaml"), r.headers)
        with open(DOC, "rb") as f:
            self.assertEqual(r.raw, f.read())
        self.assertEqual(yaml.safe_load(r.raw)["openapi"], "3.1.0")

    def test_errors_carry_request_id_and_a_doc_url_into_the_document(self):
        r = http("GET", self.url("/v1/payments/pay_nope"), headers=self.env.auth({"X-Request-Id": "req-contract-1"}))
        self.assertError(r, 404, "not_found", "id")
        self.assertEqual(r.json["error"]["request_id"], "req-contract-1")
        self.assertEqual(r.headers["X-Request-Id"], "req-contract-1")
        doc_url = r.json["error"]["doc_url"]
        self.assertTrue(doc_url.startswith(self.env.url + "/openapi.yaml#/"), doc_url)
        node = yaml.safe_load(http("GET", doc_url.split("#")[0]).raw)
        for part in urllib.parse.urlsplit(doc_url).fragment.strip("/").split("/"):
            node = node[part]
        self.assertEqual(node["status"], 404)

    # ---- HTTP details -----------------------------------------------------
    def test_405_names_the_allowed_methods(self):
        for method, path, allow in (("DELETE", "/v1/payments", "GET, POST"), ("PUT", "/v1/payments/pay_1", "GET"),
                                    ("GET", "/v1/payments/pay_1/capture", "POST"),
                                    ("PATCH", "/v1/refunds", "GET, POST")):
            r = http(method, self.url(path), headers=self.env.auth())
            self.assertEqual((r.status, r.headers.get("Allow")), (405, allow), (method, path, r))

    def test_401_asks_for_a_bearer_key(self):
        r = self.get("/v1/payments", headers={})
        self.assertError(r, 401, "unauthorized", None)
        self.assertTrue(r.headers["WWW-Authenticate"].startswith("Bearer"), r.headers)

    # ---- strict parameters ------------------------------------------------
    def test_unknown_body_fields_are_refused_and_nothing_is_stored(self):
        before = payment_count(self.env)
        r = self.env.pay(foo=1)
        self.assertError(r, 400, "unknown_parameter", "foo")
        r = self.env.pay(payment_method={"type": "card_token", "token": "tok_1", "cvc": "123"})
        self.assertError(r, 400, "unknown_parameter", "payment_method.cvc")
        self.assertEqual(payment_count(self.env), before)
        pid = self.env.pay(capture_method="manual").json["id"]
        self.assertError(self.post("/v1/payments/%s/capture" % pid, {"amount": 5}), 400, "unknown_parameter",
                         "amount")
        self.assertError(self.post("/v1/payments/%s/cancel" % pid, {"reason": "x"}), 400, "unknown_parameter",
                         "reason")
        self.assertError(self.post("/v1/refunds", {"payment_id": pid, "amount_to_refund": 5}), 400,
                         "unknown_parameter", "amount_to_refund")

    def test_wrong_types_and_ranges_name_the_parameter(self):
        for amount in ("1050", 10.5, 0, -3, 10 ** 15 + 1, True):
            self.assertError(self.env.pay(amount=amount), 422, "invalid_field", "amount")
        self.assertError(self.env.pay(reference=7), 422, "invalid_field", "reference")
        self.assertError(self.env.pay(capture_method="later"), 422, "invalid_field", "capture_method")

    def test_a_20_digit_amount_is_the_amount_error(self):
        before = payment_count(self.env)
        for digits in ("12345678901234567890", "-99999999999999999999", "1" + "0" * 40):
            body = ('{"amount": %s, "currency": "ARS", "connector": "BANCO_X"}' % digits).encode()
            r = http("POST", self.url("/v1/payments"), body, self.env.auth())
            self.assertError(r, 422, "invalid_field", "amount")
        body = b'{"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "metadata": {"n": 123456789012345678901}}'
        self.assertError(http("POST", self.url("/v1/payments"), body, self.env.auth()), 422, "invalid_field",
                         "metadata[n]")
        self.assertEqual(payment_count(self.env), before)

    def test_unknown_query_parameters_are_refused(self):
        pid = self.env.pay().json["id"]
        self.assertError(self.get("/v1/payments/%s?expand=refunds" % pid), 400, "unknown_parameter", "expand")
        self.assertError(self.get("/v1/payments?colour=red"), 400, "unknown_parameter", "colour")
        self.assertError(self.get("/v1/refunds?reference=x"), 400, "unknown_parameter", "reference")

    # ---- metadata -----------------------------------------------------------
    def test_metadata_is_stored_returned_and_never_sent_to_the_bank(self):
        secret_value = "order-" + uuid.uuid4().hex
        meta = {"order_id": secret_value, "customer": "Ana María"}
        r = self.env.pay(metadata=meta)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["metadata"], meta)
        pid = r.json["id"]
        self.assertEqual(self.env.wait_status(pid, "succeeded").json["metadata"], meta)
        bank = http("GET", self.env.sim_url + "/_sim/payments/" + self.env.get(pid).json["provider_reference_id"])
        self.assertEqual(bank.status, 200)
        self.assertNotIn(secret_value.encode(), bank.raw)
        self.assertNotIn(b"order_id", bank.raw)
        self.assertEqual(self.env.pay().json["metadata"], {})
        refund = self.post("/v1/refunds", {"payment_id": pid, "amount": 10, "metadata": {"ticket": "T-1"}})
        self.assertEqual((refund.status, refund.json["metadata"]), (201, {"ticket": "T-1"}), refund)
        self.assertEqual(self.get("/v1/refunds/" + refund.json["id"]).json["metadata"], {"ticket": "T-1"})

    def test_metadata_limits_name_the_key(self):
        before = payment_count(self.env)
        cases = [({"k%d" % i: "v" for i in range(51)}, "metadata"), ({"x" * 41: "v"}, "metadata[" + "x" * 40 + "]"),
                 ({"": "v"}, "metadata[]"), ({"note": "v" * 501}, "metadata[note]"), ({"n": 5}, "metadata[n]"),
                 ({"n": None}, "metadata[n]"), ({"n": {"deep": "x"}}, "metadata[n]"), (["a"], "metadata"),
                 ("text", "metadata")]
        for meta, field in cases:
            self.assertError(self.env.pay(metadata=meta), 422, "invalid_field", field)
        self.assertEqual(payment_count(self.env), before)
        ok = {"k%d" % i: "v" * 499 + "é" for i in range(50)}  # 500 characters, 501 bytes
        ok["x" * 40] = "v"
        del ok["k0"]
        self.assertEqual(self.env.pay(metadata=ok).status, 201)

    # ---- idempotency -----------------------------------------------------------
    def test_idempotency_compares_parameters_not_bytes(self):
        key = "idem-" + uuid.uuid4().hex
        first = http("POST", self.url("/v1/payments"),
                     b'{"amount":1050,"currency":"ARS","connector":"BANCO_X","metadata":{"a":"1","b":"2"}}',
                     self.env.auth({"Idempotency-Key": key}))
        self.assertEqual(first.status, 201, first)
        again = http("POST", self.url("/v1/payments"),
                     b'{ "metadata": {"b": "2", "a": "1"},\n  "connector": "BANCO_X", "currency": "ARS", '
                     b'"amount": 1050 }', self.env.auth({"Idempotency-Key": key}))
        self.assertEqual((again.status, again.headers.get("Idempotent-Replayed"), again.json["id"]),
                         (201, "true", first.json["id"]), again)
        other = http("POST", self.url("/v1/payments"),
                     b'{"amount":1051,"currency":"ARS","connector":"BANCO_X","metadata":{"a":"1","b":"2"}}',
                     self.env.auth({"Idempotency-Key": key}))
        self.assertError(other, 422, "idempotency_key_reused", "Idempotency-Key")

    def test_a_key_stored_before_the_upgrade_still_matches_its_bytes(self):
        key = "old-" + uuid.uuid4().hex
        body = b'{"connector": "BANCO_X", "amount": 1050, "currency": "ARS"}'
        first = http("POST", self.url("/v1/payments"), body, self.env.auth({"Idempotency-Key": key}))
        self.assertEqual(first.status, 201, first)
        # What a host before issue 14 stored: the SHA-256 of the bytes.
        self.env.sql("UPDATE idempotency_keys SET request_hash = '%s' WHERE key = '%s'" %
                     (hashlib.sha256(body).hexdigest(), key))
        again = http("POST", self.url("/v1/payments"), body, self.env.auth({"Idempotency-Key": key}))
        self.assertEqual((again.status, again.headers.get("Idempotent-Replayed"), again.json["id"]),
                         (201, "true", first.json["id"]), again)

    # ---- lists ---------------------------------------------------------------
    def test_lists_page_newest_first_with_cursors_and_filters(self):
        env = Env()
        try:
            ref = "list-" + uuid.uuid4().hex[:8]
            made = []
            for i in range(23):
                r = env.pay(amount=1000 + 100 * i, reference=ref if i % 2 == 0 else ref + "-odd",
                            capture_method="manual" if i % 3 == 0 else None)
                self.assertEqual(r.status, 201, r)
                made.append(r.json["id"])
            for i, pid in enumerate(made):  # the bank's webhook settles them
                env.wait_status(pid, "requires_capture" if i % 3 == 0 else "succeeded")
            newest_first = list(reversed(made))

            def page(query):
                r = http("GET", env.url + "/v1/payments?" + query, headers=env.auth())
                self.assertEqual(r.status, 200, r)
                return [p["id"] for p in r.json["data"]], r.json["has_more"]

            first, more = page("")
            self.assertEqual((first, more), (newest_first[:10], True))
            second, more = page("starting_after=" + first[-1])
            self.assertEqual((second, more), (newest_first[10:20], True))
            third, more = page("limit=10&starting_after=" + second[-1])
            self.assertEqual((third, more), (newest_first[20:], False))
            back, more = page("ending_before=" + third[0])
            self.assertEqual((back, more), (newest_first[10:20], True))
            back, more = page("ending_before=" + back[0])
            self.assertEqual((back, more), (newest_first[:10], False))
            everything, more = page("limit=100")
            self.assertEqual((everything, more), (newest_first, False))

            evens, _ = page("limit=100&reference=" + ref)
            self.assertEqual(evens, [p for i, p in reversed(list(enumerate(made))) if i % 2 == 0])
            held, _ = page("limit=100&status=requires_capture")
            self.assertEqual(held, [p for i, p in reversed(list(enumerate(made))) if i % 3 == 0])
            self.assertEqual(page("connector=NOPE")[0], [])
            self.assertEqual(page("limit=100&connector=BANCO_X")[0], newest_first)

            # The created range: Unix seconds and RFC 3339, bounds inclusive or not.
            env.sql("UPDATE payments SET created_at = '2026-01-01T00:00:00Z' WHERE id = '%s'" % made[0])
            env.sql("UPDATE payments SET created_at = '2026-01-02T00:00:00Z' WHERE id = '%s'" % made[1])
            jan2 = "1767312000"
            self.assertEqual(page("created[lt]=2026-01-02T00:00:00Z")[0], [made[0]])
            self.assertEqual(page("created[lte]=" + jan2)[0], [made[1], made[0]])
            self.assertEqual(page("created[gte]=2026-01-01T00:00:00Z&created[lt]=2026-01-03T00:00:00%2B00:00")[0],
                             [made[1], made[0]])
            self.assertEqual(len(page("limit=100&created[gt]=" + jan2)[0]), 21)

            # Another merchant sees none of them, and cannot page from them.
            env.sql("INSERT INTO merchants (id, name) VALUES ('mer_other', 'other')")
            out = env.cli(["apikey", "create", "--name", "other", "-c", env.config])
            other_key = record_secret(out.stdout.strip())
            env.sql("UPDATE api_keys SET merchant_id = 'mer_other' WHERE name = 'other'")
            other = {"Authorization": "Bearer " + other_key}
            r = http("GET", env.url + "/v1/payments?limit=100", headers=other)
            self.assertEqual((r.status, r.json["data"]), (200, []), r)
            r = http("GET", env.url + "/v1/payments?starting_after=" + made[5], headers=other)
            self.assertError(r, 422, "invalid_field", "starting_after")

            for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
                                 ("status=paid", "status"), ("created[gte]=yesterday", "created[gte]"),
                                 ("created[lt]=2026-02-30T00:00:00Z", "created[lt]"),
                                 ("starting_after=pay_nope", "starting_after"),
                                 ("starting_after=%s&ending_before=%s" % (made[1], made[2]), "ending_before"),
                                 ("reference=" + "r" * 129, "reference")):
                r = http("GET", env.url + "/v1/payments?" + query, headers=env.auth())
                self.assertError(r, 422, "invalid_field", field)
        finally:
            env.close()

    def test_refund_list_is_merchant_wide_and_filters(self):
        pids = []
        for _ in range(2):
            r = self.env.pay()
            pids.append(self.env.wait_status(r.json["id"], "succeeded").json["id"])
        made = []
        for pid in pids:
            for amount in (10, 20):
                f = self.post("/v1/refunds", {"payment_id": pid, "amount": amount})
                self.assertEqual(f.status, 201, f)
                made.append(f.json["id"])
        r = self.get("/v1/refunds?limit=100")
        ids = [f["id"] for f in r.json["data"]]
        self.assertEqual(ids[:4], list(reversed(made)))
        r = self.get("/v1/refunds?payment_id=" + pids[0])
        self.assertEqual([f["id"] for f in r.json["data"]], [made[1], made[0]])
        r = self.get("/v1/refunds?limit=1&payment_id=" + pids[1])
        self.assertEqual(([f["id"] for f in r.json["data"]], r.json["has_more"]), ([made[3]], True))
        r = self.get("/v1/refunds?limit=1&payment_id=%s&starting_after=%s" % (pids[1], made[3]))
        self.assertEqual(([f["id"] for f in r.json["data"]], r.json["has_more"]), ([made[2]], False))
        self.assertError(self.get("/v1/refunds?status=done"), 422, "invalid_field", "status")
        for f in self.get("/v1/refunds?limit=100&status=pending").json["data"]:
            self.assertEqual(f["status"], "pending")

    # ---- operator resolve ------------------------------------------------------
    def resolve(self, *args):
        env = dict(os.environ, PAGOFLEX_DATABASE=self.env.conninfo)
        return subprocess.run([os.path.join(BUILD, "host", "pagoflex"), "payment", "resolve"] + list(args),
                              capture_output=True, text=True, env=env, timeout=30)

    def test_operator_resolves_a_payment_that_requires_review(self):
        pid = self.env.wait_status(self.env.pay().json["id"], "succeeded").json["id"]
        other = self.env.wait_status(self.env.pay().json["id"], "succeeded").json["id"]
        self.env.sql("UPDATE payments SET state = 'requires_review' WHERE id IN ('%s', '%s')" % (pid, other))
        r = self.resolve(pid, "--status", "succeeded", "--reason", "the bank confirmed it by phone", "--by", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.env.get(pid).json["status"], "succeeded")
        last = self.env.events(pid).json["events"][-1]
        self.assertEqual((last["from"], last["to"], last["source"], last["detail"]),
                         ("requires_review", "succeeded", "operator", "alice: the bank confirmed it by phone"))
        again = self.resolve(pid, "--status", "failed", "--reason", "second thoughts")
        self.assertEqual(again.returncode, 1)
        self.assertIn("is succeeded, not requires_review; nothing was changed", again.stderr)
        self.assertEqual(self.env.get(pid).json["status"], "succeeded")

        r = self.resolve(other, "--status", "failed", "--reason", "never reached the bank")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = self.env.get(other).json
        self.assertEqual((p["status"], p["error"]["code"]), ("failed", "resolved_by_operator"))
        self.assertEqual(self.env.events(other).json["events"][-1]["source"], "operator")

        for args in ((pid, "--status", "refunded", "--reason", "x"), (pid, "--status", "failed"),
                     ("--status", "failed", "--reason", "x")):
            self.assertEqual(self.resolve(*args).returncode, 2, args)
        missing = self.resolve("pay_nope", "--status", "failed", "--reason", "x")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("no payment", missing.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
