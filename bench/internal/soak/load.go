package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// resources are the key prefixes under /registry/; the last one's keys are
// written with leases, as the apiserver writes events.
var resources = []string{"pods", "configmaps", "secrets", "events"}

const (
	eventsResource = 3
	hotKeys        = 20 // updates pick among the first hotKeys live keys a fifth of the time
	opTimeout      = 30 * time.Second
)

// compactKey is the key kube-apiserver's compactor keeps its state in.
const compactKey = "compact_rev_key"

// load writes, lists and compacts.
type load struct {
	s      *soak
	tokens chan struct{}
	seq    atomic.Int64
	lease  atomic.Int64

	mu   sync.Mutex
	keys []string         // live keys this load created, for picking
	live map[string]int64 // live key -> the mod revision last seen

	lat window // write latencies of the current sampling period

	writes, creates, updates, deletes, eventCreates, conflicts atomic.Int64
	lists, listPages, compactions, leases, behind              atomic.Int64
}

func newLoad(s *soak) *load {
	return &load{s: s, tokens: make(chan struct{}, 2*s.cfg.Writers), live: map[string]int64{}}
}

func (l *load) start(ctx context.Context, wg *sync.WaitGroup) {
	goRun := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	goRun(l.pace)
	goRun(l.leaseLoop)
	for i := 0; i < l.s.cfg.Writers; i++ {
		cli := l.s.clis[i%len(l.s.clis)]
		goRun(func(ctx context.Context) { l.writer(ctx, cli) })
	}
	goRun(l.lister)
	goRun(l.compactor)
}

// pace hands out WritesPerSec tokens a second; a token the writers are too
// busy to take is dropped and counted as behind.
func (l *load) pace(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(l.s.cfg.WritesPerSec))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case l.tokens <- struct{}{}:
		default:
			l.behind.Add(1)
		}
	}
}

// value is a value of about ValueBytes that starts with its send time.
func (l *load) value() string {
	n := max(32, l.s.cfg.ValueBytes/2+rand.IntN(l.s.cfg.ValueBytes+1))
	head := fmt.Sprintf("t=%019d;", time.Now().UnixNano())
	return head + strings.Repeat("x", n-len(head))
}

// sentAt reads a value's send time.
func sentAt(v []byte) (time.Time, bool) {
	if len(v) < 22 || v[0] != 't' || v[1] != '=' || v[21] != ';' {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(v[2:21]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// failed reports a request error as a failure, unless the run is ending.
func (l *load) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	l.s.fail("%s: %v", what, err)
}

func (l *load) writer(ctx context.Context, cli *clientv3.Client) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.tokens:
		}
		l.mu.Lock()
		n := len(l.keys)
		l.mu.Unlock()
		target := l.s.cfg.Keys
		create, del := 10, 30
		if n < target {
			create, del = 30, 10
		}
		switch r := rand.IntN(100); {
		case r < 15:
			l.createEvent(ctx, cli)
		case r < 15+create || n < hotKeys:
			l.create(ctx, cli)
		case r < 15+create+del:
			l.delete(ctx, cli)
		default:
			l.update(ctx, cli)
		}
	}
}

// txn runs one write and times it.
func (l *load) txn(ctx context.Context, cli *clientv3.Client, cmp clientv3.Cmp, then, els clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	began := time.Now()
	resp, err := cli.Txn(ctx).If(cmp).Then(then).Else(els).Commit()
	if err == nil {
		l.lat.add(float64(time.Since(began)) / float64(time.Millisecond))
		l.writes.Add(1)
	}
	return resp, err
}

func (l *load) create(ctx context.Context, cli *clientv3.Client) {
	res, ns := rand.IntN(eventsResource), rand.IntN(l.s.cfg.Namespaces)
	key := fmt.Sprintf("/registry/%s/ns-%02d/obj-%08d", resources[res], ns, l.seq.Add(1))
	rev, ok := l.createKey(ctx, cli, key)
	if !ok {
		return
	}
	l.creates.Add(1)
	l.mu.Lock()
	l.keys = append(l.keys, key)
	l.live[key] = rev
	l.mu.Unlock()
}

// createKey creates key, which must not exist, as the apiserver does, and
// records the write as acknowledged. It returns the write's revision, or
// false when the create failed (and was reported).
func (l *load) createKey(ctx context.Context, cli *clientv3.Client, key string, opts ...clientv3.OpOption) (int64, bool) {
	resp, err := l.txn(ctx, cli, clientv3.Compare(clientv3.ModRevision(key), "=", 0),
		clientv3.OpPut(key, l.value(), opts...), clientv3.OpGet(key))
	if err != nil {
		l.failed(ctx, "create "+key, err)
		return 0, false
	}
	if !resp.Succeeded {
		l.s.fail("create of the new key %s found it existing", key)
		return 0, false
	}
	l.s.ws.acked(resp.Header.Revision, key, false)
	return resp.Header.Revision, true
}

func (l *load) createEvent(ctx context.Context, cli *clientv3.Client) {
	lease := clientv3.LeaseID(l.lease.Load())
	if lease == 0 {
		return
	}
	key := fmt.Sprintf("/registry/events/ns-%02d/ev-%08d", rand.IntN(l.s.cfg.Namespaces), l.seq.Add(1))
	if _, ok := l.createKey(ctx, cli, key, clientv3.WithLease(lease)); ok {
		l.eventCreates.Add(1)
	}
}

// pick returns a live key and its last seen mod revision; hot picks among
// the first few.
func (l *load) pick(hot bool) (string, int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) == 0 {
		return "", 0, false
	}
	n := len(l.keys)
	if hot {
		n = min(n, hotKeys)
	}
	key := l.keys[rand.IntN(n)]
	return key, l.live[key], true
}

// seen records a key's newer mod revision.
func (l *load) seen(key string, rev int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.live[key]; ok && rev > old {
		l.live[key] = rev
	}
}

func (l *load) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.live[key]; !ok {
		return
	}
	delete(l.live, key)
	i := slices.Index(l.keys, key)
	l.keys[i] = l.keys[len(l.keys)-1]
	l.keys = l.keys[:len(l.keys)-1]
}

// update is the apiserver's GuaranteedUpdate: a Txn on the mod revision it
// knows, and on a conflict another from the value the Else branch read.
func (l *load) update(ctx context.Context, cli *clientv3.Client) {
	key, mod, ok := l.pick(rand.IntN(5) == 0)
	if !ok {
		return
	}
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := l.txn(ctx, cli, clientv3.Compare(clientv3.ModRevision(key), "=", mod),
			clientv3.OpPut(key, l.value()), clientv3.OpGet(key))
		if err != nil {
			l.failed(ctx, "update "+key, err)
			return
		}
		if resp.Succeeded {
			l.updates.Add(1)
			l.s.ws.acked(resp.Header.Revision, key, false)
			l.seen(key, resp.Header.Revision)
			return
		}
		l.conflicts.Add(1)
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return // deleted meanwhile
		}
		mod = kvs[0].ModRevision
		l.seen(key, mod)
	}
}

// delete is the apiserver's delete: a Txn on the mod revision it knows.
func (l *load) delete(ctx context.Context, cli *clientv3.Client) {
	key, mod, ok := l.pick(false)
	if !ok {
		return
	}
	for attempt := 0; attempt < 2; attempt++ {
		resp, err := l.txn(ctx, cli, clientv3.Compare(clientv3.ModRevision(key), "=", mod),
			clientv3.OpDelete(key), clientv3.OpGet(key))
		if err != nil {
			l.failed(ctx, "delete "+key, err)
			return
		}
		if resp.Succeeded {
			if resp.Responses[0].GetResponseDeleteRange().GetDeleted() != 1 {
				l.s.fail("delete of %s at its mod revision %d deleted nothing", key, mod)
			}
			l.deletes.Add(1)
			l.s.ws.acked(resp.Header.Revision, key, true)
			l.forget(key)
			return
		}
		l.conflicts.Add(1)
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return
		}
		mod = kvs[0].ModRevision
		l.seen(key, mod)
	}
}

// leaseLoop grants a lease for the events every LeaseEvery, as the
// apiserver's lease manager reuses one lease for a while.
func (l *load) leaseLoop(ctx context.Context) {
	cli := l.s.clis[0]
	for {
		gctx, cancel := context.WithTimeout(ctx, opTimeout)
		resp, err := cli.Grant(gctx, l.s.cfg.LeaseTTL)
		cancel()
		if err != nil {
			l.failed(ctx, "lease grant", err)
		} else {
			l.lease.Store(int64(resp.ID))
			l.leases.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.s.cfg.LeaseEvery):
		}
	}
}

// lister lists one resource in pages of 500 every ListEvery, as the
// apiserver's reflector does: later pages at the first page's revision.
func (l *load) lister(ctx context.Context) {
	t := time.NewTicker(l.s.cfg.ListEvery)
	defer t.Stop()
	cli := l.s.clis[len(l.s.clis)-1]
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		prefix := "/registry/" + resources[rand.IntN(len(resources))] + "/"
		if err := l.list(ctx, cli, prefix); err != nil {
			l.failed(ctx, "list "+prefix, err)
		}
	}
}

func (l *load) list(ctx context.Context, cli *clientv3.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	end := clientv3.GetPrefixRangeEnd(prefix)
	from, rev := prefix, int64(0)
	var count, got int64
	last := ""
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(500)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, from, opts...)
		if err != nil {
			return err
		}
		l.listPages.Add(1)
		if rev == 0 {
			rev, count = resp.Header.Revision, resp.Count
		}
		for _, kv := range resp.Kvs {
			if k := string(kv.Key); k <= last {
				return fmt.Errorf("keys out of order: %q after %q", k, last)
			}
			last = string(kv.Key)
		}
		got += int64(len(resp.Kvs))
		if !resp.More {
			break
		}
		from = last + "\x00"
	}
	if got != count {
		return fmt.Errorf("pages at revision %d hold %d keys, the first page counted %d", rev, got, count)
	}
	l.lists.Add(1)
	return nil
}

// compactor is kube-apiserver's compaction loop (storage/etcd3/compact.go):
// every period a Txn bumps compact_rev_key's version if nobody else did, and
// the winner compacts to the revision the previous round saw.
func (l *load) compactor(ctx context.Context) {
	t := time.NewTicker(l.s.cfg.CompactEvery)
	defer t.Stop()
	cli := l.s.clis[0]
	var version, rev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		resp, err := cli.Txn(cctx).If(clientv3.Compare(clientv3.Version(compactKey), "=", version)).
			Then(clientv3.OpPut(compactKey, strconv.FormatInt(rev, 10))).Else(clientv3.OpGet(compactKey)).Commit()
		if err != nil {
			cancel()
			l.failed(ctx, "compaction txn", err)
			continue
		}
		cur := resp.Header.Revision
		if !resp.Succeeded {
			kvs := resp.Responses[0].GetResponseRange().GetKvs()
			if len(kvs) > 0 {
				version = kvs[0].Version
			}
			rev = cur
			cancel()
			continue
		}
		l.s.ws.acked(cur, compactKey, false)
		version++
		if rev != 0 {
			if _, err := cli.Compact(cctx, rev); err != nil {
				l.failed(ctx, fmt.Sprintf("compact at %d", rev), err)
			} else {
				l.compactions.Add(1)
				l.s.ws.compacted(rev)
			}
		}
		rev = cur
		cancel()
	}
}

func (l *load) summarize(st *Stats) {
	st.Writes, st.Creates, st.Updates, st.Deletes = l.writes.Load(), l.creates.Load(), l.updates.Load(), l.deletes.Load()
	st.EventCreates, st.Conflicts, st.Behind = l.eventCreates.Load(), l.conflicts.Load(), l.behind.Load()
	st.Lists, st.ListPages, st.Compactions, st.Leases = l.lists.Load(), l.listPages.Load(), l.compactions.Load(), l.leases.Load()
	l.mu.Lock()
	st.LiveKeys = len(l.keys)
	l.mu.Unlock()
}

// window collects values (milliseconds) over one sampling period.
type window struct {
	mu sync.Mutex
	v  []float64
}

func (w *window) add(v float64) {
	w.mu.Lock()
	w.v = append(w.v, v)
	w.mu.Unlock()
}

// drain returns the period's values and starts the next period.
func (w *window) drain() []float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.v
	w.v = make([]float64, 0, len(v))
	return v
}
