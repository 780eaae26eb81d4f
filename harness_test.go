package kinelite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

// testServer is a kinelite on a temporary SQLite file with a client.
type testServer struct {
	t      *testing.T
	cfg    kinelite.Config
	srv    *kinelite.Server
	client *clientv3.Client
	dbPath string
}

// onPostgres reports whether the end-to-end tests run on PostgreSQL
// ($KINELITE_TEST_BACKEND=postgres; see package pgtest for the server).
func onPostgres() bool { return os.Getenv("KINELITE_TEST_BACKEND") == "postgres" }

// needSQLiteFile skips a test that inspects the SQLite file itself when the
// tests run on PostgreSQL.
func (ts *testServer) needSQLiteFile() {
	ts.t.Helper()
	if ts.dbPath == "" {
		ts.t.Skip("inspects the SQLite file; the end-to-end tests run on PostgreSQL")
	}
}

// startServer opens a kinelite on 127.0.0.1:0 over a fresh database;
// options adjust the config first. Cleanup closes it.
func startServer(t *testing.T, options ...func(*kinelite.Config)) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db", "state.db")
	cfg := kinelite.Config{Endpoint: "sqlite://" + path, ListenAddress: "127.0.0.1:0"}
	if onPostgres() {
		cfg.Endpoint, path = pgtest.NewDatabase(t), ""
	}
	for _, o := range options {
		o(&cfg)
	}
	ts := &testServer{t: t, cfg: cfg, dbPath: path}
	ts.open()
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) open() {
	ts.t.Helper()
	srv, err := kinelite.Open(context.Background(), ts.cfg)
	if err != nil {
		ts.t.Fatalf("open kinelite: %v", err)
	}
	ts.srv = srv
	ts.client = newClient(ts.t, srv.Endpoints())
}

func (ts *testServer) close() {
	if ts.srv == nil {
		return
	}
	ts.client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Close(ctx); err != nil {
		ts.t.Errorf("close kinelite: %v", err)
	}
	ts.srv = nil
}

// restart closes the server and opens it again on the same database (and,
// for TCP, a new port).
func (ts *testServer) restart() {
	ts.t.Helper()
	ts.close()
	ts.open()
}

func newClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
