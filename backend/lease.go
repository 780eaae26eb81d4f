package backend

import (
	"container/heap"
	"math"
	"slices"
	"sync"
	"time"
)

// MaxLeaseTTL is the largest TTL LeaseGrant accepts, in seconds (etcd's).
const MaxLeaseTTL = 9_000_000_000

// DefaultMinLeaseTTL is the TTL, in seconds, a shorter grant is raised to:
// etcd's minimum with its default election timeout.
const DefaultMinLeaseTTL = 2

// lessor is the committed lease state: every lease, when it expires and
// which keys are attached to it. The committer changes it after each commit;
// KeepAlive and the expiry loop read and renew it. Expiry times live only in
// memory: after a restart every lease gets its full TTL again, as in etcd.
type lessor struct {
	now func() time.Time

	mu     sync.Mutex // guards leases and expiries
	leases map[int64]*lease
	// expiries is a min-heap of (expiry, id). Renewals push new entries and
	// leave stale ones behind; popping skips them.
	expiries expiryHeap
}

type lease struct {
	id       int64
	ttl      int64
	expiry   time.Time
	keys     map[string]struct{}
	revoking bool // an expiry revoke is queued
}

func newLessor(now func() time.Time) *lessor {
	return &lessor{now: now, leases: make(map[int64]*lease)}
}

func (l *lessor) has(id int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.leases[id]
	return ok
}

// grant adds a lease that expires ttl seconds from now.
func (l *lessor) grant(id, ttl int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le := &lease{id: id, ttl: ttl, keys: make(map[string]struct{})}
	l.leases[id] = le
	l.renewLocked(le)
}

func (l *lessor) renewLocked(le *lease) {
	le.expiry = l.now().Add(ttlDuration(le.ttl))
	le.revoking = false
	heap.Push(&l.expiries, expiryEntry{at: le.expiry, id: le.id})
}

func ttlDuration(ttl int64) time.Duration {
	if ttl > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(ttl) * time.Second
}

func (l *lessor) revoke(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.leases, id)
}

func (l *lessor) attach(id int64, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, ok := l.leases[id]; ok {
		le.keys[key] = struct{}{}
	}
}

func (l *lessor) detach(id int64, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, ok := l.leases[id]; ok {
		delete(le.keys, key)
	}
}

// keys returns the keys attached to a lease, sorted.
func (l *lessor) keys(id int64) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.leases[id]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(le.keys))
	for k := range le.keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// adopt adds a lease another process granted, unless it is known already.
func (l *lessor) adopt(id, ttl int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.leases[id]; !ok {
		le := &lease{id: id, ttl: ttl, keys: make(map[string]struct{})}
		l.leases[id] = le
		l.renewLocked(le)
	}
}

// extend moves a lease's expiry to at, which another process's renewal set.
func (l *lessor) extend(id int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, ok := l.leases[id]; ok && at.After(le.expiry) {
		le.expiry = at
		le.revoking = false
		heap.Push(&l.expiries, expiryEntry{at: at, id: id})
	}
}

// renew restarts a lease's TTL and returns it. A lease past its expiry is
// as good as revoked: ErrLeaseNotFound.
func (l *lessor) renew(id int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.leases[id]
	if !ok || le.revoking || !l.now().Before(le.expiry) {
		return 0, ErrLeaseNotFound
	}
	l.renewLocked(le)
	return le.ttl, nil
}

// LeaseStatus describes one lease.
type LeaseStatus struct {
	ID int64
	// TTL is the remaining time in whole seconds.
	TTL        int64
	GrantedTTL int64
	Keys       []string
}

func (l *lessor) status(id int64, withKeys bool) (LeaseStatus, error) {
	l.mu.Lock()
	le, ok := l.leases[id]
	if !ok {
		l.mu.Unlock()
		return LeaseStatus{}, ErrLeaseNotFound
	}
	remaining := int64(le.expiry.Sub(l.now()) / time.Second)
	st := LeaseStatus{ID: id, TTL: max(remaining, 0), GrantedTTL: le.ttl}
	l.mu.Unlock()
	if withKeys {
		st.Keys = l.keys(id)
	}
	return st, nil
}

func (l *lessor) list() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, 0, len(l.leases))
	for id := range l.leases {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// expired returns the leases whose expiry has passed and that are not already
// being revoked, and marks them as being revoked.
func (l *lessor) expired() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []int64
	for len(l.expiries) > 0 && !l.expiries[0].at.After(now) {
		e := heap.Pop(&l.expiries).(expiryEntry)
		le, ok := l.leases[e.id]
		if !ok || le.revoking || !le.expiry.Equal(e.at) {
			continue // revoked, already queued, or renewed since
		}
		le.revoking = true
		out = append(out, e.id)
	}
	return out
}

// retry puts a lease whose expiry revoke failed back in line.
func (l *lessor) retry(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, ok := l.leases[id]; ok && le.revoking {
		le.revoking = false
		heap.Push(&l.expiries, expiryEntry{at: le.expiry, id: id})
	}
}

type expiryEntry struct {
	at time.Time
	id int64
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
