# apigw-connector build entry points. CI and the Dockerfile call the same
# targets, so the binary CI builds and tests is the binary the image holds.
#
#   make build         static binary into bin/ (same recipe as image-build)
#   make image-build   the exact build step the Dockerfile runs (OUT=... to choose the path)
#   make lambda        Lambda zips into dist/ (scripts/build-lambda.sh)
#   make test          vet, race tests, short fuzz (scripts/test.sh)
#   make ci            what CI runs: build, then test
#
# VERSION and COMMIT are stamped into `apigw-connector version`; the Docker
# build passes them as build arguments because the build context has no .git.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
OUT     ?= bin/apigw-connector

# Static, reproducible: no cgo (runs on scratch), no local paths, no VCS
# probing (the Docker context has no .git; the version is stamped explicitly).
BUILD_ENV   := CGO_ENABLED=0
BUILD_FLAGS := -trimpath -buildvcs=false
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build image-build lambda test ci

build: image-build

image-build:
	$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -ldflags '$(LDFLAGS)' -o '$(OUT)' ./cmd/apigw-connector

lambda:
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' scripts/build-lambda.sh

test:
	scripts/test.sh

ci: build test

# (further targets, e.g. demo, go below)

# The one-command local demo: AWS emulators (npm, cached in .cache/emulators),
# a 4-shard stream, the devnode node stand-in, two connector workers and
# realistic API Gateway traffic; prints the discovered inventory and fails if
# any call was lost. Needs Go and Node.js 20+. Ctrl-C stops everything.
#   make demo                  30 s of traffic at 200 calls/s
#   make demo DURATION=1m RATE=500
DURATION ?= 30s
RATE     ?= 200

# The build is its own step with a message first: on a first run Go compiles
# for up to a minute, and a silent terminal looks hung.
.PHONY: demo
demo:
	@echo "make demo: compiling the demo runner (go build ./cmd/apigw-demo; up to a minute on a first run, cached afterwards)..."
	@$(GO) build -o bin/apigw-demo ./cmd/apigw-demo
	@echo "make demo: starting bin/apigw-demo --duration '$(DURATION)' --rate '$(RATE)'"
	@bin/apigw-demo --duration '$(DURATION)' --rate '$(RATE)'

# One real worker draining a pre-filled 4- and 16-shard stream on the
# emulators (calls/s, CPU per million calls, peak RSS) and the failover time.
.PHONY: bench-drain
bench-drain:
	scripts/bench-drain.sh

# The lease layer at fleet size (256 shards, 8 in-process workers, 10 s failover):
# balance time, flapping, recovery after 2 workers die, table calls vs the Java KCL.
.PHONY: bench-fleet
bench-fleet:
	scripts/bench-fleet.sh

# Cost per call: replay's calls per CPU-second vs a Python model of the official
# connector's design and vs the transport floor; latency-bound throughput at 1 and 5 ms.
.PHONY: bench-cost
bench-cost:
	scripts/bench-cost.sh
