package kinelite_test

import (
	"database/sql"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"
)

// openRaw opens the SQLite file directly, as kine (or an operator) would.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openTable opens the test server's database directly, whichever backend
// it runs on.
func (ts *testServer) openTable() *sql.DB {
	ts.t.Helper()
	if ts.dbPath != "" {
		return openRaw(ts.t, ts.dbPath)
	}
	if !strings.HasPrefix(ts.cfg.Endpoint, "postgres") {
		ts.t.Fatalf("no direct access to %q", ts.cfg.Endpoint)
	}
	db, err := sql.Open("pgx", ts.cfg.Endpoint)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { db.Close() })
	return db
}

// countRows counts the rows of kine's table.
func (ts *testServer) countRows() int {
	ts.t.Helper()
	var n int
	if err := ts.openTable().QueryRow(`SELECT COUNT(*) FROM kine`).Scan(&n); err != nil {
		ts.t.Fatal(err)
	}
	return n
}
