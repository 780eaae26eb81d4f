package watchhub

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Defaults for Config.
//
// The ring's byte bound is most of the server's heap under write load: every
// event it holds keeps its key and value (and its previous value) alive, and
// the Go collector lets the heap grow to about twice what is live. 16 MiB
// holds some 13,000 revisions of 1 KiB values: enough for the watches near
// the head, for re-watches after client-go's 5–10 minute timeouts at
// moderate write rates, and for the previous values of updates to recently
// written keys. A watch that starts behind it is served from the database in
// pages, as etcd serves every watch.
const (
	DefaultRingEvents             = 100_000
	DefaultRingBytes              = 16 << 20
	DefaultProgressNotifyInterval = 5 * time.Second
	DefaultMaxRequestBytes        = 1<<20 + 1<<19 // etcd's 1.5 MiB
	DefaultCatchUpPage            = 1000
	DefaultMaxEventsPerResponse   = 1000
)

// Config tunes a Hub. The zero value is valid: every field has a default.
type Config struct {
	// RingEvents and RingBytes bound the in-memory history. A watch that
	// starts, or falls, behind it is served from the database.
	RingEvents int
	RingBytes  int64

	// ProgressNotifyInterval is the period of progress notifications to
	// watches created with progress_notify (kine's and kinelite's default
	// 5 s; etcd's is 10 min).
	ProgressNotifyInterval time.Duration

	// MaxRequestBytes is the size above which a response to a watch created
	// with fragment=true is split, as etcd does.
	MaxRequestBytes int

	// CatchUpPage is how many revisions one database read of catch-up
	// covers.
	CatchUpPage int

	// MaxEventsPerResponse bounds the events of one response (etcd sends at
	// most 1000 revisions per catch-up response).
	MaxEventsPerResponse int

	// MaxWatchesPerStream bounds the watches of a stream whose context
	// carries no Budget (see WithBudget). Default DefaultMaxWatches.
	MaxWatchesPerStream int

	// Logger receives the hub's logs. Nil means no logging.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RingEvents <= 0 {
		c.RingEvents = DefaultRingEvents
	}
	if c.RingBytes <= 0 {
		c.RingBytes = DefaultRingBytes
	}
	if c.ProgressNotifyInterval <= 0 {
		c.ProgressNotifyInterval = DefaultProgressNotifyInterval
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.CatchUpPage <= 0 {
		c.CatchUpPage = DefaultCatchUpPage
	}
	if c.MaxEventsPerResponse <= 0 {
		c.MaxEventsPerResponse = DefaultMaxEventsPerResponse
	}
	if c.MaxWatchesPerStream <= 0 {
		c.MaxWatchesPerStream = DefaultMaxWatches
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// History is what the hub needs from the store to serve watches that start
// behind its ring. backend.Store implements it.
type History interface {
	// History returns the events of revisions from..to, reading at most
	// limit revisions, and the last revision covered; ErrCompacted-like
	// failure when from is below the compact revision.
	History(ctx context.Context, from, to int64, limit int) ([]*mvccpb.Event, int64, error)
	// CompactRevision returns the revision below which history is gone.
	CompactRevision() int64
}

// Hub fans the store's committed events out to watch streams. Publish feeds
// it; Serve runs one gRPC watch stream.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	history History
	metrics *metrics

	mu      sync.RWMutex // guards ring, notifyc and tickc
	ring    ring
	notifyc chan struct{} // closed when a revision is published
	tickc   chan struct{} // closed at each progress-notify tick

	stopc chan struct{}
	wg    sync.WaitGroup
}

// New returns a hub that reads older history from history. It starts
// nothing: Start starts the progress ticker.
func New(history History, cfg Config) *Hub {
	cfg.setDefaults()
	return &Hub{
		cfg:     cfg,
		log:     cfg.Logger,
		history: history,
		metrics: newMetrics(),
		ring:    ring{maxEvents: cfg.RingEvents, maxBytes: cfg.RingBytes},
		notifyc: make(chan struct{}),
		tickc:   make(chan struct{}),
		stopc:   make(chan struct{}),
	}
}

// Start starts the progress-notify ticker. Close stops it.
func (h *Hub) Start() {
	h.wg.Add(1)
	go h.runTicker()
}

// Close stops the ticker. Streams end with their own contexts.
func (h *Hub) Close() {
	select {
	case <-h.stopc:
	default:
		close(h.stopc)
	}
	h.wg.Wait()
}

func (h *Hub) runTicker() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.ProgressNotifyInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stopc:
			return
		case <-t.C:
			h.mu.Lock()
			close(h.tickc)
			h.tickc = make(chan struct{})
			h.mu.Unlock()
		}
	}
}

// Publish implements backend.EventSink: it appends the events of the
// revisions up to rev and wakes every stream. The first call (events nil)
// sets the starting revision.
func (h *Hub) Publish(rev int64, events []*mvccpb.Event) {
	h.mu.Lock()
	if events == nil && h.ring.rev == 0 {
		h.ring.reset(rev)
	} else {
		h.ring.append(rev, events, h.history.CompactRevision())
	}
	close(h.notifyc)
	h.notifyc = make(chan struct{})
	n, b := h.ring.len(), h.ring.bytes
	h.mu.Unlock()
	h.metrics.ringEvents.Set(float64(n))
	h.metrics.ringBytes.Set(float64(b))
}

// Revision returns the newest revision published.
func (h *Hub) Revision() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ring.rev
}

// Value implements backend's recent-value lookup: the key and value of the
// put at revision rev while the ring still holds it, so that the store need
// not read them back from the database (a write's previous value, a read of
// a recent write). The slices are the ring event's and must not be modified.
func (h *Hub) Value(rev int64) (key, value []byte, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ring.value(rev)
}

// snapshot returns the newest revision and the channels that announce the
// next publish and the next tick.
func (h *Hub) snapshot() (rev int64, notifyc, tickc <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ring.rev, h.notifyc, h.tickc
}

// read returns events of revisions from..to from the ring; see ring.read.
func (h *Hub) read(from, to int64, max int) ([]*mvccpb.Event, int64, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ring.read(from, to, max)
}

// ringBase returns the revision at and below which the ring holds nothing.
func (h *Hub) ringBase() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ring.base
}
