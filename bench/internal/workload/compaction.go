package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Compaction measures a compaction of many superseded revisions under a
// paced apiserver-shaped update load: Keys keys written Updates+1 times
// (Keys*Updates superseded revisions), then updates at Rate per second for
// Phase before the Compact call, during it, and for Phase after it returns.
// Compact asks for physical compaction, so it returns once the superseded
// rows are gone (etcd and kinelite honour that; kine always compacts before
// answering).
type Compaction struct {
	Keys    int
	Updates int
	Rate    float64
	Phase   time.Duration
}

func (w Compaction) Name() string { return "compaction" }

func (w Compaction) Describe() string {
	return fmt.Sprintf("compact %d superseded revisions (%d keys × %d updates) under %g updates/s; "+
		"%s of updates before and after", w.Keys*w.Updates, w.Keys, w.Updates, w.Rate, w.Phase)
}

const compactPrefix = "/registry/bench/compact/"

type timedUpdate struct {
	start, end time.Time
}

func (w Compaction) Run(ctx context.Context, env *Env) (Result, error) {
	keys := keyList(compactPrefix, w.Keys)
	if err := preload(ctx, env, keys, w.Updates+1); err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	revs, err := modRevisions(ctx, env.client(0), compactPrefix)
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	cache := &revCache{revs: revs}
	val := value(env.ValueSize, 7)

	var (
		mu      sync.Mutex
		updates []timedUpdate
		errs    atomic.Int64
	)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan struct{})
	// The load runs until stopped; paced needs a length, so give it a
	// generous one.
	go func() {
		defer close(loadDone)
		paced(lctx, w.Rate, 24*time.Hour, func(ctx context.Context, seq int, at time.Time) {
			key := keys[rand.IntN(len(keys))]
			cli := env.client(seq)
			rev := cache.get(key)
			for attempt := 0; attempt < 100; attempt++ {
				resp, err := updateTxn(ctx, cli, key, val, rev)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				if resp.Succeeded {
					cache.set(key, resp.Header.Revision)
					mu.Lock()
					updates = append(updates, timedUpdate{start: at, end: time.Now()})
					mu.Unlock()
					return
				}
				rev = currentRev(resp)
				cache.set(key, rev)
			}
			errs.Add(1)
		})
	}()

	env.Begin()
	if err := sleepCtx(ctx, w.Phase); err != nil {
		return nil, err
	}
	sizeBefore, err := env.DBSize()
	if err != nil {
		return nil, errorf(w.Name(), "size: %w", err)
	}
	cli := env.client(0)
	head, err := cli.Get(ctx, compactPrefix, clientv3.WithCountOnly())
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	compactStart := time.Now()
	if _, err := cli.Compact(ctx, head.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return nil, errorf(w.Name(), "compact: %w", err)
	}
	compactEnd := time.Now()
	if err := sleepCtx(ctx, w.Phase); err != nil {
		return nil, err
	}
	stopLoad()
	<-loadDone
	env.End()
	sizeAfter, err := env.DBSize()
	if err != nil {
		return nil, errorf(w.Name(), "size: %w", err)
	}

	var before, during, after []time.Duration
	mu.Lock()
	for _, u := range updates {
		d := u.end.Sub(u.start)
		switch {
		case u.end.Before(compactStart):
			before = append(before, d)
		case u.start.After(compactEnd):
			after = append(after, d)
		default: // in flight at some point of the compaction
			during = append(during, d)
		}
	}
	mu.Unlock()
	var r Result
	_, b99 := quantilesMS(before)
	_, d99 := quantilesMS(during)
	_, a99 := quantilesMS(after)
	r.add("Compact wall time", "s", Lower, compactEnd.Sub(compactStart).Seconds())
	r.add("update p99 before", "ms", Lower, b99)
	r.add("update p99 during", "ms", Lower, d99)
	r.add("update p99 after", "ms", Lower, a99)
	r.add("db size before", "MiB", Lower, float64(sizeBefore)/(1<<20))
	r.add("db size after", "MiB", Lower, float64(sizeAfter)/(1<<20))
	r.count("update errors", float64(errs.Load()))
	return r, nil
}
