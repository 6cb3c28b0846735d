// Package kinesis is the Kinesis Data Streams source: a long-running worker that reads the
// shards it holds leases for (pkg/lease, KCL-compatible table), hands every record to the
// pipeline as one batch, and checkpoints only the prefix of each shard the pipeline has settled.
// Several identical workers share a stream; leases move between them on failover and stealing.
package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/lease"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// Submitter takes one batch and reports when it settled; *pipeline.Pipeline satisfies it.
type Submitter interface {
	Submit(ctx context.Context, b pipeline.Batch) (*pipeline.Settlement, error)
}

// Source is one worker of the Kinesis consumer.
type Source struct {
	cfg   Config
	log   *slog.Logger
	deps  *readerDeps
	coord *lease.Coordinator
	db    lease.DynamoDBAPI

	hardStop     chan struct{}
	hardStopOnce sync.Once
}

// New builds a worker. Region, endpoints and credentials come only from awsCfg, i.e. the SDK's
// standard sources (AWS_REGION, AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB, task role).
func New(cfg Config, awsCfg aws.Config, sub Submitter, reg prometheus.Registerer, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if awsCfg.Region == "" {
		return nil, errors.New("kinesis source: no AWS region: set AWS_REGION (or a profile's region)")
	}
	if sub == nil {
		return nil, errors.New("kinesis source: nil Submitter")
	}
	if cfg.WorkerID == "" {
		cfg.WorkerID = defaultWorkerID(context.Background())
	}
	leaseLog := log // pkg/lease adds the worker id itself
	log = log.With("worker", cfg.WorkerID)
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, log: log, hardStop: make(chan struct{}), db: dynamodb.NewFromConfig(awsCfg)}
	s.deps = newReaderDeps(cfg, kinesis.NewFromConfig(awsCfg), submitterFunc(sub), m, log)
	s.deps.hardStop = s.hardStop
	s.coord, err = lease.NewCoordinator(s.db, s.deps.lister, processor{s.deps},
		s.leaseConfig(), reg, leaseLog)
	if err != nil {
		return nil, err // it says "new lease coordinator: ..." itself
	}
	return s, nil
}

// newReaderDeps wires what the shard readers share; every Kinesis call gets its deadline here.
func newReaderDeps(cfg Config, api KinesisAPI, submit submitFunc, m *metrics, log *slog.Logger) *readerDeps {
	kc := timeoutAPI{api: api, timeout: cfg.RequestTimeout}
	st := parseStream(cfg.Stream)
	return &readerDeps{
		cfg: cfg, api: kc, stream: st, lister: &shardLister{api: kc, stream: st},
		submit: submit, m: m, log: log,
	}
}

// leaseConfig leaves RenewInterval to pkg/lease's default, FailoverTime/3 as in the KCL: three
// chances to renew before expiry.
func (s *Source) leaseConfig() lease.Config {
	c := s.cfg
	return lease.Config{
		TableName:          c.ApplicationName,
		WorkerID:           c.WorkerID,
		FailoverTime:       c.FailoverTime,
		MaxLeasesPerWorker: c.MaxLeasesPerWorker,
		MaxLeasesToSteal:   c.MaxLeasesToSteal,
		ShardSyncInterval:  c.ShardSyncInterval,
		RequestTimeout:     c.LeaseRequestTimeout,
		StableScanInterval: c.StableScanInterval,
		CreateTable:        c.CreateLeaseTable,
		InitialPosition:    c.InitialPosition,
	}
}

// WorkerID is the id this worker writes as leaseOwner.
func (s *Source) WorkerID() string { return s.cfg.WorkerID }

// Start creates the lease table when configured and begins taking leases and reading shards.
// Cancelling ctx stops the worker abruptly (no graceful release); use Shutdown for a clean stop.
func (s *Source) Start(ctx context.Context) error {
	s.log.Info("starting kinesis source", "stream", s.cfg.Stream, "lease_table", s.cfg.ApplicationName)
	if err := s.coord.Start(ctx); err != nil {
		return fmt.Errorf("start kinesis source: %w", err)
	}
	s.checkTimestampCheckpoints(ctx)
	return nil
}

// checkTimestampCheckpoints tells at start what each shard reader would only say once it
// holds such a lease: leases checkpointed AT_TIMESTAMP (by a worker configured with a
// timestamp) cannot be read without kinesis.initial_timestamp. Best effort: a failed scan is
// only logged at debug level, the shard readers still refuse such leases.
func (s *Source) checkTimestampCheckpoints(ctx context.Context) {
	if !s.cfg.InitialTimestamp.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var shards []string
	in := &dynamodb.ScanInput{
		TableName:                 aws.String(s.cfg.ApplicationName),
		ProjectionExpression:      aws.String("leaseKey"),
		FilterExpression:          aws.String("#cp = :ts"),
		ExpressionAttributeNames:  map[string]string{"#cp": "checkpoint"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":ts": &ddbtypes.AttributeValueMemberS{Value: lease.AtTimestamp}},
	}
	for page := 0; page < 100; page++ {
		out, err := s.db.Scan(ctx, in)
		if err != nil {
			s.log.Debug("look for AT_TIMESTAMP checkpoints in the lease table", "err", err)
			return
		}
		for _, it := range out.Items {
			if k, ok := it["leaseKey"].(*ddbtypes.AttributeValueMemberS); ok {
				shards = append(shards, k.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if len(shards) > 0 {
		s.log.Error("leases checkpointed AT_TIMESTAMP by another application version cannot be read without a timestamp: "+
			"set kinesis.initial_timestamp (env APIGW_CONNECTOR_KINESIS_INITIAL_TIMESTAMP, RFC 3339); until then these shards are not read",
			"shards", shards, "lease_table", s.cfg.ApplicationName)
	}
}

// Shutdown stops fetching on every shard, lets in-flight calls settle within ShutdownGrace (or
// until ctx ends), writes the final checkpoints and releases the leases so other workers take
// them at once.
func (s *Source) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.hardStopOnce.Do(func() { close(s.hardStop) })
		case <-done:
		}
	}()
	if err := s.coord.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down kinesis source: %w", err)
	}
	return nil
}

// Ready reports whether the worker reaches its lease table and takes part in the group.
func (s *Source) Ready() bool { return s.coord.Ready() }

// processor implements lease.Processor: one shard reader per held lease.
type processor struct{ d *readerDeps }

func (p processor) ProcessShard(ctx context.Context, h *lease.Handle) {
	newShardRun(p.d, h).run(ctx)
}
