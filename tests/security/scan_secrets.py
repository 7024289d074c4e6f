"""Fail if any secret a test created appears in any log the suite wrote.

Usage: scan_secrets.py BUILD_DIR

Secrets: BUILD_DIR/test-secrets.txt, one per line (the integration harness
and the CLI tests append every API key, bank secret and master key they
make). Logs: every file under BUILD_DIR/test-logs/ (host and simulator logs
kept by the harness) and ctest's BUILD_DIR/Testing/Temporary/LastTest*.log.
A hit is reported by file, line number and a SHA-256 prefix of the secret,
never the secret itself.
"""
import glob
import hashlib
import os
import sys


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    path = os.path.join(build, "test-secrets.txt")
    if not os.path.exists(path):
        print("no secrets recorded in %s: nothing to check" % path)
        return 0
    with open(path) as f:
        secrets = {s.strip() for s in f if len(s.strip()) >= 8}
    logs = [p for p in glob.glob(os.path.join(build, "test-logs", "**", "*"), recursive=True)
            if os.path.isfile(p)]
    logs += glob.glob(os.path.join(build, "Testing", "Temporary", "LastTest*.log"))
    hits = 0
    for log in logs:
        with open(log, "rb") as f:
            for n, line in enumerate(f, 1):
                text = line.decode(errors="replace")
                for s in secrets:
                    if s in text:
                        tag = hashlib.sha256(s.encode()).hexdigest()[:12]
                        print("SECRET IN LOG: %s:%d (secret sha256 %s...)" % (log, n, tag))
                        hits += 1
    print("scanned %d log file(s) for %d recorded secret(s): %d hit(s)" % (len(logs), len(secrets), hits))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
