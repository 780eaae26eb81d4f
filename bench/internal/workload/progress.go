package workload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Progress measures RequestWatchProgress, which kube-apiserver sends before
// serving a consistent read from its cache: one watch on a prefix that a
// paced writer writes to, and one client that asks for progress and waits for
// the notification, back to back. It also checks the guarantee the apiserver
// relies on: no event at or below a notified revision arrives after the
// notification.
type Progress struct {
	Duration time.Duration
	Rate     float64
	Timeout  time.Duration
}

// progressRetry is kube-apiserver's interval between progress requests
// while it waits (k8s.io/apiserver storage/cacher/progress).
const progressRetry = 100 * time.Millisecond

func (w Progress) Name() string { return "watch-progress" }

func (w Progress) Describe() string {
	return fmt.Sprintf("RequestWatchProgress round trips, back to back for %s, on a watch receiving %g creates/s; "+
		"like kube-apiserver, the client repeats the request every 100 ms until answered, and the round trip "+
		"runs from the first request to the notification", w.Duration, w.Rate)
}

func (w Progress) Run(ctx context.Context, env *Env) (Result, error) {
	prefix := "/registry/bench/progress/"
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sctx := streamCtx(wctx, 0)
	cli := env.client(0)
	wch := cli.Watch(sctx, prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	if err := awaitCreated(wch); err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	progc := make(chan int64, 64)
	var violations, notified atomic.Int64
	var watchErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for resp := range wch {
			if err := resp.Err(); err != nil {
				watchErr.Store(err)
				return
			}
			if resp.IsProgressNotify() {
				rev := resp.Header.Revision
				if rev > notified.Load() {
					notified.Store(rev)
				}
				select {
				case progc <- rev:
				default:
				}
				continue
			}
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision <= notified.Load() {
					violations.Add(1)
				}
			}
		}
	}()

	val := value(env.ValueSize, 6)
	var writeErrs atomic.Int64
	wctx2, stopWrites := context.WithCancel(wctx)
	defer stopWrites()
	writesDone := make(chan struct{})
	go func() {
		defer close(writesDone)
		paced(wctx2, w.Rate, w.Duration+time.Second, func(ctx context.Context, seq int, _ time.Time) {
			key := fmt.Sprintf("%s%09d", prefix, seq)
			if resp, err := createTxn(ctx, env.client(1+seq), key, val); (err != nil || !resp.Succeeded) && ctx.Err() == nil {
				writeErrs.Add(1)
			}
		})
	}()

	var rtts []time.Duration
	var timeouts, requests int64
	env.Begin()
	deadline := time.Now().Add(w.Duration)
	for time.Now().Before(deadline) && ctx.Err() == nil {
	drain:
		for {
			select {
			case <-progc:
			default:
				break drain
			}
		}
		// kube-apiserver repeats the request every 100 ms until a
		// notification comes: servers may leave a request unanswered while
		// a watch is catching up (etcd and kine do).
		t := time.Now()
		answered := false
		for !answered && time.Since(t) < w.Timeout && ctx.Err() == nil {
			if err := cli.RequestProgress(sctx); err != nil {
				env.End()
				return nil, errorf(w.Name(), "request progress: %w", err)
			}
			requests++
			select {
			case <-progc:
				rtts = append(rtts, time.Since(t))
				answered = true
			case <-time.After(progressRetry):
			case <-ctx.Done():
			}
		}
		if !answered {
			timeouts++
		}
	}
	env.End()
	stopWrites()
	<-writesDone
	cancel()
	wg.Wait()
	if err, ok := watchErr.Load().(error); ok && ctx.Err() == nil {
		return nil, errorf(w.Name(), "watch ended: %w", err)
	}
	var r Result
	p50, p99 := quantilesMS(rtts)
	r.add("round trip p50", "ms", Lower, p50)
	r.add("round trip p99", "ms", Lower, p99)
	r.add("requests per answer", "ratio", None, float64(requests)/float64(max(1, len(rtts))))
	r.count("unanswered after timeout", float64(timeouts))
	r.count("events after their progress notification", float64(violations.Load()))
	r.count("write errors", float64(writeErrs.Load()))
	return r, nil
}
