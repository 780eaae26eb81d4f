package backend

import (
	"context"
	"fmt"

	"github.com/kinelite/kinelite/internal/failpoint"
)

// Compact moves the compact revision to rev, durably, before it returns:
// from then on reads and watches below rev fail with ErrCompacted. It creates
// no revision and deletes nothing; CompactStep deletes the rows it made
// obsolete. Like etcd it refuses a revision at or below the compact revision
// (ErrCompacted) or above the current one (ErrFutureRev).
func (s *Store) Compact(ctx context.Context, rev int64) error {
	o := &compactOp{call: newCall(), rev: rev}
	if err := s.do(ctx, o, &o.call); err != nil {
		return err
	}
	return o.err
}

type compactOp struct {
	call
	rev int64
	err error
}

func (o *compactOp) apply(ctx context.Context, b *batch) error {
	switch {
	case o.rev == 0 && b.compactRevision() == 0 && !b.s.compacted.Load() && !b.compactedNow:
		// etcd accepts Compact(0) once on a store never compacted, and
		// changes nothing but that: it remembers, across restarts too.
		tx, err := b.txn(ctx)
		if err != nil {
			return err
		}
		if err := tx.SetCompactedThrough(ctx, 0); err != nil {
			return fmt.Errorf("record compaction: %w", err)
		}
		b.compactedNow = true
		return nil
	case o.rev <= b.compactRevision():
		o.err = ErrCompacted
		return nil
	case o.rev > b.rev:
		o.err = ErrFutureRev
		return nil
	}
	tx, err := b.txn(ctx)
	if err != nil {
		return err
	}
	if err := tx.SetCompactRevision(ctx, o.rev); err != nil {
		return fmt.Errorf("record compact revision: %w", err)
	}
	b.compactRev = o.rev
	b.compactedNow = true
	return nil
}

func (o *compactOp) done(err error) { o.call.done(err) }

func (b *batch) compactRevision() int64 {
	return max(b.compactRev, b.s.compactRev.Load())
}

func (b *batch) compactedThroughNow() int64 {
	return max(b.compactedThrough, b.s.compactedThrough.Load())
}

// CompactStep deletes the rows made obsolete by compaction in the next
// window of at most maxRevisions revisions after CompactedThrough, and
// records the progress. What it deletes matches etcd and kine: rows
// superseded by a row at or below the compact revision, and tombstones and
// gap rows below it; the newest row of every live key stays, a tombstone at
// the compact revision stays (etcd keeps it: a watch from the compact
// revision sees that delete), and so does the table's newest row. The step is a group commit of its own, taken in queue order:
// writes queued while it runs commit before the next step, so a write never
// waits behind more than one step. It returns the progress after the step and the
// number of rows deleted; through equals CompactRevision when nothing is
// left to do.
func (s *Store) CompactStep(ctx context.Context, maxRevisions int64) (through int64, deleted int, err error) {
	o := &compactStepOp{call: newCall(), max: max(maxRevisions, 1)}
	if err := s.do(ctx, o, &o.call); err != nil {
		return 0, 0, err
	}
	return o.through, o.deleted, nil
}

type compactStepOp struct {
	call
	max     int64
	through int64
	deleted int
}

func (o *compactStepOp) apply(ctx context.Context, b *batch) error {
	from, target := b.compactedThroughNow(), b.compactRevision()
	if from >= target {
		o.through = from
		return nil
	}
	to := min(from+o.max, target)
	tx, err := b.txn(ctx)
	if err != nil {
		return err
	}
	if from > b.s.indexCompacted {
		// Another process's steps deleted rows through from, which the
		// index still holds (its trim is paced). They must go before
		// this step removes its own rows (and reads the survivors in
		// recordVersions): else a key whose later rows this step deletes
		// keeps an older, deleted row as its newest entry, and comes
		// back. Reads below the compact revision, committed by that
		// process, fail from here on.
		b.s.compactRev.Store(max(b.s.compactRev.Load(), b.compactRev))
		b.s.trimIndexTo(from)
	}
	rows, err := tx.DeleteCompacted(ctx, from, to, b.rev)
	if err != nil {
		return fmt.Errorf("delete compacted rows: %w", err)
	}
	failpoint.Hit("compact-step")
	if err := b.recordVersions(ctx, tx, rows); err != nil {
		return err
	}
	if err := tx.SetCompactedThrough(ctx, to); err != nil {
		return fmt.Errorf("record compaction progress: %w", err)
	}
	b.removed = append(b.removed, rows...)
	b.compactedThrough = to
	b.stepTo = to
	o.through, o.deleted = to, len(rows)
	return nil
}

func (o *compactStepOp) done(err error) { o.call.done(err) }
func (o *compactStepOp) solo()          {}
func (o *compactStepOp) pipelined()     {}

// recordVersions keeps versions exact across restarts. kine's table holds
// no versions: the index counts them from each key's create row, which
// compaction deletes. So for every key that lost rows, the version of its
// anchor — its newest row at or below the compact revision, which this
// compaction keeps — is recorded, unless the anchor is that create row
// itself or a tombstone. Rows before the anchor are all superseded at or
// below the compact revision: no read can return them, and the ones an
// unfinished compaction left are deleted when it resumes, so their versions
// need no record. The anchor is the same for every step of one compaction,
// so only the first step that deletes a key's rows changes its record; the
// later ones find it already written and write nothing.
func (b *batch) recordVersions(ctx context.Context, tx Tx, removed []Row) error {
	compactRev := b.compactRevision()
	seen := make(map[string]bool)
	var puts []VersionRow
	var dels []string
	for _, r := range removed {
		key, kind := clientKey(r)
		if kind != rowKey || key == compactKey || seen[key] { // compact_rev_key keeps its version in its value
			continue
		}
		seen[key] = true
		anchor, live := b.s.index.Get(key, compactRev)
		if live && anchor.Create != anchor.Mod {
			puts = append(puts, VersionRow{Name: storedName(key), ID: anchor.Mod, Version: anchor.Version})
		} else {
			dels = append(dels, storedName(key))
		}
	}
	if err := tx.PutVersions(ctx, puts); err != nil {
		return fmt.Errorf("record versions: %w", err)
	}
	if err := tx.DeleteVersions(ctx, dels); err != nil {
		return fmt.Errorf("record versions: %w", err)
	}
	return nil
}

// Defragment gives the database's free space back to the file system. It
// runs between group commits, so writes wait for it, as they do for etcd's
// defragmentation.
func (s *Store) Defragment(ctx context.Context) error {
	o := &defragOp{call: newCall()}
	return s.do(ctx, o, &o.call)
}

type defragOp struct{ call }

func (o *defragOp) apply(ctx context.Context, b *batch) error { return b.s.driver.Defragment(ctx) }
func (o *defragOp) done(err error)                            { o.call.done(err) }
func (o *defragOp) solo()                                     {}
func (o *defragOp) pipelined()                                {}

// Checkpoint moves the database's write-ahead log into its main file
// without blocking writers (SQLite; a no-op elsewhere), unless fewer than
// minFrames pages wait to be copied; see Driver.Checkpoint.
func (s *Store) Checkpoint(ctx context.Context, minFrames int64) (CheckpointResult, error) {
	r, err := s.driver.Checkpoint(ctx, minFrames)
	return r, unavailable(err)
}

// RestartLog starts the write-ahead log over, as one op of its own in the
// write queue, once checkpoints have copied all of it; see
// Driver.RestartLog.
func (s *Store) RestartLog(ctx context.Context) (bool, error) {
	o := &restartOp{call: newCall()}
	if err := s.do(ctx, o, &o.call); err != nil {
		return false, err
	}
	return o.restarted, nil
}

type restartOp struct {
	call
	restarted bool
}

func (o *restartOp) apply(ctx context.Context, b *batch) (err error) {
	o.restarted, err = b.s.driver.RestartLog(ctx)
	return err
}

func (o *restartOp) done(err error) { o.call.done(err) }
func (o *restartOp) solo()          {}
func (o *restartOp) pipelined()     {}

// Reclaim gives at most maxPages free pages back to the file system, as one
// op of a group commit, and reports how many it gave.
func (s *Store) Reclaim(ctx context.Context, maxPages int) (int, error) {
	o := &reclaimOp{call: newCall(), max: maxPages}
	if err := s.do(ctx, o, &o.call); err != nil {
		return 0, err
	}
	return o.freed, nil
}

type reclaimOp struct {
	call
	max   int
	freed int
}

func (o *reclaimOp) apply(ctx context.Context, b *batch) error {
	tx, err := b.txn(ctx)
	if err != nil {
		return err
	}
	o.freed, err = tx.Reclaim(ctx, o.max)
	return err
}

func (o *reclaimOp) done(err error) { o.call.done(err) }
func (o *reclaimOp) solo()          {}
func (o *reclaimOp) pipelined()     {}
