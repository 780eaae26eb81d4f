package backend

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kinelite/kinelite/internal/failpoint"
)

// LeaseGrant grants a lease of ttl seconds. id 0 asks the store to choose
// one. A TTL below the configured minimum is raised to it; the granted TTL is
// returned. The lease is durable once LeaseGrant returns.
func (s *Store) LeaseGrant(ctx context.Context, id, ttl int64) (LeaseRow, error) {
	if ttl > MaxLeaseTTL {
		return LeaseRow{}, ErrLeaseTTLTooLarge
	}
	ttl = max(ttl, s.cfg.MinLeaseTTL)
	o := &grantOp{call: newCall(), id: id, ttl: ttl}
	if err := s.do(ctx, o, &o.call); err != nil {
		return LeaseRow{}, err
	}
	return LeaseRow{ID: o.id, TTL: ttl}, o.err
}

// LeaseRevoke revokes a lease and deletes the keys attached to it, each at
// its own revision. It returns the revision after the deletes.
func (s *Store) LeaseRevoke(ctx context.Context, id int64) (int64, error) {
	o := &revokeOp{call: newCall(), id: id}
	if err := s.do(ctx, o, &o.call); err != nil {
		return 0, err
	}
	return o.rev, o.err
}

// LeaseRenew restarts a lease's TTL and returns it; ErrLeaseNotFound when the
// lease does not exist or has already expired.
func (s *Store) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	if s.shared != nil {
		return s.renewShared(ctx, id)
	}
	return s.lessor.renew(id)
}

// LeaseTimeToLive describes a lease; ErrLeaseNotFound when it does not exist.
func (s *Store) LeaseTimeToLive(ctx context.Context, id int64, withKeys bool) (LeaseStatus, error) {
	if s.shared != nil && !s.lessor.has(id) {
		// Catch up first, so that the keys attached elsewhere are known.
		if err := s.syncHead(ctx); err != nil {
			return LeaseStatus{}, err
		}
		if _, err := s.adoptLease(ctx, id); err != nil {
			return LeaseStatus{}, err
		}
	}
	return s.lessor.status(id, withKeys)
}

// Leases lists every lease ID, sorted.
func (s *Store) Leases(ctx context.Context) []int64 { return s.lessor.list() }

type grantOp struct {
	call
	id, ttl int64
	err     error
}

func (o *grantOp) apply(ctx context.Context, b *batch) error {
	if o.id == 0 {
		for o.id == 0 {
			candidate := rand.Int64()
			if candidate == 0 {
				continue
			}
			taken, err := b.leaseKnown(ctx, candidate)
			if err != nil {
				return err
			}
			if !taken {
				o.id = candidate
			}
		}
	} else if taken, err := b.leaseKnown(ctx, o.id); err != nil {
		return err
	} else if taken {
		o.err = ErrLeaseExists
		return nil
	}
	tx, err := b.txn(ctx)
	if err != nil {
		return err
	}
	if err := tx.PutLease(ctx, LeaseRow{ID: o.id, TTL: o.ttl}); err != nil {
		return err
	}
	b.markLease(o.id, true)
	b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseGrant, id: o.id, ttl: o.ttl})
	return nil
}

func (o *grantOp) done(err error) { o.call.done(err) }

type revokeOp struct {
	call
	id  int64
	rev int64
	err error
	// onDone, when set, is called instead of waking a waiter (expiry).
	onDone func(err error)
}

func (o *revokeOp) apply(ctx context.Context, b *batch) error {
	if known, err := b.leaseKnown(ctx, o.id); err != nil {
		return err
	} else if !known {
		o.err = ErrLeaseNotFound
		return nil
	}
	tx, err := b.txn(ctx)
	if err != nil {
		return err
	}
	for _, key := range b.leaseKeys(o.id) {
		last, _ := b.s.index.Last(key)
		b.del(key, last)
	}
	failpoint.Hit("lease-revoke")
	if err := tx.DeleteLease(ctx, o.id); err != nil {
		return err
	}
	b.markLease(o.id, false)
	b.leaseOps = append(b.leaseOps, leaseOp{kind: leaseRevoke, id: o.id})
	o.rev = b.rev
	return nil
}

func (o *revokeOp) done(err error) {
	if o.onDone != nil {
		if err == nil {
			err = o.err
		}
		o.onDone(err)
		return
	}
	o.call.done(err)
}

// markLease records a grant (true) or revoke (false) staged in the batch.
func (b *batch) markLease(id int64, granted bool) {
	if b.granted == nil {
		b.granted = make(map[int64]bool)
		b.revoked = make(map[int64]bool)
	}
	b.granted[id] = granted
	b.revoked[id] = !granted
}

// leaseKeys returns the keys attached to a lease as of the batch's staged
// state, sorted.
func (b *batch) leaseKeys(id int64) []string {
	candidates := append(b.s.lessor.keys(id), b.attached[id]...)
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	return slices.DeleteFunc(candidates, func(key string) bool {
		last, ok := b.s.index.Last(key)
		return !ok || last.Tombstone() || last.Lease != id
	})
}

// runLeaseExpiry revokes leases whose TTL ran out, deleting their keys.
func (s *Store) runLeaseExpiry() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.LeaseCheckInterval)
	defer t.Stop()
	var adopted time.Time
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
		if s.shared != nil && s.leaseLeader.Load() && time.Since(adopted) >= leaseAdoptInterval {
			adopted = time.Now()
			s.adoptAllLeases(context.Background())
		}
		for _, id := range s.lessor.expired() {
			if s.shared != nil && !s.sharedExpiry(context.Background(), id) {
				continue
			}
			o := &revokeOp{id: id}
			o.onDone = func(err error) {
				switch {
				case err == nil:
					s.log.Debug("lease expired", "lease", id, "revision", o.rev)
				case errors.Is(err, ErrLeaseNotFound):
				default:
					s.log.Warn("revoking expired lease failed; will retry", "lease", id, "err", err)
					s.lessor.retry(id)
				}
			}
			if !s.enqueue(o) {
				return
			}
		}
	}
}

// enqueue queues o without waiting for it. It reports false once the store
// is closed.
func (s *Store) enqueue(o op) bool {
	s.stopMu.RLock()
	defer s.stopMu.RUnlock()
	if s.closed {
		return false
	}
	select {
	case s.reqc <- o:
		return true
	case <-s.stopc:
		return false
	}
}
