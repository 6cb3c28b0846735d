package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/inventory"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/source/file"
)

// cmdInventory builds the API inventory locally from anything replay reads,
// with no node: the same decoding, parsing and host rules, and the same
// folding of ids into templates as devnode.
func cmdInventory(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("inventory", stderr)
	var cf commonFlags
	cf.register(fs)
	format := fs.String("format", "table", "output: table, json or openapi (an OpenAPI 3.1 document)")
	title := fs.String("title", "APIs seen in API Gateway access logs", "info.title of the OpenAPI document")
	setUsage(fs, "inventory [--config FILE] [--format table|json|openapi] [FILE...|-]",
		"Builds the API inventory from exported access logs or CloudWatch Logs data (every input replay reads),\n"+
			"without a node: endpoints by host, method and path template, with call counts and statuses.\n"+
			"access_log.* settings (field mapping, hosts) apply as in run and replay. No FILE or - reads stdin.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *format {
	case "table", "json", "openapi":
	default:
		return usageErrorf("--format %q: want table, json or openapi", *format)
	}
	for _, name := range fs.Args() {
		if name == "-" {
			continue
		}
		if _, err := os.Stat(name); err != nil {
			return usageErrorf("cannot read input: %v", err)
		}
	}
	cfg, err := cf.load()
	if err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	// No node: only the settings that shape decoding and parsing count.
	if err := cfg.AccessLog.Fields.Validate(); err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	log := newLogger(cfg, stderr)
	parser, err := accesslog.NewParser(cfg.AccessLog.Fields)
	if err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	inv := inventory.New()
	p, err := pipeline.New(cfg.Pipeline, inventory.Sink{Inv: inv}, cwlogs.NewDecoder(cfg.DecoderOptions()), parser, prometheus.NewRegistry(), log.With("component", "pipeline"))
	if err != nil {
		return fmt.Errorf("build pipeline: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	defer p.Shutdown(context.WithoutCancel(ctx))

	var total pipeline.Outcome
	emit := func(b pipeline.Batch) error {
		s, err := p.Submit(ctx, b)
		if err != nil {
			return err
		}
		o, err := s.Wait(ctx)
		total.Add(o)
		return err
	}
	names := fs.Args()
	if len(names) == 0 {
		names = []string{"-"}
	}
	opts := file.DefaultOptions()
	opts.MaxDocumentBytes = cfg.Decode.MaxDecompressedBytes
	for _, name := range names {
		r, label := stdin, "stdin"
		var f *os.File
		if name != "-" {
			if f, err = os.Open(name); err != nil {
				return err
			}
			r, label = f, name
		}
		_, err = file.Read(ctx, label, r, opts, emit)
		if f != nil {
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", label, err)
		}
	}
	eps := inv.Snapshot()
	switch *format {
	case "json":
		err = inventory.WriteJSON(stdout, eps)
	case "openapi":
		err = inventory.WriteOpenAPI(stdout, eps, *title)
	default:
		err = inventory.WriteTable(stdout, eps)
		fmt.Fprintf(stderr, "%d endpoints from %d calls (%d lines not API calls, %d documents undecodable)\n",
			len(eps), total.Calls, total.ParseErrors, total.DecodeErrors)
	}
	return err
}
