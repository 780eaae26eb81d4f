package kinelite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

// startShared starts n kinelite servers on one fresh PostgreSQL database.
func startShared(t *testing.T, n int, options ...func(*kinelite.Config)) []*testServer {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	var servers []*testServer
	for range n {
		cfg := kinelite.Config{Endpoint: dsn, ListenAddress: "127.0.0.1:0"}
		for _, o := range options {
			o(&cfg)
		}
		ts := &testServer{t: t, cfg: cfg}
		ts.open()
		t.Cleanup(ts.close)
		servers = append(servers, ts)
	}
	return servers
}

// TestSharedDatabaseHistory: three servers on one database under concurrent
// writers on each; every watcher on every server sees the same complete,
// ordered history, holding every acknowledged write exactly once.
func TestSharedDatabaseHistory(t *testing.T) {
	servers := startShared(t, 3)
	ctx := ctxT(t)
	start := must[*clientv3.GetResponse](t)(servers[0].client.Get(ctx, "x")).Header.Revision + 1

	// Two watchers per server, from the start, one of them with prev_kv.
	type seen struct {
		name   string
		mu     sync.Mutex
		events []*clientv3.Event
	}
	const writers, perWriter = 3, 60
	watchers := make([]*seen, 0, 2*len(servers))
	var wwg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	for i, ts := range servers {
		for j, opts := range [][]clientv3.OpOption{
			{clientv3.WithPrefix(), clientv3.WithRev(start)},
			{clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithPrevKV()},
		} {
			s := &seen{name: fmt.Sprintf("server %d watcher %d", i, j)}
			watchers = append(watchers, s)
			wch := ts.client.Watch(clientv3.WithRequireLeader(wctx), "/k/", opts...)
			wwg.Add(1)
			go func() {
				defer wwg.Done()
				for resp := range wch {
					s.mu.Lock()
					s.events = append(s.events, resp.Events...)
					s.mu.Unlock()
				}
			}()
		}
	}

	// Writers: creates, then compare-and-swap updates, then deletes, on
	// every server at once, with conflicts across servers.
	var mu sync.Mutex
	acked := map[int64]string{} // revision → key
	var g sync.WaitGroup
	for i, ts := range servers {
		for w := range writers {
			g.Add(1)
			go func() {
				defer g.Done()
				c := ts.client
				for n := range perWriter {
					key := fmt.Sprintf("/k/%d", (i*writers+w+n)%20)
					get, err := c.Get(ctx, key)
					if err != nil {
						t.Errorf("get: %v", err)
						return
					}
					var mod int64
					if len(get.Kvs) > 0 {
						mod = get.Kvs[0].ModRevision
					}
					var op clientv3.Op
					if n%7 == 6 {
						op = clientv3.OpDelete(key)
					} else {
						op = clientv3.OpPut(key, fmt.Sprintf("s%d-w%d-%d", i, w, n))
					}
					resp, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).Then(op).Commit()
					if err != nil {
						t.Errorf("txn: %v", err)
						return
					}
					if resp.Succeeded && (n%7 != 6 || resp.Responses[0].GetResponseDeleteRange().Deleted > 0) {
						mu.Lock()
						acked[resp.Header.Revision] = key
						mu.Unlock()
					}
				}
			}()
		}
	}
	g.Wait()
	if t.Failed() {
		return
	}

	// A linearizable read on each server sees the newest acknowledged write.
	var newest int64
	for rev := range acked {
		newest = max(newest, rev)
	}
	for i, ts := range servers {
		resp := must[*clientv3.GetResponse](t)(ts.client.Get(ctx, "/k/", clientv3.WithPrefix()))
		if resp.Header.Revision < newest {
			t.Errorf("server %d reads at %d, below the acknowledged revision %d", i, resp.Header.Revision, newest)
		}
	}

	// Every watcher ends with the same history.
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range watchers {
		for time.Now().Before(deadline) {
			s.mu.Lock()
			n := len(s.events)
			caughtUp := n > 0 && s.events[n-1].Kv.ModRevision >= newest
			s.mu.Unlock()
			if caughtUp {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopWatch()
	wwg.Wait()
	ref := watchers[0].events
	if len(ref) != len(acked) {
		t.Errorf("%s saw %d events, %d writes were acknowledged", watchers[0].name, len(ref), len(acked))
	}
	var last int64
	for _, ev := range ref {
		if ev.Kv.ModRevision <= last {
			t.Fatalf("%s: revision %d after %d", watchers[0].name, ev.Kv.ModRevision, last)
		}
		last = ev.Kv.ModRevision
		if key, ok := acked[ev.Kv.ModRevision]; !ok || key != string(ev.Kv.Key) {
			t.Errorf("%s: event %s at %d is not an acknowledged write (%q)", watchers[0].name, ev.Kv.Key, ev.Kv.ModRevision, key)
		}
	}
	for _, s := range watchers[1:] {
		if len(s.events) != len(ref) {
			t.Errorf("%s saw %d events, %s %d", s.name, len(s.events), watchers[0].name, len(ref))
			continue
		}
		for i, ev := range s.events {
			r := ref[i]
			if ev.Type != r.Type || string(ev.Kv.Key) != string(r.Kv.Key) || ev.Kv.ModRevision != r.Kv.ModRevision ||
				string(ev.Kv.Value) != string(r.Kv.Value) || ev.Kv.Version != r.Kv.Version || ev.Kv.CreateRevision != r.Kv.CreateRevision {
				t.Errorf("%s event %d = %v, %s has %v", s.name, i, ev, watchers[0].name, r)
				break
			}
		}
	}
}

// TestSharedDatabaseLeasesAndCompaction: a lease granted on one server is
// kept alive through another and expires once; a compaction made through
// one server holds on all of them.
func TestSharedDatabaseLeasesAndCompaction(t *testing.T) {
	servers := startShared(t, 2)
	a, b := servers[0].client, servers[1].client
	ctx := ctxT(t)

	lease := must[*clientv3.LeaseGrantResponse](t)(a.Grant(ctx, 2))
	put := must[*clientv3.PutResponse](t)(b.Put(ctx, "/lease/k", "v", clientv3.WithLease(lease.ID)))
	// Keep it alive through b for longer than its TTL.
	for range 6 {
		if _, err := b.KeepAliveOnce(ctx, lease.ID); err != nil {
			t.Fatalf("keep-alive through the other server: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := must[*clientv3.GetResponse](t)(a.Get(ctx, "/lease/k")); len(got.Kvs) != 1 {
		t.Fatalf("a lease kept alive elsewhere expired: %v", got.Kvs)
	}
	ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(b.TimeToLive(ctx, lease.ID))
	if ttl.TTL <= 0 {
		t.Fatalf("TimeToLive on the other server: %+v", ttl)
	}
	// Stop renewing: the key is deleted once, by one server.
	wch := a.Watch(ctx, "/lease/k", clientv3.WithRev(put.Header.Revision+1))
	var deletes int
	timeout := time.After(15 * time.Second)
wait:
	for {
		select {
		case resp := <-wch:
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					deletes++
				}
			}
			if deletes > 0 {
				break wait
			}
		case <-timeout:
			t.Fatal("the lease never expired")
		}
	}
	time.Sleep(time.Second) // a second expiry would show up by now
	after := must[*clientv3.GetResponse](t)(b.Get(ctx, "/lease/", clientv3.WithPrefix()))
	hist := must[*clientv3.GetResponse](t)(b.Get(ctx, "/lease/k", clientv3.WithRev(put.Header.Revision)))
	if len(after.Kvs) != 0 || len(hist.Kvs) != 1 {
		t.Fatalf("after expiry: %v, at the put: %v", after.Kvs, hist.Kvs)
	}
	if after.Header.Revision != put.Header.Revision+1 {
		t.Fatalf("expiry took revisions %d..%d, want exactly one delete", put.Header.Revision+1, after.Header.Revision)
	}
	if _, err := b.KeepAliveOnce(ctx, lease.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of the expired lease: %v", err)
	}

	// Compaction through a holds on b.
	for i := range 20 {
		must[*clientv3.PutResponse](t)(b.Put(ctx, "/c/k", fmt.Sprint(i)))
	}
	cur := must[*clientv3.GetResponse](t)(b.Get(ctx, "/c/k")).Header.Revision
	must[*clientv3.CompactResponse](t)(a.Compact(ctx, cur-1, clientv3.WithCompactPhysical()))
	if _, err := b.Get(ctx, "/c/k", clientv3.WithRev(cur-2)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below the compact revision on the other server: %v", err)
	}
	if _, err := b.Compact(ctx, cur-1); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compacting again through the other server: %v", err)
	}
	got := must[*clientv3.GetResponse](t)(b.Get(ctx, "/c/k", clientv3.WithRev(cur-1)))
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "18" {
		t.Fatalf("read at the compact revision on the other server: %v", got.Kvs)
	}
}

// TestSharedDatabaseSurvivesKilledConnections: PostgreSQL terminates every
// connection of two servers, three times, under a steady write load.
// Requests fail with Unavailable rather than hang, the servers reconnect by
// themselves, and a watcher on the other server sees every acknowledged
// write, in order, with nothing lost or repeated.
func TestSharedDatabaseSurvivesKilledConnections(t *testing.T) {
	servers := startShared(t, 2)
	a, b := servers[0].client, servers[1].client
	ctx := ctxT(t)
	start := must[*clientv3.GetResponse](t)(a.Get(ctx, "x")).Header.Revision + 1
	wch := b.Watch(ctx, "/f/", clientv3.WithPrefix(), clientv3.WithRev(start))

	acked := map[int64]string{}
	var failures int
	// Three rounds of killing, 40 writes apart, then 40 more writes.
	killed, lastKill := 0, 0
	for i := 0; killed < 3 || i < lastKill+40; i++ {
		if i%40 == 20 && killed < 3 {
			killed++
			lastKill = i
			terminateBackends(t, servers[0].cfg.Endpoint)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		value := fmt.Sprint(i)
		resp, err := a.Put(pctx, fmt.Sprintf("/f/%d", i%10), value)
		cancel()
		switch {
		case err == nil:
			acked[resp.Header.Revision] = value
		case errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("put %d hung after the connections were killed", i)
		default:
			failures++
		}
	}
	var newest int64
	for rev := range acked {
		newest = max(newest, rev)
	}
	// Both servers serve again, and see the newest write.
	for i, c := range []*clientv3.Client{a, b} {
		var resp *clientv3.GetResponse
		var err error
		for range 50 {
			if resp, err = c.Get(ctx, "/f/", clientv3.WithPrefix()); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || resp.Header.Revision < newest {
			t.Fatalf("server %d after the faults: %v (revision below %d?)", i, err, newest)
		}
	}
	seen := map[int64]bool{}
	var last int64
	timeout := time.After(20 * time.Second)
	for last < newest {
		select {
		case resp := <-wch:
			if err := resp.Err(); err != nil {
				t.Fatalf("watch: %v", err)
			}
			for _, ev := range resp.Events {
				rev := ev.Kv.ModRevision
				if rev <= last || seen[rev] {
					t.Fatalf("watch event at %d after %d", rev, last)
				}
				seen[rev], last = true, rev
				if v, ok := acked[rev]; ok && v != string(ev.Kv.Value) {
					t.Fatalf("watch event at %d holds %q, the write acknowledged %q", rev, ev.Kv.Value, v)
				}
			}
		case <-timeout:
			t.Fatalf("watch stopped at %d, below the newest acknowledged write %d", last, newest)
		}
	}
	for rev := range acked {
		if !seen[rev] {
			t.Errorf("acknowledged write at %d never reached the watcher", rev)
		}
	}
	t.Logf("%d writes acknowledged, %d refused while connections were killed", len(acked), failures)
}

// terminateBackends kills every PostgreSQL connection to dsn's database.
func terminateBackends(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRow(`SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
	if err != nil {
		t.Fatalf("terminate backends: %v", err)
	}
	if n == 0 {
		t.Fatal("no connection to terminate")
	}
}

// TestSharedDatabaseUnusedLeasesExpire: leases granted on every server, with
// no key and never renewed, expire whichever server expires leases.
func TestSharedDatabaseUnusedLeasesExpire(t *testing.T) {
	servers := startShared(t, 2)
	ctx := ctxT(t)
	var ids []clientv3.LeaseID
	for _, ts := range servers {
		ids = append(ids, must[*clientv3.LeaseGrantResponse](t)(ts.client.Grant(ctx, 2)).ID)
	}
	// Revoked, not merely past their TTL in each server's memory: their
	// rows leave the table.
	db := servers[0].openTable()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM kinelite_lease`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the leases %x, granted with no key and never renewed, are still in the table", n, ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Each server forgets them at its next expiry check.
	for _, id := range ids {
		for i, ts := range servers {
			for {
				resp := must[*clientv3.LeaseTimeToLiveResponse](t)(ts.client.TimeToLive(ctx, id))
				if resp.TTL == -1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server %d: revoked lease %x has TTL %d", i, id, resp.TTL)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}
