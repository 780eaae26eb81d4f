package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite/bench/internal/servers"
	"github.com/kinelite/kinelite/bench/internal/workload"
)

// startupJob measures start-up on a large database: each server writes its
// own database once (prepare), then each round starts the server on a fresh
// copy and times it from process start to the first answered read.
type startupJob struct {
	sizes Startup
	// templates maps a server to its database, written in prepare.
	templates map[string]string
}

const startupPrefix = "/registry/bench/startup/"

func (j *startupJob) name() string { return "startup" }

func (j *startupJob) describe() string {
	return fmt.Sprintf("start the server on a copy of a database of %d rows (%d keys written %d times each, "+
		"by the server itself) and time it from process start to the first answered read; the copy is "+
		"fresh but the page cache is warm", j.sizes.Rows, j.sizes.Keys, j.times())
}

func (j *startupJob) times() int { return j.sizes.Rows / j.sizes.Keys }

// templateMark records what a template holds, so -reuse-startup-db can tell
// whether it fits.
type templateMark struct {
	Rows, Keys, ValueSize int
}

func (j *startupJob) prepare(ctx context.Context, h *harness) error {
	j.templates = map[string]string{}
	for _, kind := range h.kinds {
		dir := filepath.Join(h.cfg.WorkDir, "startup-template-"+kind.Name)
		mark := templateMark{Rows: j.sizes.Rows, Keys: j.sizes.Keys, ValueSize: h.cfg.ValueSize}
		markPath := dir + ".json"
		if h.cfg.ReuseStartup {
			var old templateMark
			if b, err := os.ReadFile(markPath); err == nil && json.Unmarshal(b, &old) == nil && old == mark {
				h.logf("startup: reusing the %s database in %s", kind.Name, dir)
				j.templates[kind.Name] = dir
				continue
			}
		}
		_ = os.Remove(markPath)
		_ = kind.Store.Remove(dir)
		began := time.Now()
		h.logf("startup: %s writes its %d-row database", kind.Name, j.sizes.Rows)
		if err := j.write(ctx, h, kind, dir); err != nil {
			return fmt.Errorf("startup: write the %s database: %w", kind.Name, err)
		}
		size, _ := kind.Store.Size(dir)
		h.logf("startup: %s database written in %s, %.0f MiB", kind.Name, time.Since(began).Round(time.Second),
			float64(size)/(1<<20))
		b, _ := json.Marshal(mark)
		if err := os.WriteFile(markPath, b, 0o644); err != nil {
			return err
		}
		j.templates[kind.Name] = dir
	}
	return nil
}

func (j *startupJob) write(ctx context.Context, h *harness, kind *servers.Kind, dir string) error {
	proc, err := servers.Start(ctx, kind, servers.StartOptions{DataDir: dir, LogPath: h.logPath(kind.Name), MaxRSS: h.maxRSS()})
	if err != nil {
		return err
	}
	clients, err := dial(proc.Endpoint, h.cfg.Conns)
	if err != nil {
		proc.Kill()
		return err
	}
	defer closeAll(clients)
	env := &workload.Env{
		Server: kind.Name, MultiOpTxn: kind.MultiOpTxn, Clients: clients, ValueSize: h.cfg.ValueSize,
		Logf: func(format string, args ...any) {
			h.logf("  startup/%s: %s", kind.Name, fmt.Sprintf(format, args...))
		},
	}
	keys := workload.KeyList(startupPrefix, j.sizes.Keys)
	if err := workload.Preload(ctx, env, keys, j.times()); err != nil {
		proc.Kill()
		return err
	}
	if err := checkCount(ctx, clients[0], j.sizes.Keys); err != nil {
		proc.Kill()
		return err
	}
	return proc.Stop(5 * time.Minute)
}

func checkCount(ctx context.Context, cli *clientv3.Client, want int) error {
	resp, err := cli.Get(ctx, startupPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if resp.Count != int64(want) {
		return fmt.Errorf("the database holds %d keys, want %d", resp.Count, want)
	}
	return nil
}

// finish removes the start-up databases, unless they are to be reused.
func (j *startupJob) finish(h *harness) {
	if h.cfg.ReuseStartup {
		return
	}
	for _, kind := range h.kinds {
		if dir, ok := j.templates[kind.Name]; ok {
			_ = kind.Store.Remove(dir)
			_ = os.Remove(dir + ".json")
		}
	}
}

func (j *startupJob) run(ctx context.Context, h *harness, kind *servers.Kind, round int) (workload.Result, string, error) {
	template, ok := j.templates[kind.Name]
	if !ok {
		return nil, "", errors.New("no start-up database")
	}
	dir := filepath.Join(h.cfg.WorkDir, fmt.Sprintf("r%d-startup-%s", round, kind.Name))
	_ = kind.Store.Remove(dir)
	defer kind.Store.Remove(dir)
	if err := kind.Store.Copy(template, dir); err != nil {
		return nil, "", err
	}
	began := time.Now()
	proc, err := servers.Start(ctx, kind, servers.StartOptions{
		DataDir: dir, LogPath: h.logPath(kind.Name), ReadyTimeout: h.cfg.Timeout, MaxRSS: h.maxRSS(),
	})
	if err != nil {
		return nil, "", err
	}
	clients, err := dial(proc.Endpoint, 1)
	if err != nil {
		proc.Kill()
		return nil, "", err
	}
	defer closeAll(clients)
	first := startupPrefix + fmt.Sprintf("%08d", 0)
	var took time.Duration
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := clients[0].Get(rctx, first, clientv3.WithLimit(1))
		cancel()
		if err == nil && len(resp.Kvs) == 1 {
			took = time.Since(began)
			break
		}
		if time.Since(began) > h.cfg.Timeout || ctx.Err() != nil || !proc.Alive() {
			proc.Kill()
			return nil, "", fmt.Errorf("no answered read after %s (last error %v): %s",
				time.Since(began).Round(time.Second), err, proc.LogTail(2000))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cpu, err1 := proc.CPUSeconds()
	peak, err2 := proc.PeakRSS()
	if err := errors.Join(err1, err2); err != nil {
		proc.Kill()
		return nil, "", err
	}
	if err := checkCount(ctx, clients[0], j.sizes.Keys); err != nil {
		proc.Kill()
		return nil, "", err
	}
	res := workload.Result{
		{Name: "start-up time", Unit: "s", Better: workload.Lower, Value: took.Seconds()},
		{Name: "server CPU", Unit: "s", Better: workload.Lower, Value: cpu},
		{Name: "server peak RSS", Unit: "MiB", Better: workload.Lower, Value: float64(peak) / (1 << 20)},
		{Name: "server peak anon RSS", Unit: "MiB", Better: workload.Lower, Value: float64(proc.PeakAnonRSS()) / (1 << 20)},
	}
	warning := ""
	if err := proc.Stop(time.Minute); err != nil {
		warning = err.Error()
	}
	return res, warning, nil
}
