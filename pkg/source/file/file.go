// Package file reads exported access logs or saved CloudWatch Logs data from
// files or stdin and turns them into pipeline batches (for `replay`).
//
// Input is streamed: one gzip member and one JSON value (or line) at a time,
// so memory stays flat in the file's size and the decompression cap applies
// per document. A damaged gzip member, a malformed document or bytes that are
// no document are skipped, counted by reason and logged once with their
// position; everything before and after them is read.
package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/wallarm/apigw-connector/internal/jsonscan"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// Options bound what one batch holds.
type Options struct {
	ChunkLines       int   // access-log lines per batch
	ChunkBytes       int   // document bytes per batch (documents, Firehose backup records)
	MaxDocumentBytes int64 // cap on one document (one JSON value) and on one decoded payload
	MaxLineBytes     int   // longest accepted line
	// Log receives one warning per skipped stretch of input; nil discards them.
	Log *slog.Logger
}

// DefaultOptions suits exported logs: a few hundred lines per batch keeps
// settlement granular without per-line overhead.
func DefaultOptions() Options {
	return Options{ChunkLines: 512, ChunkBytes: 1 << 20, MaxDocumentBytes: 64 << 20, MaxLineBytes: 1 << 20}
}

// Shapes of input Read recognises: stable labels for logs.
const (
	ShapeDocuments      = "cloudwatch_logs_documents"     // subscription documents, gzip or JSON, concatenated
	ShapeLambdaEvents   = "lambda_cloudwatch_logs_events" // {"awslogs":...} and on-failure destination records
	ShapeKinesisEvents  = "lambda_kinesis_events"         // {"Records":[{"kinesis":{"data":...}}]}
	ShapeFirehoseBodies = "firehose_request_bodies"       // {"requestId":...,"records":[{"data":...}]}
	ShapeFirehoseBackup = "firehose_s3_backup"            // failed-delivery records with rawData
	ShapeFilterEvents   = "filter_log_events"             // aws logs filter-log-events / get-log-events output
	ShapeLines          = "access_log_lines"              // JSON per line, optional export or `aws logs tail` prefix
)

// Stats counts what was read.
type Stats struct {
	Shape   string
	Batches int
	Lines   int
	// DecodeErrors counts skipped stretches of input (damaged gzip members,
	// malformed or unknown values), by reason in ErrorsByReason.
	DecodeErrors   int
	ErrorsByReason map[string]int
}

// ErrUnknownShape is wrapped by the error for an input that is none of the
// shapes replay reads.
var ErrUnknownShape = errors.New("input is not a shape replay reads")

// Accepted lists what Read accepts, for messages.
const Accepted = "access-log lines (JSON, one per line, optionally prefixed by a CloudWatch Logs export timestamp or by `aws logs tail`'s timestamp and log stream), " +
	"CloudWatch Logs subscription documents (gzip or JSON, concatenated, e.g. Firehose-to-S3 objects), " +
	`Lambda events ({"awslogs":...}, on-failure destination records, Kinesis {"Records":[...]}), ` +
	"Firehose HTTP endpoint request bodies, Firehose S3 backup records (rawData), " +
	"and `aws logs filter-log-events` output"

type reader struct {
	ctx  context.Context
	name string
	o    Options
	emit func(pipeline.Batch) error
	st   *Stats
}

func (rd *reader) bad(e *cwlogs.DecodeError) {
	rd.st.DecodeErrors++
	rd.st.ErrorsByReason[e.Reason]++
	if rd.o.Log != nil {
		rd.o.Log.Warn("skipping undecodable input", "file", rd.name, "reason", e.Reason, "position", e.Position(), "err", e)
	}
}

func (rd *reader) badf(reason string, offset int64, format string, args ...any) {
	rd.bad(&cwlogs.DecodeError{Reason: reason, Err: fmt.Errorf(format, args...), Offset: offset, DocOffset: -1})
}

// Read detects the content of r and calls emit with each batch, in order.
// Content is detected by magic bytes and shape, never by file name: gzip
// members are undone one at a time; a stream of JSON objects is read one
// object at a time and each handled by its shape (see the Shape constants);
// anything else starting with '{' or a timestamp is access-log lines. An
// input that is none of these fails with one error (wrapping
// ErrUnknownShape) before anything is emitted.
func Read(ctx context.Context, name string, r io.Reader, o Options, emit func(pipeline.Batch) error) (Stats, error) {
	def := DefaultOptions()
	if o.ChunkLines <= 0 {
		o.ChunkLines = def.ChunkLines
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = def.ChunkBytes
	}
	if o.MaxDocumentBytes <= 0 {
		o.MaxDocumentBytes = def.MaxDocumentBytes
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = def.MaxLineBytes
	}
	st := Stats{ErrorsByReason: map[string]int{}}
	rd := &reader{ctx: ctx, name: name, o: o, emit: emit, st: &st}
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(32 << 10)
	var src io.Reader = br
	var members *cwlogs.Members
	// Gzip, possibly after damage: text never holds the gzip header (0x8b is
	// not a UTF-8 lead byte).
	if cwlogs.IsGzip(head) || bytes.Contains(head, []byte{0x1f, 0x8b, 0x08}) {
		members = cwlogs.NewMembers(br, rd.bad)
		src = members
	}
	body := bufio.NewReaderSize(src, 64<<10)
	peek, err := body.Peek(32 << 10)
	for range 4 { // a damaged first member: look at what follows it
		if !errors.Is(err, cwlogs.ErrBreak) {
			break
		}
		peek, err = body.Peek(32 << 10)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, cwlogs.ErrBreak) {
		return st, fmt.Errorf("read %s: %w", name, err)
	}
	st.Shape = detect(peek)
	switch st.Shape {
	case "":
		return st, fmt.Errorf("read %s: %w: it looks like %s; replay reads %s", name, ErrUnknownShape, describe(peek), Accepted)
	case ShapeLines:
		err = rd.lines(body)
	default:
		err = rd.values(body, members)
	}
	return st, err
}

// keyRE finds the top-level keys that tell the JSON shapes apart. Inside a
// JSON string quotes are escaped, so a line mentioning them does not match.
var keyRE = regexp.MustCompile(`"(messageType|logEvents|awslogs|requestPayload|Records|records|requestId|rawData|attemptsMade|events|searchedLogStreams)"\s*:\s*(.)`)

// detect names the shape of the input from its first bytes; "" if unknown.
func detect(p []byte) string {
	p = bytes.TrimLeft(p, " \t\r\n\xef\xbb\xbf")
	if len(p) == 0 {
		return ShapeLines // empty input: nothing to do
	}
	if p[0] == '{' || bytes.HasPrefix(p, []byte{0x1f, 0x8b}) || !utf8.Valid(p[:min(len(p), 512)]) {
		// Judge the first object by its top-level keys; damaged input may
		// start elsewhere, so fall back to the keys anywhere in the head.
		keys := topKeys(p)
		if len(keys) == 0 && p[0] != '{' {
			keys = map[string]byte{}
			for _, m := range keyRE.FindAllSubmatch(p, -1) {
				keys[string(m[1])] = m[2][0]
			}
		}
		if s := shapeOfKeys(keys); s != "" {
			return s
		}
		if p[0] == '{' {
			return ShapeLines
		}
		return ""
	}
	line := p
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		line = p[:i]
	}
	if rest := stripPrefix(bytes.TrimSpace(line)); len(rest) > 0 && rest[0] == '{' {
		return ShapeLines
	}
	return ""
}

// shapeOfKeys names a JSON value's shape from its top-level keys (each
// mapped to the first byte of its value).
func shapeOfKeys(k map[string]byte) string {
	has := func(key string) bool { _, ok := k[key]; return ok }
	switch {
	case has("messageType") || has("logEvents"):
		return ShapeDocuments
	case k["awslogs"] == '{' || k["requestPayload"] == '{':
		return ShapeLambdaEvents
	case k["Records"] == '[':
		return ShapeKinesisEvents
	case k["records"] == '[' && has("requestId"):
		return ShapeFirehoseBodies
	case has("rawData"):
		return ShapeFirehoseBackup
	case k["events"] == '[':
		return ShapeFilterEvents
	}
	return ""
}

// topKeys returns the top-level keys of the object at the start of b (as
// far as b holds it), each with the first byte of its value.
func topKeys(b []byte) map[string]byte {
	keys := map[string]byte{}
	i := jsonscan.SkipSpace(b, jsonscan.SkipBOM(b, 0))
	if i >= len(b) || b[i] != '{' {
		return keys
	}
	i++
	for {
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return keys
		}
		end, _, err := jsonscan.String(b, i)
		if err != nil {
			return keys
		}
		key := string(b[i+1 : end-1])
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return keys
		}
		i = jsonscan.SkipSpace(b, i+1)
		if i >= len(b) {
			return keys
		}
		keys[key] = b[i]
		if i, err = jsonscan.Skip(b, i); err != nil {
			return keys
		}
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return keys
		}
		i++
	}
}

var (
	clfRE = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]+\] "`)
	xmlRE = regexp.MustCompile(`^\s*<`)
)

// describe says what an unknown input looks like, for the one error message.
func describe(p []byte) string {
	p = bytes.TrimLeft(p, " \t\r\n\xef\xbb\xbf")
	line := p
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		line = p[:i]
	}
	line = bytes.TrimSpace(line)
	quoted := strconv.Quote(string(line[:min(len(line), 80)]))
	switch {
	case !utf8.Valid(p[:min(len(p), 512)]) || bytes.IndexByte(p[:min(len(p), 512)], 0) >= 0:
		return fmt.Sprintf("binary data (first bytes % x)", p[:min(len(p), 8)])
	case len(p) > 0 && p[0] == '[':
		return "a JSON array (replay reads JSON objects, concatenated or one per line)"
	case len(p) > 0 && p[0] == '{':
		return "JSON of an unknown shape"
	case clfRE.Match(line):
		return "CLF (Common Log Format) access-log lines, e.g. " + quoted + `: set the stage's access-log format to JSON`
	case xmlRE.Match(line):
		return "XML access-log lines, e.g. " + quoted + ": set the stage's access-log format to JSON"
	case bytes.Count(line, []byte(",")) >= 3:
		return "CSV access-log lines, e.g. " + quoted + ": set the stage's access-log format to JSON"
	}
	return "text lines that are not JSON, e.g. " + quoted
}

// breakless hides ErrBreak from line reading: a damaged member costs the
// line it cut, which then fails to parse and is counted.
type breakless struct{ r io.Reader }

func (b breakless) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, cwlogs.ErrBreak) {
		err = nil
	}
	return n, err
}

func (rd *reader) lines(r io.Reader) error {
	st, o := rd.st, rd.o
	sc := bufio.NewScanner(breakless{r})
	sc.Buffer(make([]byte, 0, 64<<10), o.MaxLineBytes)
	var chunk []byte
	// A chunk is made the size of the last one and a margin (up to 8 MiB: a
	// chunk of huge lines does not make every next one huge), so that it is
	// rarely grown, and copied, line by line.
	size := o.ChunkLines * 256
	n, first, lineNo := 0, 1, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		st.Batches++
		b := pipeline.Batch{Source: "file:" + rd.name, Format: pipeline.FormatLines,
			Records: []pipeline.Record{{ID: rd.name + ":" + strconv.Itoa(first), Data: chunk}}}
		size = min(len(chunk)+len(chunk)/8, 8<<20)
		chunk, n = nil, 0 // the batch owns the bytes now
		return rd.emit(b)
	}
	for sc.Scan() {
		lineNo++
		line := stripPrefix(bytes.TrimSpace(sc.Bytes()))
		if len(line) == 0 {
			continue
		}
		if n == 0 {
			first = lineNo
			chunk = make([]byte, 0, size)
		}
		chunk = append(append(chunk, line...), '\n')
		n++
		st.Lines++
		if n >= o.ChunkLines {
			if err := rd.ctx.Err(); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("read %s line %d: longer than %d bytes", rd.name, lineNo+1, o.MaxLineBytes)
		}
		return fmt.Errorf("read %s: %w", rd.name, err)
	}
	return flush()
}

// stripPrefix drops what precedes the access-log line: a CloudWatch Logs
// export timestamp ("2026-11-24T10:15:30.000Z {...}") or `aws logs tail`'s
// timestamp and log stream ("2026-11-24T10:15:30.123000+00:00 stream {...}").
func stripPrefix(line []byte) []byte {
	if len(line) == 0 || line[0] < '0' || line[0] > '9' {
		return line
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 10 || sp > 40 || !isTimestamp(line[:sp]) {
		return line
	}
	rest := bytes.TrimLeft(line[sp+1:], " ")
	if len(rest) == 0 || rest[0] == '{' {
		return rest
	}
	// `aws logs tail`: a log stream name (no spaces) before the message.
	if sp2 := bytes.IndexByte(rest, ' '); sp2 > 0 {
		if msg := bytes.TrimLeft(rest[sp2+1:], " "); len(msg) > 0 && msg[0] == '{' {
			return msg
		}
	}
	return rest
}

// isTimestamp accepts RFC 3339 timestamps as CloudWatch Logs and the AWS CLI write them.
func isTimestamp(b []byte) bool {
	return len(b) >= 19 && b[4] == '-' && b[7] == '-' && (b[10] == 'T' || b[10] == ' ') && b[13] == ':' && b[16] == ':'
}

// values reads a stream of JSON objects one at a time.
func (rd *reader) values(r io.Reader, members *cwlogs.Members) error {
	v := cwlogs.NewValues(r, members, rd.o.MaxDocumentBytes, rd.bad)
	var docs []pipeline.Record
	size := 0
	flushDocs := func(format pipeline.Format) error {
		if len(docs) == 0 {
			return nil
		}
		b := pipeline.Batch{Source: "file:" + rd.name, Format: format, Records: docs}
		docs, size = nil, 0
		rd.st.Batches++
		return rd.emit(b)
	}
	addDoc := func(id string, data []byte) error {
		docs = append(docs, pipeline.Record{ID: id, Data: data})
		size += len(data)
		if size >= rd.o.ChunkBytes || len(docs) >= 1024 {
			return flushDocs(pipeline.FormatCloudWatchLogs)
		}
		return nil
	}
	for n := 1; ; n++ {
		if err := rd.ctx.Err(); err != nil {
			return err
		}
		val, err := v.Next()
		if errors.Is(err, io.EOF) {
			return flushDocs(pipeline.FormatCloudWatchLogs)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", rd.name, err)
		}
		off := v.Offset() - int64(len(val))
		id := rd.name + "@" + strconv.FormatInt(off, 10)
		shape := shapeOfKeys(topKeys(val))
		if shape == ShapeDocuments && !cwlogs.IsDocument(val) {
			shape = ""
		}
		switch shape {
		case ShapeDocuments:
			err = addDoc(id, bytes.Clone(val))
		case ShapeFirehoseBackup:
			err = rd.backupRecord(val, id, off, addDoc)
		default:
			// Shapes that are a batch of their own: keep order.
			if err = flushDocs(pipeline.FormatCloudWatchLogs); err != nil {
				return err
			}
			err = rd.wrapper(shape, val, id, n, off)
		}
		if err != nil {
			return err
		}
	}
}

// lambdaValue is a Lambda CloudWatch Logs event, or an asynchronous
// invocation record whose requestPayload is one.
type lambdaValue struct {
	AWSLogs        *awslogs `json:"awslogs"`
	RequestPayload *struct {
		AWSLogs *awslogs `json:"awslogs"`
	} `json:"requestPayload"`
	RequestContext struct {
		RequestID string `json:"requestId"`
	} `json:"requestContext"`
}

type awslogs struct {
	Data string `json:"data"`
}

// kinesisEvent is a Lambda Kinesis event-source-mapping event.
type kinesisEvent struct {
	Records []struct {
		EventSource string `json:"eventSource"`
		Kinesis     struct {
			Data           string `json:"data"`
			SequenceNumber string `json:"sequenceNumber"`
		} `json:"kinesis"`
	} `json:"Records"`
}

// firehoseBody is a Firehose HTTP endpoint request body.
type firehoseBody struct {
	RequestID string `json:"requestId"`
	Records   []struct {
		Data string `json:"data"`
	} `json:"records"`
}

// filterEvents is `aws logs filter-log-events` (or get-log-events) output.
type filterEvents struct {
	Events []struct {
		LogStreamName string `json:"logStreamName"`
		Message       string `json:"message"`
	} `json:"events"`
}

// decode64 decodes one base64 payload within the document cap.
func (rd *reader) decode64(s string) ([]byte, error) {
	if int64(base64.StdEncoding.DecodedLen(len(s))) > rd.o.MaxDocumentBytes {
		return nil, fmt.Errorf("payload larger than %d bytes", rd.o.MaxDocumentBytes)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("payload is not base64: %w", err)
	}
	return b, nil
}

// wrapper handles a value that is one batch: a Lambda event, a Firehose
// body or a filter-log-events page. A value of no known shape is skipped.
func (rd *reader) wrapper(shape string, val []byte, id string, n int, off int64) error {
	b := pipeline.Batch{Source: "file:" + rd.name, Format: pipeline.FormatCloudWatchLogs}
	switch shape {
	case ShapeLambdaEvents:
		var v lambdaValue
		if err := json.Unmarshal(val, &v); err != nil {
			rd.badf(cwlogs.ReasonJSON, off, "Lambda event %d: %w", n, err)
			return nil
		}
		logs := v.AWSLogs
		id = rd.name + ":" + strconv.Itoa(n)
		if logs == nil && v.RequestPayload != nil {
			logs = v.RequestPayload.AWSLogs
			if v.RequestContext.RequestID != "" {
				id = rd.name + ":" + v.RequestContext.RequestID
			}
		}
		if logs == nil || logs.Data == "" {
			rd.badf(cwlogs.ReasonJSON, off, `value %d is neither a Lambda CloudWatch Logs event ({"awslogs":{"data":...}}) nor an on-failure destination record holding one ({"requestPayload":{"awslogs":...}})`, n)
			return nil
		}
		data, err := rd.decode64(logs.Data)
		if err != nil {
			rd.badf(cwlogs.ReasonJSON, off, "Lambda event %d: awslogs.data: %w", n, err)
			return nil
		}
		b.Records = []pipeline.Record{{ID: id, Data: data}}
	case ShapeKinesisEvents:
		var v kinesisEvent
		if err := json.Unmarshal(val, &v); err != nil {
			rd.badf(cwlogs.ReasonJSON, off, "Kinesis event %d: %w", n, err)
			return nil
		}
		for i, r := range v.Records {
			data, err := rd.decode64(r.Kinesis.Data)
			if err != nil || r.Kinesis.Data == "" {
				rd.badf(cwlogs.ReasonJSON, off, "Kinesis event %d record %d (%s): kinesis.data: %v", n, i, r.Kinesis.SequenceNumber, err)
				continue
			}
			rid := r.Kinesis.SequenceNumber
			if rid == "" {
				rid = id + "#" + strconv.Itoa(i)
			}
			b.Records = append(b.Records, pipeline.Record{ID: rid, Data: data})
		}
	case ShapeFirehoseBodies:
		var v firehoseBody
		if err := json.Unmarshal(val, &v); err != nil {
			rd.badf(cwlogs.ReasonJSON, off, "Firehose body %d: %w", n, err)
			return nil
		}
		for i, r := range v.Records {
			data, err := rd.decode64(r.Data)
			if err != nil {
				rd.badf(cwlogs.ReasonJSON, off, "Firehose body %s record %d: data: %w", v.RequestID, i, err)
				continue
			}
			b.Records = append(b.Records, pipeline.Record{ID: v.RequestID + "#" + strconv.Itoa(i), Data: data})
		}
	case ShapeFilterEvents:
		var v filterEvents
		if err := json.Unmarshal(val, &v); err != nil {
			rd.badf(cwlogs.ReasonJSON, off, "filter-log-events output %d: %w", n, err)
			return nil
		}
		var lines []byte
		for _, e := range v.Events {
			lines = append(append(lines, e.Message...), '\n')
			rd.st.Lines++
		}
		b.Format = pipeline.FormatLines
		b.Records = []pipeline.Record{{ID: id, Data: lines}}
	default:
		rd.badf(cwlogs.ReasonJSON, off, "value %d is none of the shapes replay reads (%s)", n, Accepted)
		return nil
	}
	if len(b.Records) == 0 {
		return nil
	}
	rd.st.Batches++
	return rd.emit(b)
}

// backupRecord handles one Firehose S3 backup record of a failed delivery:
// {"attemptsMade":..,"arrivalTimestamp":..,"errorCode":..,"errorMessage":..,
// "attemptEndingTimestamp":..,"rawData":"<base64 of the Firehose record>"}.
func (rd *reader) backupRecord(val []byte, id string, off int64, add func(string, []byte) error) error {
	var v struct {
		RawData string `json:"rawData"`
	}
	if err := json.Unmarshal(val, &v); err != nil {
		rd.badf(cwlogs.ReasonJSON, off, "Firehose backup record: %w", err)
		return nil
	}
	data, err := rd.decode64(v.RawData)
	if err != nil || len(data) == 0 {
		rd.badf(cwlogs.ReasonJSON, off, "Firehose backup record: rawData: %v", err)
		return nil
	}
	return add(id, data)
}
