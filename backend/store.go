package backend

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kinelite/kinelite/backend/index"
	"github.com/kinelite/kinelite/internal/failpoint"
)

// Defaults for Config.
const (
	DefaultMaxBatchOps          = 1024
	DefaultLeaseCheckInterval   = 500 * time.Millisecond
	DefaultHistoryPageRevisions = 1000
)

// Config tunes a Store. The zero value is valid: every field has a default.
type Config struct {
	// Logger receives the store's logs. Nil means no logging.
	Logger *slog.Logger

	// MaxBatchOps bounds how many queued requests one group commit takes.
	// Default DefaultMaxBatchOps.
	MaxBatchOps int

	// MinLeaseTTL is the TTL, in seconds, shorter grants are raised to.
	// Default DefaultMinLeaseTTL; negative means no minimum.
	MinLeaseTTL int64

	// LeaseCheckInterval is how often expired leases are looked for.
	// Default DefaultLeaseCheckInterval.
	LeaseCheckInterval time.Duration

	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBatchOps <= 0 {
		c.MaxBatchOps = DefaultMaxBatchOps
	}
	if c.MinLeaseTTL == 0 {
		c.MinLeaseTTL = DefaultMinLeaseTTL
	}
	if c.LeaseCheckInterval <= 0 {
		c.LeaseCheckInterval = DefaultLeaseCheckInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// EventSink receives every committed change, in revision order. The watch hub
// implements it.
type EventSink interface {
	// Publish announces that every revision up to rev is committed and
	// readable. events holds one event per revision since the previous call
	// that changed a client key, in revision order (kine's bookkeeping rows
	// produce none); it is nil for the first call, made by Start. Publish is
	// called from one goroutine at a time, must not block, and must not
	// modify the events.
	Publish(rev int64, events []*mvccpb.Event)
}

// recentValues is an EventSink that still holds recent events (the watch
// hub's ring): Value returns the key and the client value of the put at
// revision rev, not to be modified, or false when it no longer holds it.
type recentValues interface {
	Value(rev int64) (key, value []byte, ok bool)
}

// Store is kinelite's storage engine over a Driver: the in-memory index, the
// single committer that applies writes with group commit, the read path,
// leases and the compaction steps. See doc.go for the data flow.
type Store struct {
	cfg     Config
	log     *slog.Logger
	driver  Driver
	shared  SharedDriver // driver, when other processes share its database
	heads   *headGroup   // shares the readers' head queries (shared database)
	index   *index.Index
	pages   pageCounts // counts of the rest of paged ranges (pagecount.go)
	lessor  *lessor
	sink    EventSink
	recent  recentValues // sink, when it can give back recent values
	metrics *metrics

	rev              atomic.Int64 // revision visible to reads
	compactRev       atomic.Int64 // reads below it fail
	compacted        atomic.Bool  // a compaction happened (Compact(0) is refused from then on)
	compactedThrough atomic.Int64 // rows superseded up to here are deleted
	leaseLeader      atomic.Bool  // this process expires leases (shared database)
	lastTrim         time.Time    // last index trim after another process's compaction; committer only
	// indexCompacted is the compaction progress the index reflects: it
	// holds no entry of a row compaction through it deleted. Committer only.
	indexCompacted int64

	// On a database of its own, the committer hands committed groups to
	// the syncer through syncq, at most syncDepth of them (nil on a shared
	// database, where the committer syncs and publishes each group itself).
	syncq    chan *batch
	syncErr  atomic.Pointer[error] // a sync failed: writes are refused
	inflight *batch                // last group handed to the syncer and maybe not yet published; committer only

	reqc   chan op            // to the committer
	stopc  chan struct{}      // closed by Close
	cancel context.CancelFunc // ends the shared-database goroutines
	stopMu sync.RWMutex       // held shared while submitting, exclusively by Close
	closed bool               // guarded by stopMu
	wg     sync.WaitGroup
}

// New returns a store over driver. It starts nothing and touches no data:
// Start does.
func New(driver Driver, cfg Config) *Store {
	cfg.setDefaults()
	shared, _ := driver.(SharedDriver)
	var syncq chan *batch
	if shared == nil {
		syncq = make(chan *batch, syncDepth)
	}
	var heads *headGroup
	if shared != nil {
		heads = &headGroup{query: shared.Head}
	}
	return &Store{
		shared:  shared,
		heads:   heads,
		cfg:     cfg,
		log:     cfg.Logger,
		driver:  driver,
		index:   index.New(),
		lessor:  newLessor(cfg.Now),
		metrics: newMetrics(),
		syncq:   syncq,
		reqc:    make(chan op, cfg.MaxBatchOps),
		stopc:   make(chan struct{}),
	}
}

// SetEventSink sets where committed events go. It must be called before
// Start; without a sink events are dropped.
func (s *Store) SetEventSink(sink EventSink) {
	s.sink = sink
	s.recent, _ = sink.(recentValues)
}

// recentValue returns the stored value of row id when the event sink still
// holds its put: rows are never changed, so a recent event's value is the
// row's at any revision, and reading it back from the database is avoided.
func (s *Store) recentValue(id int64) ([]byte, bool) {
	if s.recent == nil {
		return nil, false
	}
	key, value, ok := s.recent.Value(id)
	if !ok || string(key) == compactKey { // stored differently from its client value
		return nil, false
	}
	return nonNil(value), true
}

// Start creates the schema when missing, rebuilds the index from the table,
// publishes the current revision to the event sink, and starts the committer
// and the lease expiry loop. Close stops them.
func (s *Store) Start(ctx context.Context) error {
	began := time.Now()
	if err := s.driver.Setup(ctx); err != nil {
		return fmt.Errorf("backend: setup: %w", err)
	}
	var st State
	var maxID int64
	var kineLeases []LeaseRow
	for {
		var err error
		if st, err = s.driver.State(ctx); err != nil {
			return fmt.Errorf("backend: %w", err)
		}
		if st.CompactRevision < 0 || st.CompactRevision > MaxRowID {
			return fmt.Errorf("backend: %w: the compact revision %d (compact_rev_key's prev_revision) is outside 0..2^62; run kinelite check for a report",
				ErrUnservableTable, st.CompactRevision)
		}
		maxID, kineLeases, err = s.load(ctx, st)
		if errors.Is(err, errCompactedMeanwhile) {
			s.log.Info("another process compacted during the index rebuild; rebuilding again")
			continue
		}
		if err != nil {
			return fmt.Errorf("backend: rebuild index: %w", err)
		}
		break
	}
	rev := max(maxID, st.CompactRevision)
	s.rev.Store(rev)
	s.compactRev.Store(st.CompactRevision)
	s.compacted.Store(st.Compacted || st.CompactRevision > 0)
	s.compactedThrough.Store(min(st.CompactedThrough, st.CompactRevision))
	s.indexCompacted = s.compactedThrough.Load() // the scan came after the progress was read
	if err := s.adoptKineLeases(ctx, kineLeases); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if s.sink != nil {
		s.sink.Publish(rev, nil)
	}
	keys, revs := s.index.Stats()
	s.log.Info("backend started", "revision", rev, "compact_revision", st.CompactRevision,
		"keys", keys, "revisions", revs, "leases", len(st.Leases)+len(kineLeases), "took", time.Since(began))

	s.wg.Add(2)
	go s.runCommitter()
	go s.runLeaseExpiry()
	if s.syncq != nil {
		s.wg.Add(1)
		go s.runSyncer()
	}
	if s.shared != nil {
		var bg context.Context
		bg, s.cancel = context.WithCancel(context.Background())
		s.wg.Add(2)
		go s.runFollower(bg)
		go s.runLeaseLeadership(bg)
	}
	return nil
}

// load rebuilds the index and the lessor from the table. It returns the
// highest row ID and the leases named by live keys that kinelite never
// granted: kine stores a TTL in seconds as the lease, and such keys must still
// expire.
func (s *Store) load(ctx context.Context, st State) (maxID int64, kineLeases []LeaseRow, err error) {
	now := s.cfg.Now()
	recorded := make(map[string]VersionRow, len(st.Versions))
	for _, v := range st.Versions {
		recorded[v.Name] = v
	}
	// compact_rev_key keeps its version inside its value; its rows are read
	// after the scan, with their values.
	var compactKeyRows []Row
	build := index.NewBuilder()
	err = s.driver.Scan(ctx, math.MinInt64, func(r Row) error {
		failpoint.Hit("index-rebuild")
		if r.ID <= 0 || r.ID > MaxRowID {
			return fmt.Errorf("%w: row %d of %q has an id outside 1..2^62, which cannot be a revision; run kinelite check for a report",
				ErrUnservableTable, r.ID, r.Name)
		}
		maxID = max(maxID, r.ID)
		key, kind := clientKey(r)
		if kind != rowKey {
			return nil
		}
		if key == compactKey {
			compactKeyRows = append(compactKeyRows, r)
			return nil
		}
		build.Append(key, revisionOf(build, key, r, recorded))
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	if len(compactKeyRows) > 0 {
		ids := make([]int64, len(compactKeyRows))
		for i, r := range compactKeyRows {
			ids[i] = r.ID
		}
		values, err := s.driver.Values(ctx, ids)
		if err != nil {
			return 0, nil, err
		}
		for _, r := range compactKeyRows {
			rv := revisionOf(build, compactKey, r, nil)
			if !r.Deleted {
				rv.Version, _ = decodeCompactValue(values[r.ID])
			}
			build.Append(compactKey, rv)
		}
	}
	if s.shared != nil {
		// The scan read the rows after st read the versions. A compaction
		// step another process committed in between deleted rows whose
		// versions st does not record: start over. Steps are short,
		// and a compaction ends.
		head, err := s.shared.Head(ctx)
		if err != nil {
			return 0, nil, err
		}
		if head.CompactedThrough != st.CompactedThrough {
			return 0, nil, errCompactedMeanwhile
		}
		// Likewise a lease granted after st was read may have keys in
		// the scan: it must not be taken for one of kine's.
		granted, err := s.shared.Leases(ctx)
		if err != nil {
			return 0, nil, err
		}
		known := make(map[int64]bool, len(st.Leases))
		for _, l := range st.Leases {
			known[l.ID] = true
		}
		for id, l := range granted {
			if !known[id] {
				st.Leases = append(st.Leases, LeaseRow{ID: id, TTL: l.TTL})
			}
		}
	}
	s.index = build.Build()
	for _, l := range st.Leases {
		s.lessor.leases[l.ID] = &lease{id: l.ID, ttl: l.TTL, keys: make(map[string]struct{})}
	}

	// Attach live keys to their leases; invent the leases kine wrote.
	seen := make(map[int64]bool)
	s.index.Range("", "", maxID, func(key string, r index.Revision) bool {
		if r.Lease == 0 {
			return true
		}
		le, ok := s.lessor.leases[r.Lease]
		if !ok {
			if r.Lease < 0 {
				s.log.Warn("ignoring negative lease on key", "key", key, "lease", r.Lease)
				return true
			}
			le = &lease{id: r.Lease, ttl: r.Lease, keys: make(map[string]struct{})}
			s.lessor.leases[r.Lease] = le
			if !seen[r.Lease] {
				seen[r.Lease] = true
				kineLeases = append(kineLeases, LeaseRow{ID: r.Lease, TTL: r.Lease})
			}
		}
		le.keys[key] = struct{}{}
		return true
	})
	for _, le := range s.lessor.leases {
		le.expiry = now.Add(ttlDuration(le.ttl))
		s.lessor.expiries = append(s.lessor.expiries, expiryEntry{at: le.expiry, id: le.id})
	}
	heap.Init(&s.lessor.expiries)
	return maxID, kineLeases, nil
}

// errCompactedMeanwhile is load's: another process compacted between the
// state it was given and its scan.
var errCompactedMeanwhile = errors.New("backend: compacted during the index rebuild")

// lastFinder is an index or an index being built.
type lastFinder interface {
	Last(key string) (index.Revision, bool)
}

// revisionOf turns a row into an index entry, continuing the key's history
// as build holds it so far.
func revisionOf(build lastFinder, key string, r Row, recorded map[string]VersionRow) index.Revision {
	if r.Deleted {
		return index.Revision{Mod: r.ID}
	}
	rv := index.Revision{Mod: r.ID, Lease: r.Lease}
	last, ok := build.Last(key)
	switch {
	case r.Created:
		rv.Create, rv.Version = r.ID, 1
		return rv
	case ok && !last.Tombstone():
		rv.Create, rv.Version = last.Create, last.Version+1
		if r.CreateRevision != 0 {
			rv.Create = r.CreateRevision
		}
	default:
		// The rows before this one were compacted away: count from
		// here (a database compacted by kine records no versions).
		rv.Create, rv.Version = r.CreateRevision, 1
		if rv.Create == 0 {
			rv.Create = r.ID
		}
	}
	// Compaction recorded this row's version: the rows counted before it,
	// if any, are ones an unfinished compaction has yet to delete.
	if v, ok := recorded[r.Name]; ok && v.ID == r.ID {
		rv.Version = v.Version
	}
	return rv
}

// adoptKineLeases persists the leases invented for kine's TTL-valued lease
// columns, so that they are ordinary leases from now on.
func (s *Store) adoptKineLeases(ctx context.Context, leases []LeaseRow) error {
	if len(leases) == 0 {
		return nil
	}
	tx, err := s.driver.Begin(ctx)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if err := tx.PutLease(ctx, l); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("adopt kine lease %d: %w", l.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("adopt kine leases: %w", err)
	}
	s.log.Info("adopted kine TTL leases", "count", len(leases))
	return nil
}

// Close stops the committer and the lease loop; queued requests fail with
// ErrStopped. It does not close the driver.
func (s *Store) Close(ctx context.Context) error {
	s.stopMu.Lock()
	if s.closed {
		s.stopMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stopc)
	if s.cancel != nil {
		s.cancel()
	}
	s.stopMu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CurrentRevision returns the newest revision visible to reads.
func (s *Store) CurrentRevision() int64 { return s.rev.Load() }

// CompactRevision returns the compact revision: reads below it fail.
func (s *Store) CompactRevision() int64 { return s.compactRev.Load() }

// CompactedThrough returns the revision up to which superseded rows have been
// physically deleted.
func (s *Store) CompactedThrough() int64 { return s.compactedThrough.Load() }

// QueueLength returns how many requests wait for the committer.
func (s *Store) QueueLength() int { return len(s.reqc) }

// IndexStats reports the index's keys and revisions.
func (s *Store) IndexStats() (keys, revisions int) { return s.index.Stats() }

// Size reports the database's size.
func (s *Store) Size(ctx context.Context) (Size, error) {
	size, err := s.driver.Size(ctx)
	if err != nil {
		return size, unavailable(err)
	}
	return size, nil
}

// unavailable wraps a driver error so that callers can tell it from a
// request's own failure.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
