package backend_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
)

// FuzzKineRows writes arbitrary rows into kine's table (as kine, an older
// kinelite or a damaged database may have left them: any names, flags, chains,
// leases holding TTLs, compact_rev_key rows, gap rows, kinelite's own tables
// with any content), then starts a store over them: decoding the rows into
// the index, the leases and events must never panic. When the store starts,
// every read at the current revision succeeds, reads at older revisions
// succeed or say compacted, history reads succeed, writes on top succeed,
// and a restart decodes the same rows into the same answers.
//
// Fuzz it with, for example:
//
//	go test -run '^$' -fuzz FuzzKineRows -fuzztime 5m -parallel 1 ./backend
func FuzzKineRows(f *testing.F) {
	for _, seed := range kineRowSeeds() {
		f.Add(seed)
	}
	dir := f.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "kinelite-fuzz-"); err == nil {
			dir = d
			f.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		path := filepath.Join(dir, fmt.Sprintf("kine-%d.db", n))
		defer func() {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suffix)
			}
		}()
		writeKineRows(t, path, data)
		fuzzStore(t, path)
	})
}

// kine's SQLite table, as kine creates it.
const kineTable = `CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER,
	create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`

var kineRowNames = []string{"a", "b", "/registry/pods/default/p", "compact_rev_key", "compact_rev_key_apiserver",
	"gap-7", "gap-", "a/1", "", "\x00", "\xff\xfe", "health"}

// writeKineRows decodes data into rows of kine's table (and, when asked,
// kinelite's tables) in a new database at path.
func writeKineRows(t *testing.T, path string, data []byte) {
	in := &rowInput{data: data}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(kineTable); err != nil {
		t.Fatal(err)
	}
	flags := in.byte()
	if flags&1 != 0 { // kinelite's tables too, with arbitrary content
		for _, q := range []string{
			`CREATE TABLE kinelite_lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL)`,
			`CREATE TABLE kinelite_version (name TEXT PRIMARY KEY, id INTEGER NOT NULL, version INTEGER NOT NULL)`,
			`CREATE TABLE kinelite_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		for range int(in.byte() % 4) {
			db.Exec(`INSERT INTO kinelite_lease(id, ttl) VALUES(?, ?)`, in.small(), in.small())
		}
		for range int(in.byte() % 4) {
			db.Exec(`INSERT INTO kinelite_version(name, id, version) VALUES(?, ?, ?)`, in.name(), in.small(), in.small())
		}
		if flags&2 != 0 {
			db.Exec(`INSERT INTO kinelite_meta(name, value) VALUES('compacted_through', ?)`, in.small())
		}
	}
	id := int64(0)
	last := map[string]int64{}
	for in.more() {
		switch b := in.byte(); {
		case b < 200:
			id += 1 + int64(b%3)
		case b < 230:
			id = in.small()
		}
		name := in.name()
		var nameArg any = name
		if in.byte() == 0xff {
			nameArg = nil // a NULL name
		}
		created, deleted := in.flag(), in.flag()
		var prev any
		switch in.byte() % 4 {
		case 0:
			prev = int64(0)
		case 1, 2:
			prev = last[name]
		default:
			prev = in.small()
		}
		var createRev any = in.small()
		if in.bool() {
			createRev = int64(0)
		}
		var lease any = int64(0)
		switch in.byte() % 4 {
		case 1:
			lease = int64(in.byte()) // kine's TTL in seconds
		case 2:
			lease = in.small()
		case 3:
			lease = nil
		}
		var value any = in.bytes(int(in.byte() % 16))
		switch in.byte() % 8 {
		case 0:
			value = nil
		case 1:
			value = fmt.Sprintf("%d|%s", in.small(), in.bytes(4))
		case 2:
			value = "99999999999999999999|x"
		}
		if _, err := db.Exec(`INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, NULL)`, id, nameArg, created, deleted, createRev, prev, lease, value); err == nil {
			last[name] = id
		}
	}
}

// fuzzStore starts a store over the database and checks what it answers.
func fuzzStore(t *testing.T, path string) {
	ctx := context.Background()
	open := func() (backend.Driver, *backend.Store, error) {
		d, err := sqlite.Open(sqlite.Config{Path: path, NoFsync: true, ReadConnections: 2})
		if err != nil {
			t.Fatal(err)
		}
		s := backend.New(d, backend.Config{})
		if err := s.Start(ctx); err != nil {
			d.Close()
			return nil, nil, err
		}
		return d, s, nil
	}
	d, s, err := open()
	if err != nil {
		return // refusing a damaged table is fine; panicking is not
	}
	stop := func() {
		s.Close(ctx)
		d.Close()
	}
	rev := s.CurrentRevision()
	all := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
	before, err := s.Range(ctx, all)
	if err != nil {
		stop()
		t.Fatalf("range at the current revision %d: %v", rev, err)
	}
	olds := map[int64]*pb.RangeResponse{}
	for r := rev; r >= max(1, rev-40); r-- { // downwards: rev may be the largest int64
		resp, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: r})
		switch {
		case err == nil:
			olds[r] = resp
		case errors.Is(err, backend.ErrCompacted):
		default:
			stop()
			t.Fatalf("range at revision %d (current %d, compact %d): %v", r, rev, s.CompactRevision(), err)
		}
	}
	if _, _, err := s.History(ctx, max(1, s.CompactRevision()), rev, 1000); err != nil && !errors.Is(err, backend.ErrCompacted) {
		stop()
		t.Fatalf("history %d..%d: %v", s.CompactRevision(), rev, err)
	}
	for _, id := range s.Leases(ctx) {
		if _, err := s.LeaseTimeToLive(ctx, id, true); err != nil && !errors.Is(err, backend.ErrLeaseNotFound) {
			stop()
			t.Fatalf("lease %d: %v", id, err)
		}
	}
	// Writes on top of whatever was there. A write to a key no row names
	// succeeds. One to a key the rows name may be refused as unavailable —
	// a damaged chain may hold a row that collides with the row it writes
	// under kine's unique (name, prev_revision) index — but then it changes
	// nothing.
	for _, k := range []string{"fuzz-new-key", "a", "b", "compact_rev_key", "gap-7"} {
		cur := s.CurrentRevision()
		_, err := s.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("v"), PrevKv: true})
		if err != nil && (k == "fuzz-new-key" || !errors.Is(err, backend.ErrUnavailable)) {
			stop()
			t.Fatalf("put %q over the rows: %v", k, err)
		}
		if err != nil && s.CurrentRevision() != cur {
			stop()
			t.Fatalf("a refused put of %q moved the revision from %d to %d", k, cur, s.CurrentRevision())
		}
	}
	cur := s.CurrentRevision()
	if _, err := s.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), PrevKv: true}); err != nil {
		if !errors.Is(err, backend.ErrUnavailable) || s.CurrentRevision() != cur {
			stop()
			t.Fatalf("delete over the rows: %v", err)
		}
	}
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("fuzz-new-key"), Value: []byte("w")}); err != nil {
		stop()
		t.Fatalf("a put after the others: %v", err)
	}
	if _, _, err := s.History(ctx, rev+1, s.CurrentRevision(), 1000); err != nil {
		stop()
		t.Fatalf("history of the new writes: %v", err)
	}
	stop()

	// A restart reads the same rows the same way.
	d, s, err = open()
	if err != nil {
		t.Fatalf("a store that started once does not start again: %v", err)
	}
	defer func() { s.Close(ctx); d.Close() }()
	if rev <= 0 {
		// An empty table: revision 0 is no revision to read again (Range
		// reads 0 as "now").
		return
	}
	after, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
	if err != nil && !errors.Is(err, backend.ErrCompacted) {
		t.Fatalf("range at %d after a restart: %v", rev, err)
	}
	if err == nil {
		before.Header, after.Header = nil, nil
		if !proto.Equal(before, after) {
			t.Fatalf("revision %d read differently after a restart:\nbefore %v\nafter  %v", rev, before, after)
		}
	}
	for r, old := range olds {
		again, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: r})
		if err != nil {
			continue
		}
		old.Header, again.Header = nil, nil
		if !proto.Equal(old, again) {
			t.Fatalf("revision %d read differently after a restart:\nbefore %v\nafter  %v", r, old, again)
		}
	}
}

type rowInput struct {
	data []byte
	pos  int
}

func (in *rowInput) more() bool { return in.pos < len(in.data) }

func (in *rowInput) byte() byte {
	if in.pos >= len(in.data) {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

func (in *rowInput) bool() bool { return in.byte()&1 != 0 }

func (in *rowInput) bytes(n int) []byte {
	n = min(n, len(in.data)-in.pos)
	if n <= 0 {
		return []byte{}
	}
	b := append([]byte(nil), in.data[in.pos:in.pos+n]...)
	in.pos += n
	return b
}

// small is a small number, a negative one, or an extreme.
func (in *rowInput) small() int64 {
	switch b := in.byte(); b % 8 {
	case 0:
		return -int64(in.byte())
	case 1:
		return 1<<63 - 1
	case 2:
		return -1 << 63
	case 3:
		return int64(in.byte())<<8 | int64(in.byte())
	default:
		return int64(b % 32)
	}
}

// flag is a column of kine's 0/1 flags: 0, 1, another number, or NULL.
func (in *rowInput) flag() any {
	switch in.byte() % 8 {
	case 0, 1, 2:
		return int64(0)
	case 3, 4, 5:
		return int64(1)
	case 6:
		return int64(2)
	default:
		return nil
	}
}

func (in *rowInput) name() string {
	b := in.byte()
	if b < 240 {
		return kineRowNames[int(b)%len(kineRowNames)]
	}
	return string(in.bytes(int(b % 8)))
}

// kineRowSeeds are databases kine writes: creates, updates, deletes, a
// compaction, gap rows, TTL leases, the apiserver's compact key.
func kineRowSeeds() [][]byte {
	return [][]byte{
		{0},
		// a, created; a updated; a deleted
		{0, 0, 0, 3, 0, 1, 0, 0, 2, 'v', '1', 3, 1, 0, 0, 1, 1, 0, 0, 2, 'v', '2', 3, 0, 0, 3, 1, 1, 1, 0, 0, 0},
		// the compact row, then keys with kine TTL leases
		{0, 0, 3, 3, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0, 1, 0, 1, 30, 2, 'x', 'y', 3},
		// compact_rev_key_apiserver with kine's "<version>|<value>"
		{0, 0, 4, 3, 0, 0, 1, 0, 1, 3, 'a', 'b', 'c', 'd'},
		// gap rows and a kinelite lease table
		{3, 2, 5, 3, 0, 5, 0, 1, 1, 0, 0, 5, 7, 0, 0, 5, 1, 0, 1, 0, 0},
	}
}
