package harness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kinelite/kinelite/bench/internal/servers"
	"github.com/kinelite/kinelite/bench/internal/workload"
)

// pairJob runs a two-process workload: two processes of a Shared kind on
// one datastore (one data directory, hence one PostgreSQL database), the
// workload's Env.Clients connected to the first and Env.Peer to the second.
type pairJob struct{ w workload.Workload }

func (j pairJob) name() string                            { return j.w.Name() }
func (j pairJob) describe() string                        { return j.w.Describe() }
func (j pairJob) prepare(context.Context, *harness) error { return nil }
func (j pairJob) finish(*harness)                         {}

func (j pairJob) appliesTo(kind *servers.Kind) (bool, string) {
	if !kind.Shared {
		return false, "n/a: several processes cannot share its datastore"
	}
	return true, ""
}

// pairMeter meters both processes: CPU seconds and peaks are summed.
type pairMeter struct{ a, b *meter }

func (m pairMeter) begin() { m.a.begin(); m.b.begin() }
func (m pairMeter) end()   { m.a.end(); m.b.end() }

func (m pairMeter) resources() workload.Result {
	ra, rb := m.a.resources(), m.b.resources()
	if ra == nil || rb == nil || len(ra) != len(rb) {
		return nil
	}
	for i := range ra {
		ra[i].Value += rb[i].Value
	}
	return ra
}

func (j pairJob) run(ctx context.Context, h *harness, kind *servers.Kind, round int) (workload.Result, string, error) {
	dataDir := filepath.Join(h.cfg.WorkDir, fmt.Sprintf("r%d-%s-%s", round, j.name(), kind.Name))
	_ = kind.Store.Remove(dataDir)
	failed := true
	defer func() {
		if !failed || !h.cfg.KeepFailed {
			_ = kind.Store.Remove(dataDir)
		}
	}()
	var procs []*servers.Proc
	killAll := func() {
		for _, p := range procs {
			p.Kill()
		}
	}
	// One after the other: the first creates the schema.
	for range 2 {
		p, err := servers.Start(ctx, kind, servers.StartOptions{
			DataDir: dataDir, LogPath: h.logPath(kind.Name), Pprof: h.cfg.Profile, MaxRSS: h.maxRSS(),
		})
		if err != nil {
			killAll()
			return nil, "", err
		}
		procs = append(procs, p)
	}
	a, b := procs[0], procs[1]
	clientsA, err := dial(a.Endpoint, h.cfg.Conns)
	if err != nil {
		killAll()
		return nil, "", err
	}
	clientsB, err := dial(b.Endpoint, h.cfg.Conns)
	if err != nil {
		closeAll(clientsA)
		killAll()
		return nil, "", err
	}
	pf := time.Duration(h.cfg.ProfileSeconds) * time.Second
	m := pairMeter{
		a: &meter{proc: a, logf: h.logf, profileFor: pf},
		b: &meter{proc: b, logf: h.logf, profileFor: pf},
	}
	if h.cfg.Profile {
		m.a.profilePath = filepath.Join(h.outDir, "profiles", fmt.Sprintf("r%d-%s-%s-a.pprof", round, j.name(), kind.Name))
		m.b.profilePath = filepath.Join(h.outDir, "profiles", fmt.Sprintf("r%d-%s-%s-b.pprof", round, j.name(), kind.Name))
	}
	env := h.workloadEnv(j.name(), kind, dataDir, clientsA, m.begin, m.end)
	env.Peer = clientsB
	wctx, cancel := h.workloadContext(ctx, a, b)
	defer cancel()
	began := time.Now()
	res, err := j.w.Run(wctx, env)
	m.end()
	closeAll(clientsA)
	closeAll(clientsB)
	for _, p := range procs {
		if p.Alive() {
			continue
		}
		defer killAll()
		if why := p.Killed(); why != "" {
			return nil, "", fmt.Errorf("%s (during the workload, after %s)", why, time.Since(began).Round(time.Second))
		}
		return nil, "", fmt.Errorf("a server process exited during the workload (%v); its log ends: %s",
			p.ExitErr(), p.LogTail(3000))
	}
	if err != nil {
		for _, p := range procs {
			_ = p.Stop(time.Minute)
		}
		if wctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s: %w", h.cfg.Timeout, err)
		}
		return nil, "", err
	}
	res = append(res, m.resources()...)
	warning := joinWarn(m.a.warning, m.b.warning)
	var stopErrs []error
	for _, p := range procs {
		if err := p.Stop(time.Minute); err != nil {
			stopErrs = append(stopErrs, fmt.Errorf("%w; log: %s", err, p.LogTail(1000)))
		}
	}
	if err := errors.Join(stopErrs...); err != nil {
		warning = joinWarn(warning, err.Error())
	}
	failed = false
	return res, warning, nil
}
