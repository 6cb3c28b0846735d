package replay

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/source/file"
)

// CountEvents counts the log events in the named files ahead of a paced
// replay, so the progress line has a total and an ETA long before the replay
// has read its input (it reads ahead only a buffer's worth). An estimate:
// lines that are no API call and filtered calls count too.
func CountEvents(ctx context.Context, names []string, dec *cwlogs.Decoder, opts file.Options) (int64, error) {
	opts.Log = nil // the replay itself reports damaged input
	var n int64
	count := func(b pipeline.Batch) error {
		for _, r := range b.Records {
			if b.Format == pipeline.FormatLines {
				n += countLines(r.Data)
				continue
			}
			n += int64(dec.DecodeEach(r.Data, func(*cwlogs.Meta, *cwlogs.Event) {}, nil).Events)
		}
		return ctx.Err()
	}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		_, err = file.Read(ctx, name, f, opts, count)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("count events in %s: %w", name, err)
		}
	}
	return n, nil
}

func countLines(b []byte) int64 {
	var n int64
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}
