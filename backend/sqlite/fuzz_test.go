package sqlite_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kinelite/kinelite/backend/sqlite"
)

// FuzzParseDSN: ParseDSN never panics; what it accepts names a path and
// only parameters kine knows; what it refuses it refuses with an error
// that carries no password from the DSN.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"", "sqlite://", "sqlite://./db/state.db", "/var/lib/state.db", "state.db?_journal_mode=WAL",
		"sqlite:///abs/state.db?_journal_mode=WAL&_busy_timeout=30000&cache=shared",
		"sqlite://x.db?_kine_disable_startup_vacuum=1", "sqlite://x.db?bogus=1", "postgres://u:p@h/db",
		"sqlite://x.db?%zz", "sqlite://x.db?_pragma=busy_timeout(1)&_pragma=foo", "sqlite://x.db#frag",
		"mysql://root:hunter22@tcp(h)/db", "sqlite://user:hunter22@host/db?x=1", "sqlite://a?b?c=1;d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		cfg, ignored, err := sqlite.ParseDSN(dsn)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(dsn, "\n") {
				t.Fatalf("a multi-line error: %q", err)
			}
			if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 4 &&
					strings.Count(dsn, pw) == 1 && !strings.Contains("sqlite: not a DSN unknown parameter", pw) &&
					strings.Contains(err.Error(), pw) {
					t.Fatalf("the error %q holds the password %q", err, pw)
				}
			}
			return
		}
		if cfg.Path == "" {
			t.Fatalf("accepted %q without a path", dsn)
		}
		if strings.Contains(cfg.Path, "?") {
			t.Fatalf("the path %q of %q holds the query", cfg.Path, dsn)
		}
		if strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "sqlite://") {
			t.Fatalf("accepted %q, which is not a sqlite DSN", dsn)
		}
		for _, p := range ignored {
			if p == "" && !strings.Contains(dsn, "?") {
				t.Fatalf("an empty parameter from %q", dsn)
			}
		}
		// Accepting is stable: the path and parameters parse the same again.
		again := "sqlite://" + cfg.Path
		if _, q, ok := strings.Cut(strings.TrimPrefix(dsn, "sqlite://"), "?"); ok {
			again += "?" + q
		}
		cfg2, ignored2, err := sqlite.ParseDSN(again)
		if err != nil || cfg2.Path != cfg.Path || len(ignored2) != len(ignored) {
			t.Fatalf("%q parsed to %q %v, its re-encoding %q to %q %v %v", dsn, cfg.Path, ignored, again, cfg2.Path, ignored2, err)
		}
	})
}
