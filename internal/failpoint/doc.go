// Package failpoint kills the process at a named point in the code, for the
// crash tests: the process dies there with SIGKILL, as a machine or an OOM
// kill would stop it, and the test checks what it left behind.
//
// A point is one call, Hit("name"), placed where a crash is interesting
// (between a group commit's insert and its commit, in the middle of a
// compaction step, ...). The points are armed by the environment variable
// KINELITE_FAILPOINT, read once when the process starts:
//
//	KINELITE_FAILPOINT=NAME[:COUNT][+DELAY]
//
// NAME is the point; COUNT (default 1) kills on that hit of the point, so
// that a test can let the first few pass; DELAY, a Go duration, kills that
// long after the hit instead of at it, while the code after the point runs
// on (a kill in the middle of a SQLite checkpoint, say). Only one point is
// armed at a time. The process writes one line to stderr, "failpoint NAME
// hit COUNT: SIGKILL", just before it dies, so that a test can tell a
// failpoint kill from any other death.
//
// With the variable unset, Hit is one predictable branch on a package
// variable: nothing measurable. The points in the product are listed in
// Points.
package failpoint
