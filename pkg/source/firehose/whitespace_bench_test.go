package firehose

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// whitespaceBody is a gzip body of '{' and n spaces: a malformed delivery
// whose cost must grow linearly with n.
func whitespaceBody(n int) []byte { return gz(append([]byte("{"), bytes.Repeat([]byte(" "), n)...)) }

// BenchmarkDecodeRequestWhitespace: ns/op over growing whitespace bodies;
// linear decoding keeps MB/s flat as the size doubles.
func BenchmarkDecodeRequestWhitespace(b *testing.B) {
	for _, mib := range []int{1, 2, 4, 8} {
		body := whitespaceBody(mib << 20)
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			b.SetBytes(int64(mib << 20))
			for b.Loop() {
				if _, err := DecodeRequest(bytes.NewReader(body), "gzip", 64<<20); !errors.Is(err, ErrMalformed) {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeRequestWhitespaceIsLinear fails when a 16 MiB body of whitespace
// costs far more than 16 times a 1 MiB one (quadratic decoding took 4 s).
func TestDecodeRequestWhitespaceIsLinear(t *testing.T) {
	t.Parallel()
	cost := func(n int) time.Duration {
		body := whitespaceBody(n)
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			if _, err := DecodeRequest(bytes.NewReader(body), "gzip", 64<<20); !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	small, big := cost(1<<20), cost(16<<20)
	// Linear is 16x; allow noise on a shared machine, quadratic is ~256x.
	if big > 64*small+200*time.Millisecond {
		t.Fatalf("16 MiB of whitespace took %s, 1 MiB %s: decoding is not linear", big, small)
	}
	// Whitespace inside strings and between tokens is kept meaningful.
	body := []byte("{ \"requestId\" :\n\n \"a  b\" ,  \"records\" : [ { \"data\" :  \"eA==\" } ]   }   ")
	req, err := DecodeRequest(bytes.NewReader(body), "", 1<<20)
	if err != nil || req.RequestID != "a  b" || len(req.Records) != 1 || string(req.Records[0]) != "x" {
		t.Fatalf("req %+v, err %v", req, err)
	}
}
