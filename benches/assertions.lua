-- wrk script: POST pre-signed private_key_jwt token requests, one line of FILE per request, each
-- used once (every assertion has its own jti; a second use would be refused as a replay). The
-- lines are split between threads by position. Stops sending when its share runs out.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local n = tonumber(os.getenv("THREADS") or "2")
  bodies = {}
  local i = 0
  for line in io.lines(os.getenv("FILE")) do
    if i % n == id then
      table.insert(bodies, line)
    end
    i = i + 1
  end
  next_body = 1
end

function request()
  local body = bodies[next_body]
  if body == nil then
    -- Out of assertions: the run is too long for FILE. Counted as errors by the server (401).
    body = bodies[1]
  end
  next_body = next_body + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
