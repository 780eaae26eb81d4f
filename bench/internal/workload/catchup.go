package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// CatchUp measures watches restarting from an old revision: Revisions
// single-key writes spread over Prefixes prefixes, then Watches watches (one
// gRPC stream each, prev_kv), each on one prefix, all starting at the first
// of those revisions. It reports the time until every watch has received
// every event of its prefix.
type CatchUp struct {
	Watches   int
	Revisions int
	Prefixes  int
	Timeout   time.Duration
}

func (w CatchUp) Name() string { return "watch-catchup" }

func (w CatchUp) Describe() string {
	return fmt.Sprintf("%d watches (one stream each, prev_kv) restart %d revisions back, spread over %d prefixes",
		w.Watches, w.Revisions, w.Prefixes)
}

const catchUpPrefix = "/registry/bench/catchup/"

// catchUpKeysPerPrefix is how many keys of a prefix the writes cycle over.
const catchUpKeysPerPrefix = 5

func (w CatchUp) Run(ctx context.Context, env *Env) (Result, error) {
	// The revision before the writes.
	head, err := env.client(0).Get(ctx, catchUpPrefix, clientv3.WithCountOnly())
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	startRev := head.Header.Revision + 1
	perPrefix := make([]int64, w.Prefixes)
	for j := range w.Revisions {
		perPrefix[j%w.Prefixes]++
	}
	// Write the revisions: each worker owns some prefixes, so each key's
	// writes stay in order.
	val := value(env.ValueSize, 5)
	workers := min(16, w.Prefixes)
	g, gctx := errgroup.WithContext(ctx)
	for wk := range workers {
		g.Go(func() error {
			cli := env.client(wk)
			revs := make(map[string]int64)
			for j := range w.Revisions {
				p := j % w.Prefixes
				if p%workers != wk {
					continue
				}
				key := fmt.Sprintf("%sp%04d/k%02d", catchUpPrefix, p, (j/w.Prefixes)%catchUpKeysPerPrefix)
				rev, err := putApiserver(gctx, cli, key, val, revs[key])
				if err != nil {
					return err
				}
				revs[key] = rev
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, errorf(w.Name(), "write: %w", err)
	}
	last, err := env.client(0).Get(ctx, catchUpPrefix, clientv3.WithCountOnly())
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	if got := last.Header.Revision - startRev + 1; got != int64(w.Revisions) {
		return nil, errorf(w.Name(), "the writes took %d revisions, want %d", got, w.Revisions)
	}

	wctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	var (
		lat        latencies
		received   atomic.Int64
		outOfOrder atomic.Int64
		incomplete atomic.Int64
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	env.Begin()
	start := time.Now()
	for i := range w.Watches {
		p := i % w.Prefixes
		want := perPrefix[p]
		wg.Add(1)
		go func() {
			defer wg.Done()
			prefix := fmt.Sprintf("%sp%04d/", catchUpPrefix, p)
			wch := env.client(i).Watch(streamCtx(wctx, i), prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(),
				clientv3.WithRev(startRev))
			var got, lastRev int64
			for resp := range wch {
				if err := resp.Err(); err != nil {
					if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
						firstErr.CompareAndSwap(nil, err)
					}
					break
				}
				for _, ev := range resp.Events {
					if ev.Kv.ModRevision <= lastRev {
						outOfOrder.Add(1)
					}
					lastRev = ev.Kv.ModRevision
					got++
				}
				if got >= want {
					lat.add(time.Since(start))
					break
				}
			}
			received.Add(got)
			if got < want {
				incomplete.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	env.End()
	cancel()
	if err, ok := firstErr.Load().(error); ok && incomplete.Load() > 0 {
		return nil, errorf(w.Name(), "%d watches incomplete: %w", incomplete.Load(), err)
	}
	var r Result
	// With watches that timed out, this is the timeout; the count below
	// says how many.
	r.add("all caught up", "s", Lower, elapsed.Seconds())
	p50, p99 := quantilesMS(lat.d)
	r.add("per-watch p50", "ms", Lower, p50)
	r.add("per-watch p99", "ms", Lower, p99)
	r.add("events delivered", "events/s", Higher, float64(received.Load())/elapsed.Seconds())
	r.count("watches not caught up", float64(incomplete.Load()))
	r.count("out-of-order events", float64(outOfOrder.Load()))
	return r, nil
}
