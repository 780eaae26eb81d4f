package sqlite_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/backendtest"
	"github.com/kinelite/kinelite/backend/sqlite"
)

func TestContract(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Opener {
		path := filepath.Join(t.TempDir(), "state.db")
		return func(t *testing.T) backend.Driver {
			d, err := sqlite.Open(sqlite.Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	})
}

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn     string
		path    string
		ignored int
		wantErr bool
	}{
		{"", sqlite.DefaultPath, 0, false},
		{"sqlite://", sqlite.DefaultPath, 0, false},
		{"sqlite://./db/x.db", "./db/x.db", 0, false},
		{"/var/lib/state.db", "/var/lib/state.db", 0, false},
		{"sqlite:///abs/state.db?_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate&_stmt_cache_size=20&cache=shared",
			"/abs/state.db", 6, false},
		{"sqlite://x.db?_kine_disable_startup_vacuum=1", "x.db", 1, false},
		{"sqlite://x.db?bogus=1", "", 0, true},
		{"postgres://u:p@h/db", "", 0, true},
		{"sqlite://x.db?%zz", "", 0, true},
	}
	for _, c := range cases {
		t.Run(c.dsn, func(t *testing.T) {
			cfg, ignored, err := sqlite.ParseDSN(c.dsn)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			if cfg.Path != c.path || len(ignored) != c.ignored {
				t.Fatalf("path %q ignored %v", cfg.Path, ignored)
			}
		})
	}
	if _, _, err := sqlite.ParseDSN("postgres://user:secret@host/db"); err == nil || contains(err.Error(), "secret") {
		t.Fatalf("error leaks the password or is missing: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
