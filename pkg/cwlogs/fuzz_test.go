package cwlogs_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

const fuzzCap = 256 << 10

// FuzzDecode checks that no input panics, every failure is a *DecodeError
// with a known reason, the callback count matches Stats, and no member that
// decompresses past the cap decodes successfully.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	f.Add(gz(doc("g", line1, line2)))
	f.Add(gz(doc("g", line1), string(traffic.ControlMessage())))
	f.Add([]byte(doc("g", line1)))
	f.Add([]byte(line1 + "\n" + line2))
	f.Add([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\u00`))
	f.Add([]byte(`{"x":1}` + "\n" + `{"messageType":"DATA_MESSAGE"}`))
	d := cwlogs.NewDecoder(cwlogs.Options{MaxDecompressedBytes: fuzzCap})
	reasons := map[string]bool{cwlogs.ReasonGzip: true, cwlogs.ReasonTooLarge: true, cwlogs.ReasonJSON: true,
		cwlogs.ReasonUnknownMessageType: true, cwlogs.ReasonEmpty: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		n := 0
		stats, err := d.Decode(data, func(m *cwlogs.Meta, ev *cwlogs.Event) {
			n++
			if m == nil || ev == nil {
				t.Fatal("nil meta or event")
			}
			_ = bytes.Count(ev.Message, []byte{'x'}) // touch the message
		})
		if n != stats.Events {
			t.Fatalf("callback ran %d times, stats say %d", n, stats.Events)
		}
		if !bytes.Equal(orig, data) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			var de *cwlogs.DecodeError
			if !errors.As(err, &de) || !reasons[de.Reason] || de.Error() == "" {
				t.Fatalf("bad error %v (%T)", err, err)
			}
			return
		}
		if stats.Errors != 0 {
			t.Fatalf("no error returned, but stats count %d", stats.Errors)
		}
		if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
			// Success means every member fits in the cap.
			br := bytes.NewReader(data)
			for br.Len() > 0 && !allBlank(data[len(data)-br.Len():]) {
				zr, zerr := gzip.NewReader(br)
				if zerr != nil {
					t.Fatalf("Decode accepted data gzip rejects: %v", zerr)
				}
				zr.Multistream(false)
				size, _ := io.Copy(io.Discard, io.LimitReader(zr, fuzzCap+1))
				if size > fuzzCap {
					t.Fatalf("Decode accepted a member of %d+ decompressed bytes, cap is %d", size, fuzzCap)
				}
				if _, err := io.Copy(io.Discard, zr); err != nil {
					t.Fatalf("Decode accepted a member gzip rejects: %v", err)
				}
			}
		}
	})
}

func allBlank(b []byte) bool {
	return len(bytes.Trim(b, " \t\r\n\x00")) == 0
}
