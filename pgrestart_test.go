package kinelite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite"
)

// TestPostgresRestart restarts the PostgreSQL server (pg_ctlcluster) under
// a write burst on two servers while a physical compaction runs. Requests
// fail fast while it is down, both servers come back by themselves, every
// acknowledged write is there and reached the watchers, the compaction
// finishes, and the database checks clean.
//
// It restarts the server every other test uses, so it runs only when
// $KINELITE_TEST_PG_RESTART names the cluster ("15 main"); .ci/run runs it
// on its own, after the other tests.
func TestPostgresRestart(t *testing.T) {
	cluster := os.Getenv("KINELITE_TEST_PG_RESTART")
	if cluster == "" {
		t.Skip("SKIPPING: set KINELITE_TEST_PG_RESTART to a cluster (e.g. \"15 main\") to restart PostgreSQL")
	}
	servers := startShared(t, 2)
	ctx := ctxT(t)
	// History to compact.
	for i := range 2000 {
		must[*clientv3.PutResponse](t)(servers[i%2].client.Put(ctx, fmt.Sprintf("/r/%d", i%50), fmt.Sprint(i)))
	}
	compactAt := must[*clientv3.GetResponse](t)(servers[0].client.Get(ctx, "x")).Header.Revision
	watches := []clientv3.WatchChan{
		servers[0].client.Watch(ctx, "/r/", clientv3.WithPrefix(), clientv3.WithRev(compactAt+1)),
		servers[1].client.Watch(ctx, "/r/", clientv3.WithPrefix(), clientv3.WithRev(compactAt+1)),
	}

	var mu sync.Mutex
	acked := map[int64]string{}
	var refused int
	stop := make(chan struct{})
	var g sync.WaitGroup
	for w := range 4 {
		g.Add(1)
		go func() {
			defer g.Done()
			c := servers[w%2].client
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				v := fmt.Sprintf("w%d-%d", w, i)
				resp, err := c.Put(pctx, fmt.Sprintf("/r/%d", (w*13+i)%50), v)
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					acked[resp.Header.Revision] = v
				case errors.Is(err, context.DeadlineExceeded):
					t.Errorf("a put hung while PostgreSQL restarted")
				default:
					refused++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	compactDone := make(chan error, 1)
	go func() {
		for {
			_, err := servers[0].client.Compact(ctx, compactAt, clientv3.WithCompactPhysical())
			if err == nil || ctx.Err() != nil || strings.Contains(err.Error(), "compacted") {
				compactDone <- err
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	out, err := exec.Command("pg_ctlcluster", append(strings.Fields(cluster), "restart")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctlcluster restart: %v: %s", err, out)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	g.Wait()
	select {
	case err := <-compactDone:
		if err != nil && !strings.Contains(err.Error(), "compacted") {
			t.Fatalf("compaction: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the compaction did not finish after the restart")
	}

	var newest int64
	for rev := range acked {
		newest = max(newest, rev)
	}
	for i, ts := range servers {
		var resp *clientv3.GetResponse
		for range 100 {
			if resp, err = ts.client.Get(ctx, "/r/", clientv3.WithPrefix()); err == nil && resp.Header.Revision >= newest {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || resp.Header.Revision < newest {
			t.Fatalf("server %d after the restart: %v", i, err)
		}
	}
	for i, wch := range watches {
		seen := map[int64]string{}
		var last int64
		timeout := time.After(20 * time.Second)
		for last < newest {
			select {
			case resp := <-wch:
				if err := resp.Err(); err != nil {
					t.Fatalf("watch on server %d: %v", i, err)
				}
				for _, ev := range resp.Events {
					if ev.Kv.ModRevision <= last {
						t.Fatalf("watch on server %d: %d after %d", i, ev.Kv.ModRevision, last)
					}
					last = ev.Kv.ModRevision
					seen[last] = string(ev.Kv.Value)
				}
			case <-timeout:
				t.Fatalf("watch on server %d stopped at %d, below %d", i, last, newest)
			}
		}
		for rev, v := range acked {
			if seen[rev] != v {
				t.Fatalf("watch on server %d: acknowledged write %q at %d seen as %q", i, v, rev, seen[rev])
			}
		}
	}
	report, err := kinelite.Check(ctx, servers[0].cfg.Endpoint)
	if err != nil || !report.OK() {
		t.Fatalf("check after the restart: %v %+v", err, report)
	}
	t.Logf("%d writes acknowledged, %d refused during the restart", len(acked), refused)
}
