#!/usr/bin/env bash
# Fleet simulation of the lease layer (pkg/lease/fleet_test.go, TestFleet): in-process
# workers on one lease table on dynalite, at the Java KCL's default failover time.
# Prints the time to an even balance, lease moves once balanced (must be 0), the time to
# recover after killing FLEET_KILL workers abruptly, any moment two workers processed one
# shard at once (must be none), and DynamoDB calls and items read per worker per minute
# beside what the Java KCL's defaults imply for the same fleet.
#
# Usage: scripts/bench-fleet.sh          (make bench-fleet)
# Env:   FLEET_SHARDS (256), FLEET_WORKERS (8), FLEET_KILL (2), FLEET_FAILOVER (10s),
#        FLEET_STABLE (stable window, default 120s).
# Takes about 2-4 minutes on 2 cores; binds 127.0.0.1 only; stops every process it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-emulators.sh >/dev/null
export FLEET_SHARDS="${FLEET_SHARDS:-256}" FLEET_WORKERS="${FLEET_WORKERS:-8}" FLEET_KILL="${FLEET_KILL:-2}"
export FLEET_FAILOVER="${FLEET_FAILOVER:-10s}" FLEET_STABLE="${FLEET_STABLE:-120s}" FLEET_REQUIRE_FEWER_READS=1
echo "== TestFleet: $FLEET_SHARDS shards, $FLEET_WORKERS workers, kill $FLEET_KILL, failover $FLEET_FAILOVER"
go test -run '^TestFleet$' -count 1 -v -timeout 20m ./pkg/lease/ 2>&1 | grep -E 'fleet_test|^(--- |ok|FAIL|PASS)'
