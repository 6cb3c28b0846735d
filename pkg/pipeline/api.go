// Package pipeline turns batches of source records into delivered API calls:
// decode -> parse -> forward, and tells the source when every call of a batch has
// settled (delivered or permanently rejected). It knows nothing of the source.
package pipeline

// Format says how the records of a batch are encoded.
type Format int

const (
	// FormatCloudWatchLogs: CloudWatch Logs subscription data in any shape AWS delivers
	// (gzip document(s), decompressed JSON document, extracted message lines), detected per record.
	FormatCloudWatchLogs Format = iota
	// FormatLines: access-log lines, one per line (exported logs for replay).
	FormatLines
)

// Record is one unit of source data, e.g. one Kinesis record's Data.
type Record struct {
	ID   string // source-specific id used in logs (sequence number, Firehose record index, file:line)
	Data []byte
}

// Batch is the unit a source acknowledges: one Kinesis record, one Firehose request,
// one file chunk, one Lambda event.
type Batch struct {
	Source  string // where it came from, for logs: "kinesis/shardId-000000000001", "firehose", "file:a.gz"
	Format  Format
	Records []Record
	// Dedup, when set, skips calls already delivered and learns newly delivered ones
	// (Firehose retries the whole batch).
	Dedup Deduper
}

// Deduper remembers delivered calls by their node id (APICall.NodeID: one per
// log event, the same when the event is delivered again). Implementations
// must be safe for concurrent use.
type Deduper interface {
	Delivered(nodeID string) bool
	MarkDelivered(nodeID string)
}

// Outcome counts what happened to the calls of one batch.
type Outcome struct {
	Records      int // records in the batch
	DecodeErrors int // documents, gzip members or spans skipped as undecodable (the rest of their record is decoded)
	Events       int // log events decoded
	ParseErrors  int // log lines skipped as not an API call, or as a call without a host (no_host)
	Calls        int // calls parsed
	Filtered     int // calls skipped by filters
	Duplicates   int // calls skipped by the Deduper
	Delivered    int // calls accepted by the node (2xx or 403), AlreadyHeld included
	AlreadyHeld  int // of Delivered, calls the node held already (a replay, a redelivery): nothing new sent
	Rejected     int // calls permanently rejected by the node (4xx other than 408/429)
	Abandoned    int // calls neither delivered nor rejected because the batch context ended
}

// Settled reports whether every call reached a final state, i.e. the source may acknowledge.
func (o Outcome) Settled() bool { return o.Abandoned == 0 }

// Add sums b into o, for totals over many batches.
func (o *Outcome) Add(b Outcome) {
	o.Records += b.Records
	o.DecodeErrors += b.DecodeErrors
	o.Events += b.Events
	o.ParseErrors += b.ParseErrors
	o.Calls += b.Calls
	o.Filtered += b.Filtered
	o.Duplicates += b.Duplicates
	o.Delivered += b.Delivered
	o.AlreadyHeld += b.AlreadyHeld
	o.Rejected += b.Rejected
	o.Abandoned += b.Abandoned
}
