package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kinelite/kinelite/bench/internal/servers"
)

func TestMain(m *testing.M) {
	// The harness starts servers by re-executing its binary: here, this
	// test binary.
	servers.MaybeServe()
	os.Exit(m.Run())
}

// TestSmoke runs every workload at a tiny size against kinelite, so that CI
// exercises the whole harness (server processes, workloads, report) without
// benchmarking anything.
func TestSmoke(t *testing.T) {
	cfg := Tiny()
	cfg.WorkDir = t.TempDir()
	cfg.OutDir = t.TempDir()
	cfg.ResultsMD = ""
	cfg.Command = "smoke test"
	cfg.Logf = t.Logf
	if s := os.Getenv("BENCH_SMOKE_SERVERS"); s != "" {
		cfg.Servers = strings.Split(s, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run, out, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range run.Failures() {
		t.Errorf("round %d, %s on %s: %s", f.Round, f.Workload, f.Server, f.Error)
	}
	names := allWorkloadNames(&cfg)
	for _, server := range cfg.Servers {
		for _, w := range names {
			found := false
			for _, rec := range run.Records {
				if rec.Workload == w && rec.Server == server && rec.Error == "" && len(rec.Metrics) > 0 {
					found = true
				}
			}
			if !found {
				t.Errorf("%s on %s: no result", w, server)
			}
		}
	}
	md, err := os.ReadFile(out.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range names {
		if !strings.Contains(string(md), "| "+w+" |") {
			t.Errorf("results.md has no row for %s", w)
		}
	}
	svg, err := os.ReadFile(out.Chart)
	if err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Errorf("chart.svg: %v", err)
	}
	if t.Failed() {
		t.Logf("results.md:\n%s", md)
	}
}
