// A merchant's webhook receiver for test_notify.py: every request is checked
// with the official Standard Webhooks library (npm `standardwebhooks`, which
// no one here wrote) against each secret the test configured for its path,
// recorded as one JSON line, then answered as the path's mode says:
// "ok" 200, "fail" 500, "gone" 410, "hang" never, "slow" 200 after the
// path's "delay_ms" (default 2000).
// Usage: node notify_receiver.js PORT_FILE RECORD_FILE CONFIG_FILE
//   CONFIG_FILE: {"<path>": {"secrets": ["whsec_..."], "mode": "ok"}}, re-read
//   on every request (the test rewrites it atomically).
const http = require("http");
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

const [portFile, recordFile, configFile] = process.argv.slice(2);

function config() {
  try {
    return JSON.parse(fs.readFileSync(configFile, "utf8"));
  } catch (e) {
    return {};
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const path = req.url;
    const conf = config()[path] || { secrets: [], mode: "ok" };
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    const verified = (conf.secrets || []).map((s) => {
      try {
        new Webhook(s).verify(body, headers);
        return true;
      } catch (e) {
        return false;
      }
    });
    const mode = conf.mode || "ok";
    const status = mode === "fail" ? 500 : mode === "gone" ? 410 : mode === "hang" ? 0 : 200;
    const answer = () => {
      res.writeHead(status, { "Content-Type": "text/plain" });
      res.end(status === 200 ? "ok" : "failing on purpose");
    };
    fs.appendFileSync(recordFile, JSON.stringify({
      path, method: req.method, headers, contentType: req.headers["content-type"] || null,
      body, verified, status, at: Date.now(),
    }) + "\n");
    if (mode === "hang")
      return; // never answered: the host's timeout ends it
    if (mode === "slow")
      return setTimeout(answer, conf.delay_ms || 2000);
    answer();
  });
});
server.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(portFile + ".tmp", String(server.address().port));
  fs.renameSync(portFile + ".tmp", portFile);
});
