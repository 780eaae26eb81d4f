package kinelite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite"
)

// collect reads events from a watch channel until n have arrived.
func collect(t *testing.T, w clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var out []*clientv3.Event
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case wr, ok := <-w:
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(out), n)
			}
			if err := wr.Err(); err != nil {
				t.Fatalf("watch error after %d events: %v", len(out), err)
			}
			out = append(out, wr.Events...)
		case <-timeout:
			t.Fatalf("timed out with %d of %d events", len(out), n)
		}
	}
	return out
}

func TestWatchFromRevisionWithPrevKV(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	first := must[*clientv3.PutResponse](t)(c.Put(ctx, "/w/a", "1")).Header.Revision
	must[*clientv3.PutResponse](t)(c.Put(ctx, "/w/a", "2"))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "/other", "x"))
	must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "/w/a"))

	evs := collect(t, c.Watch(ctx, "/w/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithPrevKV()), 3)
	if evs[0].Type != mvccpb.PUT || !evs[0].IsCreate() || evs[0].PrevKv != nil {
		t.Fatalf("create event: %+v", evs[0])
	}
	if !evs[1].IsModify() || string(evs[1].PrevKv.Value) != "1" || string(evs[1].Kv.Value) != "2" || evs[1].Kv.Version != 2 {
		t.Fatalf("update event: %+v", evs[1])
	}
	if evs[2].Type != mvccpb.DELETE || string(evs[2].PrevKv.Value) != "2" || evs[2].Kv.ModRevision != first+3 {
		t.Fatalf("delete event: %+v", evs[2])
	}

	// Without prev_kv, no previous values.
	evs = collect(t, c.Watch(ctx, "/w/a", clientv3.WithRev(first+1)), 2)
	if evs[0].PrevKv != nil || evs[1].PrevKv != nil {
		t.Fatal("prev_kv sent to a watch that did not ask for it")
	}
}

func TestWatchNowFutureFiltersCancel(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "old"))
	now := c.Watch(ctx, "k")
	cur := must[*clientv3.GetResponse](t)(c.Get(ctx, "k")).Header.Revision
	future := c.Watch(ctx, "k", clientv3.WithRev(cur+2))
	noPut := c.Watch(ctx, "k", clientv3.WithFilterPut(), clientv3.WithRev(cur))

	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "a"))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "b"))
	must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "k"))

	if evs := collect(t, now, 3); string(evs[0].Kv.Value) != "a" {
		t.Fatalf("watch from now starts with %+v", evs[0])
	}
	if evs := collect(t, future, 2); string(evs[0].Kv.Value) != "b" || evs[1].Type != mvccpb.DELETE {
		t.Fatalf("future watch: %+v", evs)
	}
	if evs := collect(t, noPut, 1); evs[0].Type != mvccpb.DELETE {
		t.Fatalf("NOPUT watch got %+v", evs[0])
	}

	// Cancel through the raw API: the server answers canceled.
	stream, err := pb.NewWatchClient(c.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *pb.WatchRequest) {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *pb.WatchResponse {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}})
	created := recv()
	if !created.Created || created.WatchId != 0 || created.Header.Revision == 0 {
		t.Fatalf("created: %+v", created)
	}
	send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k"), WatchId: 7}}})
	if r := recv(); !r.Created || r.WatchId != 7 {
		t.Fatalf("client-chosen ID: %+v", r)
	}
	send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k"), WatchId: 7}}})
	if r := recv(); !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason == "" {
		t.Fatalf("duplicate ID: %+v", r)
	}
	send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}}})
	if r := recv(); !r.Canceled || r.WatchId != -1 {
		t.Fatalf("empty range: %+v", r)
	}
	send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 0}}})
	if r := recv(); !r.Canceled || r.WatchId != 0 {
		t.Fatalf("cancel: %+v", r)
	}
}

func TestWatchProgressRequestAndCompaction(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) { c.WatchProgressNotifyInterval = 200 * time.Millisecond })
	ctx := ctxT(t)
	c := ts.client
	for i := range 5 {
		must[*clientv3.PutResponse](t)(c.Put(ctx, "p", fmt.Sprint(i)))
	}
	wctx := clientv3.WithRequireLeader(ctx)
	w := c.Watch(wctx, "p", clientv3.WithProgressNotify(), clientv3.WithRev(2))
	collect(t, w, 5)
	cur := must[*clientv3.GetResponse](t)(c.Get(ctx, "p")).Header.Revision
	if err := c.RequestProgress(wctx); err != nil {
		t.Fatal(err)
	}
	// The progress notification (requested or periodic) reports the current
	// revision once every event up to it has been sent.
	select {
	case wr := <-w:
		if !wr.IsProgressNotify() || wr.Header.Revision != cur {
			t.Fatalf("progress: %+v", wr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress notification")
	}

	// A watch below the compact revision is canceled with it.
	must[*clientv3.CompactResponse](t)(c.Compact(ctx, cur))
	wr := <-c.Watch(ctx, "p", clientv3.WithRev(2))
	if wr.CompactRevision != cur || wr.Err() != rpctypes.ErrCompacted {
		t.Fatalf("compacted watch: compact_revision %d err %v", wr.CompactRevision, wr.Err())
	}
	// Starting at the compact revision itself is allowed.
	nw := c.Watch(ctx, "p", clientv3.WithRev(cur))
	if evs := collect(t, nw, 1); evs[0].Kv.ModRevision != cur {
		t.Fatalf("watch at the compact revision: %+v", evs)
	}
}

// TestWatchResumesAcrossRestart: when the server stops, client/v3 resumes
// every watch from its next revision, and no event is lost.
func TestWatchResumesAcrossRestart(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) { c.ListenAddress = freePort(t) })
	ctx := ctxT(t)
	client := newClient(t, ts.srv.Endpoints()) // survives the restart
	defer client.Close()
	w := client.Watch(ctx, "r/", clientv3.WithPrefix(), clientv3.WithRev(1))
	must[*clientv3.PutResponse](t)(client.Put(ctx, "r/1", "a"))
	collect(t, w, 1)
	ts.restart()
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "r/2", "b"))
	evs := collect(t, w, 1)
	if string(evs[0].Kv.Key) != "r/2" {
		t.Fatalf("after restart the watch resumed with %+v", evs[0])
	}
}

func TestWatchManyOnOneStreamInOrder(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	c := ts.client
	const watchers, writes = 20, 200
	chans := make([]clientv3.WatchChan, watchers)
	for i := range chans {
		chans[i] = c.Watch(ctx, "o/", clientv3.WithPrefix())
	}
	// Let every watch be created before writing.
	if err := c.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		<-ch
	}
	for i := range writes {
		must[*clientv3.PutResponse](t)(c.Put(ctx, fmt.Sprintf("o/%d", i%7), fmt.Sprint(i)))
	}
	for _, ch := range chans {
		evs := collect(t, ch, writes)
		for i, ev := range evs {
			if string(ev.Kv.Value) != fmt.Sprint(i) {
				t.Fatalf("event %d carries %q", i, ev.Kv.Value)
			}
		}
	}
}
