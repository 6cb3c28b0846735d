package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
)

// DynamoDBAPI is the subset of *dynamodb.Client the coordinator uses.
type DynamoDBAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Sentinel errors.
var (
	// ErrLeaseLost: the lease is no longer held by this worker; nothing was written.
	ErrLeaseLost = errors.New("lease lost")
	// ErrShardEnded: the shard's lease is already at SHARD_END.
	ErrShardEnded = errors.New("shard already ended")
	// ErrTableNotFound: the lease table is missing and Config.CreateTable is off.
	ErrTableNotFound = errors.New("lease table not found")
)

func isConditionalFailure(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// table wraps the lease table's reads and conditional writes. The zero
// state (a table literal) works: it filters rows but neither logs nor counts
// them, and never uses the owner index.
type table struct {
	db    DynamoDBAPI
	name  string
	state *tableState
}

// tableState is what a table learns over its life, shared by its copies.
type tableState struct {
	log      *slog.Logger
	skipped  *prometheus.CounterVec // by reason; nil: not counted
	hasIndex atomic.Bool            // LeaseOwnerToLeaseKeyIndex seen by ensure

	mu     sync.Mutex
	logged map[string]bool     // skipped keys already logged
	writes map[string]ownWrite // our recent writes, by key
	absent map[string]bool     // parents read gone by withParents
	window time.Duration       // how long a write overrides older scan results
}

// ownWrite is what our last write of a lease left in the table. An
// eventually consistent scan may still return the item as it was before
// (a replica behind by up to about a second): without this, the taker
// would read our own fresh take as "another owner" and drop the lease.
type ownWrite struct {
	counter    int64
	owner      string
	hasCP      bool // checkpoint fields below are known
	checkpoint string
	sub        int64
	children   []string
	at         time.Time
}

// ownWriteWindow bounds how long our write overrides an older scan result:
// far above DynamoDB's replication lag, and short enough that a lease
// deleted and re-created by someone else (counter back to 0) is soon read
// as it is.
const ownWriteWindow = 10 * time.Second

// noteWrite records a successful write by us of the lease at counter
// (before the write). A write following our previous one carries over
// what it does not change.
func (t table) noteWrite(key string, counter int64, apply func(w *ownWrite)) {
	if t.state == nil {
		return
	}
	t.state.mu.Lock()
	defer t.state.mu.Unlock()
	w, ok := t.state.writes[key]
	if !ok || w.counter != counter {
		w = ownWrite{}
	}
	apply(&w)
	w.at = time.Now()
	t.state.writes[key] = w
	if len(t.state.writes) > maxLoggedSkips { // leases long gone from our hands
		for k, old := range t.state.writes {
			if time.Since(old.at) > t.state.window {
				delete(t.state.writes, k)
			}
		}
	}
}

// notOlderThanOwnWrites returns l, or l as our own more recent write left
// it when the scan read an older version.
func (t table) notOlderThanOwnWrites(l Lease) Lease {
	if t.state == nil {
		return l
	}
	t.state.mu.Lock()
	defer t.state.mu.Unlock()
	w, ok := t.state.writes[l.Key]
	switch {
	case !ok:
		return l
	case time.Since(w.at) > t.state.window:
		delete(t.state.writes, l.Key)
		return l
	case l.Counter >= w.counter:
		return l
	}
	l.Counter, l.Owner = w.counter, w.owner
	if w.owner != "" {
		l.CheckpointOwner = "" // every write of ours as holder removed it, or found none
	}
	if w.hasCP {
		if l.Checkpoint != w.checkpoint || l.CheckpointSubSequenceNumber != w.sub {
			l.PendingCheckpoint = ""
		}
		l.Checkpoint, l.CheckpointSubSequenceNumber = w.checkpoint, w.sub
		if len(w.children) > 0 {
			l.ChildShardIDs = slices.Clone(w.children)
		}
	}
	return l
}

func newTable(db DynamoDBAPI, name string, log *slog.Logger, m *metrics) table {
	st := &tableState{log: log, logged: map[string]bool{}, writes: map[string]ownWrite{}, absent: map[string]bool{}, window: ownWriteWindow}
	if m != nil {
		st.skipped = m.skipped
	}
	if st.log == nil {
		st.log = slog.New(slog.DiscardHandler)
	}
	return table{db: db, name: name, state: st}
}

// noteSkipped counts a row scan left out and logs it once per key and
// reason: the same rows come back on every scan.
func (t table) noteSkipped(key, reason string, err error) {
	if t.state == nil {
		return
	}
	if t.state.skipped != nil {
		t.state.skipped.WithLabelValues(reason).Inc()
	}
	t.state.mu.Lock()
	seen := t.state.logged[reason+"\x00"+key]
	if !seen {
		if len(t.state.logged) >= maxLoggedSkips { // bound memory on a huge table
			clear(t.state.logged)
		}
		t.state.logged[reason+"\x00"+key] = true
	}
	t.state.mu.Unlock()
	if seen {
		return
	}
	args := []any{"table", t.name, "key", key, "reason", reason}
	if err != nil {
		t.state.log.Warn("lease table row skipped: cannot decode it", append(args, "err", err)...)
		return
	}
	t.state.log.Info("lease table row skipped: not a lease of this stream", args...)
}

const maxLoggedSkips = 10000

// ownerIndex is the GSI KCL 3.x creates on the lease table (hash
// leaseOwner, range leaseKey, keys only) to list a worker's leases.
const ownerIndex = "LeaseOwnerToLeaseKeyIndex"

// ensure creates the table when missing (if allowed), like KCL 3.x with its
// owner index, and waits until ACTIVE. It notes whether the owner index is
// there and ACTIVE, for queryOwned.
func (t table) ensure(ctx context.Context, create bool) error {
	desc, err := t.describe(ctx)
	var rnf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &rnf):
		if !create {
			return fmt.Errorf("%w: %s (create it, or enable table creation)", ErrTableNotFound, t.name)
		}
		_, err = t.db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName: aws.String(t.name),
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(attrKey), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrOwner), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema:   []types.KeySchemaElement{{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeHash}},
			BillingMode: types.BillingModePayPerRequest,
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
				IndexName: aws.String(ownerIndex),
				KeySchema: []types.KeySchemaElement{
					{AttributeName: aws.String(attrOwner), KeyType: types.KeyTypeHash},
					{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeRange},
				},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
			}},
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // inUse: another worker created it first
			return fmt.Errorf("create lease table %s: %w", t.name, err)
		}
	case err != nil:
		return fmt.Errorf("describe lease table %s: %w", t.name, err)
	case desc.TableStatus == types.TableStatusActive:
		t.noteIndex(desc)
		return nil
	}
	delay := 50 * time.Millisecond
	for {
		desc, err = t.describe(ctx)
		if err == nil && desc.TableStatus == types.TableStatusActive {
			t.noteIndex(desc)
			return nil
		}
		if err != nil && !errors.As(err, &rnf) {
			return fmt.Errorf("describe lease table %s: %w", t.name, err)
		}
		var status types.TableStatus
		if desc != nil {
			status = desc.TableStatus
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for lease table %s to become ACTIVE (status %q): %w", t.name, status, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func (t table) describe(ctx context.Context) (*types.TableDescription, error) {
	out, err := t.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
	if err != nil {
		return nil, err
	}
	if out.Table == nil {
		return nil, errors.New("describe table: no table description")
	}
	return out.Table, nil
}

// noteIndex records whether the owner index exists and is ACTIVE (a KCL
// 3.x worker may still be building it on a table of 2.x days).
func (t table) noteIndex(desc *types.TableDescription) {
	if t.state == nil {
		return
	}
	has := false
	for _, gsi := range desc.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == ownerIndex && gsi.IndexStatus == types.IndexStatusActive {
			has = true
		}
	}
	t.state.hasIndex.Store(has)
}

// queryOwned lists the keys of the leases owner holds: through the owner
// index when ensure saw it, else (or when the index is gone) by a filtered
// scan. Both are eventually consistent, like the Java KCL's
// listLeaseKeysForWorker.
func (t table) queryOwned(ctx context.Context, owner string) ([]string, error) {
	if t.state != nil && t.state.hasIndex.Load() {
		keys, err := t.queryOwnerIndex(ctx, owner)
		var rnf *types.ResourceNotFoundException
		if err == nil || !errors.As(err, &rnf) {
			return keys, err
		}
		t.state.hasIndex.Store(false) // index removed since: scan from now on
	}
	return t.scanOwned(ctx, owner)
}

func (t table) queryOwnerIndex(ctx context.Context, owner string) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(t.name),
		IndexName:                 aws.String(ownerIndex),
		KeyConditionExpression:    aws.String("#o = :o"),
		ExpressionAttributeNames:  map[string]string{"#o": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": strAV(owner)},
	}
	var keys []string
	for {
		out, err := t.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query leases of %s in %s: %w", owner, t.name, err)
		}
		for _, item := range out.Items {
			// Keys only: entity rows have no leaseOwner, so they are not in
			// the index; multi-stream keys may be, and are no lease of ours.
			if k, ok := item[attrKey].(*types.AttributeValueMemberS); ok && !strings.Contains(k.Value, ":") {
				keys = append(keys, k.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func (t table) scanOwned(ctx context.Context, owner string) ([]string, error) {
	in := &dynamodb.ScanInput{
		TableName:                 aws.String(t.name),
		ConsistentRead:            aws.Bool(false),
		FilterExpression:          aws.String("#o = :o"),
		ExpressionAttributeNames:  map[string]string{"#o": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": strAV(owner)},
	}
	var keys []string
	for {
		out, err := t.db.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("scan leases of %s in %s: %w", owner, t.name, err)
		}
		for _, item := range out.Items {
			if l, reason, _ := leaseFromScanItem(item); reason == "" {
				keys = append(keys, l.Key)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// scan reads every lease of this stream, page by page, eventually
// consistent as the Java KCL's listLeases: expiry is judged on counters
// changing over time, and every write is conditional anyway.
//
// It leaves out (counted and logged once by skipReason) what is not a
// single-stream lease: KCL 3.x entity rows, rows without leaseCounter,
// multi-stream leases and undecodable rows. One bad row must not stop
// every worker from renewing and taking.
func (t table) scan(ctx context.Context) ([]Lease, error) {
	var leases []Lease
	in := &dynamodb.ScanInput{TableName: aws.String(t.name), ConsistentRead: aws.Bool(false)}
	for {
		out, err := t.db.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
		}
		for _, item := range out.Items {
			l, reason, err := leaseFromScanItem(item)
			if reason != "" {
				t.noteSkipped(itemKey(item), reason, err)
				continue
			}
			leases = append(leases, t.notOlderThanOwnWrites(l))
		}
		if len(out.LastEvaluatedKey) == 0 {
			return t.withParents(ctx, leases)
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// withParents adds the parents an eventually consistent scan missed. A
// child whose parent's lease is absent starts at once (the parent is taken
// as finished), so a replica that has the child's new lease but not yet
// its parent's, created just before, would break per-key order. Each
// parent absent from a scan is read once, strongly consistent; one found
// gone stays gone (shard sync never re-creates a parent with a leased
// child), so this costs a read per deleted parent, not per scan.
func (t table) withParents(ctx context.Context, leases []Lease) ([]Lease, error) {
	if t.state == nil {
		return leases, nil
	}
	seen := make(map[string]bool, len(leases))
	for _, l := range leases {
		seen[l.Key] = true
	}
	for i := 0; i < len(leases); i++ { // grows: a found parent's parents too
		for _, p := range leases[i].ParentShardIDs {
			t.state.mu.Lock()
			gone := t.state.absent[p]
			t.state.mu.Unlock()
			if seen[p] || gone {
				continue
			}
			seen[p] = true
			out, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.name), Key: keyOf(p), ConsistentRead: aws.Bool(true)})
			if err != nil {
				return nil, fmt.Errorf("scan lease table %s: read parent %s: %w", t.name, p, err)
			}
			if l, reason, _ := leaseFromScanItem(out.Item); len(out.Item) > 0 && reason == "" {
				leases = append(leases, t.notOlderThanOwnWrites(l))
				continue
			}
			t.state.mu.Lock()
			if len(t.state.absent) >= maxLoggedSkips {
				clear(t.state.absent)
			}
			t.state.absent[p] = true
			t.state.mu.Unlock()
		}
	}
	return leases, nil
}

// get reads one lease (strongly consistent); found is false when it is gone.
func (t table) get(ctx context.Context, key string) (l Lease, found bool, err error) {
	out, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.name), Key: keyOf(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Lease{}, false, fmt.Errorf("read lease %s: %w", key, err)
	}
	if len(out.Item) == 0 {
		return Lease{}, false, nil
	}
	l, err = leaseFromItem(out.Item)
	if err != nil {
		return Lease{}, false, fmt.Errorf("read lease %s: %w", key, err)
	}
	return l, true, nil
}

// create puts a new lease unless one exists; (false, nil) when it existed.
func (t table) create(ctx context.Context, s Shard, checkpoint string) (bool, error) {
	_, err := t.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(t.name),
		Item:                     newLeaseItem(s, checkpoint),
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": attrKey},
	})
	if isConditionalFailure(err) {
		return false, nil
	}
	return err == nil, err
}

// deleteUnchanged deletes a lease if its counter, owner and checkpoint are
// still as read: a lease someone renewed, took or checkpointed since stays.
func (t table) deleteUnchanged(ctx context.Context, l Lease) error {
	cond := "#c = :c"
	names := map[string]string{"#c": attrCounter, "#o": attrOwner, "#cp": attrCheckpoint}
	vals := map[string]types.AttributeValue{":c": numAV(l.Counter)}
	if l.Owner == "" {
		cond += " AND attribute_not_exists(#o)"
	} else {
		cond += " AND #o = :o"
		vals[":o"] = strAV(l.Owner)
	}
	if l.Checkpoint == "" {
		cond += " AND attribute_not_exists(#cp)"
	} else {
		cond += " AND #cp = :cp"
		vals[":cp"] = strAV(l.Checkpoint)
	}
	_, err := t.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(l.Key),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if err == nil && t.state != nil {
		t.state.mu.Lock()
		delete(t.state.writes, l.Key)
		t.state.mu.Unlock()
	}
	return err
}

// take sets this worker as owner, conditional on the counter and owner read.
// Like the Java KCL's takeLease it removes checkpointOwner (a KCL 3.x
// hand-off in progress is over once someone takes the lease) and counts an
// owner switch only when the lease changes hands: the previous owner was set
// and is someone else, or this worker was the hand-off's checkpointOwner.
// Returns the lease as written.
func (t table) take(ctx context.Context, l Lease, owner string) (Lease, error) {
	cond := "#c = :c AND attribute_not_exists(#o)"
	vals := map[string]types.AttributeValue{":c": numAV(l.Counter), ":one": numAV(1), ":me": strAV(owner)}
	names := map[string]string{"#c": attrCounter, "#o": attrOwner, "#co": attrCheckpointOwner}
	if l.Owner != "" {
		cond = "#c = :c AND #o = :old"
		vals[":old"] = strAV(l.Owner)
	}
	set := "SET #o = :me, #c = #c + :one"
	if (l.Owner != "" && l.Owner != owner) || l.CheckpointOwner == owner {
		set += ", #sw = if_not_exists(#sw, :zero) + :one"
		names["#sw"] = attrOwnerSwitches
		vals[":zero"] = numAV(0)
	}
	out, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(l.Key),
		UpdateExpression:          aws.String(set + " REMOVE #co"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		return Lease{}, err
	}
	nl, err := leaseFromItem(out.Attributes)
	if err == nil {
		t.noteWrite(nl.Key, l.Counter, func(w *ownWrite) {
			*w = ownWrite{counter: nl.Counter, owner: nl.Owner, hasCP: true, checkpoint: nl.Checkpoint,
				sub: nl.CheckpointSubSequenceNumber, children: nl.ChildShardIDs}
		})
	}
	return nl, err
}

// ownerCond is the condition of every write by the holder.
func ownerCond(counter int64, owner string) (string, map[string]types.AttributeValue) {
	return "#c = :c AND #o = :me", map[string]types.AttributeValue{
		":c": numAV(counter), ":me": strAV(owner), ":one": numAV(1),
	}
}

// renew bumps the counter, proving to other workers that the holder is alive.
func (t table) renew(ctx context.Context, key string, counter int64, owner string) error {
	err := t.holderUpdate(ctx, key, counter, owner, "SET #c = #c + :one")
	if err == nil {
		t.noteWrite(key, counter, func(w *ownWrite) { w.counter, w.owner = counter+1, owner })
	}
	return err
}

// checkpoint writes a checkpoint (and children at SHARD_END), resets the
// owner-switch count and clears a pending checkpoint with its KCL 3.x
// application state, as the KCL's updateLease does, and any checkpointOwner
// (ours is no hand-off: we hold the lease).
func (t table) checkpoint(ctx context.Context, key string, counter int64, owner, seq string, sub int64, children []string) error {
	cond, vals := ownerCond(counter, owner)
	vals[":cp"] = strAV(seq)
	vals[":sub"] = numAV(sub)
	vals[":zero"] = numAV(0)
	set := "SET #c = #c + :one, #cp = :cp, #sub = :sub, #sw = :zero"
	names := map[string]string{
		"#c": attrCounter, "#o": attrOwner, "#cp": attrCheckpoint, "#sub": attrCheckpointSub,
		"#sw": attrOwnerSwitches, "#pc": attrPendingCheckpoint, "#pcs": attrPendingCheckpointSN,
		"#pst": attrPendingCheckpointStat, "#co": attrCheckpointOwner,
	}
	if len(children) > 0 {
		set += ", #ch = :ch"
		names["#ch"] = attrChildren
		vals[":ch"] = &types.AttributeValueMemberSS{Value: dedupe(children)}
	}
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String(set + " REMOVE #pc, #pcs, #pst, #co"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if err == nil {
		t.noteWrite(key, counter, func(w *ownWrite) {
			w.counter, w.owner, w.hasCP, w.checkpoint, w.sub = counter+1, owner, true, seq, sub
			if len(children) > 0 {
				w.children = dedupe(children)
			}
		})
	}
	return err
}

// release clears the owner so any worker may take the lease at once.
func (t table) release(ctx context.Context, key string, counter int64, owner string) error {
	err := t.holderUpdate(ctx, key, counter, owner, "SET #c = #c + :one REMOVE #o")
	if err == nil {
		t.noteWrite(key, counter, func(w *ownWrite) { w.counter, w.owner = counter+1, "" })
	}
	return err
}

// holderUpdate applies update (over the counter and owner attributes only)
// under the holder's condition.
func (t table) holderUpdate(ctx context.Context, key string, counter int64, owner, update string) error {
	cond, vals := ownerCond(counter, owner)
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#c": attrCounter, "#o": attrOwner},
		ExpressionAttributeValues: vals,
	})
	return err
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrKey: strAV(key)}
}
