-- wrk script: a rate-limited flood of failing client authentications (issue 14).
-- FLOOD=unknown: random made-up client ids; FLOOD=wrong: the ids in KNOWN (comma-separated)
-- with a wrong secret. RATE is the total requests/s across all connections (wrk -c).
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local mode = os.getenv("FLOOD") or "unknown"
local known = {}
for id in string.gmatch(os.getenv("KNOWN") or "", "[^,]+") do table.insert(known, id) end
local conns = tonumber(os.getenv("CONNS") or "64")
local rate = tonumber(os.getenv("RATE") or "1000")
local letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function delay()
  -- Each connection sends one request per conns/rate seconds.
  return math.floor(1000 * conns / rate)
end

function request()
  local id
  if mode == "wrong" and #known > 0 then
    id = known[math.random(#known)]
  else
    local t = {}
    for i = 1, 22 do
      local k = math.random(#letters)
      t[i] = letters:sub(k, k)
    end
    id = "tc_" .. table.concat(t)
  end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. b64(id .. ":tss_wrong"),
  }, "grant_type=client_credentials")
end

done = function(summary, latency, requests)
  io.write(string.format("FLOOD %s sent=%d req_per_s=%.0f\n", mode, summary.requests,
    summary.requests / (summary.duration / 1e6)))
end
