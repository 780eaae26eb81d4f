package kinelite_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAPIServerTxnShapes runs the four transactions kube-apiserver sends
// (APISERVER.md §1.4) through their success and failure paths.
func TestAPIServerTxnShapes(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	key := "/registry/pods/ns/p"

	// Create: MOD == 0 → Put, no else ops.
	create := func() *clientv3.TxnResponse {
		return must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, "v1")).Commit())
	}
	r := create()
	if !r.Succeeded || r.Header.Revision != 2 {
		t.Fatalf("create: %+v", r)
	}
	created := r.Header.Revision
	if r := create(); r.Succeeded || len(r.Responses) != 0 {
		t.Fatalf("second create: succeeded=%v responses=%d", r.Succeeded, len(r.Responses))
	}

	// Update: MOD == rev → Put else Get.
	update := func(rev int64, v string) *clientv3.TxnResponse {
		return must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, v)).Else(clientv3.OpGet(key)).Commit())
	}
	r = update(created, "v2")
	if !r.Succeeded || r.Header.Revision != created+1 {
		t.Fatalf("update: %+v", r)
	}
	updated := r.Header.Revision
	r = update(created, "stale")
	if r.Succeeded {
		t.Fatal("update with a stale revision succeeded")
	}
	rr := r.Responses[0].GetResponseRange()
	if rr == nil || len(rr.Kvs) != 1 || string(rr.Kvs[0].Value) != "v2" || rr.Kvs[0].ModRevision != updated {
		t.Fatalf("failed update's range: %+v", rr)
	}

	// Delete: MOD == rev → Delete else Get.
	del := func(rev int64) *clientv3.TxnResponse {
		return must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit())
	}
	if r := del(created); r.Succeeded || len(r.Responses[0].GetResponseRange().Kvs) != 1 {
		t.Fatalf("stale delete: %+v", r)
	}
	r = del(updated)
	if !r.Succeeded || r.Header.Revision != updated+1 {
		t.Fatalf("delete: %+v", r)
	}
	// Update of a missing key with rev 0 creates it (ignoreNotFound).
	if r := update(0, "again"); !r.Succeeded {
		t.Fatalf("update-as-create: %+v", r)
	}
	// The failure branch on a missing key returns an empty range.
	must[*clientv3.DeleteResponse](t)(c.Delete(ctx, key))
	if r := update(12345, "x"); r.Succeeded || len(r.Responses[0].GetResponseRange().Kvs) != 0 {
		t.Fatalf("update of a missing key: %+v", r)
	}

	// The compaction CAS on VERSION, with kine's stored layout underneath.
	cas := func(version int64, value string) *clientv3.TxnResponse {
		return must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(clientv3.Compare(clientv3.Version("compact_rev_key"), "=", version)).
			Then(clientv3.OpPut("compact_rev_key", value)).Else(clientv3.OpGet("compact_rev_key")).Commit())
	}
	if r := cas(0, "0"); !r.Succeeded {
		t.Fatalf("first compaction CAS: %+v", r)
	}
	before := must[*clientv3.GetResponse](t)(c.Get(ctx, "x")).Header.Revision
	if r := cas(1, "7"); !r.Succeeded || r.Header.Revision != before+1 {
		t.Fatalf("second compaction CAS: %+v (revision must grow by exactly 1)", r)
	}
	r = cas(1, "9")
	if r.Succeeded {
		t.Fatal("CAS on a stale version succeeded")
	}
	kv := r.Responses[0].GetResponseRange().Kvs[0]
	if kv.Version != 2 || string(kv.Value) != "7" || string(kv.Key) != "compact_rev_key" {
		t.Fatalf("failed CAS returns %+v", kv)
	}
	// The stored row is kine's: compact_rev_key_apiserver with "<version>|<value>".
	var stored string
	if err := ts.openTable().QueryRow(
		`SELECT value FROM kine WHERE name = 'compact_rev_key_apiserver' ORDER BY id DESC LIMIT 1`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != "2|7" {
		t.Fatalf("stored compact key value = %q, want kine's \"2|7\"", stored)
	}
}

func TestTxnGeneralCompares(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	l := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 60))
	p := must[*clientv3.PutResponse](t)(c.Put(ctx, "a", "m", clientv3.WithLease(l.ID)))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "a", "m"))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "b", "z"))
	cur := must[*clientv3.GetResponse](t)(c.Get(ctx, "a")).Kvs[0]

	cases := []struct {
		name string
		cmp  clientv3.Cmp
		want bool
	}{
		{"value equal", clientv3.Compare(clientv3.Value("a"), "=", "m"), true},
		{"value less", clientv3.Compare(clientv3.Value("a"), "<", "n"), true},
		{"value greater", clientv3.Compare(clientv3.Value("a"), ">", "m"), false},
		{"value on missing key always fails", clientv3.Compare(clientv3.Value("missing"), "!=", "x"), false},
		{"version", clientv3.Compare(clientv3.Version("a"), "=", 2), true},
		{"version not equal", clientv3.Compare(clientv3.Version("a"), "!=", 2), false},
		{"create", clientv3.Compare(clientv3.CreateRevision("a"), "=", p.Header.Revision), true},
		{"mod greater", clientv3.Compare(clientv3.ModRevision("a"), ">", p.Header.Revision), true},
		{"mod less", clientv3.Compare(clientv3.ModRevision("a"), "<", cur.ModRevision), false},
		{"lease after a put without lease", clientv3.Compare(clientv3.LeaseValue("a"), "=", 0), true},
		{"missing key compares as zero", clientv3.Compare(clientv3.CreateRevision("missing"), "=", 0), true},
		{"range: all keys hold", clientv3.Compare(clientv3.Version("a"), ">", 0).WithRange("c"), true},
		{"range: one key fails", clientv3.Compare(clientv3.Value("a"), "=", "m").WithRange("c"), false},
		{"prefix range", clientv3.Compare(clientv3.Version("a").WithPrefix(), ">", 0), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(tc.cmp).Commit())
			if r.Succeeded != tc.want {
				t.Fatalf("succeeded = %v, want %v", r.Succeeded, tc.want)
			}
		})
	}
}

func TestTxnNestedAndMultiWrite(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	start := must[*clientv3.PutResponse](t)(c.Put(ctx, "flag", "on")).Header.Revision

	r := must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(clientv3.Compare(clientv3.Value("flag"), "=", "on")).Then(
		clientv3.OpPut("x", "1"),
		clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision("x"), "=", 0)},
			[]clientv3.Op{clientv3.OpPut("inner-then", "t")},
			[]clientv3.Op{clientv3.OpPut("inner-else", "e")}),
		clientv3.OpGet("x"),
		clientv3.OpPut("y", "2"),
	).Commit())
	if !r.Succeeded || len(r.Responses) != 4 {
		t.Fatalf("txn: %+v", r)
	}
	// Compares of the whole path are evaluated before any op runs: x did not
	// exist then, so the nested txn takes its then-branch.
	nested := r.Responses[1].GetResponseTxn()
	if !nested.Succeeded || nested.Responses[0].GetResponsePut() == nil {
		t.Fatalf("nested txn: %+v", nested)
	}
	// A range after a put in the same txn sees it.
	if kvs := r.Responses[2].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "1" {
		t.Fatalf("range after put in the txn: %+v", kvs)
	}
	// Three writes, three revisions (kinelite's documented difference).
	if r.Header.Revision != start+3 {
		t.Fatalf("header revision %d, want %d", r.Header.Revision, start+3)
	}
	for i, k := range []string{"x", "inner-then", "y"} {
		kv := must[*clientv3.GetResponse](t)(c.Get(ctx, k)).Kvs[0]
		if kv.ModRevision != start+int64(i)+1 {
			t.Fatalf("%s at revision %d, want %d", k, kv.ModRevision, start+int64(i)+1)
		}
	}
	// A multi-key delete also takes one revision per key.
	d := must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "", clientv3.WithFromKey()))
	if d.Deleted != 4 || d.Header.Revision != start+7 {
		t.Fatalf("delete all: %+v", d)
	}
}

func TestTxnAllOrNothing(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	must[*clientv3.PutResponse](t)(c.Put(ctx, "a", "1"))
	before := must[*clientv3.GetResponse](t)(c.Get(ctx, "a")).Header.Revision
	// The second op names a missing lease: nothing of the txn is applied.
	_, err := c.Txn(ctx).Then(clientv3.OpPut("a", "2"), clientv3.OpPut("b", "x", clientv3.WithLease(999))).Commit()
	if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("txn with a missing lease: %v", err)
	}
	g := must[*clientv3.GetResponse](t)(c.Get(ctx, "", clientv3.WithFromKey()))
	if g.Header.Revision != before || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "1" {
		t.Fatalf("a refused txn left traces: revision %d, kvs %v", g.Header.Revision, g.Kvs)
	}
	// A range at a future revision in the chosen branch refuses the txn too.
	_, err = c.Txn(ctx).Then(clientv3.OpPut("a", "3"), clientv3.OpGet("a", clientv3.WithRev(before+10))).Commit()
	if !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("txn with a future range: %v", err)
	}
	if v := must[*clientv3.GetResponse](t)(c.Get(ctx, "a")).Kvs[0].Value; string(v) != "1" {
		t.Fatalf("a = %q after a refused txn", v)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	must[*clientv3.PutResponse](t)(c.Put(ctx, "a", "1"))
	kv := pb.NewKVClient(c.ActiveConnection())
	rev := must[*clientv3.GetResponse](t)(c.Get(ctx, "a")).Header.Revision

	manyOps := make([]clientv3.Op, 129)
	for i := range manyOps {
		manyOps[i] = clientv3.OpPut(fmt.Sprintf("k%d", i), "v")
	}
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"empty key put", func() error { _, err := kv.Put(ctx, &pb.PutRequest{Value: []byte("v")}); return err }, rpctypes.ErrGRPCEmptyKey},
		{"empty key range", func() error { _, err := kv.Range(ctx, &pb.RangeRequest{}); return err }, rpctypes.ErrGRPCEmptyKey},
		{"empty key delete", func() error { _, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{}); return err }, rpctypes.ErrGRPCEmptyKey},
		{"bad sort order", func() error {
			_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), SortOrder: 9})
			return err
		}, rpctypes.ErrGRPCInvalidSortOption},
		{"ignore_value with a value", func() error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("x"), IgnoreValue: true})
			return err
		}, rpctypes.ErrGRPCValueProvided},
		{"ignore_lease with a lease", func() error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Lease: 5, IgnoreLease: true})
			return err
		}, rpctypes.ErrGRPCLeaseProvided},
		{"too many ops", func() error { _, err := c.Txn(ctx).Then(manyOps...).Commit(); return err }, rpctypes.ErrGRPCTooManyOps},
		{"duplicate key in txn", func() error {
			_, err := c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
			return err
		}, rpctypes.ErrGRPCDuplicateKey},
		{"put inside a deleted range", func() error {
			_, err := c.Txn(ctx).Then(clientv3.OpDelete("a", clientv3.WithRange("c")), clientv3.OpPut("b", "2")).Commit()
			return err
		}, rpctypes.ErrGRPCDuplicateKey},
		{"empty op in txn", func() error {
			_, err := kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return err
		}, rpctypes.ErrGRPCKeyNotFound},
		{"request too large", func() error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("big"), Value: make([]byte, 1<<20+1<<19+1)})
			return err
		}, rpctypes.ErrGRPCRequestTooLarge},
		{"unknown lease", func() error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Lease: 12345})
			return err
		}, rpctypes.ErrGRPCLeaseNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The client turns status errors into its own; compare both as
			// the client sees them (code and etcd's message).
			err := tc.call()
			if err == nil || rpctypes.Error(err) != rpctypes.Error(tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The reserved key is refused with a clear message.
	_, err := c.Put(ctx, "compact_rev_key_apiserver", "x")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "reserved") {
		t.Fatalf("reserved key: %v", err)
	}
	g := must[*clientv3.GetResponse](t)(c.Get(ctx, "", clientv3.WithFromKey()))
	if g.Header.Revision != rev || len(g.Kvs) != 1 {
		t.Fatalf("bad requests changed the store: revision %d → %d, keys %v", rev, g.Header.Revision, keysOf(g.Kvs))
	}
}

// TestConcurrentCreatesGroupCommit drives many clients at once: every write
// succeeds (no "database is locked"), revisions are unique and dense.
func TestConcurrentCreatesGroupCommit(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	const writers, each = 32, 40
	start := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "x")).Header.Revision
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("/c/%02d/%03d", w, i)
				r, err := ts.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
					Then(clientv3.OpPut(key, strconv.Itoa(i))).Commit()
				if err != nil {
					errs <- err
					return
				}
				if !r.Succeeded {
					errs <- fmt.Errorf("create of %s did not succeed", key)
					return
				}
				mu.Lock()
				if other, dup := seen[r.Header.Revision]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("revision %d given to %s and %s", r.Header.Revision, other, key)
					return
				}
				seen[r.Header.Revision] = key
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for rev := start + 1; rev <= start+writers*each; rev++ {
		if _, ok := seen[rev]; !ok {
			t.Fatalf("revision %d was not acknowledged to anyone", rev)
		}
	}
	g := must[*clientv3.GetResponse](t)(ts.client.Get(context.Background(), "/c/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	if g.Count != writers*each {
		t.Fatalf("count = %d", g.Count)
	}
}
