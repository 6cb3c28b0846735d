package lease

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// logRecorder is a slog.Handler keeping the messages it was given.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var key string
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "key" {
			key = a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message+" "+key)
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// testTable is a table with its own metrics and a log recorder.
func testTable(t *testing.T, db DynamoDBAPI, name string) (table, *metrics, *logRecorder) {
	t.Helper()
	m, err := newMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &logRecorder{}
	return newTable(db, name, slog.New(rec), m), m, rec
}

const (
	javaA    = "ip-10-0-1-17.ec2.internal:6f1c2a44-6b3e-4a0e-9d8e-3f0f2b1a9c11"
	javaB    = "ip-10-0-2-33.ec2.internal:0b7d9e0a-2f6c-4c53-8c57-0e0f5a6d7e21"
	hashMax  = "340282366920938463463374607431768211455"
	hashHalf = "170141183460469231731687303715884105727"
)

// Every fixture's scan returns exactly its real leases; the rest is skipped,
// counted by reason, and logged once per key however often it is scanned.
func TestScanFixtures(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	for _, tc := range []struct {
		fixture string
		want    []Lease
		skipped map[string]float64
	}{
		{
			fixture: "kcl2-single-stream.json",
			want: []Lease{
				{Key: "shardId-000000000000", Owner: javaA, Counter: 20817, Checkpoint: ShardEnd,
					ChildShardIDs: []string{"shardId-000000000002", "shardId-000000000003"}, StartingHashKey: "0", EndingHashKey: hashHalf},
				{Key: "shardId-000000000001", Owner: javaB, Counter: 20790,
					Checkpoint: "49651376528170395212930557711312413419587437112637358098", CheckpointSubSequenceNumber: 3,
					PendingCheckpoint: "49651376528170395212930557711312413419587437112637358210", OwnerSwitchesSinceCheckpoint: 2,
					StartingHashKey: "170141183460469231731687303715884105728", EndingHashKey: hashMax},
				{Key: "shardId-000000000002", Owner: javaA, Counter: 5120,
					Checkpoint: "49651376922315690014622407553106245109318530745839157282", ParentShardIDs: []string{"shardId-000000000000"},
					StartingHashKey: "0", EndingHashKey: "85070591730234615865843651857942052863"},
				{Key: "shardId-000000000003", Counter: 1, Checkpoint: TrimHorizon, ParentShardIDs: []string{"shardId-000000000000"},
					StartingHashKey: "85070591730234615865843651857942052864", EndingHashKey: hashHalf},
				{Key: "shardId-000000000004", Owner: javaB, Counter: 4, Checkpoint: AtTimestamp, OwnerSwitchesSinceCheckpoint: 1,
					ParentShardIDs:  []string{"shardId-000000000001", "shardId-000000000003"},
					StartingHashKey: "85070591730234615865843651857942052864", EndingHashKey: hashMax},
				{Key: "shardId-000000000005", Checkpoint: Latest},
			},
		},
		{
			fixture: "kcl35-single-table.json",
			want: []Lease{
				{Key: "shardId-000000000000", Owner: "java-worker-dead", Counter: 90211,
					Checkpoint:      "49651376528170395212930557711312413419587437112637358098",
					StartingHashKey: "0", EndingHashKey: "113427455640312821154458202477256070484"},
				{Key: "shardId-000000000001", Owner: "java-worker-b", CheckpointOwner: "java-worker-dead", Counter: 88790,
					Checkpoint:        "49651376528192695958129088334453949137860085474143338514",
					PendingCheckpoint: "49651376528192695958129088334453949137860085474143338600", OwnerSwitchesSinceCheckpoint: 1,
					StartingHashKey: "113427455640312821154458202477256070485", EndingHashKey: "226854911280625642308916404954512140969"},
				{Key: "shardId-000000000002", Owner: "java-worker-dead", Counter: 70002, Checkpoint: ShardEnd,
					ChildShardIDs:   []string{"shardId-000000000003"},
					StartingHashKey: "226854911280625642308916404954512140970", EndingHashKey: hashMax},
				{Key: "shardId-000000000003", Owner: "java-worker-dead", Counter: 12, Checkpoint: TrimHorizon,
					ParentShardIDs:  []string{"shardId-000000000002"},
					StartingHashKey: "226854911280625642308916404954512140970", EndingHashKey: hashMax},
			},
			skipped: map[string]float64{skipEntityRow: 6},
		},
		{
			fixture: "kcl-multi-stream.json",
			skipped: map[string]float64{skipMultiStream: 3, skipEntityRow: 1},
		},
		{
			fixture: "undecodable.json",
			want: []Lease{
				{Key: "shardId-000000000002", Counter: 3, Checkpoint: TrimHorizon},
			},
			skipped: map[string]float64{skipUndecodable: 3, skipNoCounter: 1},
		},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			name := strings.TrimSuffix(tc.fixture, ".json")
			items := loadFixtureTable(t, db, name, "testdata/"+tc.fixture)
			tbl, m, logs := testTable(t, db, name)
			for range 3 { // skipped rows come back on every scan; log them once
				got, err := tbl.scan(context.Background())
				if err != nil {
					t.Fatalf("scan: %v", err)
				}
				slices.SortFunc(got, func(a, b Lease) int { return strings.Compare(a.Key, b.Key) })
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("scan =\n%+v\nwant\n%+v", got, tc.want)
				}
			}
			var total float64
			for _, reason := range []string{skipEntityRow, skipNoCounter, skipMultiStream, skipUndecodable} {
				got := testutil.ToFloat64(m.skipped.WithLabelValues(reason))
				if got != 3*tc.skipped[reason] {
					t.Errorf("rows_skipped_total{reason=%q} = %v after 3 scans, want %v", reason, got, 3*tc.skipped[reason])
				}
				total += tc.skipped[reason]
			}
			if got := logs.count("row skipped"); float64(got) != total {
				t.Errorf("skip log lines after 3 scans = %d, want %v (once per row)", got, total)
			}
			if n := len(items) - len(tc.want); float64(n) != total {
				t.Fatalf("fixture has %d non-leases, test expects %v skipped", n, total)
			}
		})
	}
}

// The loader keeps every DynamoDB attribute type through a put and a get.
func TestFixtureLoaderAttributeTypes(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	items := loadFixtureTable(t, db, "types", "testdata/attribute-types.json")
	want := map[string]types.AttributeValue{
		"leaseKey": strAV("every-type"),
		"s":        strAV("text"),
		"n":        &types.AttributeValueMemberN{Value: "-12.5"},
		"b":        &types.AttributeValueMemberB{Value: []byte{0xde, 0xad, 0xbe, 0xef}},
		"ss":       &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns":       &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
		"bs":       &types.AttributeValueMemberBS{Value: [][]byte{{1, 2}, {3, 4}}},
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"inner": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			strAV("x"), &types.AttributeValueMemberN{Value: "1"}, &types.AttributeValueMemberBOOL{Value: true}, &types.AttributeValueMemberNULL{Value: true},
		}}}},
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberB{Value: []byte{0}}}},
			&types.AttributeValueMemberSS{Value: []string{"z"}},
		}},
		"bool": &types.AttributeValueMemberBOOL{Value: false},
		"null": &types.AttributeValueMemberNULL{Value: true},
	}
	if !reflect.DeepEqual(items[0], want) {
		t.Errorf("loaded item =\n%#v\nwant\n%#v", items[0], want)
	}
	got := getItem(t, db, "types", "every-type")
	if len(got) != len(want) {
		t.Errorf("stored item has %d attributes, want %d: %v", len(got), len(want), got)
	}
	for _, name := range []string{"s", "n", "b", "m", "l", "bool", "null"} {
		if !reflect.DeepEqual(got[name], want[name]) {
			t.Errorf("stored %s = %#v, want %#v", name, got[name], want[name])
		}
	}
	for _, bad := range []string{
		`[{"k": {"S": "a", "N": "1"}}]`, `[{"k": {"X": "a"}}]`, `[{"k": {"B": "!!"}}]`, `[{"k": {"NULL": false}}]`,
	} {
		if _, err := parseDynamoJSON([]byte(bad)); err == nil {
			t.Errorf("parseDynamoJSON(%s) succeeded, want an error", bad)
		}
	}
}

// pagingDB forces small scan pages and records what scan asked for.
type pagingDB struct {
	DynamoDBAPI
	mu    sync.Mutex
	scans []*dynamodb.ScanInput
}

func (p *pagingDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	p.mu.Lock()
	cp := *in
	p.scans = append(p.scans, &cp)
	p.mu.Unlock()
	in2 := cp
	in2.Limit = aws.Int32(2)
	return p.DynamoDBAPI.Scan(ctx, &in2, opts...)
}

// Scans are eventually consistent, as the Java KCL's, and read every page.
func TestScanEventuallyConsistentPaginated(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	loadFixtureTable(t, db, "pages", "testdata/kcl35-single-table.json")
	pdb := &pagingDB{DynamoDBAPI: db}
	tbl, _, _ := testTable(t, pdb, "pages")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := tbl.scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("scan returned %d leases over pages of 2 rows, want 4", len(got))
	}
	if len(pdb.scans) < 5 {
		t.Errorf("scan made %d calls for 10 rows in pages of 2, want at least 5", len(pdb.scans))
	}
	for i, in := range pdb.scans {
		if aws.ToBool(in.ConsistentRead) {
			t.Errorf("scan call %d is strongly consistent, want eventually consistent", i)
		}
	}
}

// A table literal (no state) filters the same, silently.
func TestScanWithoutState(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	loadFixtureTable(t, db, "nostate", "testdata/kcl35-single-table.json")
	got, err := table{db: db, name: "nostate"}.scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("scan = %d leases, want 4", len(got))
	}
}
