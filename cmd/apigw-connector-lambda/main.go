// Command apigw-connector-lambda is the connector as an AWS Lambda function
// (provided.al2023, binary "bootstrap"): it takes CloudWatch Logs subscription
// events and Kinesis event-source-mapping batches and forwards their API calls
// to the Wallarm Native Node. It is configured like the official Python
// function (X_NODE_URL, X_NODE_SCHEME) plus the optional APIGW_CONNECTOR_*
// settings; it logs JSON to stdout and serves no metrics.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/internal/app"
	"github.com/wallarm/apigw-connector/pkg/config"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/source/lambda"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// Stamped at build time through -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// dedupCallIDs bounds the delivered call ids remembered across invocations of
// one execution environment (~40 bytes each), so a retried batch does not send
// the calls that did get through again.
const dedupCallIDs = 100_000

func main() {
	h, err := setup()
	if err != nil {
		// Lambda shows init errors in the function's log; exit so it reports
		// the init failure instead of invoking a broken handler.
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("apigw-connector-lambda cannot start", "err", err)
		os.Exit(1)
	}
	awslambda.Start(h)
}

func setup() (*lambda.Handler, error) {
	node.Version = version // the node sees this build's version
	cfg, err := config.LoadFromOS("")
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	cfg.Log.Format = "json" // CloudWatch Logs parses JSON lines
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	log := telemetry.NewLogger(cfg.Log, os.Stdout).With("version", version)
	// Components take a registerer; the function serves no metrics endpoint.
	core, err := app.NewCore(cfg, prometheus.NewRegistry(), log)
	if err != nil {
		return nil, err
	}
	// The pipeline lives as long as the execution environment; Lambda freezes
	// it between invocations, and every invocation waits for its own calls.
	// No health probe: nothing reads readiness here.
	if err := core.Start(context.Background(), false); err != nil {
		return nil, fmt.Errorf("start pipeline: %w", err)
	}
	h := lambda.NewHandler(core.Pipeline, log)
	h.Dedup = firehose.NewIDSet(dedupCallIDs)
	log.Info("apigw-connector-lambda ready", "commit", commit, "node_url", cfg.Redacted().Node.URL)
	return h, nil
}
