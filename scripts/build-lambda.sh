#!/usr/bin/env bash
# Cross-builds the Lambda function for provided.al2023 on arm64 and x86_64:
# dist/apigw-connector-lambda-<arch>.zip, each holding the static binary
# `bootstrap` (the name the OS-only runtime executes).
#   VERSION, COMMIT  stamped into the binary (defaults: git describe / dev)
#   DIST             output directory (default dist)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
COMMIT="${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
DIST="${DIST:-dist}"
GO="${GO:-go}"
mkdir -p "$DIST"
DIST="$(cd "$DIST" && pwd)"

for pair in arm64:arm64 x86_64:amd64; do
	arch="${pair%%:*}" goarch="${pair##*:}"
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT
	# lambda.norpc drops the legacy go1.x RPC mode: smaller binary, not needed on provided.al2023.
	CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$GO" build -trimpath -buildvcs=false -tags lambda.norpc \
		-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
		-o "$work/bootstrap" ./cmd/apigw-connector-lambda
	zip="$DIST/apigw-connector-lambda-${arch}.zip"
	rm -f "$zip"
	# Fixed timestamps and mode keep the zip reproducible; fall back to Python when zip is absent.
	touch -t 202001010000 "$work/bootstrap"
	chmod 0755 "$work/bootstrap"
	if command -v zip >/dev/null 2>&1; then
		(cd "$work" && zip -q -X -D "$zip" bootstrap)
	else
		python3 - "$work/bootstrap" "$zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
info.external_attr = (0o100755 << 16)
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read())
PY
	fi
	rm -rf "$work"
	trap - EXIT
	echo "built $zip ($arch, version $VERSION)"
done
