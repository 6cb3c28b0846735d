package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("%s not registered", name)
	return nil
}

func counterBy(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// The age of a call at acceptance comes from the access log's request time,
// else from the CloudWatch Logs event timestamp; calls carry their envelope's
// account and log group, counted by account.
func TestCallAgeAndAccount(t *testing.T) {
	t.Parallel()
	rec := &callKeeper{}
	p, reg := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 16, Workers: 2})
	now := time.Now()
	withTime := fmt.Sprintf(`{"requestId":"a","httpMethod":"GET","path":"/a","status":"200","domainName":"h.example.com","requestTimeEpoch":"%d"}`, now.Add(-90*time.Second).UnixMilli())
	without := `{"requestId":"b","httpMethod":"GET","path":"/b","status":"200","domainName":"h.example.com"}`
	doc := traffic.GzipEnvelope("/aws/apigateway/shop", "s", []traffic.LogEvent{
		{ID: "1", Timestamp: now.Add(-10 * time.Second).UnixMilli(), Message: withTime},
		{ID: "2", Timestamp: now.Add(-600 * time.Second).UnixMilli(), Message: without},
	})
	s, err := p.Submit(context.Background(), pipeline.Batch{Source: "test", Records: []pipeline.Record{{ID: "r", Data: doc}}})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.Wait(context.Background()); err != nil || out.Delivered != 2 {
		t.Fatalf("outcome %+v, %v", out, err)
	}
	h := histogram(t, reg, "apigw_connector_pipeline_call_age_seconds")
	if h.GetSampleCount() != 2 {
		t.Fatalf("%d ages observed, want 2", h.GetSampleCount())
	}
	// 90 s (request time, not the 10 s event timestamp) + 600 s (event timestamp).
	if sum := h.GetSampleSum(); sum < 689 || sum > 720 {
		t.Errorf("age sum %.1f s, want about 690", sum)
	}
	if got := counterBy(t, reg, "apigw_connector_pipeline_account_calls_total", "account"); got[traffic.Owner] != 2 {
		t.Errorf("calls by account %v, want %s: 2", got, traffic.Owner)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, c := range rec.got {
		if c.Account != traffic.Owner || c.LogGroup != "/aws/apigateway/shop" || c.LogTime.IsZero() {
			t.Errorf("call %s: account %q log group %q log time %v", c.RequestID, c.Account, c.LogGroup, c.LogTime)
		}
	}
}

// callKeeper is a forwarder that keeps every call.
type callKeeper struct {
	mu  sync.Mutex
	got []accesslog.APICall
}

func (k *callKeeper) Deliver(_ context.Context, c *accesslog.APICall) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.got = append(k.got, *c)
	return nil
}
