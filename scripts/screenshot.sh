#!/usr/bin/env bash
# Makes the README's screenshot of devnode's inventory page the way the
# browser test loads it: headless Chromium against a devnode on a free
# loopback port, fed generated calls in rounds (one per 10 s step of the
# page's sparklines) so the calls-over-time column has a shape.
#   scripts/screenshot.sh [OUT.png]   (default docs/images/devnode-inventory.png)
# Env: CHROMIUM (default chromium), ROUNDS (default 12), STEP (seconds, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/images/devnode-inventory.png}
chromium=${CHROMIUM:-chromium}
rounds=${ROUNDS:-12}
step=${STEP:-10}
command -v "$chromium" >/dev/null || { echo "chromium not found: apt-get install chromium (or set CHROMIUM)" >&2; exit 1; }

work=$(mktemp -d)
devnode_pid=""
cleanup() {
  if [ -n "$devnode_pid" ]; then kill "$devnode_pid" 2>/dev/null || true; wait "$devnode_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "building bin/apigw-connector"
go build -o "$work/apigw-connector" ./cmd/apigw-connector
bin="$work/apigw-connector"

"$bin" devnode --listen 127.0.0.1:0 >"$work/devnode.log" 2>&1 &
devnode_pid=$!
url=""
for _ in $(seq 50); do
  url=$(sed -n 's/^devnode listening on \(http:[^ ]*\).*/\1/p' "$work/devnode.log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "devnode did not start:" >&2; cat "$work/devnode.log" >&2; exit 1; }
echo "devnode at $url"

# One generation (unique request ids, the same APIs throughout), replayed in
# slices of varying size: a wave of traffic over the rounds.
"$bin" generate --count 20000 --rate 0 --apis 3 --endpoints 5 --error-share 0.12 --seed 42 --format lines >"$work/calls.log" 2>/dev/null
sizes=(120 180 260 340 300 220 140 90 160 280 420 360 240 150 100 60)
line=1
for ((i = 0; i < rounds; i++)); do
  n=${sizes[i % ${#sizes[@]}]}
  sed -n "${line},$((line + n - 1))p" "$work/calls.log" |
    APIGW_CONNECTOR_NODE_URL="$url" "$bin" replay --metrics-addr off --log-level error - >/dev/null
  line=$((line + n))
  echo "round $((i + 1))/$rounds: $n calls"
  [ $((i + 1)) -lt "$rounds" ] && sleep "$step"
done

mkdir -p "$(dirname "$out")"
"$chromium" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --run-all-compositor-stages-before-draw --user-data-dir="$work/profile" --hide-scrollbars --window-size=1200,800 --virtual-time-budget=3000 \
  --screenshot="$out" "$url/" 2>"$work/chromium.log" || { cat "$work/chromium.log" >&2; exit 1; }
echo "wrote $out ($(wc -c <"$out") bytes)"
