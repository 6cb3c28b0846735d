package testenv

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Dummy credentials and region the emulators accept. kinesis-mock namespaces
// streams by a 12-digit access key id; anything else means its default account.
const (
	Region          = "us-east-1"
	AccessKeyID     = "AKIDTESTTESTTESTTEST"
	SecretAccessKey = "testsecret"
)

// Service keys for endpoint maps, as in the AWS_ENDPOINT_URL_<KEY> variables.
const (
	Kinesis  = "KINESIS"
	DynamoDB = "DYNAMODB"
)

// AWSEnv returns the standard SDK variables pointing at the given endpoints
// (empty ones left out), as "K=V" strings for a subprocess's Env.
func AWSEnv(kinesisEndpoint, dynamoEndpoint string) []string {
	env := []string{
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if kinesisEndpoint != "" {
		env = append(env, "AWS_ENDPOINT_URL_KINESIS="+kinesisEndpoint)
	}
	if dynamoEndpoint != "" {
		env = append(env, "AWS_ENDPOINT_URL_DYNAMODB="+dynamoEndpoint)
	}
	return env
}

// SetAWSEnv sets AWSEnv's variables with t.Setenv, so code that loads its
// config like the real binary (config.LoadDefaultConfig) reaches the
// emulators. t.Setenv panics in parallel tests: use LoadAWSConfig there.
func SetAWSEnv(t testing.TB, kinesisEndpoint, dynamoEndpoint string) {
	t.Helper()
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	for _, kv := range AWSEnv(kinesisEndpoint, dynamoEndpoint) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// LoadAWSConfig builds an aws.Config with config.LoadDefaultConfig, dummy
// credentials, Region, and per-service base endpoints with the same effect as
// AWS_ENDPOINT_URL_<SERVICE>: the endpoints are a config source that the
// service clients consult (before the environment) when they resolve their
// base endpoint. Keys are service ids, case-insensitive, spaces or
// underscores alike: "kinesis", "DynamoDB", "DYNAMODB".
func LoadAWSConfig(ctx context.Context, endpoints map[string]string, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	base := []func(*config.LoadOptions) error{
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
	}
	cfg, err := config.LoadDefaultConfig(ctx, append(base, opts...)...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	src := serviceEndpoints{}
	for k, v := range endpoints {
		src[normalizeServiceKey(k)] = v
	}
	// First source wins in the SDK's lookup.
	cfg.ConfigSources = append([]any{src}, cfg.ConfigSources...)
	return cfg, nil
}

// AWSConfig is LoadAWSConfig for tests: empty endpoints are left out, errors
// fail the test.
func AWSConfig(t testing.TB, kinesisEndpoint, dynamoEndpoint string) aws.Config {
	t.Helper()
	eps := map[string]string{}
	if kinesisEndpoint != "" {
		eps[Kinesis] = kinesisEndpoint
	}
	if dynamoEndpoint != "" {
		eps[DynamoDB] = dynamoEndpoint
	}
	cfg, err := LoadAWSConfig(context.Background(), eps)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return cfg
}

// KinesisClient returns a Kinesis client for the endpoint.
func KinesisClient(t testing.TB, endpoint string) *kinesis.Client {
	t.Helper()
	return kinesis.NewFromConfig(AWSConfig(t, endpoint, ""))
}

// DynamoDBClient returns a DynamoDB client for the endpoint.
func DynamoDBClient(t testing.TB, endpoint string) *dynamodb.Client {
	t.Helper()
	return dynamodb.NewFromConfig(AWSConfig(t, "", endpoint))
}

// serviceEndpoints satisfies the SDK's (internal) ServiceBaseEndpointProvider
// interface, the one its environment config implements for
// AWS_ENDPOINT_URL_<SERVICE>.
type serviceEndpoints map[string]string

func (s serviceEndpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v, ok := s[normalizeServiceKey(sdkID)]
	return v, ok && v != "", nil
}

func normalizeServiceKey(k string) string {
	return strings.ToUpper(strings.NewReplacer(" ", "_", "-", "_").Replace(k))
}

// CreateStream creates a provisioned stream with the given shard count and
// waits until it is ACTIVE.
func CreateStream(t testing.TB, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	if err != nil {
		t.Fatalf("testenv: create stream %s: %v", name, err)
	}
	WaitStreamActive(t, c, name)
}

// WaitStreamActive polls DescribeStreamSummary until the stream is ACTIVE
// (after create, split, merge, reshard).
func WaitStreamActive(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: stream %s not ACTIVE: last error %v", name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Record is one record to put.
type Record struct {
	PartitionKey string
	Data         []byte
}

// PutRecords puts records in order, one PutRecord call each (so per-shard
// order is the slice order), and returns their sequence numbers and shard ids.
func PutRecords(t testing.TB, c *kinesis.Client, stream string, recs ...Record) (seqs, shardIDs []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range recs {
		out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String(r.PartitionKey), Data: r.Data,
		})
		if err != nil {
			t.Fatalf("testenv: put record to %s: %v", stream, err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
		shardIDs = append(shardIDs, aws.ToString(out.ShardId))
	}
	return seqs, shardIDs
}

// ListShards returns every shard the stream retains (all pages).
func ListShards(t testing.TB, c *kinesis.Client, stream string) []ktypes.Shard {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := c.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("testenv: list shards of %s: %v", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// SplitShardInHalf splits the shard at the middle of its hash-key range and
// waits for the stream to become ACTIVE again.
func SplitShardInHalf(t testing.TB, c *kinesis.Client, stream, shardID string) {
	t.Helper()
	var target *ktypes.Shard
	for _, s := range ListShards(t, c, stream) {
		if aws.ToString(s.ShardId) == shardID {
			target = &s
			break
		}
	}
	if target == nil {
		t.Fatalf("testenv: split: shard %s not in stream %s", shardID, stream)
	}
	mid, err := midHashKey(aws.ToString(target.HashKeyRange.StartingHashKey), aws.ToString(target.HashKeyRange.EndingHashKey))
	if err != nil {
		t.Fatalf("testenv: split %s: %v", shardID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: aws.String(shardID), NewStartingHashKey: aws.String(mid),
	}); err != nil {
		t.Fatalf("testenv: split %s: %v", shardID, err)
	}
	WaitStreamActive(t, c, stream)
}

// MergeShards merges two adjacent shards and waits for ACTIVE.
func MergeShards(t testing.TB, c *kinesis.Client, stream, shardID, adjacentID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String(stream), ShardToMerge: aws.String(shardID), AdjacentShardToMerge: aws.String(adjacentID),
	}); err != nil {
		t.Fatalf("testenv: merge %s+%s: %v", shardID, adjacentID, err)
	}
	WaitStreamActive(t, c, stream)
}

var errBadRange = errors.New("bad hash key range")

// midHashKey returns the decimal hash key halfway through [start, end].
func midHashKey(start, end string) (string, error) {
	s, ok1 := new(big.Int).SetString(start, 10)
	e, ok2 := new(big.Int).SetString(end, 10)
	if !ok1 || !ok2 || s.Cmp(e) >= 0 {
		return "", fmt.Errorf("%w: [%s, %s]", errBadRange, start, end)
	}
	mid := new(big.Int).Add(s, e)
	mid.Rsh(mid, 1)
	mid.Add(mid, big.NewInt(1))
	return mid.String(), nil
}
