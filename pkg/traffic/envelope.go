package traffic

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// LogEvent is one CloudWatch Logs event as a subscription delivers it.
type LogEvent struct {
	ID        string // 56-digit event id
	Timestamp int64  // epoch ms
	Message   string
}

// Owner and SubscriptionFilter are what generated envelopes carry.
const (
	Owner              = "123456789012"
	SubscriptionFilter = "WallarmFilter"
)

// Envelope returns the CloudWatch Logs DATA_MESSAGE document (JSON) for events.
func Envelope(logGroup, logStream string, events []LogEvent) []byte {
	n := 200 + len(logGroup) + len(logStream)
	for i := range events {
		n += 100 + len(events[i].Message)*11/10
	}
	b := make([]byte, 0, n)
	b = append(b, `{"messageType":"DATA_MESSAGE","owner":"`+Owner+`","logGroup":`...)
	b = AppendJSONString(b, logGroup)
	b = append(b, `,"logStream":`...)
	b = AppendJSONString(b, logStream)
	b = append(b, `,"subscriptionFilters":["`+SubscriptionFilter+`"],"logEvents":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = AppendJSONString(b, e.ID)
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, e.Timestamp, 10)
		b = append(b, `,"message":`...)
		b = AppendJSONString(b, e.Message)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// ControlMessage returns the CONTROL_MESSAGE document CloudWatch Logs sends
// when a subscription filter is created, to check the destination.
func ControlMessage() []byte {
	return []byte(`{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"",` +
		`"subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1764000000000,` +
		`"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}`)
}

// Gzip compresses each document as its own gzip member and concatenates them,
// as a subscription writes a record (usually one member).
func Gzip(docs ...[]byte) []byte {
	var buf bytes.Buffer
	for _, d := range docs {
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(d) // writes to a bytes.Buffer cannot fail
		_ = zw.Close()
	}
	return buf.Bytes()
}

// GzipEnvelope is Gzip(Envelope(...)): what one Kinesis record carries.
func GzipEnvelope(logGroup, logStream string, events []LogEvent) []byte {
	return Gzip(Envelope(logGroup, logStream, events))
}

// Events generates n calls to api's endpoints (any API when api is nil) and
// returns them as log events with CloudWatch-style ids, plus the calls.
func (g *Generator) Events(api *API, n int) ([]LogEvent, []Call) {
	calls := make([]Call, n)
	evs := make([]LogEvent, n)
	var line []byte
	for i := range calls {
		if api == nil {
			calls[i] = g.Next()
		} else {
			calls[i] = g.NextFor(api)
		}
		line = g.AppendLine(line[:0], &calls[i])
		evs[i] = LogEvent{ID: g.eventID(calls[i].Time.UnixMilli()), Timestamp: calls[i].Time.UnixMilli(), Message: string(line)}
	}
	return evs, calls
}

// eventID builds the next event id of this generator.
func (g *Generator) eventID(ms int64) string {
	g.eventSeq++
	return EventID(ms, g.eventSeq, g.rng)
}

// EventID builds a 56-digit id shaped like CloudWatch's: a prefix from the
// event's time (epoch ms), random digits, and seq at the end, which keeps
// the ids of one producer unique.
func EventID(ms int64, seq uint64, rng *rand.Rand) string {
	b := make([]byte, 0, 56)
	b = strconv.AppendInt(b, ms, 10)
	for len(b) < 20 {
		b = append(b, '0')
	}
	s := strconv.FormatUint(seq, 10)
	for len(b) < 56-len(s) {
		b = append(b, byte('0'+rng.IntN(10)))
	}
	return string(append(b, s...))
}

// Record is one generated subscription record: a gzip document and the calls
// inside it.
type Record struct {
	Data  []byte
	Calls []Call
}

// Records generates n gzip records of minEvents..maxEvents events each, every
// record holding events of one log group (as a subscription delivers them).
func (g *Generator) Records(n, minEvents, maxEvents int) []Record {
	if minEvents < 1 {
		minEvents = 1
	}
	if maxEvents < minEvents {
		maxEvents = minEvents
	}
	out := make([]Record, n)
	for i := range out {
		k := minEvents + g.rng.IntN(maxEvents-minEvents+1)
		api := g.apis[g.rng.IntN(len(g.apis))]
		evs, calls := g.Events(api, k)
		stream := strconv.FormatUint(g.rng.Uint64(), 16)
		out[i] = Record{Data: GzipEnvelope(api.LogGroup, stream, evs), Calls: calls}
	}
	return out
}

// WriteLines writes n access-log lines, newline-terminated, to w (the
// exported-logs shape the file source replays).
func (g *Generator) WriteLines(w io.Writer, n int) error {
	var buf []byte
	for range n {
		c := g.Next()
		buf = append(g.AppendLine(buf[:0], &c), '\n')
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write generated lines: %w", err)
		}
	}
	return nil
}
