#!/usr/bin/env bash
# Two builds side by side, interleaved: CPU per request of switchyard (and of each of its
# threads) at a fixed rate or at saturation, read from /proc. Same placement as bench/run.sh
# (switchyard on core 0; mock and load generator on core 1). Latency percentiles on a shared VM
# move by ±100 µs between identical rounds; CPU per request moves far less, so compare builds
# with this, several pairs, and read the medians.
#
#   bench/ab.sh BIN_A BIN_B [pairs] [seconds]     (default 3 pairs of 6 s)
#   RATE=1000 bench/ab.sh …                       (fixed rate instead of saturation)
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 PAIRS=${3:-3} DUR=${4:-6}
RATE=${RATE:-}
command -v oha >/dev/null || cargo install oha --locked >&2
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }
python3 - "$OUT/body.json" <<'PY'
import json, sys
text = ("Our quarterly revenue report shows growth in the EMEA region, driven by the new enterprise plan "
        "and lower churn among mid-market customers. Please summarize the key drivers in three bullet points. ") * 6
json.dump({"model": "auto", "max_tokens": 64, "messages": [{"role": "user", "content": text[:1000]}]}, open(sys.argv[1], "w"))
PY
if [ -n "$RATE" ]; then LOAD=(-q "$RATE" --latency-correction); else LOAD=(-c 64); fi
# Per-thread CPU ticks of a process: "name ticks" lines.
thread_ticks() { for t in /proc/"$1"/task/*; do awk '{ sub(/^[0-9]+ \(/, ""); n = $0; sub(/\).*/, "", n); split($0, f, ") "); split(f[2], g, " "); print n, g[12] + g[13] }' "$t/stat"; done; }

one() { # bin -> prints "req/s p50 p99 total-us/req [thread=us/req ...]"
  local bin=$1 mock proxy pid
  mock=$(free_port); taskset -c 1 "$bin" mock-upstream --listen "127.0.0.1:$mock" >/dev/null & PIDS+=($!)
  local mock_pid=$!
  wait_http "http://127.0.0.1:$mock/v1/models"
  proxy=$(free_port)
  SWITCHYARD_BENCH_UPSTREAM="http://127.0.0.1:$mock/v1" SWITCHYARD_LOG=warn taskset -c 0 "$bin" serve \
    --policy bench/policy.yaml --listen "127.0.0.1:$proxy" --admin-listen 127.0.0.1:0 --data-dir "$OUT/data-$proxy" >/dev/null &
  pid=$!; PIDS+=($pid)
  wait_http "http://127.0.0.1:$proxy/healthz"
  local url="http://127.0.0.1:$proxy/v1/chat/completions"
  taskset -c 1 oha -z 2s --no-tui -m POST -H 'content-type: application/json' -D "$OUT/body.json" "${LOAD[@]}" "$url" >/dev/null
  thread_ticks "$pid" > "$OUT/t0"
  taskset -c 1 oha -z "${DUR}s" --no-tui --output-format json -m POST -H 'content-type: application/json' -D "$OUT/body.json" "${LOAD[@]}" "$url" > "$OUT/o.json"
  thread_ticks "$pid" > "$OUT/t1"
  kill "$pid" "$mock_pid"
  python3 - "$OUT" "$DUR" "$(getconf CLK_TCK)" <<'PY'
import json, sys, collections
out, dur, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = json.load(open(f"{out}/o.json")); n = d["summary"]["requestsPerSec"] * dur
def ticks(f):
    c = collections.Counter()
    for line in open(f):
        name, t = line.rsplit(" ", 1); c[name] += int(t)
    return c
t0, t1 = ticks(f"{out}/t0"), ticks(f"{out}/t1")
per = {k: (t1[k] - t0.get(k, 0)) / hz / n * 1e6 for k in t1}
lp = d["latencyPercentiles"]
print(f"{n/dur:7.0f} req/s  p50 {lp['p50']*1e6:5.0f} µs  p99 {lp['p99']*1e6:6.0f} µs  CPU {sum(per.values()):5.1f} µs/req  "
      + "  ".join(f"{k}={v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05))
PY
}
for i in $(seq 1 "$PAIRS"); do
  echo "A $(one "$A")"
  echo "B $(one "$B")"
done
