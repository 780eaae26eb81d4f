package kinelite_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kinelite/kinelite"
)

func TestStatusMemberListHealth(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	must[*clientv3.PutResponse](t)(c.Put(ctx, "a", "b"))
	ep := ts.srv.Endpoints()[0]
	st := must[*clientv3.StatusResponse](t)(c.Status(ctx, ep))
	if st.Version != "3.6.11" || st.DbSize <= 0 || st.DbSizeInUse <= 0 || st.Leader != st.Header.MemberId || st.Header.Revision != 2 {
		t.Fatalf("status: %+v", st)
	}
	ml := must[*clientv3.MemberListResponse](t)(c.MemberList(ctx))
	if len(ml.Members) != 1 || ml.Members[0].ClientURLs[0] != ep || ml.Members[0].ID != st.Header.MemberId {
		t.Fatalf("member list: %+v", ml.Members)
	}
	h, err := healthpb.NewHealthClient(c.ActiveConnection()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %+v, %v", h, err)
	}
	if _, err := c.Defragment(ctx, ep); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	if g := must[*clientv3.GetResponse](t)(c.Get(ctx, "a")); string(g.Kvs[0].Value) != "b" {
		t.Fatal("defragment lost data")
	}
	if a := must[*clientv3.AlarmResponse](t)(c.AlarmList(ctx)); len(a.Alarms) != 0 {
		t.Fatalf("alarms: %+v", a.Alarms)
	}
	if a := must[*clientv3.AuthStatusResponse](t)(c.AuthStatus(ctx)); a.Enabled {
		t.Fatal("auth reported enabled")
	}
	snap, err := c.Snapshot(ctx)
	if err == nil {
		_, err = io.Copy(io.Discard, snap)
	}
	if status.Code(err) != codes.Unimplemented && !isUnimplementedText(err) {
		t.Fatalf("snapshot: %v, want Unimplemented", err)
	}
	if _, err := c.MemberAdd(ctx, []string{"http://127.0.0.1:2380"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("member add: %v", err)
	}
}

func isUnimplementedText(err error) bool {
	return err != nil && status.Convert(err).Code() == codes.Unimplemented
}

func TestEmulatedVersionIsConfigurable(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) { c.EmulatedETCDVersion = "3.5.13" })
	st := must[*clientv3.StatusResponse](t)(ts.client.Status(ctxT(t), ts.srv.Endpoints()[0]))
	if st.Version != "3.5.13" {
		t.Fatalf("version %q", st.Version)
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "kl") // short: unix socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "etcd.sock")
	ts := startServer(t, func(c *kinelite.Config) { c.ListenAddress = "unix://" + sock })
	if ep := ts.srv.Endpoints()[0]; ep != "unix://"+sock {
		t.Fatalf("endpoint %q", ep)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	ctx := ctxT(t)
	must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "via", "socket"))
	if g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "via")); string(g.Kvs[0].Value) != "socket" {
		t.Fatalf("get over the socket: %+v", g.Kvs)
	}
	w := ts.client.Watch(ctx, "via", clientv3.WithRev(1))
	if evs := collect(t, w, 1); string(evs[0].Kv.Value) != "socket" {
		t.Fatalf("watch over the socket: %+v", evs)
	}
}

func TestRangeStream(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	const n = 300
	for i := range n {
		must[*clientv3.PutResponse](t)(c.Put(ctx, fmt.Sprintf("/s/%04d", i), fmt.Sprint(i)))
	}
	kv := pb.NewKVClient(c.ActiveConnection())
	read := func(r *pb.RangeRequest) ([]*pb.RangeResponse, int) {
		stream, err := kv.RangeStream(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		var chunks []*pb.RangeResponse
		total := 0
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return chunks, total
			}
			if err != nil {
				t.Fatal(err)
			}
			chunks = append(chunks, msg.RangeResponse)
			total += len(msg.RangeResponse.Kvs)
		}
	}
	end := []byte(clientv3.GetPrefixRangeEnd("/s/"))
	chunks, total := read(&pb.RangeRequest{Key: []byte("/s/"), RangeEnd: end})
	last := chunks[len(chunks)-1]
	if total != n || len(chunks) < 2 || len(chunks[0].Kvs) != 10 || last.Count != n || last.More || last.Header == nil {
		t.Fatalf("%d chunks, %d kvs, first %d, last %+v", len(chunks), total, len(chunks[0].Kvs), last.Header)
	}
	for _, ch := range chunks[:len(chunks)-1] {
		if ch.Header != nil || ch.Count != 0 {
			t.Fatal("a chunk before the last carries a header or count")
		}
	}
	chunks, total = read(&pb.RangeRequest{Key: []byte("/s/"), RangeEnd: end, Limit: 25})
	last = chunks[len(chunks)-1]
	if total != 25 || !last.More || last.Count != n {
		t.Fatalf("limit 25: %d kvs, more %v, count %d", total, last.More, last.Count)
	}
	chunks, _ = read(&pb.RangeRequest{Key: []byte("/s/"), RangeEnd: end, CountOnly: true})
	if len(chunks) != 1 || chunks[0].Count != n {
		t.Fatalf("count only: %+v", chunks)
	}
	stream, err := kv.RangeStream(ctx, &pb.RangeRequest{Key: []byte("/s/"), RangeEnd: end, SortOrder: pb.RangeRequest_DESCEND})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("sorted RangeStream: %v, want Unimplemented", err)
	}
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
