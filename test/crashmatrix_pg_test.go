package test

import (
	"testing"

	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

// pgMatrixPoints is one round of the crash matrix on PostgreSQL: the
// SQLite matrix's points but its checkpoint, and kills of one of two
// processes sharing the database while the other keeps serving ("+peer",
// see runCycle).
var pgMatrixPoints = []string{
	"commit-before-commit",
	"random",
	"commit-after-commit",
	"compact-step",
	"commit-before-commit+peer",
	"lease-revoke",
	"random+peer",
	"index-rebuild",
}

// TestCrashMatrixPostgres is the crash matrix (see crashmatrix_test.go) on
// a PostgreSQL database of its own: the kinelite binary killed with SIGKILL
// mid group commit, mid compaction step, mid lease revoke, mid index
// rebuild and at random moments, restarted on the same database, with the
// same checks after every kill. PostgreSQL itself keeps running; see the
// root package's TestPostgresRestart tests for its restarts.
func TestCrashMatrixPostgres(t *testing.T) {
	runMatrix(t, pgtest.NewDatabase(t), pgMatrixPoints)
}
