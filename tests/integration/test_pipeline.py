"""The non-blocking payment pipeline (behaviour, not speed).

- 2,000 concurrent payments against a bank that takes 200 ms all complete
  correctly, although each worker has far fewer threads than requests.
- A bank that stops answering does not stall payments through another
  connector.
"""
import asyncio
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

CONCURRENT = 2000


async def post(port, body, headers, timeout):
    """One POST on its own connection; (status, json) or (None, error)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        raw = json.dumps(body).encode()
        head = "POST /v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        head += "".join("%s: %s\r\n" % kv for kv in headers.items())
        head += "Content-Length: %d\r\n\r\n" % len(raw)
        writer.write(head.encode() + raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        status = int(data.split(b" ", 2)[1])
        return status, json.loads(data.split(b"\r\n\r\n", 1)[1])
    except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
        return None, repr(e)


async def many(port, bodies, headers, timeout):
    return await asyncio.gather(*(post(port, b, headers, timeout) for b in bodies))


class Pipeline(unittest.TestCase):
    def test_two_thousand_in_flight_against_a_slow_bank(self):
        # Few threads on purpose: 2 workers x 4 HTTP threads for 2,000 requests.
        env = Env(sim_args=["--latency-ms", "200", "--no-webhooks", "--quiet"],
                  extra_config="threads = 4;\nmax_connections = 5000;\n")
        try:
            bodies = [{"amount": 1000 + i % 10, "currency": "ARS", "connector": "BANCO_X",
                       "reference": "inflight-%d" % i} for i in range(CONCURRENT)]
            t0 = time.time()
            results = asyncio.run(many(env.port, bodies, env.auth(), timeout=120))
            elapsed = time.time() - t0
            statuses = {}
            for status, body in results:
                statuses[status] = statuses.get(status, 0) + 1
            print("pipeline: %d concurrent payments, bank 200 ms: %s in %.1f s"
                  % (CONCURRENT, statuses, elapsed), file=sys.stderr)
            bad = [(s, b) for s, b in results if s != 201 or b["status"] != "pending"]
            self.assertEqual(bad[:5], [])
            self.assertEqual(env.sql("SELECT count(*) FROM payments WHERE state = 'pending'"), str(CONCURRENT))
            self.assertEqual(env.sim_stats()["payments"], CONCURRENT)
            # Had each request held a thread, 8 threads x 200 ms would need at
            # least 50 s; waiting without threads takes a few seconds.
            self.assertLess(elapsed, 30)
        finally:
            env.close()

    def test_stalled_bank_does_not_stall_another_connector(self):
        env = Env(start_host=False, sim_args=["--no-webhooks", "--quiet"], extra_config="threads = 2;\n")
        try:
            env.add_plugin("echo_pay", {"ECHOPAY_SECRET": "s_" + uuid.uuid4().hex})
            env.start_host()
            # Banco X now takes 30 s to answer (longer than its 5 s timeout).
            self.assertEqual(http("POST", env.sim_url + "/_sim/config", {"latency_ms": 30000}).status, 200)

            async def scenario():
                stuck = [asyncio.ensure_future(post(env.port, {"amount": 2000 + i % 10, "currency": "ARS",
                                                               "connector": "BANCO_X"}, env.auth(), 60))
                         for i in range(40)]
                await asyncio.sleep(0.5)  # the Banco X calls are all waiting now
                t0 = time.time()
                quick = await many(env.port, [{"amount": 700 + i, "currency": "EUR", "connector": "ECHO_PAY"}
                                              for i in range(40)], env.auth(), 10)
                quick_elapsed = time.time() - t0
                slow = await asyncio.gather(*stuck)
                return quick, quick_elapsed, slow

            quick, quick_elapsed, slow = asyncio.run(scenario())
            print("stalled bank: 40 ECHO_PAY payments in %.2f s while 40 Banco X calls waited"
                  % quick_elapsed, file=sys.stderr)
            self.assertEqual([s for s, _ in quick], [201] * 40)
            self.assertLess(quick_elapsed, 3.0)
            # The stalled bank's payments end as unknown outcomes, never failed.
            self.assertEqual({(s, b["status"]) for s, b in slow}, {(201, "processing")})
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
