"""Refunds through the group commit (issue 16).

- 240 refunds from 48 concurrent clients on 8 payments of 1000 (30 of 45
  each: 22 fit, 990 <= 1000 < 23 * 45): every request is answered, 201 or
  422 on `amount`; what is refunded never exceeds what was received; every
  201 is a refund row in the state answered, with its history, and at the
  bank; every refusal left nothing; and the host used fewer commits than
  refunds asked for (one per write would be two per refund made and one
  per refusal). With db_batch_max = 0 the same load takes one commit per
  write: the counter counts and the setting turns batching off.
- Unkeyed refunds in the group commit are claimed without reading the
  payment first: an unknown payment, a connector or account this host does
  not serve, a payment not succeeded and an amount above what is left are
  answered exactly as with the read first (batching off), in the same
  precedence, and write nothing.
- The run prints commits per refund, with and without batching: the
  host's counter, pg_stat_database's with PAGOFLEX_TEST_PG_STATS=1, and
  statements when the cluster preloads pg_stat_statements.
"""
import os
import re
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

PAYMENTS = 8
PER_PAYMENT = 30
AMOUNT = 45
FIT = 1000 // AMOUNT  # 22
CLIENTS = 48


def commits(env):
    m = re.search(r"^pagoflex_db_commits_total (\d+)$", env.metrics(), re.M)
    return int(m.group(1))


def db_commits(env):
    """Transactions committed in the env's database, as PostgreSQL counts
    them; None unless PAGOFLEX_TEST_PG_STATS is set: an idle backend reports
    its counts only after 10 s, so each reading waits 11 s."""
    if not os.environ.get("PAGOFLEX_TEST_PG_STATS"):
        return None
    time.sleep(11)
    return int(env.sql("SELECT pg_stat_clear_snapshot(); SELECT xact_commit FROM pg_stat_database"
                       " WHERE datname = current_database()").split("\n")[-1])


def statements(env):
    """{query: calls} of the env's database from pg_stat_statements, or None
    when the cluster does not preload it."""
    if "pg_stat_statements" not in env.sql("SHOW shared_preload_libraries"):
        return None
    env.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    rows = env.sql("SELECT calls || '|' || regexp_replace(left(query, 60), '\\s+', ' ', 'g')"
                   " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                   " WHERE d.datname = current_database()")
    out = {}
    for line in rows.split("\n") if rows else []:
        calls, query = line.split("|", 1)
        out[query] = out.get(query, 0) + int(calls)
    return out


def succeeded_payments(env):
    with ThreadPoolExecutor(PAYMENTS) as ex:
        made = list(ex.map(lambda i: env.pay(amount=1000, reference="gcr-%d" % i), range(PAYMENTS)))
    pids = [r.json["id"] for r in made]
    for pid in pids:
        env.wait_status(pid, ("succeeded",), timeout=20)
    return pids


def refund_all(env, pids):
    def one(i):
        return http("POST", env.url + "/v1/refunds", {"payment_id": pids[i % PAYMENTS], "amount": AMOUNT},
                    env.auth())
    with ThreadPoolExecutor(CLIENTS) as ex:
        return list(ex.map(one, range(PAYMENTS * PER_PAYMENT)))


class GroupCommitRefunds(unittest.TestCase):
    def check_accounted(self, env, pids, answers):
        made = [a for a in answers if a.status == 201]
        refused = [a for a in answers if a.status != 201]
        self.assertEqual([(a.status, a.json["error"]["code"], a.json["error"]["field"]) for a in refused
                          if (a.status, a.json["error"]["field"]) != (422, "amount")][:3], [])
        self.assertEqual(len(made), PAYMENTS * FIT)
        self.assertEqual(len(refused), PAYMENTS * (PER_PAYMENT - FIT))
        # The bank answered OK: each refund pending, as answered and as stored.
        self.assertEqual({a.json["status"] for a in made}, {"pending"})
        stored = dict(line.split("|") for line in env.sql(
            "SELECT r.id, r.state FROM refunds r JOIN payments p ON p.id = r.payment_id"
            " WHERE p.reference LIKE 'gcr-%'").split("\n"))
        self.assertEqual(sorted(stored), sorted(a.json["id"] for a in made))
        self.assertEqual(set(stored.values()), {"pending"})
        self.assertEqual(env.sql("SELECT count(*) FROM refund_history h JOIN refunds r ON r.id = h.refund_id"
                                 " JOIN payments p ON p.id = r.payment_id WHERE p.reference LIKE 'gcr-%'"),
                         str(2 * len(made)))  # created, then the bank's answer
        for pid in pids:
            got = env.sql("SELECT p.amount_refunded || '|' || p.amount_received || '|' ||"
                          " (SELECT coalesce(sum(amount), 0) FROM refunds WHERE payment_id = p.id)"
                          " FROM payments p WHERE p.id = '%s'" % pid)
            self.assertEqual(got, "%d|1000|%d" % (FIT * AMOUNT, FIT * AMOUNT), pid)
            ref = env.get(pid).json["provider_reference_id"]
            bank = http("GET", env.sim_url + "/_sim/payments/" + ref).json
            self.assertEqual(bank["refund_requests"], FIT, pid)

    def test_concurrent_refunds_share_commits(self):
        used = {}
        for batch in (64, 0):
            # One worker, so /metrics counts every commit of the host.
            env = Env(sim_args=["--quiet"], workers=1, extra_config="db_batch_max = %d;\n" % batch)
            try:
                pids = succeeded_payments(env)
                env.sim_config(no_webhooks=True)  # the refunds' own writes only
                c0, d0, s0 = commits(env), db_commits(env), statements(env)
                answers = refund_all(env, pids)
                c1, d1, s1 = commits(env), db_commits(env), statements(env)
                self.check_accounted(env, pids, answers)
                used[batch] = c1 - c0
                n = len(answers)
                print("refunds, db_batch_max = %d: %d requests (%d made): %d commits counted by the host"
                      " (%.2f per request)" % (batch, n, PAYMENTS * FIT, c1 - c0, (c1 - c0) / n), file=sys.stderr)
                if d0 is not None:
                    print("  pg_stat_database: %d transactions committed (%.2f per request)"
                          % (d1 - d0, (d1 - d0) / n), file=sys.stderr)
                if s0 is not None:
                    delta = {q: s1.get(q, 0) - s0.get(q, 0) for q in s1}
                    total = sum(v for q, v in delta.items() if not q.startswith(("BEGIN", "COMMIT")))
                    print("  statements (not BEGIN/COMMIT): %d (%.2f per request); top:" % (total, total / n),
                          file=sys.stderr)
                    for q, v in sorted(delta.items(), key=lambda kv: -kv[1])[:6]:
                        print("    %5d  %s" % (v, q), file=sys.stderr)
            finally:
                env.close()
        requests = PAYMENTS * PER_PAYMENT
        made = PAYMENTS * FIT
        # Without batching: one commit per write (two per refund made, one
        # per refusal), so the counter is known to count them all.
        self.assertGreaterEqual(used[0], 2 * made + (requests - made))
        # Batched: clearly fewer commits than refunds asked for (the bound is
        # loose on purpose; a loaded machine batches more, not less).
        self.assertLess(used[64], requests)


    def test_refusals_answer_as_with_the_payment_read_first(self):
        # Unkeyed refunds in the group commit skip the payment read: their
        # claim refuses what the read refused. Every refusal answers exactly
        # as with batching off (the read first), precedence included, and
        # writes nothing.
        answers = {}
        for batch in (64, 0):
            env = Env(sim_args=["--quiet"], extra_config="db_batch_max = %d;\n" % batch)
            try:
                pids = succeeded_payments(env)
                ok, acct, conn, conn_pending, pending = pids[:5]
                env.sql("UPDATE payments SET connector_account = 'gone' WHERE id = '%s'" % acct)
                env.sql("UPDATE payments SET connector = 'NOPE' WHERE id IN ('%s', '%s')" % (conn, conn_pending))
                env.sql("UPDATE payments SET state = 'pending' WHERE id IN ('%s', '%s')" % (conn_pending, pending))
                names = {ok: "ok", acct: "acct", conn: "conn", conn_pending: "conn_pending", pending: "pending"}
                got = []
                for pid, amount in (("pay_nosuchpayment", 10), (acct, 10), (conn, 10), (conn_pending, 10),
                                    (pending, 10), (ok, 5000)):
                    r = http("POST", env.url + "/v1/refunds", {"payment_id": pid, "amount": amount}, env.auth())
                    e = r.json["error"]
                    text = e["message"]
                    for p, name in names.items():
                        text = text.replace(p, "<%s>" % name)
                    got.append((r.status, e["code"], e.get("field"), e.get("status"), text))
                answers[batch] = got
                self.assertEqual(env.sql("SELECT count(*) FROM refunds"), "0")
                self.assertEqual(env.sql("SELECT count(*) FROM payments WHERE amount_refunded <> 0"), "0")
            finally:
                env.close()
        self.assertEqual([a[:3] for a in answers[64]],
                         [(404, "not_found", "payment_id"), (503, "connector_account_unavailable", None),
                          (503, "connector_unavailable", None), (503, "connector_unavailable", None),
                          (409, "invalid_state", None), (422, "invalid_field", "amount")])
        self.assertEqual(answers[64], answers[0])


if __name__ == "__main__":
    unittest.main()
