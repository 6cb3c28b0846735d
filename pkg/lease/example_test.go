package lease_test

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/lease"
)

// A worker consuming the shards of a stream: one goroutine per held lease,
// checkpointing as it goes.
func ExampleNewCoordinator() {
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx) // endpoints from AWS_ENDPOINT_URL_DYNAMODB etc.
	if err != nil {
		panic(err)
	}
	shards := lease.ShardListerFunc(func(ctx context.Context) ([]lease.Shard, error) {
		// kinesis ListShards, all pages, mapped to lease.Shard
		return []lease.Shard{{ID: "shardId-000000000000"}}, nil
	})
	proc := lease.ProcessorFunc(func(ctx context.Context, h *lease.Handle) {
		seq, _ := h.Checkpoint() // TRIM_HORIZON, LATEST, or the last sequence number
		for ctx.Err() == nil {
			// read records after seq, deliver them, then:
			if err := h.SaveCheckpoint(ctx, seq); errors.Is(err, lease.ErrLeaseLost) {
				return
			}
			time.Sleep(time.Second)
		}
	})
	cfg := lease.DefaultConfig()
	cfg.TableName = "my-application"
	coord, err := lease.NewCoordinator(dynamodb.NewFromConfig(awsCfg), shards, proc, cfg, prometheus.NewRegistry(), slog.Default())
	if err != nil {
		panic(err)
	}
	if err := coord.Start(ctx); err != nil {
		panic(err)
	}
	// ... on SIGTERM:
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = coord.Shutdown(sctx)
}
