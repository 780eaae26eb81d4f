package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Get is kube-apiserver's single-object read: Range(key, limit=1) at the
// current revision, from concurrent clients, on random keys.
type Get struct {
	Clients  int
	Keys     int
	Duration time.Duration
}

func (w Get) Name() string { return "get" }

func (w Get) Describe() string {
	return fmt.Sprintf("%d clients read random keys of %d for %s with Range(key, limit=1)", w.Clients, w.Keys, w.Duration)
}

const getPrefix = "/registry/bench/get/"

func (w Get) Run(ctx context.Context, env *Env) (Result, error) {
	keys := keyList(getPrefix, w.Keys)
	if err := preload(ctx, env, keys, 1); err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	env.Begin()
	lat, elapsed, failed, err := closedLoop(ctx, w.Clients, w.Duration, func(ctx context.Context, worker, i int) (time.Duration, error) {
		key := keys[rand.IntN(len(keys))]
		t := time.Now()
		resp, err := env.client(worker).Get(ctx, key, clientv3.WithLimit(1))
		if err != nil {
			return 0, err
		}
		if len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != env.ValueSize {
			return 0, fmt.Errorf("get %s: %d kvs", key, len(resp.Kvs))
		}
		return time.Since(t), nil
	})
	env.End()
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	var r Result
	p50, p99 := quantilesMS(lat)
	r.add("throughput", "ops/s", Higher, float64(len(lat))/elapsed.Seconds())
	r.add("p50", "ms", Lower, p50)
	r.add("p99", "ms", Lower, p99)
	r.count("errors", float64(failed))
	return r, nil
}

// List is kube-apiserver's paginated list: pages of Limit keys over a prefix,
// every page after the first at the first page's revision, repeated by one
// client for a fixed time; then Range(prefix, count_only) repeated.
type List struct {
	Keys          int
	Limit         int
	Duration      time.Duration
	CountDuration time.Duration
}

func (w List) Name() string { return "list" }

func (w List) Describe() string {
	return fmt.Sprintf("one client lists %d keys in pages of %d (later pages at the first page's revision) for %s, "+
		"then counts them with count_only for %s", w.Keys, w.Limit, w.Duration, w.CountDuration)
}

const listPrefix = "/registry/bench/list/"

func (w List) Run(ctx context.Context, env *Env) (Result, error) {
	keys := keyList(listPrefix, w.Keys)
	if err := preload(ctx, env, keys, 1); err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	cli := env.client(0)
	end := prefixEnd(listPrefix)
	var lists, counts, pages []time.Duration
	env.Begin()
	deadline := time.Now().Add(w.Duration)
	for len(lists) < 3 || time.Now().Before(deadline) {
		t := time.Now()
		key := listPrefix
		var rev int64
		n := 0
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(w.Limit))}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			pt := time.Now()
			resp, err := cli.Get(ctx, key, opts...)
			if err != nil {
				env.End()
				return nil, errorf(w.Name(), "page %d: %w", len(pages), err)
			}
			pages = append(pages, time.Since(pt))
			if rev == 0 {
				rev = resp.Header.Revision
			}
			n += len(resp.Kvs)
			// kube-apiserver's rule: more pages while fewer keys than count.
			if len(resp.Kvs) == 0 || int64(len(resp.Kvs)) >= resp.Count {
				break
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		lists = append(lists, time.Since(t))
		if n != w.Keys {
			env.End()
			return nil, errorf(w.Name(), "listed %d keys, want %d", n, w.Keys)
		}
		if ctx.Err() != nil {
			env.End()
			return nil, ctx.Err()
		}
	}
	deadline = time.Now().Add(w.CountDuration)
	for len(counts) < 10 || time.Now().Before(deadline) {
		t := time.Now()
		resp, err := cli.Get(ctx, listPrefix, clientv3.WithRange(end), clientv3.WithCountOnly())
		if err != nil {
			env.End()
			return nil, errorf(w.Name(), "count: %w", err)
		}
		counts = append(counts, time.Since(t))
		if resp.Count != int64(w.Keys) {
			env.End()
			return nil, errorf(w.Name(), "count %d, want %d", resp.Count, w.Keys)
		}
	}
	env.End()
	var r Result
	l50, l99 := quantilesMS(lists)
	p50, p99 := quantilesMS(pages)
	c50, c99 := quantilesMS(counts)
	r.add("full list p50", "ms", Lower, l50)
	r.add("full list p99", "ms", Lower, l99)
	r.add("page p50", "ms", Lower, p50)
	r.add("page p99", "ms", Lower, p99)
	r.add("count_only p50", "ms", Lower, c50)
	r.add("count_only p99", "ms", Lower, c99)
	return r, nil
}
