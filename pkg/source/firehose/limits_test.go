package firehose

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawPost opens a connection to the receiver and writes the request headers
// of a delivery declaring contentLength, then body (possibly less than declared).
func rawPost(t *testing.T, e *env, id string, contentLength int64, body []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", e.rcv.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /firehose HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s: %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
		HeaderAccessKey, testKey, HeaderRequestID, id, contentLength)
	if len(body) > 0 {
		if _, err := c.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// readStatus reads one response from c within d; 0 when none came.
func readStatus(c net.Conn, d time.Duration) int {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A declared length over the cap used to be read (up to 71 MiB) before the
// 413; a client that declared it and sent nothing held its slot until the
// ack deadline. Now the 413 comes at once, from the headers alone.
func TestDeclaredOversizedBodyIs413AtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig()) // ack deadline 5s
	start := time.Now()
	c := rawPost(t, e, "req-declared-huge", 999_999_999, nil)
	if code := readStatus(c, 2*time.Second); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413 before any body byte is sent", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("413 after %s, want it at once", d)
	}
	if got := e.counter(e.rcv.m.inProgress); got != 0 {
		t.Fatalf("deliveries_in_progress %v after the refusal", got)
	}
}

// Connections that declare a body and never send it used to hold every
// delivery slot for the whole ack deadline (60 s by default), so legitimate
// deliveries got 429. Now the slot is freed after body_read_timeout (408).
func TestStalledBodiesFreeTheirSlotsAfterBodyReadTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxConcurrentDeliveries = 2
	cfg.BodyReadTimeout = time.Second // room for the 429 check below on a loaded machine
	cfg.AckDeadline = 10 * time.Second
	e := newEnv(t, cfg)
	start := time.Now()
	var stalled []net.Conn
	for i := range cfg.MaxConcurrentDeliveries {
		// A few bytes of the body, then nothing: a trickle, not a clean stall.
		stalled = append(stalled, rawPost(t, e, fmt.Sprintf("req-stalled-%d", i), 1000, []byte(`{"requ`)))
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.counter(e.rcv.m.inProgress) < float64(cfg.MaxConcurrentDeliveries) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	recs, calls := gen(40, 1, 3)
	if r := e.post(delivery{id: "req-while-stalled", records: recs}); r.status != http.StatusTooManyRequests {
		t.Fatalf("while every slot is held: status %d, want 429 (the test did not fill the slots)", r.status)
	}
	var wg sync.WaitGroup
	codes := make([]int, len(stalled))
	for i, c := range stalled {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = readStatus(c, 3*time.Second) }()
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusRequestTimeout {
			t.Fatalf("stalled delivery %d: status %d, want 408 after body_read_timeout", i, code)
		}
	}
	if d := time.Since(start); d < cfg.BodyReadTimeout || d > cfg.BodyReadTimeout+2*time.Second {
		t.Fatalf("stalled deliveries answered after %s, want about body_read_timeout %s", d, cfg.BodyReadTimeout)
	}
	if r := e.post(delivery{id: "req-after-stalled", records: recs}); r.status != http.StatusOK {
		t.Fatalf("after the stalled slots were freed: status %d (%s), want 200", r.status, r.raw)
	}
	e.assertDeliveredOnce(calls)
	if got := e.counter(e.rcv.m.limited.WithLabelValues("body_read_timeout")); got != 2 {
		t.Errorf(`deliveries_limited_total{limit="body_read_timeout"} %v, want 2`, got)
	}
}

// emptyRecords is a delivery body of n records with empty data, the cheapest
// record on the wire (12 bytes) and, before the cap, ~100 bytes of memory each.
func emptyRecords(id string, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"requestId":"` + id + `","timestamp":1,"records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"data":""}`)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func TestRecordsPerDeliveryAreCapped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxRecords = 1000
	e := newEnv(t, cfg)
	recs, calls := gen(41, 3, 4)
	withCalls := firehoseBody("req-1000", append(recs, make([][]byte, 997)...)) // 3 real + 997 empty
	for _, tc := range []struct {
		name string
		d    delivery
		want int
	}{
		{"at the cap", delivery{id: "req-1000", body: withCalls}, http.StatusOK},
		{"over the cap", delivery{id: "req-1001", body: emptyRecords("req-1001", 1001)}, http.StatusRequestEntityTooLarge},
		{"over the cap, gzip", delivery{id: "req-1001-gz", body: emptyRecords("req-1001-gz", 1001), gzip: true}, http.StatusRequestEntityTooLarge},
		{"far over the cap, gzip", delivery{id: "req-1m", body: emptyRecords("req-1m", 1_000_000), gzip: true}, http.StatusRequestEntityTooLarge},
		// Braces inside strings are not objects.
		{"braces in a string", delivery{id: "req-braces", body: []byte(`{"requestId":"req-braces","x":"` + strings.Repeat(`{\"{`, 2000) + `","records":[]}`)}, http.StatusOK},
	} {
		if r := e.post(tc.d); r.status != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, r.status, r.raw, tc.want)
		}
	}
	e.assertDeliveredOnce(calls)
	if got := e.counter(e.rcv.m.limited.WithLabelValues("records")); got != 3 {
		t.Errorf(`deliveries_limited_total{limit="records"} %v, want 3`, got)
	}
}

// bomb is a gzip record of n zero bytes: ~1000x smaller than it inflates.
func bomb(n int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, n))
	_ = zw.Close()
	return buf.Bytes()
}

// Per-record bombs used to be inflated one after another without a total:
// hundreds of them cost gigabytes of inflation and the delivery was still
// acknowledged. Now the total is capped before anything is forwarded.
func TestDecompressedBytesPerDeliveryAreCapped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxDecompressedBytesPerDelivery = 4 << 20
	e := newEnv(t, cfg)
	b := bomb(1 << 20)
	recs, calls := gen(42, 2, 5)
	mixed := append(append([][]byte(nil), recs...), b, b, b, b, b) // real calls first, then 5 MiB of zeros
	start := time.Now()
	if r := e.post(delivery{id: "req-bombs", records: mixed}); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d (%s), want 413", r.status, r.raw)
	}
	t.Logf("refused in %s", time.Since(start))
	if n := len(e.node.DeliveredIDs()); n != 0 {
		t.Fatalf("%d calls of a refused delivery reached the node", n)
	}
	// Under the cap the same calls go through.
	if r := e.post(delivery{id: "req-under", records: append(recs, b, b)}); r.status != http.StatusOK {
		t.Fatalf("under the cap: status %d (%s), want 200", r.status, r.raw)
	}
	e.assertDeliveredOnce(calls)
	if got := e.counter(e.rcv.m.limited.WithLabelValues("decompressed_bytes")); got != 1 {
		t.Errorf(`deliveries_limited_total{limit="decompressed_bytes"} %v, want 1`, got)
	}
}

// The ack deadline used to be ignored while records were decoded: a delivery
// of bombs under every cap was answered 200 long after it. Now the deadline
// is checked while the records are measured and between chunks: 503 near it.
func TestAckDeadlineIsCheckedBetweenRecords(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.AckDeadline = 300 * time.Millisecond
	cfg.MaxDecompressedBytesPerDelivery = 4 << 30 // the deadline, not the cap, must stop it
	e := newEnv(t, cfg)
	b := bomb(8 << 20)
	recs := make([][]byte, 128) // 1 GiB inflated in all, ~1.4 MB on the wire
	for i := range recs {
		recs[i] = b
	}
	start := time.Now()
	r := e.post(delivery{id: "req-slow-bombs", records: recs})
	d := time.Since(start)
	switch r.status {
	case http.StatusServiceUnavailable:
		if !strings.Contains(r.body.ErrorMessage, "while the records were being decoded") {
			t.Errorf("503 says %q, want the deadline passed while decoding", r.body.ErrorMessage)
		}
	case http.StatusRequestTimeout:
		// Only on a starved machine: reading the body itself took past the deadline.
		t.Logf("the body took past the ack deadline to read (%s): 408, the records were not reached", d)
	default:
		t.Fatalf("status %d (%s) after %s, want 503 (ack deadline %s)", r.status, r.raw, d, cfg.AckDeadline)
	}
	if d > cfg.AckDeadline+2*time.Second {
		t.Fatalf("answered after %s, long past the ack deadline %s", d, cfg.AckDeadline)
	}
	t.Logf("%d after %s", r.status, d)
}

func TestMeasureRecordsStopsAtTheDeadlineAndTheCap(t *testing.T) {
	t.Parallel()
	b := bomb(8 << 20)
	recs := [][]byte{[]byte("plain"), b, b, b, b, b, b, b, b} // 64 MiB inflated
	sizes, err := measureRecords(context.Background(), recs, 1<<30)
	if err != nil || len(sizes) != len(recs) || sizes[0] != 5 || sizes[1] != 8<<20 {
		t.Fatalf("sizes %v, err %v; want 5 then 8 MiB each", sizes, err)
	}
	if _, err := measureRecords(context.Background(), recs, 20<<20); !errors.Is(err, errTooMuchInflation) {
		t.Fatalf("over the cap: err %v, want errTooMuchInflation", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	many := make([][]byte, 512) // 4 GiB if it did not stop
	for i := range many {
		many[i] = b
	}
	start := time.Now()
	if _, err := measureRecords(ctx, many, 64<<30); !errors.Is(err, errDeadlineInRecords) {
		t.Fatalf("past the deadline: err %v, want errDeadlineInRecords", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopped %s after a 20ms deadline", d)
	}
}

func TestChunksBoundRecordsAndBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sizes []int64
		want  string
	}{
		{nil, "[]"},
		{[]int64{1, 1, 1, 1, 1}, "[[0 2] [2 4] [4 5]]"},
		{[]int64{5, 6, 1, 1}, "[[0 1] [1 3] [3 4]]"},
		{[]int64{100, 1}, "[[0 1] [1 2]]"}, // one record over the byte bound is a chunk of its own
	} {
		if got := fmt.Sprint(chunks(tc.sizes, 2, 10)); got != tc.want {
			t.Errorf("chunks(%v) = %s, want %s", tc.sizes, got, tc.want)
		}
	}
}

// The object counter follows strings and escapes across reads of any size.
func TestObjectCounterCountsObjectsOutsideStrings(t *testing.T) {
	t.Parallel()
	doc := `{"requestId":"a{\"{\\","x":{"y":"}{"},"records":[{"data":"e30="},{"data":""}]}`
	for _, chunk := range []int{1, 2, 3, 7, 4096} {
		for max, wantOver := range map[int]bool{3: true, 4: false} {
			oc := &objectCounter{r: &chunkReader{b: []byte(doc), n: chunk}, max: max}
			_, err := io.ReadAll(oc)
			if oc.over != wantOver || (err != nil) != wantOver {
				t.Errorf("chunk %d, max %d: over %v err %v; the document has 4 objects", chunk, max, oc.over, err)
			}
		}
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// A delivery of a million empty records (12 MB of JSON, ~25 KB gzipped)
// used to cost ~100 bytes of memory per record, hundreds of MB for one
// request; past max_records it now stops reading. Not parallel: it reads the
// process's allocation counter, which other tests would blur.
func TestManyEmptyRecordsCostLittleMemory(t *testing.T) {
	e := newEnv(t, testConfig()) // max_records 100,000
	body := gz(emptyRecords("req-many", 1_000_000))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := e.post(delivery{id: "req-many", body: body, header: map[string]string{"Content-Encoding": "gzip"}})
	runtime.ReadMemStats(&after)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d (%s), want 413", r.status, r.raw)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB for a delivery of 1,000,000 empty records", float64(alloc)/(1<<20))
	if alloc > 48<<20 {
		t.Fatalf("allocated %.1f MiB, want under 48 MiB (100,000 records at most are held)", float64(alloc)/(1<<20))
	}
}
