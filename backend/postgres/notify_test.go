package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

// TestCommitNotifiesOutsideTheWriteTransaction: the other processes are
// woken after a write commits, by a notification the write transaction does
// not send itself. PostgreSQL serializes the commits of every notifying
// transaction, in every database of the server, under one lock held until
// each commit is on disk; a write that notified inside its own transaction
// queued behind the fsyncs of every other kinelite's commits on the server
// (wait event Lock:object at commit), and stalled for seconds under load.
func TestCommitNotifiesOutsideTheWriteTransaction(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang, not a performance bound
	defer cancel()
	d := openDriver(t, dsn)
	t.Cleanup(func() { d.Close() })
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	listener, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "LISTEN kinelite"); err != nil {
		t.Fatal(err)
	}

	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The writer's backend is the one holding the write lock.
	var writer uint32
	if err := listener.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&writer); err != nil {
		t.Fatalf("find the writer's backend: %v", err)
	}
	if err := tx.Insert(ctx, []backend.Row{{ID: 100, Name: "/k", Created: true, Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification after a commit: %v", err)
	}
	if n.PID == writer {
		t.Fatalf("the write transaction sent the notification itself (backend %d): its commit takes PostgreSQL's notify lock", writer)
	}
}
