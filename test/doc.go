// Package test holds kinelite's end-to-end tests, in a module of their own so
// that their dependencies (the etcd server they compare against) stay out of
// the product's go.mod. Run them with `go test ./...` in this directory.
//
// # Differential tests
//
// differential_test.go (hand-written cases) and random_test.go (seeded random
// sequences) send the same requests to an embedded etcd 3.7 and to an
// in-process kinelite through client/v3 and compare every answer, error
// codes and messages included, and every watch's events. pair_test.go holds
// the harness: it translates revisions between the two servers, since
// kinelite gives each key a multi-key write touches its own revision where
// etcd gives the write one (README "Compatibility"), and checks that it
// moved by exactly that many.
//
// The random sequences log their seed; rerun one with -diff.seed=N (or
// KINELITE_TEST_SEED=N). -diff.seqs and -diff.ops size the run.
//
// # Crash test
//
// crash_test.go builds cmd/kinelite, runs it on a SQLite file under
// concurrent writers, kills it with SIGKILL while their writes are in
// flight, restarts it on the same file and checks that every acknowledged
// write is there at the revision it was acknowledged at, that nothing is
// half-applied, that what a watch saw before the kill is still the history,
// and that a watch from an early revision replays a consistent history.
// -crash.cycles and -crash.writers size the run.
//
// # Crash matrix
//
// crashmatrix_test.go kills the binary at named points of its code
// (internal/failpoint: KINELITE_FAILPOINT=NAME[:COUNT][+DELAY] makes the
// process SIGKILL itself there) and at random moments, one kill per cycle on
// one database, under the crash test's writers and three watches that ask
// for progress: between a group commit's insert and its commit, after the
// commit before its publication, in the middle of a compaction step (the
// Compact sent while the writers run), during a lease expiry's revoke (short
// leases with three keys each), a millisecond or so into a WAL checkpoint,
// and in the middle of the index rebuild of a restart (at a random row).
// After each kill `kinelite check` passes on the database before anything
// opens it; after the restart the crash test's checks hold, a lease's keys
// were deleted all at once or not at all, what each watch saw before the
// kill is the history, and each watch resumed from the last revision it saw
// (event or progress notification) gets every later event. In the end every
// short lease has expired with its keys. -crash.matrix.rounds=N repeats the
// round (each round: 8 cycles, 11 kills or so).
//
// crashmatrix_pg_test.go runs the same matrix on a PostgreSQL database of
// its own ($KINELITE_TEST_POSTGRES, see backend/postgres/pgtest), without
// the WAL checkpoint point, and with two cycles in which a second kinelite
// process on the same database runs writers of its own through the kill of
// the first: they must get no error and go on being acknowledged, and the
// store is verified through that process before it stops. PostgreSQL
// itself keeps running; the root package's TestPostgresRestart tests
// restart it.
//
// crashwal_test.go grows the WAL past the length at which kinelite starts
// it over (64 MiB) with large values, and kills as the RESTART checkpoint
// starts and a few milliseconds into a passive checkpoint of a long WAL; it
// checks that every key holds its last acknowledged value or the one in
// flight, intact. -crash.wal=false skips it.
package test
