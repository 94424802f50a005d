-- Sends requests round-robin from the lines of $BENCH_BODIES, with $BENCH_TOKEN as the
-- bearer token: with $BENCH_METHOD POST (the default) each line is a JSON body for
-- $BENCH_PATH, with GET each line is a path and query. Prints one machine-readable
-- summary line.
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or ""),
}
local path = os.getenv("BENCH_PATH") or "/api/v1/logs"
local method = os.getenv("BENCH_METHOD") or "POST"
local counter = 0

function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end

local i = 0
function request()
  i = i + 1
  local line = bodies[(i + (offset or 0)) % #bodies + 1]
  if method == "GET" then
    return wrk.format("GET", line, headers)
  end
  return wrk.format("POST", path, headers, line)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d status_errors=%d socket_errors=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
