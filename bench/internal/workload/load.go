package workload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// batchOps is how many Puts one preload Txn carries on servers that accept
// several (etcd's and kinelite's limit is 128).
const batchOps = 100

// preload writes every key times times (a create, then updates) with values
// of env.ValueSize. Servers that accept multi-op Txns get batches of distinct
// keys; the others get the apiserver's create and update Txns, one key each,
// from concurrent workers. Each key's writes stay in order.
func preload(ctx context.Context, env *Env, keys []string, times int) error {
	if len(keys) == 0 || times <= 0 {
		return nil
	}
	val := value(env.ValueSize, 1)
	if env.MultiOpTxn {
		return preloadBatched(ctx, env, keys, times, val)
	}
	return preloadSingle(ctx, env, keys, times, val)
}

func preloadBatched(ctx context.Context, env *Env, keys []string, times int, val []byte) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	var written atomic.Int64
	total := int64(len(keys) * times)
	step := max(total/10, 1)
	for t := range times {
		for lo := 0; lo < len(keys); lo += batchOps {
			hi := min(lo+batchOps, len(keys))
			n := t*len(keys) + lo
			g.Go(func() error {
				ops := make([]clientv3.Op, 0, hi-lo)
				for _, k := range keys[lo:hi] {
					ops = append(ops, clientv3.OpPut(k, string(val)))
				}
				if _, err := env.client(n / batchOps).Txn(ctx).Then(ops...).Commit(); err != nil {
					return fmt.Errorf("preload: %w", err)
				}
				if w := written.Add(int64(hi - lo)); w/step != (w-int64(hi-lo))/step {
					env.Logf("preload %d/%d", w, total)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// preloadWorkers is the number of concurrent writers of a single-key
// preload.
const preloadWorkers = 32

func preloadSingle(ctx context.Context, env *Env, keys []string, times int, val []byte) error {
	g, ctx := errgroup.WithContext(ctx)
	var written atomic.Int64
	total := int64(len(keys) * times)
	step := max(total/10, 1)
	workers := min(preloadWorkers, len(keys))
	for w := range workers {
		g.Go(func() error {
			cli := env.client(w)
			revs := make(map[string]int64)
			for range times {
				for i := w; i < len(keys); i += workers {
					k := keys[i]
					rev, err := putApiserver(ctx, cli, k, val, revs[k])
					if err != nil {
						return fmt.Errorf("preload %s: %w", k, err)
					}
					revs[k] = rev
					if n := written.Add(1); n%step == 0 {
						env.Logf("preload %d/%d", n, total)
					}
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// putApiserver writes key as kube-apiserver does: a create Txn when rev is 0,
// else an update Txn guarded by rev, retrying with the revision a failed
// compare returns. It returns the key's new mod revision.
func putApiserver(ctx context.Context, cli *clientv3.Client, key string, val []byte, rev int64) (int64, error) {
	for attempt := 0; attempt < 100; attempt++ {
		var resp *clientv3.TxnResponse
		var err error
		if rev == 0 {
			resp, err = createTxn(ctx, cli, key, val)
		} else {
			resp, err = updateTxn(ctx, cli, key, val, rev)
		}
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		rev = currentRev(resp)
	}
	return 0, fmt.Errorf("write %s: still conflicting after 100 attempts", key)
}

// createTxn is kube-apiserver's create: MOD(key) == 0 → Put.
func createTxn(ctx context.Context, cli *clientv3.Client, key string, val []byte) (*clientv3.TxnResponse, error) {
	return cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).Commit()
}

// updateTxn is kube-apiserver's update: MOD(key) == rev → Put, else Get.
func updateTxn(ctx context.Context, cli *clientv3.Client, key string, val []byte, rev int64) (*clientv3.TxnResponse, error) {
	return cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
}

// currentRev returns the key's mod revision from a failed update's Get (0
// when the key is gone, or for a failed create, which carries no Get).
func currentRev(resp *clientv3.TxnResponse) int64 {
	if len(resp.Responses) == 0 {
		return 0
	}
	r := resp.Responses[0].GetResponseRange()
	if r == nil || len(r.Kvs) == 0 {
		return 0
	}
	return r.Kvs[0].ModRevision
}

// modRevisions lists prefix, in pages, and returns each key's mod revision.
func modRevisions(ctx context.Context, cli *clientv3.Client, prefix string) (map[string]int64, error) {
	revs := make(map[string]int64)
	key, end := prefix, prefixEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000), clientv3.WithKeysOnly()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, key, opts...)
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			revs[string(kv.Key)] = kv.ModRevision
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return revs, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// revCache is a shared cache of keys' mod revisions, like an apiserver's
// watch cache: updates start from it and refresh it.
type revCache struct {
	mu   sync.Mutex
	revs map[string]int64
}

func (c *revCache) get(k string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revs[k]
}

func (c *revCache) set(k string, rev int64) {
	c.mu.Lock()
	if rev > c.revs[k] {
		c.revs[k] = rev
	}
	c.mu.Unlock()
}

func keyList(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%08d", prefix, i)
	}
	return keys
}

// Preload is preload for the harness's own use (the start-up database):
// every key written times times, in batches where the server allows.
func Preload(ctx context.Context, env *Env, keys []string, times int) error {
	return preload(ctx, env, keys, times)
}

// KeyList returns n keys under prefix, in order.
func KeyList(prefix string, n int) []string { return keyList(prefix, n) }
