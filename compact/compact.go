package compact

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kinelite/kinelite/backend"
)

// Defaults for Config.
const (
	DefaultBatchRevisions     = 1000
	DefaultStepTarget         = 3 * time.Millisecond
	DefaultDutyCycle          = 0.5
	minStepRevisions          = 8
	DefaultMinRetain          = 1000
	DefaultCheckpointInterval = 50 * time.Millisecond
	DefaultWALFrames          = 256   // 1 MiB of 4 KiB pages; see Compactor.checkpoint
	DefaultRestartFrames      = 16384 // 64 MiB of 4 KiB pages
	DefaultReclaimInterval    = time.Second
	DefaultFreeLimit          = 16 << 20
	// reclaimPages is how many pages one reclaim op gives back: small
	// enough that a write never waits long behind it; reclaimPause spaces
	// the ops.
	reclaimPages = 128
	reclaimPause = 20 * time.Millisecond
)

// Store is what the compactor needs from the backend. backend.Store
// implements it.
type Store interface {
	// Compact moves the compact revision, durably, and returns.
	Compact(ctx context.Context, rev int64) error
	// CompactStep deletes the obsolete rows of the next window of at most
	// maxRevisions revisions and returns the progress after it.
	CompactStep(ctx context.Context, maxRevisions int64) (through int64, deleted int, err error)
	CompactRevision() int64
	CompactedThrough() int64
	CurrentRevision() int64

	// Size, Checkpoint and Reclaim keep the database's files in check.
	Size(ctx context.Context) (backend.Size, error)
	Checkpoint(ctx context.Context, minFrames int64) (backend.CheckpointResult, error)
	RestartLog(ctx context.Context) (bool, error)
	Reclaim(ctx context.Context, maxPages int) (int, error)
}

// Config tunes a Compactor. The zero value is valid.
type Config struct {
	// BatchRevisions is the largest revision window one step covers
	// (kine's --compact-batch-size). Default DefaultBatchRevisions.
	BatchRevisions int64

	// StepTarget is how long a step should take beyond what any commit
	// costs: the window shrinks when steps run longer and grows back (up to
	// BatchRevisions) when they run shorter, so that a write never waits
	// much longer than this (and one commit) behind compaction, whatever the
	// rows cost. Default DefaultStepTarget.
	StepTarget time.Duration

	// DutyCycle is the largest fraction of time the compactor's work on
	// the database may take: its ops in the store's write queue (deletion
	// steps, log restarts, reclaims) and its passive checkpoints run one at
	// a time, each followed by a rest in which only writes run, of the op's
	// duration times (1-DutyCycle)/DutyCycle. Lower values disturb writes
	// less and make compaction take longer to finish; 1 runs the ops back
	// to back. Default DefaultDutyCycle.
	DutyCycle float64

	// Interval turns on retention for users without an apiserver (kine's
	// --compact-interval): every Interval the store is compacted to the
	// revision that was current one interval earlier, keeping at least
	// MinRetain revisions. 0, the default, leaves compaction to clients.
	Interval time.Duration

	// MinRetain is the least number of revisions retention keeps (kine's
	// --compact-min-retain). Default DefaultMinRetain.
	MinRetain int64

	// CheckpointInterval is how often the write-ahead log is looked at;
	// WALFrames is how many of its pages must wait to be copied into the
	// database file before a checkpoint copies them, RestartFrames the
	// length (in pages) above which the log is copied whole and started
	// over. Defaults DefaultCheckpointInterval, DefaultWALFrames,
	// DefaultRestartFrames.
	CheckpointInterval time.Duration
	WALFrames          int64
	RestartFrames      int64

	// ReclaimInterval is how often free space is looked at; it is given
	// back when it exceeds both a quarter of the file and FreeLimit bytes.
	// Defaults DefaultReclaimInterval, DefaultFreeLimit.
	ReclaimInterval time.Duration
	FreeLimit       int64

	// Logger receives the compactor's logs. Nil means no logging.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.BatchRevisions <= 0 {
		c.BatchRevisions = DefaultBatchRevisions
	}
	if c.StepTarget <= 0 {
		c.StepTarget = DefaultStepTarget
	}
	if c.DutyCycle <= 0 || c.DutyCycle > 1 {
		c.DutyCycle = DefaultDutyCycle
	}
	if c.MinRetain <= 0 {
		c.MinRetain = DefaultMinRetain
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.WALFrames <= 0 {
		c.WALFrames = DefaultWALFrames
	}
	if c.RestartFrames <= 0 {
		c.RestartFrames = DefaultRestartFrames
	}
	if c.ReclaimInterval <= 0 {
		c.ReclaimInterval = DefaultReclaimInterval
	}
	if c.FreeLimit <= 0 {
		c.FreeLimit = DefaultFreeLimit
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Compactor deletes, in the background and in small steps, the rows that
// compaction made obsolete, and optionally compacts on a schedule.
type Compactor struct {
	cfg   Config
	log   *slog.Logger
	store Store

	kickc   chan struct{} // buffered 1: work may be waiting
	metrics *metrics
	pace    *pacer // shared by every op of the compactor on the database

	mu        sync.Mutex    // guards progressc
	progressc chan struct{} // closed whenever CompactedThrough moves

	stopc chan struct{}
	wg    sync.WaitGroup
}

// New returns a compactor over store. It starts nothing.
func New(store Store, cfg Config) *Compactor {
	cfg.setDefaults()
	return &Compactor{
		cfg:       cfg,
		log:       cfg.Logger,
		store:     store,
		kickc:     make(chan struct{}, 1),
		metrics:   newMetrics(store),
		pace:      newPacer(cfg.DutyCycle),
		progressc: make(chan struct{}),
		stopc:     make(chan struct{}),
	}
}

// Start starts the deletion loop (which first finishes any compaction left
// unfinished by a previous run) and, when Interval is set, retention. Close
// stops them.
func (c *Compactor) Start() {
	c.wg.Add(3)
	go c.run()
	go c.checkpoint()
	go c.reclaim()
	if c.cfg.Interval > 0 {
		c.wg.Add(1)
		go c.retain()
	}
	c.kick()
}

// Close stops the compactor's goroutines and waits for them. A step in
// progress completes; the rest resumes at the next Start.
func (c *Compactor) Close() {
	select {
	case <-c.stopc:
	default:
		close(c.stopc)
	}
	c.wg.Wait()
}

func (c *Compactor) kick() {
	select {
	case c.kickc <- struct{}{}:
	default:
	}
}

// Compact moves the compact revision to rev and returns at once; the rows
// behind it are deleted in the background. With physical set it also waits
// until they are.
func (c *Compactor) Compact(ctx context.Context, rev int64, physical bool) error {
	if err := c.store.Compact(ctx, rev); err != nil {
		return err
	}
	c.kick()
	if !physical {
		return nil
	}
	for {
		c.mu.Lock()
		progressc := c.progressc
		c.mu.Unlock()
		if c.store.CompactedThrough() >= rev {
			return nil
		}
		select {
		case <-progressc:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stopc:
			return errors.New("compact: stopped before the compaction finished")
		}
	}
}

func (c *Compactor) run() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stopc:
			return
		case <-c.kickc:
		}
		c.drain()
	}
}

// drain steps until the deletions catch up with the compact revision,
// sizing each step's window so that its rows take about StepTarget on top of
// what any commit costs. That fixed cost (a transaction's round trips and its
// flush: a millisecond on SQLite, ten or more on a busy PostgreSQL) is
// estimated as the quickest step of the drain; counting it against the target
// would shrink the window to its minimum wherever a commit alone takes longer
// than the target, and compaction would crawl without sparing writers
// anything. Likewise a single slow step does not shrink the window: on a
// shared machine or database it is as often noise as the window's rows.
func (c *Compactor) drain() {
	ctx := context.Background()
	window := min(c.cfg.BatchRevisions, 100)
	fixed := time.Duration(-1)
	slow := false // the previous step ran long
	for c.store.CompactedThrough() < c.store.CompactRevision() {
		select {
		case <-c.stopc:
			return
		default:
		}
		var (
			through int64
			deleted int
			err     error
		)
		took, ok := c.pace.do(c.stopc, func() { through, deleted, err = c.store.CompactStep(ctx, window) })
		if !ok {
			return
		}
		if err != nil {
			c.log.Warn("compaction step failed; retrying", "err", err)
			select {
			case <-c.stopc:
				return
			case <-time.After(time.Second):
			}
			continue
		}
		c.metrics.steps.Observe(took.Seconds())
		c.metrics.rowsDeleted.Add(float64(deleted))
		c.log.Debug("compaction step", "through", through, "deleted", deleted, "window", window, "took", took)
		if fixed < 0 || took < fixed {
			fixed = took
		}
		switch rows := took - fixed; {
		case rows > 2*c.cfg.StepTarget:
			// One slow step is as often a busy machine as a large window:
			// shrink after two in a row.
			if slow {
				window = max(window/2, minStepRevisions)
			}
			slow = !slow
		case rows < c.cfg.StepTarget/2:
			window = min(window*2, c.cfg.BatchRevisions)
			slow = false
		default:
			slow = false
		}
		c.mu.Lock()
		close(c.progressc)
		c.progressc = make(chan struct{})
		c.mu.Unlock()
	}
}

// checkpoint keeps the write-ahead log bounded, off the commit path.
// Every CheckpointInterval it asks the store for a passive checkpoint
// (which never waits for writers or readers) that copies only once at least
// WALFrames pages wait to be copied: compaction steps change the same index
// pages step after step, and a page written by many commits is copied once
// per checkpoint, so rarer checkpoints copy fewer pages in all and sync the
// database file less often. But a checkpoint's sync of the database file
// slows the syncs of the commits beside it, the more the more it copied:
// 4096 pages made the update p99 during a compaction four times worse,
// 256 pages did not (bench/results/compaction-throughput-notes.md).
// The log must also start over from its beginning now and then, which
// SQLite does on its own only when no reader still uses an older snapshot —
// under a steady load, rarely. So once the log passes RestartFrames, the
// compactor copies all of it and asks the store to restart it: an op of its
// own in the write queue that waits a few milliseconds at most for readers.
// SQLite's own automatic checkpoint would do all this work inside commits.
// Checkpoints go through the compactor's pacer like its other ops, so that a
// checkpoint's sync of the database file never runs beside a deletion
// step's commit.
func (c *Compactor) checkpoint() {
	defer c.wg.Done()
	ctx := context.Background()
	idle := time.NewTicker(c.cfg.CheckpointInterval)
	defer idle.Stop()
	for {
		select {
		case <-c.stopc:
			return
		case <-idle.C:
		}
		minFrames := c.cfg.WALFrames
		for {
			var (
				r   backend.CheckpointResult
				err error
			)
			if _, ok := c.pace.do(c.stopc, func() { r, err = c.store.Checkpoint(ctx, minFrames) }); !ok {
				return
			}
			if err != nil {
				c.log.Warn("checkpoint", "err", err)
				break
			}
			if r.Checkpointed {
				c.metrics.checkpoints.Inc()
			}
			if r.Frames <= c.cfg.RestartFrames {
				break // the log may grow a while longer
			}
			if r.Copied < r.Frames {
				if r.Checkpointed {
					break // readers hold the rest; try again at the next tick
				}
				minFrames = 1 // copy all of it, then restart
				continue
			}
			var restarted bool
			if _, ok := c.pace.do(c.stopc, func() { restarted, err = c.store.RestartLog(ctx) }); !ok {
				return
			}
			if err != nil {
				c.log.Warn("restart the write-ahead log", "err", err)
			} else if restarted {
				c.metrics.logRestarts.Inc()
			}
			break
		}
	}
}

// reclaim gives free pages back to the file system in small ops, when they
// pile up after compaction. Free pages below the limits are left for new
// rows to reuse: giving them back would only make the file grow again.
func (c *Compactor) reclaim() {
	defer c.wg.Done()
	ctx := context.Background()
	t := time.NewTicker(c.cfg.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stopc:
			return
		case <-t.C:
		}
		for {
			size, err := c.store.Size(ctx)
			if err != nil {
				c.log.Warn("reclaim: read database size", "err", err)
				break
			}
			free := size.Total - size.InUse
			if free <= c.cfg.FreeLimit || free <= size.Total/4 {
				break
			}
			var n int
			if _, ok := c.pace.do(c.stopc, func() { n, err = c.store.Reclaim(ctx, reclaimPages) }); !ok {
				return
			}
			if err != nil {
				c.log.Warn("reclaim free pages", "err", err)
				break
			}
			if n == 0 {
				break // not an incremental-vacuum database; see Defragment
			}
			c.metrics.pagesReclaimed.Add(float64(n))
			// Pace the reclaim: space comes back over seconds, and writes
			// keep nearly all of the write queue meanwhile.
			select {
			case <-c.stopc:
				return
			case <-time.After(reclaimPause):
			}
		}
	}
}

// retain compacts on a schedule, kine's way: to the revision that was
// current at the previous tick, keeping at least MinRetain revisions.
func (c *Compactor) retain() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	prev := c.store.CurrentRevision()
	for {
		select {
		case <-c.stopc:
			return
		case <-t.C:
		}
		cur := c.store.CurrentRevision()
		target := min(prev, cur-c.cfg.MinRetain)
		prev = cur
		if target <= c.store.CompactRevision() {
			continue
		}
		if err := c.Compact(context.Background(), target, false); err != nil {
			c.log.Warn("scheduled compaction failed", "target", target, "err", err)
			continue
		}
		c.log.Info("scheduled compaction", "revision", target)
	}
}
