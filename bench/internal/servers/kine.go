package servers

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/app"
	"github.com/k3s-io/kine/pkg/drivers/sqlite"
	"github.com/k3s-io/kine/pkg/endpoint"
	"github.com/sirupsen/logrus"
)

// kineSQLiteDriver says which SQLite driver kine was built with: kine uses
// mattn/go-sqlite3 when cgo is available (as k3s ships it) and
// modernc.org/sqlite otherwise.
func kineSQLiteDriver() string {
	if cgoEnabled {
		return "mattn/go-sqlite3 (cgo)"
	}
	return "modernc.org/sqlite (no cgo)"
}

func init() {
	register(&Kind{
		Name: "kine",
		Durability: "SQLite (" + kineSQLiteDriver() + ") with kine's default DSN parameters " +
			sqlite.DefaultParams + ": WAL with synchronous=NORMAL, i.e. no fsync per commit " +
			"(only at checkpoints); a power cut may lose acknowledged writes",
		MultiOpTxn: false, // kine accepts only the apiserver's Txn shapes
		Store:      dirStore{name: "SQLite file"},
		serve:      serveKine,
	})
	register(&Kind{
		Name: "kine-pg",
		Durability: "PostgreSQL (kine's pgsql driver, its defaults; other servers' writes seen by polling " +
			"once a second) on the server's defaults (synchronous_commit=on, fsync=on); a fresh database per run",
		MultiOpTxn: false,
		Shared:     true,
		Store:      pgStore{},
		serve:      serveKine,
	})
}

// kineStopWait bounds the wait for kine's goroutines when it stops.
const kineStopWait = 3 * time.Second

func serveKine(ctx context.Context, o serveOptions) (string, func(context.Context) error, error) {
	logrus.SetLevel(logrus.WarnLevel)
	dsn := o.DSN
	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(o.DataDir, "state.db") + "?" + sqlite.DefaultParams
	}
	// kine's own command-line defaults, as its binary would run.
	cfg := app.Config(nil)
	cfg.Listener = "127.0.0.1:0"
	cfg.Endpoint = dsn
	var wg sync.WaitGroup
	cfg.WaitGroup = &wg
	kctx, cancel := context.WithCancel(context.Background())
	etcd, err := endpoint.Listen(kctx, cfg)
	if err != nil {
		cancel()
		return "", nil, err
	}
	if len(etcd.Endpoints) == 0 {
		cancel()
		return "", nil, errors.New("kine: no endpoint")
	}
	stop := func(ctx context.Context) error {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		// On PostgreSQL, kine's poll loop can outlive its database handle
		// and log "sql: database is closed" in a tight loop (1.7 GB in a
		// minute); do not wait for it long.
		t := time.NewTimer(kineStopWait)
		defer t.Stop()
		select {
		case <-done:
			// kine's backend goroutines end after the gRPC server; give the
			// database a moment to close.
			time.Sleep(100 * time.Millisecond)
			return nil
		case <-t.C:
			return fmt.Errorf("kine: stop: its goroutines did not end within %s", kineStopWait)
		case <-ctx.Done():
			return fmt.Errorf("kine: stop: %w", ctx.Err())
		}
	}
	return etcd.Endpoints[0], stop, nil
}
