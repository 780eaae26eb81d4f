package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Dialect is what differs between the SQL databases kinelite runs on. The
// queries themselves are shared (sqldb.go); a dialect supplies its schema,
// its placeholder syntax and its maintenance statements.
type Dialect interface {
	// Schema returns the statements that create kine's table, its indexes
	// and kinelite's tables when they are missing. They run in order, each
	// must be idempotent.
	Schema() []string

	// Rebind rewrites a query written with ? placeholders into the
	// dialect's placeholder syntax.
	Rebind(query string) string

	// IDsIn returns a condition, with one placeholder, that selects rows of
	// kine whose id is in ids, and the argument that goes with it.
	IDsIn(ids []int64) (cond string, arg any)

	// BeginWrite runs first in every write transaction.
	BeginWrite(ctx context.Context, tx *sql.Tx) error

	// Size reports the database's size.
	Size(ctx context.Context, db *sql.DB) (Size, error)

	// Defragment gives free space back to the file system.
	Defragment(ctx context.Context, db *sql.DB) error

	// TableExists reports whether a table exists.
	TableExists(ctx context.Context, db *sql.DB, name string) (bool, error)

	// Checkpoint moves the write-ahead log into the database file, on db (a
	// connection of its own), without blocking writers; see
	// Driver.Checkpoint. A dialect without such a log does nothing.
	Checkpoint(ctx context.Context, db *sql.DB, minFrames int64) (CheckpointResult, error)

	// RestartLog starts the log over on db, the writer's connection, with
	// no transaction open; see Driver.RestartLog.
	RestartLog(ctx context.Context, db *sql.DB) (bool, error)

	// SyncCommitted makes the transactions committed so far durable; see
	// Driver.SyncCommitted.
	SyncCommitted() error

	// Reclaim gives at most maxPages free pages back to the file system,
	// inside a write transaction, and reports how many it gave. A dialect
	// whose database does this by itself returns 0.
	Reclaim(ctx context.Context, tx *sql.Tx, maxPages int) (int, error)
}

// SQLConfig is what NewSQLDriver needs.
type SQLConfig struct {
	// Read serves queries and may hold many connections.
	Read *sql.DB
	// Write serves the committer's transactions and should hold one
	// connection.
	Write *sql.DB
	// Maintenance serves checkpoints; nil means Read.
	Maintenance *sql.DB
	// Scan serves the whole-table scan that rebuilds the index at start-up;
	// nil means Read. SQLite gives it a pool that keeps no idle connection:
	// the scan reads every page of the table once, and through a reader's
	// mmap each of those pages would stay in the process's resident set for
	// as long as that connection lives.
	Scan    *sql.DB
	Dialect Dialect
}

// NewSQLDriver returns a Driver over database/sql. The pools may be the same;
// the driver closes each once.
func NewSQLDriver(cfg SQLConfig) Driver {
	if cfg.Maintenance == nil {
		cfg.Maintenance = cfg.Read
	}
	if cfg.Scan == nil {
		cfg.Scan = cfg.Read
	}
	return &sqlDriver{read: cfg.Read, write: cfg.Write, maint: cfg.Maintenance, scan: cfg.Scan, dialect: cfg.Dialect}
}

type sqlDriver struct {
	read    *sql.DB
	write   *sql.DB
	maint   *sql.DB
	scan    *sql.DB
	dialect Dialect

	mu             sync.Mutex // guards stmts and preparedWrites
	stmts          map[string]*sql.Stmt
	preparedWrites bool
}

var _ Driver = (*sqlDriver)(nil)

// The queries, with ? placeholders. kine's own compact_rev_key row is named
// in them literally, as kine's queries do.
const (
	qScan = `SELECT id, name, COALESCE(created, 0), COALESCE(deleted, 0), COALESCE(create_revision, 0),
		COALESCE(prev_revision, 0), COALESCE(lease, 0) FROM kine WHERE id > ? ORDER BY id`
	qValue   = `SELECT value FROM kine WHERE id = ?`
	qHistory = `SELECT k.id, k.name, COALESCE(k.created, 0), COALESCE(k.deleted, 0), COALESCE(k.create_revision, 0),
		COALESCE(k.prev_revision, 0), COALESCE(k.lease, 0), k.value, p.id, p.value
		FROM kine AS k LEFT JOIN kine AS p ON p.id = k.prev_revision AND k.prev_revision != 0 AND k.name != 'compact_rev_key'
		WHERE k.id >= ? AND k.id <= ? ORDER BY k.id LIMIT ?`
	qCompactRev       = `SELECT COALESCE(MAX(prev_revision), 0), COUNT(*) FROM kine WHERE name = 'compact_rev_key'`
	qMaxID            = `SELECT COALESCE(MAX(id), 0) FROM kine`
	qInsertCompactKey = `INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
		VALUES(?, 'compact_rev_key', 1, 0, 0, 0, 0, ?, NULL)`
	qSetCompactRev = `UPDATE kine SET prev_revision = ? WHERE name = 'compact_rev_key'`
	// qDeleteGapRow removes the gap row, if any, that claims a name being
	// created (see sqlTx.Insert). It matches exactly what clientKey calls a gap.
	qDeleteGapRow    = `DELETE FROM kine WHERE name = ? AND prev_revision = 0 AND deleted != 0`
	qDeleteCompacted = `DELETE FROM kine WHERE id IN (
			SELECT prev_revision FROM kine WHERE id > ? AND id <= ? AND name != 'compact_rev_key' AND prev_revision != 0
			UNION
			SELECT id FROM kine WHERE id >= ? AND id < ? AND deleted != 0
		) AND id != ? AND name != 'compact_rev_key' RETURNING id, name`
	qLeases      = `SELECT id, ttl FROM kinelite_lease`
	qPutLease    = `INSERT INTO kinelite_lease(id, ttl) VALUES(?, ?) ON CONFLICT(id) DO UPDATE SET ttl = excluded.ttl`
	qDeleteLease = `DELETE FROM kinelite_lease WHERE id = ?`
	qVersions    = `SELECT name, id, version FROM kinelite_version`
	qMeta        = `SELECT value FROM kinelite_meta WHERE name = ?`
	qPutMeta     = `INSERT INTO kinelite_meta(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`
)

// batched is a statement over a variable number of rows. It is prepared for
// every power-of-two row count up to maxBatchRows, and a call is split into
// such chunks, so that the writer never prepares a statement mid-transaction.
type batched struct{ prefix, row, suffix string }

// maxBatchRows bounds the rows of one statement (at most 8 arguments a row;
// SQLite allows 32766 arguments, PostgreSQL 65535).
const maxBatchRows = 256

var (
	insertRows = batched{
		prefix: `INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES `,
		row:    `(?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
	}
	putVersions = batched{
		prefix: `INSERT INTO kinelite_version(name, id, version) VALUES `,
		row:    `(?, ?, ?)`,
		// A record that already holds the row's version is left as it is:
		// no page changes (see batch.recordVersions).
		suffix: ` ON CONFLICT(name) DO UPDATE SET id = excluded.id, version = excluded.version
			WHERE kinelite_version.id <> excluded.id OR kinelite_version.version <> excluded.version`,
	}
	deleteVersions = batched{prefix: `DELETE FROM kinelite_version WHERE name IN (`, row: `?`, suffix: `)`}
)

var batchedQueries sync.Map // batchedKey → query text

type batchedKey struct {
	prefix string
	rows   int
}

func (b batched) query(n int) string {
	key := batchedKey{b.prefix, n}
	if q, ok := batchedQueries.Load(key); ok {
		return q.(string)
	}
	var sb strings.Builder
	sb.WriteString(b.prefix)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(b.row)
	}
	sb.WriteString(b.suffix)
	q := sb.String()
	batchedQueries.Store(key, q)
	return q
}

// exec runs b over rows rows in power-of-two chunks; args appends the
// arguments of row i.
func (b batched) exec(ctx context.Context, t *sqlTx, rows int, args func(dst []any, i int) []any) error {
	for done := 0; done < rows; {
		n := maxBatchRows
		for n > rows-done {
			n /= 2
		}
		var a []any
		for i := done; i < done+n; i++ {
			a = args(a, i)
		}
		if _, err := t.exec(ctx, b.query(n), a...); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// MetaCompactedThrough names compaction progress in kinelite_meta.
const MetaCompactedThrough = "compacted_through"

// writeQueries are the statements write transactions use. They are all
// prepared by Setup: the writer pool may hold a single connection, which an
// open transaction occupies, so nothing can be prepared on it meanwhile.
func writeQueries() []string {
	qs := []string{qSetCompactRev, qDeleteGapRow, qDeleteCompacted, qPutMeta, qPutLease, qDeleteLease}
	for n := 1; n <= maxBatchRows; n *= 2 {
		for _, b := range []batched{insertRows, putVersions, deleteVersions} {
			qs = append(qs, b.query(n))
		}
	}
	return qs
}

// stmt returns the prepared form of q on db, preparing it once. Statements
// on the writer must have been prepared by Setup.
func (d *sqlDriver) stmt(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	key := q
	if db == d.write && d.write != d.read {
		key = "w:" + q
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.stmts[key]; ok {
		return s, nil
	}
	if db == d.write && d.preparedWrites {
		return nil, fmt.Errorf("backend: write statement not prepared: %.40q", q)
	}
	s, err := db.PrepareContext(ctx, d.dialect.Rebind(q))
	if err != nil {
		return nil, err
	}
	if d.stmts == nil {
		d.stmts = make(map[string]*sql.Stmt)
	}
	d.stmts[key] = s
	return s, nil
}

func (d *sqlDriver) Setup(ctx context.Context) error {
	// One transaction, so that processes starting together on a shared
	// database do not race (a dialect may take a lock in its first
	// statement).
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	for _, q := range d.dialect.Schema() {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	var compactRev, rows int64
	if err := tx.QueryRowContext(ctx, d.dialect.Rebind(qCompactRev)).Scan(&compactRev, &rows); err != nil {
		return fmt.Errorf("read compact revision: %w", err)
	}
	if rows == 0 {
		var maxID int64
		if err := tx.QueryRowContext(ctx, qMaxID).Scan(&maxID); err != nil {
			return fmt.Errorf("read current revision: %w", err)
		}
		if _, err := tx.ExecContext(ctx, d.dialect.Rebind(qInsertCompactKey), maxID+1, []byte{}); err != nil {
			return fmt.Errorf("create compact_rev_key row: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	for _, q := range writeQueries() {
		if _, err := d.stmt(ctx, d.write, q); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
	}
	d.mu.Lock()
	d.preparedWrites = true
	d.mu.Unlock()
	return nil
}

func (d *sqlDriver) State(ctx context.Context) (State, error) {
	var st State
	var rows int64
	if err := d.read.QueryRowContext(ctx, d.dialect.Rebind(qCompactRev)).Scan(&st.CompactRevision, &rows); err != nil {
		return st, fmt.Errorf("read compact revision: %w", err)
	}
	opened, err := d.dialect.TableExists(ctx, d.read, "kinelite_meta")
	if err != nil || !opened {
		return st, err
	}
	st.Opened = true
	err = d.read.QueryRowContext(ctx, d.dialect.Rebind(qMeta), MetaCompactedThrough).Scan(&st.CompactedThrough)
	switch {
	case err == nil:
		st.Compacted = true
	case !errors.Is(err, sql.ErrNoRows):
		return st, fmt.Errorf("read compaction progress: %w", err)
	}
	st.Compacted = st.Compacted || st.CompactRevision > 0
	lrows, err := d.read.QueryContext(ctx, qLeases)
	if err != nil {
		return st, fmt.Errorf("read leases: %w", err)
	}
	for lrows.Next() {
		var l LeaseRow
		if err := lrows.Scan(&l.ID, &l.TTL); err != nil {
			lrows.Close()
			return st, fmt.Errorf("read leases: %w", err)
		}
		st.Leases = append(st.Leases, l)
	}
	if err := closeRows(lrows); err != nil {
		return st, fmt.Errorf("read leases: %w", err)
	}
	vrows, err := d.read.QueryContext(ctx, qVersions)
	if err != nil {
		return st, fmt.Errorf("read versions: %w", err)
	}
	for vrows.Next() {
		var v VersionRow
		if err := vrows.Scan(&v.Name, &v.ID, &v.Version); err != nil {
			vrows.Close()
			return st, fmt.Errorf("read versions: %w", err)
		}
		st.Versions = append(st.Versions, v)
	}
	if err := closeRows(vrows); err != nil {
		return st, fmt.Errorf("read versions: %w", err)
	}
	return st, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d *sqlDriver) Scan(ctx context.Context, after int64, fn func(Row) error) error {
	rows, err := d.scan.QueryContext(ctx, d.dialect.Rebind(qScan), after)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r Row
		var created, deleted int64
		if err := rows.Scan(&r.ID, &r.Name, &created, &deleted, &r.CreateRevision, &r.PrevRevision, &r.Lease); err != nil {
			return err
		}
		r.Created, r.Deleted = created != 0, deleted != 0
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (d *sqlDriver) Value(ctx context.Context, id int64) ([]byte, bool, error) {
	s, err := d.stmt(ctx, d.read, qValue)
	if err != nil {
		return nil, false, err
	}
	var v []byte
	err = s.QueryRowContext(ctx, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return nonNil(v), true, nil
}

func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

func (d *sqlDriver) Values(ctx context.Context, ids []int64) (map[int64][]byte, error) {
	out := make(map[int64][]byte, len(ids))
	cond, arg := d.dialect.IDsIn(ids)
	s, err := d.stmt(ctx, d.read, `SELECT id, value FROM kine WHERE `+cond)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			return nil, err
		}
		out[id] = nonNil(v)
	}
	return out, rows.Err()
}

func (d *sqlDriver) History(ctx context.Context, from, to int64, limit int) ([]HistoryRow, error) {
	s, err := d.stmt(ctx, d.read, qHistory)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, from, to, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HistoryRow
	for rows.Next() {
		var h HistoryRow
		var created, deleted int64
		var prevID sql.NullInt64
		if err := rows.Scan(&h.ID, &h.Name, &created, &deleted, &h.CreateRevision, &h.PrevRevision, &h.Lease,
			&h.Value, &prevID, &h.PrevValue); err != nil {
			return nil, err
		}
		h.Created, h.Deleted = created != 0, deleted != 0
		h.HasPrev = prevID.Valid
		if !h.Deleted {
			h.Value = nonNil(h.Value)
		}
		if h.HasPrev {
			h.PrevValue = nonNil(h.PrevValue)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (d *sqlDriver) Begin(ctx context.Context) (Tx, error) {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := d.dialect.BeginWrite(ctx, tx); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return &sqlTx{d: d, tx: tx}, nil
}

func (d *sqlDriver) Size(ctx context.Context) (Size, error) { return d.dialect.Size(ctx, d.read) }

func (d *sqlDriver) Defragment(ctx context.Context) error { return d.dialect.Defragment(ctx, d.write) }

func (d *sqlDriver) RestartLog(ctx context.Context) (bool, error) {
	return d.dialect.RestartLog(ctx, d.write)
}

func (d *sqlDriver) Checkpoint(ctx context.Context, minFrames int64) (CheckpointResult, error) {
	return d.dialect.Checkpoint(ctx, d.maint, minFrames)
}

func (d *sqlDriver) SyncCommitted() error { return d.dialect.SyncCommitted() }

func (d *sqlDriver) Close() error {
	d.mu.Lock()
	for _, s := range d.stmts {
		s.Close()
	}
	d.stmts = nil
	d.mu.Unlock()
	var errs []error
	closed := map[*sql.DB]bool{}
	for _, db := range []*sql.DB{d.read, d.write, d.maint, d.scan} {
		if !closed[db] {
			closed[db] = true
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

type sqlTx struct {
	d  *sqlDriver
	tx *sql.Tx
}

func (t *sqlTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := t.d.stmt(ctx, t.d.write, q)
	if err != nil {
		return nil, err
	}
	return t.tx.StmtContext(ctx, s).ExecContext(ctx, args...)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Insert inserts rows. kine's unique index on (name, prev_revision) lets a
// gap row named "gap-<id>" (prev_revision 0) block the first creation of the
// client key of the same name, whose row also has prev_revision 0; gap rows
// carry no data, so such a row is deleted first.
func (t *sqlTx) Insert(ctx context.Context, rows []Row) error {
	for _, r := range rows {
		if r.Created && r.PrevRevision == 0 && strings.HasPrefix(r.Name, gapRowNamePrefix) {
			if _, err := t.exec(ctx, qDeleteGapRow, r.Name); err != nil {
				return fmt.Errorf("delete gap row %q: %w", r.Name, err)
			}
		}
	}
	err := insertRows.exec(ctx, t, len(rows), func(a []any, i int) []any {
		r := rows[i]
		var value any
		if !r.Deleted {
			value = nonNil(r.Value)
		}
		return append(a, r.ID, r.Name, boolInt(r.Created), boolInt(r.Deleted), r.CreateRevision, r.PrevRevision, r.Lease, value)
	})
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	return nil
}

func (t *sqlTx) SetCompactRevision(ctx context.Context, rev int64) error {
	_, err := t.exec(ctx, qSetCompactRev, rev)
	return err
}

func (t *sqlTx) DeleteCompacted(ctx context.Context, from, to, keep int64) ([]Row, error) {
	s, err := t.d.stmt(ctx, t.d.write, qDeleteCompacted)
	if err != nil {
		return nil, err
	}
	rows, err := t.tx.StmtContext(ctx, s).QueryContext(ctx, from, to, from, to, keep)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.ID, &r.Name); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *sqlTx) SetCompactedThrough(ctx context.Context, rev int64) error {
	_, err := t.exec(ctx, qPutMeta, MetaCompactedThrough, rev)
	return err
}

func (t *sqlTx) PutLease(ctx context.Context, l LeaseRow) error {
	_, err := t.exec(ctx, qPutLease, l.ID, l.TTL)
	return err
}

func (t *sqlTx) DeleteLease(ctx context.Context, id int64) error {
	_, err := t.exec(ctx, qDeleteLease, id)
	return err
}

func (t *sqlTx) PutVersions(ctx context.Context, vs []VersionRow) error {
	return putVersions.exec(ctx, t, len(vs), func(a []any, i int) []any {
		return append(a, vs[i].Name, vs[i].ID, vs[i].Version)
	})
}

func (t *sqlTx) DeleteVersions(ctx context.Context, names []string) error {
	return deleteVersions.exec(ctx, t, len(names), func(a []any, i int) []any { return append(a, names[i]) })
}

func (t *sqlTx) Reclaim(ctx context.Context, maxPages int) (int, error) {
	return t.d.dialect.Reclaim(ctx, t.tx, maxPages)
}

func (t *sqlTx) Commit() error   { return t.tx.Commit() }
func (t *sqlTx) Rollback() error { return t.tx.Rollback() }
