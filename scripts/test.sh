#!/usr/bin/env bash
# The project's test command (README "Test it"; .ci/run calls exactly this).
# vet, the race-enabled test suite (real emulators over loopback), then a short
# run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-10s}"

echo "== go vet"
go vet ./...

echo "== staticcheck"
command -v staticcheck >/dev/null || { echo "staticcheck not found: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 (.ci/run does) and put \$(go env GOPATH)/bin on PATH" >&2; exit 1; }
staticcheck ./...

echo "== cfn-lint (deploy/cloudformation/*.yaml)"
if ! command -v cfn-lint >/dev/null 2>&1; then
  echo "cfn-lint is missing: the CloudFormation templates in deploy/cloudformation are checked against AWS's resource schemas with it. Install it (pip install 'cfn-lint>=1.51,<2') and run this script again." >&2
  exit 1
fi
cfn-lint --version
cfn-lint deploy/cloudformation/*.yaml

echo "== go test -race"
go test -race -count=1 -timeout 25m ./...

echo "== fuzz (${FUZZTIME} each)"
# Every func FuzzXxx in a _test.go file, run briefly in its package.
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' pkg cmd internal 2>/dev/null | sort | while read -r f; do
  dir="./$(dirname "$f")"
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/^func //'); do
    echo "-- $name ($dir)"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir"
  done
done
echo "== all tests passed"
