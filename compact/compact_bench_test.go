package compact_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/compact"
)

// BenchmarkCompactBacklog compacts a backlog shaped like the bench's
// compaction workload — every key updated in turn, 1 KiB values, so each
// step's rows belong to as many keys as it has rows — with the compactor's
// defaults and the store to itself, and reports per deleted row the wall
// time to physically done (half of it the pacer's rests), the process's CPU
// time (steps, checkpoints and their syncs), and the checkpoints that
// copied. Sub-benchmarks vary WALFrames: 1 copies whatever waits at every
// tick; 4096 copies least in all but makes the commits beside each
// checkpoint wait (which this benchmark, without writes, does not show).
func BenchmarkCompactBacklog(b *testing.B) {
	const keys, updates = 1000, 40
	for _, frames := range []int64{1, compact.DefaultWALFrames, 4096} {
		b.Run(fmt.Sprintf("walFrames=%d", frames), func(b *testing.B) {
			var rows, wall, cpu, checkpoints float64
			for range b.N {
				b.StopTimer()
				s := openStore(b, filepath.Join(b.TempDir(), "state.db"))
				preload(b, s, keys, updates)
				rev := s.CurrentRevision()
				c := compact.New(s, compact.Config{WALFrames: frames})
				cpu0, began := processCPU(), time.Now()
				b.StartTimer()
				c.Start()
				if err := c.Compact(context.Background(), rev, true); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				wall += time.Since(began).Seconds()
				cpu += (processCPU() - cpu0).Seconds()
				c.Close()
				rows += float64(keys * (updates - 1))
				checkpoints += testutil.ToFloat64(c.Collectors()[2].(prometheus.Counter))
				s.Close(context.Background())
			}
			b.ReportMetric(wall/rows*1e6, "wall-µs/row")
			b.ReportMetric(cpu/rows*1e6, "cpu-µs/row")
			b.ReportMetric(checkpoints/float64(b.N), "checkpoints/op")
		})
	}
}

// preload updates each of keys keys updates times, in turn, from 50
// concurrent clients.
func preload(b *testing.B, s *backend.Store, keys, updates int) {
	const clients = 50
	for range updates {
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for k := c; k < keys; k += clients {
					if _, err := s.Put(context.Background(), &pb.PutRequest{Key: fmt.Appendf(nil, "/registry/pods/ns/pod-%06d", k), Value: make([]byte, 1024)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
