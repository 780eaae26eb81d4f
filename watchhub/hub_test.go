package watchhub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
)

var errCompacted = errors.New("compacted")

// log is a fake store: every revision from 2 on is one event, and History
// serves any of them not compacted. It counts its reads.
type log struct {
	mu         sync.Mutex
	events     []*mvccpb.Event // events[i] is revision i+2
	compactRev int64
	reads      int
}

func (l *log) History(ctx context.Context, from, to int64, limit int) ([]*mvccpb.Event, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if from < l.compactRev {
		return nil, 0, errCompacted
	}
	var out []*mvccpb.Event
	through := to
	for rev := max(from, 2); rev <= to; rev++ {
		if len(out) == limit {
			through = rev - 1
			break
		}
		out = append(out, l.events[rev-2])
	}
	return out, through, nil
}

func (l *log) CompactRevision() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.compactRev
}

func (l *log) historyReads() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads
}

// write appends one event for key and publishes it.
func (l *log) write(h *Hub, key string) int64 {
	l.mu.Lock()
	rev := int64(len(l.events)) + 2
	ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(fmt.Sprint(rev)),
		ModRevision: rev, CreateRevision: rev, Version: 1}}
	l.events = append(l.events, ev)
	l.mu.Unlock()
	h.Publish(rev, []*mvccpb.Event{ev})
	return rev
}

func newHub(t *testing.T, cfg Config) (*Hub, *log) {
	l := &log{}
	h := New(l, cfg)
	h.Publish(1, nil)
	h.Start()
	t.Cleanup(h.Close)
	return h, l
}

// client runs one Serve call and records what it sends.
type client struct {
	reqs   chan *pb.WatchRequest
	respc  chan *pb.WatchResponse
	cancel context.CancelFunc
	done   chan error
}

func connect(h *Hub) *client {
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{reqs: make(chan *pb.WatchRequest, 16), respc: make(chan *pb.WatchResponse, 100000), cancel: cancel,
		done: make(chan error, 1)}
	go func() {
		c.done <- h.Serve(ctx, c.reqs, func(r *pb.WatchResponse) error {
			select {
			case c.respc <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return c
}

func (c *client) create(r *pb.WatchCreateRequest) {
	c.reqs <- &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: r}}
}

func (c *client) progress() {
	c.reqs <- &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
}

func (c *client) next(t *testing.T) *pb.WatchResponse {
	t.Helper()
	select {
	case r := <-c.respc:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
		return nil
	}
}

// events reads responses until n events have arrived and returns their
// revisions.
func (c *client) events(t *testing.T, n int) []int64 {
	t.Helper()
	var revs []int64
	for len(revs) < n {
		r := c.next(t)
		for _, ev := range r.Events {
			revs = append(revs, ev.Kv.ModRevision)
		}
	}
	return revs
}

func (c *client) stop(t *testing.T) {
	c.cancel()
	if err := <-c.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v", err)
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for r := from; r <= to; r++ {
		out = append(out, r)
	}
	return out
}

func equal(a, b []int64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestRingBounds(t *testing.T) {
	r := ring{maxEvents: 3, maxBytes: 1 << 20}
	r.reset(1)
	for rev := int64(2); rev <= 6; rev++ {
		r.append(rev, []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: rev}}}, 0)
	}
	if r.len() != 3 || r.base != 3 {
		t.Fatalf("len %d base %d; want 3 events over (3, 6]", r.len(), r.base)
	}
	if _, _, ok := r.read(3, 6, 10); ok {
		t.Fatal("revision 3 (at the base) read from the ring")
	}
	evs, through, ok := r.read(4, 6, 10)
	if !ok || len(evs) != 3 || through != 6 {
		t.Fatalf("read(4..6) = %d events through %d, %v", len(evs), through, ok)
	}
	evs, through, _ = r.read(4, 6, 2)
	if len(evs) != 2 || through != 5 {
		t.Fatalf("limited read = %d events through %d", len(evs), through)
	}
	evs, through, _ = r.read(4, 4, 10)
	if len(evs) != 1 || through != 4 {
		t.Fatalf("read bounded by to = %d events through %d", len(evs), through)
	}
	// Revisions without events (kine's bookkeeping rows) still move rev.
	r.append(9, nil, 0)
	if _, through, _ := r.read(7, 9, 10); through != 9 {
		t.Fatalf("through %d after an empty publish", through)
	}

	b := ring{maxEvents: 1000, maxBytes: 3 * eventSize(&mvccpb.Event{Kv: &mvccpb.KeyValue{Value: make([]byte, 100)}})}
	b.reset(1)
	for rev := int64(2); rev <= 10; rev++ {
		b.append(rev, []*mvccpb.Event{{Kv: &mvccpb.KeyValue{ModRevision: rev, Value: make([]byte, 100)}}}, 0)
	}
	if b.len() != 3 || b.bytes > b.maxBytes {
		t.Fatalf("byte-bounded ring holds %d events, %d bytes", b.len(), b.bytes)
	}
	// Compaction trims: events below the compact revision go, the one at it
	// stays.
	b.append(11, []*mvccpb.Event{{Kv: &mvccpb.KeyValue{ModRevision: 11}}}, 10)
	if b.base != 9 {
		t.Fatalf("after compaction to 10 the ring base is %d, want 9", b.base)
	}
}

// TestRingValue checks the recent-value lookup the store's committer uses
// for previous values: only puts the ring still holds, at their exact
// revision.
func TestRingValue(t *testing.T) {
	h := New(nil, Config{RingEvents: 3})
	h.ring.reset(1)
	h.ring.append(2, []*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 2, Value: []byte("v2")}}}, 0)
	h.ring.append(4, []*mvccpb.Event{ // revision 3 is a bookkeeping row: no event
		{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 4}},
	}, 0)
	h.ring.append(6, []*mvccpb.Event{
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 5, Value: []byte("v5")}},
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("c"), ModRevision: 6, Value: []byte("v6")}},
	}, 0)
	for rev, want := range map[int64]string{5: "v5", 6: "v6"} {
		if k, v, ok := h.Value(rev); !ok || string(v) != want || len(k) != 1 {
			t.Errorf("Value(%d) = %q, %q, %v; want %q", rev, k, v, ok, want)
		}
	}
	// Evicted (the ring holds 3 events), no event, a delete, the future.
	for _, rev := range []int64{1, 2, 3, 4, 7} {
		if _, v, ok := h.Value(rev); ok {
			t.Errorf("Value(%d) = %q; want none", rev, v)
		}
	}
}

// TestRingValueWithGaps checks the lookup on a ring whose revisions have
// runs without gaps and gaps of every size, and a head that has moved: every
// put it holds is found, nothing else is.
func TestRingValueWithGaps(t *testing.T) {
	r := ring{maxEvents: 200, maxBytes: 1 << 20}
	r.reset(0)
	want := map[int64]string{}
	rev := int64(0)
	for i := range 500 {
		rev += 1 + int64(i%7/5)*int64(i%4) // mostly dense, some gaps of 1 to 3
		typ := mvccpb.PUT
		if i%11 == 0 {
			typ = mvccpb.DELETE
		}
		r.append(rev, []*mvccpb.Event{{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: rev, Value: fmt.Appendf(nil, "v%d", rev)}}}, 0)
		if typ == mvccpb.PUT {
			want[rev] = fmt.Sprintf("v%d", rev)
		}
	}
	for q := int64(0); q <= rev+2; q++ {
		_, v, ok := r.value(q)
		w, held := want[q]
		held = held && q > r.base
		if ok != held || (ok && string(v) != w) {
			t.Fatalf("value(%d) = %q, %v; want %q, %v (base %d)", q, v, ok, w, held, r.base)
		}
	}
}

// TestCatchUpCrossesRingBoundaryExactly starts watches at every revision
// around the ring's base and checks each gets every event once, in order,
// reading the database only for what the ring lacks.
func TestCatchUpCrossesRingBoundaryExactly(t *testing.T) {
	h, l := newHub(t, Config{RingEvents: 10, CatchUpPage: 3})
	for range 30 {
		l.write(h, "k")
	}
	base := h.ringBase() // revisions above base are in the ring
	if base != 21 {
		t.Fatalf("ring base %d, want 21", base)
	}
	for start := base - 4; start <= base+2; start++ {
		reads := l.historyReads()
		c := connect(h)
		c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: start})
		if r := c.next(t); !r.Created {
			t.Fatalf("first response is not created: %+v", r)
		}
		got := c.events(t, int(31-start+1))
		if !equal(got, seq(start, 31)) {
			t.Fatalf("start %d: got %v", start, got)
		}
		if start > base && l.historyReads() != reads {
			t.Fatalf("start %d inside the ring read the database", start)
		}
		if start <= base && l.historyReads() == reads {
			t.Fatalf("start %d behind the ring did not read the database", start)
		}
		c.stop(t)
	}
}

func TestCompactedBoundary(t *testing.T) {
	h, l := newHub(t, Config{})
	for range 10 {
		l.write(h, "k")
	}
	l.mu.Lock()
	l.compactRev = 6
	l.mu.Unlock()

	c := connect(h)
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 6})
	if r := c.next(t); !r.Created || r.Canceled {
		t.Fatalf("create at the compact revision: %+v", r)
	}
	if got := c.events(t, 6); !equal(got, seq(6, 11)) {
		t.Fatalf("watch at the compact revision got %v", got)
	}
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 5})
	if r := c.next(t); !r.Created || r.WatchId != 1 {
		t.Fatalf("create below the compact revision: %+v", r)
	}
	r := c.next(t)
	if !r.Canceled || r.CompactRevision != 6 || r.WatchId != 1 || len(r.Events) != 0 {
		t.Fatalf("compacted watch: %+v", r)
	}
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: -1})
	if r := c.next(t); !r.Created || !r.Canceled || r.WatchId != -1 {
		t.Fatalf("negative start: %+v", r)
	}
	c.stop(t)
}

func TestProgressNeverOvertakesEvents(t *testing.T) {
	h, l := newHub(t, Config{ProgressNotifyInterval: 100 * time.Millisecond, RingEvents: 50, CatchUpPage: 7})
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		l.write(h, fmt.Sprint("k", rng.IntN(5)))
	}
	c := connect(h)
	// Two watches, one behind the ring, one on part of the keys.
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), RangeEnd: []byte("l"), StartRevision: 2, ProgressNotify: true})
	c.create(&pb.WatchCreateRequest{Key: []byte("k1"), StartRevision: 100, ProgressNotify: true})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l.write(h, fmt.Sprint("k", rng.IntN(5)))
			c.progress()
			time.Sleep(time.Millisecond)
		}
	}()
	seen := map[int64]map[int64]bool{0: {}, 1: {}} // watch → revisions received
	progresses := 0
	deadline := time.After(20 * time.Second)
	for progresses < 50 {
		var r *pb.WatchResponse
		select {
		case r = <-c.respc:
		case <-deadline:
			t.Fatalf("only %d progress notifications", progresses)
		}
		for _, ev := range r.Events {
			if seen[r.WatchId][ev.Kv.ModRevision] {
				t.Fatalf("watch %d got revision %d twice", r.WatchId, ev.Kv.ModRevision)
			}
			seen[r.WatchId][ev.Kv.ModRevision] = true
		}
		if len(r.Events) > 0 || r.Created {
			continue
		}
		// A progress notification at R: resuming every watch it covers at
		// R+1 must lose nothing, so every event ≤ R must have arrived.
		progresses++
		rev := r.Header.Revision
		l.mu.Lock()
		events := l.events[:rev-1]
		l.mu.Unlock()
		matches := map[int64]func(*mvccpb.Event) bool{
			0: func(*mvccpb.Event) bool { return true },
			1: func(ev *mvccpb.Event) bool { return string(ev.Kv.Key) == "k1" && ev.Kv.ModRevision >= 100 },
		}
		for id, match := range matches {
			if r.WatchId != -1 && r.WatchId != id {
				continue
			}
			for _, ev := range events {
				if match(ev) && !seen[id][ev.Kv.ModRevision] {
					t.Fatalf("progress at %d (watch %d) sent before event %d of watch %d", rev, r.WatchId, ev.Kv.ModRevision, id)
				}
			}
		}
	}
	close(stop)
	wg.Wait()
	c.stop(t)
}

func TestFutureWatchGetsNoProgress(t *testing.T) {
	h, l := newHub(t, Config{})
	l.write(h, "k")
	c := connect(h)
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 5})
	c.next(t)
	c.progress()
	l.write(h, "k") // revision 3: still below the future start
	select {
	case r := <-c.respc:
		t.Fatalf("response for a future watch: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	l.write(h, "k") // 4
	l.write(h, "k") // 5: the watch starts
	if got := c.events(t, 1); !equal(got, []int64{5}) {
		t.Fatalf("future watch got %v", got)
	}
	// The deferred progress request is answered now.
	r := c.next(t)
	if r.WatchId != -1 || r.Header.Revision != 5 || len(r.Events) != 0 {
		t.Fatalf("deferred progress: %+v", r)
	}
	c.stop(t)
}

func TestPeriodicProgressOnlyWhenQuiet(t *testing.T) {
	h, l := newHub(t, Config{ProgressNotifyInterval: 100 * time.Millisecond})
	c := connect(h)
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), ProgressNotify: true})
	c.create(&pb.WatchCreateRequest{Key: []byte("other")}) // never notified
	c.next(t)
	c.next(t)
	r := c.next(t)
	if r.WatchId != 0 || len(r.Events) != 0 || r.Header.Revision != 1 {
		t.Fatalf("periodic progress: %+v", r)
	}
	l.write(h, "k")
	if got := c.events(t, 1); !equal(got, []int64{2}) {
		t.Fatalf("event: %v", got)
	}
	c.stop(t)
}

func TestFiltersPrevKVAndFragments(t *testing.T) {
	h, l := newHub(t, Config{MaxRequestBytes: 60})
	for range 6 {
		l.write(h, "k")
	}
	l.events[2].PrevKv = &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("prev")}
	l.events[3].Type = mvccpb.DELETE
	c := connect(h)
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	c.next(t)
	if r := c.next(t); len(r.Events) != 1 || r.Events[0].Type != mvccpb.DELETE {
		t.Fatalf("NOPUT watch: %+v", r.Events)
	}
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2, Fragment: true})
	c.next(t)
	var got []int64
	fragments := 0
	for len(got) < 6 {
		r := c.next(t)
		if r.Fragment {
			fragments++
		}
		for _, ev := range r.Events {
			if ev.PrevKv != nil {
				t.Fatal("prev_kv sent to a watch without prev_kv")
			}
			got = append(got, ev.Kv.ModRevision)
		}
	}
	if fragments == 0 || !equal(got, seq(2, 7)) {
		t.Fatalf("fragmented watch: %d fragments, revisions %v", fragments, got)
	}
	c.stop(t)
}

// TestStalledClientHoldsBackNobody: one stream that never reads does not
// delay Publish or other streams, and catches up later.
func TestStalledClientHoldsBackNobody(t *testing.T) {
	h, l := newHub(t, Config{RingEvents: 100})
	ctx, cancel := context.WithCancel(context.Background())
	unblock := make(chan struct{})
	stalled := make(chan *pb.WatchResponse, 1000000)
	reqs := make(chan *pb.WatchRequest, 1)
	reqs <- &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}}
	done := make(chan error, 1)
	sends := 0
	go func() {
		done <- h.Serve(ctx, reqs, func(r *pb.WatchResponse) error {
			sends++
			if sends == 2 { // after created and the first events
				<-unblock
			}
			stalled <- r
			return nil
		})
	}()
	healthy := connect(h)
	healthy.create(&pb.WatchCreateRequest{Key: []byte("k")})
	healthy.next(t)
	if r := <-stalled; !r.Created { // the stalled stream's watch exists
		t.Fatalf("first response of the stalled stream: %+v", r)
	}
	for range 1000 {
		l.write(h, "k")
	}
	if got := healthy.events(t, 1000); !equal(got, seq(2, 1001)) {
		t.Fatal("the healthy stream lost or reordered events while another was stalled")
	}
	close(unblock)
	var got []int64
	for len(got) < 1000 {
		r := <-stalled
		if r.Created {
			continue
		}
		for _, ev := range r.Events {
			got = append(got, ev.Kv.ModRevision)
		}
	}
	if !equal(got, seq(2, 1001)) {
		t.Fatal("the stalled stream did not catch up with every event in order")
	}
	if l.historyReads() == 0 {
		t.Fatal("the stalled stream fell behind the ring but read nothing from the database")
	}
	cancel()
	<-done
	healthy.stop(t)
}

func TestServeReleasesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &log{}
	h := New(l, Config{ProgressNotifyInterval: 100 * time.Millisecond})
	h.Publish(1, nil)
	h.Start()
	var clients []*client
	for range 50 {
		c := connect(h)
		for i := range 5 {
			c.create(&pb.WatchCreateRequest{Key: []byte(fmt.Sprint("k", i)), ProgressNotify: true})
		}
		clients = append(clients, c)
	}
	for range 100 {
		l.write(h, "k1")
	}
	for _, c := range clients {
		c.stop(t)
	}
	h.Close()
	if w, st := testutil.ToFloat64(h.metrics.watches), testutil.ToFloat64(h.metrics.streams); w != 0 || st != 0 {
		t.Fatalf("after every stream ended: %v watches, %v streams", w, st)
	}
}
