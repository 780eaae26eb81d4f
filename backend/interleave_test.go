package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
)

// gatedDriver stops every compaction step inside its delete until the test
// lets it go, and tells the test when a step is waiting.
type gatedDriver struct {
	backend.Driver
	entered chan struct{}
	release chan struct{}
}

func (d *gatedDriver) Begin(ctx context.Context) (backend.Tx, error) {
	tx, err := d.Driver.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &gatedTx{Tx: tx, d: d}, nil
}

type gatedTx struct {
	backend.Tx
	d *gatedDriver
}

func (t *gatedTx) DeleteCompacted(ctx context.Context, from, to, keep int64) ([]backend.Row, error) {
	t.d.entered <- struct{}{}
	<-t.d.release
	return t.Tx.DeleteCompacted(ctx, from, to, keep)
}

// TestWritesInterleaveWithCompactionSteps shows, without timing, that writes
// queued while a compaction step runs are committed before the next step
// starts: no write waits behind more than one step.
func TestWritesInterleaveWithCompactionSteps(t *testing.T) {
	ctx := context.Background()
	inner, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	d := &gatedDriver{Driver: inner, entered: make(chan struct{}), release: make(chan struct{})}
	s := backend.New(d, backend.Config{})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close(ctx); d.Close() }()
	for i := range 100 {
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("k", i%3)), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx, s.CurrentRevision()); err != nil {
		t.Fatal(err)
	}

	// Each round: while step k holds the committer, writes are queued and
	// then step k+1 behind them. The writes must be committed, and visible,
	// by the time step k+1 runs.
	const steps = 4
	released := false
	defer func() {
		if !released { // on failure, let a held step finish so Close returns
			close(d.release)
		}
	}()
	stepErr := make(chan error, steps)
	runStep := func() {
		_, _, err := s.CompactStep(ctx, 10)
		stepErr <- err
	}
	go runStep()
	var writes []*sync.WaitGroup
	for step := range steps {
		<-d.entered // step `step` is inside its transaction, holding the committer
		if step > 0 {
			resp, err := s.Range(ctx, &pb.RangeRequest{Key: []byte(fmt.Sprintf("w%d-", step-1)),
				RangeEnd: []byte(fmt.Sprintf("w%d.", step-1)), CountOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Count != 5 {
				t.Fatalf("step %d started with %d of the 5 writes queued before it committed", step, resp.Count)
			}
		}
		writes = append(writes, queueWrites(t, s, step))
		if step < steps-1 {
			go runStep()
			for s.QueueLength() < 6 { // the writes, then the next step
				runtime.Gosched()
			}
		}
		d.release <- struct{}{}
	}
	released = true
	for range steps {
		if err := <-stepErr; err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range writes {
		w.Wait()
	}
}

// queueWrites starts 5 puts and returns once all are queued behind the
// running step, with a WaitGroup that is done when they return.
func queueWrites(t *testing.T, s *backend.Store, step int) *sync.WaitGroup {
	var queued, done sync.WaitGroup
	for i := range 5 {
		queued.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			queued.Done()
			if _, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte(fmt.Sprintf("w%d-%d", step, i)), Value: []byte("v")}); err != nil {
				t.Error(err)
			}
		}()
	}
	queued.Wait()
	for s.QueueLength() < 5 { // the committer is held by the step: they queue up
		runtime.Gosched()
	}
	return &done
}
