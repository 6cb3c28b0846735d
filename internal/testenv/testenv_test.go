package testenv

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/pkg/inventory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDynalite(t *testing.T) {
	t.Parallel()
	ep := StartDynalite(t)
	db := DynamoDBClient(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("table1"),
		AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: dtypes.ScalarAttributeTypeS}},
		KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: dtypes.KeyTypeHash}},
		BillingMode:          dtypes.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	out, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables: %v", err)
	}
	if !slices.Equal(out.TableNames, []string{"table1"}) {
		t.Fatalf("ListTables = %v, want [table1]", out.TableNames)
	}
}

// TestKinesis runs the same calls on both Kinesis emulators: create, list,
// put, split (kinesis-mock's split is exercised too: its shard ids differ).
func TestKinesis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(testing.TB) string
	}{
		{"kinesalite", StartKinesalite},
		{"kinesis-mock", StartKinesisMock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := KinesisClient(t, tc.start(t))
			CreateStream(t, c, "s1", 2)
			shards := ListShards(t, c, "s1")
			if len(shards) != 2 {
				t.Fatalf("ListShards: %d shards, want 2", len(shards))
			}
			var recs []Record
			for i := range 10 {
				recs = append(recs, Record{PartitionKey: fmt.Sprint("pk", i), Data: []byte{byte(i)}})
			}
			seqs, ids := PutRecords(t, c, "s1", recs...)
			if len(seqs) != 10 || seqs[0] == "" || ids[0] == "" {
				t.Fatalf("PutRecords: seqs %v ids %v", seqs, ids)
			}

			parent := aws.ToString(shards[0].ShardId)
			SplitShardInHalf(t, c, "s1", parent)
			after := ListShards(t, c, "s1")
			if len(after) != 4 {
				t.Fatalf("after split: %d shards, want 4 (2 open children + closed parent + other)", len(after))
			}
			var children int
			for _, s := range after {
				if aws.ToString(s.ParentShardId) == parent {
					children++
				}
				if aws.ToString(s.ShardId) == parent && s.SequenceNumberRange.EndingSequenceNumber == nil {
					t.Errorf("parent %s still open after split", parent)
				}
			}
			if children != 2 {
				t.Fatalf("after split: %d children of %s, want 2", children, parent)
			}

			// The closed parent returns no next iterator once read to its end.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String("s1"), ShardId: aws.String(parent), ShardIteratorType: "TRIM_HORIZON",
			})
			if err != nil {
				t.Fatalf("GetShardIterator: %v", err)
			}
			iter := it.ShardIterator
			for i := 0; iter != nil && i < 20; i++ {
				out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
				if err != nil {
					t.Fatalf("GetRecords: %v", err)
				}
				iter = out.NextShardIterator
			}
			if iter != nil {
				t.Errorf("closed parent %s: NextShardIterator still set after 20 reads", parent)
			}
		})
	}
}

func TestLoadAWSConfigEndpoints(t *testing.T) {
	t.Parallel()
	cfg, err := LoadAWSConfig(context.Background(), map[string]string{"kinesis": "http://127.0.0.1:1", "DynamoDB": "http://127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	// The clients resolve their base endpoint from the config sources, the
	// way they would from AWS_ENDPOINT_URL_<SERVICE>.
	k := kinesis.NewFromConfig(cfg)
	d := dynamodb.NewFromConfig(cfg)
	if got := aws.ToString(k.Options().BaseEndpoint); got != "http://127.0.0.1:1" {
		t.Errorf("kinesis BaseEndpoint = %q", got)
	}
	if got := aws.ToString(d.Options().BaseEndpoint); got != "http://127.0.0.1:2" {
		t.Errorf("dynamodb BaseEndpoint = %q", got)
	}
}

func TestMidHashKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ s, e, want string }{
		{"0", "340282366920938463463374607431768211455", "170141183460469231731687303715884105728"},
		{"0", "1", "1"},
	} {
		got, err := midHashKey(tc.s, tc.e)
		if err != nil || got != tc.want {
			t.Errorf("midHashKey(%s,%s) = %s, %v; want %s", tc.s, tc.e, got, err, tc.want)
		}
	}
	if _, err := midHashKey("5", "5"); err == nil {
		t.Error("midHashKey(5,5): want error")
	}
}

func TestSameCallsLeavesOutTheSlidingSeries(t *testing.T) {
	t.Parallel()
	at := time.Unix(1795515330, 0).UTC()
	ep := func(calls int64, steps int) inventory.Endpoint {
		return inventory.Endpoint{Host: "api.example.com", Method: "GET", Path: "/a", Calls: calls,
			Statuses: map[int]int64{200: calls}, FirstSeen: at, LastSeen: at,
			Series: &inventory.Series{Start: at, Step: 10 * time.Second, Counts: make([]int64, steps)}}
	}
	for _, tt := range []struct {
		name string
		a, b []inventory.Endpoint
		want bool
	}{
		{"same calls, the window one step on", []inventory.Endpoint{ep(1, 1)}, []inventory.Endpoint{ep(1, 2)}, true},
		{"one more call", []inventory.Endpoint{ep(1, 1)}, []inventory.Endpoint{ep(2, 1)}, false},
		{"one more endpoint", []inventory.Endpoint{ep(1, 1)}, []inventory.Endpoint{ep(1, 1), ep(1, 1)}, false},
	} {
		if got := SameCalls(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: SameCalls = %v, want %v", tt.name, got, tt.want)
		}
	}
}
