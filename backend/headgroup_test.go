package backend

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeHeads is a database head another process moves. Each query reads the
// head when it starts and answers when the test releases it.
type fakeHeads struct {
	rev     atomic.Int64
	queries atomic.Int64
	release chan struct{} // one receive per query answered
	began   chan int64    // the head each query read, as it starts
	waiters chan int      // the readers each flight serves
	g       *headGroup
	wg      sync.WaitGroup
	results chan readResult
}

type readResult struct {
	name string
	head Head
	err  error
}

func newFakeHeads() *fakeHeads {
	f := &fakeHeads{
		release: make(chan struct{}),
		began:   make(chan int64, 16),
		waiters: make(chan int, 16),
		results: make(chan readResult, 16),
	}
	f.g = &headGroup{
		query: func(ctx context.Context) (Head, error) {
			f.queries.Add(1)
			h := Head{Rev: f.rev.Load()}
			f.began <- h.Rev
			select {
			case <-f.release:
				return h, nil
			case <-ctx.Done():
				return Head{}, ctx.Err()
			}
		},
		started: func(n int) { f.waiters <- n },
	}
	return f
}

func (f *fakeHeads) read(ctx context.Context, name string) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		h, err := f.g.get(ctx)
		f.results <- readResult{name, h, err}
	}()
}

// waitJoined waits until n readers wait on the flight not yet started.
func (f *fakeHeads) waitJoined(t *testing.T, n int) {
	t.Helper()
	for {
		f.g.mu.Lock()
		joined := 0
		if f.g.next != nil {
			joined = f.g.next.waiters
		}
		f.g.mu.Unlock()
		if joined >= n {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatal("readers did not join")
		default:
			runtime.Gosched()
		}
	}
}

// TestHeadGroupNoStaleHead: a reader that arrives while a head query runs
// must not be answered by it (that query may have read the head before a
// write the reader saw acknowledged); it gets the next query, which the
// readers that arrived meanwhile share.
func TestHeadGroupNoStaleHead(t *testing.T) {
	f := newFakeHeads()
	ctx := t.Context()

	f.rev.Store(10)
	f.read(ctx, "early")
	if got := <-f.began; got != 10 {
		t.Fatalf("first query read %d, want 10", got)
	}
	if n := <-f.waiters; n != 1 {
		t.Fatalf("first query serves %d readers, want 1", n)
	}

	// Another process commits revision 11 and acknowledges it; then three
	// readers arrive, while the first query (which read 10) still runs.
	f.rev.Store(11)
	for _, name := range []string{"late1", "late2", "late3"} {
		f.read(ctx, name)
	}
	f.waitJoined(t, 3)

	f.release <- struct{}{} // the first query answers 10
	r := <-f.results
	if r.name != "early" || r.err != nil || r.head.Rev != 10 {
		t.Fatalf("first answer = %+v, want early at 10", r)
	}
	select {
	case r := <-f.results:
		t.Fatalf("%s answered by the query that ran when it arrived (head %d)", r.name, r.head.Rev)
	case got := <-f.began:
		if got != 11 {
			t.Fatalf("second query read %d, want 11", got)
		}
	}
	if n := <-f.waiters; n != 3 {
		t.Fatalf("second query serves %d readers, want the 3 that arrived meanwhile", n)
	}
	f.release <- struct{}{}
	for range 3 {
		r := <-f.results
		if r.err != nil || r.head.Rev != 11 {
			t.Errorf("%s: head %d, err %v; want 11 (it arrived after revision 11 was acknowledged)", r.name, r.head.Rev, r.err)
		}
	}
	f.wg.Wait()
	if q := f.queries.Load(); q != 2 {
		t.Errorf("%d queries for 4 readers, want 2", q)
	}
}

// TestHeadGroupCancel: a reader that gives up returns at once; a query
// nobody waits for any more is cancelled, or never started.
func TestHeadGroupCancel(t *testing.T) {
	f := newFakeHeads()
	ctx := t.Context()

	f.read(ctx, "first")
	<-f.began
	<-f.waiters

	// A reader for the next query gives up before it starts: that query
	// never runs.
	gone, cancel := context.WithCancel(ctx)
	f.read(gone, "gone")
	f.waitJoined(t, 1)
	cancel()
	if r := <-f.results; r.name != "gone" || r.err == nil {
		t.Fatalf("got %+v, want gone with an error", r)
	}
	f.release <- struct{}{}
	if r := <-f.results; r.name != "first" || r.err != nil {
		t.Fatalf("got %+v, want first without error", r)
	}

	// A running query whose only reader gives up is cancelled.
	gone2, cancel2 := context.WithCancel(ctx)
	f.read(gone2, "gone2")
	<-f.began
	<-f.waiters
	cancel2()
	if r := <-f.results; r.name != "gone2" || r.err == nil {
		t.Fatalf("got %+v, want gone2 with an error", r)
	}
	f.wg.Wait()
	if q := f.queries.Load(); q != 2 {
		t.Errorf("%d queries, want 2 (the abandoned pending one must not run)", q)
	}

	// The group still works afterwards.
	f.rev.Store(5)
	f.read(ctx, "after")
	if got := <-f.began; got != 5 {
		t.Fatalf("query read %d, want 5", got)
	}
	<-f.waiters
	f.release <- struct{}{}
	if r := <-f.results; r.err != nil || r.head.Rev != 5 {
		t.Fatalf("got %+v, want 5", r)
	}
}
