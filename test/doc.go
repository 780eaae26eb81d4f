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
package test
