package postgres_test

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/postgres"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

// openStore starts a store on dsn, closed when t ends.
// openDriver opens the PostgreSQL driver on dsn.
func openDriver(t *testing.T, dsn string) backend.SharedDriver {
	t.Helper()
	cfg, err := postgres.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	d, err := postgres.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d.(backend.SharedDriver)
}

func openStore(t *testing.T, dsn string) *backend.Store {
	t.Helper()
	s := backend.New(openDriver(t, dsn), backend.Config{})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestCompactionStepsSharedBetweenProcesses: two processes take turns at
// the steps of one compaction. A key put twice and then deleted below the
// compact revision must stay deleted on both, whichever process deleted
// which of its rows. (The process whose step deleted the tombstone used to
// keep the key's oldest entry, deleted by the other process's step, as its
// newest one: the key came back, and reading it failed on the missing
// row. Found by TestCrashMatrixPostgres in test/.)
func TestCompactionStepsSharedBetweenProcesses(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	ctx := context.Background()
	put := func(s *backend.Store, k, v string) int64 {
		t.Helper()
		resp, err := s.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(v)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	first := put(a, "k", "1") // 2
	put(a, "k", "2")          // 3: its prev is 2
	if _, err := a.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("k")}); err != nil {
		t.Fatal(err) // 4: the tombstone, prev 3
	}
	put(a, "x", "1")
	last := put(a, "x", "2")
	if err := a.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	step := func(s *backend.Store, n int64) {
		t.Helper()
		if _, _, err := s.CompactStep(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// b catches up with a first step of a's, so that it does not trim its
	// index at its own next step; a deletes the key's first row, b the
	// second and the tombstone.
	step(a, first-1)
	if _, err := b.Range(ctx, &pb.RangeRequest{Key: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	step(a, 2) // through 3: deletes row 2, the prev of 3
	step(b, 1) // through 4: deletes row 3, the prev of the tombstone
	step(b, last)
	if got := b.CompactedThrough(); got != last {
		t.Fatalf("compacted through %d, want %d", got, last)
	}
	for name, s := range map[string]*backend.Store{"a": a, "b": b} {
		resp, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
		if err != nil || len(resp.Kvs) != 0 {
			t.Errorf("%s: the deleted key reads as %v, %v", name, resp.GetKvs(), err)
		}
		resp, err = s.Range(ctx, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), CountOnly: true})
		if err != nil || resp.Count != 1 {
			t.Errorf("%s: %d keys (%v), want 1", name, resp.GetCount(), err)
		}
	}
}

// stepAfterState is a driver that runs step once, right after the first
// State it reads: another process's compaction step committed between the
// state and the scan of an index rebuild.
type stepAfterState struct {
	backend.SharedDriver
	step func()
}

func (d *stepAfterState) State(ctx context.Context) (backend.State, error) {
	st, err := d.SharedDriver.State(ctx)
	if d.step != nil {
		d.step()
		d.step = nil
	}
	return st, err
}

// TestRebuildDuringAnotherProcessCompaction: a process starts while another
// one's compaction step deletes a key's older rows and records the version
// of its oldest surviving one. Its index must still give the key its
// version. (The rebuild read the recorded versions before the step and the
// rows after it, and counted the key's versions from 1 again. Found by
// TestCrashMatrixPostgres in test/.)
func TestRebuildDuringAnotherProcessCompaction(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a := openStore(t, dsn)
	ctx := context.Background()
	var rev int64
	for _, v := range []string{"1", "2", "3", "4"} {
		resp, err := a.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte(v)})
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := a.Put(ctx, &pb.PutRequest{Key: []byte("x"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}

	wrapped := &stepAfterState{SharedDriver: openDriver(t, dsn), step: func() {
		if through, _, err := a.CompactStep(ctx, rev); err != nil || through != rev {
			t.Errorf("compaction step: through %d, %v", through, err)
		}
	}}
	b := backend.New(wrapped, backend.Config{})
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	for name, s := range map[string]*backend.Store{"a": a, "b": b} {
		resp, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Version != 4 {
			t.Errorf("%s: k reads as %v (%v), want version 4", name, resp.GetKvs(), err)
		}
	}
}

// TestRebuildDuringAnotherProcessLeaseGrant: a process starts while another
// one grants a lease and attaches a key to it. The lease keeps its TTL on
// both. (The rebuild read the leases before the grant and the key after
// it, took the lease for one of kine's, whose ID is its TTL, and wrote that
// TTL over the real one.)
func TestRebuildDuringAnotherProcessLeaseGrant(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a := openStore(t, dsn)
	ctx := context.Background()
	const id, ttl = 0x1234567890, 30
	wrapped := &stepAfterState{SharedDriver: openDriver(t, dsn), step: func() {
		if _, err := a.LeaseGrant(ctx, id, ttl); err != nil {
			t.Error(err)
		}
		if _, err := a.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: id}); err != nil {
			t.Error(err)
		}
	}}
	b := backend.New(wrapped, backend.Config{})
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	for name, s := range map[string]*backend.Store{"a": a, "b": b} {
		st, err := s.LeaseTimeToLive(ctx, id, true)
		if err != nil || st.GrantedTTL != ttl {
			t.Errorf("%s: lease %x: %+v, %v; want its TTL %d", name, id, st, err, ttl)
		}
	}
}
