// Package postgres is kinelite's PostgreSQL backend: kine's PostgreSQL table
// (BIGSERIAL id, name COLLATE "C", kine's indexes) and kinelite's own tables,
// served through the shared database/sql driver of package backend over pgx.
//
// Several kinelite processes may share one database. Every write transaction
// first takes a transaction-scoped advisory lock, so revisions (explicit ids,
// one past the newest) commit in id order and a reader never sees a later
// revision before an earlier one. Each process learns of the others' commits
// through LISTEN/NOTIFY on a channel notified after every commit, outside
// the write transaction (Follow, runNotifier), with the store's short poll as
// a fallback. A session-level advisory lock elects the
// one process that expires leases (Lead). Compaction needs no election: its
// progress is in the database and its steps take the write lock.
//
// Keys are PostgreSQL text: they must be valid UTF-8 without NUL bytes, as
// with kine on PostgreSQL (CheckKey). Values are bytea and may hold anything.
package postgres
