# apigw-connector container image.
#
# Build:  docker build --build-arg VERSION=1.2.3 --build-arg COMMIT=$(git rev-parse --short=12 HEAD) -t apigw-connector .
#
# The build stage runs `make image-build`, the very target CI runs, so the
# binary CI builds and tests is the one this image holds.
#
# The runtime stage is `scratch`: distroless publishes only moving tags
# (`nonroot`, `latest`) and digests, and every image here must be pinned to an
# exact version. A static Go binary needs nothing but CA certificates (TLS to
# the node and to AWS), copied from the pinned build image. The user is the
# numeric 65532:65532 (distroless's "nonroot"), so no /etc/passwd is needed.

# Runs on the builder's platform and cross-compiles (buildx --platform
# linux/arm64 for Graviton / CpuArchitecture ARM64) without emulation.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod/go.sum are unchanged.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS=linux
ARG TARGETARCH
RUN GOOS="${TARGETOS}" GOARCH="${TARGETARCH:-$(go env GOARCH)}" \
    make image-build VERSION="${VERSION}" COMMIT="${COMMIT}" OUT=/out/apigw-connector \
 && go version -m /out/apigw-connector | grep -q 'CGO_ENABLED=0'

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="apigw-connector" \
      org.opencontainers.image.description="API Gateway access logs to the Wallarm Native Node" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/apigw-connector /apigw-connector
# Non-root, and nothing is written at run time: fine with a read-only root
# filesystem (ECS ReadonlyRootFilesystem, docker run --read-only).
USER 65532:65532
# 9102: /metrics /healthz /readyz; 8080: Firehose HTTP endpoint (source.type firehose).
EXPOSE 9102 8080
# The image has no shell: the binary checks its own /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/apigw-connector", "healthcheck"]
ENTRYPOINT ["/apigw-connector"]
CMD ["run"]
