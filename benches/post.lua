-- wrk script: POST a client-credentials token request. BODY and AUTH come from the environment
-- (benches/run.sh sets them); AUTH is the full Authorization header value or empty.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

-- One machine-readable line; `errors` counts HTTP >= 400 and socket errors, so a run of
-- refusals cannot pass for a run of tokens.
done = function(summary, latency, requests)
  io.write(string.format("RESULT req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
