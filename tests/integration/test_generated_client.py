"""The reference client (issue 14): a TypeScript client generated from
host/http/openapi.yaml with off-the-shelf generators from npm, pinned
(openapi-typescript for the types, openapi-fetch for the calls, typescript
to type-check the test against them), creates, captures and refunds a
payment against a running host (client/client_test.ts). Skipped only when
npm cannot install the packages (no node, offline)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
PACKAGES = ["openapi-typescript@7.13.0", "openapi-fetch@0.17.0", "typescript@5.9.3"]
NPM_DIR = os.path.join(BUILD, "npm", "client")


def install():
    """npm_pinned (tests/interop/npm_pinned.sh) into the build folder; None, or why it was skipped."""
    r = subprocess.run(["bash", "-c", 'source "$0"; npm_pinned "$@"',
                        os.path.join(SRC, "tests", "interop", "npm_pinned.sh"), NPM_DIR] + PACKAGES,
                       capture_output=True, text=True, timeout=400)
    if r.returncode == 77:
        return r.stdout.strip()
    if r.returncode != 0:
        raise AssertionError("npm install failed: " + r.stdout + r.stderr)
    return None


class GeneratedClient(unittest.TestCase):
    def test_generated_client_creates_captures_and_refunds(self):
        why = install()
        if why:
            self.skipTest(why)
        work = tempfile.mkdtemp(prefix="pagoflex-client-")
        try:
            bin_dir = os.path.join(NPM_DIR, "node_modules", ".bin")
            os.symlink(os.path.join(NPM_DIR, "node_modules"), os.path.join(work, "node_modules"))
            shutil.copy(os.path.join(HERE, "client", "client_test.ts"), work)
            shutil.copy(os.path.join(HERE, "client", "tsconfig.json"), work)
            gen = subprocess.run([os.path.join(bin_dir, "openapi-typescript"),
                                  os.path.join(SRC, "host", "http", "openapi.yaml"), "-o",
                                  os.path.join(work, "schema.d.ts")], capture_output=True, text=True, timeout=120)
            self.assertEqual(gen.returncode, 0, gen.stdout + gen.stderr)
            tsc = subprocess.run([os.path.join(bin_dir, "tsc"), "-p", work], capture_output=True, text=True,
                                 timeout=180)
            self.assertEqual(tsc.returncode, 0, "the client does not type-check against the document:\n" +
                             tsc.stdout + tsc.stderr)
            env = Env()
            try:
                run = subprocess.run(["node", os.path.join(work, "client_test.js")], capture_output=True, text=True,
                                     timeout=120, env=dict(os.environ, PAGOFLEX_URL=env.url,
                                                           PAGOFLEX_API_KEY=env.api_key))
                print(run.stdout)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertIn("ok: refund of 500 made", run.stdout)
            finally:
                env.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
