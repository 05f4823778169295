-- wrk script: send pre-built raw HTTP requests round robin, then print one JSON line of results.
-- Usage: wrk -t1 -cN -dS -s requests.lua http://127.0.0.1:PORT -- REQUESTS_FILE
-- REQUESTS_FILE holds records "<byte length>\n<raw request bytes>" (written by rawclient.write_requests).
-- Each wrk thread starts at its own offset so connections cycle through different apps and keys.

local requests = {}
local i = 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  while true do
    local line = f:read("*l")
    if not line then break end
    requests[#requests + 1] = f:read(tonumber(line))
  end
  f:close()
  i = math.random(#requests)
end

function request()
  i = i % #requests + 1
  return requests[i]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
