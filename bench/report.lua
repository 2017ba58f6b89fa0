-- Shared wrk `done` hook: prints one machine-readable line that bench/run.sh parses.
-- Only `done` is defined here (no per-request hooks), so wrk sends its prebuilt request at full speed.
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK_RESULT requests=%d duration_s=%.3f rps=%.1f non2xx=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, secs, summary.requests / secs, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
