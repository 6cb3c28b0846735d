package kinesis

import (
	"bytes"
	"crypto/md5"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// kplRecord builds a messages.proto Record; pk < 0 leaves out the required partition key index.
func kplRecord(pk int, data []byte, tags ...string) []byte {
	var b []byte
	if pk >= 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(pk))
	}
	if data != nil {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	for _, k := range tags {
		var tag []byte
		tag = protowire.AppendTag(tag, 1, protowire.BytesType)
		tag = protowire.AppendString(tag, k)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, tag)
	}
	return b
}

// kplMessage builds an AggregatedRecord from encoded Records.
func kplMessage(pks []string, ehks []string, recs ...[]byte) []byte {
	var b []byte
	for _, k := range pks {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	for _, k := range ehks {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	for _, r := range recs {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	}
	return b
}

// kplFrame wraps a protobuf message as the KPL writes it: magic, message, MD5 of the message.
func kplFrame(msg []byte) []byte {
	sum := md5.Sum(msg)
	out := append(append([]byte{}, kplMagic...), msg...)
	return append(out, sum[:]...)
}

// kplAggregate is a valid aggregate of the given user records.
func kplAggregate(datas ...[]byte) []byte {
	var recs [][]byte
	for i, d := range datas {
		recs = append(recs, kplRecord(i%2, d))
	}
	return kplFrame(kplMessage([]string{"pk-a", "pk-b"}, nil, recs...))
}

func TestDeaggregate(t *testing.T) {
	t.Parallel()
	valid := kplAggregate([]byte("one"), []byte("two"), []byte{})
	badMD5 := append([]byte{}, valid...)
	badMD5[len(badMD5)-1] ^= 0xff
	withUnknown := kplMessage([]string{"pk"}, []string{"12345"}, kplRecord(0, []byte("x"), "tag"))
	withUnknown = protowire.AppendTag(withUnknown, 9, protowire.Fixed64Type)
	withUnknown = protowire.AppendFixed64(withUnknown, 7)
	truncated := kplMessage([]string{"pk"}, nil, kplRecord(0, []byte("data")))
	truncated = truncated[:len(truncated)-2]
	badTag := kplRecord(0, []byte("x"))
	badTag = protowire.AppendTag(badTag, 4, protowire.BytesType)
	badTag = protowire.AppendBytes(badTag, protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)) // Tag without key

	tests := []struct {
		name string
		data []byte
		want []string // nil: not an aggregate (a plain record)
	}{
		{"plain gzip record", []byte{0x1f, 0x8b, 0x08, 0x00, 1, 2, 3}, nil},
		{"empty record", []byte{}, nil},
		{"magic only", kplMagic, nil},
		{"magic and digest only", kplFrame(nil), nil}, // the KCL wants more than the digest
		{"three user records", valid, []string{"one", "two", ""}},
		{"bad MD5", badMD5, nil},
		{"aggregate with no user record", kplFrame(kplMessage([]string{"pk"}, nil)), []string{}},
		{"unknown fields and tags are skipped", kplFrame(withUnknown), []string{"x"}},
		{"truncated protobuf", kplFrame(truncated), nil},
		{"record without partition key index", kplFrame(kplMessage([]string{"pk"}, nil, kplRecord(-1, []byte("x")))), nil},
		{"record without data", kplFrame(kplMessage([]string{"pk"}, nil, kplRecord(0, nil))), nil},
		{"tag without its key", kplFrame(kplMessage([]string{"pk"}, nil, badTag)), nil},
		{"not protobuf at all", kplFrame([]byte{0xff, 0xff, 0xff}), nil},
		{"short of the magic", kplMagic[:3], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := deaggregate(tt.data)
			if ok != (tt.want != nil) {
				t.Fatalf("aggregate = %v, want %v", ok, tt.want != nil)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d user records, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("user record %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// FuzzDeaggregate: deaggregate never panics, what it returns lies inside its input, and an
// aggregate built from any user records gives them all back, in order.
func FuzzDeaggregate(f *testing.F) {
	f.Add(kplAggregate([]byte("one"), []byte("two")), []byte("a\x00bc\x00"))
	f.Add(kplFrame(kplMessage([]string{"pk"}, nil)), []byte{})
	f.Add([]byte{0x1f, 0x8b}, []byte("\x00\x00"))
	f.Add(kplFrame([]byte{0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01}), []byte("x"))
	f.Fuzz(func(t *testing.T, data, users []byte) {
		if subs, ok := deaggregate(data); ok {
			for _, s := range subs {
				if len(s) > 0 && !bytes.Contains(data, s) {
					t.Fatalf("user record %q not part of the input", s)
				}
			}
		}
		// Build a valid aggregate from users split at zero bytes.
		datas := bytes.Split(users, []byte{0})
		agg := kplAggregate(datas...)
		subs, ok := deaggregate(agg)
		if !ok {
			t.Fatalf("a valid aggregate of %d user records was not recognized", len(datas))
		}
		if len(subs) != len(datas) {
			t.Fatalf("%d user records back, want %d", len(subs), len(datas))
		}
		for i := range datas {
			if !bytes.Equal(subs[i], datas[i]) {
				t.Fatalf("user record %d = %q, want %q", i, subs[i], datas[i])
			}
		}
	})
}
