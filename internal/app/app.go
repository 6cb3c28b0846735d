// Package app wires the configured components of the core pipeline
// (decoder, parser, node client, pipeline) for the commands and the Lambda.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/config"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// Core is the source-independent part: decode -> parse -> forward -> settle.
type Core struct {
	Node     *node.Client
	Pipeline *pipeline.Pipeline
}

// NewCore builds the core from validated settings.
func NewCore(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*Core, error) {
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
	p, err := pipeline.New(pcfg, client, cwlogs.NewDecoder(cfg.DecoderOptions()), parser, reg, log.With("component", "pipeline"))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("build pipeline: %w", err)
	}
	return &Core{Node: client, Pipeline: p}, nil
}

// Start starts the forwarding workers.
func (c *Core) Start(ctx context.Context) error { return c.Pipeline.Start(ctx) }

// Shutdown lets buffered calls finish within ctx, then closes the client.
func (c *Core) Shutdown(ctx context.Context) error {
	err := c.Pipeline.Shutdown(ctx)
	c.Node.Close()
	return err
}

// NodeReady is a readiness check: the node answered recently.
func (c *Core) NodeReady(context.Context) error {
	if !c.Node.Up() {
		return errors.New("node unreachable")
	}
	return nil
}
