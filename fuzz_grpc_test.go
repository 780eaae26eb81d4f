package kinelite_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/server"
)

// FuzzGRPCRequests decodes its input into a sequence of etcd requests (Range,
// Put, DeleteRange, Txn with nested transactions and arbitrary compares,
// Compact, the Lease calls and KeepAlive streams, watch streams with
// creates, cancels and progress requests, RangeStream, and raw protobuf) and
// sends them to one in-process kinelite over a real gRPC connection. Every
// answer must be a success or a gRPC status with an etcd-style code and
// message; a refused write changes nothing (the revision stays); the server
// answers afterwards; and the database passes the invariant check every so
// often and at the end.
//
// Fuzz it with, for example:
//
//	go test -run '^$' -fuzz FuzzGRPCRequests -fuzztime 5m -parallel 1 .
//
// Plain `go test` replays testdata/fuzz/FuzzGRPCRequests.
func FuzzGRPCRequests(f *testing.F) {
	for _, seed := range grpcFuzzSeeds() {
		f.Add(seed)
	}
	fz := newGRPCFuzzer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fz.run(t, data)
	})
}

// grpcFuzzer is one server and one connection, shared by the inputs a fuzz
// process runs (starting a server per input would be too slow to fuzz).
type grpcFuzzer struct {
	srv      *kinelite.Server
	endpoint string
	conn     *grpc.ClientConn
	kv       pb.KVClient
	lease    pb.LeaseClient
	watch    pb.WatchClient
	maint    pb.MaintenanceClient

	mu    sync.Mutex // one input at a time
	runs  int
	short map[int64]bool // leases granted with a short TTL: keys never go on them
	long  []int64        // leases granted with a long TTL
}

func newGRPCFuzzer(f *testing.F) *grpcFuzzer {
	dir := f.TempDir()
	endpoint := "sqlite://" + filepath.Join(dir, "fuzz.db")
	srv, err := kinelite.Open(context.Background(), kinelite.Config{
		Endpoint:      endpoint,
		ListenAddress: "127.0.0.1:0",
		NoFsync:       true, // durability is not what this test is about
	})
	if err != nil {
		f.Fatal(err)
	}
	target := strings.TrimPrefix(srv.Endpoints()[0], "http://")
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		f.Fatal(err)
	}
	fz := &grpcFuzzer{srv: srv, endpoint: endpoint, conn: conn, kv: pb.NewKVClient(conn), lease: pb.NewLeaseClient(conn),
		watch: pb.NewWatchClient(conn), maint: pb.NewMaintenanceClient(conn), short: map[int64]bool{}}
	f.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			f.Errorf("close: %v", err)
		}
		fz.check(f)
	})
	return fz
}

// check runs the database checker (online, read-only).
func (fz *grpcFuzzer) check(t testing.TB) {
	t.Helper()
	rep, err := kinelite.Check(context.Background(), fz.endpoint)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("check: %s\n%s", rep.Summary(), strings.Join(rep.Problems, "\n"))
	}
}

func (fz *grpcFuzzer) run(t *testing.T, data []byte) {
	fz.mu.Lock()
	defer fz.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := &fuzzInput{data: data}
	for steps := 0; in.more() && steps < 32; steps++ {
		fz.step(ctx, t, in)
	}
	// The server still answers.
	if _, err := fz.kv.Range(ctx, &pb.RangeRequest{Key: []byte("health")}); err != nil {
		t.Fatalf("the server no longer answers: %v", err)
	}
	if _, err := fz.maint.Status(ctx, &pb.StatusRequest{}); err != nil {
		t.Fatalf("status: %v", err)
	}
	fz.runs++
	if fz.runs%2000 == 0 {
		fz.check(t)
	}
}

// step sends one request (or runs one stream) and checks the answer.
func (fz *grpcFuzzer) step(ctx context.Context, t *testing.T, in *fuzzInput) {
	op := in.byte() % 14
	before := fz.srv.Revision()
	var err error
	write := true // a failed write must change nothing
	switch op {
	case 0, 1:
		write = false
		_, err = fz.kv.Range(ctx, fz.rangeReq(in, before))
	case 2, 3:
		_, err = fz.kv.Put(ctx, fz.putReq(in))
	case 4:
		_, err = fz.kv.DeleteRange(ctx, fz.deleteReq(in))
	case 5, 6:
		_, err = fz.kv.Txn(ctx, fz.txnReq(in, before, 0))
	case 7:
		// Compacting moves no revision; physical waits for the deletions.
		_, err = fz.kv.Compact(ctx, &pb.CompactionRequest{Revision: fz.revision(in, before), Physical: in.bool()})
	case 8:
		write = false // a grant's success or failure moves no revision
		ttl := fz.ttl(in)
		var resp *pb.LeaseGrantResponse
		resp, err = fz.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: fz.leaseID(in, false), TTL: ttl})
		if err == nil {
			if resp.TTL < 1000 {
				fz.short[resp.ID] = true
			} else if !fz.short[resp.ID] {
				fz.long = append(fz.long, resp.ID)
			}
		}
	case 9:
		write = false // a revoke deletes the lease's keys
		_, err = fz.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: fz.leaseID(in, true)})
	case 10:
		write = false
		switch in.byte() % 3 {
		case 0:
			_, err = fz.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: fz.leaseID(in, true), Keys: in.bool()})
		case 1:
			_, err = fz.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
		default:
			err = fz.keepAlive(ctx, in)
		}
	case 11:
		write = false
		err = fz.watchSession(ctx, t, in)
	case 12:
		write = false
		err = fz.rangeStream(ctx, in, before)
	case 13:
		err = fz.raw(ctx, in)
	}
	if os.Getenv("FUZZ_DEBUG") != "" { // triage: FUZZ_DEBUG=1 go test -v -run FuzzGRPCRequests/ID
		t.Logf("op %d: rev %d -> %d: %v", op, before, fz.srv.Revision(), err)
	}
	if err == nil {
		return
	}
	checkStatus(t, err)
	if write {
		if after := fz.srv.Revision(); after != before {
			t.Fatalf("a refused request (%v) moved the revision from %d to %d", err, before, after)
		}
	}
}

// checkStatus fails unless err is a gRPC status of the kind etcd answers.
func checkStatus(t *testing.T, err error) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a gRPC status: %T %v", err, err)
	}
	switch st.Code() {
	case codes.OK, codes.Unknown, codes.Internal, codes.DataLoss:
		t.Fatalf("error with code %v: %v", st.Code(), err)
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.NotFound, codes.AlreadyExists:
		if !strings.HasPrefix(st.Message(), "etcdserver: ") && !strings.HasPrefix(st.Message(), "mvcc: ") {
			t.Fatalf("etcd's codes come with etcd's messages: %v", err)
		}
	case codes.ResourceExhausted, codes.Unimplemented, codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
	default:
		t.Fatalf("unexpected code %v: %v", st.Code(), err)
	}
	if st.Code() == codes.DeadlineExceeded {
		t.Fatalf("a request took longer than the test allows: %v", err)
	}
}

// Decoding.

type fuzzInput struct {
	data []byte
	pos  int
}

func (in *fuzzInput) more() bool { return in.pos < len(in.data) }

func (in *fuzzInput) byte() byte {
	if in.pos >= len(in.data) {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

func (in *fuzzInput) bool() bool { return in.byte()&1 == 1 }

func (in *fuzzInput) int64() int64 {
	var b [8]byte
	for i := range b {
		b[i] = in.byte()
	}
	return int64(binary.LittleEndian.Uint64(b[:]))
}

func (in *fuzzInput) bytes(n int) []byte {
	n = min(n, len(in.data)-in.pos)
	if n <= 0 {
		return nil
	}
	b := in.data[in.pos : in.pos+n]
	in.pos += n
	return append([]byte(nil), b...)
}

var fuzzKeys = []string{"a", "b", "c", "a/1", "a/2", "a/3", "/registry/pods/default/p", "/registry/pods/",
	"compact_rev_key", "compact_rev_key_apiserver", "health", "\x00", "\xff", "a\x00", "gap-1", "compact_rev_kez"}

func (in *fuzzInput) key() []byte {
	b := in.byte()
	switch {
	case b < 200:
		return []byte(fuzzKeys[int(b)%len(fuzzKeys)])
	case b < 210:
		return nil // empty
	default:
		return in.bytes(int(in.byte() % 24))
	}
}

// rangeEnd is none, "\x00" (from key), the prefix end of key, or a key.
func (in *fuzzInput) rangeEnd(key []byte) []byte {
	switch in.byte() % 6 {
	case 0, 1:
		return nil
	case 2:
		return []byte{0}
	case 3:
		return prefixEnd(key)
	default:
		return in.key()
	}
}

func prefixEnd(key []byte) []byte {
	end := append([]byte(nil), key...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

func (in *fuzzInput) value() []byte {
	b := in.byte()
	switch {
	case b < 240:
		return in.bytes(int(b % 32))
	case b < 250:
		return make([]byte, 64<<10)
	case b < 253:
		return make([]byte, server.DefaultMaxRequestBytes-64) // near etcd's limit
	case b < 255:
		return make([]byte, server.DefaultMaxRequestBytes+1) // over it
	default:
		return make([]byte, server.DefaultMaxRequestBytes+1<<20) // over gRPC's limit
	}
}

// revision picks a revision around the current one, or anything.
func (fz *grpcFuzzer) revision(in *fuzzInput, cur int64) int64 {
	switch b := in.byte(); b % 12 {
	case 0, 1:
		return 0
	case 2:
		return cur
	case 3:
		return cur - int64(in.byte()%16)
	case 4:
		return cur + 1
	case 5:
		return cur + int64(in.byte())
	case 6:
		return -int64(in.byte())
	case 7:
		return math.MaxInt64
	case 8:
		return math.MinInt64
	case 9:
		return in.int64()
	default:
		return int64(b)
	}
}

func (fz *grpcFuzzer) small(in *fuzzInput) int64 {
	switch b := in.byte(); b % 8 {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return math.MaxInt64
	case 3:
		return math.MinInt64
	case 4:
		return in.int64()
	default:
		return int64(b % 16)
	}
}

// leaseID picks a lease: granted ones, unknown ones, or 0. Leases granted
// with a short TTL are never chosen for keys, so that no key expires while
// the test compares revisions.
func (fz *grpcFuzzer) leaseID(in *fuzzInput, anyLease bool) int64 {
	var id int64
	switch b := in.byte(); b % 8 {
	case 0, 1:
		id = 0
	case 2, 3, 4:
		if len(fz.long) > 0 {
			id = fz.long[int(in.byte())%len(fz.long)]
		}
	case 5:
		id = in.int64()
	default:
		id = int64(b % 8)
	}
	if !anyLease && fz.short[id] {
		return 0
	}
	return id
}

func (fz *grpcFuzzer) ttl(in *fuzzInput) int64 {
	switch b := in.byte(); b % 8 {
	case 0:
		return 9_000_000_000
	case 1:
		return 9_000_000_001
	case 2:
		return math.MaxInt64
	case 3:
		return -int64(in.byte()) // raised to the minimum TTL: short
	case 4:
		return int64(in.byte() % 8) // short
	default:
		return 3600 + int64(b)
	}
}

func (fz *grpcFuzzer) rangeReq(in *fuzzInput, cur int64) *pb.RangeRequest {
	key := in.key()
	r := &pb.RangeRequest{Key: key, RangeEnd: in.rangeEnd(key)}
	flags := in.byte()
	if flags&1 != 0 {
		r.Limit = fz.small(in)
	}
	if flags&2 != 0 {
		r.Revision = fz.revision(in, cur)
	}
	if flags&4 != 0 {
		r.SortOrder = pb.RangeRequest_SortOrder(int32(in.byte()%5) - 1)
		r.SortTarget = pb.RangeRequest_SortTarget(int32(in.byte()%7) - 1)
	}
	r.Serializable = flags&8 != 0
	r.KeysOnly = flags&16 != 0
	r.CountOnly = flags&32 != 0
	if flags&64 != 0 {
		r.MinModRevision = fz.revision(in, cur)
		r.MaxModRevision = fz.revision(in, cur)
	}
	if flags&128 != 0 {
		r.MinCreateRevision = fz.revision(in, cur)
		r.MaxCreateRevision = fz.revision(in, cur)
	}
	return r
}

func (fz *grpcFuzzer) putReq(in *fuzzInput) *pb.PutRequest {
	r := &pb.PutRequest{Key: in.key(), Value: in.value()}
	flags := in.byte()
	if flags&1 != 0 {
		r.Lease = fz.leaseID(in, false)
	}
	r.PrevKv = flags&2 != 0
	r.IgnoreValue = flags&4 != 0
	r.IgnoreLease = flags&8 != 0
	if r.IgnoreValue && flags&16 == 0 {
		r.Value = nil
	}
	return r
}

func (fz *grpcFuzzer) deleteReq(in *fuzzInput) *pb.DeleteRangeRequest {
	key := in.key()
	return &pb.DeleteRangeRequest{Key: key, RangeEnd: in.rangeEnd(key), PrevKv: in.bool()}
}

func (fz *grpcFuzzer) txnReq(in *fuzzInput, cur int64, depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for range int(in.byte() % 4) {
		key := in.key()
		c := &pb.Compare{
			Result: pb.Compare_CompareResult(int32(in.byte()%6) - 1),
			Target: pb.Compare_CompareTarget(int32(in.byte()%7) - 1),
			Key:    key,
		}
		if in.bool() {
			c.RangeEnd = in.rangeEnd(key)
		}
		switch in.byte() % 6 {
		case 0:
			c.TargetUnion = &pb.Compare_Version{Version: fz.small(in)}
		case 1:
			c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: fz.revision(in, cur)}
		case 2:
			c.TargetUnion = &pb.Compare_ModRevision{ModRevision: fz.revision(in, cur)}
		case 3:
			c.TargetUnion = &pb.Compare_Value{Value: in.value()}
		case 4:
			c.TargetUnion = &pb.Compare_Lease{Lease: fz.leaseID(in, true)}
		}
		r.Compare = append(r.Compare, c)
	}
	r.Success = fz.ops(in, cur, depth)
	r.Failure = fz.ops(in, cur, depth)
	if in.byte() == 0xff { // etcd's op limit, and one over
		for i := range 128 + int(in.byte()%2) {
			r.Success = append(r.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{
				RequestRange: &pb.RangeRequest{Key: []byte{'k', byte(i)}}}})
		}
	}
	return r
}

func (fz *grpcFuzzer) ops(in *fuzzInput, cur int64, depth int) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for range int(in.byte() % 5) {
		op := &pb.RequestOp{}
		switch in.byte() % 6 {
		case 0:
			op.Request = &pb.RequestOp_RequestRange{RequestRange: fz.rangeReq(in, cur)}
		case 1, 2:
			op.Request = &pb.RequestOp_RequestPut{RequestPut: fz.putReq(in)}
		case 3:
			op.Request = &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: fz.deleteReq(in)}
		case 4:
			if depth < 3 {
				op.Request = &pb.RequestOp_RequestTxn{RequestTxn: fz.txnReq(in, cur, depth+1)}
			}
		case 5:
			// an empty op, or an empty one of a kind
			switch in.byte() % 4 {
			case 1:
				op.Request = &pb.RequestOp_RequestPut{}
			case 2:
				op.Request = &pb.RequestOp_RequestTxn{}
			case 3:
				op.Request = &pb.RequestOp_RequestRange{}
			}
		}
		ops = append(ops, op)
	}
	return ops
}

// raw sends the rest of the input as a protobuf-encoded request of one kind.
func (fz *grpcFuzzer) raw(ctx context.Context, in *fuzzInput) error {
	kind := in.byte() % 4
	body := in.bytes(len(in.data))
	var err error
	switch kind {
	case 0:
		r := &pb.TxnRequest{}
		if proto.Unmarshal(body, r) == nil {
			_, err = fz.kv.Txn(ctx, fz.sanitizeTxn(r))
		}
	case 1:
		r := &pb.RangeRequest{}
		if proto.Unmarshal(body, r) == nil {
			_, err = fz.kv.Range(ctx, r)
		}
	case 2:
		r := &pb.PutRequest{}
		if proto.Unmarshal(body, r) == nil {
			if fz.short[r.Lease] {
				r.Lease = 0
			}
			_, err = fz.kv.Put(ctx, r)
		}
	default:
		r := &pb.DeleteRangeRequest{}
		if proto.Unmarshal(body, r) == nil {
			_, err = fz.kv.DeleteRange(ctx, r)
		}
	}
	return err
}

// sanitizeTxn keeps short leases off keys in a decoded transaction.
func (fz *grpcFuzzer) sanitizeTxn(r *pb.TxnRequest) *pb.TxnRequest {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil && fz.short[p.Lease] {
				p.Lease = 0
			}
			if t := op.GetRequestTxn(); t != nil {
				fz.sanitizeTxn(t)
			}
		}
	}
	return r
}

func (fz *grpcFuzzer) keepAlive(ctx context.Context, in *fuzzInput) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := fz.lease.LeaseKeepAlive(ctx)
	if err != nil {
		return err
	}
	n := int(in.byte()%4) + 1
	for range n {
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: fz.leaseID(in, true)}); err != nil {
			return nil // the answer is in Recv
		}
	}
	for range n {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (fz *grpcFuzzer) rangeStream(ctx context.Context, in *fuzzInput, cur int64) error {
	stream, err := fz.kv.RangeStream(ctx, fz.rangeReq(in, cur))
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// sentinelWatchID is the ID of the watch that closes a session: its created
// response comes after the answers to every earlier request.
const sentinelWatchID = 1 << 62

// watchSession opens a watch stream, sends creates, cancels and progress
// requests, and then a sentinel create; every create before it must have been
// answered (created or refused) by the time the sentinel's answer arrives.
func (fz *grpcFuzzer) watchSession(ctx context.Context, t *testing.T, in *fuzzInput) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := fz.watch.Watch(ctx)
	if err != nil {
		return err
	}
	cur := fz.srv.Revision()
	creates := 0
	for range int(in.byte()%8) + 1 {
		var req *pb.WatchRequest
		switch in.byte() % 5 {
		case 0, 1:
			key := in.key()
			c := &pb.WatchCreateRequest{Key: key, RangeEnd: in.rangeEnd(key), StartRevision: fz.revision(in, cur)}
			flags := in.byte()
			c.PrevKv = flags&1 != 0
			c.ProgressNotify = flags&2 != 0
			c.Fragment = flags&4 != 0
			if flags&8 != 0 {
				c.WatchId = fz.small(in)
				if c.WatchId == sentinelWatchID {
					c.WatchId = 0
				}
			}
			if flags&16 != 0 {
				c.Filters = []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_FilterType(in.byte() % 4)}
			}
			// A watch from an old revision of everything would stream the
			// whole history; keep those to the recent past.
			if c.StartRevision > 0 && c.StartRevision < cur-64 && (len(c.RangeEnd) > 0) {
				c.StartRevision = cur - 64
			}
			req = &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
			creates++
		case 2:
			req = &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{
				CancelRequest: &pb.WatchCancelRequest{WatchId: fz.small(in)}}}
		case 3:
			req = &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
		default:
			req = &pb.WatchRequest{} // an empty request: ignored
		}
		if err := stream.Send(req); err != nil {
			break // the answer is in Recv
		}
	}
	sentinel := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("sentinel"), WatchId: sentinelWatchID}}}
	if err := stream.Send(sentinel); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	answered := 0
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.Created {
			if resp.WatchId == sentinelWatchID && !resp.Canceled {
				break
			}
			answered++
			if resp.Canceled && resp.CancelReason == "" {
				t.Fatalf("a refused watch without a reason: %v", resp)
			}
		}
		if resp.Header == nil || resp.Header.Revision < 0 {
			t.Fatalf("watch response without a proper header: %v", resp)
		}
	}
	if answered != creates {
		t.Fatalf("%d watch creates, %d answers before the sentinel's", creates, answered)
	}
	return nil
}

// grpcFuzzSeeds are hand-made inputs that reach each kind of request.
func grpcFuzzSeeds() [][]byte {
	return [][]byte{
		{2, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0},                  // put a
		{2, 1, 3, 'x', 'y', 'z', 1, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // put b with a lease
		{0, 0, 2, 0},             // range from a onwards
		{0, 3, 3, 3, 2, 1, 1, 1}, // range prefix with options
		{4, 3, 3, 1},             // delete a prefix
		{5, 2, 0, 1, 0, 2, 0, 2, 1, 0, 1, 1, 1, 1},       // txn with compares and ops
		{6, 1, 0, 0, 0, 0, 3, 4, 1, 4, 2, 4, 0, 0, 0, 0}, // nested txns
		{5, 0, 0, 0, 0xff, 1},                            // 129 ops
		{7, 2, 0},                                        // compact to now
		{8, 5}, {8, 1}, {8, 4, 3},                        // lease grants
		{9, 2, 0}, {10, 0, 2, 0, 1}, {10, 1}, {10, 2, 2, 2, 0, 5}, // revoke, ttl, leases, keep-alive
		{11, 4, 0, 0, 1, 2, 1, 0, 3, 0, 3, 1, 2, 0, 0}, // watch session
		{11, 3, 1, 3, 3, 9, 1, 2, 4},                   // watch from the past with a progress request
		{12, 0, 2, 0},                                  // range stream
		{13, 0, 0x12, 0x04, 0x12, 0x02, 0x0a, 0x00},    // raw txn with an empty put
		{2, 0, 253, 0},                                 // put near the size limit
		{2, 0, 254, 0},                                 // put over it
	}
}
