package kinelite_test

import (
	"database/sql"
	"testing"

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

func countRows(t *testing.T, path string) int {
	t.Helper()
	var n int
	if err := openRaw(t, path).QueryRow(`SELECT COUNT(*) FROM kine`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
