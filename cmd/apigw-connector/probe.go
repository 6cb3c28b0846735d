package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/wallarm/apigw-connector/pkg/nodeprobe"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// cmdProbe checks the configured node end to end; exit 0 only when it
// accepted the synthetic call and nothing configured failed (Report.OK).
func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", stderr)
	var cf commonFlags
	cf.register(fs)
	host := fs.String("host", "", "API host the probe call names (default probe.apigw-connector.invalid; use one of your API domains when the node has allowed_hosts)")
	metricsURL := fs.String("node-metrics", "", "the node's Prometheus endpoint (e.g. http://node:9000/metrics): read its connector counters before and after")
	timeout := fs.Duration("timeout", 0, "bound for the probe call, retries included (default connect + 2 x reply timeout)")
	setUsage(fs, "probe [--config FILE] [--host HOST] [--node-metrics URL] [--timeout D]",
		"Checks the configured node before you deploy: TCP/TLS, the health endpoint, then one synthetic call sent as\n"+
			"OPTIONS (API Discovery ignores OPTIONS) with a fresh request id. Exit 0 only when the node accepted both messages and, with node.pipeline_depth above 1, answered requests pipelined on one connection.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return usageErrorf("takes no arguments, got %q", fs.Args())
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if err := cfg.Node.Validate(); err != nil {
		return err
	}
	log := telemetry.NewLogger(cfg.Log, stderr)
	rep := nodeprobe.Run(ctx, cfg.Node, nodeprobe.Options{Host: *host, NodeMetricsURL: *metricsURL, CallTimeout: *timeout}, log)
	if err := rep.Write(stdout); err != nil {
		return fmt.Errorf("print report: %w", err)
	}
	if !rep.OK() {
		return exitError{code: 1}
	}
	return nil
}
