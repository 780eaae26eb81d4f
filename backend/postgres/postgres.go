package postgres

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/internal/redact"
)

// DefaultDatabase is the database a DSN without one names: kine's.
const DefaultDatabase = "kubernetes"

// Config describes one PostgreSQL database.
type Config struct {
	// DSN is a postgres:// or postgresql:// URL (see ParseDSN).
	DSN string

	// TLS, when set, is used for the connection to PostgreSQL instead of
	// what the DSN's sslmode asks for.
	TLS *tls.Config

	// MaxOpenConns bounds the reading pool (0: no bound) and MaxIdleConns
	// the connections it keeps open between queries (0:
	// DefaultMaxIdleConns, negative: none); kine's
	// --datastore-max-open-connections and --datastore-max-idle-connections.
	// ConnMaxLifetime closes connections older than it (0: never).
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration

	// ConnectTimeout bounds each connection attempt. Default 5s.
	ConnectTimeout time.Duration
}

// ParseDSN checks a postgres:// or postgresql:// DSN and fills in kine's
// default database when it names none. Query parameters are libpq's
// (sslmode, sslrootcert, connect_timeout, ...).
func ParseDSN(dsn string) (Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return Config{}, fmt.Errorf("postgres: invalid DSN: %s", redactErr(err, dsn))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return Config{}, fmt.Errorf("postgres: not a postgres DSN (scheme %q)", u.Scheme)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db == "" {
		u.Path = "/" + DefaultDatabase
	} else if strings.Contains(db, "/") {
		// Not quoted: a password with a '/' lands here ("user:pa/ss@host").
		return Config{}, errors.New("postgres: invalid database name: it holds a '/' " +
			"(percent-encode special characters in the user name and password)")
	}
	return Config{DSN: u.String()}, nil
}

// redactErr renders a url.Parse error without the DSN it quotes, which may
// hold a password.
func redactErr(err error, dsn string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		// The message quotes what it could not parse ("invalid port
		// \":PART-OF-A-PASSWORD\" after host"): keep only its kind.
		msg := ue.Err.Error()
		if i := strings.IndexAny(msg, "\"`"); i >= 0 {
			msg = strings.TrimSpace(msg[:i])
		}
		return msg + " (percent-encode special characters in the user name and password)"
	}
	return redact.DSN(strings.ReplaceAll(err.Error(), dsn, "<dsn>"))
}

// DefaultMaxIdleConns is how many idle reading connections are kept, as
// kine keeps: database/sql's default of 2 makes concurrent readers open and
// close a PostgreSQL connection (a server process) for most queries.
const DefaultMaxIdleConns = 20

// idleTimeout closes reading connections idle that long (kine's default
// --datastore-connection-max-idle-time).
const idleTimeout = 2 * time.Minute

// advisory lock keys: "kinelite" as a big-endian int64, and one more for
// schema creation.
const (
	writeLockKey  int64 = 0x6b696e656c697465
	schemaLockKey int64 = writeLockKey + 1
)

// notifyChannel is the channel every write transaction notifies.
const notifyChannel = "kinelite"

// Open connects to the database, creating it when missing as kine does, and
// returns a Driver over it. Only the notifier (see runNotifier) runs in the
// background, until Close.
func Open(ctx context.Context, cfg Config) (backend.Driver, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres: empty DSN")
	}
	conf, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN: %w", redactPgErr(err))
	}
	if cfg.TLS != nil {
		conf.TLSConfig = cfg.TLS.Clone()
		if conf.TLSConfig.ServerName == "" {
			conf.TLSConfig.ServerName = conf.Host
		}
		conf.Fallbacks = nil
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if conf.ConnectTimeout == 0 {
		conf.ConnectTimeout = cfg.ConnectTimeout
	}
	if err := ensureDatabase(ctx, conf); err != nil {
		return nil, err
	}
	read := stdlib.OpenDB(*conf)
	if cfg.MaxOpenConns > 0 {
		read.SetMaxOpenConns(cfg.MaxOpenConns)
	}
	switch {
	case cfg.MaxIdleConns == 0:
		read.SetMaxIdleConns(DefaultMaxIdleConns)
	case cfg.MaxIdleConns < 0:
		read.SetMaxIdleConns(0)
	default:
		read.SetMaxIdleConns(cfg.MaxIdleConns)
	}
	read.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	read.SetConnMaxIdleTime(idleTimeout)
	write := stdlib.OpenDB(*conf)
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	d := &driver{conf: conf, notifyc: make(chan struct{}, 1), notifyDone: make(chan struct{})}
	d.Driver = backend.NewSQLDriver(backend.SQLConfig{Read: read, Write: write, Dialect: dialect{}})
	d.read = read
	var nctx context.Context
	nctx, d.stopNotify = context.WithCancel(context.Background())
	go d.runNotifier(nctx)
	return d, nil
}

// redactPgErr drops the connection string pgx may quote in a parse error.
func redactPgErr(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// pgx masks passwords in the string it quotes, best effort;
		// redact.DSN covers the other secret parameters.
		return errors.New(redact.DSN(pe.Error()))
	}
	return err
}

// ensureDatabase creates conf's database when it does not exist.
func ensureDatabase(ctx context.Context, conf *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, conf)
	if err == nil {
		return conn.Close(ctx)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("postgres: connect: %w", err)
	}
	admin := conf.Copy()
	admin.Database = "postgres"
	aconn, aerr := pgx.ConnectConfig(ctx, admin)
	if aerr != nil {
		return fmt.Errorf("postgres: database %q does not exist, and connecting to create it failed: %w", conf.Database, aerr)
	}
	defer aconn.Close(ctx)
	_, err = aconn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{conf.Database}.Sanitize())
	if err != nil {
		if errors.As(err, &pe) && pe.Code == "42P04" { // duplicate_database: another process won
			return nil
		}
		return fmt.Errorf("postgres: create database %q: %w", conf.Database, err)
	}
	return nil
}

// driver adds to the shared SQL driver what only PostgreSQL has: other
// processes writing the same database.
type driver struct {
	backend.Driver
	conf *pgx.ConnConfig
	read *sql.DB

	notifyc    chan struct{} // a commit to announce; holds at most one
	stopNotify context.CancelFunc
	notifyDone chan struct{}
}

var _ backend.SharedDriver = (*driver)(nil)

// Begin begins a write transaction whose commit wakes the other processes.
func (d *driver) Begin(ctx context.Context) (backend.Tx, error) {
	tx, err := d.Driver.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &notifyingTx{Tx: tx, d: d}, nil
}

// notifyingTx announces its commit to the other processes once it is
// durable.
type notifyingTx struct {
	backend.Tx
	d *driver
}

func (t *notifyingTx) Commit() error {
	err := t.Tx.Commit()
	if err == nil {
		t.d.announce()
	}
	return err
}

// announce asks the notifier to wake the other processes. It never waits:
// commits made while a notification is on its way share the next one.
func (d *driver) announce() {
	select {
	case d.notifyc <- struct{}{}:
	default:
	}
}

// qNotify wakes the processes that follow this database. It is a
// transaction of its own that does not wait for its commit record to reach
// the disk: a notification only says "look at the head", and nothing is lost
// with it (the followers poll too).
const qNotify = `SELECT set_config('synchronous_commit', 'off', true), pg_notify('` + notifyChannel + `', '')`

// runNotifier sends a notification after each announced commit, until ctx
// ends.
//
// The notification used to be a NOTIFY inside the write transaction, where
// PostgreSQL delivers it at commit. But PostgreSQL serializes the commits of
// every transaction that notifies, in every database of the server, under
// one lock held until the commit is durable (PreCommit_Notify): each write
// of every kinelite on the server then waited for the fsyncs of all the
// others' commits queued before it, one after the other, instead of sharing
// a flush with them. Under load that made single writes wait for seconds
// (wait event Lock:object at commit). Notifying after the commit, in a
// transaction that holds that lock only for an instant, leaves write commits
// out of it.
func (d *driver) runNotifier(ctx context.Context) {
	defer close(d.notifyDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.notifyc:
		}
		// A failure costs the followers a poll interval; nothing to retry.
		_, _ = d.read.ExecContext(ctx, qNotify)
	}
}

// Close stops the notifier and closes the connections.
func (d *driver) Close() error {
	d.stopNotify()
	<-d.notifyDone
	return d.Driver.Close()
}

// CheckKey refuses keys PostgreSQL text cannot hold.
func (d *driver) CheckKey(key string) error {
	if !utf8.ValidString(key) {
		return errors.New("key is not valid UTF-8, which the PostgreSQL backend requires")
	}
	if strings.IndexByte(key, 0) >= 0 {
		return errors.New("key holds a NUL byte, which the PostgreSQL backend cannot store")
	}
	return nil
}

const qHead = `SELECT (SELECT COALESCE(MAX(id), 0) FROM kine),
	(SELECT COALESCE(MAX(prev_revision), 0) FROM kine WHERE name = 'compact_rev_key'),
	COALESCE((SELECT value FROM kinelite_meta WHERE name = '` + backend.MetaCompactedThrough + `'), 0)`

func (d *driver) Head(ctx context.Context) (backend.Head, error) {
	var h backend.Head
	err := d.read.QueryRowContext(ctx, qHead).Scan(&h.Rev, &h.CompactRev, &h.CompactedThrough)
	return h, err
}

func (d *driver) Lease(ctx context.Context, id int64) (backend.LeaseState, bool, error) {
	var l backend.LeaseState
	err := d.read.QueryRowContext(ctx, `SELECT ttl, expires_at FROM kinelite_lease WHERE id = $1`, id).Scan(&l.TTL, &l.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	return l, err == nil, err
}

func (d *driver) Leases(ctx context.Context) (map[int64]backend.LeaseState, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT id, ttl, expires_at FROM kinelite_lease`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]backend.LeaseState)
	for rows.Next() {
		var id int64
		var l backend.LeaseState
		if err := rows.Scan(&id, &l.TTL, &l.ExpiresAt); err != nil {
			return nil, err
		}
		out[id] = l
	}
	return out, rows.Err()
}

func (d *driver) RenewLease(ctx context.Context, id int64, expiresAt int64) (bool, error) {
	res, err := d.read.ExecContext(ctx, `UPDATE kinelite_lease SET expires_at = GREATEST(expires_at, $2) WHERE id = $1`, id, expiresAt)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Follow listens for other processes' commits on a connection of its own,
// reconnecting after a failure, and calls changed after each notification
// and after each (re)connection, until ctx ends.
func (d *driver) Follow(ctx context.Context, changed func()) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listen(ctx, changed, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			break
		}
		_ = err // the store's poll covers the gap; retry with backoff
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return ctx.Err()
}

func (d *driver) listen(ctx context.Context, changed, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, d.conf)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	connected()
	changed() // whatever was committed while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		changed()
	}
}

// Lead blocks until this process holds the named leadership (a session
// advisory lock on a connection of its own), runs fn with a context that ends
// when the leadership is lost or ctx ends, and repeats until ctx ends.
func (d *driver) Lead(ctx context.Context, name string, fn func(ctx context.Context)) error {
	h := fnv.New32a()
	h.Write([]byte(name))
	key := writeLockKey + 16 + int64(h.Sum32())
	for ctx.Err() == nil {
		_ = d.leadOnce(ctx, key, fn)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return ctx.Err()
}

func (d *driver) leadOnce(ctx context.Context, key int64, fn func(ctx context.Context)) error {
	conn, err := pgx.ConnectConfig(ctx, d.conf)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			return err
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(lctx)
	}()
	// Hold the lock while the connection is healthy.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-t.C:
			if err := conn.Ping(lctx); err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
}

// dialect is PostgreSQL's side of the shared SQL driver.
type dialect struct{}

// SyncCommitted does nothing: a PostgreSQL commit returns once its WAL
// record is flushed.
func (dialect) SyncCommitted() error { return nil }

// schema is kine's PostgreSQL schema, with 64-bit lease IDs (etcd's), then
// kinelite's own tables. Older kine databases are widened in place, as kine's
// own migration 1 does. It runs under schemaLockKey, so that several
// processes starting at once do not race.
var schema = []string{
	`SELECT pg_advisory_xact_lock(` + strconv.FormatInt(schemaLockKey, 10) + `)`,
	`CREATE TABLE IF NOT EXISTS kine
		(
			id BIGSERIAL PRIMARY KEY,
			name text COLLATE "C",
			created INTEGER,
			deleted INTEGER,
			create_revision BIGINT,
			prev_revision BIGINT,
			lease BIGINT,
			value bytea,
			old_value bytea
		)`,
	`DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
			AND table_name = 'kine' AND column_name IN ('lease', 'create_revision', 'prev_revision') AND data_type = 'integer') THEN
			ALTER TABLE kine ALTER COLUMN lease TYPE BIGINT, ALTER COLUMN create_revision TYPE BIGINT,
				ALTER COLUMN prev_revision TYPE BIGINT;
		END IF;
	END $$`,
	`CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`,
	`CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)`,
	`CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)`,
	`CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
	`CREATE INDEX IF NOT EXISTS kine_list_query_index ON kine (name, id DESC, deleted)`,
	`CREATE TABLE IF NOT EXISTS kinelite_lease (id BIGINT PRIMARY KEY, ttl BIGINT NOT NULL, expires_at BIGINT NOT NULL DEFAULT 0)`,
	`CREATE TABLE IF NOT EXISTS kinelite_version (name text COLLATE "C" PRIMARY KEY, id BIGINT NOT NULL, version BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS kinelite_meta (name text PRIMARY KEY, value BIGINT NOT NULL)`,
}

func (dialect) Schema() []string { return schema }

// Rebind turns ? placeholders into $1, $2, ... (the shared queries hold no
// ? inside string literals).
func (dialect) Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var sb strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteByte(q[i])
	}
	return sb.String()
}

func (dialect) IDsIn(ids []int64) (string, any) { return `id = ANY(?)`, ids }

// BeginWrite takes the write lock, so that transactions of every process
// commit one at a time in revision order. The other processes are notified
// after the commit (driver.runNotifier), not by a NOTIFY in the transaction.
func (dialect) BeginWrite(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey)
	if err != nil {
		return fmt.Errorf("take the write lock: %w", err)
	}
	return nil
}

func (dialect) Size(ctx context.Context, db *sql.DB) (backend.Size, error) {
	var s backend.Size
	err := db.QueryRowContext(ctx, `SELECT pg_database_size(current_database()),
		pg_total_relation_size('kine') + pg_total_relation_size('kinelite_lease') +
		pg_total_relation_size('kinelite_version') + pg_total_relation_size('kinelite_meta')`).Scan(&s.Total, &s.InUse)
	return s, err
}

// Defragment vacuums kinelite's tables: their free space becomes reusable
// (PostgreSQL returns it to the file system only at a table's end).
func (dialect) Defragment(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `VACUUM (ANALYZE) kine, kinelite_lease, kinelite_version, kinelite_meta`)
	return err
}

func (dialect) TableExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok)
	return ok, err
}

func (dialect) Checkpoint(context.Context, *sql.DB, int64) (backend.CheckpointResult, error) {
	return backend.CheckpointResult{}, nil
}

func (dialect) RestartLog(context.Context, *sql.DB) (bool, error) { return false, nil }

func (dialect) Reclaim(context.Context, *sql.Tx, int) (int, error) { return 0, nil }
