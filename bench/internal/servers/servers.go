// Package servers knows how to run each server under test in a process of its
// own: kinelite, an embedded etcd, and kine. The parent side (Start) re-executes
// the current binary with the hidden arguments "serve KIND ..."; the child side
// (MaybeServe) recognises them, starts the server, prints one READY line and
// serves until SIGTERM.
//
// # Adding a server
//
// A Kind names its Datastore, which decides where the server keeps its data
// and how the harness sizes, copies and cleans it. Every kind today keeps its
// data in a fresh directory (SQLite file, etcd's bbolt and WAL), except the
// PostgreSQL variants of kinelite and kine ("kinelite-pg", "kine-pg"): their
// Datastore (postgres.go) creates a fresh database per run on the server
// named by SetPostgres or $KINELITE_TEST_POSTGRES, reports pg_database_size
// as its size, copies a template with CREATE DATABASE ... TEMPLATE and drops
// the database WITH (FORCE) when the data directory is removed. They are
// Shared: two processes started on one data directory serve one database,
// which the two-process workloads use.
package servers

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Kind is one server under test.
type Kind struct {
	// Name is the short name used in flags, tables and file names.
	Name string
	// Durability describes the server's commit durability as configured
	// here, for the machine description.
	Durability string
	// MultiOpTxn is true when the server accepts a Txn of several Puts.
	// Preloading uses it to load in batches; otherwise it writes one key per
	// request.
	MultiOpTxn bool
	// RevisionPerTxn is true when a multi-op Txn takes one revision (etcd);
	// false when each write takes its own (kinelite, kine).
	RevisionPerTxn bool
	// Shared is true when several server processes may serve one datastore
	// (the -pg kinds): processes started on the same data directory then
	// share its database.
	Shared bool
	// Store is where the server keeps its data.
	Store Datastore
	// serve starts the server in this process (the child). It returns the
	// client endpoint once the server accepts requests, and the function
	// that stops it gracefully.
	serve func(ctx context.Context, o serveOptions) (endpoint string, stop func(context.Context) error, err error)
}

// serveOptions is what the parent tells the child.
type serveOptions struct {
	// DataDir is the server's fresh (or copied) data directory.
	DataDir string
	// DSN is the datastore address the Datastore chose; empty for servers
	// that take only DataDir.
	DSN string
}

// Datastore is where a kind keeps its data.
type Datastore interface {
	// Name describes the datastore ("SQLite file", "bbolt + WAL").
	Name() string
	// DSN returns the datastore address for a server whose data directory
	// is dataDir, preparing what it needs (a fresh database, for a SQL
	// server). Servers whose data lives in dataDir itself return "".
	DSN(kind, dataDir string) (string, error)
	// Size returns the bytes the datastore occupies on disk.
	Size(dataDir string) (int64, error)
	// Copy makes dst a copy of the datastore at src (both data
	// directories); the copy is independent of src.
	Copy(src, dst string) error
	// Remove deletes the datastore at dataDir.
	Remove(dataDir string) error
}

var kinds = map[string]*Kind{}

func register(k *Kind) {
	if _, dup := kinds[k.Name]; dup {
		panic("servers: duplicate kind " + k.Name)
	}
	kinds[k.Name] = k
}

// Lookup returns the kind called name.
func Lookup(name string) (*Kind, error) {
	k, ok := kinds[name]
	if !ok {
		return nil, fmt.Errorf("servers: unknown server %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return k, nil
}

// Names lists the registered kinds, sorted.
func Names() []string {
	var names []string
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
