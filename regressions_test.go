package kinelite_test

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Regressions for differences from etcd found by the differential tests in
// test/. Each pins etcd's behaviour in the product's own suite.

func TestSortTargetWithoutOrderIsAscending(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	for k, v := range map[string]string{"a": "3", "b": "1", "c": "2"} {
		must[*clientv3.PutResponse](t)(ts.client.Put(ctx, k, v))
	}
	kv := pb.NewKVClient(ts.client.ActiveConnection())
	resp, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_VALUE})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(resp.Kvs); got[0] != "b" || got[1] != "c" || got[2] != "a" {
		t.Fatalf("sort by value with no order = %v, want ascending by value [b c a]", got)
	}
}

func TestKeysOnlyLeavesLeaseOut(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	l := must[*clientv3.LeaseGrantResponse](t)(ts.client.Grant(ctx, 60))
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "k", "v", clientv3.WithLease(l.ID)))
	g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "k", clientv3.WithKeysOnly()))
	if g.Kvs[0].Lease != 0 || g.Kvs[0].Version != 1 {
		t.Fatalf("keys only: %+v; etcd 3.7 reports lease 0", g.Kvs[0])
	}
	if g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "k")); g.Kvs[0].Lease != int64(l.ID) {
		t.Fatalf("a full read lost the lease: %+v", g.Kvs[0])
	}
}

func TestWatchAtCompactRevisionHasNoCompactedPrevKV(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "k", "1"))
	rev := must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "k", "2")).Header.Revision
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "k", "3"))
	must[*clientv3.CompactResponse](t)(ts.client.Compact(ctx, rev))
	evs := collect(t, ts.client.Watch(ctx, "k", clientv3.WithRev(rev), clientv3.WithPrevKV()), 2)
	if evs[0].PrevKv != nil {
		t.Fatalf("event at the compact revision carries prev_kv %+v; etcd reads it below the compact revision and leaves it out", evs[0].PrevKv)
	}
	if evs[1].PrevKv == nil || string(evs[1].PrevKv.Value) != "2" {
		t.Fatalf("event after the compact revision: prev_kv %+v", evs[1].PrevKv)
	}
}

func TestCompactZeroOnFreshStore(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	if _, err := ts.client.Compact(ctx, 0); err != nil {
		t.Fatalf("Compact(0) on a fresh store: %v; etcd accepts it", err)
	}
	if _, err := ts.client.Compact(ctx, 0); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("second Compact(0): %v, want ErrCompacted", err)
	}
	// etcd remembers it across a restart.
	ts.restart()
	if _, err := ts.client.Compact(ctx, 0); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("Compact(0) after a restart: %v, want ErrCompacted", err)
	}
}

// TestTombstoneAtCompactRevisionIsKept: etcd keeps a delete that happened at
// the compact revision, so a watch from the compact revision starts with it,
// even when served from the database; the next compaction removes it.
func TestTombstoneAtCompactRevisionIsKept(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "1"))
	at := must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "k")).Header.Revision
	must[*clientv3.PutResponse](t)(c.Put(ctx, "j", "1"))
	must[*clientv3.CompactResponse](t)(c.Compact(ctx, at, clientv3.WithCompactPhysical()))
	ts.restart() // the watch history is empty: events come from the table
	evs := collect(t, ts.client.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(at)), 2)
	if evs[0].Type != clientv3.EventTypeDelete || string(evs[0].Kv.Key) != "k" || evs[0].Kv.ModRevision != at {
		t.Fatalf("watch from the compact revision starts with %+v, want the DELETE of k at %d", evs[0], at)
	}
	rows := ts.countRows()
	cur := must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "j", "2")).Header.Revision
	must[*clientv3.CompactResponse](t)(ts.client.Compact(ctx, cur, clientv3.WithCompactPhysical()))
	// The next compaction removes the tombstone and j's first version.
	if after := ts.countRows(); after != rows-1 {
		t.Fatalf("rows %d → %d after the next compaction; want the old tombstone gone", rows, after)
	}
}
