package backend

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kinelite/kinelite/backend/index"
	"github.com/kinelite/kinelite/internal/failpoint"
)

// op is one request for the committer.
type op interface {
	// apply evaluates the request against b and stages its writes. A request
	// that is refused (a failed check) records its error in its own result
	// and stages nothing. apply's own error is a database failure: it aborts
	// the whole batch.
	apply(ctx context.Context, b *batch) error
	// done delivers the outcome. err is non-nil when the batch failed, in
	// which case nothing the op staged was applied.
	done(err error)
}

// soloOp is an op that runs in a group commit of its own, after the ops
// queued before it and before those queued after: maintenance (a compaction
// step, a reclaim, a VACUUM) that must not make writes wait longer than its
// own duration, or that cannot share a transaction.
type soloOp interface {
	op
	solo()
}

// pipelinedOp is a maintenance op whose publish changes nothing that the
// evaluation of a later group reads (a compaction step, a reclaim, a log
// restart, a VACUUM). Like every op that is not a transaction it waits for
// the groups before it to be published (batch.settle), but the committer
// writes the next group while its own group syncs, so a write queued behind
// it does not wait for its sync and may share it. Other maintenance and
// lease ops make their group a barrier: the compact revision and the
// lessor, which their publish changes, are read by evaluation.
type pipelinedOp interface {
	op
	pipelined()
}

// call is the completion half of an op.
type call struct {
	donec  chan struct{}
	err    error
	queued time.Time
}

func newCall() call { return call{donec: make(chan struct{}), queued: time.Now()} }

func (c *call) queuedAt() time.Time { return c.queued }

func (c *call) done(err error) {
	if err != nil {
		c.err = err
	}
	close(c.donec)
}

// do queues o and waits for it. If ctx ends first, do returns ctx's error and
// the op may still be applied later, as with etcd.
func (s *Store) do(ctx context.Context, o op, c *call) error {
	s.stopMu.RLock()
	if s.closed {
		s.stopMu.RUnlock()
		return ErrStopped
	}
	select {
	case s.reqc <- o:
		s.stopMu.RUnlock()
	case <-ctx.Done():
		s.stopMu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-c.donec:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runCommitter is the single goroutine that applies writes. Each round it
// takes every request queued at that moment (up to MaxBatchOps), evaluates
// them in order against the index, stages their rows, and commits them in one
// transaction: one fsync for the whole group.
func (s *Store) runCommitter() {
	defer s.wg.Done()
	ops := make([]op, 0, s.cfg.MaxBatchOps)
	for {
		var first op
		select {
		case <-s.stopc:
			s.failQueued()
			if s.syncq != nil {
				close(s.syncq) // the syncer finishes the groups in flight
			}
			return
		case first = <-s.reqc:
		}
		ops = append(ops[:0], first)
		var solo soloOp
		if so, ok := first.(soloOp); ok {
			ops, solo = ops[:0], so
		}
	drain:
		for solo == nil && len(ops) < s.cfg.MaxBatchOps {
			select {
			case o := <-s.reqc:
				if so, ok := o.(soloOp); ok {
					solo = so
					break drain
				}
				ops = append(ops, o)
			default:
				break drain
			}
		}
		if len(ops) > 0 {
			s.commit(ops)
		}
		if solo != nil {
			s.runSolo(solo)
		}
		clear(ops)
	}
}

// runSyncer makes committed groups durable and then publishes and
// acknowledges them, in commit order, while the committer goes on with the
// next group. One sync covers every group committed before it starts.
func (s *Store) runSyncer() {
	defer s.wg.Done()
	var groups []*batch
	for b := range s.syncq {
		groups = append(groups[:0], b)
	drain:
		for {
			select {
			case b, ok := <-s.syncq:
				if !ok {
					break drain
				}
				groups = append(groups, b)
			default:
				break drain
			}
		}
		err := s.syncFailure()
		if err == nil && slices.ContainsFunc(groups, func(b *batch) bool { return b.tx != nil }) {
			began := time.Now()
			if err = s.driver.SyncCommitted(); err != nil {
				err = unavailable(fmt.Errorf("sync committed writes: %w", err))
				s.failSyncs(err)
			}
			s.metrics.syncDuration.Observe(time.Since(began).Seconds())
		}
		for _, b := range groups {
			if err != nil {
				b.finish(err)
			} else {
				b.trace.enter(phasePublish)
				b.publish()
				b.finish(nil)
			}
		}
		clear(groups)
	}
}

// failSyncs records that a sync failed. What was committed since the last
// good sync may not be on disk, and SQLite cannot take it back: the store
// refuses every write from then on (reads go on at the last durable
// revision). A restart recovers what the disk holds.
func (s *Store) failSyncs(err error) {
	s.syncErr.CompareAndSwap(nil, &err)
	s.log.Error("syncing committed writes failed; this store refuses writes until it is restarted", "err", err)
}

// syncFailure is the error of a failed sync, or nil.
func (s *Store) syncFailure() error {
	if p := s.syncErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) failQueued() {
	for {
		select {
		case o := <-s.reqc:
			o.done(ErrStopped)
		default:
			return
		}
	}
}

func (s *Store) runSolo(o soloOp) { s.commit([]op{o}) }

// commit applies one group of ops. The batch is not tied to any caller's
// context: one client giving up must not abort the others' writes.
//
// On a database of its own, the group is handed to the syncer once its
// transaction commits, and commit returns without waiting for the sync: the
// next group is evaluated and written meanwhile, on top of this one's index
// entries (see batch.settle for what must wait). On a shared database the
// committer syncs and publishes each group before the next, as other
// processes' writes are caught up with at the start of each.
func (s *Store) commit(ops []op) {
	ctx := context.Background()
	b := newBatch(s, ops)
	b.trace.cur, b.trace.last = phaseApply, b.began
	for _, o := range ops {
		if q, ok := o.(interface{ queuedAt() time.Time }); ok && !q.queuedAt().IsZero() {
			b.trace.d[phaseQueue] = max(b.trace.d[phaseQueue], b.began.Sub(q.queuedAt()))
		}
	}
	s.metrics.commitOps.Observe(float64(len(ops)))
	err := s.syncFailure()
	if err == nil {
		err = b.run(ctx, ops)
	}
	if err != nil {
		b.undo()
		b.finish(unavailable(err))
		return
	}
	failpoint.Hit("commit-after-commit")
	b.trace.enter(phaseSync)
	if s.syncq == nil {
		if err := s.driver.SyncCommitted(); err != nil {
			err = unavailable(fmt.Errorf("sync committed writes: %w", err))
			s.failSyncs(err)
			b.finish(err)
			return
		}
		b.trace.enter(phasePublish)
		b.publish()
		b.finish(nil)
		return
	}
	s.inflight = b
	s.syncq <- b
	if b.barrier {
		<-b.published
		s.inflight = nil
	}
}

// finish records the outcome of a batch and delivers it to its ops: nil once
// the batch is durable and published, or the error that refused all of it.
func (b *batch) finish(err error) {
	s := b.s
	if err != nil {
		s.metrics.commits.WithLabelValues("error").Inc()
		if err != s.syncFailure() { // failSyncs logged that one
			s.log.Error("group commit failed; its requests are refused", "err", err, "requests", len(b.ops))
		}
	} else {
		s.metrics.commits.WithLabelValues("ok").Inc()
	}
	s.metrics.commitDuration.Observe(time.Since(b.began).Seconds())
	b.trace.enter(phasePublish) // ends the phase in progress
	s.reportCommit(&b.trace, len(b.ops))
	for _, o := range b.ops {
		o.done(err)
	}
	if b.published != nil {
		close(b.published)
	}
}

// settle waits until every group committed before b is published (or
// refused). Evaluation reads the index, which already holds those groups'
// entries, and the database, which already holds their rows; what publish
// alone applies (lease changes, compaction progress, index removals) is read
// only after settle. The committer calls it; a no-op on a shared database.
func (b *batch) settle() {
	s := b.s
	if s.inflight != nil && s.inflight != b {
		<-s.inflight.published
		s.inflight = nil
	}
}

// batch is the state of one group commit: the revisions it assigns, the rows
// and events it stages, and the changes to apply once it is durable.
type batch struct {
	s     *Store
	ops   []op
	began time.Time
	tx    Tx    // begun on first use
	base  int64 // newest revision committed before the batch began
	rev   int64 // newest revision staged

	// barrier is set when an op of the batch reads or changes what publish
	// applies: the committer waits for the batch's publish before the next.
	barrier bool
	// published is closed once the batch is published or refused (syncer
	// only).
	published chan struct{}

	rows    []Row
	values  map[int64][]byte // stored values of staged rows
	events  []*mvccpb.Event
	touched map[string]struct{} // keys with staged index entries
	prevs   []prevFill          // previous values to read before commit

	leaseOps []leaseOp
	granted  map[int64]bool
	revoked  map[int64]bool
	attached map[int64][]string // keys attached to a lease in this batch

	compactRev       int64 // new compact revision; 0 if unchanged
	compactedNow     bool  // a Compact succeeded in this batch
	compactedThrough int64 // new compaction progress; 0 if unchanged
	removed          []Row // rows compaction deleted
	stepTo           int64 // progress of the compaction step in the batch; 0 if none
	trimIndex        bool  // another process's compaction progressed

	trace commitTrace
}

// prevFill is a previous key-value whose value is read, for all writes of a
// batch at once, after evaluation.
type prevFill struct {
	kv *mvccpb.KeyValue
	id int64
}

type leaseOpKind int

const (
	leaseGrant leaseOpKind = iota
	leaseRevoke
	leaseAttach
	leaseDetach
)

type leaseOp struct {
	kind leaseOpKind
	id   int64
	ttl  int64
	key  string
}

func newBatch(s *Store, ops []op) *batch {
	// The newest committed revision: the group still in flight, if any
	// (every group committed before it is too), else the published one.
	base := s.rev.Load()
	if s.inflight != nil {
		base = max(base, s.inflight.rev)
	}
	b := &batch{s: s, ops: slices.Clone(ops), began: time.Now(), base: base, rev: base}
	if s.syncq != nil {
		b.published = make(chan struct{})
	}
	return b
}

func (b *batch) run(ctx context.Context, ops []op) error {
	if b.s.shared != nil {
		if err := b.startShared(ctx, ops); err != nil {
			return b.abort(err)
		}
	}
	b.trace.enter(phaseApply)
	for _, o := range ops {
		if _, plain := o.(*txnOp); !plain {
			// Lease and maintenance ops read what publish applies; most
			// also change it.
			b.settle()
			if _, ok := o.(pipelinedOp); !ok {
				b.barrier = true
			}
		}
		if err := o.apply(ctx, b); err != nil {
			return b.abort(err)
		}
	}
	b.trace.enter(phasePrevs)
	if err := b.fillPrevs(ctx); err != nil {
		return b.abort(err)
	}
	b.trace.enter(phaseInsert)
	if len(b.rows) > 0 {
		tx, err := b.txn(ctx)
		if err != nil {
			return err
		}
		if err := tx.Insert(ctx, b.rows); err != nil {
			return b.abort(err)
		}
	}
	if b.tx == nil {
		return nil
	}
	b.trace.enter(phaseCommit)
	failpoint.Hit("commit-before-commit")
	if err := b.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	b.removeCompacted()
	return nil
}

// removeCompacted takes the rows a compaction step deleted out of the
// index, once its transaction has committed, in the committer as every
// other change to the index. No read can see the difference: the rows are
// superseded at or below the compact revision, published before the step,
// and reads below it are refused.
func (b *batch) removeCompacted() {
	s := b.s
	for _, r := range b.removed {
		if key, kind := clientKey(r); kind == rowKey {
			s.index.Remove(key, r.ID)
		}
	}
	if b.stepTo > 0 {
		s.indexCompacted = max(s.indexCompacted, b.stepTo)
	}
}

func (b *batch) abort(err error) error {
	if b.tx != nil {
		_ = b.tx.Rollback()
	}
	return err
}

// txn returns the batch's write transaction, beginning it on first use.
func (b *batch) txn(ctx context.Context) (Tx, error) {
	if b.tx == nil {
		resume := b.trace.cur
		b.trace.enter(phaseLock)
		defer b.trace.enter(resume)
		tx, err := b.s.driver.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		b.tx = tx
	}
	return b.tx, nil
}

// undo removes the index entries the batch staged.
func (b *batch) undo() {
	for key := range b.touched {
		b.s.index.Truncate(key, b.base)
	}
}

// publish makes a committed batch visible: compaction progress, the new
// revision, lease changes, then the events.
func (b *batch) publish() {
	s := b.s
	if b.compactRev > 0 {
		s.compactRev.Store(b.compactRev)
	}
	if b.compactedNow {
		s.compacted.Store(true)
	}
	if b.compactedThrough > 0 {
		s.compactedThrough.Store(b.compactedThrough)
	}
	if b.trimIndex {
		s.trimIndexTo(b.compactedThrough)
	}
	s.rev.Store(b.rev)
	for _, lo := range b.leaseOps {
		switch lo.kind {
		case leaseGrant:
			s.lessor.grant(lo.id, lo.ttl)
		case leaseRevoke:
			s.lessor.revoke(lo.id)
		case leaseAttach:
			s.lessor.attach(lo.id, lo.key)
		case leaseDetach:
			s.lessor.detach(lo.id, lo.key)
		}
	}
	if s.sink != nil && b.rev > b.base {
		s.sink.Publish(b.rev, b.events)
	}
}

// view returns a reader of the batch's state: committed data plus what the
// batch has staged so far.
func (b *batch) view() *view {
	return &view{s: b.s, rev: b.rev, pending: b.values}
}

// leaseExistsLocally reports whether a lease exists as of the batch's staged
// state, as this process knows it (see leaseKnown).
func (b *batch) leaseExistsLocally(id int64) bool {
	b.settle() // the lessor changes at publish
	if b.granted[id] {
		return true
	}
	if b.revoked[id] {
		return false
	}
	return b.s.lessor.has(id)
}

// stage appends one row at the next revision and records it in the index.
func (b *batch) stage(key string, row Row, rv index.Revision) {
	b.rows = append(b.rows, row)
	b.stageIndex(key, row.ID, row.Value, rv)
}

// stageIndex records a row's index entry and stored value, to be undone if
// the batch fails.
func (b *batch) stageIndex(key string, id int64, value []byte, rv index.Revision) {
	if b.values == nil {
		b.values = make(map[int64][]byte)
		b.touched = make(map[string]struct{})
	}
	b.values[id] = value
	b.touched[key] = struct{}{}
	b.s.index.Append(key, rv)
}

// put stages a write of value to key, attached to lease (0 for none). It
// returns the new revision and the key's previous value (nil when the put
// creates the key), whose Value is filled in before the batch commits.
func (b *batch) put(key string, value []byte, lease int64) (int64, *mvccpb.KeyValue) {
	last, hasLast := b.s.index.Last(key)
	b.rev++
	rev := b.rev
	rv := index.Revision{Mod: rev, Lease: lease}
	row := Row{ID: rev, Name: storedName(key), Lease: lease}
	var prev *mvccpb.KeyValue
	if hasLast && !last.Tombstone() {
		rv.Create, rv.Version = last.Create, last.Version+1
		row.CreateRevision, row.PrevRevision = last.Create, last.Mod
		prev = b.prevKV(key, last)
		if last.Lease != 0 && last.Lease != lease {
			b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseDetach, id: last.Lease, key: key})
		}
	} else {
		rv.Create, rv.Version = rev, 1
		row.Created = true
		if hasLast {
			row.PrevRevision = last.Mod // the tombstone, as kine links them
		}
	}
	if lease != 0 {
		b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseAttach, id: lease, key: key})
		if b.attached == nil {
			b.attached = make(map[int64][]string)
		}
		b.attached[lease] = append(b.attached[lease], key)
	}
	row.Value = storedValue(key, rv.Version, value)
	b.stage(key, row, rv)
	b.events = append(b.events, &mvccpb.Event{
		Type:   mvccpb.PUT,
		Kv:     newKV(key, rv, value),
		PrevKv: prev,
	})
	return rev, prev
}

// del stages the delete of key, which must be live. It returns the new
// revision and the deleted key-value (Value filled in before commit).
func (b *batch) del(key string, last index.Revision) (int64, *mvccpb.KeyValue) {
	b.rev++
	rev := b.rev
	prev := b.prevKV(key, last)
	if last.Lease != 0 {
		b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseDetach, id: last.Lease, key: key})
	}
	b.stage(key, Row{ID: rev, Name: storedName(key), Deleted: true, CreateRevision: last.Create, PrevRevision: last.Mod},
		index.Revision{Mod: rev})
	b.events = append(b.events, &mvccpb.Event{
		Type:   mvccpb.DELETE,
		Kv:     &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev},
		PrevKv: prev,
	})
	return rev, prev
}

func (b *batch) prevKV(key string, r index.Revision) *mvccpb.KeyValue {
	kv := newKV(key, r, nil)
	b.prevs = append(b.prevs, prevFill{kv: kv, id: r.Mod})
	return kv
}

// fillPrevs fills in the previous values of every staged write: from the
// batch's own rows, from the event sink's recent events (a previous value is
// most often a recent write), and the rest from the database in one query.
func (b *batch) fillPrevs(ctx context.Context) error {
	if len(b.prevs) == 0 {
		return nil
	}
	var ids []int64
	prevs := b.prevs[:0] // those still to fill
	for _, p := range b.prevs {
		stored, ok := b.values[p.id]
		if !ok {
			stored, ok = b.s.recentValue(p.id)
		}
		if ok {
			p.kv.Value = clientValue(string(p.kv.Key), stored)
			continue
		}
		ids = append(ids, p.id)
		prevs = append(prevs, p)
	}
	b.prevs = prevs
	var committed map[int64][]byte
	if len(ids) > 0 {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		var err error
		if committed, err = b.s.driver.Values(ctx, ids); err != nil {
			return fmt.Errorf("read previous values: %w", err)
		}
	}
	for _, p := range b.prevs {
		stored, ok := committed[p.id]
		if !ok {
			return fmt.Errorf("read previous values: row %d of %q is missing", p.id, p.kv.Key)
		}
		p.kv.Value = clientValue(string(p.kv.Key), stored)
	}
	return nil
}

func newKV(key string, r index.Revision, value []byte) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            []byte(key),
		CreateRevision: r.Create,
		ModRevision:    r.Mod,
		Version:        r.Version,
		Lease:          r.Lease,
		Value:          value,
	}
}
