package devnode

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// shutdownGrace bounds the graceful shutdown once ctx is cancelled.
const shutdownGrace = 5 * time.Second

// ErrUsage marks the command-line mistakes RunCommand reports (bad flags or
// arguments), so that callers can exit with a usage status.
var ErrUsage = errors.New("devnode usage")

// ErrFlagParse is the ErrUsage of a flag the flag package rejected: it has
// already printed the mistake and the usage on stderr.
var ErrFlagParse = fmt.Errorf("%w: bad flag", ErrUsage)

// RunCommand implements `apigw-connector devnode`: it serves a node stand-in on
// --listen until ctx is cancelled, then shuts down gracefully. It prints the bound
// address on stdout and logs on stderr. -h returns flag.ErrHelp.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d := DefaultOptions()
	fs := flag.NewFlagSet("devnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: apigw-connector devnode [flags]\n\nA local stand-in for the Wallarm Native Node (connector-server mode), strict about the raw profile.\nControl endpoints (requests without a request-id header): GET / (inventory table), /inventory, /stats, /metrics, "+DefaultHealthPath+".\n\nflags:")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:5050", "address to listen on (host:port; port 0 picks a free one)")
	failFor := fs.Duration("fail-for", 0, "answer --fail-status to every message for this long after start (fault drill)")
	failStatus := fs.Int("fail-status", d.FailStatus, "status answered while failing")
	latency := fs.Duration("latency", 0, "delay added to every reply")
	pendingTTL := fs.Duration("pending-ttl", d.PendingTTL, "how long a request message waits for its response message")
	requireConn := fs.Bool("require-connector-headers", d.RequireConnectorHeaders, "reject messages without connector type and version headers")
	respMethod := fs.String("response-method", d.ResponseMethod, "method of response messages")
	pathPrefix := fs.String("path-prefix", "", "path prefix every message must carry (stripped for the inventory)")
	hRequestID := fs.String("request-id-header", d.Headers.RequestID, "request id header name")
	hHost := fs.String("forwarded-host-header", d.Headers.ForwardedHost, "original host header name")
	hFor := fs.String("forwarded-for-header", d.Headers.ForwardedFor, "client ip header name")
	hType := fs.String("connector-type-header", d.Headers.ConnectorType, "connector type header name")
	hVersion := fs.String("connector-version-header", d.Headers.ConnectorVersion, "connector version header name")
	hCode := fs.String("response-code-header", d.Headers.ResponseCode, "response code header name")
	allowTypes := fs.String("allowed-connector-types", "", "comma-separated connector types to accept (empty: any); others are rejected for connector_info")
	allowHosts := fs.String("allowed-hosts", "", "comma-separated original hosts to accept (empty: any); others are rejected for host")
	allowNets := fs.String("allowed-networks", "", "comma-separated CIDRs connectors may connect from (empty: any); others are rejected for remote_address")
	logFormat := fs.String("log-format", "text", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrFlagParse, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: takes no arguments, got %q: pass settings as flags", ErrUsage, fs.Args())
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level must be debug, info, warn or error, got %q", ErrUsage, *logLevel)
	}
	// Durations as "4.01s", as the connector logs them.
	hopts := &slog.HandlerOptions{Level: level, ReplaceAttr: telemetry.ReplaceAttr}
	var log *slog.Logger
	switch *logFormat {
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	default:
		return fmt.Errorf("%w: --log-format must be json or text, got %q", ErrUsage, *logFormat)
	}

	o := d
	o.FailFor, o.FailStatus, o.Latency = *failFor, *failStatus, *latency
	o.PendingTTL, o.RequireConnectorHeaders = *pendingTTL, *requireConn
	o.ResponseMethod, o.PathPrefix = *respMethod, *pathPrefix
	o.AllowedConnectorTypes, o.AllowedHosts, o.AllowedNetworks = splitList(*allowTypes), splitList(*allowHosts), splitList(*allowNets)
	o.Headers = Headers{
		RequestID: *hRequestID, ForwardedHost: *hHost, ForwardedFor: *hFor,
		ConnectorType: *hType, ConnectorVersion: *hVersion, ResponseCode: *hCode,
	}
	if *pendingTTL <= 0 {
		return fmt.Errorf("%w: --pending-ttl must be positive, got %s", ErrUsage, *pendingTTL)
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: check devnode flags: %v", ErrUsage, err)
	}

	s := New(o, nil, log)
	addr, err := s.Start(ctx, *listen)
	if err != nil {
		return fmt.Errorf("start devnode: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "devnode listening on http://%s\n", addr); err != nil {
		err = fmt.Errorf("print address: %w", err)
		return errors.Join(err, s.Shutdown(context.Background()))
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return err
	}
	st := s.Stats()
	log.Info("devnode stopped", "completed", st.Completed, "pending", st.Pending,
		"duplicates", st.Duplicates, "missing_response", st.MissingResponse, "rejects", st.Rejects)
	return nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
