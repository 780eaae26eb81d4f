package backend

import "context"

// Row is one row of kine's table. The Store reads rows without their value
// (Value nil) except where a method says otherwise.
type Row struct {
	// ID is the row's revision.
	ID int64
	// Name is the stored key (see storedName for the one key whose stored
	// name differs from the key clients use).
	Name string
	// Created is true when the row created its key.
	Created bool
	// Deleted is true for a tombstone (and for kine's gap rows).
	Deleted bool
	// CreateRevision is the key's create revision; kine stores 0 on create
	// rows, whose create revision is their own ID.
	CreateRevision int64
	// PrevRevision is the ID of the key's previous row, or 0. On kine's
	// compact_rev_key row it holds the compact revision instead.
	PrevRevision int64
	// Lease is the lease the row is attached to: a lease ID for rows kinelite
	// wrote, a TTL in seconds for rows kine wrote.
	Lease int64
	// Value is the row's value; nil for tombstones and when not read.
	Value []byte
}

// HistoryRow is a row read for watch catch-up, with its value and the value
// of the row its PrevRevision names (when that row still exists).
type HistoryRow struct {
	Row
	HasPrev   bool
	PrevValue []byte
}

// LeaseRow is a lease as kinelite persists it.
type LeaseRow struct {
	ID  int64
	TTL int64
}

// VersionRow records the version of one of a key's rows, kept by compaction
// when it removed the rows before it, so versions stay exact across
// restarts: the index takes it for that row and counts on from it. Rows
// before it are below the compact revision, never read.
type VersionRow struct {
	Name    string
	ID      int64
	Version int64
}

// State is what the Store reads at start-up besides the rows themselves.
type State struct {
	// Opened reports whether kinelite's own tables exist: false for a
	// database only kine has written (the rest of State is then zero but
	// for CompactRevision).
	Opened bool
	// CompactRevision is kine's compact revision (the compact_rev_key row).
	CompactRevision int64
	// CompactedThrough is the revision up to which compaction has deleted
	// rows; below the compact revision while a compaction is unfinished.
	CompactedThrough int64
	// Compacted reports that a Compact has ever succeeded, Compact(0) on a
	// never-compacted store included (etcd refuses a second Compact(0)).
	Compacted bool
	Leases    []LeaseRow
	Versions  []VersionRow
}

// CheckpointResult reports a checkpoint: the log holds Frames pages, of
// which Copied are now in the database file. When they are equal the next
// commit starts the log over from its beginning.
type CheckpointResult struct {
	Frames int64
	Copied int64
	// Checkpointed is false when the log's state was only read and nothing
	// was copied.
	Checkpointed bool
}

// Size describes the database's size on disk.
type Size struct {
	// Total is the size of the database, in bytes.
	Total int64
	// InUse is the part of Total that holds data (Total minus free pages).
	InUse int64
	// WAL is the size of the write-ahead log, where the database has one.
	WAL int64
}

// syncDepth bounds the committed groups waiting for a sync.
const syncDepth = 4

// Driver is the SQL side of a backend: kine's table plus kinelite's own
// tables, in one database. backend/sqlite and backend/postgres implement it;
// the Store is its only caller. Every method may be called concurrently with
// the others except where noted; Begin is only called by the committer.
type Driver interface {
	// Setup creates the tables and indexes that are missing and, on an empty
	// table, kine's compact_rev_key row, so that the store starts at
	// revision 1 as etcd does.
	Setup(ctx context.Context) error

	// State reads compaction progress, leases and recorded versions.
	State(ctx context.Context) (State, error)

	// Scan calls fn for every row with ID > after, in ascending ID order,
	// without values.
	Scan(ctx context.Context, after int64, fn func(Row) error) error

	// Value returns the value of the row with the given ID; ok is false when
	// no such row exists.
	Value(ctx context.Context, id int64) (value []byte, ok bool, err error)

	// Values returns the values of the rows with the given IDs, keyed by ID;
	// IDs with no row are absent from the map.
	Values(ctx context.Context, ids []int64) (map[int64][]byte, error)

	// History returns the rows with from <= ID <= to, in ID order, at most
	// limit of them, with values and previous values.
	History(ctx context.Context, from, to int64, limit int) ([]HistoryRow, error)

	// Begin starts a write transaction. Only one is open at a time.
	Begin(ctx context.Context) (Tx, error)

	// SyncCommitted makes every transaction committed before the call
	// durable. A driver whose Tx.Commit returns before the transaction is
	// on disk (SQLite's WAL without a sync per commit) syncs here; one whose
	// commits are durable by themselves returns nil. It is called from one
	// goroutine at a time, concurrently with the next write transaction:
	// the Store syncs one group commit while it writes the next, and
	// acknowledges a group only after its sync returned. An error makes the
	// Store refuse all writes until it is restarted.
	SyncCommitted() error

	// Size reports the database's size.
	Size(ctx context.Context) (Size, error)

	// Defragment gives free space back to the file system. It runs inside
	// the committer, so no write transaction is open meanwhile.
	Defragment(ctx context.Context) error

	// Checkpoint moves a write-ahead log into the database file without
	// blocking writers (SQLite; others do nothing and report a zero
	// result). It may run at any time. When it can tell that fewer than
	// minFrames pages wait to be copied, it copies nothing and reports the
	// log's state.
	Checkpoint(ctx context.Context, minFrames int64) (CheckpointResult, error)

	// RestartLog starts the write-ahead log over once a checkpoint has
	// copied all of it, waiting at most a few milliseconds for readers of
	// older snapshots; it reports whether it did. It runs inside the
	// committer, between transactions. Without such a log it does nothing.
	RestartLog(ctx context.Context) (bool, error)

	// Close releases the driver's connections.
	Close() error
}

// Head is the state of a shared database as other processes may have moved
// it.
type Head struct {
	// Rev is the newest revision committed.
	Rev int64
	// CompactRev is the compact revision.
	CompactRev int64
	// CompactedThrough is compaction's recorded progress.
	CompactedThrough int64
}

// LeaseState is a lease as a shared database holds it.
type LeaseState struct {
	TTL int64
	// ExpiresAt is when the lease expires, in Unix milliseconds, as the
	// last renewal by any process set it; 0 if never recorded.
	ExpiresAt int64
}

// SharedDriver is a Driver whose database other kinelite processes write
// too (PostgreSQL). Its write transactions serialise across processes (Begin
// waits for the others' commits), so a Head read after Begin shows every
// revision committed before this transaction's own.
type SharedDriver interface {
	Driver

	// CheckKey refuses a key the database cannot store.
	CheckKey(key string) error

	// Head reads the database's newest revision and compaction state.
	Head(ctx context.Context) (Head, error)

	// Follow calls changed whenever another process may have committed,
	// until ctx ends. It reconnects by itself.
	Follow(ctx context.Context, changed func()) error

	// Lead runs fn whenever this process holds the named leadership, which
	// at most one process holds at a time; fn's context ends when it is
	// lost. Lead returns when ctx ends.
	Lead(ctx context.Context, name string, fn func(ctx context.Context)) error

	// Lease reads a lease, which another process may have granted.
	Lease(ctx context.Context, id int64) (LeaseState, bool, error)

	// Leases reads every lease.
	Leases(ctx context.Context) (map[int64]LeaseState, error)

	// RenewLease records that the lease lives until expiresAt (Unix ms) at
	// least; it reports false when the lease no longer exists.
	RenewLease(ctx context.Context, id int64, expiresAt int64) (bool, error)
}

// Tx is a write transaction. It is used by one goroutine. After Commit or
// Rollback it must not be used again.
type Tx interface {
	// Insert appends rows with the IDs they carry, values included.
	Insert(ctx context.Context, rows []Row) error

	// SetCompactRevision records the compact revision on kine's
	// compact_rev_key row.
	SetCompactRevision(ctx context.Context, rev int64) error

	// DeleteCompacted deletes, among the rows that compaction to target
	// removes, those of one window [from, to], to <= target: the rows that
	// rows in (from, to] supersede, and the tombstones and gap rows in
	// [from, to). A tombstone at the compact revision itself stays, as in
	// etcd (a watch from the compact revision sees that delete); the next
	// compaction's first window, starting at it, removes it. The row with
	// ID keep (the newest) is never deleted. It returns the deleted rows (ID
	// and Name).
	DeleteCompacted(ctx context.Context, from, to, keep int64) ([]Row, error)

	// SetCompactedThrough records compaction progress. Recording it, even
	// at 0, marks the store as compacted (State.Compacted).
	SetCompactedThrough(ctx context.Context, rev int64) error

	// PutLease and DeleteLease persist lease grants and revokes.
	PutLease(ctx context.Context, l LeaseRow) error
	DeleteLease(ctx context.Context, id int64) error

	// PutVersions and DeleteVersions maintain recorded versions.
	PutVersions(ctx context.Context, vs []VersionRow) error
	DeleteVersions(ctx context.Context, names []string) error

	// Reclaim gives at most maxPages free pages back to the file system and
	// reports how many it gave (0 where the database does this itself).
	Reclaim(ctx context.Context, maxPages int) (int, error)

	// Commit makes the transaction durable; Rollback abandons it.
	Commit() error
	Rollback() error
}
