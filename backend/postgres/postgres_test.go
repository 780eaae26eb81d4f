package postgres_test

import (
	"testing"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/backendtest"
	"github.com/kinelite/kinelite/backend/postgres"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

func TestContract(t *testing.T) {
	pgtest.Server(t)
	backendtest.Run(t, func(t *testing.T) backendtest.Opener {
		dsn := pgtest.NewDatabase(t)
		return func(t *testing.T) backend.Driver { return openDriver(t, dsn) }
	})
}

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn, want string
		wantErr   bool
	}{
		{"postgres://u:p@h:5432/db?sslmode=disable", "postgres://u:p@h:5432/db?sslmode=disable", false},
		{"postgresql://h/", "postgresql://h/kubernetes", false},
		{"postgres://h", "postgres://h/kubernetes", false},
		{"mysql://h/db", "", true},
		{"postgres://h/a/b", "", true},
	}
	for _, c := range cases {
		cfg, err := postgres.ParseDSN(c.dsn)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseDSN(%q): err %v, want error %v", c.dsn, err, c.wantErr)
			continue
		}
		if err == nil && cfg.DSN != c.want {
			t.Errorf("ParseDSN(%q) = %q, want %q", c.dsn, cfg.DSN, c.want)
		}
	}
}
