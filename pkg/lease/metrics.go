package lease

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	metricsNamespace = "apigw_connector"
	metricsSubsystem = "lease"
)

type metrics struct {
	held               prometheus.Gauge
	taken              prometheus.Counter
	stolen             prometheus.Counter
	lost               prometheus.Counter
	released           prometheus.Counter
	renewals           prometheus.Counter
	conditionalFailure *prometheus.CounterVec
	checkpoints        prometheus.Counter
	shardSyncs         prometheus.Counter
	errors             *prometheus.CounterVec
	skipped            *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, c *Coordinator) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	m := &metrics{
		held:     prometheus.NewGauge(prometheus.GaugeOpts(opts("held", "Leases this worker holds."))),
		taken:    prometheus.NewCounter(prometheus.CounterOpts(opts("taken_total", "Expired or unowned leases taken."))),
		stolen:   prometheus.NewCounter(prometheus.CounterOpts(opts("stolen_total", "Leases asked from more loaded workers by hand-off (planned moves)."))),
		lost:     prometheus.NewCounter(prometheus.CounterOpts(opts("lost_total", "Held leases lost to another worker or to failing renewals (not planned hand-offs)."))),
		released: prometheus.NewCounter(prometheus.CounterOpts(opts("released_total", "Leases released (shutdown, shard end, processor return)."))),
		renewals: prometheus.NewCounter(prometheus.CounterOpts(opts("renewals_total", "Successful lease renewals."))),
		conditionalFailure: prometheus.NewCounterVec(prometheus.CounterOpts(opts("conditional_failures_total",
			"Lease writes refused by their condition (another worker changed the lease), by operation.")), []string{"op"}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts(opts("checkpoints_total", "Checkpoints written."))),
		shardSyncs:  prometheus.NewCounter(prometheus.CounterOpts(opts("shard_syncs_total", "Completed shard syncs."))),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts(opts("errors_total",
			"Failed lease table or shard listing calls, by operation.")), []string{"op"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts(opts("rows_skipped_total",
			"Lease table rows left out of scans as no lease of this stream (KCL 3.x entity rows, multi-stream leases, rows without leaseCounter, undecodable rows), by reason.")), []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.held, m.taken, m.stolen, m.lost, m.released, m.renewals,
		m.conditionalFailure, m.checkpoints, m.shardSyncs, m.errors, m.skipped, &ageCollector{c: c}} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var checkpointAgeDesc = prometheus.NewDesc(
	prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "checkpoint_age_seconds"),
	"Seconds since the last checkpoint write of each held lease (since acquisition when none yet).",
	[]string{"shard"}, nil)

// ageCollector reports checkpoint age per held shard at scrape time.
type ageCollector struct{ c *Coordinator }

func (a *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- checkpointAgeDesc }

func (a *ageCollector) Collect(ch chan<- prometheus.Metric) {
	for shard, age := range a.c.CheckpointAges() {
		ch <- prometheus.MustNewConstMetric(checkpointAgeDesc, prometheus.GaugeValue, age.Seconds(), shard)
	}
}

// CheckpointAges returns, per held lease, the time since its last checkpoint
// write by this worker (since acquisition when none yet).
func (c *Coordinator) CheckpointAges() map[string]time.Duration {
	held := c.heldNow()
	out := make(map[string]time.Duration, len(held))
	for _, h := range held {
		h.mu.Lock()
		out[h.key] = time.Since(h.lastCheckpoint)
		h.mu.Unlock()
	}
	return out
}
