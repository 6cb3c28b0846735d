// Command apigw-demo runs the connector's local demo end to end (make demo):
// AWS emulators, a 4-shard Kinesis stream, the devnode stand-in for the
// Wallarm node, two connector workers and realistic API Gateway traffic; it
// prints the discovered API inventory and checks that no call was lost.
// Ctrl-C stops everything it started; a second Ctrl-C stops it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/wallarm/apigw-connector/internal/demo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o := demo.DefaultOptions()
	fs := flag.NewFlagSet("apigw-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long to generate traffic")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "generated calls per second")
	fs.IntVar(&o.APIs, "apis", o.APIs, "number of API Gateway APIs")
	fs.IntVar(&o.EndpointsPerAPI, "endpoints", o.EndpointsPerAPI, "endpoints per API")
	fs.Float64Var(&o.ErrorShare, "error-share", o.ErrorShare, "share of 4xx/5xx calls, 0-1")
	fs.Int64Var(&o.Seed, "seed", 0, "traffic generator seed (0: random)")
	fs.IntVar(&o.Shards, "shards", o.Shards, "shards of the Kinesis stream")
	fs.IntVar(&o.Workers, "workers", o.Workers, "connector workers sharing the stream")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "how long to wait for the last calls after the traffic ends")
	fs.DurationVar(&o.ProgressInterval, "progress", o.ProgressInterval, "progress line interval")
	fs.StringVar(&o.ConnectorBinary, "connector-bin", "", "use this apigw-connector binary instead of building one")
	fs.StringVar(&o.WorkDir, "work-dir", "", "keep logs, manifest and inventory in this folder (default: a temporary folder, removed on success)")
	fs.BoolVar(&o.SkipInstall, "skip-install", false, "do not run scripts/install-emulators.sh")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: apigw-demo [flags]   (make demo DURATION=30s)\n\nRuns the connector locally against AWS emulators and a node stand-in, with realistic\nAPI Gateway traffic, and checks that every call reaches the node. Needs Go and Node.js 20+.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "apigw-demo takes no arguments, got %q\n", fs.Args())
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "apigw-demo: %v\n", err)
		return 2
	}
	o.Out = stdout

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopNow := make(chan struct{})
	o.StopNow = stopNow
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		fmt.Fprintln(stderr, "apigw-demo: stopping (Ctrl-C again to kill at once)")
		cancel()
		<-sigs
		close(stopNow)
	}()

	_, err := demo.Run(ctx, o)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return 130
	case errors.Is(err, demo.ErrCallsLost), errors.Is(err, demo.ErrInventoryMismatch):
		fmt.Fprintf(stderr, "apigw-demo: FAILED: %v\n", err)
		return 1
	default:
		fmt.Fprintf(stderr, "apigw-demo: %v\n", err)
		return 1
	}
}
