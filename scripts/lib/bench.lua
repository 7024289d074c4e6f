-- wrk script of scripts/bench. Arguments after "--":
--   pay      API_KEY                POST /v1/payments (one new payment each)
--   webhook  EVENTS_LUA NTHREADS    POST /webhooks/bancox, one distinct signed event each
--   simpay   BANK_KEY NONCE         POST /pay on the simulator (distinct Idempotency-Key each)
--   refund   API_KEY IDS_LUA NTHREADS POST /v1/refunds of 100 on each payment id of IDS_LUA in turn
-- done() prints one line: "BENCH requests=.. duration_us=.. p50_us=.. p99_us=.. p999_us=.. errors=.. exhausted=.."

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local mode, n, stride, count, key, nonce = nil, 0, 1, 0, nil, nil
exhausted = 0

function init(args)
  mode = args[1]
  if mode == "pay" then
    key = args[2]
    wrk.method = "POST"
    wrk.path = "/v1/payments"
    wrk.headers["Authorization"] = "Bearer " .. key
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"amount":1050,"currency":"ARS","connector":"BANCO_X","reference":"bench"}'
  elseif mode == "webhook" then
    dofile(args[2])
    stride = tonumber(args[3])
    n = id
  elseif mode == "simpay" then
    key = args[2]
    nonce = args[3]
  elseif mode == "refund" then
    key = args[2]
    dofile(args[3])
    stride = tonumber(args[4])
    n = id
  end
end

function request()
  if mode == "webhook" then
    local i = n % #events + 1
    if n >= #events then exhausted = 1 end
    n = n + stride
    local ev = events[i]
    return wrk.format("POST", "/webhooks/bancox",
      {["Content-Type"] = "application/json", ["X-BancoX-Signature"] = ev[2]}, ev[1])
  elseif mode == "refund" then
    local i = n % #ids + 1
    if n >= #ids then exhausted = 1 end
    n = n + stride
    return wrk.format("POST", "/v1/refunds", {["Authorization"] = "Bearer " .. key,
      ["Content-Type"] = "application/json"}, '{"payment_id":"' .. ids[i] .. '","amount":100}')
  elseif mode == "simpay" then
    count = count + 1
    local ref = string.format("b%s-%d-%d", nonce, id, count)
    local body = string.format('{"amount":1050,"currency":"ARS","ref":"%s","callback_url":"http://127.0.0.1:1/webhooks/bancox"}', ref)
    return wrk.format("POST", "/pay", {["Authorization"] = "Bearer " .. key,
      ["Content-Type"] = "application/json", ["Idempotency-Key"] = ref}, body)
  end
  return wrk.request()
end

function done(summary, latency, requests)
  local e = summary.errors
  local ex = 0
  for _, t in ipairs(threads) do
    if t:get("exhausted") == 1 then ex = 1 end
  end
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d errors=%d exhausted=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect + e.read + e.write + e.status + e.timeout, ex))
end
