package compact_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
	"github.com/kinelite/kinelite/compact"
)

func openStore(t testing.TB, path string) *backend.Store {
	t.Helper()
	d, err := sqlite.Open(sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s := backend.New(d, backend.Config{})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()); d.Close() })
	return s
}

func fill(t *testing.T, s *backend.Store, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte(fmt.Sprint("k", i%10)), Value: make([]byte, 512)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPhysicalCompactWaitsForDeletion(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	fill(t, s, 500)
	c := compact.New(s, compact.Config{BatchRevisions: 37})
	c.Start()
	defer c.Close()
	rev := s.CurrentRevision() - 5
	if err := c.Compact(context.Background(), rev, true); err != nil {
		t.Fatal(err)
	}
	if got := s.CompactedThrough(); got < rev {
		t.Fatalf("physical compaction returned with deletions at %d of %d", got, rev)
	}
	if _, revs := s.IndexStats(); revs > 10+5 {
		t.Fatalf("%d revisions left in the index after compacting all but the last 5", revs)
	}
}

// TestResumesAfterRestart: compaction progress is durable; a compactor
// started on a store whose compaction was cut short finishes it.
func TestResumesAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openStore(t, path)
	fill(t, s, 300)
	target := s.CurrentRevision()
	if err := s.Compact(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CompactStep(context.Background(), 50); err != nil { // a part only
		t.Fatal(err)
	}
	partial := s.CompactedThrough()
	if partial >= target {
		t.Fatalf("one step finished everything (%d of %d)", partial, target)
	}
	s.Close(context.Background())

	s2 := openStore(t, path)
	if s2.CompactedThrough() != partial || s2.CompactRevision() != target {
		t.Fatalf("after restart: progress %d compact %d; want %d, %d", s2.CompactedThrough(), s2.CompactRevision(), partial, target)
	}
	c := compact.New(s2, compact.Config{})
	c.Start()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for s2.CompactedThrough() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the compaction did not resume: progress %d of %d", s2.CompactedThrough(), target)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRetention compacts on a schedule, keeping MinRetain revisions.
func TestRetention(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	fill(t, s, 100)
	c := compact.New(s, compact.Config{Interval: 20 * time.Millisecond, MinRetain: 10})
	c.Start()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for s.CompactRevision() == 0 {
		fill(t, s, 1)
		if time.Now().After(deadline) {
			t.Fatal("retention never compacted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if cur, cr := s.CurrentRevision(), s.CompactRevision(); cur-cr < 10 {
		t.Fatalf("retention kept %d revisions, fewer than MinRetain 10", cur-cr)
	}
}

// TestReclaimGivesSpaceBack: after a large compaction the file shrinks, in
// small reclaim ops.
func TestReclaimGivesSpaceBack(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	for i := range 4000 {
		if _, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte(fmt.Sprint("big", i%4)), Value: make([]byte, 4096)}); err != nil {
			t.Fatal(err)
		}
	}
	c := compact.New(s, compact.Config{ReclaimInterval: 10 * time.Millisecond, FreeLimit: 1 << 20})
	c.Start()
	defer c.Close()
	if err := c.Compact(context.Background(), s.CurrentRevision(), true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		size, err := s.Size(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		free := size.Total - size.InUse
		if free <= 1<<20 || free <= size.Total/4 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("free space stays at %d of %d bytes", free, size.Total)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWALStaysBounded writes under a steady stream of readers, which keeps
// SQLite from starting its log over on its own: the compactor must do it.
func TestWALStaysBounded(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	c := compact.New(s, compact.Config{CheckpointInterval: 5 * time.Millisecond, WALFrames: 100, RestartFrames: 400})
	c.Start()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readersDone := make(chan struct{})
	go func() {
		defer close(readersDone)
		for ctx.Err() == nil {
			if _, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	}()
	// Tens of MiB of WAL: 400 frames is 1.6 MiB.
	for i := range 2000 {
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("k", i%500)), Value: make([]byte, 1024)}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-readersDone
	restarts := testutil.ToFloat64(c.Collectors()[3].(prometheus.Counter)) // kinelite_wal_restarts_total
	if restarts == 0 {
		t.Fatal("the log was never started over")
	}
	// With the writes over, the log ends short: restarted, or still
	// within RestartFrames.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := s.Checkpoint(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Frames <= 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log holds %d frames after %v restarts", r.Frames, restarts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
