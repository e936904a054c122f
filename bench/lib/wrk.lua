-- wrk script shared by every scenario that uses wrk. Configured through the environment so that the
-- single-URL case stays a static request (wrk then never calls into Lua per request):
--   BENCH_PREFIX  "http://127.0.0.1:ORIGINPORT" for forward proxies (absolute-form), "" for reverse proxies
--   BENCH_HOST    Host header (the origin's host:port in both cases)
--   BENCH_PATH    path, or path prefix for the cycle/unique modes
--   BENCH_MODE    one (same URL), cycle (PATH..i%N), unique (PATH..i, every URL once)
--   BENCH_N       number of URLs in cycle mode
-- done() prints one JSON line (prefixed "BENCH_JSON ") with exact counts and latency percentiles in us.

local mode = os.getenv("BENCH_MODE") or "one"
local prefix = os.getenv("BENCH_PREFIX") or ""
local path = os.getenv("BENCH_PATH") or "/"
local n = tonumber(os.getenv("BENCH_N") or "1")

wrk.headers["Host"] = os.getenv("BENCH_HOST")

if mode == "one" then
    wrk.path = prefix .. path
else
    local i = 0
    local headers = { ["Host"] = os.getenv("BENCH_HOST") }
    request = function()
        local p
        if mode == "cycle" then
            p = path .. (i % n)
        else
            p = path .. i
        end
        i = i + 1
        return wrk.format("GET", prefix .. p, headers)
    end
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests": %d, "bytes": %d, "duration_us": %d, "err_connect": %d, "err_read": %d, ' ..
        '"err_write": %d, "err_status": %d, "err_timeout": %d, "lat_p50_us": %d, "lat_p99_us": %d, ' ..
        '"lat_mean_us": %.1f, "lat_max_us": %d}\n',
        summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
