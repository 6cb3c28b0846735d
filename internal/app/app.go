// Package app wires the configured components of the core pipeline
// (decoder, parser, node client, pipeline) for the commands and the Lambda.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/config"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// ProbeInterval is how often the node's health is checked, so /readyz and
// apigw_connector_node_up are right while no call is flowing.
const ProbeInterval = 10 * time.Second

// Core is the source-independent part: decode -> parse -> forward -> settle.
type Core struct {
	Node     *node.Client
	Pipeline *pipeline.Pipeline
	log      *slog.Logger

	stopProbe context.CancelFunc
	probeDone chan struct{}
}

// NewCore builds the core from validated settings.
func NewCore(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*Core, error) {
	return NewCoreWith(cfg, reg, log, nil)
}

// NewCoreWith is NewCore with the node client wrapped, when wrap is set, as
// the pipeline's forwarder (replay paces and counts calls on their way).
func NewCoreWith(cfg config.Config, reg prometheus.Registerer, log *slog.Logger, wrap func(*node.Client) pipeline.Forwarder) (*Core, error) {
	parser, err := accesslog.NewParser(cfg.AccessLog.Fields)
	if err != nil {
		return nil, fmt.Errorf("build access-log parser: %w", err)
	}
	client, err := node.New(cfg.Node, reg, log.With("component", "node"))
	if err != nil {
		return nil, fmt.Errorf("build node client: %w", err)
	}
	pcfg := cfg.Pipeline
	pcfg.Workers = cfg.Node.Concurrency
	var fwd pipeline.Forwarder = client
	if wrap != nil {
		fwd = wrap(client)
	}
	p, err := pipeline.New(pcfg, fwd, cwlogs.NewDecoder(cfg.DecoderOptions()), parser, reg, log.With("component", "pipeline"))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("build pipeline: %w", err)
	}
	return &Core{Node: client, Pipeline: p, log: log}, nil
}

// Start starts the forwarding workers and, when probe is set, the node
// health probe (long-running commands; a one-shot replay needs none).
func (c *Core) Start(ctx context.Context, probe bool) error {
	if err := c.Pipeline.Start(ctx); err != nil {
		return err
	}
	if probe {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c.stopProbe, c.probeDone = cancel, make(chan struct{})
		go c.probeLoop(pctx)
	}
	return nil
}

// HealthProbeFailed is the warning of a failed node health probe. An empty
// environment variable counts as unset, so it names `off`, which switches
// the health path off in the YAML file and in the environment alike.
const HealthProbeFailed = "node health probe failed: check node.url and node.health_path " +
	"(for a TCP check only: node.health_path: off in the YAML file, APIGW_CONNECTOR_NODE_HEALTH_PATH=off in the environment)"

func (c *Core) probeLoop(ctx context.Context) {
	defer close(c.probeDone)
	t := time.NewTicker(ProbeInterval)
	defer t.Stop()
	wasUp := true
	for {
		err := c.Node.Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && wasUp:
			c.log.Warn(HealthProbeFailed, "err", err)
		case err == nil && !wasUp:
			c.log.Info("node health probe succeeded")
		}
		wasUp = err == nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Shutdown lets buffered calls finish within ctx, then closes the client.
func (c *Core) Shutdown(ctx context.Context) error {
	if c.stopProbe != nil {
		c.stopProbe()
		<-c.probeDone
	}
	err := c.Pipeline.Shutdown(ctx)
	c.Node.Close()
	return err
}

// NodeReady is a readiness check: the node answered recently.
func (c *Core) NodeReady(ctx context.Context) error { return c.Node.Ready(ctx) }
