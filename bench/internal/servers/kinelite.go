package servers

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kinelite/kinelite"
)

func init() {
	register(&Kind{
		Name: "kinelite",
		Durability: "SQLite (modernc.org/sqlite) in WAL mode with synchronous=FULL: " +
			"one fsync per group commit (kinelite's default)",
		MultiOpTxn: true,
		Store:      dirStore{name: "SQLite file"},
		serve:      serveKinelite,
	})
	register(&Kind{
		Name: "kinelite-pg",
		Durability: "PostgreSQL (github.com/jackc/pgx/v5, kinelite's defaults) on the server's defaults " +
			"(synchronous_commit=on, fsync=on: one WAL flush per commit); a fresh database per run",
		MultiOpTxn: true,
		Shared:     true,
		Store:      pgStore{},
		serve:      serveKinelite,
	})
}

func serveKinelite(ctx context.Context, o serveOptions) (string, func(context.Context) error, error) {
	dsn := o.DSN
	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(o.DataDir, "state.db")
	}
	srv, err := kinelite.Open(ctx, kinelite.Config{
		Endpoint:      dsn,
		ListenAddress: "127.0.0.1:0",
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return "", nil, err
	}
	return srv.Endpoints()[0], srv.Close, nil
}
