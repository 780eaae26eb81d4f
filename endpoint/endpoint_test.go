package endpoint_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kinelite/kinelite/endpoint"
)

// TestListenLikeKine starts kinelite through kine's API and stops it by
// canceling the context, as k3s does.
func TestListenLikeKine(t *testing.T) {
	dir, err := os.MkdirTemp("", "ep")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cfg, err := endpoint.Listen(ctx, endpoint.Config{
		Listener:       "unix://" + filepath.Join(dir, "kine.sock"),
		Endpoint:       "sqlite://" + filepath.Join(dir, "state.db") + "?_journal=WAL&cache=shared",
		NotifyInterval: time.Second,
		WaitGroup:      &wg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LeaderElect || len(cfg.Endpoints) != 1 || cfg.Endpoints[0] != "unix://"+filepath.Join(dir, "kine.sock") {
		t.Fatalf("ETCDConfig: %+v", cfg)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if _, err := c.Put(rctx, "/registry/health", `{"health":"true"}`); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait() // returns once the server has stopped
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
}

func TestBackendTLSNeedsPostgres(t *testing.T) {
	_, err := endpoint.Listen(context.Background(), endpoint.Config{
		Endpoint:         "sqlite://" + filepath.Join(t.TempDir(), "x.db"),
		BackendTLSConfig: endpoint.TLSConfig{CAFile: "ca.pem"},
	})
	if err == nil {
		t.Fatal("backend TLS on SQLite accepted")
	}
}
