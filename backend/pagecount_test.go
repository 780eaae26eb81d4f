package backend_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
)

// TestPagedListCounts pages through a range at a fixed revision while keys
// inside and around it are created, updated and deleted, and checks that
// every page (keys, values, more, count) is what a Range of the same window
// at that revision with no earlier page returns: the count a page leaves for
// the next must be exact, whatever happens after the revision, and whether
// the next page asks as the list does or in some other way.
func TestPagedListCounts(t *testing.T) {
	ctx := context.Background()
	driver, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	s := backend.New(driver, backend.Config{})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close(ctx); driver.Close() }()
	put := func(key string, v int) {
		t.Helper()
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: fmt.Appendf(nil, "v%d", v)}); err != nil {
			t.Fatal(err)
		}
	}
	del := func(key string) {
		t.Helper()
		if _, err := s.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		put(fmt.Sprintf("/p/%03d", i), i)
	}
	del("/p/010")
	del("/p/011")
	put("/q/0", 0)

	for _, tc := range []struct {
		name     string
		end      string
		limit    int64
		keysOnly bool
	}{
		{"prefix", "/p0", 7, false},
		{"prefix/limit1", "/p0", 1, false},
		{"prefix/keysonly", "/p0", 9, true},
		{"open", "\x00", 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := func(key []byte, rev int64) *pb.RangeResponse {
				t.Helper()
				// Sorting by key explicitly takes the path that neither
				// uses nor leaves a remembered count.
				resp, err := s.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: []byte(tc.end), Limit: tc.limit,
					Revision: rev, KeysOnly: tc.keysOnly, SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_DESCEND})
				if err != nil {
					t.Fatal(err)
				}
				all, err := s.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: []byte(tc.end), Revision: rev, KeysOnly: tc.keysOnly})
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(all.Kvs)) > tc.limit {
					all.Kvs, all.More = all.Kvs[:tc.limit], true
				}
				if resp.Count != all.Count || resp.More != all.More {
					t.Fatalf("fresh count %d more %v, unlimited %d %v", resp.Count, resp.More, all.Count, all.More)
				}
				return all
			}
			key := []byte("/p/")
			var rev int64
			step := 0
			for {
				resp, err := s.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: []byte(tc.end), Limit: tc.limit,
					Revision: rev, KeysOnly: tc.keysOnly})
				if err != nil {
					t.Fatal(err)
				}
				if rev == 0 {
					rev = resp.Header.Revision
				}
				want := fresh(key, rev)
				if resp.Count != want.Count || resp.More != want.More || len(resp.Kvs) != len(want.Kvs) {
					t.Fatalf("page at %q: count %d more %v keys %d; want %d %v %d",
						key, resp.Count, resp.More, len(resp.Kvs), want.Count, want.More, len(want.Kvs))
				}
				for i, kv := range resp.Kvs {
					w := want.Kvs[i]
					if !bytes.Equal(kv.Key, w.Key) || !bytes.Equal(kv.Value, w.Value) || kv.ModRevision != w.ModRevision {
						t.Fatalf("page at %q: key %d is %q=%q@%d; want %q=%q@%d",
							key, i, kv.Key, kv.Value, kv.ModRevision, w.Key, w.Value, w.ModRevision)
					}
				}
				if !resp.More {
					break
				}
				// Change the store after rev, in the rest of the range and
				// before it.
				step++
				put(fmt.Sprintf("/p/%03d", 59-step), 1000+step) // update ahead
				put(fmt.Sprintf("/p/%03da", 40+step), step)     // create ahead
				del(fmt.Sprintf("/p/%03d", 50+step))            // delete ahead
				del(fmt.Sprintf("/p/%03d", step))               // delete behind
				key = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
				if step%3 == 0 {
					// Ask for the same page twice: the second has no
					// remembered count and must count afresh.
					if _, err := s.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: []byte(tc.end), Limit: tc.limit, Revision: rev}); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}
