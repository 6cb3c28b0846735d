// Package file reads exported access logs or saved CloudWatch Logs documents
// from files or stdin and turns them into pipeline batches (for `replay`).
package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// Options bound what one batch holds.
type Options struct {
	ChunkLines       int   // access-log lines per batch
	MaxDocumentBytes int64 // cap on a CloudWatch Logs document file read whole
	MaxLineBytes     int   // longest accepted line
}

// DefaultOptions suits exported logs: a few hundred lines per batch keeps
// settlement granular without per-line overhead.
func DefaultOptions() Options {
	return Options{ChunkLines: 512, MaxDocumentBytes: 64 << 20, MaxLineBytes: 1 << 20}
}

// Stats counts what was read.
type Stats struct {
	Batches int
	Lines   int
}

// Read detects the content of r and calls emit with each batch, in order.
// Content is detected by magic bytes and shape, never by file name: gzip is
// undone once; a stream of Lambda CloudWatch Logs events ({"awslogs":{"data":...}})
// or of Lambda on-failure destination records holding one
// ({"requestPayload":{"awslogs":...}}, what the Lambda template's failure
// queue receives) gives one batch per event; a stream whose first value is a
// CloudWatch Logs envelope (messageType/logEvents) is handed to the decoder
// whole; anything else is read as access-log lines, one per line, with an
// optional leading timestamp (CloudWatch Logs' export to S3 writes
// "2026-11-24T10:15:30.000Z {...}").
func Read(ctx context.Context, name string, r io.Reader, o Options, emit func(pipeline.Batch) error) (Stats, error) {
	var st Stats
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(2)
	var src io.Reader = br
	if cwlogs.IsGzip(head) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("read %s: gzip: %w", name, err)
		}
		defer zr.Close()
		src = zr // multistream by default: concatenated members are read in turn
	}
	body := bufio.NewReaderSize(src, 64<<10)
	peek, _ := body.Peek(32 << 10)
	if isLambdaEvent(peek) {
		return readLambdaEvents(ctx, name, body, o, emit)
	}
	if isEnvelope(peek) {
		data, err := io.ReadAll(io.LimitReader(body, o.MaxDocumentBytes+1))
		if err != nil {
			return st, fmt.Errorf("read %s: %w", name, err)
		}
		if int64(len(data)) > o.MaxDocumentBytes {
			return st, fmt.Errorf("read %s: CloudWatch Logs document larger than %d bytes (split it, or raise decode.max_decompressed_bytes)", name, o.MaxDocumentBytes)
		}
		st.Batches++
		return st, emit(pipeline.Batch{Source: "file:" + name, Format: pipeline.FormatCloudWatchLogs,
			Records: []pipeline.Record{{ID: name, Data: data}}})
	}
	return readLines(ctx, name, body, o, emit)
}

func readLines(ctx context.Context, name string, r io.Reader, o Options, emit func(pipeline.Batch) error) (Stats, error) {
	var st Stats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), o.MaxLineBytes)
	var chunk []byte
	n, first, lineNo := 0, 1, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		st.Batches++
		b := pipeline.Batch{Source: "file:" + name, Format: pipeline.FormatLines,
			Records: []pipeline.Record{{ID: name + ":" + strconv.Itoa(first), Data: chunk}}}
		chunk, n = nil, 0 // the batch owns the bytes now
		return emit(b)
	}
	for sc.Scan() {
		lineNo++
		line := stripTimestamp(bytes.TrimSpace(sc.Bytes()))
		if len(line) == 0 {
			continue
		}
		if n == 0 {
			first = lineNo
			chunk = make([]byte, 0, o.ChunkLines*256)
		}
		chunk = append(append(chunk, line...), '\n')
		n++
		st.Lines++
		if n >= o.ChunkLines {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return st, fmt.Errorf("read %s line %d: longer than %d bytes", name, lineNo+1, o.MaxLineBytes)
		}
		return st, fmt.Errorf("read %s: %w", name, err)
	}
	return st, flush()
}

// stripTimestamp drops an export timestamp before the JSON object.
func stripTimestamp(line []byte) []byte {
	if len(line) == 0 || line[0] == '{' || line[0] < '0' || line[0] > '9' {
		return line
	}
	if i := bytes.Index(line, []byte(" {")); i > 0 && i < 64 {
		return line[i+1:]
	}
	return line
}

// firstValue returns the start of the stream's first JSON object: its first
// line, or the whole peek when the object is pretty-printed over several lines.
// It returns nil when the stream does not start with an object.
func firstValue(p []byte) []byte {
	p = bytes.TrimLeft(p, " \t\r\n\xef\xbb\xbf")
	if len(p) == 0 || p[0] != '{' {
		return nil
	}
	end := len(p)
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		end = i
	}
	first := p[:end]
	if !bytes.HasSuffix(bytes.TrimSpace(first), []byte("}")) {
		first = p // pretty-printed: the keys are on later lines
	}
	return first
}

// isEnvelope reports whether the stream starts with a CloudWatch Logs
// subscription document rather than an access-log line.
func isEnvelope(p []byte) bool {
	// Only the first JSON value matters: an access-log line never carries these keys.
	first := firstValue(p)
	return bytes.Contains(first, []byte(`"logEvents"`)) || bytes.Contains(first, []byte(`"messageType"`))
}

// awslogsObject matches an "awslogs" key opening an object. Inside a JSON
// string the quotes would be escaped, so only a real key matches.
var awslogsObject = regexp.MustCompile(`"awslogs"\s*:\s*\{`)

// isLambdaEvent reports whether the stream starts with a Lambda CloudWatch
// Logs event or an on-failure destination record holding one.
func isLambdaEvent(p []byte) bool {
	return awslogsObject.Match(firstValue(p))
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

// readLambdaEvents emits one CloudWatch Logs batch per JSON value of r (values
// may be concatenated, one per line or pretty-printed).
func readLambdaEvents(ctx context.Context, name string, r io.Reader, o Options, emit func(pipeline.Batch) error) (Stats, error) {
	var st Stats
	dec := json.NewDecoder(r)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var v lambdaValue
		if err := dec.Decode(&v); err == io.EOF {
			return st, nil
		} else if err != nil {
			return st, fmt.Errorf("read %s: Lambda event %d: %w", name, n, err)
		}
		logs, id := v.AWSLogs, name+":"+strconv.Itoa(n)
		if logs == nil && v.RequestPayload != nil {
			logs = v.RequestPayload.AWSLogs
			if v.RequestContext.RequestID != "" {
				id = name + ":" + v.RequestContext.RequestID
			}
		}
		if logs == nil || logs.Data == "" {
			return st, fmt.Errorf(`read %s: value %d is neither a Lambda CloudWatch Logs event ({"awslogs":{"data":...}}) nor an on-failure destination record holding one ({"requestPayload":{"awslogs":...}})`, name, n)
		}
		if int64(base64.StdEncoding.DecodedLen(len(logs.Data))) > o.MaxDocumentBytes {
			return st, fmt.Errorf("read %s: Lambda event %d: awslogs.data larger than %d bytes", name, n, o.MaxDocumentBytes)
		}
		data, err := base64.StdEncoding.DecodeString(logs.Data)
		if err != nil {
			return st, fmt.Errorf("read %s: Lambda event %d: awslogs.data is not base64: %w", name, n, err)
		}
		st.Batches++
		if err := emit(pipeline.Batch{Source: "file:" + name, Format: pipeline.FormatCloudWatchLogs,
			Records: []pipeline.Record{{ID: id, Data: data}}}); err != nil {
			return st, err
		}
	}
}
