package watchhub_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kinelite/kinelite/watchhub"
)

// benchHistory is a store with no history: the benchmarks only read from the
// ring.
type benchHistory struct{}

func (benchHistory) History(ctx context.Context, from, to int64, limit int) ([]*mvccpb.Event, int64, error) {
	return nil, to, nil
}
func (benchHistory) CompactRevision() int64 { return 0 }

// benchStreams serves n watch streams on h, each with one watch on
// [key, end), and counts the events they send.
type benchStreams struct {
	events atomic.Int64
	mu     sync.Mutex
	cond   *sync.Cond
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startBenchStreams(b *testing.B, h *watchhub.Hub, n int, key, end string, counted *benchStreams) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	created := make(chan struct{}, n)
	prev := counted.cancel
	counted.cancel = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	for range n {
		reqs := make(chan *pb.WatchRequest, 1)
		reqs <- &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte(key), RangeEnd: []byte(end), PrevKv: true,
		}}}
		counted.wg.Add(1)
		go func() {
			defer counted.wg.Done()
			_ = h.Serve(ctx, reqs, func(resp *pb.WatchResponse) error {
				if resp.Created {
					created <- struct{}{}
					return nil
				}
				if len(resp.Events) > 0 {
					counted.events.Add(int64(len(resp.Events)))
					counted.mu.Lock()
					counted.cond.Broadcast()
					counted.mu.Unlock()
				}
				return nil
			})
		}()
	}
	for range n {
		<-created
	}
}

// waitEvents waits until the streams have sent want events in all.
func (s *benchStreams) waitEvents(want int64) {
	s.mu.Lock()
	for s.events.Load() < want {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

func (s *benchStreams) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

var benchValue = make([]byte, 1024)

// BenchmarkPublishFanout publishes one 1 KiB event per op (an update, with
// its previous value) and waits until the streams that watch its prefix have
// sent it. "active": every one of the streams watches the prefix. "idle": one
// stream watches it and the others watch a prefix that never changes, so
// they only wake up and find nothing; that is the cost idle watchers add to
// delivery.
func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		for _, mode := range []string{"active", "idle"} {
			if n == 1 && mode == "idle" {
				continue
			}
			b.Run(fmt.Sprintf("streams=%d/%s", n, mode), func(b *testing.B) {
				h := watchhub.New(benchHistory{}, watchhub.Config{})
				h.Start()
				defer h.Close()
				h.Publish(1, nil)
				counted := &benchStreams{}
				counted.cond = sync.NewCond(&counted.mu)
				receivers := n
				if mode == "idle" {
					startBenchStreams(b, h, n-1, "/registry/idle/", "/registry/idle0", counted)
					receivers = 1
				}
				startBenchStreams(b, h, receivers, "/registry/pods/", "/registry/pods0", counted)
				defer counted.stop()

				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					rev := int64(i + 2)
					key := []byte(fmt.Sprintf("/registry/pods/ns/pod-%d", i%100))
					h.Publish(rev, []*mvccpb.Event{{
						Type:   mvccpb.PUT,
						Kv:     &mvccpb.KeyValue{Key: key, Value: benchValue, ModRevision: rev, CreateRevision: 2, Version: rev},
						PrevKv: &mvccpb.KeyValue{Key: key, Value: benchValue, ModRevision: rev - 1, CreateRevision: 2, Version: rev - 1},
					}})
					counted.waitEvents(int64(receivers) * int64(i+1))
				}
				b.StopTimer()
				b.ReportMetric(float64(counted.events.Load())/float64(b.N), "deliveries/op")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(counted.events.Load()), "ns/delivery")
			})
		}
	}
}

// BenchmarkPublishBatch publishes a group commit of 64 events per op to 100
// streams that all watch the prefix.
func BenchmarkPublishBatch(b *testing.B) {
	const batch, n = 64, 100
	h := watchhub.New(benchHistory{}, watchhub.Config{})
	h.Start()
	defer h.Close()
	h.Publish(1, nil)
	counted := &benchStreams{}
	counted.cond = sync.NewCond(&counted.mu)
	startBenchStreams(b, h, n, "/registry/pods/", "/registry/pods0", counted)
	defer counted.stop()
	rev := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		evs := make([]*mvccpb.Event, batch)
		for j := range evs {
			rev++
			evs[j] = &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{
				Key: []byte(fmt.Sprintf("/registry/pods/ns/pod-%d", j)), Value: benchValue, ModRevision: rev, CreateRevision: rev, Version: 1,
			}}
		}
		h.Publish(rev, evs)
		counted.waitEvents(int64(n) * int64(batch) * int64(i+1))
	}
	b.StopTimer()
	b.ReportMetric(float64(counted.events.Load())/float64(b.N), "deliveries/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(counted.events.Load()), "ns/delivery")
}
