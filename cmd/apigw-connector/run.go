package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/wallarm/apigw-connector/internal/app"
	"github.com/wallarm/apigw-connector/internal/procs"
	"github.com/wallarm/apigw-connector/pkg/config"
	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/source/kinesis"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// source is what `run` consumes: a Kinesis worker or a Firehose receiver.
type source interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Ready() bool
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var cf commonFlags
	cf.register(fs)
	setUsage(fs, "run [flags]", `Consumes the source selected by source.type (kinesis or firehose) and forwards every
API call to the node until SIGTERM/SIGINT: then it stops reading, lets in-flight calls
settle within the grace period, checkpoints and exits 0; a second signal exits at once.
Settings: --config FILE, APIGW_CONNECTOR_* variables (apigw-connector check-config --list).`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("takes no arguments, got %q: settings come from --config, the environment and flags", fs.Args())
	}
	cfg, err := cf.load()
	if err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	if err := cfg.ValidateForRun(); err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	log := newLogger(cfg, stderr)
	procs.FitCPULimit(log)
	reg := telemetry.NewRegistry()

	core, err := app.NewCore(cfg, reg, log)
	if err != nil {
		return err
	}
	var src source
	var grace time.Duration
	switch cfg.Source.Type {
	case config.SourceKinesis:
		// Region, credentials and endpoints come from the SDK's standard
		// sources (AWS_REGION, task role, AWS_ENDPOINT_URL_KINESIS, ...).
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("load AWS configuration: %w", err)
		}
		src, err = kinesis.New(cfg.Kinesis, awsCfg, core.Pipeline, reg, log.With("component", "kinesis"))
		if err != nil {
			return fmt.Errorf("build kinesis source: %w", err)
		}
		grace = cfg.Kinesis.ShutdownGrace
	case config.SourceFirehose:
		src, err = firehose.New(cfg.Firehose, core.Pipeline, reg, log.With("component", "firehose"))
		if err != nil {
			return fmt.Errorf("build firehose source: %w", err)
		}
		grace = cfg.Firehose.AckDeadline
	}

	var tel *telemetry.Server
	if cfg.Metrics.Addr != "" {
		tel = telemetry.NewServerConfig(cfg.Metrics, reg, log.With("component", "telemetry"))
		tel.AddReadyCheck("node", core.NodeReady)
		tel.AddReadyCheck("source", func(context.Context) error {
			if !src.Ready() {
				return errors.New(cfg.Source.Type + " source not ready")
			}
			return nil
		})
		if err := tel.Start(ctx); err != nil {
			return err
		}
	}
	if err := core.Start(ctx, true); err != nil {
		return err
	}
	log.Info("starting", "source", cfg.Source.Type, "node", cfg.Redacted().Node.URL, "commit", commit)
	// The source gets its own context: the signal context ends on SIGTERM,
	// but the source must keep its leases renewed while it drains.
	if err := src.Start(context.WithoutCancel(ctx)); err != nil {
		shutdownAll(log, grace, nil, core, tel)
		return sourceStartError(cfg.Source.Type, err)
	}
	<-ctx.Done()
	log.Info("stopping: draining in-flight calls", "grace", grace.String())
	if err := shutdownAll(log, grace, src, core, tel); err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// sourceStartError adds the fix to a source's start error. Each source's
// error already starts with what failed ("start kinesis source: ...",
// "start firehose receiver: ..."), so it gets no second prefix.
func sourceStartError(sourceType string, err error) error {
	var op *net.OpError
	if sourceType == config.SourceFirehose && errors.As(err, &op) && op.Op == "listen" {
		return fmt.Errorf("%w: set firehose.listen (env %sFIREHOSE_LISTEN) to a free address, e.g. \":8080\"", err, config.EnvPrefix)
	}
	return err
}

// shutdownAll stops in data-flow order: the source first (it stops reading,
// waits for its batches to settle, checkpoints and releases leases), then
// the pipeline, then the telemetry listener.
func shutdownAll(log *slog.Logger, grace time.Duration, src source, core *app.Core, tel *telemetry.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace+10*time.Second)
	defer cancel()
	var errs []error
	if src != nil {
		if err := src.Shutdown(ctx); err != nil {
			errs = append(errs, err) // it names itself: "shut down kinesis source: ..."
		}
	}
	if err := core.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if tel != nil {
		if err := tel.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		log.Error("unclean shutdown", "err", err)
	}
	return err
}
