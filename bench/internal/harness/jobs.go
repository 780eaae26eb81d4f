package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kinelite/kinelite/bench/internal/servers"
	"github.com/kinelite/kinelite/bench/internal/workload"
)

// job is one workload as the harness runs it against one server.
type job interface {
	name() string
	describe() string
	// prepare runs once before the rounds (the start-up databases).
	prepare(ctx context.Context, h *harness) error
	run(ctx context.Context, h *harness, kind *servers.Kind, round int) (res workload.Result, warning string, err error)
	// finish runs once after the rounds.
	finish(h *harness)
}

// selectiveJob is a job that runs on some kinds of server only; on the
// others the harness records nothing (the table shows —).
type selectiveJob interface {
	job
	appliesTo(kind *servers.Kind) (ok bool, why string)
}

// jobs returns the selected workloads, in the order they run in a round.
func (c *Config) jobs() ([]job, error) {
	all := []job{
		clientJob{c.Create}, clientJob{c.Update}, clientJob{c.Get}, clientJob{c.List},
	}
	for _, n := range c.Watchers {
		w := c.Watch
		w.Watchers = n
		all = append(all, clientJob{w})
	}
	all = append(all, clientJob{c.CatchUp}, clientJob{c.Progress}, clientJob{c.Compaction},
		&startupJob{sizes: c.Startup},
		pairJob{workload.TwoProcessWrites{Create: c.Create, Update: c.Update}}, pairJob{c.CrossWatch})
	if len(c.Workloads) == 0 {
		return all, nil
	}
	byName := map[string]job{}
	for _, j := range all {
		byName[j.name()] = j
	}
	var out []job
	for _, n := range c.Workloads {
		j, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("harness: unknown workload %q (known: %v)", n, allWorkloadNames(c))
		}
		out = append(out, j)
	}
	return out, nil
}

func allWorkloadNames(c *Config) []string {
	cc := *c
	cc.Workloads = nil
	js, _ := cc.jobs()
	var names []string
	for _, j := range js {
		names = append(names, j.name())
	}
	return names
}

// dial opens n client connections to endpoint.
func dial(endpoint string, n int) ([]*clientv3.Client, error) {
	var clients []*clientv3.Client
	for range n {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{endpoint},
			DialTimeout: 10 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			closeAll(clients)
			return nil, err
		}
		clients = append(clients, cli)
	}
	return clients, nil
}

func closeAll(clients []*clientv3.Client) {
	for _, c := range clients {
		_ = c.Close()
	}
}

// meter measures a server's CPU time and peak RSS over a workload's measured
// part, and profiles it when asked.
type meter struct {
	proc        *servers.Proc
	profilePath string
	profileFor  time.Duration
	logf        func(string, ...any)

	mu        sync.Mutex
	began     bool
	ended     bool
	cpu0      float64
	cpu       float64
	peak      int64
	peakAnon  int64
	warning   string
	profilewg sync.WaitGroup
}

func (m *meter) begin() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.began {
		return
	}
	m.began = true
	var err error
	if m.cpu0, err = m.proc.CPUSeconds(); err != nil {
		m.warning = "cpu: " + err.Error()
	}
	if err := m.proc.ResetPeakRSS(); err != nil {
		m.warning = "peak RSS not reset, so it covers the preload too: " + err.Error()
	}
	if m.profilePath != "" {
		m.profilewg.Add(1)
		go func() {
			defer m.profilewg.Done()
			if err := m.proc.Profile(context.Background(), m.profileFor, m.profilePath); err != nil {
				m.logf("profile: %v", err)
			}
		}()
	}
}

func (m *meter) end() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.began || m.ended {
		return
	}
	m.ended = true
	cpu, err := m.proc.CPUSeconds()
	if err != nil {
		m.warning = "cpu: " + err.Error()
		return
	}
	m.cpu = cpu - m.cpu0
	if m.peak, err = m.proc.PeakRSS(); err != nil {
		m.warning = "rss: " + err.Error()
	}
	m.peakAnon = m.proc.PeakAnonRSS()
	if m.profilePath != "" {
		heap := strings.TrimSuffix(m.profilePath, ".pprof") + ".heap.pprof"
		if err := m.proc.HeapProfile(context.Background(), heap); err != nil {
			m.logf("heap profile: %v", err)
		}
	}
}

// resources returns the meter's metrics.
func (m *meter) resources() workload.Result {
	m.profilewg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ended {
		return nil
	}
	return workload.Result{
		{Name: "server CPU", Unit: "s", Better: workload.Lower, Value: m.cpu},
		{Name: "server peak RSS", Unit: "MiB", Better: workload.Lower, Value: float64(m.peak) / (1 << 20)},
		{Name: "server peak anon RSS", Unit: "MiB", Better: workload.Lower, Value: float64(m.peakAnon) / (1 << 20)},
	}
}

// clientJob runs a workload.Workload on a fresh server.
type clientJob struct{ w workload.Workload }

func (j clientJob) name() string                            { return j.w.Name() }
func (j clientJob) describe() string                        { return j.w.Describe() }
func (j clientJob) prepare(context.Context, *harness) error { return nil }
func (j clientJob) finish(*harness)                         {}

func (j clientJob) run(ctx context.Context, h *harness, kind *servers.Kind, round int) (workload.Result, string, error) {
	dataDir := filepath.Join(h.cfg.WorkDir, fmt.Sprintf("r%d-%s-%s", round, j.name(), kind.Name))
	_ = kind.Store.Remove(dataDir)
	proc, err := servers.Start(ctx, kind, servers.StartOptions{
		DataDir: dataDir, LogPath: h.logPath(kind.Name), Pprof: h.cfg.Profile, MaxRSS: h.maxRSS(),
	})
	if err != nil {
		return nil, "", err
	}
	failed := true
	defer func() {
		if !failed || !h.cfg.KeepFailed {
			_ = kind.Store.Remove(dataDir)
		}
	}()
	clients, err := dial(proc.Endpoint, h.cfg.Conns)
	if err != nil {
		proc.Kill()
		return nil, "", err
	}
	m := &meter{proc: proc, logf: h.logf, profileFor: time.Duration(h.cfg.ProfileSeconds) * time.Second}
	if h.cfg.Profile {
		m.profilePath = filepath.Join(h.outDir, "profiles", fmt.Sprintf("r%d-%s-%s.pprof", round, j.name(), kind.Name))
	}
	env := h.workloadEnv(j.name(), kind, dataDir, clients, m.begin, m.end)
	wctx, cancel := h.workloadContext(ctx, proc)
	defer cancel()
	began := time.Now()
	res, err := j.w.Run(wctx, env)
	m.end()
	closeAll(clients)
	if !proc.Alive() {
		if why := proc.Killed(); why != "" {
			return nil, "", fmt.Errorf("%s (during the workload, after %s)", why, time.Since(began).Round(time.Second))
		}
		return nil, "", fmt.Errorf("the server exited during the workload (%v); its log ends: %s",
			proc.ExitErr(), proc.LogTail(3000))
	}
	if err != nil {
		_ = proc.Stop(time.Minute)
		if wctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s: %w", h.cfg.Timeout, err)
		}
		return nil, "", err
	}
	res = append(res, m.resources()...)
	warning := m.warning
	if err := proc.Stop(time.Minute); err != nil {
		warning = joinWarn(warning, err.Error()+"; log: "+proc.LogTail(1000))
	}
	failed = false
	return res, warning, nil
}

// workloadEnv is what a workload named name gets on kind: clients, the
// meter's begin and end, the database size and a log prefixed with both names.
func (h *harness) workloadEnv(name string, kind *servers.Kind, dataDir string, clients []*clientv3.Client, begin, end func()) *workload.Env {
	return &workload.Env{
		Server:     kind.Name,
		MultiOpTxn: kind.MultiOpTxn,
		Clients:    clients,
		ValueSize:  h.cfg.ValueSize,
		Begin:      begin,
		End:        end,
		DBSize:     func() (int64, error) { return kind.Store.Size(dataDir) },
		Logf: func(format string, args ...any) {
			h.logf("  %s/%s: %s", name, kind.Name, fmt.Sprintf(format, args...))
		},
	}
}

// workloadContext bounds a workload by the configured timeout and ends it at
// once when one of the server processes exits.
func (h *harness) workloadContext(ctx context.Context, procs ...*servers.Proc) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	for _, p := range procs {
		go func() {
			select {
			case <-p.Exited():
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	return wctx, cancel
}

func joinWarn(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func removeAll(dir string) { _ = os.RemoveAll(dir) }
