package servers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvPostgres names the environment variable holding the PostgreSQL server
// the -pg kinds use: a DSN without a database name. It is the variable the
// main module's PostgreSQL tests read.
const EnvPostgres = "KINELITE_TEST_POSTGRES"

// DefaultPostgres is the server the -pg kinds use when neither SetPostgres
// nor $KINELITE_TEST_POSTGRES names one.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/"

var (
	pgMu     sync.Mutex
	pgServer string
)

// SetPostgres sets the PostgreSQL server (a DSN; its database name, if
// any, is ignored) on which the -pg kinds create their databases.
func SetPostgres(dsn string) {
	pgMu.Lock()
	defer pgMu.Unlock()
	pgServer = dsn
}

// PostgresServer returns the PostgreSQL server the -pg kinds use.
func PostgresServer() string {
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgServer != "" {
		return pgServer
	}
	if s := os.Getenv(EnvPostgres); s != "" {
		return s
	}
	return DefaultPostgres
}

// pgStore is a datastore that is a PostgreSQL database of its own, created
// (CREATE DATABASE bench_<random>) when a server first starts on a data
// directory and dropped (DROP DATABASE ... WITH (FORCE)) when the data
// directory is removed. The data directory holds only the database's name,
// so that several server processes given the same data directory share the
// database.
type pgStore struct{}

// pgNameFile is the file in the data directory that names its database.
const pgNameFile = "bench-postgres-database"

func (pgStore) Name() string { return "PostgreSQL database" }

// withDatabase returns the server DSN with its database set to db.
func withDatabase(server, db string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("postgres server %q: want postgres://user@host:port/", server)
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String(), nil
}

// adminExec runs statements on the server's "postgres" database.
func adminExec(ctx context.Context, stmts ...string) error {
	dsn, err := withDatabase(PostgresServer(), "postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: connect to %s: %w", PostgresServer(), err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: %s: %w", s, err)
		}
	}
	return nil
}

func pgDatabaseOf(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, pgNameFile))
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, "bench_") {
		return "", fmt.Errorf("postgres: %s names %q, not a bench database", dataDir, name)
	}
	return name, nil
}

// newPGDatabase creates a fresh database, records its name in dataDir, and
// returns the name. template, when set, is the database to copy.
func newPGDatabase(ctx context.Context, dataDir, template string) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "bench_" + hex.EncodeToString(b[:])
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		stmt += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	// A template must have no connections; a server that has just stopped
	// may still be closing its own.
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = adminExec(ctx, stmt); err == nil {
			break
		}
		var pe *pgconn.PgError
		if template == "" || !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dataDir, pgNameFile), []byte(name+"\n"), 0o600); err != nil {
		_ = adminExec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return "", err
	}
	return name, nil
}

// DSN returns the data directory's database, creating it on first use.
func (pgStore) DSN(kind, dataDir string) (string, error) {
	name, err := pgDatabaseOf(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		name, err = newPGDatabase(ctx, dataDir, "")
	}
	if err != nil {
		return "", err
	}
	return withDatabase(PostgresServer(), name)
}

// Size is pg_database_size of the data directory's database.
func (pgStore) Size(dataDir string) (int64, error) {
	name, err := pgDatabaseOf(dataDir)
	if err != nil {
		return 0, err
	}
	dsn, err := withDatabase(PostgresServer(), "postgres")
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var size int64
	err = conn.QueryRow(ctx, "SELECT pg_database_size($1)", name).Scan(&size)
	return size, err
}

// Copy creates dst's database with src's as its template.
func (pgStore) Copy(src, dst string) error {
	name, err := pgDatabaseOf(src)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err = newPGDatabase(ctx, dst, name)
	return err
}

// Remove drops the data directory's database, then the directory.
func (pgStore) Remove(dataDir string) error {
	name, err := pgDatabaseOf(dataDir)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = adminExec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	} else if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return errors.Join(err, os.RemoveAll(dataDir))
}
