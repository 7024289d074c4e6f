"""Helpers of scripts/bench (stdlib only).

  bench_tool.py webhooks-lua OUT SECRET < "id|tx" lines
      write a wrk Lua table of signed Banco X webhooks, one distinct event per line
  bench_tool.py sample PID OUT
      every 100 ms until SIGTERM: the sum of Threads and VmRSS over PID and
      its descendants; on SIGTERM writes "peak_threads peak_rss_kib" to OUT
  bench_tool.py table RESULTS.json OUT.md
      render the results (collected by scripts/bench) as one Markdown table
"""
import hashlib
import hmac
import json
import os
import signal
import sys
import time


def lua_string(s):
    # json.dumps of ASCII text only uses \" and \\ escapes, both valid in Lua.
    return json.dumps(s, ensure_ascii=True)


# Each event is two string constants in one Lua chunk, which holds at most
# 65,536 constants: stay well below.
MAX_LUA_EVENTS = 30000


def webhooks_lua(out, secret):
    t = str(int(time.time()))
    n = 0
    with open(out, "w") as f:
        f.write("events = {\n")
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            if n >= MAX_LUA_EVENTS:
                continue  # read the rest, so the writer of the pipe does not die of SIGPIPE
            pid, tx = line.split("|")
            n += 1
            body = json.dumps({"event_id": "evt_bench_%s" % pid[4:], "tx_id": tx, "ref": pid,
                               "status": "APPROVED", "amount": 1050, "currency": "ARS",
                               "occurred_at": "2026-11-27T12:00:00Z"}, separators=(",", ":"))
            mac = hmac.new(secret.encode(), (t + "." + body).encode(), hashlib.sha256).hexdigest()
            f.write("{%s,%s},\n" % (lua_string(body), lua_string("t=%s,v1=%s" % (t, mac))))
        f.write("}\n")
    print(n)


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
    w("Machine: %s; %s cores (nproc); %s MiB memory. Build: %s. Mode: %s. Load average "
      "before / after: %s / %s (other work on the machine skews every figure)." % (
          inp["cpu"], inp["nproc"], inp["mem_mib"], inp["build"], inp["mode"],
          inp.get("loadavg_before", "?"), inp.get("loadavg_after", "?")))
    w("")
    w("Inputs: wrk %s threads, %s s per run; host: %s worker processes, each `threads = %s`, `db_pool_size = %s`, "
      "`log_level = %s`; PostgreSQL 15 private cluster, synchronous_commit=%s, fsync=%s; "
      "simulator `--no-webhooks` (webhooks are measured on their own); payment amount 1050 ARS "
      "through BANCO_X; non-2xx answers and socket errors/timeouts count as errors." % (
          inp["wrk_threads"], inp["duration_s"], inp.get("workers", 1), inp["host_threads"], inp["db_pool"],
          inp["log_level"],
          inp["synchronous_commit"], inp["fsync"]))
    w("")
    w("| run | clients | requests/s | p50 ms | p99 ms | p99.9 ms | errors | notes |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in R["runs"]:
        w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["clients"], fmt(r.get("rate"), 0), ms(r.get("p50_us")), ms(r.get("p99_us")),
            ms(r.get("p999_us")), fmt(r.get("errors"), 0) if r.get("errors") is not None else "-",
            r.get("notes", "")))
    w("")
    w("| ratio | value | target |")
    w("| --- | ---: | --- |")
    for r in R["ratios"]:
        w("| %s | %s | %s |" % (r["name"], r["value"], r["target"]))
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
    elif cmd == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
