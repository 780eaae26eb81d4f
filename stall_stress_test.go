package kinelite_test

// A manual stress harness, not part of the normal run: one client creates
// keys with 10 ms pauses (the pattern of the Kubernetes storage tests) while
// a chosen load runs, and reports its latency quantiles and the wait events
// PostgreSQL backends of kinelite's test databases were seen in. See
// bench/results/pg-stall-notes.md.
//
//	KINELITE_TEST_BACKEND=postgres KINELITE_STALL_STRESS=1 \
//	KINELITE_STALL_LOAD=multidb KINELITE_STALL_DURATION=30s \
//	go test -count=1 -run TestStallStress -v .
//
// Loads (KINELITE_STALL_LOAD): none; multidb (three more kinelites, each on
// a database of its own, writing every 5 ms); second (a second kinelite on
// the same database, writing every 5 ms); dbchurn (CREATE and DROP DATABASE
// in a loop); compact; lease; all.

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/jackc/pgx/v5"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

func TestStallStress(t *testing.T) {
	if os.Getenv("KINELITE_STALL_STRESS") == "" {
		t.Skip("manual stress harness; set KINELITE_STALL_STRESS=1")
	}
	dur, _ := time.ParseDuration(os.Getenv("KINELITE_STALL_DURATION"))
	if dur == 0 {
		dur = 60 * time.Second
	}
	dsn := pgtest.NewDatabase(t)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	open := func(dsn string) *kinelite.Server {
		srv, err := kinelite.Open(context.Background(), kinelite.Config{Endpoint: dsn, ListenAddress: "127.0.0.1:0",
			Logger: logger, WatchProgressNotifyInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close(context.Background()) })
		return srv
	}
	srv := open(dsn)
	cli := newClient(t, srv.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	// writeEvery5ms starts a writer on another server, as a second
	// apiserver or another cluster would be.
	writeEvery5ms := func(srv *kinelite.Server) {
		c := newClient(t, srv.Endpoints())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				c.Put(ctx, "/other/"+strconv.Itoa(i%50), "x")
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	load := os.Getenv("KINELITE_STALL_LOAD")
	// a watcher
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range cli.Watch(ctx, "/pods/", clientv3.WithPrefix(), clientv3.WithProgressNotify(), clientv3.WithPrevKV()) {
		}
	}()
	if slices.Contains([]string{"all", "dbchurn"}, load) {
		// other databases created and dropped, as the suites do
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				u := os.Getenv(pgtest.EnvDSN)
				name := fmt.Sprintf("kinelite_stress_%d", time.Now().UnixNano())
				began := time.Now()
				psql(u, "CREATE DATABASE "+name)
				c := time.Since(began)
				began = time.Now()
				psql(u, "DROP DATABASE "+name+" WITH (FORCE)")
				fmt.Fprintf(os.Stderr, "%s churn create %v drop %v\n", time.Now().Format("15:04:05.000"), c, time.Since(began))
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	if slices.Contains([]string{"all", "second"}, load) {
		writeEvery5ms(open(dsn))
	}
	if slices.Contains([]string{"all", "multidb"}, load) {
		for range 3 {
			writeEvery5ms(open(pgtest.NewDatabase(t)))
		}
	}
	if slices.Contains([]string{"all", "compact"}, load) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				time.Sleep(2 * time.Second)
				r, err := cli.Get(ctx, "x")
				if err == nil {
					cli.Compact(ctx, r.Header.Revision-10)
				}
			}
		}()
	}
	if slices.Contains([]string{"all", "lease"}, load) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				l, err := cli.Grant(ctx, 1)
				if err == nil {
					cli.Put(ctx, "/leased/"+strconv.Itoa(i), "v", clientv3.WithLease(l.ID))
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	waits := map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		u, _ := url.Parse(os.Getenv(pgtest.EnvDSN))
		u.Path = "/postgres"
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			rows, err := conn.Query(ctx, `select coalesce(wait_event_type,'CPU')||':'||coalesce(wait_event,'-')||':'||left(query,30) from pg_stat_activity where state='active' and backend_type='client backend' and pid<>pg_backend_pid() and datname like 'kinelite_test_%'`)
			if err != nil {
				return
			}
			for rows.Next() {
				var w string
				rows.Scan(&w)
				waits[w]++
			}
			rows.Close()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var lat []time.Duration
	for i := 0; ctx.Err() == nil; i++ {
		key := "/pods/p" + strconv.Itoa(i)
		began := time.Now()
		_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).Then(clientv3.OpPut(key, "value")).Commit()
		d := time.Since(began)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatal(err)
		}
		lat = append(lat, d)
		if d > 100*time.Millisecond {
			fmt.Fprintf(os.Stderr, "%s SLOW create %d took %v\n", time.Now().Format("15:04:05.000"), i, d)
		}
		if i%100 == 99 {
			cli.Delete(ctx, "/pods/", clientv3.WithPrefix())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for w, n := range waits {
		t.Logf("wait %6d %s", n, w)
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
	t.Logf("creates %d p50 %v p99 %v p999 %v max %v", len(lat), q(.5), q(.99), q(.999), lat[len(lat)-1])
}

func psql(dsn, stmt string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u, _ := url.Parse(dsn)
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "psql connect:", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		fmt.Fprintln(os.Stderr, "psql:", err)
	}
}
