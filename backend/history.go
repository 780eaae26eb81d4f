package backend

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// History returns the events of revisions from through to, in revision
// order, reading at most limit revisions; through is the last revision the
// call covered (to, unless limit cut it short). Every event carries its
// previous key-value when the row before it still exists. A from below the
// compact revision fails with ErrCompacted, checked after the read so that a
// compaction running meanwhile cannot yield a silent gap.
func (s *Store) History(ctx context.Context, from, to int64, limit int) (events []*mvccpb.Event, through int64, err error) {
	if from < s.compactRev.Load() {
		return nil, 0, ErrCompacted
	}
	if to < from {
		return nil, to, nil
	}
	rows, err := s.driver.History(ctx, from, to, limit)
	if err != nil {
		return nil, 0, unavailable(err)
	}
	through = to
	if len(rows) == limit && limit > 0 {
		through = rows[len(rows)-1].ID
	}
	events = make([]*mvccpb.Event, 0, len(rows))
	for _, h := range rows {
		key, kind := clientKey(h.Row)
		if kind != rowKey {
			continue
		}
		ev, ok := s.historyEvent(key, h)
		if !ok {
			if from < s.compactRev.Load() {
				return nil, 0, ErrCompacted
			}
			return nil, 0, unavailable(fmt.Errorf("row %d of %q is not in the index", h.ID, key))
		}
		events = append(events, ev)
	}
	if from < s.compactRev.Load() {
		return nil, 0, ErrCompacted
	}
	return events, through, nil
}

// historyEvent builds the event of a row, taking its metadata from the index.
func (s *Store) historyEvent(key string, h HistoryRow) (*mvccpb.Event, bool) {
	rv, ok := s.index.Exact(key, h.ID)
	if !ok {
		return nil, false
	}
	ev := &mvccpb.Event{Type: mvccpb.PUT}
	if h.Deleted {
		ev.Type = mvccpb.DELETE
		ev.Kv = &mvccpb.KeyValue{Key: []byte(key), ModRevision: h.ID}
	} else {
		ev.Kv = newKV(key, rv, clientValue(key, h.Value))
	}
	if h.HasPrev && !h.Created {
		if prev, ok := s.index.Exact(key, h.PrevRevision); ok && !prev.Tombstone() {
			ev.PrevKv = newKV(key, prev, clientValue(key, h.PrevValue))
		}
	}
	return ev, true
}
