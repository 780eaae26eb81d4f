package compact

import (
	"math"
	"sync"
	"time"
)

// pacer spaces the compactor's background work on the database — the
// deletion steps, log restarts and reclaims it queues for the writer, and
// the passive checkpoints it runs beside it — so that together they take at
// most a duty fraction of the time. Each op is followed by a rest in which
// only writes run: with duty d, an op that took t is followed by t*(1-d)/d
// of rest before the next one of any kind begins. The loops that run such
// ops share one pacer, so a write never finds two of them in a row ahead of
// it, a step never commits while a checkpoint copies and syncs the database
// file, and the writes get most of the CPUs and of the disk's syncs while
// compaction runs. The price is time: at duty 1/2 deleting a backlog takes
// about twice as long as back to back.
type pacer struct {
	duty  float64
	now   func() time.Time
	sleep func(d time.Duration, stop <-chan struct{}) bool // false when stopped

	mu   sync.Mutex // serializes the ops; guards next
	next time.Time  // earliest start of the next op
}

func newPacer(duty float64) *pacer {
	return &pacer{duty: duty, now: time.Now, sleep: sleepOrStop}
}

// do waits for the rest owed by the previous op, runs op, and returns how
// long op took. It returns false, without running op, when stop closes
// while it waits.
func (p *pacer) do(stop <-chan struct{}, op func()) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if wait := p.next.Sub(p.now()); wait > 0 {
		if !p.sleep(wait, stop) {
			return 0, false
		}
	}
	began := p.now()
	op()
	end := p.now()
	took := end.Sub(began)
	if p.duty < 1 {
		p.next = end.Add(time.Duration(math.Round(float64(took) * (1 - p.duty) / p.duty)))
	}
	return took, true
}

func sleepOrStop(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
