package lease

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// countingDB counts Query and Scan calls.
type countingDB struct {
	DynamoDBAPI
	queries, scans atomic.Int32
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	return c.DynamoDBAPI.Query(ctx, in, opts...)
}

func (c *countingDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.scans.Add(1)
	return c.DynamoDBAPI.Scan(ctx, in, opts...)
}

// A table this package creates has KCL 3.x's owner index, and queryOwned
// uses it; on a table without it (KCL 2.x days) queryOwned scans.
func TestOwnerIndex(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A KCL 2.x table: leaseKey only, no index.
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("kcl2_table"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		create    bool // by this package
		wantIndex bool
	}{
		{name: "created here", create: true, wantIndex: true},
		{name: "kcl2_table", wantIndex: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.name
			if tc.create {
				name = "created_here"
			}
			cdb := &countingDB{DynamoDBAPI: db}
			tbl, _, _ := testTable(t, cdb, name)
			if err := tbl.ensure(ctx, tc.create); err != nil {
				t.Fatal(err)
			}
			if got := tbl.state.hasIndex.Load(); got != tc.wantIndex {
				t.Fatalf("ensure noted index = %v, want %v", got, tc.wantIndex)
			}
			if tc.create {
				desc, err := tbl.describe(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(desc.GlobalSecondaryIndexes) != 1 {
					t.Fatalf("indexes = %+v, want %s", desc.GlobalSecondaryIndexes, ownerIndex)
				}
				gsi := desc.GlobalSecondaryIndexes[0]
				ks := gsi.KeySchema
				if aws.ToString(gsi.IndexName) != ownerIndex || len(ks) != 2 ||
					aws.ToString(ks[0].AttributeName) != attrOwner || ks[0].KeyType != types.KeyTypeHash ||
					aws.ToString(ks[1].AttributeName) != attrKey || ks[1].KeyType != types.KeyTypeRange ||
					gsi.Projection == nil || gsi.Projection.ProjectionType != types.ProjectionTypeKeysOnly {
					t.Errorf("index = %+v, want %s: leaseOwner HASH, leaseKey RANGE, KEYS_ONLY", gsi, ownerIndex)
				}
			}
			for _, it := range loadFixture(t, "testdata/kcl35-single-table.json") {
				if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: it}); err != nil {
					t.Fatal(err)
				}
			}
			putItems(t, db, name, loadFixture(t, "testdata/kcl-multi-stream.json")[:1]) // owned by java-worker-a
			cdb.queries.Store(0)
			cdb.scans.Store(0)
			for owner, want := range map[string][]string{
				"java-worker-dead": {"shardId-000000000000", "shardId-000000000002", "shardId-000000000003"},
				"java-worker-b":    {"shardId-000000000001"},
				"java-worker-a":    nil, // entity row key and a multi-stream lease: none of ours
				"nobody":           nil,
			} {
				got, err := tbl.queryOwned(ctx, owner)
				if err != nil {
					t.Fatalf("queryOwned(%s): %v", owner, err)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("queryOwned(%s) = %v, want %v", owner, got, want)
				}
			}
			q, s := cdb.queries.Load(), cdb.scans.Load()
			if tc.wantIndex && (q != 4 || s != 0) || !tc.wantIndex && (q != 0 || s != 4) {
				t.Errorf("%d queries and %d scans for 4 owners, want the index used: %v", q, s, tc.wantIndex)
			}
		})
	}
}
