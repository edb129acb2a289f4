#!/usr/bin/env bash
# Soak: N seconds (default 600) at RATE req/s (default 1000) through switchyard with 5% of
# upstream answers failing (injected 500s, absorbed by fallback). Placement as in bench/run.sh:
# switchyard on core 0, the mocks and the load generator on core 1. Samples switchyard's RSS,
# open file descriptors and TCP connections every 10 s, gives the latency percentiles of each
# tenth of the run (every request's timing, from the load generator's SQLite output), then checks
# that the ledger holds one row per answered request. A script, not a unit test:
# `bench/soak.sh [seconds]`.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-600}
RATE=${RATE:-1000}
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cargo build --release --bin switchyard >&2
command -v oha >/dev/null || cargo install oha --locked >&2
# SWITCHYARD_BIN=path soaks another build (say, of the previous commit).
BIN=${SWITCHYARD_BIN:-target/release/switchyard}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

FLAKY=$(free_port); taskset -c 1 "$BIN" mock-upstream --listen "127.0.0.1:$FLAKY" --fault-every 20 >/dev/null & PIDS+=($!)
HEALTHY=$(free_port); taskset -c 1 "$BIN" mock-upstream --listen "127.0.0.1:$HEALTHY" >/dev/null & PIDS+=($!)
wait_http "http://127.0.0.1:$FLAKY/v1/models"; wait_http "http://127.0.0.1:$HEALTHY/v1/models"
PROXY=$(free_port)
SWITCHYARD_SOAK_FLAKY="http://127.0.0.1:$FLAKY/v1" SWITCHYARD_SOAK_HEALTHY="http://127.0.0.1:$HEALTHY/v1" SWITCHYARD_LOG=error \
  taskset -c 0 "$BIN" serve --policy bench/soak-policy.yaml --listen "127.0.0.1:$PROXY" --admin-listen 127.0.0.1:0 \
  --data-dir "$OUT/data" >/dev/null &
PID=$!; PIDS+=($PID)
wait_http "http://127.0.0.1:$PROXY/healthz"
echo '{"model":"auto","max_tokens":64,"messages":[{"role":"user","content":"Summarize the attached meeting notes in three bullet points for the team."}]}' > "$OUT/body.json"

sample() { # elapsed-seconds
  local rss fds conns
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  fds=$(ls "/proc/$PID/fd" | wc -l)
  conns=$(ss -tanp 2>/dev/null | grep -c "pid=$PID," || true)
  echo "$1 $rss $fds $conns" >> "$OUT/samples.txt"
}
taskset -c 1 oha -z "${DUR}s" -q "$RATE" --latency-correction --db-url "$OUT/requests.db" --no-tui --output-format json -m POST -H 'content-type: application/json' \
  -D "$OUT/body.json" "http://127.0.0.1:$PROXY/v1/chat/completions" > "$OUT/oha.json" &
LOAD=$!
start=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do sample $(( $(date +%s) - start )); sleep 10; done
wait "$LOAD"
sleep 1; sample $(( $(date +%s) - start ))
kill -INT "$PID"; wait "$PID" || true   # graceful: the ledger is flushed on the way out

python3 - "$OUT" <<'PY'
import json, sqlite3, sys
out = sys.argv[1]
oha = json.load(open(f"{out}/oha.json"))
codes = oha.get("statusCodeDistribution", {})
answered = sum(codes.values())
db = sqlite3.connect(f"{out}/data/ledger.sqlite3")
rows = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
ok_rows = db.execute("SELECT COUNT(*) FROM requests WHERE status='ok'").fetchone()[0]
samples = [list(map(int, l.split())) for l in open(f"{out}/samples.txt")]
rss = [s[1] for s in samples]
warm = rss[len(rss)//10:] or rss
print(f"| answered | status codes | ledger rows (ok) | RSS first→last (MiB) | RSS max−min after warm-up | fds first→last | TCP conns first→last |")
print(f"|---|---|---|---|---|---|---|")
print(f"| {answered} | {codes} | {rows} ({ok_rows}) | {rss[0]/1024:.1f}→{rss[-1]/1024:.1f} | {(max(warm)-min(warm))/1024:.1f} MiB ({100*(max(warm)-min(warm))/max(min(warm),1):.1f}%) | {samples[0][2]}→{samples[-1][2]} | {samples[0][3]}→{samples[-1][3]} |")
# Latency over time: each tenth of the run from every request's own timing (start with latency
# correction, so a stall counts against the requests that waited behind it).
import statistics
reqs = sqlite3.connect(f"{out}/requests.db").execute(
    "SELECT COALESCE(start_latency_correction, start), end - COALESCE(start_latency_correction, start) FROM oha WHERE status = 200").fetchall()
span = max(s for s, _ in reqs)
def q(v, p): return v[min(len(v) - 1, int(p * len(v)))]
print()
print("| part of the run | requests | p50 | p90 | p99 | max | RSS at its end (MiB) |")
print("|---|---|---|---|---|---|---|")
parts = []
for i in range(10):
    lo, hi = span * i / 10, span * (i + 1) / 10
    v = sorted(d for s, d in reqs if lo <= s < hi or (i == 9 and s == hi))
    rss_end = min(samples, key=lambda smp: abs(smp[0] - hi))[1]
    parts.append((q(v, .5), q(v, .99)))
    print(f"| {lo:.0f}–{hi:.0f} s | {len(v)} | {q(v,.5)*1e6:.0f} µs | {q(v,.9)*1e6:.0f} µs | {q(v,.99)*1e6:.0f} µs | {v[-1]*1e6:.0f} µs | {rss_end/1024:.1f} |")
p50s, p99s = [p[0] for p in parts], [p[1] for p in parts]
print(f"p50 over the tenths: first {p50s[0]*1e6:.0f} µs, last {p50s[-1]*1e6:.0f} µs, median {statistics.median(p50s)*1e6:.0f} µs, spread {(max(p50s)-min(p50s))*1e6:.0f} µs; "
      f"p99: first {p99s[0]*1e6:.0f} µs, last {p99s[-1]*1e6:.0f} µs, median {statistics.median(p99s)*1e6:.0f} µs")
# Requests still in flight when the load generator stops are answered and charged by switchyard
# but not counted by oha: the ledger may hold a few more rows, never fewer.
print(f"every answered request in the ledger: {ok_rows >= codes.get('200', 0)} ({ok_rows - codes.get('200', 0)} cut by the load generator's deadline)")
PY
