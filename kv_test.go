package kinelite_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func keysOf(kvs []*mvccpb.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

func TestRevisionsStartLikeEtcd(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "anything"))
	if g.Header.Revision != 1 {
		t.Fatalf("fresh store revision = %d, want 1 as etcd", g.Header.Revision)
	}
	p := must[*clientv3.PutResponse](t)(ts.client.Put(ctx, "a", "1"))
	if p.Header.Revision != 2 {
		t.Fatalf("first write revision = %d, want 2", p.Header.Revision)
	}
	if g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "", clientv3.WithFromKey())); len(g.Kvs) != 1 {
		t.Fatalf("the whole keyspace holds %v, want only the key written (no bookkeeping rows)", keysOf(g.Kvs))
	}
}

func TestPutGetVersionsAndPrevKV(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	r1 := must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "v1"))
	r2 := must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "v2", clientv3.WithPrevKV()))
	if r2.PrevKv == nil || string(r2.PrevKv.Value) != "v1" || r2.PrevKv.ModRevision != r1.Header.Revision || r2.PrevKv.Version != 1 {
		t.Fatalf("prev kv = %+v", r2.PrevKv)
	}
	g := must[*clientv3.GetResponse](t)(c.Get(ctx, "k"))
	kv := g.Kvs[0]
	if string(kv.Value) != "v2" || kv.CreateRevision != r1.Header.Revision || kv.ModRevision != r2.Header.Revision || kv.Version != 2 {
		t.Fatalf("kv = %+v", kv)
	}
	if g.Header.Revision != r2.Header.Revision || g.Count != 1 {
		t.Fatalf("header %d count %d", g.Header.Revision, g.Count)
	}
	// A read at an older revision sees the older value; the header revision
	// stays the current one.
	old := must[*clientv3.GetResponse](t)(c.Get(ctx, "k", clientv3.WithRev(r1.Header.Revision)))
	if string(old.Kvs[0].Value) != "v1" || old.Header.Revision != r2.Header.Revision {
		t.Fatalf("old read = %+v header %d", old.Kvs, old.Header.Revision)
	}
	// Delete then re-create: a new generation with version 1.
	d := must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "k", clientv3.WithPrevKV()))
	if d.Deleted != 1 || len(d.PrevKvs) != 1 || string(d.PrevKvs[0].Value) != "v2" {
		t.Fatalf("delete = %+v", d)
	}
	r3 := must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "v3"))
	kv = must[*clientv3.GetResponse](t)(c.Get(ctx, "k")).Kvs[0]
	if kv.Version != 1 || kv.CreateRevision != r3.Header.Revision {
		t.Fatalf("recreated kv = %+v", kv)
	}
	// Deleting a missing key changes nothing and keeps the revision.
	d = must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "missing"))
	if d.Deleted != 0 || d.Header.Revision != r3.Header.Revision {
		t.Fatalf("delete of missing key = %+v", d)
	}
	// An empty value is a value.
	must[*clientv3.PutResponse](t)(c.Put(ctx, "empty", ""))
	g = must[*clientv3.GetResponse](t)(c.Get(ctx, "empty"))
	if len(g.Kvs) != 1 || len(g.Kvs[0].Value) != 0 {
		t.Fatalf("empty value read back as %+v", g.Kvs)
	}
}

func TestPutIgnoreValueAndLease(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	l := must[*clientv3.LeaseGrantResponse](t)(c.Grant(ctx, 60))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "keep", clientv3.WithLease(l.ID)))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease()))
	kv := must[*clientv3.GetResponse](t)(c.Get(ctx, "k")).Kvs[0]
	if string(kv.Value) != "keep" || kv.Lease != int64(l.ID) || kv.Version != 2 {
		t.Fatalf("after ignore_value+ignore_lease: %+v", kv)
	}
	must[*clientv3.PutResponse](t)(c.Put(ctx, "k", "new", clientv3.WithIgnoreLease()))
	kv = must[*clientv3.GetResponse](t)(c.Get(ctx, "k")).Kvs[0]
	if string(kv.Value) != "new" || kv.Lease != int64(l.ID) {
		t.Fatalf("after ignore_lease: %+v", kv)
	}
	if _, err := c.Put(ctx, "missing", "", clientv3.WithIgnoreValue()); !errors.Is(err, rpctypes.ErrKeyNotFound) {
		t.Fatalf("ignore_value on a missing key: %v, want %v", err, rpctypes.ErrKeyNotFound)
	}
}

func TestRangeOptions(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	for i := range 10 {
		must[*clientv3.PutResponse](t)(c.Put(ctx, fmt.Sprintf("/p/%02d", i), fmt.Sprintf("v%d", 9-i)))
	}
	must[*clientv3.PutResponse](t)(c.Put(ctx, "/p/03", "again"))
	must[*clientv3.PutResponse](t)(c.Put(ctx, "/q", "outside"))

	t.Run("prefix with limit: more and count are exact", func(t *testing.T) {
		g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithLimit(4)))
		if len(g.Kvs) != 4 || !g.More || g.Count != 10 {
			t.Fatalf("got %d kvs more=%v count=%d", len(g.Kvs), g.More, g.Count)
		}
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithLimit(10)))
		if len(g.Kvs) != 10 || g.More || g.Count != 10 {
			t.Fatalf("limit = count: %d kvs more=%v count=%d", len(g.Kvs), g.More, g.Count)
		}
	})
	t.Run("paging at the first page's revision", func(t *testing.T) {
		first := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithLimit(3)))
		must[*clientv3.PutResponse](t)(c.Put(ctx, "/p/05", "changed after the first page"))
		var got []string
		got = append(got, keysOf(first.Kvs)...)
		last := first
		for last.More {
			next := string(last.Kvs[len(last.Kvs)-1].Key) + "\x00"
			last = must[*clientv3.GetResponse](t)(c.Get(ctx, next, clientv3.WithRange(clientv3.GetPrefixRangeEnd("/p/")),
				clientv3.WithLimit(3), clientv3.WithRev(first.Header.Revision)))
			for _, kv := range last.Kvs {
				if string(kv.Key) == "/p/05" && string(kv.Value) != "v4" {
					t.Fatalf("page at the first revision sees a later write: %q", kv.Value)
				}
			}
			got = append(got, keysOf(last.Kvs)...)
		}
		if len(got) != 10 {
			t.Fatalf("paged %d keys: %v", len(got), got)
		}
	})
	t.Run("from key", func(t *testing.T) {
		g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/08", clientv3.WithFromKey()))
		if !slices.Equal(keysOf(g.Kvs), []string{"/p/08", "/p/09", "/q"}) {
			t.Fatalf("from key = %v", keysOf(g.Kvs))
		}
	})
	t.Run("count only and keys only", func(t *testing.T) {
		g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
		if g.Count != 10 || len(g.Kvs) != 0 {
			t.Fatalf("count only: count %d kvs %d", g.Count, len(g.Kvs))
		}
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithKeysOnly()))
		if len(g.Kvs) != 10 || len(g.Kvs[0].Value) != 0 || g.Kvs[3].Version != 2 {
			t.Fatalf("keys only: %+v", g.Kvs[:4])
		}
	})
	t.Run("sort", func(t *testing.T) {
		g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(2)))
		if !slices.Equal(keysOf(g.Kvs), []string{"/p/09", "/p/08"}) || !g.More || g.Count != 10 {
			t.Fatalf("key descend = %v more %v count %d", keysOf(g.Kvs), g.More, g.Count)
		}
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend), clientv3.WithLimit(1)))
		if string(g.Kvs[0].Value) != "again" {
			t.Fatalf("value ascend first = %q", g.Kvs[0].Value)
		}
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1)))
		if string(g.Kvs[0].Key) != "/p/05" {
			t.Fatalf("newest mod revision = %q", g.Kvs[0].Key)
		}
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend)))
		if v := g.Kvs[0].Version; v != 2 {
			t.Fatalf("highest version = %d", v)
		}
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend)))
		if string(g.Kvs[0].Key) != "/p/09" {
			t.Fatalf("newest create = %q", g.Kvs[0].Key)
		}
	})
	t.Run("revision filters keep count unfiltered", func(t *testing.T) {
		mid := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/05")).Kvs[0].ModRevision
		g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithMinModRev(mid)))
		if !slices.Equal(keysOf(g.Kvs), []string{"/p/05"}) || g.Count != 10 {
			t.Fatalf("min mod rev: %v count %d", keysOf(g.Kvs), g.Count)
		}
		first := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/00")).Kvs[0].CreateRevision
		g = must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(first+1)))
		if !slices.Equal(keysOf(g.Kvs), []string{"/p/00", "/p/01"}) {
			t.Fatalf("max create rev: %v", keysOf(g.Kvs))
		}
	})
	t.Run("serializable reads the same", func(t *testing.T) {
		g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithSerializable()))
		if len(g.Kvs) != 10 {
			t.Fatalf("serializable read %d keys", len(g.Kvs))
		}
	})
}

func TestRevisionErrors(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	var revs []int64
	for i := range 5 {
		revs = append(revs, must[*clientv3.PutResponse](t)(c.Put(ctx, "k", fmt.Sprint(i))).Header.Revision)
	}
	cur := revs[len(revs)-1]
	if _, err := c.Get(ctx, "k", clientv3.WithRev(cur+1)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("future revision: %v", err)
	}
	must[*clientv3.CompactResponse](t)(c.Compact(ctx, revs[2]))
	if _, err := c.Get(ctx, "k", clientv3.WithRev(revs[1])); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("below the compact revision: %v", err)
	}
	g := must[*clientv3.GetResponse](t)(c.Get(ctx, "k", clientv3.WithRev(revs[2])))
	if string(g.Kvs[0].Value) != "2" {
		t.Fatalf("at the compact revision: %+v", g.Kvs)
	}
	if _, err := c.Compact(ctx, revs[2]); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compact to the compact revision again: %v", err)
	}
	if _, err := c.Compact(ctx, cur+5); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("compact to a future revision: %v", err)
	}
	// Compaction creates no revision.
	if h := must[*clientv3.GetResponse](t)(c.Get(ctx, "k")).Header.Revision; h != cur {
		t.Fatalf("revision after compaction = %d, want %d", h, cur)
	}
}

func TestCompactPhysicalRemovesHistoryAndKeepsLatest(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client
	for i := range 50 {
		must[*clientv3.PutResponse](t)(c.Put(ctx, fmt.Sprintf("k%d", i%5), fmt.Sprint(i)))
	}
	must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "k4"))
	cur := must[*clientv3.GetResponse](t)(c.Get(ctx, "x")).Header.Revision
	before := must[*clientv3.GetResponse](t)(c.Get(ctx, "k", clientv3.WithPrefix()))
	must[*clientv3.CompactResponse](t)(c.Compact(ctx, cur, clientv3.WithCompactPhysical()))
	after := must[*clientv3.GetResponse](t)(c.Get(ctx, "k", clientv3.WithPrefix()))
	if fmt.Sprint(before.Kvs) != fmt.Sprint(after.Kvs) {
		t.Fatalf("compaction changed the latest state:\nbefore %v\nafter  %v", before.Kvs, after.Kvs)
	}
	rows := ts.countRows()
	// 4 live keys, the compact_rev_key row, and the newest row (the k4
	// tombstone) which is never deleted.
	if rows != 6 {
		t.Fatalf("rows after physical compaction = %d, want 6", rows)
	}
	// Versions survive compaction and a restart.
	ts.restart()
	for _, kv := range after.Kvs {
		g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, string(kv.Key)))
		if g.Kvs[0].Version != kv.Version || g.Kvs[0].CreateRevision != kv.CreateRevision {
			t.Fatalf("after restart %s = %+v, want version %d create %d", kv.Key, g.Kvs[0], kv.Version, kv.CreateRevision)
		}
	}
}
