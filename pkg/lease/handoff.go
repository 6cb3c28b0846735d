package lease

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Graceful hand-off, the KCL 3.x shape: the taker writes leaseOwner = taker,
// checkpointOwner = giver (counter + 1, so the giver's next renewal is
// refused and it looks). The giver's processor settles and checkpoints under
// a checkpointOwner condition, then the giver removes checkpointOwner; only
// then does the taker start, from the checkpoint it re-reads. A giver that
// does not let go within FailoverTime (dead, or a worker that does not know
// hand-offs) is overridden: by then its own clock has stopped it.

const (
	handoffAttrCheckpointOwner = "checkpointOwner"
	handoffAttrEntityType      = "entityType"
	// handoffPoll: how often a taker re-reads its own lease while waiting.
	handoffPoll = 150 * time.Millisecond
)

// getWithCheckpointOwner reads one lease (strongly consistent) and its
// checkpointOwner.
func (t table) getWithCheckpointOwner(ctx context.Context, key string) (l Lease, checkpointOwner string, found bool, err error) {
	out, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.name), Key: keyOf(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Lease{}, "", false, fmt.Errorf("read lease %s: %w", key, err)
	}
	if len(out.Item) == 0 {
		return Lease{}, "", false, nil
	}
	if l, err = leaseFromItem(out.Item); err != nil {
		return Lease{}, "", false, fmt.Errorf("read lease %s: %w", key, err)
	}
	if checkpointOwner, err = getS(out.Item, handoffAttrCheckpointOwner); err != nil {
		return Lease{}, "", false, fmt.Errorf("read lease %s: %w", key, err)
	}
	return l, checkpointOwner, true, nil
}

// listLeases reads every lease, eventually consistent (half the read units
// of a consistent scan; staleness is harmless: every write is conditional and
// a lease the scan shows with another owner is re-read before it is given
// up). Rows that are not leases (KCL 3.x entityType, no leaseCounter) are
// skipped.
// handingOff maps lease keys under a hand-off to their checkpointOwner.
func (t table) listLeases(ctx context.Context) (leases []Lease, handingOff map[string]string, err error) {
	handingOff = map[string]string{}
	in := &dynamodb.ScanInput{TableName: aws.String(t.name), ConsistentRead: aws.Bool(false)}
	for {
		out, err := t.db.Scan(ctx, in)
		if err != nil {
			return nil, nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
		}
		for _, item := range out.Items {
			if et, _ := getS(item, handoffAttrEntityType); et != "" && et != "LEASE" {
				continue
			}
			if _, ok := item[attrCounter]; !ok {
				continue
			}
			l, err := leaseFromItem(item)
			if err != nil {
				return nil, nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
			}
			leases = append(leases, l)
			if cpo, _ := getS(item, handoffAttrCheckpointOwner); cpo != "" {
				handingOff[l.Key] = cpo
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return leases, handingOff, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// addMissingParents reads, strongly consistent, the parents an eventually
// consistent scan left out (shard sync creates a parent's lease just before
// its children's, and a lagging replica may show only the child): a child
// must not start because its parent looked finished. Parents read gone are
// remembered in gone, so a cleaned-up parent costs one read, not one per scan.
func (t table) addMissingParents(ctx context.Context, leases []Lease, gone map[string]bool) ([]Lease, error) {
	have := make(map[string]bool, len(leases))
	for _, l := range leases {
		have[l.Key] = true
	}
	for _, l := range leases {
		for _, p := range l.ParentShardIDs {
			if have[p] || gone[p] {
				continue
			}
			pl, found, err := t.get(ctx, p)
			if err != nil {
				return nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
			}
			have[p] = true
			if !found {
				if len(gone) > 10000 { // bound memory
					clear(gone)
				}
				gone[p] = true
				continue
			}
			leases = append(leases, pl)
		}
	}
	return leases, nil
}

// handoffTake asks the owner of l for a hand-off: leaseOwner = me,
// checkpointOwner = the owner, counter + 1; conditional on the counter and
// owner read and on no hand-off being under way.
func (t table) handoffTake(ctx context.Context, l Lease, me string) (Lease, error) {
	out, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(t.name),
		Key:                 keyOf(l.Key),
		UpdateExpression:    aws.String("SET #o = :me, #cpo = :old, #c = #c + :one, #sw = if_not_exists(#sw, :zero) + :one"),
		ConditionExpression: aws.String("#c = :c AND #o = :old AND attribute_not_exists(#cpo)"),
		ExpressionAttributeNames: map[string]string{"#c": attrCounter, "#o": attrOwner, "#cpo": handoffAttrCheckpointOwner,
			"#sw": attrOwnerSwitches},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": numAV(l.Counter), ":old": strAV(l.Owner),
			":me": strAV(me), ":one": numAV(1), ":zero": numAV(0)},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return Lease{}, err
	}
	return leaseFromItem(out.Attributes)
}

// handoffCheckpoint is the giver's checkpoint during a hand-off: conditional
// on checkpointOwner = me and leaseOwner = the taker (anyone else taking the
// lease ends our right to write), counter untouched (the taker renews it).
func (t table) handoffCheckpoint(ctx context.Context, key, me, taker, seq string, sub int64, children []string) error {
	set := "SET #cp = :cp, #sub = :sub, #sw = :zero"
	names := map[string]string{"#o": attrOwner, "#cpo": handoffAttrCheckpointOwner, "#cp": attrCheckpoint,
		"#sub": attrCheckpointSub, "#sw": attrOwnerSwitches, "#pc": attrPendingCheckpoint, "#pcs": attrPendingCheckpointSN}
	vals := map[string]types.AttributeValue{":me": strAV(me), ":to": strAV(taker), ":cp": strAV(seq), ":sub": numAV(sub), ":zero": numAV(0)}
	if len(children) > 0 {
		set += ", #ch = :ch"
		names["#ch"] = attrChildren
		vals[":ch"] = &types.AttributeValueMemberSS{Value: dedupe(children)}
	}
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String(set + " REMOVE #pc, #pcs"),
		ConditionExpression:       aws.String("#cpo = :me AND #o = :to"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	return err
}

// handoffRelease is the giver letting go: checkpointOwner removed.
func (t table) handoffRelease(ctx context.Context, key, me, taker string) error {
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String("REMOVE #cpo"),
		ConditionExpression:       aws.String("#cpo = :me AND #o = :to"),
		ExpressionAttributeNames:  map[string]string{"#o": attrOwner, "#cpo": handoffAttrCheckpointOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": strAV(me), ":to": strAV(taker)},
	})
	return err
}

// handoffForce is the taker giving up on the giver: checkpointOwner removed
// under the holder's condition. Returns the lease as written.
func (t table) handoffForce(ctx context.Context, key string, counter int64, me string) (Lease, error) {
	cond, vals := ownerCond(counter, me)
	out, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String("SET #c = #c + :one REMOVE #cpo"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#c": attrCounter, "#o": attrOwner, "#cpo": handoffAttrCheckpointOwner},
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		return Lease{}, err
	}
	return leaseFromItem(out.Attributes)
}

// beginHandoffLocked: another worker asked for hl. Its processor's ctx is
// cancelled (settle, final checkpoint, return), Lost stays open, renewals
// stop; the expiry timer keeps counting from our last renewal, which came
// before the taker's request, so we stop before the taker stops waiting.
func (c *Coordinator) beginHandoffLocked(hl *heldLease, taker string) {
	hl.handingTo = taker
	c.mu.Lock()
	if c.held[hl.key] == hl {
		delete(c.held, hl.key)
		c.handingOff[hl.key] = hl
	}
	c.lastChange = time.Now()
	c.m.held.Set(float64(len(c.held)))
	c.mu.Unlock()
	hl.cancel()
	c.log.Info("lease hand-off requested", "event", "lease_handoff_requested", "shard", hl.key, "to", taker)
}

// finishIfIdleLocked lets go at once when no processor runs for hl.
func (c *Coordinator) finishIfIdleLocked(ctx context.Context, hl *heldLease) {
	c.mu.Lock()
	idle := hl.done == nil
	if !idle {
		select {
		case <-hl.done:
			idle = true
		default:
		}
	}
	c.mu.Unlock()
	if idle {
		c.finishHandoffLocked(ctx, hl)
	}
}

// finishHandoffLocked: the processor returned (final checkpoint written);
// let the taker start.
func (c *Coordinator) finishHandoffLocked(ctx context.Context, hl *heldLease) {
	if hl.gone.Load() {
		return
	}
	to := hl.handingTo
	err := c.tbl.handoffRelease(ctx, hl.key, c.cfg.WorkerID, to)
	if !hl.markGone() {
		return
	}
	c.forget(hl)
	switch {
	case err == nil:
		c.cm.handoffs.WithLabelValues("giver", "clean").Inc()
		c.log.Info("lease handed off", "event", "lease_handed_off", "shard", hl.key, "to", to)
	case isConditionalFailure(err):
		c.cm.handoffs.WithLabelValues("giver", "forced").Inc()
		c.log.Info("lease handed off; the taker went ahead without waiting", "event", "lease_handed_off", "shard", hl.key, "to", to)
	default:
		c.m.errors.WithLabelValues("handoff_release").Inc()
		c.log.Warn("lease handed off; letting go failed, the taker starts after its wait bound", "event", "lease_handed_off",
			"shard", hl.key, "to", to, "err", err)
	}
}

// awaitHandoff runs before the taker's processor: it polls only this lease
// until the giver let go, or until FailoverTime after the request (the
// giver's own clock has stopped it by then), and re-reads the checkpoint.
// false: do not process (lost, shut down, or the shard ended meanwhile).
func (c *Coordinator) awaitHandoff(hl *heldLease) bool {
	me := c.cfg.WorkerID
	deadline := hl.takenAt.Add(c.cfg.FailoverTime)
	t := time.NewTicker(handoffPoll)
	defer t.Stop()
	for {
		// Not on hl.ctx: at shutdown keep waiting (bounded by Shutdown's
		// ctx) so the release carries the giver's final checkpoint on,
		// instead of pulling the lease from under the giver's last write.
		select {
		case <-c.runCtx.Done():
			return false
		case <-hl.lostCh:
			return false
		case <-t.C:
		}
		hl.mu.Lock()
		if hl.gone.Load() {
			hl.mu.Unlock()
			return false
		}
		l, cpOwner, found, err := c.tbl.getWithCheckpointOwner(c.runCtx, hl.key)
		outcome := ""
		switch {
		case err != nil:
		case !found || l.Owner != me:
			hl.mu.Unlock()
			c.loseLease(hl, "lease changed while waiting for its hand-off")
			return false
		case cpOwner != hl.from:
			hl.counter = l.Counter // ours: only we renew it while the giver settles
			outcome = "clean"
		case !time.Now().Before(deadline):
			sent := time.Now()
			nl, ferr := c.tbl.handoffForce(c.runCtx, hl.key, hl.counter, me)
			noteUnsureLocked(hl, ferr)
			switch {
			case ferr == nil:
				l, outcome = nl, "forced"
				hl.counter = nl.Counter
				c.provenLocked(hl, sent)
			case isConditionalFailure(ferr):
				hl.mu.Unlock()
				c.loseLease(hl, "lease changed while waiting for its hand-off")
				return false
			}
		}
		hl.mu.Unlock()
		if outcome == "" {
			continue
		}
		c.mu.Lock()
		hl.lease = l
		c.mu.Unlock()
		c.cm.handoffs.WithLabelValues("taker", outcome).Inc()
		c.log.Info("lease hand-off received", "event", "lease_handoff_received", "shard", hl.key, "from", hl.from,
			"outcome", outcome, "waited", time.Since(hl.takenAt).Round(time.Millisecond), "checkpoint", l.Checkpoint)
		if hl.ctx.Err() != nil { // shutting down: Shutdown releases it
			return false
		}
		if l.Ended() {
			ctx, cancel := context.WithTimeout(c.runCtx, c.cfg.RequestTimeout)
			c.release(ctx, hl, "shard ended before the hand-off completed")
			cancel()
			return false
		}
		return true
	}
}

// verify re-reads a held lease that a (possibly stale) scan shows with
// another owner: lost, a hand-off request, or still ours.
func (c *Coordinator) verify(ctx context.Context, hl *heldLease) {
	hl.mu.Lock()
	if hl.gone.Load() || hl.handingTo != "" {
		hl.mu.Unlock()
		return
	}
	l, cpOwner, found, err := c.tbl.getWithCheckpointOwner(ctx, hl.key)
	me := c.cfg.WorkerID
	switch {
	case err != nil, found && l.Owner == me: // renewals decide; or the scan was stale
		hl.mu.Unlock()
		return
	case found && l.Owner != "" && cpOwner == me:
		c.beginHandoffLocked(hl, l.Owner)
		c.finishIfIdleLocked(ctx, hl)
		hl.mu.Unlock()
		return
	}
	hl.mu.Unlock()
	c.loseLease(hl, "table shows another owner")
}
