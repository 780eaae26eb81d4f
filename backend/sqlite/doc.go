// Package sqlite is kinelite's embedded backend: kine's SQLite schema on
// modernc.org/sqlite (pure Go, no cgo), behind backend.Driver.
//
// # Connections and durability
//
// One connection writes: the committer's group commits, in immediate
// transactions, so SQLite's lock is never contended and "database is locked"
// cannot happen whatever the number of clients. A pool of query-only
// connections serves reads concurrently, as WAL mode allows. Every commit is
// fsynced before it is acknowledged, so an acknowledged write survives a
// crash or a power cut; Config.NoFsync trades the power-cut half of that
// away. The writer runs with synchronous=NORMAL and the WAL is synced apart
// from the commit (walSyncer, through Driver.SyncCommitted), once per group
// and while the next group is written: the guarantee of synchronous=FULL,
// without the writer waiting for the disk.
//
// A new database is created with auto_vacuum=INCREMENTAL so that compaction
// can give space back without a full VACUUM; a database created by kine keeps
// its setting.
//
// kine's DSN parameters are accepted for drop-in compatibility and ignored:
// kinelite sets its own pragmas.
package sqlite
