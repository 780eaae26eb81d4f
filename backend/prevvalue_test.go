package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
	"github.com/kinelite/kinelite/watchhub"
)

// countingDriver counts the reads of stored values by revision.
type countingDriver struct {
	backend.Driver
	reads atomic.Int64
}

func (d *countingDriver) Values(ctx context.Context, ids []int64) (map[int64][]byte, error) {
	d.reads.Add(int64(len(ids)))
	return d.Driver.Values(ctx, ids)
}

// TestPrevValuesFromRecentEvents checks that a write's previous value comes
// from the watch hub's ring while the ring holds it and from the database
// once it does not, the same either way.
func TestPrevValuesFromRecentEvents(t *testing.T) {
	ctx := context.Background()
	inner, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	d := &countingDriver{Driver: inner}
	s := backend.New(d, backend.Config{})
	s.SetEventSink(watchhub.New(s, watchhub.Config{RingEvents: 4}))
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close(ctx); d.Close() }()
	put := func(key, value string) *pb.PutResponse {
		t.Helper()
		resp, err := s.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte(value), PrevKv: true})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	put("old", "old-1")
	for i := range 4 { // push "old" out of the ring
		put(fmt.Sprint("k", i), "v")
	}
	d.reads.Store(0)
	if resp := put("k3", "v2"); string(resp.PrevKv.GetValue()) != "v" || d.reads.Load() != 0 {
		t.Fatalf("recent previous value %q with %d database reads; want %q from the ring", resp.PrevKv.GetValue(), d.reads.Load(), "v")
	}
	if resp := put("old", "old-2"); string(resp.PrevKv.GetValue()) != "old-1" || d.reads.Load() != 1 {
		t.Fatalf("evicted previous value %q with %d database reads; want %q from the database", resp.PrevKv.GetValue(), d.reads.Load(), "old-1")
	}
	// A Txn that writes a key twice sees its own first write.
	resp, err := s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k0"), Value: []byte("a")}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k0"), Value: []byte("b"), PrevKv: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Responses[1].GetResponsePut().PrevKv.GetValue(); string(got) != "a" {
		t.Fatalf("second put of a txn has previous value %q; want %q", got, "a")
	}
}
