package backend

import "time"

// commitPhase names where a group commit spends its time.
type commitPhase int

const (
	phaseQueue   commitPhase = iota // the oldest request waited for the committer
	phaseLock                       // begin the write transaction (PostgreSQL: the advisory lock)
	phaseHead                       // read the database's head (shared database)
	phaseCatchUp                    // replay other processes' commits (shared database)
	phaseApply                      // evaluate the requests
	phasePrevs                      // read previous values
	phaseInsert                     // insert the rows
	phaseCommit                     // commit (PostgreSQL: the fsync)
	phaseSync                       // wait until durable (SQLite: the WAL fsync), behind the groups before
	phasePublish                    // publish to the index, lessor and watchers
	numPhases
)

var phaseNames = [numPhases]string{"queue", "lock", "head", "catch_up", "apply", "prev_values", "insert", "commit", "sync", "publish"}

func (p commitPhase) String() string { return phaseNames[p] }

// commitTrace times the phases of one group commit.
type commitTrace struct {
	cur  commitPhase // the phase running since last
	last time.Time
	d    [numPhases]time.Duration
}

// enter ends the current phase and starts p.
func (t *commitTrace) enter(p commitPhase) {
	now := time.Now()
	t.d[t.cur] += now.Sub(t.last)
	t.cur, t.last = p, now
}

func (t *commitTrace) total() time.Duration {
	var sum time.Duration
	for _, d := range t.d {
		sum += d
	}
	return sum
}

// slowest returns the phase that took longest.
func (t *commitTrace) slowest() commitPhase {
	var p commitPhase
	for i := range t.d {
		if t.d[i] > t.d[p] {
			p = commitPhase(i)
		}
	}
	return p
}

func (t *commitTrace) attrs() []any {
	out := make([]any, 0, 2*numPhases+4)
	out = append(out, "took", t.total(), "slowest_phase", t.slowest().String())
	for i, d := range t.d {
		if d > 0 {
			out = append(out, phaseNames[i], d)
		}
	}
	return out
}

// slowCommit is the group commit duration, queueing included, above which
// the store logs where the time went: a write that waits this long makes
// Kubernetes clients miss deadlines (lease renewals, the storage tests' 3 s
// budgets), and the log line names the phase to look at.
const slowCommit = time.Second

// reportCommit records a commit's phases in the metrics, and logs a slow one.
func (s *Store) reportCommit(t *commitTrace, requests int) {
	for i, d := range t.d {
		if d > 0 { // a phase that did not run (SQLite has no head to read)
			s.metrics.commitPhase[i].Observe(d.Seconds())
		}
	}
	if t.total() >= slowCommit {
		s.log.Warn("slow group commit", append(t.attrs(), "requests", requests)...)
	}
}
