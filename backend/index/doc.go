// Package index keeps, in memory, every key's revisions since the last
// compaction: the metadata of each row of kine's table (mod revision, create
// revision, version, lease), never the values.
//
// # Model
//
// The index is an ordered map from key to that key's history, a slice of
// Revision in ascending mod revision. A tombstone (a delete row) is a Revision
// whose Version is 0, as etcd reports a deleted key. A key is live at revision
// R when the newest entry at or below R exists and is not a tombstone.
//
// Reads always name the revision they read at. Entries above that revision
// are invisible to them, which is what lets a single writer (the backend's
// committer) append entries for a transaction that has not committed yet:
// readers read at the last published revision and skip them, and if the
// commit fails the writer truncates them again.
//
// # Concurrency
//
// Every method is safe for concurrent use. Reads take a shared lock for the
// duration of the call (and of the callback, for Range); mutations take the
// exclusive lock. The index does not order mutations itself: the backend
// mutates it from one goroutine only.
package index
