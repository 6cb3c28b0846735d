#!/usr/bin/env bash
# Cost per call (`make bench-cost`): on one run, each figure against a fresh devnode over loopback.
#
#   replay        `apigw-connector replay` of BENCH_CALLS calls (default settings): calls per
#                 CPU-second of the whole replay process (user+sys, /usr/bin/time)
#   python        scripts/bench/official_reference.py, a model of the official connector's design
#                 (python3 stdlib, one keep-alive connection, sequential): calls per CPU-second,
#                 and the replay / python ratio
#   floor         internal/transportfloor: the same two messages per call, pre-built, written and
#                 answered on 64 connections with the least client (no decoding, no pipelining);
#                 replay / floor ratio (the replay's CPU includes decoding and parsing its input)
#   latency       replay of BENCH_LAT_CALLS calls to devnode --latency 1ms and 5ms: calls/s vs the
#                 limit node.concurrency / (2 x latency) (64 calls in flight, two exchanges each),
#                 then BenchmarkLatencyBound (pkg/node: Deliver from 64 callers to an in-process
#                 devnode, no replay start-up or input in the figure)
#                 and the transport floor on 64 connections against the same devnode (how near the
#                 limit devnode's own latency handling lets any client come)
#   no pipeline   replay and latency again with node.pipeline_depth=1 (APIGW_CONNECTOR_NODE_PIPELINE_DEPTH):
#                 what pipelining (default depth 16) buys and whether it costs latency-bound throughput
#   least node    replay, the floor and python again against internal/leastnode, the least HTTP/1.1
#                 server (answers each message with an empty 200, the replies to one read in one
#                 write, checks nothing): devnode spends more CPU per call than the connector on
#                 the same cores, which a real node, on its own machine, does not; the least node
#                 counts every message and distinct response id, and the run fails unless all came.
#                 Also replay with GOMAXPROCS=1, as on a task with one vCPU, beside the pipelined
#                 floor (transportfloor -conns 4 -depth 16, GOMAXPROCS=1: the 64 messages in flight
#                 of the defaults, each connection's 16 in one write: what any client that keeps
#                 the defaults' messages in flight must pay for the wire), and the latency-bound
#                 runs against `leastnode -latency` (BENCH_LAT_CALLS and BENCH_CALLS calls)
#
# Each figure is the median of BENCH_RUNS runs (default 3). CPU-seconds are less affected than
# wall time by other load, but a shared machine still inflates them: rerun on a quiet one.
# Env: BENCH_CALLS (20000), BENCH_LAT_CALLS (5000), BENCH_RUNS (3), BENCH_PY_CALLS (BENCH_CALLS).
# Binds 127.0.0.1 only (free ports); stops every process it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${BENCH_CALLS:-20000}"
NL="${BENCH_LAT_CALLS:-5000}"
RUNS="${BENCH_RUNS:-3}"
NPY="${BENCH_PY_CALLS:-$N}"
work="$(mktemp -d)"
dn_pid=""
ln_pid=""
cleanup() {
  [[ -n "$dn_pid" ]] && kill "$dn_pid" 2>/dev/null
  [[ -n "$ln_pid" ]] && kill "$ln_pid" 2>/dev/null
  wait 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT

make -s build OUT="$work/apigw-connector" >/dev/null
go build -o "$work/floor" ./internal/transportfloor
go build -o "$work/leastnode" ./internal/leastnode/cmd/leastnode
bin="$work/apigw-connector"
"$bin" generate --count "$N" --duration 0 --rate 0 --seed 11 --start 2026-01-01T00:00:00Z --out "$work/calls.jsonl" 2>/dev/null
head -n "$NL" "$work/calls.jsonl" >"$work/lat.jsonl"
head -n "$NPY" "$work/calls.jsonl" >"$work/py.jsonl"

# devnode_start [flags]: a fresh devnode (no call seen yet) on a free port; sets addr.
devnode_start() {
  "$bin" devnode --listen 127.0.0.1:0 --log-level warn "$@" >"$work/devnode.log" 2>&1 &
  dn_pid=$!
  addr=""
  for _ in $(seq 100); do
    addr="$(grep -ao 'http://127.0.0.1:[0-9]*' "$work/devnode.log" | head -1 | sed 's#http://##')" || true
    # Listening is printed once bound; connect once to be sure it accepts.
    if [[ -n "$addr" ]] && (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "devnode did not start" >&2; cat "$work/devnode.log" >&2; exit 1
}
devnode_stop() { kill "$dn_pid" 2>/dev/null; wait "$dn_pid" 2>/dev/null || true; dn_pid=""; }

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# replay_run NODE FILE [env...]: one replay of FILE to a fresh NODE (devnode, with
# DEVNODE_FLAGS, or least, with LEAST_FLAGS); prints "cpu_s calls_per_s node_cpu_s".
replay_run() {
  local node=$1 file=$2; shift 2
  if [[ "$node" == least ]]; then least_start; else devnode_start "${DEVNODE_FLAGS[@]}"; fi
  env APIGW_CONNECTOR_NODE_URL="http://$addr" "$@" /usr/bin/time -f 'TIME %U %S' "$bin" replay "$file" >"$work/replay.out" 2>&1 || {
    cat "$work/replay.out" >&2; exit 1; }
  # The node's own CPU (user+sys) for the run: with it, whether a latency-bound
  # figure is bounded by latency or by this machine's cores.
  local ncpu
  if [[ "$node" == least ]]; then
    least_stop "$(grep -c . "$file")" # fails unless every call came once
    ncpu=$lcpu
  else
    ncpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$dn_pid/stat")
    devnode_stop
  fi
  grep -q 'undelivered: *0$' "$work/replay.out" || { echo "replay left calls undelivered" >&2; cat "$work/replay.out" >&2; exit 1; }
  awk -v d="$ncpu" '/^TIME/ {cpu = $2 + $3} /delivered:/ && /calls\/s/ {gsub(/\(/, ""); rate = $3} END {printf "%.3f %s %s\n", cpu, rate, d}' "$work/replay.out"
}

# replay_median NODE FILE [env...]: sets cpu (median CPU-s), rate (median calls/s)
# and ncpu (the node's median CPU-s) of BENCH_RUNS replay_runs.
replay_median() {
  : >"$work/runs"
  for _ in $(seq "$RUNS"); do replay_run "$@" >>"$work/runs"; done
  cpu="$(awk '{print $1}' "$work/runs" | median)"
  rate="$(awk '{print $2}' "$work/runs" | median)"
  ncpu="$(awk '{print $3}' "$work/runs" | median)"
}

# client_median NODE CALLS FN: BENCH_RUNS runs of FN, a client of the node at $addr that
# prints calls_per_cpu_s=, each against a fresh NODE (devnode, or least: fails unless it got
# CALLS calls once each); prints FN's lines and sets med, the median calls per CPU-second.
client_median() {
  local node=$1 calls=$2 fn=$3
  : >"$work/client"
  for _ in $(seq "$RUNS"); do
    if [[ "$node" == least ]]; then least_start; else devnode_start; fi
    "$fn" | tee -a "$work/client" | sed 's/^/  /'
    if [[ "$node" == least ]]; then least_stop "$calls"; else devnode_stop; fi
  done
  med=$(sed -n 's/.*calls_per_cpu_s=\([0-9]*\).*/\1/p' "$work/client" | median)
}
python_client() { python3 scripts/bench/official_reference.py "$addr" "$work/py.jsonl"; }
floor_client() { "$work/floor" -addr "$addr" -calls "$N" -conns 64; }
# The pipelined floor: the defaults' 64 messages in flight, each connection's 16 in one write.
pipelined_floor_client() { GOMAXPROCS=1 "$work/floor" -addr "$addr" -calls "$N" -conns 4 -depth 16; }

DEVNODE_FLAGS=()
echo "== replay of $N calls, default settings ($RUNS runs, medians)"
replay_median devnode "$work/calls.jsonl"
ours=$(awk -v n="$N" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')
echo "  replay                 $cpu CPU-s   $ours calls/CPU-s"
echo "  devnode (node stand-in) $ncpu CPU-s for the same calls"
us_ours=$(awk -v n="$N" -v c="$cpu" 'BEGIN {printf "%.1f", 1e6 * c / n}')
us_dn=$(awk -v n="$N" -v c="$ncpu" 'BEGIN {printf "%.1f", 1e6 * c / n}')

echo "== python reference (scripts/bench/official_reference.py), $NPY calls"
client_median devnode "$NPY" python_client
py=$med
echo "  python reference       $py calls/CPU-s (median)"

echo "== transport floor (internal/transportfloor), $N calls on 64 connections"
client_median devnode "$N" floor_client
floor=$med
echo "  floor                  $floor calls/CPU-s (median)"

lat_runs() { # label env...
  local label=$1; shift
  for lat in 1ms 5ms; do
    DEVNODE_FLAGS=(--latency "$lat")
    replay_median devnode "$work/lat.jsonl" "$@"
    DEVNODE_FLAGS=()
    local ms=${lat%ms}
    awk -v r="$rate" -v ms="$ms" -v l="$label" 'BEGIN {lim = 64 / (2 * ms / 1000); printf "  %-10s %s: %6.0f calls/s of the limit %5.0f = %3.0f%%\n", l, ms "ms", r, lim, 100 * r / lim}'
  done
}
echo "== latency-bound: $NL calls, devnode --latency, node.concurrency 64"
lat_runs default
# The same against the least client on 64 connections: how near the limit
# devnode's latency and this machine let any client come.
for lat in 1ms 5ms; do
  : >"$work/flat"
  for _ in $(seq "$RUNS"); do
    devnode_start --latency "$lat"
    "$work/floor" -addr "$addr" -calls "$NL" -conns 64 | sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' >>"$work/flat"
    devnode_stop
  done
  awk -v n="$NL" -v w="$(median <"$work/flat")" -v ms="${lat%ms}" 'BEGIN {lim = 64 / (2 * ms / 1000); r = n / w; printf "  %-10s %s: %6.0f calls/s of the limit %5.0f = %3.0f%%\n", "floor", ms "ms", r, lim, 100 * r / lim}'
done

echo "== node.pipeline_depth=1 (no pipelining)"
replay_median devnode "$work/calls.jsonl" APIGW_CONNECTOR_NODE_PIPELINE_DEPTH=1
piped=$(awk -v n="$N" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')
echo "  replay                 $cpu CPU-s   $piped calls/CPU-s"
lat_runs depth1 APIGW_CONNECTOR_NODE_PIPELINE_DEPTH=1

echo "== BenchmarkLatencyBound (pkg/node)"
go test -run '^$' -bench BenchmarkLatencyBound -benchtime 1x -count "$RUNS" ./pkg/node/ |
  awk '/^Benchmark/ {n = $1; sub(/-[0-9]+$/, "", n); for (i = 3; i < NF; i += 2) if ($(i+1) == "%limit") printf "  %-44s %5.1f%% of the limit\n", n, $i}'

LEAST_FLAGS=()
# least_start: a fresh least node on a free port (LEAST_FLAGS); sets addr.
least_start() {
  "$work/leastnode" "${LEAST_FLAGS[@]}" >"$work/least.out" 2>&1 &
  ln_pid=$!
  addr=""
  for _ in $(seq 100); do
    addr="$(head -1 "$work/least.out" | sed -n 's#^http://##p')"
    [[ -n "$addr" ]] && return 0
    sleep 0.05
  done
  echo "leastnode did not start" >&2; cat "$work/least.out" >&2; exit 1
}
# least_stop CALLS: stops it; fails unless it read CALLS request and response
# messages with CALLS distinct response ids; sets lcpu (its CPU seconds).
least_stop() {
  kill "$ln_pid"; wait "$ln_pid" 2>/dev/null || true; ln_pid=""
  local line; line="$(grep '^leastnode ' "$work/least.out")"
  if [[ "$line" != *"requests=$1 responses=$1 distinct=$1 "* ]]; then
    echo "the least node did not get every call once: $line (want $1 each)" >&2; exit 1
  fi
  lcpu="${line##*cpu_s=}"
}
echo "== the least node (internal/leastnode): replay of $N calls, default settings"
replay_median least "$work/calls.jsonl"
lours=$(awk -v n="$N" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')
echo "  replay                 $cpu CPU-s   $lours calls/CPU-s   (the least node: $ncpu CPU-s)"
replay_median least "$work/calls.jsonl" GOMAXPROCS=1
lone=$(awk -v n="$N" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')
echo "  replay, GOMAXPROCS=1   $cpu CPU-s   $lone calls/CPU-s"
client_median least "$N" floor_client
lfloor=$med
echo "  floor                  $lfloor calls/CPU-s (median)"
client_median least "$N" pipelined_floor_client
pfloor=$med
echo "  pipelined floor        $pfloor calls/CPU-s (median; 4 connections x depth 16, GOMAXPROCS=1)"
client_median least "$NPY" python_client
lpy=$med
echo "  python reference       $lpy calls/CPU-s (median)"
echo "== the least node with a latency (leastnode -latency: replies in turn, as devnode's): $NL and $N calls"
for calls in "$NL" "$N"; do
  file="$work/lat.jsonl"; [[ "$calls" == "$N" ]] && file="$work/calls.jsonl"
  for lat in 1ms 5ms; do
    LEAST_FLAGS=(-latency "$lat")
    replay_median least "$file"
    LEAST_FLAGS=()
    awk -v r="$rate" -v ms="${lat%ms}" -v n="$calls" -v c="$cpu" -v d="$ncpu" 'BEGIN {lim = 64 / (2 * ms / 1000); printf "  replay %6d calls %s: %6.0f calls/s of the limit %5.0f = %3.0f%%   (%.0f + %.0f us CPU per call: connector + least node)\n", n, ms "ms", r, lim, 100 * r / lim, 1e6 * c / n, 1e6 * d / n}'
  done
done

echo
echo "== figures"
awk -v o="$ours" -v p="$py" -v f="$floor" -v q="$piped" 'BEGIN {
  printf "  replay (default)       %7d calls/CPU-s   goal >= 45000\n", o
  printf "  python reference       %7d calls/CPU-s\n", p
  printf "  replay / python        %7.1fx            goal >= 10x\n", o / p
  printf "  floor (64 conns)       %7d calls/CPU-s\n", f
  printf "  floor / replay         %7.2fx            goal <= 1.5x (the floor decodes nothing)\n", f / o
  printf "  replay, depth 1        %7d calls/CPU-s   (%.1fx python; pipelining off)\n", q, q / p
}'
awk -v o="$lours" -v g="$lone" -v p="$lpy" -v f="$lfloor" -v q="$pfloor" 'BEGIN {
  printf "  least node: replay     %7d calls/CPU-s   goal >= 45000\n", o
  printf "  least node: python     %7d calls/CPU-s\n", p
  printf "  least node: replay / python %5.1fx       goal >= 10x\n", o / p
  printf "  least node: floor / replay  %5.2fx       goal <= 1.5x\n", f / o
  printf "  least node: GOMAXPROCS=1    %7d calls/CPU-s\n", g
  printf "  least node: pipelined floor %7d calls/CPU-s (4 x depth 16, one P)\n", q
  printf "  pipelined floor / replay(1P) %5.2fx       (%.1f us per call above that floor: decoding, parsing, the pipeline)\n", q / g, 1e6 / g - 1e6 / q
}'
awk -v a="$us_ours" -v b="$us_dn" -v cores="$(nproc)" 'BEGIN {
  printf "  CPU per call           %7.1f us connector + %.1f us devnode\n", a, b
  for (ms = 1; ms <= 5; ms += 4) {
    lim = 64 / (2 * ms / 1000)
    printf "  at the %dms limit (%5.0f calls/s) both need %.2f cores; this machine has %d\n", ms, lim, lim * (a + b) / 1e6, cores
  }
}'
