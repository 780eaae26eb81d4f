package kinelite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/backend"
)

// The PostgreSQL restart tests restart the PostgreSQL server itself
// (pg_ctlcluster ... restart) under load. The cluster is the one
// $KINELITE_TEST_PG_RESTART names ("15 main" in CI, where `make
// test-pg-restart` runs them alone, after the other tests); it must be the
// server $KINELITE_TEST_POSTGRES points at. Without the variable they skip.
//
// What they hold kinelite to: requests in flight while PostgreSQL is down
// fail with Unavailable rather than hang; every server reconnects by
// itself; nothing acknowledged is lost and nothing is half-applied; every
// watch, on every server, delivers the same complete history in revision
// order, each event once; and the database checks clean.

// restartCluster returns the cluster to restart, skipping t without one.
func restartCluster(t *testing.T) string {
	t.Helper()
	cluster := os.Getenv("KINELITE_TEST_PG_RESTART")
	if cluster == "" {
		t.Skip("SKIPPING: set KINELITE_TEST_PG_RESTART to a cluster (e.g. \"15 main\") to restart PostgreSQL")
	}
	return cluster
}

// restartPostgres restarts the cluster (fast shutdown: every connection is
// cut) and returns once it accepts connections again.
func restartPostgres(t *testing.T, cluster string) {
	t.Helper()
	out, err := exec.Command("pg_ctlcluster", append(strings.Fields(cluster), "restart", "-m", "fast")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctlcluster %s restart: %v: %s", cluster, err, out)
	}
}

// burst is a write load on several servers sharing one database: writers
// that put single keys and create pairs of keys in one transaction, and
// two watches per server from the load's first revision.
type burst struct {
	t       *testing.T
	servers []*testServer
	prefix  string
	start   int64 // the first revision of the load

	mu      sync.Mutex
	acked   map[int64]burstWrite // revision → the write acknowledged there
	sent    map[string]bool      // every value sent, acknowledged or not
	refused int                  // requests that failed, all with Unavailable
	pairs   [][2]string          // the values of every pair sent
	ackedN  atomic.Int64

	stop     chan struct{}
	writers  sync.WaitGroup
	watchers []*burstWatch
	wwg      sync.WaitGroup
	wcancel  context.CancelFunc
}

type burstWrite struct{ key, value string }

type burstWatch struct {
	name   string
	prevKV bool
	mu     sync.Mutex
	events []*clientv3.Event
	err    error
}

// startBurst starts the watches (from the current revision + 1), then
// writersPer writers on each server.
func startBurst(t *testing.T, servers []*testServer, prefix string, writersPer int) *burst {
	ctx := ctxT(t)
	b := &burst{t: t, servers: servers, prefix: prefix, acked: map[int64]burstWrite{}, sent: map[string]bool{},
		stop: make(chan struct{})}
	b.start = must[*clientv3.GetResponse](t)(servers[0].client.Get(ctx, "x")).Header.Revision + 1
	wctx, cancel := context.WithCancel(context.Background())
	b.wcancel = cancel
	t.Cleanup(b.halt)
	for i, ts := range servers {
		for _, prevKV := range []bool{true, false} {
			w := &burstWatch{name: fmt.Sprintf("server %d watch (prev_kv %v)", i, prevKV), prevKV: prevKV}
			b.watchers = append(b.watchers, w)
			opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(b.start), clientv3.WithProgressNotify()}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			wch := ts.client.Watch(wctx, prefix, opts...)
			b.wwg.Add(1)
			go func() {
				defer b.wwg.Done()
				for resp := range wch {
					w.mu.Lock()
					if err := resp.Err(); err != nil && w.err == nil && wctx.Err() == nil {
						w.err = err
					}
					w.events = append(w.events, resp.Events...)
					w.mu.Unlock()
				}
			}()
		}
	}
	for i, ts := range servers {
		for w := range writersPer {
			b.writers.Add(1)
			go b.write(ts.client, fmt.Sprintf("s%dw%d", i, w))
		}
	}
	return b
}

// write runs one writer until stop: puts to a few shared keys, and pairs
// of new keys in one transaction.
func (b *burst) write(c *clientv3.Client, name string) {
	defer b.writers.Done()
	for n := 0; ; n++ {
		select {
		case <-b.stop:
			return
		default:
		}
		// A bound on a hung request only, so that a hang fails the test
		// instead of running into go test's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var err error
		if n%3 == 2 {
			v1, v2 := fmt.Sprintf("%s-%d-a", name, n), fmt.Sprintf("%s-%d-b", name, n)
			k1, k2 := b.prefix+"pair/"+v1, b.prefix+"pair/"+v2
			b.mu.Lock()
			b.sent[v1], b.sent[v2] = true, true
			b.pairs = append(b.pairs, [2]string{v1, v2})
			b.mu.Unlock()
			var resp *clientv3.TxnResponse
			resp, err = c.Txn(ctx).Then(clientv3.OpPut(k1, v1), clientv3.OpPut(k2, v2)).Commit()
			if err == nil {
				b.mu.Lock()
				rev := resp.Header.Revision
				b.acked[rev-1], b.acked[rev] = burstWrite{k1, v1}, burstWrite{k2, v2}
				b.mu.Unlock()
			}
		} else {
			k, v := fmt.Sprintf("%sk/%d", b.prefix, n%7), fmt.Sprintf("%s-%d", name, n)
			b.mu.Lock()
			b.sent[v] = true
			b.mu.Unlock()
			var resp *clientv3.PutResponse
			resp, err = c.Put(ctx, k, v)
			if err == nil {
				b.mu.Lock()
				b.acked[resp.Header.Revision] = burstWrite{k, v}
				b.mu.Unlock()
			}
		}
		cancel()
		if err == nil {
			b.ackedN.Add(1)
			continue
		}
		if code := grpcCode(err); code != codes.Unavailable {
			b.t.Errorf("writer %s: %v (code %v), want Unavailable", name, err, code)
			return
		}
		b.mu.Lock()
		b.refused++
		b.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// grpcCode is the gRPC code of a client error.
func grpcCode(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded
	}
	return status.Code(err)
}

// awaitAcks waits until n more writes are acknowledged.
func (b *burst) awaitAcks(n int64) {
	b.t.Helper()
	target := b.ackedN.Load() + n
	// Not a performance bound: the writers are stuck if it passes.
	deadline := time.Now().Add(2 * time.Minute)
	for b.ackedN.Load() < target {
		if b.t.Failed() {
			b.t.FailNow()
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d writes acknowledged, waiting for %d: the servers do not come back", b.ackedN.Load(), target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// halt stops the writers and waits for them.
func (b *burst) halt() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.writers.Wait()
}

// verify stops the writers and checks the outcome: each server serves the
// newest revision; the history from the load's start, read by a new watch
// on every server, holds every acknowledged write where its answer put it,
// only writes that were sent, each pair whole or not at all, one event per
// revision; and every watch that ran through the load delivered exactly
// that history.
func (b *burst) verify() {
	t := b.t
	b.halt()
	if t.Failed() {
		t.FailNow()
	}
	ctx := ctxT(t)
	var head int64
	for i, ts := range b.servers {
		var resp *clientv3.GetResponse
		var err error
		for range 300 { // a server may still be reconnecting
			if resp, err = ts.client.Get(ctx, "x"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("server %d after the restart: %v", i, err)
		}
		if i > 0 && resp.Header.Revision < head {
			t.Fatalf("server %d reads at %d, server 0 at %d", i, resp.Header.Revision, head)
		}
		head = max(head, resp.Header.Revision)
	}
	var newest int64
	for rev := range b.acked {
		newest = max(newest, rev)
	}
	if newest > head {
		t.Fatalf("a write was acknowledged at %d; the servers read at %d", newest, head)
	}

	var ref []*clientv3.Event
	for i, ts := range b.servers {
		evs := watchRange(t, ts.client, b.prefix, b.start, head)
		if i == 0 {
			ref = evs
			b.checkHistory(ref)
			continue
		}
		if d := diffEvents(evs, ref); d != "" {
			t.Errorf("server %d replays the history from %d differently from server 0: %s", i, b.start, d)
		}
	}

	// The watches that ran through the restart.
	for _, w := range b.watchers {
		deadline := time.Now().Add(60 * time.Second)
		for {
			w.mu.Lock()
			n, err := len(w.events), w.err
			done := n > 0 && w.events[n-1].Kv.ModRevision >= ref[len(ref)-1].Kv.ModRevision
			w.mu.Unlock()
			if err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s stopped after %d of %d events", w.name, n, len(ref))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.wcancel()
	b.wwg.Wait()
	for _, w := range b.watchers {
		got := w.events
		if !w.prevKV {
			want := make([]*clientv3.Event, len(ref))
			for i, ev := range ref {
				want[i] = &clientv3.Event{Type: ev.Type, Kv: ev.Kv}
			}
			if d := diffEvents(got, want); d != "" {
				t.Errorf("%s: %s", w.name, d)
			}
			continue
		}
		if d := diffEvents(got, ref); d != "" {
			t.Errorf("%s: %s", w.name, d)
		}
	}

	report, err := kinelite.Check(ctx, b.servers[0].cfg.Endpoint)
	if err != nil || !report.OK() {
		t.Fatalf("check after the restart: %v %+v", err, report)
	}
	t.Logf("%d writes acknowledged, %d requests refused with Unavailable; %d events from revision %d, delivered by %d watches on %d servers",
		len(b.acked), b.refused, len(ref), b.start, len(b.watchers), len(b.servers))
}

// checkHistory checks the history of the load's prefix from its start.
func (b *burst) checkHistory(evs []*clientv3.Event) {
	t := b.t
	at := map[string]int64{} // value → revision
	for i, ev := range evs {
		rev := ev.Kv.ModRevision
		if want := b.start + int64(i); rev != want {
			t.Fatalf("event %d of the history is at revision %d, want %d: one event per revision", i, rev, want)
		}
		if ev.Type != clientv3.EventTypePut || !b.sent[string(ev.Kv.Value)] {
			t.Fatalf("revision %d holds %v, which no writer sent", rev, ev)
		}
		at[string(ev.Kv.Value)] = rev
	}
	for rev, w := range b.acked {
		i := rev - b.start
		if i < 0 || i >= int64(len(evs)) || string(evs[i].Kv.Key) != w.key || string(evs[i].Kv.Value) != w.value {
			t.Errorf("the write of %s=%s acknowledged at revision %d is not there", w.key, w.value, rev)
		}
	}
	for _, p := range b.pairs {
		r1, ok1 := at[p[0]]
		r2, ok2 := at[p[1]]
		if ok1 != ok2 || ok1 && r2 != r1+1 {
			t.Errorf("the pair %v is half-applied: at %d (%v) and %d (%v)", p, r1, ok1, r2, ok2)
		}
	}
}

// watchRange watches prefix from rev from until it has delivered revision
// to, and returns the events.
func watchRange(t *testing.T, c *clientv3.Client, prefix string, from, to int64) []*clientv3.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var evs []*clientv3.Event
	if to < from {
		return nil
	}
	for resp := range c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV()) {
		if err := resp.Err(); err != nil {
			t.Fatalf("watch %q from %d: %v", prefix, from, err)
		}
		evs = append(evs, resp.Events...)
		if n := len(evs); n > 0 && evs[n-1].Kv.ModRevision >= to {
			return evs
		}
	}
	t.Fatalf("watch %q from %d ended before revision %d: %v", prefix, from, to, ctx.Err())
	return nil
}

// diffEvents describes the first difference between two event lists.
func diffEvents(got, want []*clientv3.Event) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d events, want %d: missing revision %d", len(got), len(want), want[i].Kv.ModRevision)
		case i >= len(want):
			return fmt.Sprintf("%d events, want %d: extra %v", len(got), len(want), got[i])
		case got[i].Type != want[i].Type || !proto.Equal(got[i].Kv, want[i].Kv) || !proto.Equal(got[i].PrevKv, want[i].PrevKv):
			return fmt.Sprintf("event %d is %v, want %v", i, got[i], want[i])
		}
	}
	return ""
}

// compactedThrough reads the compaction progress every server shares.
func compactedThrough(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var v int64
	err := db.QueryRow(`SELECT COALESCE((SELECT value FROM kinelite_meta WHERE name = $1), 0)`, backend.MetaCompactedThrough).Scan(&v)
	if err != nil {
		t.Fatalf("read the compaction progress: %v", err)
	}
	return v
}

// TestPostgresRestartDuringCompaction restarts PostgreSQL while a large
// physical compaction runs, with writers and watches on two servers: the
// compaction finishes after the restart, reads below its revision fail with
// ErrCompacted and at it see the compacted keys, and the load's checks
// (burst.verify) hold.
func TestPostgresRestartDuringCompaction(t *testing.T) {
	cluster := restartCluster(t)
	// Small steps: thousands of superseded revisions take hundreds of
	// steps, so that the restart lands in the middle of them.
	servers := startShared(t, 2, func(c *kinelite.Config) { c.CompactBatchSize = 8 })
	ctx := ctxT(t)
	const keys, rounds = 50, 120
	for r := range rounds {
		var ops []clientv3.Op
		for k := range keys {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/h/%02d", k), fmt.Sprint(r)))
		}
		must[*clientv3.TxnResponse](t)(servers[r%2].client.Txn(ctx).Then(ops...).Commit())
	}
	compactAt := must[*clientv3.GetResponse](t)(servers[0].client.Get(ctx, "x")).Header.Revision

	b := startBurst(t, servers, "/b/", 2)
	b.awaitAcks(20)
	db, err := sql.Open("pgx", servers[0].cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := compactedThrough(t, db)
	must[*clientv3.CompactResponse](t)(servers[0].client.Compact(ctx, compactAt))
	// Restart once a third of the deletion is done.
	var progress int64
	for {
		progress = compactedThrough(t, db)
		if progress >= compactAt {
			t.Fatalf("the compaction to %d finished before the restart: make it larger", compactAt)
		}
		if progress >= before+(compactAt-before)/3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	restartPostgres(t, cluster)
	b.awaitAcks(100) // writes go on after the restart

	// The compaction finishes by itself.
	db.Close()
	if db, err = sql.Open("pgx", servers[0].cfg.Endpoint); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var done int64
	for done = compactedThrough(t, db); done < compactAt; done = compactedThrough(t, db) {
		if time.Now().After(deadline) {
			t.Fatalf("the compaction to %d stopped at %d after the restart", compactAt, done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if done != compactAt {
		t.Fatalf("compacted through %d, the compact revision is %d", done, compactAt)
	}
	for i, ts := range servers {
		if _, err := ts.client.Get(ctx, "/h/00", clientv3.WithRev(compactAt-1)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("server %d: a read below the compact revision %d: %v, want %v", i, compactAt, err, rpctypes.ErrCompacted)
		}
		got := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "/h/", clientv3.WithPrefix(), clientv3.WithRev(compactAt)))
		if len(got.Kvs) != keys {
			t.Fatalf("server %d: %d keys at the compact revision, want %d", i, len(got.Kvs), keys)
		}
		for _, kv := range got.Kvs {
			if string(kv.Value) != fmt.Sprint(rounds-1) || kv.Version != rounds {
				t.Errorf("server %d: at the compact revision %s = %q version %d, want %q version %d",
					i, kv.Key, kv.Value, kv.Version, fmt.Sprint(rounds-1), rounds)
			}
		}
	}
	b.verify()
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM kine WHERE name LIKE '/h/%'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != keys {
		t.Errorf("%d rows of /h/ left after the compaction, want %d (one per key)", rows, keys)
	}
	t.Logf("PostgreSQL restarted with the compaction to %d at %d (from %d); it finished after the restart",
		compactAt, progress, before)
}

// TestPostgresRestartDuringWriteBurst restarts PostgreSQL under concurrent
// writers on three servers sharing the database; see burst.verify for what
// must hold afterwards.
func TestPostgresRestartDuringWriteBurst(t *testing.T) {
	cluster := restartCluster(t)
	servers := startShared(t, 3)
	b := startBurst(t, servers, "/w/", 2)
	b.awaitAcks(200)
	restartPostgres(t, cluster)
	b.awaitAcks(200)
	b.mu.Lock()
	refused := b.refused
	b.mu.Unlock()
	if refused == 0 {
		t.Fatal("no request failed: the restart did not land in the burst")
	}
	b.verify()
}
