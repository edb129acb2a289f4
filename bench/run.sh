#!/usr/bin/env bash
# Proxy overhead, side by side: the in-repo mock upstream direct vs through switchyard, in the
# same run, alternating, with a bare TCP relay on switchyard's core as the floor of any proxy's
# added latency. switchyard is pinned to core 0; the mock and the load generator to core 1.
#
#   bench/run.sh [seconds-per-run]        (default 15)
#   RATE=500 STORE=postgres://postgres@127.0.0.1:5432/test bench/run.sh 10
#                                          (the shared PostgreSQL store, in a schema of its own;
#                                           PG_SYNC=off adds synchronous_commit=off to the session)
#
# Installs its load generator (oha, from crates.io) when missing. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-15}
RATE=${RATE:-1000}
RATE2=${RATE2:-5000} # one more round at this rate (0: none)
# The fixed-rate rounds also run a busy-polling switchyard (`serve --busy-poll-us`) and relay
# with this window (0: skip them).
BUSY_POLL_US=${BUSY_POLL_US:-2000}
OUT=$(mktemp -d)
PIDS=()
STORE=${STORE:-}
SCHEMA=sy_bench_$$
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$STORE" ]; then sleep 0.5; psql "$STORE" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null || true; fi
}
trap cleanup EXIT
if [ -n "$STORE" ]; then psql "$STORE" -qc "CREATE SCHEMA $SCHEMA"; fi

cargo build --release --bin switchyard --example ttfb --example relay >&2
command -v oha >/dev/null || cargo install oha --locked >&2
# SWITCHYARD_BIN=path compares another build (say, of the previous commit) on the same machine.
BIN=${SWITCHYARD_BIN:-target/release/switchyard}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

start_mock() { # port, per-token-us
  taskset -c 1 "$BIN" mock-upstream --listen "127.0.0.1:$1" --per-token-us "$2" >/dev/null &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$1/v1/models"
}
start_proxy() { # port, upstream port, extra serve args...
  local port=$1 up=$2; shift 2
  local store=()
  if [ -n "$STORE" ]; then
    local opts="-csearch_path%3D$SCHEMA"
    if [ -n "${PG_SYNC:-}" ]; then opts="$opts%20-csynchronous_commit%3D$PG_SYNC"; fi
    store=(--store "$STORE?options=$opts" --replica-id "bench-$port")
  fi
  SWITCHYARD_BENCH_UPSTREAM="http://127.0.0.1:$up/v1" SWITCHYARD_LOG=warn \
    taskset -c 0 "$BIN" serve --policy bench/policy.yaml --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$OUT/data-$port" "${store[@]}" "$@" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/healthz"
}

MOCK=$(free_port); start_mock "$MOCK" 0
PROXY=$(free_port); start_proxy "$PROXY" "$MOCK"
PROXY_PID=${PIDS[-1]}
# The floor: a bare TCP relay on the proxy's core (examples/relay.rs), no HTTP and no work.
RELAY=$(free_port)
taskset -c 0 target/release/examples/relay "127.0.0.1:$RELAY" "127.0.0.1:$MOCK" >/dev/null &
PIDS+=($!)
RELAY_PID=$!
wait_http "http://127.0.0.1:$RELAY/v1/models"
if [ "$BUSY_POLL_US" -gt 0 ]; then
  # Idle (parked) while the other stages run: they spin only while their own load arrives.
  BPROXY=$(free_port); start_proxy "$BPROXY" "$MOCK" --busy-poll-us "$BUSY_POLL_US"
  BPROXY_PID=${PIDS[-1]}
  BRELAY=$(free_port)
  taskset -c 0 target/release/examples/relay "127.0.0.1:$BRELAY" "127.0.0.1:$MOCK" "$BUSY_POLL_US" >/dev/null &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$BRELAY/v1/models"
fi
SMOCK=$(free_port); start_mock "$SMOCK" 1000
SPROXY=$(free_port); start_proxy "$SPROXY" "$SMOCK"

# A ~1 KB chat request.
python3 - "$OUT/body.json" <<'PY'
import json, sys
text = ("Our quarterly revenue report shows growth in the EMEA region, driven by the new enterprise plan "
        "and lower churn among mid-market customers. Please summarize the key drivers in three bullet points. ") * 6
json.dump({"model": "auto", "max_tokens": 64, "messages": [{"role": "user", "content": text[:1000]}]}, open(sys.argv[1], "w"))
PY

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
load() { # name url extra-oha-args...
  local name=$1 url=$2; shift 2
  taskset -c 1 oha -z "${DUR}s" --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -D "$OUT/body.json" "$@" "$url" > "$OUT/$name.json"
}

echo "warm-up" >&2
load warm "http://127.0.0.1:$PROXY/v1/chat/completions" -q 500 >/dev/null
[ "$BUSY_POLL_US" -eq 0 ] || load warm "http://127.0.0.1:$BPROXY/v1/chat/completions" -q 500 >/dev/null
T0=$(cpu_ticks "$PROXY_PID")
BT=0
for round in 1 2; do
  echo "round $round: ${RATE} req/s" >&2
  load "direct-$round" "http://127.0.0.1:$MOCK/v1/chat/completions" -q "$RATE" --latency-correction
  load "relay-$round" "http://127.0.0.1:$RELAY/v1/chat/completions" -q "$RATE" --latency-correction
  load "proxy-$round" "http://127.0.0.1:$PROXY/v1/chat/completions" -q "$RATE" --latency-correction
  if [ "$BUSY_POLL_US" -gt 0 ]; then
    load "brelay-$round" "http://127.0.0.1:$BRELAY/v1/chat/completions" -q "$RATE" --latency-correction
    B0=$(cpu_ticks "$BPROXY_PID")
    load "bproxy-$round" "http://127.0.0.1:$BPROXY/v1/chat/completions" -q "$RATE" --latency-correction
    BT=$((BT + $(cpu_ticks "$BPROXY_PID") - B0))
  fi
done
T1=$(cpu_ticks "$PROXY_PID")
hwm() { awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status"; }
RSS_RATE_KB=$(hwm)
if [ "$RATE2" -gt 0 ]; then
  echo "one round: ${RATE2} req/s" >&2
  load direct-r2 "http://127.0.0.1:$MOCK/v1/chat/completions" -q "$RATE2" --latency-correction
  load relay-r2 "http://127.0.0.1:$RELAY/v1/chat/completions" -q "$RATE2" --latency-correction
  load proxy-r2 "http://127.0.0.1:$PROXY/v1/chat/completions" -q "$RATE2" --latency-correction
  if [ "$BUSY_POLL_US" -gt 0 ]; then
    load brelay-r2 "http://127.0.0.1:$BRELAY/v1/chat/completions" -q "$RATE2" --latency-correction
    load bproxy-r2 "http://127.0.0.1:$BPROXY/v1/chat/completions" -q "$RATE2" --latency-correction
  fi
fi
RSS_RATE2_KB=$(hwm)
echo "saturation" >&2
load direct-sat "http://127.0.0.1:$MOCK/v1/chat/completions" -c 64
R0=$(cpu_ticks "$RELAY_PID")
load relay-sat "http://127.0.0.1:$RELAY/v1/chat/completions" -c 64
R1=$(cpu_ticks "$RELAY_PID")
S0=$(cpu_ticks "$PROXY_PID")
load proxy-sat "http://127.0.0.1:$PROXY/v1/chat/completions" -c 64
S1=$(cpu_ticks "$PROXY_PID")
echo "streaming time to first byte" >&2
target/release/examples/ttfb "http://127.0.0.1:$SMOCK/v1/chat/completions" 300 > "$OUT/ttfb-direct.json"
target/release/examples/ttfb "http://127.0.0.1:$SPROXY/v1/chat/completions" 300 > "$OUT/ttfb-proxy.json"
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")
TICKS=$(getconf CLK_TCK)

python3 - "$OUT" "$RSS_KB" "$((T1 - T0))" "$TICKS" "$RATE" "$DUR" "$((S1 - S0))" "$RATE2" "$RSS_RATE_KB" "$RSS_RATE2_KB" "$((R1 - R0))" "$BUSY_POLL_US" "$BT" <<'PY'
import json, os, sys
out, rss_kb, ticks, hz, rate, dur, sat_ticks, rate2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
rss_rate_kb, rss_rate2_kb, relay_ticks = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11])
busy_us, busy_ticks = int(sys.argv[12]), int(sys.argv[13])
def r(name): return json.load(open(f"{out}/{name}.json"))
def pct(d, p): return d["latencyPercentiles"][p] * 1e6
def added(p, d): return " | ".join(f"{pct(p, k) - pct(d, k):.0f} µs" for k in ("p50", "p90", "p99"))
def rounds(label, direct, relay, proxy):
    d, b, p = r(direct), r(relay), r(proxy)
    print(f"| {label}: direct | {pct(d,'p50'):.0f} µs | {pct(d,'p90'):.0f} µs | {pct(d,'p99'):.0f} µs |")
    print(f"| {label}: through switchyard | {pct(p,'p50'):.0f} µs | {pct(p,'p90'):.0f} µs | {pct(p,'p99'):.0f} µs |")
    print(f"| {label}: **added by switchyard** | **{added(p, d)}** |")
    print(f"| {label}: added by a bare relay (the floor) | {added(b, d)} |")
    print(f"| {label}: switchyard beyond the relay | {added(p, b)} |")
    if p["summary"]["successRate"] < 1:
        print(f"| {label}: success through switchyard | {p['summary']['successRate']*100:.1f}% | | |")
    if busy_us > 0:
        bb, bp = r("b" + relay), r("b" + proxy)
        print(f"| {label}: **added by switchyard `--busy-poll-us {busy_us}`** | **{added(bp, d)}** |")
        print(f"| {label}: added by a busy-polling relay | {added(bb, d)} |")
        if bp["summary"]["successRate"] < 1:
            print(f"| {label}: success through busy-polling switchyard | {bp['summary']['successRate']*100:.1f}% | | |")
print(f"| 1 KB prompt, {dur} s per run | p50 | p90 | p99 |")
print("|---|---|---|---|")
for n in (1, 2):
    rounds(f"{rate} req/s, round {n}", f"direct-{n}", f"relay-{n}", f"proxy-{n}")
if rate2 > 0:
    rounds(f"{rate2} req/s", "direct-r2", "relay-r2", "proxy-r2")
ds, bs, ps = r("direct-sat"), r("relay-sat"), r("proxy-sat")
print()
print(f"| saturation (64 connections) | req/s | p50 | p99 | success |")
print("|---|---|---|---|---|")
for name, d in (("direct", ds), ("through the bare relay", bs), ("through switchyard", ps)):
    print(f"| {name} | {d['summary']['requestsPerSec']:.0f} | {pct(d,'p50'):.0f} µs | {pct(d,'p99'):.0f} µs | {d['summary']['successRate']*100:.1f}% |")
# The load generator and the mock share the other core, so saturation may be theirs, not
# switchyard's: its own CPU per request at saturation gives what one core of it can serve.
sat_reqs = ps["summary"]["requestsPerSec"] * dur
sat_busy = sat_ticks / hz / dur
print()
print(f"switchyard at saturation: {sat_busy*100:.0f}% of its core busy, {sat_ticks/hz/sat_reqs*1e6:.1f} µs CPU per request, so one core serves about {sat_reqs/(sat_ticks/hz):.0f} req/s")
relay_reqs = bs["summary"]["requestsPerSec"] * dur
print(f"the bare relay at saturation: {relay_ticks/hz/dur*100:.0f}% of its core busy, {relay_ticks/hz/max(relay_reqs, 1)*1e6:.1f} µs CPU per request (the kernel's share of a hop: four socket operations and the wake-ups)")
td, tp = json.load(open(f"{out}/ttfb-direct.json")), json.load(open(f"{out}/ttfb-proxy.json"))
print()
print("| streaming (300 sequential streams, a chunk every ~1 ms) | TTFB p50 | TTFB p99 | inter-chunk gap p50 | gap p99 |")
print("|---|---|---|---|---|")
for name, t in (("direct", td), ("through switchyard", tp)):
    print(f"| {name} | {t['ttfb_us']['p50']} µs | {t['ttfb_us']['p99']} µs | {t['inter_chunk_gap_us']['p50']} µs | {t['inter_chunk_gap_us']['p99']} µs |")
print(f"| **added** | **{tp['ttfb_us']['p50']-td['ttfb_us']['p50']} µs** | **{tp['ttfb_us']['p99']-td['ttfb_us']['p99']} µs** | | |")
reqs = sum(r(f"proxy-{n}")["summary"]["requestsPerSec"] * dur for n in (1, 2))
print()
if busy_us > 0:
    breqs = sum(r(f"bproxy-{n}")["summary"]["requestsPerSec"] * dur for n in (1, 2))
    print(f"busy-polling switchyard (`--busy-poll-us {busy_us}`): {busy_ticks/hz/breqs*1000:.3f} s of CPU per 1,000 requests at {rate} req/s (its core busy {busy_ticks/hz/(2*dur)*100:.0f}% of the time)")
print(f"switchyard peak RSS (VmHWM): {rss_rate_kb/1024:.1f} MiB after the {rate} req/s rounds, {rss_rate2_kb/1024:.1f} MiB after {rate2} req/s, {rss_kb/1024:.1f} MiB after saturation and streaming; CPU: {ticks/hz/reqs*1000:.3f} s per 1,000 requests at {rate} req/s")
PY
