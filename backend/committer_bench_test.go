package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
)

// benchStore opens a Store on a fresh SQLite file (WAL, fsync on: the
// durable default) and a registry holding its metrics.
func benchStore(b *testing.B) (*backend.Store, *prometheus.Registry) {
	b.Helper()
	driver, err := sqlite.Open(sqlite.Config{Path: filepath.Join(b.TempDir(), "state.db")})
	if err != nil {
		b.Fatal(err)
	}
	s := backend.New(driver, backend.Config{})
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.Close(context.Background())
		_ = driver.Close()
	})
	reg := prometheus.NewRegistry()
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			b.Fatal(err)
		}
	}
	return s, reg
}

// benchCommits returns the number of successful group commits so far
// (kinelite_commits_total{result="ok"}).
func benchCommits(b *testing.B, reg *prometheus.Registry) float64 {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kinelite_commits_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "ok" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0 // no commit yet: the counter has no child

}

// benchCommitter runs op from clients concurrent goroutines (b.N ops in all)
// and reports what the committer did with them: revisions and group commits
// per op, and rows (revisions) per commit.
func benchCommitter(b *testing.B, clients int, op func(s *backend.Store, client, i int) error) {
	s, reg := benchStore(b)
	var next atomic.Int64
	var client atomic.Int64
	rev0, commits0 := s.CurrentRevision(), benchCommits(b, reg)
	b.ReportAllocs()
	b.SetParallelism(clients) // clients × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := int(client.Add(1))
		for pb.Next() {
			if err := op(s, c, int(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	revs := float64(s.CurrentRevision() - rev0)
	commits := benchCommits(b, reg) - commits0
	b.ReportMetric(revs/float64(b.N), "revisions/op")
	b.ReportMetric(commits/float64(b.N), "commits/op")
	if commits > 0 {
		b.ReportMetric(revs/commits, "rows/commit")
	}
}

var benchValue = func() []byte {
	v := make([]byte, 1024)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}()

// clientCounts are the concurrency levels: SetParallelism multiplies by
// GOMAXPROCS, so these are per-CPU goroutines.
var clientCounts = []int{1, 8, 64}

// BenchmarkCommitterPut measures plain Puts of new 1 KiB keys from
// concurrent clients through the group-commit committer on a SQLite file.
func BenchmarkCommitterPut(b *testing.B) {
	for _, c := range clientCounts {
		b.Run(fmt.Sprintf("clients=%dxGOMAXPROCS", c), func(b *testing.B) {
			benchCommitter(b, c, func(s *backend.Store, client, i int) error {
				_, err := s.Put(context.Background(), &pb.PutRequest{Key: fmt.Appendf(nil, "/registry/put/%09d", i), Value: benchValue})
				return err
			})
		})
	}
}

// BenchmarkCommitterTxnCreate measures kube-apiserver's create,
// Txn(MOD(key) == 0 → Put), on new keys from concurrent clients.
func BenchmarkCommitterTxnCreate(b *testing.B) {
	for _, c := range clientCounts {
		b.Run(fmt.Sprintf("clients=%dxGOMAXPROCS", c), func(b *testing.B) {
			benchCommitter(b, c, func(s *backend.Store, client, i int) error {
				key := fmt.Appendf(nil, "/registry/create/%09d", i)
				resp, err := s.Txn(context.Background(), &pb.TxnRequest{
					Compare: []*pb.Compare{{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
						TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
					Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: benchValue}}}},
				})
				if err == nil && !resp.Succeeded {
					err = fmt.Errorf("create %s: compare failed", key)
				}
				return err
			})
		})
	}
}

// BenchmarkCommitterTxnUpdate measures kube-apiserver's update,
// Txn(MOD(key) == rev → Put, else Get), each client updating a key of its
// own, so every compare holds; the previous value of each update is read
// back for the watch event.
func BenchmarkCommitterTxnUpdate(b *testing.B) {
	for _, c := range clientCounts {
		b.Run(fmt.Sprintf("clients=%dxGOMAXPROCS", c), func(b *testing.B) {
			var revs [1 << 16]atomic.Int64
			benchCommitter(b, c, func(s *backend.Store, client, i int) error {
				key := fmt.Appendf(nil, "/registry/update/%05d", client)
				rev := revs[client].Load()
				resp, err := s.Txn(context.Background(), &pb.TxnRequest{
					Compare: []*pb.Compare{{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
						TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}},
					Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: benchValue}}}},
					Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}},
				})
				if err != nil {
					return err
				}
				if !resp.Succeeded {
					return fmt.Errorf("update %s at %d: compare failed", key, rev)
				}
				revs[client].Store(resp.Header.Revision)
				return nil
			})
		})
	}
}
