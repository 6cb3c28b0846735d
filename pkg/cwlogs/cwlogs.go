// Package cwlogs turns CloudWatch Logs subscription data into log events, in
// every shape AWS delivers it: gzip document(s) (Kinesis, Firehose without
// processing, Lambda after DecodeLambdaEvent), a plain JSON document (Firehose
// decompression) and newline-separated message lines (Firehose message
// extraction). The shape is detected from the bytes, never guessed: gzip magic
// bytes mean gzip; otherwise a first JSON object with a top-level "messageType"
// key means envelope documents; anything else is message lines.
//
// The decoder is the hot path of the product: it scans JSON in place without
// reflection, unescapes only messages that need it, and reuses gzip readers
// and buffers across calls.
package cwlogs

import (
	"errors"
	"fmt"
)

// DefaultMaxDecompressedBytes caps what one gzip member may decompress to. A
// Kinesis record is at most 1 MB compressed; CloudWatch Logs JSON compresses
// about 5-15x, so 64 MiB leaves room while stopping gzip bombs.
const DefaultMaxDecompressedBytes = 64 << 20

// Options configure a Decoder.
type Options struct {
	// MaxDecompressedBytes caps the decompressed size of one gzip member (and,
	// when reading files, of one document). A member over the cap is skipped
	// like any other bad member. Zero means DefaultMaxDecompressedBytes.
	MaxDecompressedBytes int64 `yaml:"max_decompressed_bytes"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxDecompressedBytes: DefaultMaxDecompressedBytes}
}

// ConfigPath is where Options sit in the product's configuration; Validate
// messages name settings with it.
const ConfigPath = "decode"

// Validate checks the options.
func (o Options) Validate() error {
	const setting = ConfigPath + ".max_decompressed_bytes"
	const fix = "set " + setting + " (env APIGW_CONNECTOR_CWLOGS_MAX_DECOMPRESSED_BYTES)"
	if o.MaxDecompressedBytes < 0 || (o.MaxDecompressedBytes > 0 && o.MaxDecompressedBytes < 1024) {
		return fmt.Errorf("%s must be at least 1024 (or 0 for the default %d), got %d: %s",
			setting, DefaultMaxDecompressedBytes, o.MaxDecompressedBytes, fix)
	}
	if o.MaxDecompressedBytes > 1<<40 {
		return fmt.Errorf("%s must be at most %d, got %d: %s", setting, int64(1<<40), o.MaxDecompressedBytes, fix)
	}
	return nil
}

// IsGzip reports whether b starts with the gzip magic bytes: how a record's
// (or a file's) compression is detected.
func IsGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// Meta is the envelope of a document; empty for extracted message lines.
type Meta struct {
	MessageType         string
	Owner               string
	LogGroup            string
	LogStream           string
	SubscriptionFilters []string
}

// Event is one log event. ID and Message alias the decoder's buffers or the
// input: they are valid only during the callback (a string per event would
// be an allocation per call). ID is empty for extracted lines.
type Event struct {
	ID        []byte
	Timestamp int64 // epoch ms; 0 for extracted lines
	Message   []byte
}

// Stats count what one Decode call saw.
type Stats struct {
	Documents       int // envelope documents (DATA_MESSAGE and CONTROL_MESSAGE); 0 for message lines
	ControlMessages int // CONTROL_MESSAGE documents, acknowledged and skipped
	Events          int // events passed to the callback
	Errors          int // bad documents, gzip members or spans skipped (each reported once)
}

// Reasons of a DecodeError: stable metric labels.
const (
	ReasonGzip               = "gzip"                 // corrupt or truncated gzip data
	ReasonTooLarge           = "too_large"            // decompressed size cap hit (gzip bomb)
	ReasonJSON               = "json"                 // malformed envelope document
	ReasonUnknownMessageType = "unknown_message_type" // messageType other than DATA_MESSAGE/CONTROL_MESSAGE
	ReasonEmpty              = "empty"                // no document, no line
)

// ErrTooLarge is wrapped by a too_large DecodeError.
var ErrTooLarge = errors.New("decompressed size exceeds the cap")

// DecodeError says why one document, gzip member or span of a record could
// not be decoded, and where it is. The rest of the record is still decoded.
type DecodeError struct {
	Reason string // one of the Reason* constants
	Err    error
	// Member is the 1-based gzip member the error is in (0: not gzip data).
	Member int
	// Offset is the byte offset in the record (or file) of the bad gzip
	// member, or of the bad document when the data is not gzip; -1 if unknown.
	Offset int64
	// DocOffset is the offset of the bad document in its decompressed gzip
	// member (for a streamed file: in the whole decompressed stream, the
	// member being the one read when the damage showed); -1 when the error is
	// about the member itself or not in gzip data.
	DocOffset int64
}

// Position renders where the error is, for logs: "gzip member 2 at byte 1234,
// document at decompressed byte 56" or "document at byte 56".
func (e *DecodeError) Position() string {
	var b []byte
	if e.Member > 0 {
		b = fmt.Appendf(b, "gzip member %d", e.Member)
		if e.Offset >= 0 {
			b = fmt.Appendf(b, " at byte %d", e.Offset)
		}
		if e.DocOffset >= 0 {
			b = fmt.Appendf(b, ", document at decompressed byte %d", e.DocOffset)
		}
		return string(b)
	}
	if e.Offset >= 0 {
		return fmt.Sprintf("byte %d", e.Offset)
	}
	return ""
}

func (e *DecodeError) Error() string {
	msg := e.message()
	if pos := e.Position(); pos != "" {
		msg += " (" + pos + ")"
	}
	return msg
}

func (e *DecodeError) message() string {
	switch e.Reason {
	case ReasonGzip:
		return "decode CloudWatch Logs record: corrupt or truncated gzip data: " + e.Err.Error()
	case ReasonTooLarge:
		return "decode CloudWatch Logs record: " + e.Err.Error() +
			" (possible gzip bomb; raise " + ConfigPath + ".max_decompressed_bytes if records are legitimately this large)"
	case ReasonJSON:
		return "decode CloudWatch Logs record: malformed JSON document: " + e.Err.Error()
	case ReasonUnknownMessageType, ReasonEmpty:
		return "decode CloudWatch Logs record: " + e.Err.Error()
	}
	return "decode CloudWatch Logs record (" + e.Reason + "): " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(reason string, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...), Offset: -1, DocOffset: -1}
}
