package compact

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kinelite/kinelite/backend"
)

// fakeClock is a clock that only moves when told: sleeping moves it by the
// time slept, an op moves it by its cost.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) sleep(d time.Duration, _ <-chan struct{}) bool {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.t = f.t.Add(d)
	f.mu.Unlock()
	return true
}

func fakePacer(duty float64) (*pacer, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := newPacer(duty)
	p.now, p.sleep = clk.now, clk.sleep
	return p, clk
}

func TestPacerRestsAfterEachOp(t *testing.T) {
	p, clk := fakePacer(0.5)
	if took, ok := p.do(nil, func() { clk.advance(10 * time.Millisecond) }); !ok || took != 10*time.Millisecond {
		t.Fatalf("first op: took %v, ok %v", took, ok)
	}
	if len(clk.sleeps) != 0 {
		t.Fatalf("the first op waited %v", clk.sleeps)
	}
	// At duty 1/2 a 10 ms op owes 10 ms of rest.
	p.do(nil, func() { clk.advance(4 * time.Millisecond) })
	if len(clk.sleeps) != 1 || clk.sleeps[0] != 10*time.Millisecond {
		t.Fatalf("second op waited %v, want [10ms]", clk.sleeps)
	}
	// Time that passes between ops counts as rest: 3 of the 4 ms owed.
	clk.advance(3 * time.Millisecond)
	p.do(nil, func() {})
	if len(clk.sleeps) != 2 || clk.sleeps[1] != time.Millisecond {
		t.Fatalf("third op waited %v, want [10ms 1ms]", clk.sleeps)
	}
	// An op that took no time owes none.
	p.do(nil, func() {})
	if len(clk.sleeps) != 2 {
		t.Fatalf("an op after a free op waited: %v", clk.sleeps)
	}
}

func TestPacerDuty(t *testing.T) {
	for _, tc := range []struct {
		duty float64
		rest time.Duration
	}{{0.25, 30 * time.Millisecond}, {0.5, 10 * time.Millisecond}, {0.8, 2500 * time.Microsecond}, {1, 0}} {
		p, clk := fakePacer(tc.duty)
		p.do(nil, func() { clk.advance(10 * time.Millisecond) })
		p.do(nil, func() {})
		var slept time.Duration
		for _, d := range clk.sleeps {
			slept += d
		}
		if slept != tc.rest {
			t.Errorf("duty %v: rest after a 10ms op %v, want %v", tc.duty, slept, tc.rest)
		}
	}
}

func TestPacerStopsWhileResting(t *testing.T) {
	p, clk := fakePacer(0.5)
	p.do(nil, func() { clk.advance(time.Second) })
	p.sleep = sleepOrStop
	stop := make(chan struct{})
	close(stop)
	ran := false
	if _, ok := p.do(stop, func() { ran = true }); ok || ran {
		t.Fatalf("stopped while resting: ok %v, ran %v", ok, ran)
	}
}

// pacedStore is a Store whose ops on the database (steps, checkpoints, log
// restarts, reclaims) each cost 10 ms of the fake clock and record when they
// ran.
// Checkpoints always report a log long enough to restart and Size always
// reports enough free space to reclaim, so the three loops all compete.
type pacedStore struct {
	clk *fakeClock

	mu        sync.Mutex
	ops       []pacedOp
	running   bool
	overlaps  int
	through   int64
	target    int64
	stepsLeft int
}

type pacedOp struct {
	kind       string
	start, end time.Time
}

func (s *pacedStore) writerOp(kind string) {
	s.mu.Lock()
	if s.running {
		s.overlaps++
	}
	s.running = true
	s.mu.Unlock()
	start := s.clk.now()
	s.clk.advance(10 * time.Millisecond)
	s.mu.Lock()
	s.running = false
	s.ops = append(s.ops, pacedOp{kind, start, s.clk.now()})
	s.mu.Unlock()
}

func (s *pacedStore) Compact(context.Context, int64) error { return nil }
func (s *pacedStore) CompactStep(context.Context, int64) (int64, int, error) {
	s.writerOp("step")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.through = min(s.through+1, s.target)
	return s.through, 1, nil
}
func (s *pacedStore) CompactRevision() int64 { return s.target }
func (s *pacedStore) CompactedThrough() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.through
}
func (s *pacedStore) CurrentRevision() int64 { return s.target }
func (s *pacedStore) Size(context.Context) (backend.Size, error) {
	return backend.Size{Total: 1 << 30, InUse: 1 << 20}, nil
}
func (s *pacedStore) Checkpoint(context.Context, int64) (backend.CheckpointResult, error) {
	s.writerOp("checkpoint")
	return backend.CheckpointResult{Frames: 1 << 20, Copied: 1 << 20, Checkpointed: true}, nil
}
func (s *pacedStore) RestartLog(context.Context) (bool, error) {
	s.writerOp("restart")
	return true, nil
}
func (s *pacedStore) Reclaim(context.Context, int) (int, error) {
	s.writerOp("reclaim")
	return 1, nil
}

func (s *pacedStore) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.ops {
		if o.kind == kind {
			n++
		}
	}
	return n
}

// TestCompactorOpsShareOneDutyCycle: the deletion steps, checkpoints, log
// restarts and reclaims of the compactor never run together or back to
// back, whichever loop runs them: each is followed by a rest as long as itself
// (duty 1/2) before the next of any kind begins. The clock is fake; the
// three loops run for real until each has queued a few ops.
func TestCompactorOpsShareOneDutyCycle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	s := &pacedStore{clk: clk, target: 1 << 40}
	c := New(s, Config{CheckpointInterval: time.Millisecond, ReclaimInterval: time.Millisecond})
	c.pace.now, c.pace.sleep = clk.now, clk.sleep
	c.Start()
	for s.count("step") < 20 || s.count("checkpoint") < 3 || s.count("restart") < 3 || s.count("reclaim") < 3 {
		time.Sleep(time.Millisecond)
	}
	c.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overlaps != 0 {
		t.Fatalf("%d ops ran while another held the writer", s.overlaps)
	}
	kinds := map[string]int{}
	for i, o := range s.ops {
		kinds[o.kind]++
		if i == 0 {
			continue
		}
		prev := s.ops[i-1]
		if rest := o.start.Sub(prev.end); rest < prev.end.Sub(prev.start) {
			t.Fatalf("op %d (%s) began %v after op %d (%s) of %v ended; want a rest at least as long as the op",
				i, o.kind, rest, i-1, prev.kind, prev.end.Sub(prev.start))
		}
	}
	t.Logf("ops: %v", kinds)
}
