package backend

import "errors"

// The errors the Store returns. server/ translates them into etcd's gRPC
// errors; nothing below server/ knows about gRPC.
var (
	// ErrCompacted is returned when a read, a watch or a compaction names a
	// revision below the compact revision (or, for Compact, at it).
	ErrCompacted = errors.New("backend: required revision has been compacted")

	// ErrFutureRev is returned when a read or a compaction names a revision
	// above the current one.
	ErrFutureRev = errors.New("backend: required revision is a future revision")

	// ErrLeaseNotFound is returned when a request names a lease that does not
	// exist (never granted, revoked, or expired).
	ErrLeaseNotFound = errors.New("backend: lease not found")

	// ErrLeaseExists is returned when LeaseGrant asks for an ID that is taken.
	ErrLeaseExists = errors.New("backend: lease already exists")

	// ErrLeaseTTLTooLarge is returned when LeaseGrant asks for a TTL above
	// MaxLeaseTTL.
	ErrLeaseTTLTooLarge = errors.New("backend: too large lease TTL")

	// ErrKeyNotFound is returned when a Put with ignore_value or ignore_lease
	// names a key that does not exist.
	ErrKeyNotFound = errors.New("backend: key not found")

	// ErrReservedKey is returned when a write names a key kinelite keeps for
	// kine's bookkeeping (see ReservedKey).
	ErrReservedKey = errors.New("backend: key is reserved for kine compatibility")

	// ErrStopped is returned by every call made after Close, and to requests
	// still queued when Close runs.
	ErrStopped = errors.New("backend: stopped")

	// ErrUnservableTable is returned by Start when kine's table holds rows
	// kinelite cannot serve as they are (see the error's text); the table is
	// left untouched.
	ErrUnservableTable = errors.New("backend: kine table cannot be served")

	// ErrUnavailable wraps a failure of the database (an I/O error, a lost
	// connection): the request was not applied and may be retried.
	ErrUnavailable = errors.New("backend: database unavailable")
)
