package workload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// streamCtx returns a context whose watches travel on a gRPC watch stream of
// their own: the client shares a stream among watches whose contexts carry
// the same metadata. It also asks for a leader, as kube-apiserver does.
func streamCtx(ctx context.Context, stream int) context.Context {
	return clientv3.WithRequireLeader(metadata.AppendToOutgoingContext(ctx, "bench-stream", strconv.Itoa(stream)))
}

// awaitCreated reads a watch's first response, which must confirm creation.
func awaitCreated(wch clientv3.WatchChan) error {
	resp, ok := <-wch
	if !ok {
		return errors.New("watch closed before it was created")
	}
	if err := resp.Err(); err != nil {
		return err
	}
	if !resp.Created {
		return errors.New("first watch response is not the creation")
	}
	return nil
}

// WatchLatency measures event delivery: Watchers watches (each on its own
// gRPC stream, with prev_kv, as kube-apiserver watches) on one prefix while
// a paced writer creates keys under it. Latency runs from a write's
// scheduled send time to its event's arrival at a watcher.
type WatchLatency struct {
	Watchers int
	Rate     float64
	Duration time.Duration
	// Drain bounds the wait for the last events after the last write.
	Drain time.Duration

	// cross (CrossWatch) sends the writes through Env.Peer, another process,
	// and also measures delivery from each write's acknowledgement.
	cross bool
}

func (w WatchLatency) Name() string { return fmt.Sprintf("watch-%d", w.Watchers) }

func (w WatchLatency) Describe() string {
	return fmt.Sprintf("%d watchers (one gRPC stream each, prev_kv) on a prefix; %g creates/s for %s",
		w.Watchers, w.Rate, w.Duration)
}

type watcherStats struct {
	lat        []time.Duration
	seen       []bool
	unique     atomic.Int64
	dups       int64
	outOfOrder int64
	lastRev    int64
	closedErr  error
	// arrival[seq] is when the event of write seq arrived (UnixNano), for
	// the cross-process workload.
	arrival []int64
}

func (w WatchLatency) Run(ctx context.Context, env *Env) (Result, error) {
	prefix := "/registry/bench/watch/"
	n := int(w.Rate * w.Duration.Seconds())
	sendAt := make([]atomic.Int64, n)
	ackAt := make([]atomic.Int64, n)
	writeClient := env.client
	if w.cross {
		writeClient = func(i int) *clientv3.Client { return env.Peer[i%len(env.Peer)] }
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stats := make([]*watcherStats, w.Watchers)
	var created, done sync.WaitGroup
	var createErr atomic.Value
	var lastEvent atomic.Int64
	for i := range w.Watchers {
		st := &watcherStats{seen: make([]bool, n), lat: make([]time.Duration, 0, n)}
		if w.cross {
			st.arrival = make([]int64, n)
		}
		stats[i] = st
		created.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			wch := env.client(i).Watch(streamCtx(wctx, i), prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(),
				clientv3.WithCreatedNotify())
			err := awaitCreated(wch)
			created.Done()
			if err != nil {
				createErr.Store(err)
				return
			}
			for resp := range wch {
				now := time.Now()
				if err := resp.Err(); err != nil {
					st.closedErr = err
					return
				}
				for _, ev := range resp.Events {
					seq, err := strconv.Atoi(string(ev.Kv.Key[len(prefix):]))
					if err != nil || seq < 0 || seq >= n {
						continue
					}
					if ev.Kv.ModRevision <= st.lastRev {
						st.outOfOrder++
					}
					st.lastRev = max(st.lastRev, ev.Kv.ModRevision)
					if st.seen[seq] {
						st.dups++
						continue
					}
					st.seen[seq] = true
					if st.arrival != nil {
						st.arrival[seq] = now.UnixNano()
					}
					if at := sendAt[seq].Load(); at != 0 {
						st.lat = append(st.lat, now.Sub(time.Unix(0, at)))
					}
					st.unique.Add(1)
					lastEvent.Store(now.UnixNano())
				}
			}
		}()
	}
	created.Wait()
	if err, ok := createErr.Load().(error); ok {
		return nil, errorf(w.Name(), "create watches: %w", err)
	}
	env.Logf("%d watches created", w.Watchers)

	val := value(env.ValueSize, 4)
	var acked, writeErrs atomic.Int64
	env.Begin()
	start := time.Now()
	paced(ctx, w.Rate, w.Duration, func(ctx context.Context, seq int, at time.Time) {
		sendAt[seq].Store(at.UnixNano())
		key := fmt.Sprintf("%s%09d", prefix, seq)
		resp, err := createTxn(ctx, writeClient(seq), key, val)
		if err != nil || !resp.Succeeded {
			writeErrs.Add(1)
			return
		}
		ackAt[seq].Store(time.Now().UnixNano())
		acked.Add(1)
	})
	// Wait for every watcher to see every acknowledged write.
	drainUntil := time.Now().Add(w.Drain)
	for time.Now().Before(drainUntil) {
		all := true
		for _, st := range stats {
			if st.unique.Load() < acked.Load() {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	env.End()
	cancel()
	done.Wait()

	var lat, afterAck latencies
	var missed, outOfOrder, dups, closed, delivered int64
	for _, st := range stats {
		lat.addAll(st.lat)
		for seq, at := range st.arrival {
			if ack := ackAt[seq].Load(); at != 0 && ack != 0 {
				// An event may reach a watcher before its write's
				// acknowledgement reaches the writer.
				afterAck.add(time.Duration(max(0, at-ack)))
			}
		}
		delivered += st.unique.Load()
		missed += max(0, acked.Load()-st.unique.Load())
		outOfOrder += st.outOfOrder
		dups += st.dups
		if st.closedErr != nil && !errors.Is(st.closedErr, context.Canceled) {
			closed++
		}
	}
	elapsed := time.Unix(0, lastEvent.Load()).Sub(start)
	var r Result
	p50, p99 := quantilesMS(lat.d)
	r.add("delivery p50", "ms", Lower, p50)
	r.add("delivery p99", "ms", Lower, p99)
	if w.cross {
		p50, p99 := quantilesMS(afterAck.d)
		r.add("delivery after ack p50", "ms", Lower, p50)
		r.add("delivery after ack p99", "ms", Lower, p99)
	}
	r.add("events delivered", "events/s", Higher, float64(delivered)/elapsed.Seconds())
	r.count(fmt.Sprintf("events missing %s after the last write", w.Drain), float64(missed))
	r.count("out-of-order events", float64(outOfOrder))
	r.count("duplicate events", float64(dups))
	r.count("watches ended by server", float64(closed))
	r.count("write errors", float64(writeErrs.Load()))
	if w.cross {
		// Shown even when zero: that nothing was lost is the point.
		for i := range r {
			if r[i].Name != "write errors" && r[i].Name != "watches ended by server" {
				r[i].HideIfZero = false
			}
		}
	}
	return r, nil
}
