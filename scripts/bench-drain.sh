#!/usr/bin/env bash
# System benchmark of the Kinesis source (cmd/apigw-connector/drain_bench_test.go):
#
#   BenchmarkDrain     one real `apigw-connector run` worker (non-race build, `taskset -c 0` when
#                      allowed, GOMAXPROCS=1) drains a pre-filled stream on kinesis-mock (leases in
#                      dynalite) into devnode, a no-op net/http sink, or (loaded) the least HTTP/1.1
#                      sink with its replies held until the worker has read the whole stream:
#                      calls/s, compressed MiB/s, the worker's CPU seconds per million calls, MiB
#                      per CPU second (vs the 8 MiB/s read limit of 4 shards), peak RSS (4 and 16
#                      shards).
#   BenchmarkFailover  two workers, kill -9 of the one holding most leases under steady
#                      production: seconds from the kill to the first call of its shards delivered
#                      by the survivor, against failover_time + 5 s.
#
# Usage: scripts/bench-drain.sh
# Env:   DRAIN_CALLS (calls per drain, default 150000), DRAIN_FAILOVER_TIME (default 10s),
#        DRAIN_PERF=DIR (perf-record the worker during each drain and print its top functions),
#        DRAIN_SYSCALLS=1 (perf-stat the worker: system calls and context switches per call, and
#        its threads' CPU: sysmon's share shows there; the counting itself makes each system call
#        dearer, so compare CPU figures between runs without it), DRAIN_GOMAXPROCS (default 1),
#        BENCH ('BenchmarkDrain|BenchmarkFailover' by default).
# Takes about 3-4 minutes on 2 cores; binds 127.0.0.1 only; stops every process it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-emulators.sh >/dev/null

BENCH="${BENCH:-BenchmarkDrain|BenchmarkFailover}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

echo "== go test -bench '$BENCH' (DRAIN_CALLS=${DRAIN_CALLS:-150000}, DRAIN_FAILOVER_TIME=${DRAIN_FAILOVER_TIME:-10s})"
set +e
go test -run '^$' -bench "$BENCH" -benchtime 1x -timeout 20m ./cmd/apigw-connector/ 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e

echo
echo "== figures"
# Benchmark lines are "Name-P  N  value unit  value unit ..."; print one figure per line.
awk '/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name); printf "%s\n", name
  for (i = 3; i < NF; i += 2) if ($(i+1) != "ns/op") printf "  %-18s %s\n", $(i+1), $i
}' "$out"
cat <<'EOF'

  calls/s, MiB/s     wall-clock rate, first to last call at the sink; capped by the machine:
                     the emulator (node), the worker and this test process (the sink) share
                     its cores, so the worker is not CPU-bound here
  startup-s          worker start to the first call at the sink (lease table, leases, first read;
                     /loaded: the whole stream read)
  cpu-s/Mcalls       worker CPU (user+sys) per million calls, startup included; /loaded: from
                     the moment the sink starts answering a worker that has read the whole stream
                     (kinesis-mock serves about 1.3 MB/s, so an ungated worker mostly waits for it
                     and pays a wake-up every few calls; a task with a backlog does not)
  MiB/cpu-s          compressed MiB per worker CPU second: the rate one fully busy core sustains
  x8MiB/s-per-core   MiB/cpu-s / 8 (the read limit of 4 shards); >= 1 meets the target
  peak-RSS-MiB       the worker's VmHWM
  failover-s         kill -9 to the first call of the dead worker's shards from the survivor
EOF

if [[ -n "${DRAIN_PERF:-}" ]] && command -v perf >/dev/null; then
  for f in "$DRAIN_PERF"/*.perf.data; do
    [[ -f "$f" ]] || continue
    echo
    echo "== top functions of the worker: $(basename "$f")"
    perf report -i "$f" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25 || true # head ends the pipe early (SIGPIPE)
  done
fi
exit "$rc"
