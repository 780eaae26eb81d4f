package workload

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// closedLoop runs workers, each calling op back to back until d has passed,
// and returns the latency of every successful op and the number of failed
// ones. op returns the latency to record (the harness records what it
// returns, so an op made of several requests can report the whole).
// A failing op is counted, not retried; after maxErrors failures the run
// stops with an error.
func closedLoop(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context, worker, i int) (time.Duration, error)) (lat []time.Duration, elapsed time.Duration, failed int64, err error) {
	const maxErrors = 100
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		all      latencies
		errCount atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	began := time.Now()
	deadline := began.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				l, err := op(ctx, w, i)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					if errCount.Add(1) >= maxErrors {
						errOnce.Do(func() { firstErr = err })
						cancel()
					}
					continue
				}
				local = append(local, l)
			}
			all.addAll(local)
		}()
	}
	wg.Wait()
	elapsed = time.Since(began)
	if firstErr != nil {
		return all.d, elapsed, errCount.Load(), errors.Join(errors.New("too many failed requests"), firstErr)
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return all.d, elapsed, errCount.Load(), err
	}
	return all.d, elapsed, errCount.Load(), nil
}

// paced calls op at rate per second for d, each call in its own goroutine
// at its scheduled time (an open loop: a slow server does not slow the
// arrivals). It waits for every call to return. op gets the call's sequence
// number and scheduled time.
func paced(ctx context.Context, rate float64, d time.Duration, op func(ctx context.Context, seq int, at time.Time)) int {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	sent := 0
	for seq := 0; seq < n; seq++ {
		at := start.Add(time.Duration(seq) * interval)
		if wait := time.Until(at); wait > 0 {
			if sleepCtx(ctx, wait) != nil {
				break
			}
		}
		wg.Add(1)
		sent++
		go func() {
			defer wg.Done()
			op(ctx, seq, at)
		}()
	}
	wg.Wait()
	return sent
}
