package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

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
	format := fs.String("format", "table", "output: table, json, openapi (an OpenAPI 3.1 document) or html (one self-contained page)")
	title := fs.String("title", "APIs seen in API Gateway access logs", "info.title of the OpenAPI document, the HTML page's heading")
	setUsage(fs, "inventory [--config FILE] [--format table|json|openapi|html] [FILE...|-]",
		"Builds the API inventory from exported access logs or CloudWatch Logs data (every input replay reads),\n"+
			"without a node: endpoints by host, method and path template, with call counts and statuses.\n"+
			"access_log.* settings (field mapping, hosts) apply as in run and replay. No FILE or - reads stdin.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *format {
	case "table", "json", "openapi", "html":
	default:
		return usageErrorf("--format %q: want table, json, openapi or html", *format)
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
	case "html":
		err = inventory.WriteHTML(stdout, inventory.Page{
			Title:    *title,
			Subtitle: "Built by apigw-connector inventory from " + inputsLabel(names) + ", " + time.Now().UTC().Format("2006-01-02 15:04 UTC") + ", with no node.",
			Facts: []inventory.Fact{
				{Label: "lines not API calls", Value: int64(total.ParseErrors), Warn: true},
				{Label: "documents undecodable", Value: int64(total.DecodeErrors), Warn: true},
			},
			Endpoints: eps,
		})
	default:
		err = inventory.WriteTable(stdout, eps)
		fmt.Fprintf(stderr, "%s from %s (%s, %s)\n",
			inventory.Plural(int64(len(eps)), "endpoint", "endpoints"), inventory.Plural(int64(total.Calls), "call", "calls"),
			inventory.Plural(int64(total.ParseErrors), "line not an API call", "lines not API calls"),
			inventory.Plural(int64(total.DecodeErrors), "document undecodable", "documents undecodable"))
	}
	return err
}

// inputsLabel names the inputs for the HTML page: "stdin", one file, or a count.
func inputsLabel(names []string) string {
	switch {
	case len(names) == 1 && names[0] == "-":
		return "stdin"
	case len(names) == 1:
		return filepath.Base(names[0])
	}
	return strconv.Itoa(len(names)) + " inputs"
}
