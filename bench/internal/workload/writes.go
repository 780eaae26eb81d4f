package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Create is kube-apiserver's create: Txn(MOD(key) == 0 → Put) on new keys,
// from concurrent clients for a fixed time.
type Create struct {
	Clients  int
	Duration time.Duration
}

func (w Create) Name() string { return "create" }

func (w Create) Describe() string {
	return fmt.Sprintf("%d clients create new keys for %s with Txn(MOD==0 → Put)", w.Clients, w.Duration)
}

func (w Create) Run(ctx context.Context, env *Env) (Result, error) {
	val := value(env.ValueSize, 2)
	env.Begin()
	lat, elapsed, failed, err := closedLoop(ctx, w.Clients, w.Duration, func(ctx context.Context, worker, i int) (time.Duration, error) {
		key := fmt.Sprintf("/registry/bench/create/%03d/%09d", worker, i)
		t := time.Now()
		resp, err := createTxn(ctx, env.client(worker), key, val)
		if err != nil {
			return 0, err
		}
		if !resp.Succeeded {
			return 0, fmt.Errorf("create %s: compare failed on a new key", key)
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

// Update is kube-apiserver's GuaranteedUpdate: Txn(MOD(key) == rev → Put,
// else Get), starting from a shared cache of revisions (the apiserver's watch
// cache) and retrying with the revision a failed compare returns. Clients
// pick keys at random from a small set, so they conflict.
type Update struct {
	Clients  int
	Keys     int
	Duration time.Duration
}

func (w Update) Name() string { return "update" }

func (w Update) Describe() string {
	return fmt.Sprintf("%d clients update %d shared keys for %s with Txn(MOD==rev → Put else Get), retrying conflicts",
		w.Clients, w.Keys, w.Duration)
}

const updatePrefix = "/registry/bench/update/"

func (w Update) Run(ctx context.Context, env *Env) (Result, error) {
	keys := keyList(updatePrefix, w.Keys)
	if err := preload(ctx, env, keys, 1); err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	revs, err := modRevisions(ctx, env.client(0), updatePrefix)
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	cache := &revCache{revs: revs}
	val := value(env.ValueSize, 3)
	var conflicts atomic.Int64
	env.Begin()
	lat, elapsed, failed, err := closedLoop(ctx, w.Clients, w.Duration, func(ctx context.Context, worker, i int) (time.Duration, error) {
		key := keys[rand.IntN(len(keys))]
		cli := env.client(worker)
		t := time.Now()
		rev := cache.get(key)
		for attempt := 0; ; attempt++ {
			if attempt == 100 {
				return 0, fmt.Errorf("update %s: still conflicting after 100 attempts", key)
			}
			resp, err := updateTxn(ctx, cli, key, val, rev)
			if err != nil {
				return 0, err
			}
			if resp.Succeeded {
				cache.set(key, resp.Header.Revision)
				return time.Since(t), nil
			}
			conflicts.Add(1)
			rev = currentRev(resp)
			if rev == 0 {
				return 0, fmt.Errorf("update %s: failed compare returned no key", key)
			}
			cache.set(key, rev)
		}
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
	r.add("conflicts per update", "ratio", None, float64(conflicts.Load())/float64(max(1, len(lat))))
	r.count("errors", float64(failed))
	return r, nil
}
