package lease

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus"
)

// guardedDB puts a deadline on every DynamoDB call (the SDK's own retries
// included) and counts calls by operation. Without a deadline one hanging
// call holds a renewal, or the take loop, for as long as the connection
// hangs, while other workers already consider the lease expired.
type guardedDB struct {
	next    DynamoDBAPI
	timeout time.Duration
	calls   *prometheus.CounterVec
}

var _ DynamoDBAPI = guardedDB{}

func (g guardedDB) start(ctx context.Context, op string) (context.Context, context.CancelFunc) {
	g.calls.WithLabelValues(op).Inc()
	return context.WithTimeout(ctx, g.timeout)
}

// controlTimeout bounds table creation and description, at start only: no
// lease is held then, so a slow control plane costs time, not safety.
const controlTimeout = 10 * time.Second

func (g guardedDB) startControl(ctx context.Context, op string) (context.Context, context.CancelFunc) {
	g.calls.WithLabelValues(op).Inc()
	return context.WithTimeout(ctx, max(g.timeout, controlTimeout))
}

func (g guardedDB) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	ctx, cancel := g.startControl(ctx, "create_table")
	defer cancel()
	return g.next.CreateTable(ctx, in, opts...)
}

func (g guardedDB) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	ctx, cancel := g.startControl(ctx, "describe_table")
	defer cancel()
	return g.next.DescribeTable(ctx, in, opts...)
}

func (g guardedDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	ctx, cancel := g.start(ctx, "scan")
	defer cancel()
	return g.next.Scan(ctx, in, opts...)
}

func (g guardedDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	ctx, cancel := g.start(ctx, "put_item")
	defer cancel()
	return g.next.PutItem(ctx, in, opts...)
}

func (g guardedDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	ctx, cancel := g.start(ctx, "update_item")
	defer cancel()
	return g.next.UpdateItem(ctx, in, opts...)
}

func (g guardedDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	ctx, cancel := g.start(ctx, "get_item")
	defer cancel()
	return g.next.GetItem(ctx, in, opts...)
}

func (g guardedDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	ctx, cancel := g.start(ctx, "delete_item")
	defer cancel()
	return g.next.DeleteItem(ctx, in, opts...)
}

// queryAPI is the Query method of *dynamodb.Client (owner index lookups).
type queryAPI interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Query passes Query on when the wrapped client has it.
func (g guardedDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	q, ok := g.next.(queryAPI)
	if !ok {
		return nil, errors.New("query lease table: the DynamoDB client has no Query")
	}
	ctx, cancel := g.start(ctx, "query")
	defer cancel()
	return q.Query(ctx, in, opts...)
}

// isThrottle: DynamoDB refused for capacity or request rate; back off.
func isThrottle(err error) bool {
	var ae interface{ ErrorCode() string } // smithy.APIError, without the direct dependency
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
		return true
	}
	return false
}

// coordMetrics are the coordinator's metrics beyond the basic set.
type coordMetrics struct {
	ddbCalls *prometheus.CounterVec
	handoffs *prometheus.CounterVec
	scans    *prometheus.CounterVec
}

func newCoordMetrics(reg prometheus.Registerer) (*coordMetrics, error) {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	m := &coordMetrics{
		ddbCalls: prometheus.NewCounterVec(opts("dynamodb_calls_total",
			"DynamoDB calls made by this worker (each attempt the SDK retries counts once), by operation."), []string{"op"}),
		handoffs: prometheus.NewCounterVec(opts("handoffs_total",
			"Graceful lease hand-offs, by role (giver: this worker handed a lease over; taker: it received one) "+
				"and outcome (clean: the giver checkpointed and let go; forced: the taker stopped waiting)."), []string{"role", "outcome"}),
		scans: prometheus.NewCounterVec(opts("scans_total",
			"Lease table scans by the take loop, by cadence (fast, stable, backoff)."), []string{"cadence"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.ddbCalls, m.handoffs, m.scans} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
