#!/usr/bin/env bash
# The project's test command (README "Test it"; .ci/run calls exactly this).
# vet, the race-enabled test suite (real emulators over loopback), then a short
# run of every fuzz target. Every stage and every fuzz target says what it runs
# before it starts, since several of them compile silently for a minute.
#
#   DRY_RUN=1 scripts/test.sh   print the stages and fuzz targets, run nothing
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-10s}"
DRY_RUN="${DRY_RUN:-}"

# stage NAME WHAT: announces a stage with the clock time, so a silent
# compile is visibly in progress, and the previous stage's duration.
stage_start=$SECONDS
stage() {
  if [[ -n "${stage_name:-}" ]]; then
    echo "   ${stage_name}: done in $((SECONDS - stage_start))s"
  fi
  stage_name="$1"
  stage_start=$SECONDS
  echo "== $1 ($(date +%H:%M:%S)): $2"
}

# run CMD...: prints the command, then runs it (unless DRY_RUN).
run() {
  echo "   \$ $*"
  [[ -n "$DRY_RUN" ]] || "$@"
}

stage "go vet" "type-checks every package; prints nothing until done (up to ~90s on a cold build cache)"
run go vet ./...

stage "staticcheck" "every package"
if [[ -z "$DRY_RUN" ]]; then
  command -v staticcheck >/dev/null || { echo "staticcheck not found: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 (.ci/run does) and put \$(go env GOPATH)/bin on PATH" >&2; exit 1; }
fi
run staticcheck ./...

stage "cfn-lint" "deploy/cloudformation/*.yaml against AWS's resource schemas"
if [[ -z "$DRY_RUN" ]] && ! command -v cfn-lint >/dev/null 2>&1; then
  echo "cfn-lint is missing: the CloudFormation templates in deploy/cloudformation are checked against AWS's resource schemas with it. Install it (pip install 'cfn-lint>=1.51,<2') and run this script again." >&2
  exit 1
fi
run cfn-lint --version
run cfn-lint deploy/cloudformation/*.yaml

stage "go test -race" "every package, one ok/FAIL line each as it finishes"
run go test -race -count=1 -timeout 25m ./...

# The race detector builds pkg/node's socket reads and writes through package
# syscall (sysconn_race_linux.go); the raw system calls a real build uses are
# tested here, with the whole node client over them.
stage "go test pkg/node pkg/pipeline" "without -race: the raw system call path of the node client's sockets, allocations per call"
run go test -count=1 -timeout 5m ./pkg/node/ ./pkg/pipeline/

# Every func FuzzXxx in a _test.go file, run briefly in its package.
targets=()
while read -r f; do
  dir="./$(dirname "$f")"
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/^func //'); do
    targets+=("$dir $name")
  done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' pkg cmd internal 2>/dev/null | sort)
fuzz_out="$(mktemp)"
trap 'rm -f "$fuzz_out"' EXIT
# fuzz_once DIR NAME: one fuzz run, its output shown and kept in $fuzz_out.
fuzz_once() {
  echo "   \$ go test -run '^\$' -fuzz '^$2\$' -fuzztime $FUZZTIME $1"
  [[ -n "$DRY_RUN" ]] && return 0
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" 2>&1 | tee "$fuzz_out"
  return "${PIPESTATUS[0]}"
}
stage "fuzz" "${#targets[@]} targets, ${FUZZTIME} each; each first builds with coverage instrumentation (silent, up to a minute)"
i=0
for t in "${targets[@]}"; do
  i=$((i + 1))
  dir="${t% *}" name="${t#* }"
  echo "-- [$i/${#targets[@]}] $name ($dir) from $(date +%H:%M:%S): building, then fuzzing for ${FUZZTIME}"
  # Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
  # failure: "context deadline exceeded" and no failing input written
  # (go.dev/issue/75804, fixed in Go 1.27). Such a run fuzzed its whole time
  # and found nothing, so that one signature is run again once, and a second
  # one in a row is reported and passed. Any other failure (an input written,
  # a crash, a hang, another message) fails the run at once.
  attempt=1
  until fuzz_once "$dir" "$name"; do
    if ! grep -q '^    context deadline exceeded$' "$fuzz_out" || grep -q 'Failing input written' "$fuzz_out"; then
      exit 1
    fi
    if ((attempt == 2)); then
      echo "-- $name: the toolchain's fuzztime deadline race again (go.dev/issue/75804); it fuzzed its full time twice with no failing input: passed"
      break
    fi
    echo "-- $name: the toolchain's fuzztime deadline race (go.dev/issue/75804), not a failing input; running it once more"
    attempt=2
  done
done
stage "done" "all stages finished"
if [[ -n "$DRY_RUN" ]]; then
  echo "== dry run: nothing was run"
else
  echo "== all tests passed"
fi
