"""A third party builds a connector against the INSTALLED SDK and ships it.

Installs the build to a temporary prefix, generates a plugin with the
installed `pagoflex plugin new`, builds it out of tree with CMake
(find_package(PagoflexSDK)) and with make + pkg-config, runs its test-kit unit
test and `pagoflex plugin check`, then drops the .so and its encrypted
credentials into a host's plugin directory, starts the host, and sees the
connector served: listed in GET /v1/connectors and verifying its webhooks.
"""
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Env, http  # noqa: E402

NAME = "acme_pay"
SECRET = "acme_whsec_0123456789"


def run(args, cwd=None, env=None):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r.stdout


class SdkPlugin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pagoflex-sdk-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        run(["cmake", "--install", BUILD, "--prefix", cls.prefix])
        cls.pagoflex = os.path.join(cls.prefix, "bin", "pagoflex")
        # Nothing of the source tree may leak in: no template env override.
        cls.env = {k: v for k, v in os.environ.items() if k != "PAGOFLEX_TEMPLATE_DIR"}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def generate(self, where):
        out = run([self.pagoflex, "plugin", "new", NAME, "--dir", where], env=self.env)
        self.assertIn(os.path.join(self.prefix, "bin", "..", "share", "pagoflex", "template"), out)
        return where

    def test_install_layout(self):
        for rel in ["include/pagoflex/connector.h", "include/pagoflex/testkit.h",
                    "lib/libpagoflex_testkit.a", "lib/pkgconfig/pagoflex-sdk.pc",
                    "lib/pkgconfig/pagoflex-testkit.pc", "lib/cmake/PagoflexSDK/PagoflexSDKConfig.cmake",
                    "share/pagoflex/README.md", "share/pagoflex/ABI.md",
                    "share/pagoflex/template/@NAME@.c",
                    "share/pagoflex/examples/banco_x.c",
                    "share/pagoflex/examples/test_testkit_banco_x.c", "bin/pagoflexd", "bin/pagoflex",
                    "lib/pagoflex/plugins/banco_x.so"]:
            self.assertTrue(os.path.exists(os.path.join(self.prefix, rel)), rel)

    def test_generated_plugin_builds_checks_and_is_served(self):
        # CMake, against the installed package only.
        src = self.generate(os.path.join(self.tmp, "cmake", NAME))
        with open(os.path.join(src, NAME + ".c")) as f:
            text = f.read()
        self.assertIn('.key = "ACME_PAY"', text)
        self.assertIn('.webhook_path = "acme_pay"', text)
        self.assertIn('"ACME_PAY_SECRET"', text)
        for fname in os.listdir(src):
            with open(os.path.join(src, fname)) as f:
                content = f.read()
            for placeholder in ("@NAME@", "@KEY@", "@PATH@", "@SECRET@"):
                self.assertNotIn(placeholder, fname + content, fname)
        build = os.path.join(src, "build")
        run(["cmake", "-S", src, "-B", build, "-DCMAKE_PREFIX_PATH=" + self.prefix,
             "-DCMAKE_C_FLAGS=-Werror"], env=self.env)
        run(["cmake", "--build", build], env=self.env)
        out = run(["ctest", "--test-dir", build, "--output-on-failure"], env=self.env)
        self.assertIn("100% tests passed", out)
        so = os.path.join(build, NAME + ".so")

        # make + pkg-config, against the installed .pc files only.
        msrc = self.generate(os.path.join(self.tmp, "make", NAME))
        menv = dict(self.env, PKG_CONFIG_PATH=os.path.join(self.prefix, "lib", "pkgconfig"))
        cflags = "CFLAGS=-O2 -g -Wall -Wextra -Werror"
        run(["make", cflags], cwd=msrc, env=menv)
        self.assertIn("all checks passed", run(["make", cflags, "check"], cwd=msrc, env=menv))
        self.assertTrue(os.path.exists(os.path.join(msrc, NAME + ".so")))
        # The forms the guide gives, with nothing in the environment: GNU Make
        # 4.3 does not hand a command-line PKG_CONFIG_PATH to $(shell ...).
        bare = {k: v for k, v in self.env.items() if k != "PKG_CONFIG_PATH"}
        pcdir = os.path.join(self.prefix, "lib", "pkgconfig")
        for form in ("SDK_PREFIX=" + self.prefix, "PKG_CONFIG_PATH=" + pcdir):
            run(["make", "clean"], cwd=msrc, env=bare)
            run(["make", cflags, form], cwd=msrc, env=bare)
            self.assertIn("all checks passed", run(["make", cflags, form, "check"], cwd=msrc, env=bare))

        # The conformance checker passes it.
        out = run([self.pagoflex, "plugin", "check", so], env=self.env)
        self.assertIn("OK: 0 check(s) failed", out)
        self.assertIn("PASS verify_webhook", out)
        for check in ("flow_request: 6 declared flow(s)", "flow_response", "webhook_sample: 4 sample",
                      "webhook_verify", "webhook_parse"):
            self.assertIn("PASS " + check, out)

        # Ship it: drop the .so and its encrypted credentials, start the host.
        env = Env(start_host=False)
        try:
            shutil.copy(so, os.path.join(env.plugin_dir, NAME + ".so"))
            env.cli(["secrets", "encrypt", "--plugin", NAME, "--key-file", env.key_file,
                     "--out", os.path.join(env.cred_dir, NAME + ".cfg.enc")],
                    input='ACME_PAY_SECRET = "%s";\n' % SECRET)
            env.start_host()
            connectors = http("GET", env.admin_url + "/v1/connectors").json["connectors"]
            self.assertEqual(sorted(c["key"] for c in connectors), ["ACME_PAY", "BANCO_X"])
            body = b'{"events":[{"id":"evt_1","type":"payment.succeeded","payment_id":"pay_unknown"}]}'
            unsigned = http("POST", env.url + "/webhooks/acme_pay", body, {"Content-Type": "application/json"})
            self.assertEqual(unsigned.status, 401, unsigned)
            ts = str(int(time.time()))
            sig = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            stale = http("POST", env.url + "/webhooks/acme_pay", body,
                         {"Content-Type": "application/json", "X-Timestamp": str(int(ts) - 3600),
                          "X-Signature": sig})
            self.assertEqual(stale.status, 401, stale)
            signed = http("POST", env.url + "/webhooks/acme_pay", body,
                          {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sig})
            self.assertEqual(signed.status, 404, signed)  # verified and parsed; no such payment
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
