// Package check verifies the invariants of a kinelite (or kine) database by
// reading it, without writing: what `kinelite check` runs, and what the crash
// tests run after every restart.
//
// # Invariants
//
//   - kine's compact_rev_key row exists exactly once.
//   - Each key's rows form one chain in revision order: a create starts a
//     generation (after nothing, or after a tombstone), an update or a delete
//     follows a live row and names it in prev_revision; a row may name a row
//     that is gone only if compaction removed it (the naming row is at or
//     below the compaction progress).
//   - Nothing that compaction should have removed is left: no row superseded
//     by a row at or below the compaction progress, no tombstone below it
//     (except the table's newest row).
//   - The newest row's revision is at least the compact revision.
//   - Every live key's lease exists in kinelite_lease. In a database
//     kinelite has not opened yet, kine's TTL-valued leases are reported as
//     notes: kinelite adopts them when it opens the database.
package check

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/kinelite/kinelite/backend"
)

// Source is what the check reads. backend.Driver implements it.
type Source interface {
	State(ctx context.Context) (backend.State, error)
	Scan(ctx context.Context, after int64, fn func(backend.Row) error) error
}

// Report is the outcome of a check.
type Report struct {
	Rows             int
	Keys             int // keys with at least one row
	LiveKeys         int
	Revision         int64 // the newest row's ID
	CompactRevision  int64
	CompactedThrough int64
	// Problems break an invariant; Notes are worth knowing but not wrong.
	Problems []string
	Notes    []string
}

// OK reports whether no invariant is broken.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Summary is one line describing the report.
func (r *Report) Summary() string {
	state := "ok"
	if !r.OK() {
		state = fmt.Sprintf("FAILED: %d problems (first: %s)", len(r.Problems), r.Problems[0])
	}
	return fmt.Sprintf("%s: %d rows, %d keys (%d live), revision %d, compact revision %d, compacted through %d, %d notes",
		state, r.Rows, r.Keys, r.LiveKeys, r.Revision, r.CompactRevision, r.CompactedThrough, len(r.Notes))
}

// maxProblems bounds what a report lists; the count stays exact.
const maxProblems = 1000

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// keyState is what the check remembers of a key while scanning: its newest
// row so far.
type keyState struct {
	lastID      int64
	lastDeleted bool
}

// Run checks the database src reads.
func Run(ctx context.Context, src Source) (*Report, error) {
	st, err := src.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: read state: %w", err)
	}
	rep := &Report{CompactRevision: st.CompactRevision, CompactedThrough: min(st.CompactedThrough, st.CompactRevision)}
	through := rep.CompactedThrough
	if st.CompactRevision < 0 || st.CompactRevision > backend.MaxRowID {
		rep.problem("the compact revision %d is outside 0..2^62 (kinelite refuses to open the table)", st.CompactRevision)
	}
	leases := make(map[int64]bool, len(st.Leases))
	for _, l := range st.Leases {
		leases[l.ID] = true
	}
	keys := make(map[string]*keyState)
	compactRows := 0
	// removable are rows compaction should have deleted, found as their
	// successors are scanned: reported at the end unless they turn out to
	// be the table's newest row.
	var removable []backend.Row
	err = src.Scan(ctx, math.MinInt64, func(row backend.Row) error {
		rep.Rows++
		if row.ID <= 0 || row.ID > backend.MaxRowID {
			rep.problem("row %d of %q: an id outside 1..2^62, which cannot be a revision (kinelite refuses to open the table)", row.ID, row.Name)
			return nil
		}
		rep.Revision = row.ID
		switch {
		case row.Name == "compact_rev_key":
			compactRows++
			return nil
		case row.Deleted && row.PrevRevision == 0 && strings.HasPrefix(row.Name, "gap-"):
			if row.ID < through {
				removable = append(removable, row)
			}
			return nil
		}
		ks, hasLast := keys[row.Name]
		if !hasLast {
			ks = &keyState{}
			keys[row.Name] = ks
		}
		switch {
		case row.Created:
			if hasLast && !ks.lastDeleted {
				rep.problem("row %d creates %q, which is live at row %d", row.ID, row.Name, ks.lastID)
			}
			if row.PrevRevision != 0 && hasLast && row.PrevRevision != ks.lastID {
				rep.problem("row %d (create of %q) names row %d as previous, but the previous row is %d",
					row.ID, row.Name, row.PrevRevision, ks.lastID)
			}
		default: // an update or a delete: it must follow a live row
			switch {
			case hasLast && ks.lastDeleted:
				rep.problem("row %d (%s of %q) follows tombstone %d", row.ID, verb(row), row.Name, ks.lastID)
			case hasLast && row.PrevRevision != ks.lastID:
				rep.problem("row %d (%s of %q) names row %d as previous, but the previous row is %d",
					row.ID, verb(row), row.Name, row.PrevRevision, ks.lastID)
			case !hasLast && row.ID > through:
				rep.problem("row %d (%s of %q) names row %d as previous, which is missing though compaction only reached %d",
					row.ID, verb(row), row.Name, row.PrevRevision, through)
			}
		}
		// The row this one supersedes must be gone once the progress
		// passed this row.
		if hasLast && row.ID <= through {
			removable = append(removable, backend.Row{ID: ks.lastID, Name: row.Name})
		}
		if row.Deleted && row.ID < through {
			removable = append(removable, row)
		}
		ks.lastID, ks.lastDeleted = row.ID, row.Deleted
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: scan: %w", err)
	}
	for _, r := range removable {
		if r.ID == rep.Revision {
			continue // the newest row always stays
		}
		if len(rep.Problems) < maxProblems {
			rep.problem("row %d of %q should have been removed by compaction (progress %d)", r.ID, r.Name, through)
		}
	}
	switch {
	case compactRows == 0:
		rep.problem("kine's compact_rev_key row is missing")
	case compactRows > 1:
		rep.problem("kine's compact_rev_key row exists %d times", compactRows)
	}
	if rep.Revision < rep.CompactRevision {
		rep.problem("the newest row %d is below the compact revision %d", rep.Revision, rep.CompactRevision)
	}
	rep.Keys = len(keys)
	if err := checkLeases(ctx, src, rep, keys, leases, st.Opened); err != nil {
		return nil, err
	}
	return rep, nil
}

func verb(r backend.Row) string {
	if r.Deleted {
		return "delete"
	}
	return "update"
}

// checkLeases looks at each live key's newest row: its lease must exist.
func checkLeases(ctx context.Context, src Source, rep *Report, keys map[string]*keyState, leases map[int64]bool, opened bool) error {
	live := make(map[int64]string, len(keys)) // newest live row → key
	for name, ks := range keys {
		if !ks.lastDeleted {
			live[ks.lastID] = name
			rep.LiveKeys++
		}
	}
	kineLeases := map[int64]int{}
	err := src.Scan(ctx, 0, func(row backend.Row) error {
		name, ok := live[row.ID]
		if !ok || row.Lease == 0 || leases[row.Lease] {
			return nil
		}
		if !opened {
			// A TTL in seconds written by kine, in a database kinelite has
			// not opened yet.
			kineLeases[row.Lease]++
			return nil
		}
		if len(rep.Problems) < maxProblems {
			rep.problem("key %q (row %d) names lease %d, which does not exist", name, row.ID, row.Lease)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check: scan leases: %w", err)
	}
	for ttl, n := range kineLeases {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d keys carry lease %d, not in kinelite_lease: kine's TTL seconds, adopted when kinelite opens the database", n, ttl))
	}
	return nil
}
