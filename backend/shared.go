package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// This file is the Store's side of a shared database (SharedDriver): other
// kinelite processes commit to the same table, and this process follows.
//
// Every group commit first takes the database's write lock (Begin), reads
// the head, and replays the rows other processes committed since this
// process's revision into the index, the lessor and the event stream, in
// revision order, before evaluating its own requests. A follower goroutine
// wakes on the database's notifications (or a short poll) and queues an
// empty op, so that an idle process keeps up too. Compaction progress is
// global (kinelite_meta), so compaction steps continue from wherever any
// process left them, one at a time under the write lock.

// followPoll is how often a follower checks the head without a notification.
const followPoll = 250 * time.Millisecond

// leaseAdoptInterval is how often the lease leader looks for leases other
// processes granted that it does not know.
const leaseAdoptInterval = 5 * time.Second

// followPage bounds the rows read per query while catching up.
const followPage = 1000

// ErrBehindCompaction is returned when another process compacted rows this
// process had not yet read: its index can no longer be brought up to date
// incrementally, and it must be restarted.
var ErrBehindCompaction = errors.New("backend: another process compacted revisions this process had not read; restart it")

// ErrKeyUnsupported is returned when a write names a key the database cannot
// store (PostgreSQL text: invalid UTF-8 or NUL).
var ErrKeyUnsupported = errors.New("backend: key not supported by the database")

// catchUpOp asks the committer to replay other processes' commits.
type catchUpOp struct{ call }

func (o *catchUpOp) apply(context.Context, *batch) error { return nil }
func (o *catchUpOp) done(err error)                      { o.call.done(err) }

// lockFree is an op that writes nothing in the batch's transaction: it
// needs no write lock, and may need the writer's connection for itself.
type lockFree interface{ lockFree() }

func (*catchUpOp) lockFree() {}
func (*defragOp) lockFree()  {}
func (*restartOp) lockFree() {}

// needsLock reports whether a batch holds an op that writes.
func needsLock(ops []op) bool {
	for _, o := range ops {
		if _, ok := o.(lockFree); !ok {
			return true
		}
	}
	return false
}

// startShared runs before the batch's own ops on a shared database.
func (b *batch) startShared(ctx context.Context, ops []op) error {
	sh := b.s.shared
	if needsLock(ops) {
		if _, err := b.txn(ctx); err != nil {
			return err
		}
	}
	b.trace.enter(phaseHead)
	head, err := sh.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	b.trace.enter(phaseCatchUp)
	return b.catchUp(ctx, head)
}

// catchUp replays the rows in (b.rev, head.Rev] and adopts the head's
// compaction state.
func (b *batch) catchUp(ctx context.Context, head Head) error {
	if head.Rev > b.rev && head.CompactedThrough > b.rev {
		return ErrBehindCompaction
	}
	if head.CompactRev > b.compactRevision() {
		b.compactRev = head.CompactRev
		b.compactedNow = true
	}
	if head.CompactedThrough > b.compactedThroughNow() {
		b.compactedThrough = head.CompactedThrough
		// Trimming walks the whole index: once a compaction is done, or
		// at most once a second while it runs elsewhere.
		if head.CompactedThrough >= head.CompactRev || time.Since(b.s.lastTrim) >= time.Second {
			b.trimIndex = true
		}
	}
	for b.rev < head.Rev {
		rows, err := b.s.driver.History(ctx, b.rev+1, head.Rev, followPage)
		if err != nil {
			return fmt.Errorf("read other processes' commits: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			if err := b.follow(ctx, r); err != nil {
				return err
			}
		}
	}
	b.rev = max(b.rev, head.Rev)
	return nil
}

// follow replays one row committed by another process.
func (b *batch) follow(ctx context.Context, h HistoryRow) error {
	b.rev = h.ID
	key, kind := clientKey(h.Row)
	if kind != rowKey {
		return nil
	}
	last, hasLast := b.s.index.Last(key)
	rv := revisionOf(b.s.index, key, h.Row, nil)
	if key == compactKey && !h.Deleted {
		rv.Version, _ = decodeCompactValue(h.Value)
	}
	b.stageIndex(key, h.ID, h.Value, rv) // committed already: nothing to insert

	var prev *mvccpb.KeyValue
	liveBefore := hasLast && !last.Tombstone()
	if liveBefore && h.HasPrev {
		prev = newKV(key, last, clientValue(key, h.PrevValue))
	}
	if liveBefore && last.Lease != 0 && (h.Deleted || last.Lease != rv.Lease) {
		b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseDetach, id: last.Lease, key: key})
	}
	if h.Deleted {
		b.events = append(b.events, &mvccpb.Event{
			Type:   mvccpb.DELETE,
			Kv:     &mvccpb.KeyValue{Key: []byte(key), ModRevision: h.ID},
			PrevKv: prev,
		})
		return nil
	}
	if rv.Lease != 0 && (!liveBefore || last.Lease != rv.Lease) {
		if _, err := b.leaseKnown(ctx, rv.Lease); err != nil {
			return err
		}
		b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseAttach, id: rv.Lease, key: key})
	}
	b.events = append(b.events, &mvccpb.Event{
		Type:   mvccpb.PUT,
		Kv:     newKV(key, rv, clientValue(key, h.Value)),
		PrevKv: prev,
	})
	return nil
}

// leaseKnown reports whether a lease exists as of the batch's staged state;
// on a shared database a lease another process granted is adopted.
func (b *batch) leaseKnown(ctx context.Context, id int64) (bool, error) {
	if b.leaseExistsLocally(id) {
		return true, nil
	}
	if b.s.shared == nil || b.revoked[id] {
		return false, nil
	}
	l, ok, err := b.s.shared.Lease(ctx, id)
	if err != nil || !ok {
		return false, err
	}
	b.markLease(id, true)
	b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseGrant, id: id, ttl: l.TTL})
	return true, nil
}

// checkKey refuses a key the database cannot store.
func (s *Store) checkKey(key string) error {
	if s.shared == nil {
		return nil
	}
	if err := s.shared.CheckKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrKeyUnsupported, err)
	}
	return nil
}

// runFollower keeps an idle process up to date with the others' commits.
func (s *Store) runFollower(ctx context.Context) {
	defer s.wg.Done()
	wake := make(chan struct{}, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.shared.Follow(ctx, func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
	}()
	t := time.NewTicker(followPoll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		err := s.syncHead(ctx)
		switch {
		case err == nil:
			if failing {
				s.log.Info("following other processes again")
			}
			failing = false
		case ctx.Err() != nil:
			return
		case !failing:
			failing = true
			s.log.Warn("following other processes failed; retrying", "err", err)
		}
	}
}

// syncHead brings the process up to the database's head: every revision any
// process committed before the call is visible when it returns. Concurrent
// calls share head queries (headGroup), each answered by one that started
// after it was made.
func (s *Store) syncHead(ctx context.Context) error {
	head, err := s.heads.get(ctx)
	if err != nil {
		return unavailable(err)
	}
	if head.Rev <= s.rev.Load() && head.CompactRev <= s.compactRev.Load() &&
		head.CompactedThrough <= s.compactedThrough.Load() {
		return nil
	}
	o := &catchUpOp{call: newCall()}
	return s.do(ctx, o, &o.call)
}

// runLeaseLeadership marks this process as the one that expires leases
// while it holds that leadership.
func (s *Store) runLeaseLeadership(ctx context.Context) {
	defer s.wg.Done()
	_ = s.shared.Lead(ctx, "leases", func(ctx context.Context) {
		s.leaseLeader.Store(true)
		s.log.Info("expiring leases for every process")
		<-ctx.Done()
		s.leaseLeader.Store(false)
	})
}

// adoptAllLeases makes the lease leader know every lease, including those
// granted elsewhere that no key of its own names, so that they expire too.
func (s *Store) adoptAllLeases(ctx context.Context) {
	leases, err := s.shared.Leases(ctx)
	if err != nil {
		s.log.Warn("reading leases failed", "err", err)
		return
	}
	now := s.cfg.Now()
	for id, l := range leases {
		if !s.lessor.has(id) {
			s.lessor.adopt(id, l.TTL)
			if l.ExpiresAt > 0 {
				s.lessor.extend(id, time.UnixMilli(l.ExpiresAt))
			}
			s.log.Debug("adopted a lease granted elsewhere", "lease", id, "expires_in", time.UnixMilli(l.ExpiresAt).Sub(now))
		}
	}
}

// sharedExpiry decides what to do with a lease whose local expiry passed, on
// a shared database: another process may have renewed it (adopt the later
// expiry) or revoked it (forget it); otherwise only the lease leader revokes.
// It reports whether this process should revoke the lease.
func (s *Store) sharedExpiry(ctx context.Context, id int64) bool {
	l, ok, err := s.shared.Lease(ctx, id)
	switch {
	case err != nil:
		s.lessor.retry(id)
		return false
	case !ok:
		s.lessor.revoke(id)
		return false
	case l.ExpiresAt > s.cfg.Now().UnixMilli():
		s.lessor.extend(id, time.UnixMilli(l.ExpiresAt))
		return false
	case !s.leaseLeader.Load():
		s.lessor.retry(id)
		return false
	}
	return true
}

// adoptLease makes the lessor know a lease another process granted, reading
// it from the table when this process does not know it. It reports whether
// the lease exists.
func (s *Store) adoptLease(ctx context.Context, id int64) (bool, error) {
	if s.lessor.has(id) {
		return true, nil
	}
	l, ok, err := s.shared.Lease(ctx, id)
	if err != nil {
		return false, unavailable(err)
	}
	if ok {
		s.lessor.adopt(id, l.TTL)
	}
	return ok, nil
}

// renewShared records a renewal in a shared database, so that whichever
// process expires leases sees it, and adopts a lease granted elsewhere.
func (s *Store) renewShared(ctx context.Context, id int64) (int64, error) {
	if ok, err := s.adoptLease(ctx, id); err != nil || !ok {
		if err == nil {
			err = ErrLeaseNotFound
		}
		return 0, err
	}
	ttl, err := s.lessor.renew(id)
	if err != nil {
		return 0, err
	}
	ok, err := s.shared.RenewLease(ctx, id, s.cfg.Now().Add(ttlDuration(ttl)).UnixMilli())
	if err != nil {
		return 0, unavailable(err)
	}
	if !ok {
		s.lessor.revoke(id)
		return 0, ErrLeaseNotFound
	}
	return ttl, nil
}

// trimIndexTo drops the index entries other processes' compaction deleted.
func (s *Store) trimIndexTo(rev int64) {
	began := time.Now()
	s.lastTrim = began
	n := s.index.Compact(rev)
	s.indexCompacted = max(s.indexCompacted, rev)
	s.log.Debug("index trimmed after another process's compaction", "through", rev, "entries", n,
		"took", time.Since(began))
}
