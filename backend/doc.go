// Package backend is kinelite's storage contract and engine: kine's table as
// the system of record, an in-memory index over it, a single committer that
// applies every write with group commit, and the read path. The SQL dialects
// (backend/sqlite, backend/postgres) implement Driver; everything else is
// shared.
//
// # Data model
//
// Every write inserts one row into kine's table; the row's id is the
// revision it created. A create row has created=1, an update links to the
// key's previous row through prev_revision, a delete inserts a tombstone
// (deleted=1). kine's own bookkeeping rows are kept as kine keeps them: the
// compact_rev_key row holds the compact revision in its prev_revision column,
// and the client key "compact_rev_key" (the kube-apiserver's compaction
// marker) is stored as compact_rev_key_apiserver with its version encoded in
// its value. A fresh database holds only the compact_rev_key row, at
// revision 1, so the first write gets revision 2 exactly as in etcd.
//
// Three tables of kinelite's own sit beside kine's and never change it:
// kinelite_lease (granted leases and their TTLs), kinelite_version (the
// version of a key's oldest row once compaction removed the rows before it)
// and kinelite_meta (compaction progress).
//
// # Writes
//
// Put, DeleteRange, Txn and the lease and compaction calls become ops queued
// to one committer goroutine. Each round it takes every op waiting, evaluates
// them in order against the index (which already holds the entries staged
// earlier in the round, at revisions readers cannot see yet), inserts their
// rows in one transaction and commits once. Once the commit is durable, the
// new revision is published to readers, lease changes are applied, the
// events go to the EventSink (the watch hub), and the callers are answered.
// A failed commit refuses every op of the round and removes what they staged
// from the index.
//
// On a database of its own, making a round durable overlaps with the next
// round: the driver's commit returns once the rows are written
// (Driver.SyncCommitted syncs them), and a syncer goroutine syncs, publishes
// and answers rounds in commit order while the committer evaluates and
// writes the next on top of the index entries already staged. What only
// publishing applies (the lessor, compaction progress) is read after the
// rounds before have been published (batch.settle), and a round holding a
// lease op or a Compact is published before the next begins; a compaction
// step, a reclaim or a log restart is not, so the write queued behind one
// does not wait for its sync. On a shared database each round is published
// before the next.
//
// kine's table has one row per revision, so a transaction that writes
// several keys takes one revision per write, where etcd would use one for
// the whole transaction; the response's header revision is the last one.
//
// # Reads
//
// A read fixes its revision first (the current one, or an older one not
// below the compact revision), resolves keys and revisions from the index,
// and reads from the database only the values it returns, by row id. Count
// and keys-only reads never touch the database.
//
// # Compaction
//
// Compact records the new compact revision durably and returns; CompactStep
// deletes the obsolete rows behind it in bounded windows, each one op of a
// group commit, removing the same entries from the index.
package backend
