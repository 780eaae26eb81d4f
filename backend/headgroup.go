package backend

import (
	"context"
	"sync"
)

// headGroup shares head queries among concurrent readers without weakening
// linearizability: a reader is answered only by a query that started after
// the reader arrived, so the head it sees holds every revision committed
// before it arrived. At most one query runs at a time; readers that arrive
// while it runs wait for the next one, which starts when it ends and serves
// all of them. Under load a reader waits for at most two queries, and the
// database answers one query per round trip instead of one per reader.
type headGroup struct {
	query func(context.Context) (Head, error)

	mu      sync.Mutex
	running bool        // a goroutine runs the queries
	next    *headFlight // the query not yet started, joined by arrivals

	// started, when set (tests), is called with each flight's waiter count
	// once the flight is taken, before its query starts.
	started func(waiters int)
}

// headFlight is one shared head query.
type headFlight struct {
	done    chan struct{}
	head    Head
	err     error
	waiters int                // readers still waiting; guarded by headGroup.mu
	cancel  context.CancelFunc // set once the query starts; guarded by headGroup.mu
}

// get returns a head read by a query that started after get was called.
func (g *headGroup) get(ctx context.Context) (Head, error) {
	g.mu.Lock()
	f := g.next
	if f == nil {
		f = &headFlight{done: make(chan struct{})}
		g.next = f
		if !g.running {
			g.running = true
			go g.run()
		}
	}
	f.waiters++
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.head, f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 && f.cancel != nil {
			f.cancel() // nobody wants the answer any more
		}
		g.mu.Unlock()
		return Head{}, ctx.Err()
	}
}

// run starts the pending flights one after the other, until none is left.
func (g *headGroup) run() {
	for {
		g.mu.Lock()
		f := g.next
		if f == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		// From here on, arrivals make a new flight: this one's query starts
		// after every reader that joined it arrived.
		g.next = nil
		if f.waiters == 0 {
			g.mu.Unlock()
			f.err = context.Canceled
			close(f.done)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel = cancel
		if g.started != nil {
			g.started(f.waiters)
		}
		g.mu.Unlock()
		f.head, f.err = g.query(ctx)
		cancel()
		close(f.done)
	}
}
