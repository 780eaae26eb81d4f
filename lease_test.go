package kinelite_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestLeaseGrantRevokeAndKeys(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client

	l := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 60))
	if l.ID == 0 || l.TTL != 60 {
		t.Fatalf("grant: %+v", l)
	}
	if short := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 1)); short.TTL != 2 {
		t.Fatalf("TTL 1 granted as %d, want etcd's minimum 2", short.TTL)
	}
	if _, err := c.Grant(ctx, 9_000_000_001); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("TTL too large: %v", err)
	}

	must[*clientv3.PutResponse](t)(c.Put(ctx, "l/a", "1", clientv3.WithLease(l.ID)))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "l/b", "2", clientv3.WithLease(l.ID)))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "l/c", "3", clientv3.WithLease(l.ID)))
	// Moving a key to no lease detaches it from the old one.
	must[*clientv3.PutResponse](t)(c.Put(ctx, "l/c", "3"))

	ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(c.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys()))
	var keys []string
	for _, k := range ttl.Keys {
		keys = append(keys, string(k))
	}
	if !slices.Equal(keys, []string{"l/a", "l/b"}) || ttl.GrantedTTL != 60 || ttl.TTL <= 0 || ttl.TTL > 60 {
		t.Fatalf("time to live: %+v keys %v", ttl, keys)
	}
	leases := must[*clientv3.LeaseLeasesResponse](t)(c.Leases(ctx))
	if len(leases.Leases) != 2 {
		t.Fatalf("leases: %+v", leases.Leases)
	}

	w := c.Watch(ctx, "l/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	rev := must[*clientv3.LeaseRevokeResponse](t)(c.Revoke(ctx, l.ID)).Header.Revision
	var deleted []string
	for len(deleted) < 2 {
		wr := <-w
		for _, ev := range wr.Events {
			if ev.Type != mvccpb.DELETE || ev.PrevKv == nil {
				t.Fatalf("revoke event %+v", ev)
			}
			deleted = append(deleted, string(ev.Kv.Key))
		}
	}
	if !slices.Equal(deleted, []string{"l/a", "l/b"}) {
		t.Fatalf("revoke deleted %v", deleted)
	}
	g := must[*clientv3.GetResponse](t)(c.Get(ctx, "l/", clientv3.WithPrefix()))
	if !slices.Equal(keysOf(g.Kvs), []string{"l/c"}) || g.Header.Revision != rev {
		t.Fatalf("after revoke: %v at %d (revoke said %d)", keysOf(g.Kvs), g.Header.Revision, rev)
	}
	if _, err := c.Revoke(ctx, l.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if r := must[*clientv3.LeaseTimeToLiveResponse](t)(c.TimeToLive(ctx, l.ID)); r.TTL != -1 {
		t.Fatalf("time to live of a revoked lease: %d, want -1", r.TTL)
	}
}

func TestLeaseClientChosenID(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	kv := ts.client
	// The raw API lets a client pick the ID.
	raw := rawLease(t, ts)
	if r, err := raw.LeaseGrant(ctx, leaseGrant(4242, 30)); err != nil || r.ID != 4242 {
		t.Fatalf("grant with ID 4242: %+v, %v", r, err)
	}
	if _, err := raw.LeaseGrant(ctx, leaseGrant(4242, 30)); rpctypes.Error(err) != rpctypes.ErrLeaseExist {
		t.Fatalf("duplicate ID: %v", err)
	}
	must[*clientv3.PutResponse](t)(kv.Put(ctx, "k", "v", clientv3.WithLease(4242)))
}

func TestLeaseExpiryDeletesKeys(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	l := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 2))
	put := must[*clientv3.PutResponse](t)(c.Put(ctx, "short", "lived", clientv3.WithLease(l.ID)))
	w := c.Watch(ctx, "short", clientv3.WithRev(put.Header.Revision+1), clientv3.WithPrevKV())
	wr := <-w
	if len(wr.Events) != 1 || wr.Events[0].Type != mvccpb.DELETE || string(wr.Events[0].PrevKv.Value) != "lived" {
		t.Fatalf("expiry event: %+v", wr.Events)
	}
	if g := must[*clientv3.GetResponse](t)(c.Get(ctx, "short")); len(g.Kvs) != 0 {
		t.Fatalf("key survives its lease: %+v", g.Kvs)
	}
}

func TestLeaseKeepAliveAndMoveBetweenLeases(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	a := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 2))
	b := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 60))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "moved", "1", clientv3.WithLease(a.ID)))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "moved", "2", clientv3.WithLease(b.ID)))
	ka := must[<-chan *clientv3.LeaseKeepAliveResponse](t)(c.KeepAlive(ctx, b.ID))
	if r := <-ka; r == nil || r.TTL != 60 {
		t.Fatalf("keep-alive: %+v", r)
	}
	// a expires; the key moved to b must stay.
	w := c.Watch(ctx, "moved", clientv3.WithRev(1))
	for {
		if r := must[*clientv3.LeaseTimeToLiveResponse](t)(c.TimeToLive(ctx, a.ID)); r.TTL == -1 {
			break
		}
		select {
		case wr := <-w:
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					t.Fatalf("a key moved to another lease was deleted with the old one")
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	if g := must[*clientv3.GetResponse](t)(c.Get(ctx, "moved")); len(g.Kvs) != 1 || g.Kvs[0].Lease != int64(b.ID) {
		t.Fatalf("moved key: %+v", g.Kvs)
	}
	// Keep-alive of an unknown lease answers TTL 0.
	raw := rawLease(t, ts)
	stream, err := raw.LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(keepAlive(a.ID)); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.TTL != 0 {
		t.Fatalf("keep-alive of an expired lease: %+v, %v", r, err)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	l := must[*clientv3.LeaseGrantResponse](t)(ts.client.Grant(ctx, 3600))
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "event", "e", clientv3.WithLease(l.ID)))
	ts.restart()
	r := must[*clientv3.LeaseTimeToLiveResponse](t)(ts.client.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys()))
	if r.TTL <= 0 || len(r.Keys) != 1 || string(r.Keys[0]) != "event" {
		t.Fatalf("lease after restart: %+v", r)
	}
	// The apiserver keeps using a lease ID across our restart.
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "event2", "e", clientv3.WithLease(l.ID)))
}

func rawLease(t *testing.T, ts *testServer) pb.LeaseClient {
	return pb.NewLeaseClient(ts.client.ActiveConnection())
}

func leaseGrant(id, ttl int64) *pb.LeaseGrantRequest { return &pb.LeaseGrantRequest{ID: id, TTL: ttl} }

func keepAlive(id clientv3.LeaseID) *pb.LeaseKeepAliveRequest {
	return &pb.LeaseKeepAliveRequest{ID: int64(id)}
}
