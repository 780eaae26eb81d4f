package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
	"github.com/kinelite/kinelite/watchhub"
)

const (
	listBenchKeys   = 20_000
	listBenchLimit  = 500
	listBenchPrefix = "/registry/bench/list/"
)

// listBenchStore opens a store on a fresh SQLite file holding
// listBenchKeys keys of 1 KiB under listBenchPrefix. With ring, a watch hub
// is its event sink and still holds every value (as in a server that wrote
// them recently); without, every value is read from the table.
func listBenchStore(b *testing.B, ring bool) *backend.Store {
	b.Helper()
	driver, err := sqlite.Open(sqlite.Config{Path: filepath.Join(b.TempDir(), "state.db")})
	if err != nil {
		b.Fatal(err)
	}
	s := backend.New(driver, backend.Config{})
	if ring {
		s.SetEventSink(watchhub.New(s, watchhub.Config{}))
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.Close(context.Background())
		_ = driver.Close()
	})
	const writers = 64
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < listBenchKeys; i += writers {
				key := fmt.Appendf(nil, "%s%08d", listBenchPrefix, i)
				if _, err := s.Put(context.Background(), &pb.PutRequest{Key: key, Value: benchValue}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkRangeList lists listBenchKeys keys of 1 KiB in pages of
// listBenchLimit, every page after the first at the first page's revision,
// as kube-apiserver pages a list. One op is the whole list; marshal also
// encodes each response as the gRPC server would.
func BenchmarkRangeList(b *testing.B) {
	for _, tc := range []struct {
		name          string
		ring, marshal bool
	}{
		{"values=sql", false, false},
		{"values=ring", true, false},
		{"values=ring/marshal", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := listBenchStore(b, tc.ring)
			end := []byte(listBenchPrefix[:len(listBenchPrefix)-1] + "0")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int
			for range b.N {
				key := []byte(listBenchPrefix)
				var rev int64
				n := 0
				for {
					resp, err := s.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: end, Limit: listBenchLimit, Revision: rev})
					if err != nil {
						b.Fatal(err)
					}
					if tc.marshal {
						out, err := proto.Marshal(resp)
						if err != nil {
							b.Fatal(err)
						}
						bytes += len(out)
					}
					if rev == 0 {
						rev = resp.Header.Revision
					}
					n += len(resp.Kvs)
					if len(resp.Kvs) == 0 || !resp.More {
						break
					}
					key = append(resp.Kvs[len(resp.Kvs)-1].Key, 0)
				}
				if n != listBenchKeys {
					b.Fatalf("listed %d keys, want %d", n, listBenchKeys)
				}
			}
			if tc.marshal {
				b.ReportMetric(float64(bytes)/float64(b.N), "bytes/op")
			}
		})
	}
}
