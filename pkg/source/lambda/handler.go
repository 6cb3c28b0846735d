// Package lambda is the AWS Lambda source: it delivers the calls of a
// CloudWatch Logs subscription event or a Kinesis event-source-mapping batch
// within the invocation's deadline, and reports as failed exactly what the
// node did not take (an error for subscription events, batchItemFailures for
// Kinesis), so Lambda retries it. It is independent of the Lambda runtime.
package lambda

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// ErrNotDelivered: some calls were not delivered before the deadline; the
// invocation fails so that Lambda retries the event.
var ErrNotDelivered = errors.New("calls not delivered before the invocation deadline")

// ErrUnsupportedEvent: the payload is neither a CloudWatch Logs subscription
// event nor a Kinesis event.
var ErrUnsupportedEvent = errors.New("unsupported event")

// Submitter is the pipeline as the handler uses it.
type Submitter interface {
	Submit(ctx context.Context, b pipeline.Batch) (*pipeline.Settlement, error)
}

// Margins kept between the delivery deadline and the invocation deadline, so
// the handler can still answer (and Lambda record failures) in time.
const (
	maxMargin = 2 * time.Second
	// A busy or throttled execution environment needs a moment to abandon
	// in-flight calls and answer; 3 s (Lambda's default timeout) keeps 600 ms.
	minMargin = 250 * time.Millisecond
	// settleGrace bounds the wait for the pipeline to report abandoned calls.
	settleGrace = 500 * time.Millisecond
)

// Handler handles one invocation at a time (Lambda never runs two at once in
// an execution environment) but is safe for concurrent use.
type Handler struct {
	sub Submitter
	log *slog.Logger
	// Dedup, when set, skips calls this execution environment already
	// delivered: Lambda retries a failed batch, usually in the same warm
	// environment, and the calls that did get through need not be sent again.
	Dedup pipeline.Deduper
}

// NewHandler returns a handler submitting to sub.
func NewHandler(sub Submitter, log *slog.Logger) *Handler {
	return &Handler{sub: sub, log: log}
}

// deliveryContext ends a safety margin before the invocation deadline:
// 20% of the time left, between 250 ms and 2 s.
func deliveryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(max(time.Until(dl)/5, minMargin), maxMargin)
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// summary is one invocation's tally, logged as one line.
type summary struct {
	kind          string
	records       int
	failedRecords int
	out           pipeline.Outcome
	start         time.Time
}

func (s *summary) add(o pipeline.Outcome) { s.out.Add(o) }

func (h *Handler) logSummary(s *summary, err error) {
	attrs := []any{"event_type", s.kind, "records", s.records, "events", s.out.Events, "calls", s.out.Calls,
		"delivered", s.out.Delivered, "rejected", s.out.Rejected, "failed", s.out.Abandoned,
		"duplicates", s.out.Duplicates, "filtered", s.out.Filtered,
		"decode_errors", s.out.DecodeErrors, "parse_errors", s.out.ParseErrors,
		"failed_records", s.failedRecords, "duration_ms", time.Since(s.start).Milliseconds()}
	if err != nil {
		h.log.Warn("invocation failed; Lambda will retry", append(attrs, "err", err)...)
		return
	}
	h.log.Info("invocation done", attrs...)
}

// submitAndWait submits one batch and waits for it to settle. It returns the
// outcome and whether every call settled.
func (h *Handler) submitAndWait(ctx context.Context, b pipeline.Batch) (pipeline.Outcome, bool, error) {
	s, err := h.sub.Submit(ctx, b)
	if err != nil {
		return pipeline.Outcome{}, false, err
	}
	out, ok := waitSettled(ctx, s)
	return out, ok && out.Settled(), nil
}

// waitSettled waits for s; the pipeline closes Done once ctx ends and the rest
// is abandoned, the timer only guards against a settlement that never reports.
func waitSettled(ctx context.Context, s *pipeline.Settlement) (pipeline.Outcome, bool) {
	select {
	case <-s.Done():
		return s.Outcome(), true
	default:
	}
	wait := settleGrace
	if dl, ok := ctx.Deadline(); ok {
		wait += max(time.Until(dl), 0)
	} else {
		<-s.Done()
		return s.Outcome(), true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.Done():
		return s.Outcome(), true
	case <-t.C:
		return pipeline.Outcome{}, false
	}
}

// HandleCloudWatchLogs delivers a subscription event's calls. It returns an
// error (wrapping ErrNotDelivered) unless every call settled, so Lambda retries
// the event; the Dedup set then spares the calls already delivered.
func (h *Handler) HandleCloudWatchLogs(ctx context.Context, ev events.CloudwatchLogsEvent) (err error) {
	s := &summary{kind: "cloudwatch_logs", records: 1, start: time.Now()}
	defer func() { h.logSummary(s, err) }()
	data, err := base64.StdEncoding.DecodeString(ev.AWSLogs.Data)
	if err != nil {
		// A malformed event never gets better with retries: log and drop it.
		s.out.DecodeErrors++
		h.log.Error("dropped a subscription event: awslogs.data is not base64", "err", err)
		return nil
	}
	dctx, cancel := deliveryContext(ctx)
	defer cancel()
	b := pipeline.Batch{Source: "lambda/awslogs", Format: pipeline.FormatCloudWatchLogs,
		Records: []pipeline.Record{{ID: "awslogs", Data: data}}, Dedup: h.Dedup}
	out, ok, err := h.submitAndWait(dctx, b)
	s.add(out)
	if err != nil {
		s.failedRecords = 1
		return fmt.Errorf("deliver subscription event: %w: %w", ErrNotDelivered, err)
	}
	if !ok {
		s.failedRecords = 1
		return fmt.Errorf("deliver subscription event: %d of %d calls: %w", out.Abandoned, out.Calls, ErrNotDelivered)
	}
	return nil
}

// HandleKinesis delivers each Kinesis record as its own batch and reports in
// BatchItemFailures exactly the records with a call not delivered by the
// deadline (Lambda resumes from the lowest one; with the Dedup set the calls
// already delivered after it are not sent again).
func (h *Handler) HandleKinesis(ctx context.Context, ev events.KinesisEvent) (resp events.KinesisEventResponse, err error) {
	s := &summary{kind: "kinesis", records: len(ev.Records), start: time.Now()}
	defer func() { h.logSummary(s, err) }()
	resp.BatchItemFailures = []events.KinesisBatchItemFailure{}
	dctx, cancel := deliveryContext(ctx)
	defer cancel()

	// Submit all first (Submit returns once the calls are queued), then wait,
	// so records are forwarded concurrently within the pipeline's bound.
	settlements := make([]*pipeline.Settlement, len(ev.Records))
	for i, rec := range ev.Records {
		if dctx.Err() != nil {
			break
		}
		b := pipeline.Batch{Source: "lambda/" + rec.EventSourceArn, Format: pipeline.FormatCloudWatchLogs,
			Records: []pipeline.Record{{ID: rec.Kinesis.SequenceNumber, Data: rec.Kinesis.Data}}, Dedup: h.Dedup}
		st, serr := h.sub.Submit(dctx, b)
		if serr != nil {
			h.log.Warn("could not submit a Kinesis record before the deadline", "sequence_number", rec.Kinesis.SequenceNumber, "err", serr)
			break
		}
		settlements[i] = st
	}
	for i, rec := range ev.Records {
		settled := false
		if st := settlements[i]; st != nil {
			out, reported := waitSettled(dctx, st)
			s.add(out)
			settled = reported && out.Settled()
		}
		if !settled {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: rec.Kinesis.SequenceNumber})
		}
	}
	s.failedRecords = len(resp.BatchItemFailures)
	return resp, nil
}

// Invoke implements lambda.Handler: it detects the event type from the payload.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var probe struct {
		AWSLogs *json.RawMessage `json:"awslogs"`
		Records *[]struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("decode event: %w: %v", ErrUnsupportedEvent, err)
	}
	switch {
	case probe.AWSLogs != nil:
		var ev events.CloudwatchLogsEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decode CloudWatch Logs event: %w", err)
		}
		if err := h.HandleCloudWatchLogs(ctx, ev); err != nil {
			return nil, err
		}
		return []byte("null"), nil
	case probe.Records != nil && len(*probe.Records) == 0:
		// An empty batch: nothing to deliver.
		return []byte(`{"batchItemFailures":[]}`), nil
	case probe.Records != nil && (*probe.Records)[0].EventSource == "aws:kinesis":
		var ev events.KinesisEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decode Kinesis event: %w", err)
		}
		resp, err := h.HandleKinesis(ctx, ev)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
	return nil, fmt.Errorf("%w: expected a CloudWatch Logs subscription event ({\"awslogs\":...}) or a Kinesis event (Records with eventSource aws:kinesis)", ErrUnsupportedEvent)
}
