// Package backendtest is the contract every backend.Driver must pass: one
// suite, run against SQLite and PostgreSQL alike. It drives a backend.Store
// over the driver and checks it against a model of etcd's semantics.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/check"
)

// Opener opens a driver over the test's database. Every call within one test
// must open the same database (the suite closes and reopens it to restart).
type Opener func(t *testing.T) backend.Driver

// NewDatabase returns an Opener for a fresh, empty database.
type NewDatabase func(t *testing.T) Opener

// Run runs the suite.
func Run(t *testing.T, newDB NewDatabase) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"FreshStoreStartsAtRevisionOne", testFreshStore},
		{"ModelRandomOps", testModel},
		{"ConcurrentWritersGroupCommit", testConcurrentWriters},
		{"CompactionMatchesKine", testCompaction},
		{"CompactionKeepsReadsAcrossRestarts", testCompactionRestarts},
		{"LeasesPersist", testLeases},
		{"HistoryPages", testHistory},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

// harness runs a Store over a driver and restarts it on demand.
type harness struct {
	t      *testing.T
	open   Opener
	driver backend.Driver
	store  *backend.Store
	sink   *recorder
}

// recorder is an EventSink that keeps everything published.
type recorder struct {
	mu     sync.Mutex
	rev    int64
	events []*mvccpb.Event
}

func (r *recorder) Publish(rev int64, events []*mvccpb.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev && r.rev != 0 {
		panic(fmt.Sprintf("published revision went from %d to %d", r.rev, rev))
	}
	r.rev = rev
	r.events = append(r.events, events...)
}

func start(t *testing.T, open Opener) *harness {
	h := &harness{t: t, open: open}
	h.startStore()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) startStore() {
	h.t.Helper()
	h.driver = h.open(h.t)
	h.sink = &recorder{}
	h.store = backend.New(h.driver, backend.Config{LeaseCheckInterval: 50 * time.Millisecond})
	h.store.SetEventSink(h.sink)
	if err := h.store.Start(context.Background()); err != nil {
		h.t.Fatalf("start store: %v", err)
	}
}

func (h *harness) stop() {
	if h.store == nil {
		return
	}
	if err := h.store.Close(context.Background()); err != nil {
		h.t.Errorf("close store: %v", err)
	}
	if err := h.driver.Close(); err != nil {
		h.t.Errorf("close driver: %v", err)
	}
	h.store = nil
}

// restart stops the store, checks the database's invariants, and starts
// it again.
func (h *harness) restart() {
	h.stop()
	h.verify()
	h.startStore()
}

// verify runs the database checker on the stopped store's database.
func (h *harness) verify() {
	h.t.Helper()
	d := h.open(h.t)
	defer d.Close()
	rep, err := check.Run(context.Background(), d)
	if err != nil {
		h.t.Fatalf("check: %v", err)
	}
	if !rep.OK() {
		h.t.Fatalf("check: %s\n%s", rep.Summary(), strings.Join(rep.Problems, "\n"))
	}
}

func put(key, value string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}}
}

func testFreshStore(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	if rev := h.store.CurrentRevision(); rev != 1 {
		t.Fatalf("fresh store at revision %d, want 1", rev)
	}
	r, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("1")})
	if err != nil || r.Header.Revision != 2 {
		t.Fatalf("first put: %v, %v", r, err)
	}
	h.restart()
	if rev := h.store.CurrentRevision(); rev != 2 {
		t.Fatalf("after restart at revision %d, want 2", rev)
	}
}

// mkv is one version of a key in the model; Version 0 is a tombstone.
type mkv struct {
	Key, Value                           string
	ModRevision, CreateRevision, Version int64
}

// model is etcd's key-value semantics in memory, one revision per write.
type model struct {
	rev        int64
	compactRev int64
	// history[key] is every version of key, oldest first; a tombstone has
	// version 0.
	history map[string][]mkv
}

func (m *model) latest(key string) (mkv, bool) {
	h := m.history[key]
	if len(h) == 0 || h[len(h)-1].Version == 0 {
		return mkv{}, false
	}
	return h[len(h)-1], true
}

func (m *model) at(key string, rev int64) (mkv, bool) {
	var out mkv
	found := false
	for _, kv := range m.history[key] {
		if kv.ModRevision > rev {
			break
		}
		out, found = kv, kv.Version != 0
	}
	return out, found
}

func (m *model) put(key, value string) {
	m.rev++
	kv := mkv{Key: key, Value: value, ModRevision: m.rev, CreateRevision: m.rev, Version: 1}
	if cur, ok := m.latest(key); ok {
		kv.CreateRevision, kv.Version = cur.CreateRevision, cur.Version+1
	}
	m.history[key] = append(m.history[key], kv)
}

func (m *model) del(key string) bool {
	if _, ok := m.latest(key); !ok {
		return false
	}
	m.rev++
	m.history[key] = append(m.history[key], mkv{Key: key, ModRevision: m.rev})
	return true
}

func (m *model) keys() []string {
	var out []string
	for k := range m.history {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sameKV(got *mvccpb.KeyValue, want mkv) bool {
	return string(got.Key) == want.Key && string(got.Value) == want.Value &&
		got.ModRevision == want.ModRevision && got.CreateRevision == want.CreateRevision && got.Version == want.Version
}

// testModel runs random writes, compactions and restarts, and after each
// step compares reads at random revisions with the model.
func testModel(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	m := &model{rev: 1, history: map[string][]mkv{}}
	keys := []string{"a", "a/1", "a/2", "b", "b/1", "c", "compact_rev_key", "z\x00x", "\xff\xfe"}
	// A database may refuse some keys (PostgreSQL text holds no NUL and
	// only UTF-8): such a write fails with ErrKeyUnsupported and changes
	// nothing; the model then leaves those keys out.
	if kc, ok := h.driver.(interface{ CheckKey(string) error }); ok {
		keys = slices.DeleteFunc(keys, func(k string) bool {
			if kc.CheckKey(k) == nil {
				return false
			}
			before := h.store.CurrentRevision()
			_, err := h.store.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{put(k, "v")}})
			if !errors.Is(err, backend.ErrKeyUnsupported) {
				t.Fatalf("put of unsupported key %q: %v, want ErrKeyUnsupported", k, err)
			}
			if after := h.store.CurrentRevision(); after != before {
				t.Fatalf("refused put of %q moved the revision from %d to %d", k, before, after)
			}
			return true
		})
	}

	check := func(step int) {
		t.Helper()
		if got := h.store.CurrentRevision(); got != m.rev {
			t.Fatalf("step %d: revision %d, model %d", step, got, m.rev)
		}
		for range 5 {
			rev := m.compactRev + rng.Int64N(m.rev-m.compactRev+1)
			if rev == 0 {
				rev = m.rev
			}
			resp, err := h.store.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
			if err != nil {
				t.Fatalf("step %d: range at %d: %v", step, rev, err)
			}
			var want []mkv
			for _, k := range m.keys() {
				if kv, ok := m.at(k, rev); ok {
					want = append(want, kv)
				}
			}
			if len(resp.Kvs) != len(want) || resp.Count != int64(len(want)) {
				t.Fatalf("step %d: range at %d has %d kvs (count %d), model %d", step, rev, len(resp.Kvs), resp.Count, len(want))
			}
			for i := range want {
				if !sameKV(resp.Kvs[i], want[i]) {
					t.Fatalf("step %d: range at %d: %v, model %+v", step, rev, resp.Kvs[i], want[i])
				}
			}
		}
		if m.compactRev > 1 {
			_, err := h.store.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: m.compactRev - 1})
			if !errors.Is(err, backend.ErrCompacted) {
				t.Fatalf("step %d: read below the compact revision: %v", step, err)
			}
		}
	}

	for step := range 300 {
		key := keys[rng.IntN(len(keys))]
		switch n := rng.IntN(100); {
		case n < 50:
			v := fmt.Sprint(step)
			if _, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
			m.put(key, v)
		case n < 65:
			if _, err := h.store.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(key)}); err != nil {
				t.Fatal(err)
			}
			m.del(key)
		case n < 80:
			// An apiserver update: CAS on the mod revision.
			cur, ok := m.latest(key)
			rev := cur.ModRevision
			if rng.IntN(3) == 0 {
				rev++ // stale
			}
			r, err := h.store.Txn(ctx, &pb.TxnRequest{
				Compare: []*pb.Compare{{Key: []byte(key), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
					TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}},
				Success: []*pb.RequestOp{put(key, fmt.Sprint("cas", step))},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key)}}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			wantOK := (ok && rev == cur.ModRevision) || (!ok && rev == 0)
			if r.Succeeded != wantOK {
				t.Fatalf("step %d: CAS on %q at %d succeeded=%v, model %v", step, key, rev, r.Succeeded, wantOK)
			}
			if wantOK {
				m.put(key, fmt.Sprint("cas", step))
			}
		case n < 88:
			if m.rev > m.compactRev+1 {
				target := m.compactRev + 1 + rng.Int64N(m.rev-m.compactRev)
				if err := h.store.Compact(ctx, target); err != nil {
					t.Fatalf("step %d: compact %d: %v", step, target, err)
				}
				m.compactRev = target
				for h.store.CompactedThrough() < target {
					if _, _, err := h.store.CompactStep(ctx, int64(1+rng.IntN(20))); err != nil {
						t.Fatal(err)
					}
					if rng.IntN(4) == 0 {
						h.restart() // a restart in the middle of a compaction resumes it
					}
				}
			}
		case n < 92:
			h.restart()
		default:
			// A multi-key delete over a prefix.
			prefix := key[:1]
			if _, err := h.store.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(prefix), RangeEnd: []byte{prefix[0] + 1}}); err != nil {
				t.Fatal(err)
			}
			for _, k := range m.keys() {
				if k[0] == prefix[0] {
					m.del(k)
				}
			}
		}
		check(step)
	}
}

func testConcurrentWriters(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	const writers, each = 16, 50
	var wg sync.WaitGroup
	revs := make(chan int64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprintf("w%d/%d", w, i)), Value: []byte("v")})
				if err != nil {
					t.Error(err)
					return
				}
				revs <- r.Header.Revision
			}
		}()
	}
	wg.Wait()
	close(revs)
	var all []int64
	for r := range revs {
		all = append(all, r)
	}
	slices.Sort(all)
	for i, r := range all {
		if r != int64(i)+2 {
			t.Fatalf("revisions are not 2..%d without gaps or repeats: %v", writers*each+1, all[:i+1])
		}
	}
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	if len(h.sink.events) != writers*each {
		t.Fatalf("%d events published for %d writes", len(h.sink.events), writers*each)
	}
	for i, ev := range h.sink.events {
		if ev.Kv.ModRevision != int64(i)+2 {
			t.Fatalf("event %d at revision %d: events out of order", i, ev.Kv.ModRevision)
		}
	}
}

func testCompaction(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	for i := range 40 {
		if _, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("k", i%4)), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.store.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("k3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte("last"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	cur := h.store.CurrentRevision()
	if err := h.store.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Compact(ctx, cur); !errors.Is(err, backend.ErrCompacted) {
		t.Fatalf("compact again to the same revision: %v", err)
	}
	deleted := 0
	for h.store.CompactedThrough() < cur {
		_, n, err := h.store.CompactStep(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		deleted += n
	}
	// 40 puts over 4 keys leave 36 superseded rows; k3's last row and its
	// tombstone go too: 38.
	if deleted != 38 {
		t.Fatalf("compaction deleted %d rows, want 38 (what kine deletes)", deleted)
	}
	resp, err := h.store.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.Kvs); got != 4 {
		t.Fatalf("%d keys after compaction, want 4", got)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) == "k0" && kv.Version != 10 {
			t.Fatalf("k0 version %d after compaction, want 10", kv.Version)
		}
	}
	h.restart()
	resp2, err := h.store.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resp2.Kvs) != fmt.Sprint(resp.Kvs) {
		t.Fatalf("after restart:\n%v\nbefore:\n%v", resp2.Kvs, resp.Kvs)
	}
	if keys, revs := h.store.IndexStats(); keys != 4 || revs != 4 {
		t.Fatalf("index holds %d keys, %d revisions after compaction and restart; want 4, 4", keys, revs)
	}
}

// testCompactionRestarts checks that every read at or above the compact
// revision answers as it did before the compaction — values, create and mod
// revisions, versions — after each step of a compaction and a restart, so
// with a compaction left unfinished, and again after a second compaction.
func testCompactionRestarts(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	write := func(n int) {
		t.Helper()
		for i := range n {
			var err error
			switch k := fmt.Sprint("k", i%5); {
			case i%17 == 16:
				_, err = h.store.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(k)})
			default:
				_, err = h.store.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(fmt.Sprint(i))})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// reads answers a range over every key at each revision from..to.
	reads := func(from, to int64) []string {
		t.Helper()
		var out []string
		for rev := from; rev <= to; rev++ {
			resp, err := h.store.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
			if err != nil {
				t.Fatalf("range at %d: %v", rev, err)
			}
			out = append(out, fmt.Sprint(rev, resp.Kvs))
		}
		return out
	}
	for _, round := range []struct{ before, after int }{{60, 20}, {45, 15}} {
		write(round.before)
		target := h.store.CurrentRevision()
		write(round.after)
		want := reads(target, h.store.CurrentRevision())
		if err := h.store.Compact(ctx, target); err != nil {
			t.Fatal(err)
		}
		for steps := 1; h.store.CompactedThrough() < target; steps++ {
			if _, _, err := h.store.CompactStep(ctx, 6); err != nil {
				t.Fatal(err)
			}
			h.restart()
			got := reads(target, h.store.CurrentRevision())
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("after %d steps to %d (through %d) and a restart:\n got %s\nwant %s",
						steps, target, h.store.CompactedThrough(), got[i], want[i])
				}
			}
		}
	}
}

func testLeases(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	l, err := h.store.LeaseGrant(ctx, 0, 3600)
	if err != nil {
		t.Fatal(err)
	}
	short, err := h.store.LeaseGrant(ctx, 77, 1)
	if err != nil || short.ID != 77 || short.TTL != backend.DefaultMinLeaseTTL {
		t.Fatalf("grant 77: %+v, %v", short, err)
	}
	for _, k := range []string{"x", "y"} {
		if _, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("v"), Lease: l.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte("gone"), Value: []byte("v"), Lease: short.ID}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	st, err := h.store.LeaseTimeToLive(ctx, l.ID, true)
	if err != nil || !slices.Equal(st.Keys, []string{"x", "y"}) || st.GrantedTTL != 3600 {
		t.Fatalf("lease after restart: %+v, %v", st, err)
	}
	// The short lease expires after the restart and takes its key along.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := h.store.Range(ctx, &pb.RangeRequest{Key: []byte("gone")})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the short lease never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := h.store.LeaseTimeToLive(ctx, short.ID, false); !errors.Is(err, backend.ErrLeaseNotFound) {
		t.Fatalf("expired lease still known: %v", err)
	}
	rev, err := h.store.LeaseRevoke(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := h.store.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if len(resp.Kvs) != 0 || resp.Header.Revision != rev {
		t.Fatalf("after revoke: %v at %d", resp.Kvs, resp.Header.Revision)
	}
	h.restart()
	if ids := h.store.Leases(ctx); len(ids) != 0 {
		t.Fatalf("leases after revoke and restart: %v", ids)
	}
}

func testHistory(t *testing.T, open Opener) {
	h := start(t, open)
	ctx := context.Background()
	for i := range 25 {
		if _, err := h.store.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("h", i%3)), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	cur := h.store.CurrentRevision()
	var got []*mvccpb.Event
	from := int64(2)
	for from <= cur {
		evs, through, err := h.store.History(ctx, from, cur, 4)
		if err != nil {
			t.Fatal(err)
		}
		if through < from {
			t.Fatalf("History(%d, %d) made no progress", from, cur)
		}
		got = append(got, evs...)
		from = through + 1
	}
	h.sink.mu.Lock()
	want := h.sink.events
	h.sink.mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("history has %d events, published %d", len(got), len(want))
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Fatalf("event %d from history:\n%v\npublished:\n%v", i, got[i], want[i])
		}
	}
	if err := h.store.Compact(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.History(ctx, 9, cur, 4); !errors.Is(err, backend.ErrCompacted) {
		t.Fatalf("history below the compact revision: %v", err)
	}
}
