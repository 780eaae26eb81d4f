// Package soak runs kinelite for a long time under a steady, apiserver-shaped
// load and fails if anything grows that should not, or if any watch misses
// an event. cmd/soak is its command line.
//
// # The load
//
// A server process (internal/servers, kinelite's defaults: SQLite, fsync per
// commit) gets, at a fixed rate, the writes kube-apiserver sends: creates
// (Txn MOD==0 → Put), updates (Txn MOD==r → Put, else Get, with a hot set of
// keys so that some conflict, then a retry from the answer), deletes (Txn
// MOD==r → Delete, else Get), and events written with leases that are
// granted every few seconds and left to expire. The number of live keys
// hovers around a target, so a steady state exists. Paginated lists (limit
// 500, later pages at the first page's revision) run alongside, and every
// minute the apiserver's compaction: a Txn on compact_rev_key's version,
// then Compact to the revision the previous round saw.
//
// # The watches
//
// One watch sees everything and must see every revision, one after the
// other (kinelite gives every write its own revision). 100+ more watch
// resource and namespace prefixes on a dozen gRPC streams, send
// RequestWatchProgress, and are cancelled and resumed from their last seen
// revision every few minutes, as client-go's watch timeouts do. Every
// sampling period each watch is checked against the complete watch: the
// events it got up to the revision it has seen (its last event or progress
// notification) are exactly those of the complete watch under its prefix,
// in order; a progress notification never comes before an event at or below
// its revision; and every acknowledged write is in the complete watch at the
// revision its answer gave.
//
// # The trend test
//
// Every sampling period (10 s) the server's RSS, goroutines (pprof), open
// files (/proc/PID/fd), the database and WAL file sizes, the p99 watch lag
// (from a write's send to its event's arrival at a watcher; values carry
// their send time) and the p99 write latency are sampled. After the
// warm-up, the samples are cut in thirds: a metric trends upward when the
// median of the last third exceeds the median of the second third by more
// than its tolerance (relative plus absolute; see Tolerances). Medians of
// thirds are robust against the bursts of a shared machine and against the
// saw-tooth of the minute-by-minute compaction and the WAL; the first third
// is left out as the tail of the warm-up. Fewer than 9 samples after the
// warm-up make no verdict (a smoke run).
package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/bench/internal/servers"
)

// Config sizes a soak run.
type Config struct {
	Duration      time.Duration // the load's duration
	Warmup        time.Duration // samples before this are left out of the trend test
	SampleEvery   time.Duration
	CompactEvery  time.Duration
	ListEvery     time.Duration // one paginated list per period
	ProgressEvery time.Duration // RequestWatchProgress on every stream per period
	RewatchEvery  time.Duration // mean life of a watch before it is resumed
	LeaseEvery    time.Duration // a new lease for events per period
	LeaseTTL      int64         // seconds
	WritesPerSec  int
	Writers       int
	Keys          int // target number of live keys (events not counted)
	ValueBytes    int // mean value size
	Watches       int // prefix watches, besides the complete one
	Streams       int // gRPC watch streams they share
	Namespaces    int

	WorkDir string // the server's data directory goes under it
	OutDir  string // results: samples.csv and results.md
	Command string // the command line, for the report
	Logf    func(format string, args ...any)
}

// Default is the 10-minute run.
func Default() Config {
	return Config{
		Duration:      10 * time.Minute,
		SampleEvery:   10 * time.Second,
		CompactEvery:  time.Minute,
		ListEvery:     2 * time.Second,
		ProgressEvery: time.Second,
		RewatchEvery:  5 * time.Minute,
		LeaseEvery:    5 * time.Second,
		LeaseTTL:      30,
		WritesPerSec:  200,
		Writers:       8,
		Keys:          3000,
		ValueBytes:    1000,
		Watches:       120,
		Streams:       12,
		Namespaces:    10,
	}
}

// warmup is the default warm-up: a fifth of the run, at least two
// compaction periods (the database grows until compaction keeps pace).
func (c *Config) warmup() time.Duration {
	if c.Warmup > 0 {
		return c.Warmup
	}
	return max(c.Duration/5, 2*c.CompactEvery)
}

// Result is the outcome of a run.
type Result struct {
	Samples       []Sample
	Trends        []Trend
	Failures      []string // empty when the run passed
	Stats         Stats
	CSV, Markdown string
}

// Passed reports whether the run passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Run runs one soak. The error is for a run that could not be made;
// failures of the server are in Result.Failures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Streams < 1 || cfg.Writers < 1 || cfg.Namespaces < 1 || cfg.WritesPerSec < 1 {
		return nil, errors.New("soak: streams, writers, namespaces and writes per second must be positive")
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	kind, err := servers.Lookup("kinelite")
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(cfg.WorkDir, "soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	proc, err := servers.Start(ctx, kind, servers.StartOptions{
		DataDir: dataDir,
		LogPath: filepath.Join(cfg.OutDir, "kinelite.log"),
		Pprof:   true,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if proc.Alive() {
			proc.Kill()
		}
	}()
	cfg.Logf("kinelite serving on %s (pid %d); load for %s, sampling every %s", proc.Endpoint, proc.Pid(), cfg.Duration, cfg.SampleEvery)

	s := &soak{cfg: cfg, proc: proc, dbPath: filepath.Join(dataDir, "state.db")}
	res, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	// A clean stop, then the database's own invariants.
	if err := proc.Stop(time.Minute); err != nil {
		s.fail("stopping kinelite: %v", err)
	} else if rep, err := kinelite.Check(ctx, "sqlite://"+s.dbPath); err != nil {
		s.fail("kinelite check: %v", err)
	} else {
		s.stats.Check = rep.Summary()
		if !rep.OK() {
			s.fail("kinelite check: %s", rep.Summary())
		}
	}
	res.Failures = s.failures()
	res.Stats = s.stats
	if err := s.write(res); err != nil {
		return res, err
	}
	return res, nil
}

// soak is one run.
type soak struct {
	cfg    Config
	proc   *servers.Proc
	dbPath string
	clis   []*clientv3.Client
	ws     *watchSet

	mu    sync.Mutex
	fails []string
	stats Stats
}

// fail records a failure; the first 50 are kept.
func (s *soak) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) < 50 {
		s.fails = append(s.fails, msg)
		s.cfg.Logf("FAIL: %s", msg)
	}
	s.stats.FailureCount++
}

func (s *soak) failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.fails...)
	if n := s.stats.FailureCount - len(out); n > 0 {
		out = append(out, fmt.Sprintf("... and %d more", n))
	}
	return out
}

func (s *soak) run(ctx context.Context) (*Result, error) {
	for i := 0; i < 3; i++ {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.proc.Endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		s.clis = append(s.clis, cli)
	}
	startResp, err := s.clis[0].Get(ctx, "soak-start")
	if err != nil {
		return nil, err
	}
	start := startResp.Header.Revision + 1

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	// The watches outlive the load, to be checked at the end.
	watchCtx, cancelWatches := context.WithCancel(ctx)
	defer cancelWatches()
	ws := newWatchSet(s, start)
	ws.startAll(watchCtx)

	l := newLoad(s)
	var wg sync.WaitGroup
	l.start(runCtx, &wg)

	sm := newSampler(s, ws, l)
	began := time.Now()
	tick := time.NewTicker(s.cfg.SampleEvery)
	defer tick.Stop()
	deadline := time.NewTimer(s.cfg.Duration)
	defer deadline.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			cancelRun()
			wg.Wait()
			return nil, ctx.Err()
		case <-s.proc.Exited():
			s.fail("kinelite exited during the run (%v): %s", s.proc.ExitErr(), s.proc.LogTail(2000))
			break loop
		case <-deadline.C:
			break loop
		case <-tick.C:
			sm.sample(ctx, time.Since(began))
		}
	}
	cancelRun()
	wg.Wait()
	if s.proc.Alive() {
		// Every watch must reach the last revision, and then match.
		ws.finish(ctx)
	}
	cancelWatches()
	ws.wait()
	l.summarize(&s.stats)
	ws.summarize(&s.stats)

	res := &Result{Samples: sm.samples}
	res.Trends = trends(sm.samples, s.cfg.warmup())
	for _, t := range res.Trends {
		if t.Up {
			s.fail("%s trends upward: median %s in the second third of the samples after warm-up, %s in the last (tolerance %s)",
				t.Metric, t.format(t.Second), t.format(t.Last), t.tolerance())
		}
	}
	return res, nil
}
