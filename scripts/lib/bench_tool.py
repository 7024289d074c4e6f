"""Helpers of scripts/bench (stdlib only).

  bench_tool.py webhooks-lua OUT SECRET < "id|tx" lines
      write a wrk Lua table of signed Banco X webhooks, one distinct event per line
  bench_tool.py sample PID OUT
      every 100 ms until SIGTERM: the sum of Threads and VmRSS over PID and
      its descendants; on SIGTERM writes "peak_threads peak_rss_kib" to OUT
  bench_tool.py ids-lua OUT < ids
      write a wrk Lua table of ids (the refunds run), one per line
  bench_tool.py measure OUT.json NAME=PID... -- COMMAND ARGS...
      run COMMAND (the load generator), passing its output through, and
      write the CPU time (user + system, microseconds) each process tree
      NAME=PID used while it ran, from /proc/<pid>/stat utime + stime +
      cutime + cstime summed over the tree (so threads and reaped children
      count), and the command's own from wait4(): {"NAME": us, ...,
      "loadgen": us, "wall_s": s}
  bench_tool.py table RESULTS.json OUT.md
      render the results (collected by scripts/bench) as Markdown tables
"""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time


def lua_string(s):
    # json.dumps of ASCII text only uses \" and \\ escapes, both valid in Lua.
    return json.dumps(s, ensure_ascii=True)


# A Lua function holds at most 65,536 constants and each event is two, so
# the table is built by one function per CHUNK events; at most MAX_LUA_EVENTS
# in all (each wrk thread loads the whole file: ~350 bytes an event).
CHUNK = 10000
MAX_LUA_EVENTS = 200000


class LuaTable:
    """Writes `name = {...}` as chunks of CHUNK items, one function each."""

    def __init__(self, f, name):
        self.f, self.name, self.n = f, name, 0
        f.write("%s = {}\n" % name)

    def add(self, item):
        if self.n % CHUNK == 0:
            self.close()
            self.f.write(";(function() local t = {\n")
        self.f.write(item + ",\n")
        self.n += 1

    def close(self):
        if self.n:
            self.f.write("} for i = 1, #t do %s[#%s + 1] = t[i] end end)()\n" % (self.name, self.name))


def webhooks_lua(out, secret):
    t = str(int(time.time()))
    with open(out, "w") as f:
        table = LuaTable(f, "events")
        for line in sys.stdin:
            line = line.strip()
            if not line or table.n >= MAX_LUA_EVENTS:
                continue  # read the rest, so the writer of the pipe does not die of SIGPIPE
            pid, tx = line.split("|")
            body = json.dumps({"event_id": "evt_bench_%s" % pid[4:], "tx_id": tx, "ref": pid,
                               "status": "APPROVED", "amount": 1050, "currency": "ARS",
                               "occurred_at": "2026-11-27T12:00:00Z"}, separators=(",", ":"))
            mac = hmac.new(secret.encode(), (t + "." + body).encode(), hashlib.sha256).hexdigest()
            table.add("{%s,%s}" % (lua_string(body), lua_string("t=%s,v1=%s" % (t, mac))))
        table.close()
    print(table.n)


def ids_lua(out):
    with open(out, "w") as f:
        table = LuaTable(f, "ids")
        for line in sys.stdin:
            line = line.strip()
            if line and table.n < MAX_LUA_EVENTS:
                table.add(lua_string(line))
        table.close()
    print(table.n)


CLK_TCK = os.sysconf("SC_CLK_TCK")
def tree_cpu_us(root):
    """User + system CPU of root and its descendants, reaped children included."""
    ticks = 0
    for p in descendants(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): utime..cstime are fields 14..17.
        ticks += sum(int(x) for x in fields[11:15])
    return ticks * 1e6 / CLK_TCK


def wal_lsn(conninfo):
    """PostgreSQL's current WAL insert position, in bytes."""
    out = subprocess.run(["psql", "-X", "-qAt", "-d", conninfo, "-c",
                          "SELECT pg_current_wal_insert_lsn() - '0/0'"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def cpu_ticks():
    """(all, stolen) CPU ticks of the machine so far, from /proc/stat: time
    the hypervisor gave to other guests while this one had work (0 on bare
    metal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), (fields[7] if len(fields) > 7 else 0)


def measure(out, specs, cmd):
    """CPU of each name=pid process tree around cmd; with wal=CONNINFO, the
    WAL PostgreSQL wrote meanwhile too (it does not depend on the machine's
    load, unlike CPU: the surer sign of what a change writes)."""
    roots, wal_db = {}, None
    for spec in specs:
        name, value = spec.split("=", 1)
        if name == "wal":
            wal_db = value
        else:
            roots[name] = int(value)
    wal0 = wal_lsn(wal_db) if wal_db else None
    before = {name: tree_cpu_us(pid) for name, pid in roots.items()}
    ticks0 = cpu_ticks()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    res = {name: round(tree_cpu_us(pid) - before[name]) for name, pid in roots.items()}
    res["loadgen"] = round((ru.ru_utime + ru.ru_stime) * 1e6)
    res["wall_s"] = round(wall, 3)
    ticks1 = cpu_ticks()
    res["steal_pct"] = round(100.0 * (ticks1[1] - ticks0[1]) / max(ticks1[0] - ticks0[0], 1), 1)
    if wal_db:
        res["wal_bytes"] = wal_lsn(wal_db) - wal0
    with open(out, "w") as f:
        json.dump(res, f)
    sys.exit(proc.returncode)


def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def sample(root, out):
    peak = [0, 0]
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    while not stop:
        threads = rss = 0
        for p in descendants(root):
            try:
                with open("/proc/%d/status" % p) as f:
                    for line in f:
                        if line.startswith("Threads:"):
                            threads += int(line.split()[1])
                        elif line.startswith("VmRSS:"):
                            rss += int(line.split()[1])
            except OSError:
                pass
        peak = [max(peak[0], threads), max(peak[1], rss)]
        time.sleep(0.1)
    with open(out, "w") as f:
        f.write("%d %d\n" % tuple(peak))


def fmt(v, digits=0):
    if v is None:
        return "-"
    return ("{:,.%df}" % digits).format(v)


def ms(us):
    return "-" if us is None else "%.2f" % (us / 1000.0)


def table(results_path, out_path):
    with open(results_path) as f:
        R = json.load(f)
    inp = R["inputs"]
    lines = []
    w = lines.append
    w("# Pagoflex benchmark, %s" % R["date"])
    w("")
    w("Machine: %s; %s cores (nproc); %s MiB memory; host %s. Build: %s. Mode: %s. Load average "
      "before / after: %s / %s (other work on the machine skews every figure)." % (
          inp["cpu"], inp["nproc"], inp["mem_mib"], inp.get("hostname", "?"), inp["build"], inp["mode"],
          inp.get("loadavg_before", "?"), inp.get("loadavg_after", "?")))
    w("")
    w("Inputs: wrk %s threads, %s s per run; host: %s worker processes, each `threads = %s`, "
      "`db_pool_size = %s`, `db_batch_max = %s`, `db_batch_connections = %s`, `log_level = %s`, `access_log = %s`, reconciler `webhook_grace_s = %s` (no "
      "payment of an earlier run is synced during a later one); simulator `--no-webhooks` (webhooks are "
      "measured on their own); payment amount 1050 ARS through BANCO_X, refunds of 100; non-2xx answers "
      "and socket errors/timeouts count as errors." % (
          inp["wrk_threads"], inp["duration_s"], inp.get("workers", 1), inp["host_threads"], inp["db_pool"],
          inp.get("db_batch_max", "0 (none)"), inp.get("db_batch_connections", "-"), inp["log_level"], inp.get("access_log", "?"), inp.get("webhook_grace_s", "?")))
    w("")
    nf = inp.get("notify")
    if nf:
        w("Notifications on, as in production: the bench merchant has one webhook endpoint for every event, "
          "the simulator's sink `%s` (it verifies every Standard Webhooks signature and answers 204); "
          "`notify_allow_private_targets = true` (the sink is on loopback), `notify_max_in_flight = %s`, "
          "`notify_endpoint_max_in_flight = %s`; every state change writes its outbox rows and is delivered "
          "during the runs; before the yardstick's second run the deliveries still owed are let finish "
          "(at most %s s)." % (nf["endpoint"], nf["max_in_flight"], nf["endpoint_max_in_flight"], nf["drain_s"]))
        w("")
    w("PostgreSQL 15, private cluster, the same for pgbench and the host: %s." %
      ", ".join("`%s = %s`" % tuple(kv) for kv in inp.get("pg_settings", [])))
    w("")
    w("## Targets (ratios to insert_tps, measured in this run)")
    w("")
    w("| figure | value | ratio | target | result |")
    w("| --- | ---: | ---: | --- | --- |")
    for t in R["targets"]:
        w("| %s | %s | %s | %s | %s |" % (t["name"], t["value"], t.get("ratio", "-"), t["target"],
                                          t["result"]))
    w("")
    w("## CPU per request, by process (µs, from /proc around each run), and the WAL PostgreSQL wrote per request")
    w("")
    w("stolen: the share of the machine's CPU time its hypervisor gave to other guests during the run"
      " (/proc/stat); the CPU figures of a run with much of it stolen are the least comparable.")
    w("")
    w("| run | requests | pagoflexd | PostgreSQL | pagoflexd + PostgreSQL | simulator | load generator |"
      " WAL bytes | stolen |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in R["cpu"]:
        n = max(c["requests"], 1)
        per = lambda k: fmt(c[k] / n, 0) if k in c else "-"
        both = fmt((c.get("pagoflexd", 0) + c.get("postgres", 0)) / n, 0)
        stolen = "%.1f%%" % c["steal_pct"] if "steal_pct" in c else "-"
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c["name"], fmt(c["requests"]), per("pagoflexd"), per("postgres"), both, per("simulator"),
            per("loadgen"), per("wal_bytes"), stolen))
    w("")
    w("## Runs")
    w("")
    w("| run | clients | requests/s | p50 ms | p99 ms | p99.9 ms | errors | notes |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in R["runs"]:
        w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["clients"], fmt(r.get("rate"), 0), ms(r.get("p50_us")), ms(r.get("p99_us")),
            ms(r.get("p999_us")), fmt(r.get("errors"), 0) if r.get("errors") is not None else "-",
            r.get("notes", "")))
    w("")
    w("## Accounting (the database after each run against what the load generator got)")
    w("")
    w("| run | answered 2xx | rows | check |")
    w("| --- | ---: | --- | --- |")
    for a in R["accounting"]:
        w("| %s | %s | %s | %s |" % (a["name"], fmt(a["answered"]), a["rows"], a["check"]))
    w("")
    text = "\n".join(lines)
    with open(out_path, "w") as f:
        f.write(text)
    print(text)


def main():
    cmd = sys.argv[1]
    if cmd == "webhooks-lua":
        webhooks_lua(sys.argv[2], sys.argv[3])
    elif cmd == "sample":
        sample(int(sys.argv[2]), sys.argv[3])
    elif cmd == "ids-lua":
        ids_lua(sys.argv[2])
    elif cmd == "measure":
        sep = sys.argv.index("--")
        measure(sys.argv[2], sys.argv[3:sep], sys.argv[sep + 1:])
    elif cmd == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
