package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/internal/failpoint"
	"github.com/kinelite/kinelite/internal/redact"
)

// DefaultPath is where kinelite keeps its database when the DSN names none:
// kine's default.
const DefaultPath = "./db/state.db"

// Config describes one SQLite database.
type Config struct {
	// Path is the database file. Its directory is created (mode 0700) when
	// missing.
	Path string

	// NoFsync trades durability for speed: commits are not synced to disk
	// (synchronous=NORMAL in WAL mode). A process crash loses nothing; a
	// power cut may lose the last commits. Off by default.
	NoFsync bool

	// ReadConnections bounds the connections that serve reads. Default:
	// four per CPU, at least 4.
	ReadConnections int

	// ReadOnly opens an existing database for queries only, with no writer
	// (for inspection, online or offline): the driver's writes fail.
	ReadOnly bool
}

// ParseDSN reads kine's SQLite DSN forms: "sqlite://PATH?PARAMS", a bare
// path, or "" for DefaultPath. kinelite chooses its own pragmas whatever the
// DSN says, so kine's parameters (_journal_mode, _synchronous, _busy_timeout,
// _txlock, cache, ...) are accepted and ignored; ignored lists them so the
// caller can say so. An unknown parameter is an error.
func ParseDSN(dsn string) (cfg Config, ignored []string, err error) {
	rest, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok && strings.Contains(dsn, "://") {
		return cfg, nil, fmt.Errorf("sqlite: not a sqlite DSN: %q", redactDSN(dsn))
	}
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		path = DefaultPath
	}
	cfg.Path = path
	params, err := url.ParseQuery(query)
	if err != nil {
		return cfg, nil, fmt.Errorf("sqlite: parse DSN parameters: %w", err)
	}
	for name := range params {
		if !kineParams[name] && !strings.HasPrefix(name, "_kine_") {
			return cfg, nil, fmt.Errorf("sqlite: unknown DSN parameter %q", name)
		}
		ignored = append(ignored, name)
	}
	return cfg, ignored, nil
}

// kineParams are the DSN parameters kine and go-sqlite3 accept.
var kineParams = map[string]bool{
	"_journal_mode": true, "_journal": true, "_busy_timeout": true, "_timeout": true,
	"_synchronous": true, "_sync": true, "_txlock": true, "_stmt_cache_size": true,
	"cache": true, "mode": true, "_fk": true, "_foreign_keys": true, "_loc": true,
	"_auto_vacuum": true, "_vacuum": true, "_cache_size": true, "_pragma": true,
}

func redactDSN(dsn string) string { return redact.DSN(dsn) }

// writerCacheKiB bounds the writer connection's page cache. SQLite's page
// cache lives in modernc's emulated C heap, outside the Go heap and its
// metrics, and is never given back while the connection lives, so every
// KiB here is resident memory for the life of the process.
const writerCacheKiB = 4096

// Open opens (creating it when missing) the database and returns a Driver
// over it. Nothing runs in the background.
func Open(cfg Config) (backend.Driver, error) {
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if strings.ContainsAny(cfg.Path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?' or '#'", cfg.Path)
	}
	if cfg.ReadConnections <= 0 {
		cfg.ReadConnections = max(4, 4*runtime.GOMAXPROCS(0))
	}
	if cfg.ReadOnly {
		return openReadOnly(cfg)
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create database directory: %w", err)
		}
	}
	// The writer: one connection, immediate transactions, incremental
	// auto-vacuum on a new database (it cannot change later without a
	// VACUUM), WAL. synchronous=NORMAL: a commit writes its frames to the
	// WAL without syncing it, and the store syncs the WAL once per group
	// (walSyncer) while the next group is written; checkpoints still sync
	// the WAL before copying it, as with FULL. Its page cache is bounded at
	// writerCacheKiB: the pages a group commit touches are the tables' and
	// indexes' right edges and the interior pages above the keys it writes;
	// a page that falls out of the cache comes back from the kernel's page
	// cache with one pread.
	write, err := sql.Open("sqlite", cfg.Path+"?"+url.Values{
		"_pragma": {
			"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)",
			"journal_size_limit(67108864)", "cache_size(-" + strconv.Itoa(writerCacheKiB) + ")", "temp_store(MEMORY)",
			// Checkpoints run off the commit path (Checkpoint), never
			// inside a commit.
			"wal_autocheckpoint(0)",
		},
		"_auto_vacuum": {"INCREMENTAL"},
		"_txlock":      {"immediate"},
	}.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// Check the file before opening readers: a bad path or a file that is
	// not a database fails here with SQLite's message.
	if _, err := write.Exec("SELECT count(*) FROM sqlite_schema"); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	read, err := sql.Open("sqlite", cfg.Path+"?"+url.Values{
		"_pragma": {"busy_timeout(10000)", "query_only(1)", "mmap_size(4294967296)"},
	}.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	read.SetMaxOpenConns(cfg.ReadConnections)
	read.SetMaxIdleConns(cfg.ReadConnections)
	read.SetConnMaxIdleTime(0)
	read.SetConnMaxLifetime(0)
	// Checkpoints get a connection of their own, so that they never wait
	// for (or hold up) the writer.
	maint, err := sql.Open("sqlite", cfg.Path+"?"+url.Values{
		"_pragma": {"busy_timeout(10000)"},
	}.Encode())
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	maint.SetMaxOpenConns(1)
	// The start-up scan that rebuilds the index reads every page of the
	// table once. It gets a connection of its own, kept by no pool
	// (MaxIdleConns 0), so that it is closed once the scan ends: through a
	// reader's mmap every page of the table stayed mapped, and resident
	// (the whole database file, on a large table), for the life of the
	// process. It keeps mmap, which reads a large table faster than pread.
	scan, err := sql.Open("sqlite", cfg.Path+"?"+url.Values{
		"_pragma": {"busy_timeout(10000)", "query_only(1)", "mmap_size(4294967296)"},
	}.Encode())
	if err != nil {
		write.Close()
		read.Close()
		maint.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	scan.SetMaxOpenConns(1)
	scan.SetMaxIdleConns(0)
	dl := dialect{path: cfg.Path}
	if !cfg.NoFsync {
		dl.wal = &walSyncer{path: cfg.Path + "-wal"}
	}
	return backend.NewSQLDriver(backend.SQLConfig{Read: read, Write: write, Maintenance: maint, Scan: scan, Dialect: dl}), nil
}

func openReadOnly(cfg Config) (backend.Driver, error) {
	if _, err := os.Stat(cfg.Path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	read, err := sql.Open("sqlite", cfg.Path+"?"+url.Values{
		"_pragma": {"busy_timeout(10000)", "query_only(1)"},
	}.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	read.SetMaxOpenConns(cfg.ReadConnections)
	if _, err := read.Exec("SELECT count(*) FROM sqlite_schema"); err != nil {
		read.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	return backend.NewSQLDriver(backend.SQLConfig{Read: read, Write: read, Dialect: dialect{path: cfg.Path}}), nil
}

// dialect is SQLite's part of the shared SQL.
type dialect struct {
	path string
	wal  *walSyncer // nil with NoFsync
}

func (d dialect) SyncCommitted() error {
	if d.wal == nil {
		return nil
	}
	return d.wal.sync()
}

// kine's SQLite schema (kine v0.16), then kinelite's own tables.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS kine
		(
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			name TEXT,
			created INTEGER,
			deleted INTEGER,
			create_revision INTEGER,
			prev_revision INTEGER,
			lease INTEGER,
			value BLOB,
			old_value BLOB
		)`,
	`CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`,
	`CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)`,
	`CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)`,
	`CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
	`CREATE INDEX IF NOT EXISTS kine_id_compact_rev_key_with_prev_revision_index ON kine(id, name, prev_revision) WHERE name != 'compact_rev_key' AND prev_revision != 0`,
	`CREATE TABLE IF NOT EXISTS kinelite_lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS kinelite_version (name TEXT PRIMARY KEY, id INTEGER NOT NULL, version INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS kinelite_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
}

func (dialect) Schema() []string { return schema }

func (dialect) Rebind(q string) string { return q }

// IDsIn passes the IDs as one JSON array, so that one prepared statement
// serves any number of them.
func (dialect) IDsIn(ids []int64) (string, any) {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	b = append(b, ']')
	return `id IN (SELECT value FROM json_each(?))`, string(b)
}

func (dialect) BeginWrite(context.Context, *sql.Tx) error { return nil }

func (d dialect) Size(ctx context.Context, db *sql.DB) (backend.Size, error) {
	var s backend.Size
	var pages, free, pageSize int64
	err := db.QueryRowContext(ctx, `SELECT page_count, freelist_count, page_size
		FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`).Scan(&pages, &free, &pageSize)
	if err != nil {
		return s, err
	}
	s.Total, s.InUse = pages*pageSize, (pages-free)*pageSize
	if fi, err := os.Stat(d.path + "-wal"); err == nil {
		s.WAL = fi.Size()
	} else if !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	return s, nil
}

// Checkpoint copies the WAL into the database in PASSIVE mode: it copies
// what no reader still needs and never waits for the writer or readers, so
// writes go on meanwhile. Once a checkpoint has copied everything, the next
// commit starts the WAL over from its beginning (and journal_size_limit
// truncates the file), which is what keeps the WAL bounded. When the
// WAL-index shows fewer than minFrames frames waiting to be copied, it
// copies nothing and reports that state: a page written again and again (an
// index page that every compaction step changes) is then copied once per
// checkpoint rather than once per commit, and each checkpoint's syncs cover
// more pages.
func (d dialect) Checkpoint(ctx context.Context, db *sql.DB, minFrames int64) (backend.CheckpointResult, error) {
	if minFrames > 1 {
		if frames, copied, ok := walIndexState(d.path + "-shm"); ok && frames-copied < minFrames {
			return backend.CheckpointResult{Frames: frames, Copied: copied}, nil
		}
	}
	var busy int
	r := backend.CheckpointResult{Checkpointed: true}
	failpoint.Hit("sqlite-checkpoint")
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &r.Frames, &r.Copied); err != nil {
		return r, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	return r, nil
}

// RestartLog runs a RESTART checkpoint on the writer's connection. Called
// when passive checkpoints have copied the whole WAL, it has nothing left to
// copy: it only waits for readers still on older snapshots — at most
// restartWait, readers being short — so that the next commit writes the WAL
// from its beginning. Without it a steady stream of readers can keep the
// WAL from ever starting over (SQLite's checkpoint starvation, kine #582).
func (dialect) RestartLog(ctx context.Context, db *sql.DB) (bool, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWait.Milliseconds())); err != nil {
		return false, err
	}
	defer conn.ExecContext(context.Background(), "PRAGMA busy_timeout = 10000")
	var busy, frames, copied int
	failpoint.Hit("sqlite-restart-log")
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied); err != nil {
		return false, fmt.Errorf("sqlite: restart checkpoint: %w", err)
	}
	return busy == 0, nil
}

// restartWait bounds how long RestartLog holds the writer waiting for
// readers.
const restartWait = 10 * time.Millisecond

// Reclaim runs an incremental vacuum of at most maxPages pages. On a
// database created by kine (auto_vacuum=NONE) it does nothing: one
// Defragment (VACUUM) switches such a database to incremental mode.
func (dialect) Reclaim(ctx context.Context, tx *sql.Tx, maxPages int) (int, error) {
	var before, after int
	if err := tx.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&before); err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, maxPages))
	if err != nil {
		return 0, fmt.Errorf("sqlite: incremental vacuum: %w", err)
	}
	for rows.Next() {
	}
	if err := closeErr(rows); err != nil {
		return 0, fmt.Errorf("sqlite: incremental vacuum: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&after); err != nil {
		return 0, err
	}
	return before - after, nil
}

func closeErr(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

func (dialect) TableExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}

// Defragment rewrites the database (VACUUM), then empties the WAL.
func (dialect) Defragment(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("sqlite: vacuum: %w", err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	return nil
}
