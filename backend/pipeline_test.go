package backend_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
)

// syncGate holds every SyncCommitted until the test lets it go, counts the
// write transactions begun, and can make a sync fail.
type syncGate struct {
	backend.Driver
	entered chan struct{}
	release chan error
	begun   atomic.Int64
}

func (d *syncGate) Begin(ctx context.Context) (backend.Tx, error) {
	d.begun.Add(1)
	return d.Driver.Begin(ctx)
}

func (d *syncGate) SyncCommitted() error {
	d.entered <- struct{}{}
	if err := <-d.release; err != nil {
		return err
	}
	return d.Driver.SyncCommitted()
}

func openSyncGate(t *testing.T) (*backend.Store, *syncGate) {
	t.Helper()
	inner, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	d := &syncGate{Driver: inner, entered: make(chan struct{}), release: make(chan error)}
	s := backend.New(d, backend.Config{})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let any sync still waiting go, then stop.
		go func() {
			for range d.entered {
			}
		}()
		close(d.release)
		_ = s.Close(context.Background())
		_ = inner.Close()
		close(d.entered)
	})
	return s, d
}

type putResult struct {
	resp *pb.PutResponse
	err  error
}

func putAsync(s *backend.Store, key string, lease int64) chan putResult {
	c := make(chan putResult, 1)
	go func() {
		resp, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte(key), Value: []byte("v"), Lease: lease})
		c <- putResult{resp, err}
	}()
	return c
}

// TestCommitWaitsForSyncButNextGroupDoesNot shows, without timing, that a
// write is neither acknowledged nor visible before the sync of its group
// returns, and that the committer writes the next group while that sync
// runs.
func TestCommitWaitsForSyncButNextGroupDoesNot(t *testing.T) {
	s, d := openSyncGate(t)
	rev0 := s.CurrentRevision()

	first := putAsync(s, "a", 0)
	<-d.entered // a's group is committed; its sync is held
	if got := s.CurrentRevision(); got != rev0 {
		t.Fatalf("revision %d published before its sync (was %d)", got, rev0)
	}
	begun := d.begun.Load()
	second := putAsync(s, "b", 0)
	// b's group is written while a's sync is held: the committer begins its
	// transaction, commits it and hands it to the syncer, which is busy.
	giveUp := time.Now().Add(30 * time.Second)
	for d.begun.Load() == begun {
		if time.Now().After(giveUp) {
			t.Fatal("the committer did not write the next group while a sync was held")
		}
		select {
		case r := <-second:
			t.Fatalf("b acknowledged before any sync: %+v", r)
		case r := <-first:
			t.Fatalf("a acknowledged before its sync returned: %+v", r)
		default:
		}
		runtime.Gosched()
	}
	resp, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Fatalf("unsynced writes visible: %v", resp.Kvs)
	}

	d.release <- nil // a's sync
	ra := <-first
	if ra.err != nil || ra.resp.Header.Revision != rev0+1 {
		t.Fatalf("a: %+v", ra)
	}
	<-d.entered // b's sync
	d.release <- nil
	rb := <-second
	if rb.err != nil || rb.resp.Header.Revision != rev0+2 {
		t.Fatalf("b: %+v", rb)
	}
	if got := s.CurrentRevision(); got != rev0+2 {
		t.Fatalf("revision %d, want %d", got, rev0+2)
	}
}

// TestLeasePutWaitsForGrantInSync shows that a write naming a lease granted
// by a group still in its sync sees the grant: evaluation that reads the
// leases waits for the groups before it to be published.
func TestLeasePutWaitsForGrantInSync(t *testing.T) {
	s, d := openSyncGate(t)
	granted := make(chan error, 1)
	go func() {
		_, err := s.LeaseGrant(context.Background(), 42, 60)
		granted <- err
	}()
	<-d.entered // the grant is committed, not yet published
	put := putAsync(s, "k", 42)
	d.release <- nil
	if err := <-granted; err != nil {
		t.Fatal(err)
	}
	var r putResult
	select {
	case <-d.entered: // the put's group
		d.release <- nil
		r = <-put
	case r = <-put: // refused without a commit
	}
	if r.err != nil {
		t.Fatalf("put with a lease granted just before: %v", r.err)
	}
}

// TestFailedSyncRefusesWrites: when a sync fails, the writes of its group are
// refused with Unavailable, never published, and every later write is refused
// too; reads go on at the last durable revision.
func TestFailedSyncRefusesWrites(t *testing.T) {
	s, d := openSyncGate(t)
	rev0 := s.CurrentRevision()
	first := putAsync(s, "a", 0)
	<-d.entered
	d.release <- errors.New("injected EIO")
	r := <-first
	if !errors.Is(r.err, backend.ErrUnavailable) {
		t.Fatalf("put whose sync failed: %+v, want ErrUnavailable", r)
	}
	if _, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte("b"), Value: []byte("v")}); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("put after a failed sync: %v, want ErrUnavailable", err)
	}
	if got := s.CurrentRevision(); got != rev0 {
		t.Fatalf("revision %d after a failed sync, want %d", got, rev0)
	}
	resp, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
	if err != nil || resp.Count != 0 {
		t.Fatalf("range after a failed sync: %v %v", resp, err)
	}
}

// TestCompactIsPublishedBeforeTheNextGroup: a group holding a Compact is
// published before the committer evaluates the next one, so a transaction
// queued behind it reads the new compact revision.
func TestCompactIsPublishedBeforeTheNextGroup(t *testing.T) {
	s, d := openSyncGate(t)
	ctx := context.Background()
	for i := range 3 {
		put := putAsync(s, "a", 0)
		<-d.entered
		d.release <- nil
		if r := <-put; r.err != nil {
			t.Fatal(i, r.err)
		}
	}
	rev := s.CurrentRevision()
	compacted := make(chan error, 1)
	go func() { compacted <- s.Compact(ctx, rev) }()
	<-d.entered // the Compact is committed, not yet published
	txn := make(chan error, 1)
	go func() {
		_, err := s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Value: []byte("v")}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: rev - 1}}},
		}})
		txn <- err
	}()
	d.release <- nil
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case <-d.entered: // the txn's group, if it wrote
		d.release <- nil
		err = <-txn
	case err = <-txn:
	}
	if !errors.Is(err, backend.ErrCompacted) {
		t.Fatalf("txn reading below a compact revision committed before it: %v, want ErrCompacted", err)
	}
}

// TestWriteBehindCompactionStepDoesNotWaitForItsSync: a compaction step
// waits for the groups before it, but the group queued behind it is written
// while the step syncs, so that write waits for one sync less.
func TestWriteBehindCompactionStepDoesNotWaitForItsSync(t *testing.T) {
	s, d := openSyncGate(t)
	ctx := context.Background()
	for i := range 4 {
		put := putAsync(s, "a", 0)
		<-d.entered
		d.release <- nil
		if r := <-put; r.err != nil {
			t.Fatal(i, r.err)
		}
	}
	rev := s.CurrentRevision()
	compacted := make(chan error, 1)
	go func() { compacted <- s.Compact(ctx, rev) }()
	<-d.entered
	d.release <- nil
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}

	type stepResult struct {
		deleted int
		err     error
	}
	stepped := make(chan stepResult, 1)
	go func() {
		_, n, err := s.CompactStep(ctx, rev)
		stepped <- stepResult{n, err}
	}()
	<-d.entered // the step is committed; its sync is held
	begun := d.begun.Load()
	put := putAsync(s, "b", 0)
	giveUp := time.Now().Add(30 * time.Second)
	for d.begun.Load() == begun {
		if time.Now().After(giveUp) {
			t.Fatal("the write behind a compaction step waited for the step's sync")
		}
		select {
		case r := <-stepped:
			t.Fatalf("step returned before its sync: %+v", r)
		default:
		}
		runtime.Gosched()
	}
	d.release <- nil // the step's sync
	if r := <-stepped; r.err != nil || r.deleted != 3 {
		t.Fatalf("step: %+v, want 3 rows deleted", r)
	}
	<-d.entered // the write's sync
	d.release <- nil
	if r := <-put; r.err != nil || r.resp.Header.Revision != rev+1 {
		t.Fatalf("write behind the step: %+v, want revision %d", r, rev+1)
	}
	if keys, revs := s.IndexStats(); keys != 2 || revs != 2 {
		t.Fatalf("index holds %d keys, %d revisions; want 2, 2", keys, revs)
	}
}
