package kinesis

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/wallarm/apigw-connector/pkg/lease"
)

// KinesisAPI is the part of *kinesis.Client the source uses.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// timeoutAPI bounds every Kinesis call by its own deadline: the SDK has none by default, and
// a connection that accepts a request and never answers would otherwise freeze its shard.
type timeoutAPI struct {
	api     KinesisAPI
	timeout time.Duration
}

func (t timeoutAPI) ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.api.ListShards(ctx, in, optFns...)
}

func (t timeoutAPI) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.api.GetShardIterator(ctx, in, optFns...)
}

func (t timeoutAPI) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.api.GetRecords(ctx, in, optFns...)
}

// stream names the stream in requests: by ARN when configured as one, else by name.
type stream struct {
	name, arn *string
}

func parseStream(s string) stream {
	if strings.HasPrefix(s, "arn:") {
		return stream{arn: aws.String(s)}
	}
	return stream{name: aws.String(s)}
}

// shardLister implements lease.ShardLister over Kinesis ListShards.
type shardLister struct {
	api    KinesisAPI
	stream stream
}

// ListShards returns every shard the stream retains (open and closed, all pages), with both
// parents of a merged shard, so the lease layer can hold children back until parents end.
func (l *shardLister) ListShards(ctx context.Context) ([]lease.Shard, error) {
	var out []lease.Shard
	in := &kinesis.ListShardsInput{StreamName: l.stream.name, StreamARN: l.stream.arn}
	for {
		page, err := l.api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		for _, s := range page.Shards {
			sh := lease.Shard{ID: aws.ToString(s.ShardId)}
			for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
				if aws.ToString(p) != "" {
					sh.ParentShardIDs = append(sh.ParentShardIDs, *p)
				}
			}
			if s.HashKeyRange != nil {
				sh.StartingHashKey = aws.ToString(s.HashKeyRange.StartingHashKey)
				sh.EndingHashKey = aws.ToString(s.HashKeyRange.EndingHashKey)
			}
			sh.Closed = s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
			out = append(out, sh)
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		// With NextToken the stream must not be named again (the API rejects both).
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// childrenOf finds the shards whose parents include shardID, for emulators and old API
// versions whose GetRecords does not return ChildShards at a shard's end.
func (l *shardLister) childrenOf(ctx context.Context, shardID string) ([]string, error) {
	shards, err := l.ListShards(ctx)
	if err != nil {
		return nil, err
	}
	var children []string
	for _, s := range shards {
		for _, p := range s.ParentShardIDs {
			if p == shardID {
				children = append(children, s.ID)
			}
		}
	}
	return children, nil
}
