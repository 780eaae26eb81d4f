// Package pgtest gives tests a PostgreSQL database of their own.
//
// The server comes from $KINELITE_TEST_POSTGRES, a DSN without a database
// name (for example postgres://postgres@127.0.0.1:5432/). Without it, tests
// that need PostgreSQL skip with a loud message, unless
// $KINELITE_TEST_POSTGRES_REQUIRED is set (as .ci/run does), in which case
// they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN and EnvRequired are the environment variables pgtest reads.
const (
	EnvDSN      = "KINELITE_TEST_POSTGRES"
	EnvRequired = "KINELITE_TEST_POSTGRES_REQUIRED"
)

// Server returns the server DSN, skipping or failing t when there is none.
func Server(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv(EnvRequired) != "" {
			t.Fatalf("PostgreSQL is required ($%s is set) but $%s is empty", EnvRequired, EnvDSN)
		}
		t.Skipf("SKIPPING: no PostgreSQL; set $%s (e.g. postgres://postgres@127.0.0.1:5432/) to run this test", EnvDSN)
	}
	return dsn
}

// NewDatabase creates an empty database for t, drops it when t ends, and
// returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	server := Server(t)
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("$%s: %v", EnvDSN, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kinelite_test_" + hex.EncodeToString(b[:])
	admin := *u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		if os.Getenv(EnvRequired) == "" {
			t.Skipf("SKIPPING: PostgreSQL at $%s unreachable: %v", EnvDSN, err)
		}
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { Drop(t, admin.String(), name) })
	db := *u
	db.Path = "/" + name
	return db.String()
}

// Drop drops a database, disconnecting whoever still uses it.
func Drop(t testing.TB, adminDSN, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Errorf("drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
		t.Errorf("drop database %s: %v", name, err)
	}
}
