package kinesis

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	millisBehind   *prometheus.GaugeVec
	recordsRead    *prometheus.CounterVec
	bytesRead      *prometheus.CounterVec
	getRecords     *prometheus.CounterVec
	throttles      *prometheus.CounterVec
	errors         *prometheus.CounterVec
	checkpoints    *prometheus.CounterVec
	checkpointAge  *prometheus.GaugeVec
	inFlight       *prometheus.GaugeVec
	undecodable    *prometheus.CounterVec
	expiredIterats *prometheus.CounterVec
	aggregated     *prometheus.CounterVec
	userRecords    *prometheus.CounterVec
	trimFallbacks  *prometheus.CounterVec
	shardsGone     *prometheus.CounterVec
	shardFailures  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "apigw_connector", "kinesis"
	shard := []string{"shard"}
	m := &metrics{
		millisBehind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "millis_behind_latest", Help: "How far the last GetRecords result was behind the tip of the shard, in milliseconds."}, shard),
		recordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_read_total", Help: "Kinesis records read."}, shard),
		bytesRead: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_read_total", Help: "Bytes of Kinesis record data read (compressed, as stored)."}, shard),
		getRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "get_records_total", Help: "GetRecords calls made."}, shard),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "throttles_total", Help: "GetRecords calls refused with ProvisionedThroughputExceededException (after the SDK's retries)."}, shard),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "errors_total", Help: "Failed Kinesis and lease operations, by operation."}, []string{"op"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoints_total", Help: "Checkpoints written to the lease table."}, shard),
		checkpointAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_age_seconds", Help: "Age of the oldest record read but not yet covered by a written checkpoint (0 when all is checkpointed)."}, shard),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "records_in_flight", Help: "Records handed to the pipeline whose calls have not all settled (or that wait behind an earlier unsettled one)."}, shard),
		undecodable: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_undecodable_total", Help: "Records (or documents in them) skipped as not CloudWatch Logs data: corrupt gzip, not JSON, empty."}, shard),
		expiredIterats: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "iterators_expired_total", Help: "Shard iterators that expired and were fetched again."}, shard),
		aggregated: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "aggregated_records_total", Help: "KPL-aggregated records read (each is handed on as its user records)."}, shard),
		userRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "user_records_total", Help: "User records found in KPL-aggregated records."}, shard),
		trimFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_fallbacks_total", Help: "Checkpoints that could not be resumed (past the retention period, or invalid): the shard restarted at TRIM_HORIZON."}, shard),
		shardsGone: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "shards_gone_total", Help: "Shards ended because Kinesis no longer knows them (ResourceNotFoundException: stream or shard deleted)."}, shard),
		shardFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "shard_failures_total", Help: "Shards this worker could not read, by reason (e.g. an AT_TIMESTAMP checkpoint without kinesis.initial_timestamp)."}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.millisBehind, m.recordsRead, m.bytesRead, m.getRecords, m.throttles,
		m.errors, m.checkpoints, m.checkpointAge, m.inFlight, m.undecodable, m.expiredIterats,
		m.aggregated, m.userRecords, m.trimFallbacks, m.shardsGone, m.shardFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register kinesis metrics: %w", err)
		}
	}
	return m, nil
}

// forgetShard drops a shard's gauges once this worker no longer reads it, so a dashboard does
// not show a stale lag for a shard another worker now owns.
func (m *metrics) forgetShard(shard string) {
	m.millisBehind.DeleteLabelValues(shard)
	m.checkpointAge.DeleteLabelValues(shard)
	m.inFlight.DeleteLabelValues(shard)
}
