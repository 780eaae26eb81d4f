package watchhub

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Cancel reasons, in etcd's words.
var (
	reasonCompacted  = rpctypes.ErrCompacted.Error()
	reasonEmptyRange = "mvcc: watcher range is empty"
	reasonDuplicate  = "mvcc: duplicate watch ID provided on the WatchStream"
)

// InvalidWatchID is the watch ID of responses that concern no single watch:
// a refused create and a stream-wide progress notification.
const InvalidWatchID = -1

// watch is one watch on a stream.
type watch struct {
	id             int64
	start, end     string // end "" with !single: no upper bound
	single         bool
	startRev       int64 // as requested; 0 means "from now"
	next           int64 // the next revision to deliver
	prevKV         bool
	progressNotify bool
	fragment       bool
	noPut, noDel   bool
	// quiet is true while nothing was sent since the last progress tick.
	quiet bool
}

func (w *watch) matches(key []byte) bool {
	if string(key) < w.start {
		return false
	}
	if w.single {
		return string(key) == w.start
	}
	return w.end == "" || string(key) < w.end
}

// stream is the state of one Serve call. Only Serve's goroutine touches it.
type stream struct {
	h       *Hub
	ctx     context.Context
	send    func(*pb.WatchResponse) error
	watches map[int64]*watch
	nextID  int64
	// progressWanted is set by a progress request and cleared when the
	// stream-wide progress notification goes out.
	progressWanted bool
	ticked         bool
	// budget bounds the watches of this stream (and of the other streams
	// of its connection, when the server shares one per connection).
	budget        *Budget
	perConnection bool
}

// Serve runs one watch stream until ctx ends or send fails, and returns
// that error. reqs delivers the client's requests; when it is closed (the
// client half-closed) the stream goes on delivering. send delivers one
// response and may block; the hub never waits for it, so a slow client holds
// back only its own stream.
//
// All of a stream's responses are produced by this one goroutine, in order:
// a watch's created response precedes its events, and a progress
// notification for revision R is sent only after every event up to R of
// every watch it covers. Both hold by construction.
func (h *Hub) Serve(ctx context.Context, reqs <-chan *pb.WatchRequest, send func(*pb.WatchResponse) error) error {
	s := &stream{h: h, ctx: ctx, send: send, watches: make(map[int64]*watch), budget: BudgetFrom(ctx)}
	s.perConnection = s.budget != nil
	if s.budget == nil {
		s.budget = NewBudget(h.cfg.MaxWatchesPerStream)
	}
	h.metrics.streams.Inc()
	defer func() {
		h.metrics.streams.Dec()
		h.metrics.watches.Sub(float64(len(s.watches)))
		s.budget.release(len(s.watches))
	}()
	for {
		// Requests first, so that cancels and creates take effect before
		// more events go out.
	drain:
		for reqs != nil {
			select {
			case req, ok := <-reqs:
				if !ok {
					reqs = nil
					break drain
				}
				if err := s.handle(req); err != nil {
					return err
				}
			default:
				break drain
			}
		}

		rev, notifyc, tickc := h.snapshot()
		behind, err := s.deliver(rev)
		if err != nil {
			return err
		}
		if !behind {
			if err := s.progress(rev); err != nil {
				return err
			}
		}
		if behind {
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		if !s.wantsTicks() {
			tickc = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			if err := s.handle(req); err != nil {
				return err
			}
		case <-notifyc:
		case <-tickc:
			s.ticked = true
		}
	}
}

func (s *stream) handle(req *pb.WatchRequest) error {
	switch r := req.RequestUnion.(type) {
	case *pb.WatchRequest_CreateRequest:
		if r.CreateRequest != nil {
			return s.create(r.CreateRequest)
		}
	case *pb.WatchRequest_CancelRequest:
		if r.CancelRequest != nil {
			return s.cancel(r.CancelRequest.WatchId)
		}
	case *pb.WatchRequest_ProgressRequest:
		if r.ProgressRequest != nil {
			s.progressWanted = true
		}
	}
	// Anything else is ignored, as etcd does: one bad request does not end
	// the stream.
	return nil
}

func (s *stream) header(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} }

func (s *stream) refuse(rev int64, reason string) error {
	s.h.metrics.cancels.WithLabelValues("refused").Inc()
	return s.send(&pb.WatchResponse{Header: s.header(rev), WatchId: InvalidWatchID, Created: true, Canceled: true,
		CancelReason: reason})
}

func (s *stream) create(c *pb.WatchCreateRequest) error {
	rev := s.h.Revision()
	if c.StartRevision < 0 {
		return s.refuse(rev, reasonCompacted)
	}
	key := c.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key
	}
	w := &watch{
		start:          string(key),
		startRev:       c.StartRevision,
		next:           c.StartRevision,
		prevKV:         c.PrevKv,
		progressNotify: c.ProgressNotify,
		fragment:       c.Fragment,
		quiet:          true,
	}
	switch {
	case len(c.RangeEnd) == 0:
		w.single = true
	case len(c.RangeEnd) == 1 && c.RangeEnd[0] == 0:
		// from key onwards
	default:
		w.end = string(c.RangeEnd)
		if w.start >= w.end {
			return s.refuse(rev, reasonEmptyRange)
		}
	}
	if w.next == 0 {
		w.next = rev + 1
	}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDel = true
		}
	}
	if !s.budget.acquire() {
		s.h.log.Warn("watch refused: too many watches", "limit", s.budget.Limit(), "per_connection", s.perConnection)
		return s.refuse(rev, reasonTooManyWatches(s.budget.Limit(), s.perConnection))
	}
	if c.WatchId == 0 { // etcd's AutoWatchID
		for s.watches[s.nextID] != nil {
			s.nextID++
		}
		w.id = s.nextID
		s.nextID++
	} else {
		if s.watches[c.WatchId] != nil {
			s.budget.release(1)
			return s.refuse(rev, reasonDuplicate)
		}
		w.id = c.WatchId
	}
	s.watches[w.id] = w
	s.h.metrics.watches.Inc()
	return s.send(&pb.WatchResponse{Header: s.header(rev), WatchId: w.id, Created: true})
}

func (s *stream) cancel(id int64) error {
	if _, ok := s.watches[id]; !ok {
		return nil // etcd does not answer a cancel of an unknown watch
	}
	s.remove(id, "canceled")
	return s.send(&pb.WatchResponse{Header: s.header(s.h.Revision()), WatchId: id, Canceled: true})
}

func (s *stream) remove(id int64, reason string) {
	delete(s.watches, id)
	s.budget.release(1)
	s.h.metrics.watches.Dec()
	s.h.metrics.cancels.WithLabelValues(reason).Inc()
}

// deliver sends every watch the events it has not seen, up to rev, at most
// one response's worth per watch per call. It reports whether some watch is
// still behind rev.
func (s *stream) deliver(rev int64) (behind bool, err error) {
	for _, w := range s.watches {
		if w.next > rev {
			continue
		}
		if compactRev := s.h.history.CompactRevision(); w.next < compactRev {
			// etcd's rule: a watch that still needs revisions below the
			// compact revision is canceled with it. A client too slow to
			// keep up with compaction ends here.
			s.h.log.Info("watch canceled: its next revision was compacted", "watch", w.id,
				"next", w.next, "compact_revision", compactRev)
			s.remove(w.id, "compacted")
			if err := s.send(&pb.WatchResponse{Header: s.header(0), WatchId: w.id, Canceled: true,
				CompactRevision: compactRev, CancelReason: reasonCompacted}); err != nil {
				return false, err
			}
			continue
		}
		s.h.metrics.lag.Observe(float64(rev - w.next + 1))
		evs, through, err := s.fetch(w.next, rev)
		if err != nil {
			if w.next < s.h.history.CompactRevision() {
				behind = true // canceled on the next pass
				continue
			}
			return false, err
		}
		if err := s.sendEvents(w, rev, evs); err != nil {
			return false, err
		}
		w.next = through + 1
		if w.next <= rev {
			behind = true
		}
	}
	return behind, nil
}

// fetch returns events from revision from on, no further than to, from the
// ring or, when they are older than the ring, from the database.
func (s *stream) fetch(from, to int64) ([]*mvccpb.Event, int64, error) {
	max := s.h.cfg.MaxEventsPerResponse
	if evs, through, ok := s.h.read(from, to, max); ok {
		return evs, through, nil
	}
	upto := min(to, s.h.ringBase(), from+int64(s.h.cfg.CatchUpPage)-1)
	s.h.metrics.catchUps.Inc()
	evs, through, err := s.h.history.History(s.ctx, from, upto, s.h.cfg.CatchUpPage)
	if err != nil {
		return nil, 0, fmt.Errorf("watchhub: read history %d..%d: %w", from, upto, err)
	}
	s.h.metrics.catchUpEvents.Add(float64(len(evs)))
	return evs, through, nil
}

// sendEvents sends the events of evs that w wants, in responses of at most
// MaxEventsPerResponse events.
func (s *stream) sendEvents(w *watch, rev int64, evs []*mvccpb.Event) error {
	var out []*mvccpb.Event
	compactRev := s.h.history.CompactRevision()
	for _, ev := range evs {
		if !w.matches(ev.Kv.Key) || (w.noPut && ev.Type == mvccpb.PUT) || (w.noDel && ev.Type == mvccpb.DELETE) {
			continue
		}
		// etcd reads the previous key-value at mod_revision-1, and leaves it
		// out when that revision is compacted.
		if ev.PrevKv != nil && (!w.prevKV || ev.Kv.ModRevision <= compactRev) {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		out = append(out, ev)
	}
	if len(out) == 0 {
		return nil
	}
	w.quiet = false
	s.h.metrics.eventsSent.Add(float64(len(out)))
	for len(out) > 0 {
		n := min(len(out), s.h.cfg.MaxEventsPerResponse)
		resp := &pb.WatchResponse{Header: s.header(rev), WatchId: w.id, Events: out[:n]}
		var err error
		if w.fragment {
			err = s.sendFragments(resp)
		} else {
			err = s.send(resp)
		}
		if err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

// sendFragments splits a response larger than MaxRequestBytes into
// responses marked fragment, the last one unmarked, as etcd does for watches
// created with fragment=true. The client joins them.
func (s *stream) sendFragments(resp *pb.WatchResponse) error {
	limit := s.h.cfg.MaxRequestBytes
	if len(resp.Events) < 2 || proto.Size(resp) < limit {
		return s.send(resp)
	}
	events := resp.Events
	for len(events) > 0 {
		cur := &pb.WatchResponse{Header: resp.Header, WatchId: resp.WatchId, Fragment: true}
		n := 0
		for n < len(events) {
			cur.Events = events[:n+1]
			if n > 0 && proto.Size(cur) >= limit {
				break
			}
			n++
		}
		cur.Events = events[:n]
		events = events[n:]
		cur.Fragment = len(events) > 0
		if err := s.send(cur); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) wantsTicks() bool {
	for _, w := range s.watches {
		if w.progressNotify {
			return true
		}
	}
	return false
}

// progress sends the progress notifications that are due, once every watch
// of the stream has been sent everything up to rev.
func (s *stream) progress(rev int64) error {
	if s.progressWanted {
		ready := true
		for _, w := range s.watches {
			if w.startRev > rev { // a future watch: no progress yet (etcd ≥ 3.6.2)
				ready = false
				break
			}
		}
		if len(s.watches) == 0 {
			s.progressWanted = false // etcd answers nothing on a stream without watches
		} else if ready {
			s.progressWanted = false
			s.h.metrics.progress.WithLabelValues("requested").Inc()
			if err := s.send(&pb.WatchResponse{Header: s.header(rev), WatchId: InvalidWatchID}); err != nil {
				return err
			}
		}
	}
	if !s.ticked {
		return nil
	}
	s.ticked = false
	for _, w := range s.watches {
		if !w.progressNotify {
			continue
		}
		if w.quiet && w.startRev <= rev {
			s.h.metrics.progress.WithLabelValues("periodic").Inc()
			if err := s.send(&pb.WatchResponse{Header: s.header(rev), WatchId: w.id}); err != nil {
				return err
			}
		}
		w.quiet = true
	}
	return nil
}
