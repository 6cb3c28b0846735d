package capture

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
)

// ErrUsage marks command-line mistakes of RunCommand.
var ErrUsage = errors.New("capture usage")

// RunCommand implements `apigw-connector capture`: record until ctx ends,
// then print the summary on stdout (and to --summary). Logs go to stderr.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: apigw-connector capture --listen ADDR [--out FILE] [--upstream URL] [--summary FILE]

A recording endpoint for connector traffic. Point any connector at it (this one with
node.url, the official Lambda bundle with X_NODE_URL/X_NODE_SCHEME=http): every message is
written verbatim as a JSON line. With --upstream each message is forwarded unchanged to a
real node and its reply recorded and passed back. On exit (Ctrl-C) it prints the shape it saw
and the apigw-connector settings that reproduce it.

flags:`)
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:5055", "address to listen on (host:port; port 0 picks a free one)")
	out := fs.String("out", "capture.jsonl", `file for the JSON lines ("-": stdout, "": none)`)
	upstream := fs.String("upstream", "", "forward every message to this node (http://host:port) and record its reply")
	summary := fs.String("summary", "", "also write the summary to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: takes no arguments, got %q", ErrUsage, fs.Args())
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var w io.Writer
	switch *out {
	case "":
	case "-":
		w = stdout
	default:
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("capture: --out: %w", err)
		}
		defer f.Close()
		w = f
	}
	s, err := New(Options{Upstream: *upstream}, w, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("capture: --listen %s: %w", *listen, err)
	}
	addr := ln.Addr().String()
	fmt.Fprintf(stderr, "capture: listening on %s; recording to %s; Ctrl-C prints the summary\n", addr, describeOut(*out))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	werr := s.Shutdown(sctx)
	sum := Summarize(s.Messages(), addr)
	if err := sum.Write(stdout); err != nil {
		return fmt.Errorf("capture: print summary: %w", err)
	}
	if *summary != "" {
		f, err := os.Create(*summary)
		if err != nil {
			return fmt.Errorf("capture: --summary: %w", err)
		}
		if err := sum.Write(f); err != nil {
			f.Close()
			return fmt.Errorf("capture: write summary: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("capture: write summary: %w", err)
		}
	}
	return werr
}

func describeOut(out string) string {
	switch out {
	case "":
		return "nothing (summary only)"
	case "-":
		return "stdout"
	}
	return out
}
