package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

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
// encodes each response as the gRPC server does.
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
			cpu0 := processCPU(b)
			var bytes int
			var out []byte
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
						// As gRPC's codec does: size, then marshal into a
						// reused (pooled) buffer.
						size := proto.Size(resp)
						if out, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(out[:0], resp); err != nil {
							b.Fatal(err)
						}
						bytes += size
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
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			if tc.marshal {
				b.ReportMetric(float64(bytes)/float64(b.N), "bytes/op")
			}
		})
	}
}

// processCPU returns the CPU time (user and system) the process has used:
// on a shared machine the wall time of an op says little, its CPU time more.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
