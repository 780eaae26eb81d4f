package backend

import (
	"testing"
	"time"
)

// TestCommitTraceNamesTheSlowestPhase: a slow commit's report names the phase
// it waited in, and lists only the phases that ran.
func TestCommitTraceNamesTheSlowestPhase(t *testing.T) {
	var tr commitTrace
	tr.d[phaseQueue] = 100 * time.Millisecond
	tr.d[phaseLock] = 1500 * time.Millisecond
	tr.d[phaseCommit] = 200 * time.Millisecond
	if got := tr.total(); got != 1800*time.Millisecond {
		t.Errorf("total = %v, want 1.8s", got)
	}
	if got := tr.slowest(); got != phaseLock {
		t.Errorf("slowest = %v, want lock", got)
	}
	attrs := tr.attrs()
	want := []any{"took", 1800 * time.Millisecond, "slowest_phase", "lock",
		"queue", 100 * time.Millisecond, "lock", 1500 * time.Millisecond, "commit", 200 * time.Millisecond}
	if len(attrs) != len(want) {
		t.Fatalf("attrs = %v, want %v", attrs, want)
	}
	for i := range want {
		if attrs[i] != want[i] {
			t.Fatalf("attrs = %v, want %v", attrs, want)
		}
	}
}

// TestCommitTraceChargesEachPhase: enter charges the time since the previous
// phase began to that phase.
func TestCommitTraceChargesEachPhase(t *testing.T) {
	var tr commitTrace
	tr.cur, tr.last = phaseApply, time.Now().Add(-time.Hour) // an hour of apply
	tr.enter(phaseInsert)
	tr.last = tr.last.Add(-time.Minute) // a minute of insert
	tr.enter(phaseCommit)
	if tr.d[phaseApply] < time.Hour || tr.d[phaseApply] > time.Hour+time.Minute {
		t.Errorf("apply = %v, want about an hour", tr.d[phaseApply])
	}
	if tr.d[phaseInsert] < time.Minute || tr.d[phaseInsert] > 2*time.Minute {
		t.Errorf("insert = %v, want about a minute", tr.d[phaseInsert])
	}
	if tr.cur != phaseCommit {
		t.Errorf("current phase = %v, want commit", tr.cur)
	}
}
