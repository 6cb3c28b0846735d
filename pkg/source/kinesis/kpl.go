package kinesis

import (
	"bytes"
	"crypto/md5"

	"google.golang.org/protobuf/encoding/protowire"
)

// kplMagic starts every record the Kinesis Producer Library aggregated: the magic, a protobuf
// AggregatedRecord, then the MD5 of the protobuf (KPL aggregation-format.md).
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// Field numbers of the KPL's messages.proto.
const (
	aggRecords    protowire.Number = 3 // AggregatedRecord.records (1, 2 are the key tables)
	recPKIndex    protowire.Number = 1 // Record.partition_key_index, required
	recData       protowire.Number = 3 // Record.data, required
	recTags       protowire.Number = 4 // Record.tags
	tagKey        protowire.Number = 1 // Tag.key, required
	kplDigestSize                  = md5.Size
)

// deaggregate returns the user records' data of a KPL-aggregated record in order (a user
// record's sub-sequence number is its index) and true, or false when data is no valid aggregate.
// As the Java KCL's AggregatorUtil: no magic, nothing after the magic but the digest, a wrong
// MD5 or a protobuf that does not parse (required fields included) all mean a plain record,
// handed on as it is. An aggregate may hold no user record at all. The returned slices alias
// data. Partition and explicit hash keys are not needed here and are not checked against the
// shard's range (the KCL drops such records; for access logs that would lose calls).
func deaggregate(data []byte) ([][]byte, bool) {
	if len(data) < len(kplMagic) || !bytes.Equal(data[:len(kplMagic)], kplMagic) {
		return nil, false
	}
	body := data[len(kplMagic):]
	if len(body) <= kplDigestSize {
		return nil, false
	}
	msg, digest := body[:len(body)-kplDigestSize], body[len(body)-kplDigestSize:]
	sum := md5.Sum(msg)
	if !bytes.Equal(sum[:], digest) {
		return nil, false
	}
	var subs [][]byte
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, false
		}
		msg = msg[n:]
		if num == aggRecords && typ == protowire.BytesType {
			rec, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, false
			}
			msg = msg[n:]
			d, ok := parseUserRecord(rec)
			if !ok {
				return nil, false
			}
			subs = append(subs, d)
			continue
		}
		// The key tables and unknown fields; a known field with another wire type is an
		// unknown field to protobuf parsers too.
		if n = protowire.ConsumeFieldValue(num, typ, msg); n < 0 {
			return nil, false
		}
		msg = msg[n:]
	}
	if subs == nil {
		subs = [][]byte{}
	}
	return subs, true
}

// parseUserRecord returns a Record's data; false when it does not parse or misses a required
// field.
func parseUserRecord(b []byte) ([]byte, bool) {
	var data []byte
	var hasPK, hasData bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == recPKIndex && typ == protowire.VarintType:
			hasPK = true
		case num == recData && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			data, hasData = v, true // the last occurrence wins, as in protobuf
			b = b[n:]
			continue
		case num == recTags && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !validTag(v) {
				return nil, false
			}
			b = b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	if !hasPK || !hasData {
		return nil, false
	}
	if data == nil {
		data = []byte{}
	}
	return data, true
}

// validTag reports whether b parses as a Tag with its required key.
func validTag(b []byte) bool {
	hasKey := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == tagKey && typ == protowire.BytesType {
			hasKey = true
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return hasKey
}
