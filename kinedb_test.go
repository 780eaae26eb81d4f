package kinelite_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite"
)

// kineSchema is kine's SQLite schema (kine v0.16), as kine creates it.
var kineSchema = []string{
	`CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER,
		deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`,
	`CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`,
	`CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)`,
	`CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)`,
	`CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
}

type kineRow struct {
	id                        int64
	name                      string
	created, deleted          int
	createRev, prevRev, lease int64
	value, oldValue           any
}

// TestOpensKineDatabase writes a database the way kine does — its
// compact_rev_key and /registry/health rows, a gap row, a TTL in the lease
// column, the apiserver's compact key with kine's version encoding, history
// compacted by kine — and checks kinelite serves it as it is.
func TestOpensKineDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := openRaw(t, path)
	for _, q := range kineSchema {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rows := []kineRow{
		{1, "compact_rev_key", 1, 0, 0, 0, 0, []byte{}, nil},
		{2, "/registry/health", 1, 0, 0, 0, 0, []byte(`{"health":"true"}`), nil},
		{3, "/registry/pods/a", 1, 0, 0, 0, 0, []byte("a1"), nil},
		{4, "/registry/pods/a", 0, 0, 3, 3, 0, []byte("a2"), []byte("a1")},
		{5, "gap-5", 0, 1, 0, 0, 0, nil, nil},
		{6, "/registry/events/e1", 1, 0, 0, 0, 3, []byte("e"), nil},
		{7, "/registry/pods/b", 1, 0, 0, 0, 0, []byte("b1"), nil},
		{8, "/registry/pods/b", 0, 1, 7, 7, 0, []byte("b1"), []byte("b1")},
		{9, "compact_rev_key_apiserver", 1, 0, 0, 0, 0, []byte("1|0"), nil},
		{10, "compact_rev_key_apiserver", 0, 0, 9, 9, 0, []byte("2|8"), []byte("1|0")},
		{11, "/registry/pods/c", 1, 0, 0, 0, 0, []byte("c1"), nil},
		{12, "/registry/pods/c", 0, 0, 11, 11, 0, []byte("c2"), []byte("c1")},
	}
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.id, r.name, r.created, r.deleted, r.createRev, r.prevRev, r.lease, r.value, r.oldValue); err != nil {
			t.Fatal(err)
		}
	}
	// kine's compaction to revision 9: superseded rows and tombstones at or
	// below it are gone, and the compact_rev_key row records it.
	for _, q := range []string{`DELETE FROM kine WHERE id IN (3, 5, 7, 8)`,
		`UPDATE kine SET prev_revision = 9 WHERE name = 'compact_rev_key'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	ts := &testServer{t: t, cfg: kinelite.Config{Endpoint: "sqlite://" + path, ListenAddress: "127.0.0.1:0"}, dbPath: path}
	ts.open()
	t.Cleanup(ts.close)
	ctx := ctxT(t)
	c := ts.client

	all := must[*clientv3.GetResponse](t)(c.Get(ctx, "", clientv3.WithFromKey()))
	want := []string{"/registry/events/e1", "/registry/health", "/registry/pods/a", "/registry/pods/c", "compact_rev_key"}
	if !slices.Equal(keysOf(all.Kvs), want) {
		t.Fatalf("keys = %v, want %v", keysOf(all.Kvs), want)
	}
	if all.Header.Revision != 12 {
		t.Fatalf("revision = %d, want 12", all.Header.Revision)
	}
	byKey := map[string]*mvccpb.KeyValue{}
	for _, kv := range all.Kvs {
		byKey[string(kv.Key)] = kv
	}
	check := func(key, value string, create, mod, version int64) {
		t.Helper()
		kv := byKey[key]
		if string(kv.Value) != value || kv.CreateRevision != create || kv.ModRevision != mod || kv.Version != version {
			t.Errorf("%s = %+v; want value %q create %d mod %d version %d", key, kv, value, create, mod, version)
		}
	}
	check("/registry/health", `{"health":"true"}`, 2, 2, 1)
	check("/registry/pods/c", "c2", 11, 12, 2)
	check("compact_rev_key", "8", 9, 10, 2) // the version comes from kine's encoding
	// kine did not track versions: the oldest surviving row of a compacted
	// key counts from 1, and keeps its create revision.
	check("/registry/pods/a", "a2", 3, 4, 1)

	if _, err := c.Get(ctx, "/registry/pods/a", clientv3.WithRev(8)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below kine's compact revision: %v", err)
	}
	if g := must[*clientv3.GetResponse](t)(c.Get(ctx, "/registry/pods/c", clientv3.WithRev(11))); string(g.Kvs[0].Value) != "c1" {
		t.Fatalf("read at 11: %+v", g.Kvs)
	}

	// History from the compact revision: no gap rows, no bookkeeping rows,
	// previous values through prev_revision.
	evs := collect(t, c.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(9), clientv3.WithPrevKV()), 4)
	var revs []int64
	for _, ev := range evs {
		revs = append(revs, ev.Kv.ModRevision)
	}
	if !slices.Equal(revs, []int64{9, 10, 11, 12}) || string(evs[3].PrevKv.Value) != "c1" || string(evs[1].PrevKv.Value) != "0" {
		t.Fatalf("history from 9: revisions %v, events %+v", revs, evs)
	}

	// The apiserver's compaction CAS goes on from kine's version.
	r := must[*clientv3.TxnResponse](t)(c.Txn(ctx).If(clientv3.Compare(clientv3.Version("compact_rev_key"), "=", 2)).
		Then(clientv3.OpPut("compact_rev_key", "12")).Else(clientv3.OpGet("compact_rev_key")).Commit())
	if !r.Succeeded || r.Header.Revision != 13 {
		t.Fatalf("CAS on kine's compact key: %+v", r)
	}

	// kine's TTL-in-the-lease-column key still expires (TTL 3 s).
	wr := collect(t, c.Watch(ctx, "/registry/events/e1", clientv3.WithRev(13)), 1)
	if wr[0].Type != mvccpb.DELETE {
		t.Fatalf("TTL key event: %+v", wr[0])
	}
}

// TestDurableAcrossRestart: everything acknowledged is there after a
// restart, with the same revisions, versions and compact revision.
func TestDurableAcrossRestart(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	c := ts.client
	for i := range 30 {
		must[*clientv3.PutResponse](t)(c.Put(ctx, "d/"+string(rune('a'+i%6)), string(rune('A'+i))))
	}
	must[*clientv3.DeleteResponse](t)(c.Delete(ctx, "d/c"))
	before := must[*clientv3.GetResponse](t)(c.Get(ctx, "d/", clientv3.WithPrefix()))
	must[*clientv3.CompactResponse](t)(c.Compact(ctx, before.Header.Revision-5))
	old := must[*clientv3.GetResponse](t)(c.Get(ctx, "d/", clientv3.WithPrefix(), clientv3.WithRev(before.Header.Revision-3)))
	ts.restart()
	c = ts.client
	after := must[*clientv3.GetResponse](t)(c.Get(ctx, "d/", clientv3.WithPrefix()))
	if after.Header.Revision != before.Header.Revision || fmtKVs(after.Kvs) != fmtKVs(before.Kvs) {
		t.Fatalf("after restart:\n%s\nbefore:\n%s", fmtKVs(after.Kvs), fmtKVs(before.Kvs))
	}
	oldAfter := must[*clientv3.GetResponse](t)(c.Get(ctx, "d/", clientv3.WithPrefix(), clientv3.WithRev(before.Header.Revision-3)))
	if fmtKVs(oldAfter.Kvs) != fmtKVs(old.Kvs) {
		t.Fatalf("old read after restart differs")
	}
	if _, err := c.Get(ctx, "d/a", clientv3.WithRev(before.Header.Revision-6)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compact revision lost across restart: %v", err)
	}
	if ts.dbPath != "" {
		if _, err := os.Stat(ts.dbPath); err != nil {
			t.Fatal(err)
		}
	}
}

func fmtKVs(kvs []*mvccpb.KeyValue) string {
	s := ""
	for _, kv := range kvs {
		s += kv.String() + "\n"
	}
	return s
}

// writeKineDatabase creates kine's schema at path and inserts rows.
func writeKineDatabase(t *testing.T, path string, rows []kineRow) {
	t.Helper()
	db := openRaw(t, path)
	defer db.Close()
	for _, q := range kineSchema {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.id, r.name, r.created, r.deleted, r.createRev, r.prevRev, r.lease, r.value, r.oldValue); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKineGapRowNamedLikeAClientKey: kine names its gap rows "gap-<id>",
// which is also a valid client key. kine's unique index on (name,
// prev_revision) would make the key's first create collide with the gap
// row; the create must succeed, as on etcd, and survive a restart.
func TestKineGapRowNamedLikeAClientKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeKineDatabase(t, path, []kineRow{
		{1, "compact_rev_key", 1, 0, 0, 0, 0, []byte{}, nil},
		{2, "/registry/health", 1, 0, 0, 0, 0, []byte(`{"health":"true"}`), nil},
		{3, "gap-3", 0, 1, 0, 0, 0, nil, nil},
		{4, "b", 1, 0, 0, 0, 0, []byte("b1"), nil},
	})
	ts := &testServer{t: t, cfg: kinelite.Config{Endpoint: "sqlite://" + path, ListenAddress: "127.0.0.1:0"}, dbPath: path}
	ts.open()
	t.Cleanup(ts.close)
	ctx := ctxT(t)

	create := func(key, value string) *clientv3.TxnResponse {
		t.Helper()
		r, err := ts.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value)).Commit()
		if err != nil || !r.Succeeded {
			t.Fatalf("create %q: %+v, %v", key, r, err)
		}
		return r
	}
	if r := create("gap-3", "v"); r.Header.Revision != 5 {
		t.Fatalf("create of gap-3 at revision %d, want 5", r.Header.Revision)
	}
	create("gap-9", "w") // no gap row of that name: an ordinary create

	ts.restart()
	ctx = ctxT(t)
	g := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "gap-", clientv3.WithPrefix()))
	if len(g.Kvs) != 2 || string(g.Kvs[0].Key) != "gap-3" || string(g.Kvs[0].Value) != "v" ||
		g.Kvs[0].CreateRevision != 5 || g.Kvs[0].Version != 1 {
		t.Fatalf("after a restart: %v", g.Kvs)
	}
	// The key's history starts with its create; the gap at 3 is no event.
	evs := collect(t, ts.client.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(1)), 4)
	var revs []int64
	for _, ev := range evs {
		revs = append(revs, ev.Kv.ModRevision)
	}
	if !slices.Equal(revs, []int64{2, 4, 5, 6}) {
		t.Fatalf("history revisions %v, want [2 4 5 6]", revs)
	}
	must[*clientv3.DeleteResponse](t)(ts.client.Delete(ctx, "gap-3"))
	create("gap-3", "again")
}

// TestRefusesRowIDsThatAreNoRevisions: a row whose id is 0 or negative is
// no revision, and one above 2^62 would leave revisions to wrap around.
// kinelite refuses to start on such a table with an error that names the
// row, and leaves the table as it was.
func TestRefusesRowIDsThatAreNoRevisions(t *testing.T) {
	for _, id := range []int64{-4, 0, math.MaxInt64} {
		t.Run(fmt.Sprint(id), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			writeKineDatabase(t, path, []kineRow{
				{1, "compact_rev_key", 1, 0, 0, 0, 0, []byte{}, nil},
				{2, "b", 1, 0, 0, 0, 0, []byte("b1"), nil},
				{id, "a", 1, 0, 0, 0, 0, []byte("x"), nil},
			})
			srv, err := kinelite.Open(context.Background(), kinelite.Config{Endpoint: "sqlite://" + path, ListenAddress: "127.0.0.1:0"})
			if err == nil {
				srv.Close(context.Background())
				t.Fatalf("kinelite started on a table with a row at id %d", id)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("row %d ", id)) || !strings.Contains(err.Error(), "kinelite check") {
				t.Fatalf("the error does not name the row and the way out: %v", err)
			}
			assertTableUnchanged(t, path)
		})
	}
}

// TestRefusesCompactRevisionNearInt64End: kine's compact_rev_key row
// holding a compact revision above 2^62 is refused like such a row id.
func TestRefusesCompactRevisionNearInt64End(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeKineDatabase(t, path, []kineRow{
		{1, "compact_rev_key", 1, 0, 0, math.MaxInt64, 0, []byte{}, nil},
		{2, "b", 1, 0, 0, 0, 0, []byte("b1"), nil},
		{3, "a", 1, 0, 0, 0, 0, []byte("x"), nil},
	})
	srv, err := kinelite.Open(context.Background(), kinelite.Config{Endpoint: "sqlite://" + path, ListenAddress: "127.0.0.1:0"})
	if err == nil {
		srv.Close(context.Background())
		t.Fatal("kinelite started with a compact revision of MaxInt64")
	}
	if !strings.Contains(err.Error(), fmt.Sprint(int64(math.MaxInt64))) {
		t.Fatalf("the error does not name the compact revision: %v", err)
	}
	assertTableUnchanged(t, path)
}

// assertTableUnchanged checks the three rows the refusal tests wrote are
// still there.
func assertTableUnchanged(t *testing.T, path string) {
	t.Helper()
	db := openRaw(t, path)
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM kine`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("the table changed: %d rows, %v", n, err)
	}
}
