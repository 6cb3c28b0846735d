// Package lease is a Kinesis Client Library (KCL) compatible lease table and
// lease coordinator for Go, on aws-sdk-go-v2's DynamoDB client.
//
// The table uses the Java KCL 2.x schema (hash key leaseKey; leaseOwner,
// leaseCounter, checkpoint, checkpointSubSequenceNumber, pendingCheckpoint,
// pendingCheckpointSubSequenceNumber, ownerSwitchesSinceCheckpoint,
// parentShardId, childShardIds, startingHashKey, endingHashKey), so a table
// written by a Java KCL application is read and resumed from its checkpoints.
// What KCL 3.x adds is understood: a take removes checkpointOwner, a
// checkpoint removes pendingCheckpointState, other attributes
// (throughputKBps...) stay; scans skip the non-lease rows of KCL 3.5's
// single-table format (entityType other than LEASE, or no leaseCounter),
// multi-stream leases (keys account:stream:epoch:shardId) and undecodable
// rows, counted and logged once. A table this package creates has KCL 3.x's
// LeaseOwnerToLeaseKeyIndex.
//
// A Coordinator keeps the shard leases of one worker: it renews the leases it
// holds, takes expired and unowned ones, steals from overloaded workers until
// every worker holds its fair share, creates leases for new shards (and
// deletes finished ones of shards the stream no longer retains), and runs a
// Processor per held lease once the shard's parents are finished. Every
// change to a lease is a DynamoDB write conditional on leaseCounter and
// leaseOwner, so two workers never both believe they hold a lease.
//
// Differences from the Java KCL, on purpose:
//   - expiry is judged on this worker's monotonic clock, as in the KCL, but
//     the take loop runs every TakeInterval (1 s) instead of once per failover
//     period, so unowned leases (a graceful handoff) are picked up within about
//     a second, and a joining worker reaches its share within a couple of
//     failover periods (it may steal MaxLeasesToSteal per take cycle, never
//     pushing the victim below the target);
//   - leases at SHARD_END are neither balanced nor taken: their holder
//     releases them once its processor returns, and shard sync deletes them
//     once every child has a lease that made progress (past TRIM_HORIZON,
//     LATEST and AT_TIMESTAMP) and their own parents' leases are gone, as the
//     KCL's LeaseCleanupManager does, or once the stream no longer has the
//     shard and every child the stream still has is leased;
//   - shard sync also deletes the unfinished lease of a shard the stream no
//     longer has (its records expired), once it is idle or held here and
//     its listed children are leased: such a parent must not block its
//     children forever;
//   - shard sync creates no lease for a shard that already has a leased
//     descendant (a finished ancestor whose lease the KCL cleaned up), and
//     creates parents' leases before their children's;
//   - every worker runs shard sync (creation is conditional on absence).
//
// Metrics are registered on the Registerer given to NewCoordinator; run
// several coordinators on one registry through prometheus.WrapRegistererWith
// (e.g. a stream label).
package lease

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Checkpoint sentinels, as the Java KCL writes them.
const (
	TrimHorizon = "TRIM_HORIZON"
	Latest      = "LATEST"
	AtTimestamp = "AT_TIMESTAMP"
	ShardEnd    = "SHARD_END"
)

// Attribute names of the KCL lease table.
const (
	attrKey                 = "leaseKey"
	attrOwner               = "leaseOwner"
	attrCounter             = "leaseCounter"
	attrCheckpoint          = "checkpoint"
	attrCheckpointSub       = "checkpointSubSequenceNumber"
	attrPendingCheckpoint   = "pendingCheckpoint"
	attrPendingCheckpointSN = "pendingCheckpointSubSequenceNumber"
	attrOwnerSwitches       = "ownerSwitchesSinceCheckpoint"
	attrParents             = "parentShardId"
	attrChildren            = "childShardIds"
	attrStartingHashKey     = "startingHashKey"
	attrEndingHashKey       = "endingHashKey"
	// Written by KCL 3.x.
	attrCheckpointOwner       = "checkpointOwner"
	attrPendingCheckpointStat = "pendingCheckpointState"
	attrEntityType            = "entityType"
	attrStreamName            = "streamName" // multi-stream leases
)

// entityLease is the entityType of lease rows; a missing entityType also
// means a lease (KCL 2.x, and 3.x before the single-table format).
const entityLease = "LEASE"

// Why scan left a row out (the reason label of the skipped-rows metric).
const (
	skipEntityRow   = "entity_row"       // KCL 3.x non-lease row (worker metrics, leader, migration...)
	skipNoCounter   = "no_lease_counter" // no leaseCounter: nothing can hold it
	skipMultiStream = "multi_stream"     // a multi-stream application's lease
	skipUndecodable = "undecodable"      // an attribute of the wrong type
)

// Lease is one item of the lease table. An empty Owner means unowned.
type Lease struct {
	Key                          string
	Owner                        string
	Counter                      int64
	Checkpoint                   string
	CheckpointSubSequenceNumber  int64
	PendingCheckpoint            string
	OwnerSwitchesSinceCheckpoint int64
	ParentShardIDs               []string
	ChildShardIDs                []string
	StartingHashKey              string
	EndingHashKey                string
	// CheckpointOwner is set by KCL 3.x during a graceful hand-off: the
	// previous owner, still finishing, while Owner is already the next one.
	CheckpointOwner string
}

// Ended reports whether the shard was read to its end.
func (l Lease) Ended() bool { return l.Checkpoint == ShardEnd }

// Shard is what a ShardLister reports about one shard of the stream.
type Shard struct {
	ID              string
	ParentShardIDs  []string // parent, and adjacent parent of a merge
	StartingHashKey string
	EndingHashKey   string
	Closed          bool // has an ending sequence number
}

// leaseFromItem decodes a lease table item. Attributes this package does not
// know (newer KCL versions add some) are ignored here and preserved in the
// table, since every change is an UpdateItem of named attributes.
func leaseFromItem(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	var err error
	if l.Key, err = getS(item, attrKey); err != nil {
		return l, err
	}
	if l.Key == "" {
		return l, fmt.Errorf("decode lease: %s missing", attrKey)
	}
	if l.Owner, err = getS(item, attrOwner); err != nil {
		return l, err
	}
	if l.Counter, err = getN(item, attrCounter); err != nil {
		return l, err
	}
	if l.Checkpoint, err = getS(item, attrCheckpoint); err != nil {
		return l, err
	}
	if l.CheckpointSubSequenceNumber, err = getN(item, attrCheckpointSub); err != nil {
		return l, err
	}
	if l.PendingCheckpoint, err = getS(item, attrPendingCheckpoint); err != nil {
		return l, err
	}
	if l.OwnerSwitchesSinceCheckpoint, err = getN(item, attrOwnerSwitches); err != nil {
		return l, err
	}
	if l.ParentShardIDs, err = getSS(item, attrParents); err != nil {
		return l, err
	}
	if l.ChildShardIDs, err = getSS(item, attrChildren); err != nil {
		return l, err
	}
	if l.StartingHashKey, err = getS(item, attrStartingHashKey); err != nil {
		return l, err
	}
	if l.EndingHashKey, err = getS(item, attrEndingHashKey); err != nil {
		return l, err
	}
	if l.CheckpointOwner, err = getS(item, attrCheckpointOwner); err != nil {
		return l, err
	}
	return l, nil
}

// leaseFromScanItem decodes a scanned row, or says why it is no lease of
// this worker's stream (err set when it could not be decoded).
func leaseFromScanItem(item map[string]types.AttributeValue) (Lease, string, error) {
	if et, err := getS(item, attrEntityType); err != nil {
		return Lease{}, skipUndecodable, err
	} else if et != "" && et != entityLease {
		return Lease{}, skipEntityRow, nil
	}
	if isMultiStream(item) {
		return Lease{}, skipMultiStream, nil
	}
	if _, ok := item[attrCounter]; !ok {
		return Lease{}, skipNoCounter, nil
	}
	l, err := leaseFromItem(item)
	if err != nil {
		return Lease{}, skipUndecodable, err
	}
	return l, "", nil
}

// isMultiStream: a lease of a multi-stream KCL application, keyed
// account:stream:epoch:shardId (shard ids never contain ':') and carrying
// streamName. It belongs to no stream a single-stream worker reads.
func isMultiStream(item map[string]types.AttributeValue) bool {
	if _, ok := item[attrStreamName]; ok {
		return true
	}
	k, ok := item[attrKey].(*types.AttributeValueMemberS)
	return ok && strings.Contains(k.Value, ":")
}

// itemKey is a row's leaseKey for logs, whatever its type.
func itemKey(item map[string]types.AttributeValue) string {
	if k, ok := item[attrKey].(*types.AttributeValueMemberS); ok {
		return k.Value
	}
	return fmt.Sprintf("%v", item[attrKey])
}

// newLeaseItem is the item shard sync creates: unowned, counter 0.
func newLeaseItem(s Shard, checkpoint string) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrKey:           &types.AttributeValueMemberS{Value: s.ID},
		attrCounter:       numAV(0),
		attrCheckpoint:    &types.AttributeValueMemberS{Value: checkpoint},
		attrCheckpointSub: numAV(0),
		attrOwnerSwitches: numAV(0),
	}
	if len(s.ParentShardIDs) > 0 {
		item[attrParents] = &types.AttributeValueMemberSS{Value: dedupe(s.ParentShardIDs)}
	}
	if s.StartingHashKey != "" {
		item[attrStartingHashKey] = &types.AttributeValueMemberS{Value: s.StartingHashKey}
	}
	if s.EndingHashKey != "" {
		item[attrEndingHashKey] = &types.AttributeValueMemberS{Value: s.EndingHashKey}
	}
	return item
}

func numAV(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func strAV(s string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: s} }

func getS(item map[string]types.AttributeValue, name string) (string, error) {
	switch v := item[name].(type) {
	case nil:
		return "", nil
	case *types.AttributeValueMemberS:
		return v.Value, nil
	case *types.AttributeValueMemberNULL:
		return "", nil
	default:
		return "", fmt.Errorf("decode lease: %s is %T, want S", name, v)
	}
}

func getN(item map[string]types.AttributeValue, name string) (int64, error) {
	switch v := item[name].(type) {
	case nil:
		return 0, nil
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("decode lease: %s: %w", name, err)
		}
		return n, nil
	case *types.AttributeValueMemberNULL:
		return 0, nil
	default:
		return 0, fmt.Errorf("decode lease: %s is %T, want N", name, v)
	}
}

func getSS(item map[string]types.AttributeValue, name string) ([]string, error) {
	switch v := item[name].(type) {
	case nil:
		return nil, nil
	case *types.AttributeValueMemberSS:
		out := slices.Clone(v.Value)
		slices.Sort(out)
		return out, nil
	case *types.AttributeValueMemberNULL:
		return nil, nil
	default:
		return nil, fmt.Errorf("decode lease: %s is %T, want SS", name, v)
	}
}

func dedupe(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}
