package kinesis

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// testSettlement is a settlement the test settles by hand.
type testSettlement struct {
	done    chan struct{}
	outcome pipeline.Outcome
}

func newTestSettlement() *testSettlement { return &testSettlement{done: make(chan struct{})} }

func (s *testSettlement) Done() <-chan struct{}     { return s.done }
func (s *testSettlement) Outcome() pipeline.Outcome { return s.outcome }

func (s *testSettlement) settle(o pipeline.Outcome) {
	s.outcome = o
	close(s.done)
}

func TestCheckpointerOrdered(t *testing.T) {
	t.Parallel()
	delivered := pipeline.Outcome{Records: 1, Calls: 3, Delivered: 3}
	abandoned := pipeline.Outcome{Records: 1, Calls: 3, Delivered: 1, Abandoned: 2}
	undecodable := pipeline.Outcome{Records: 1, DecodeErrors: 1}

	type step struct {
		settle  int              // index of the record to settle
		outcome pipeline.Outcome // how it settles
		want    string           // checkpoint candidate after advance
		// wantWrite: whether the candidate differs from the last written one.
		wantWrite bool
	}
	tests := []struct {
		name            string
		start           string
		records         int
		steps           []step
		wantInFlight    int
		wantStuck       bool
		wantUndecodable int
	}{
		{
			name: "in order", start: "TRIM_HORIZON", records: 3,
			steps: []step{
				{0, delivered, "s0", true},
				{1, delivered, "s1", true},
				{2, delivered, "s2", true},
			},
		},
		{
			name: "later settles first does not move past earlier", start: "TRIM_HORIZON", records: 4,
			steps: []step{
				{2, delivered, "TRIM_HORIZON", false},
				{3, delivered, "TRIM_HORIZON", false},
				{1, delivered, "TRIM_HORIZON", false},
				{0, delivered, "s3", true},
			},
		},
		{
			name: "gap in the middle holds the cursor", start: "s-prev", records: 4,
			steps: []step{
				{0, delivered, "s0", true},
				{2, delivered, "s0", true},
				{3, delivered, "s0", true},
			},
			wantInFlight: 3,
		},
		{
			name: "abandoned record is never checkpointed nor passed", start: "TRIM_HORIZON", records: 3,
			steps: []step{
				{0, delivered, "s0", true},
				{2, delivered, "s0", true},
				{1, abandoned, "s0", true},
			},
			wantInFlight: 2, wantStuck: true,
		},
		{
			name: "abandoned first record blocks everything", start: "s-prev", records: 2,
			steps: []step{
				{1, delivered, "s-prev", false},
				{0, abandoned, "s-prev", false},
			},
			wantInFlight: 2, wantStuck: true,
		},
		{
			name: "undecodable record settles and is counted", start: "TRIM_HORIZON", records: 2,
			steps: []step{
				{1, undecodable, "TRIM_HORIZON", false},
				{0, delivered, "s1", true},
			},
			wantUndecodable: 1,
		},
		{
			name: "shard end: last record settles last", start: "TRIM_HORIZON", records: 3,
			steps: []step{
				{1, delivered, "TRIM_HORIZON", false},
				{0, delivered, "s1", true},
				{2, delivered, "s2", true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCheckpointer(position{seq: tt.start})
			recs := make([]*testSettlement, tt.records)
			for i := range recs {
				recs[i] = newTestSettlement()
				c.add(position{seq: "s" + string(rune('0'+i))}, recs[i], time.Now())
			}
			if got, _ := c.advance(); got.seq != tt.start {
				t.Fatalf("before any settle: checkpoint %q, want %q", got.seq, tt.start)
			}
			undec := 0
			for i, st := range tt.steps {
				recs[st.settle].settle(st.outcome)
				got, u := c.advance()
				undec += u
				if got.seq != st.want {
					t.Fatalf("step %d (settle s%d): checkpoint %q, want %q", i, st.settle, got.seq, st.want)
				}
				if _, w := c.toWrite(); w != st.wantWrite {
					t.Fatalf("step %d: toWrite %v, want %v", i, w, st.wantWrite)
				}
			}
			if got := c.inFlight(); got != tt.wantInFlight {
				t.Errorf("in flight %d, want %d", got, tt.wantInFlight)
			}
			if got := c.isStuck(); got != tt.wantStuck {
				t.Errorf("stuck %v, want %v", got, tt.wantStuck)
			}
			if undec != tt.wantUndecodable {
				t.Errorf("undecodable %d, want %d", undec, tt.wantUndecodable)
			}
		})
	}
}

func TestCheckpointerWrittenAndAge(t *testing.T) {
	t.Parallel()
	c := newCheckpointer(position{seq: "TRIM_HORIZON"})
	if !c.oldestUnwritten().IsZero() {
		t.Fatal("empty checkpointer reports an unwritten record")
	}
	t0 := time.Now().Add(-time.Minute)
	a, b := newTestSettlement(), newTestSettlement()
	c.add(position{seq: "1"}, a, t0)
	c.add(position{seq: "2"}, b, t0.Add(time.Second))
	if got := c.oldestUnwritten(); !got.Equal(t0) {
		t.Fatalf("oldest unwritten %v, want %v (in flight)", got, t0)
	}
	a.settle(pipeline.Outcome{Delivered: 1})
	c.advance()
	seq, ok := c.toWrite()
	if !ok || seq != (position{seq: "1"}) {
		t.Fatalf("toWrite = %v,%v, want 1,true", seq, ok)
	}
	if got := c.oldestUnwritten(); !got.Equal(t0) {
		t.Fatalf("oldest unwritten %v, want %v (settled, unwritten)", got, t0)
	}
	c.markWritten(seq)
	if _, ok := c.toWrite(); ok {
		t.Fatal("toWrite after markWritten wants another write")
	}
	if got := c.oldestUnwritten(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("oldest unwritten %v, want the in-flight record's read time", got)
	}
	b.settle(pipeline.Outcome{Delivered: 1})
	c.advance()
	c.markWritten(position{seq: "2"})
	if !c.oldestUnwritten().IsZero() || c.inFlight() != 0 {
		t.Fatal("everything written, yet something reported unwritten or in flight")
	}
}

func TestCheckpointerWaitAll(t *testing.T) {
	t.Parallel()
	c := newCheckpointer(position{})
	a, b := newTestSettlement(), newTestSettlement()
	c.add(position{seq: "1"}, a, time.Now())
	c.add(position{seq: "2"}, b, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	b.settle(pipeline.Outcome{Delivered: 1})
	if err := c.waitAll(ctx); err == nil {
		t.Fatal("waitAll returned nil with an unsettled record")
	}
	a.settle(pipeline.Outcome{Delivered: 1})
	if err := c.waitAll(context.Background()); err != nil {
		t.Fatalf("waitAll: %v", err)
	}
}

func TestCheckpointerCompacts(t *testing.T) {
	t.Parallel()
	c := newCheckpointer(position{})
	for i := range 1000 {
		s := newTestSettlement()
		c.add(position{seq: string(rune('a' + i%26))}, s, time.Now())
		s.settle(pipeline.Outcome{Delivered: 1})
		c.advance()
	}
	if len(c.pending) > 2 {
		t.Fatalf("queue not compacted: %d entries kept", len(c.pending))
	}
}

func TestPrefetchQueueBounds(t *testing.T) {
	t.Parallel()
	q := newPrefetchQueue(2, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	big := fetched{records: make([]typesRecord, 50)}
	if !q.put(ctx, big) {
		t.Fatal("an oversized first result must still be queued")
	}
	if q.put(ctx, fetched{records: make([]typesRecord, 1)}) {
		t.Fatal("queued past the record bound")
	}
	if f, ok := q.get(context.Background()); !ok || len(f.records) != 50 {
		t.Fatal("get did not return the queued result")
	}
	ctx2 := context.Background()
	for i := range 2 { // two single-record results fit both bounds
		if !q.put(ctx2, fetched{records: make([]typesRecord, 1)}) {
			t.Fatalf("put %d refused within bounds", i)
		}
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel3()
	if q.put(ctx3, fetched{records: make([]typesRecord, 1)}) {
		t.Fatal("queued past the batch bound")
	}
	q.close()
	for range 2 {
		if _, ok := q.get(context.Background()); !ok {
			t.Fatal("closed queue lost an item")
		}
	}
	if _, ok := q.get(context.Background()); ok {
		t.Fatal("drained closed queue returned an item")
	}
}

type typesRecord = types.Record
