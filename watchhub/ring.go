package watchhub

import (
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ring holds the most recent events in revision order, bounded in count and
// in bytes. It covers the revisions (base, rev]: every event of a revision in
// that window is in the ring. It is not safe for concurrent use; the Hub
// guards it.
type ring struct {
	maxEvents int
	maxBytes  int64

	events []*mvccpb.Event // events[head:] are live
	head   int
	bytes  int64
	base   int64 // events at or below base are gone
	rev    int64 // newest revision published
}

// eventSize estimates the memory an event holds: its keys and values plus
// fixed overhead.
func eventSize(ev *mvccpb.Event) int64 {
	n := int64(96)
	if ev.Kv != nil {
		n += int64(len(ev.Kv.Key) + len(ev.Kv.Value) + 48)
	}
	if ev.PrevKv != nil {
		n += int64(len(ev.PrevKv.Key) + len(ev.PrevKv.Value) + 48)
	}
	return n
}

// reset empties the ring at revision rev.
func (r *ring) reset(rev int64) {
	clear(r.events)
	r.events, r.head, r.bytes = r.events[:0], 0, 0
	r.base, r.rev = rev, rev
}

// append adds the events of revisions (r.rev, rev] and evicts the oldest
// events beyond the bounds, and those below keepFrom (the compact revision:
// no watch may read below it).
func (r *ring) append(rev int64, evs []*mvccpb.Event, keepFrom int64) {
	for _, ev := range evs {
		r.events = append(r.events, ev)
		r.bytes += eventSize(ev)
	}
	r.rev = rev
	for r.len() > 0 && (r.len() > r.maxEvents || r.bytes > r.maxBytes ||
		r.events[r.head].Kv.ModRevision < keepFrom) {
		ev := r.events[r.head]
		r.events[r.head] = nil
		r.head++
		r.bytes -= eventSize(ev)
		r.base = ev.Kv.ModRevision
	}
	if r.len() == 0 {
		r.base = rev
	}
	// Reclaim the evicted prefix once it dominates the slice.
	if r.head > 1024 && r.head > len(r.events)/2 {
		n := copy(r.events, r.events[r.head:])
		clear(r.events[n:])
		r.events, r.head = r.events[:n], 0
	}
}

func (r *ring) len() int { return len(r.events) - r.head }

// read returns up to max events with from <= revision <= to, and the
// revision through which the result is complete. ok is false when from is at
// or below the ring's base: those events must come from the database.
func (r *ring) read(from, to int64, max int) (evs []*mvccpb.Event, through int64, ok bool) {
	if from <= r.base {
		return nil, 0, false
	}
	live := r.events[r.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].Kv.ModRevision >= from })
	j := sort.Search(len(live), func(i int) bool { return live[i].Kv.ModRevision > to })
	live = live[i:j]
	through = min(to, r.rev)
	if len(live) > max {
		live = live[:max]
		through = live[len(live)-1].Kv.ModRevision
	}
	return append([]*mvccpb.Event(nil), live...), through, true
}

// value returns the key and value of the put at revision rev, if the ring
// holds it.
func (r *ring) value(rev int64) (key, value []byte, ok bool) {
	if rev <= r.base || rev > r.rev {
		return nil, nil, false
	}
	live := r.events[r.head:]
	if len(live) == 0 || rev < live[0].Kv.ModRevision {
		return nil, nil, false
	}
	// Each event has a revision of its own, so rev sits at most rev-first
	// events in; where no revision is missing (the common case: only
	// kine's bookkeeping rows leave gaps) exactly there. A page of a list
	// looks up hundreds of values, so the guess saves a search each.
	i := int(min(rev-live[0].Kv.ModRevision, int64(len(live)-1)))
	if live[i].Kv.ModRevision != rev {
		i = sort.Search(i, func(j int) bool { return live[j].Kv.ModRevision >= rev })
	}
	if i == len(live) || live[i].Kv.ModRevision != rev || live[i].Type != mvccpb.PUT {
		return nil, nil, false
	}
	return live[i].Kv.Key, live[i].Kv.Value, true
}
