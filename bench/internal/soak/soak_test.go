package soak

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kinelite/kinelite/bench/internal/servers"
)

func TestMain(m *testing.M) {
	// Run starts kinelite by re-executing its binary: here, this test
	// binary.
	servers.MaybeServe()
	os.Exit(m.Run())
}

// TestSmoke runs the soak for a few seconds at a small size: the load, the
// watches and their checks, the samples and the report, without a trend
// verdict (too few samples).
func TestSmoke(t *testing.T) {
	cfg := Default()
	cfg.Duration = 6 * time.Second
	cfg.SampleEvery = time.Second
	cfg.CompactEvery = 2 * time.Second
	cfg.ListEvery = 500 * time.Millisecond
	cfg.ProgressEvery = 300 * time.Millisecond
	cfg.RewatchEvery = 2 * time.Second
	cfg.LeaseEvery = time.Second
	cfg.LeaseTTL = 2
	cfg.WritesPerSec = 100
	cfg.Writers = 4
	cfg.Keys = 100
	cfg.ValueBytes = 200
	cfg.Watches = 24
	cfg.Streams = 4
	cfg.Namespaces = 3
	cfg.WorkDir = t.TempDir()
	cfg.OutDir = t.TempDir()
	cfg.Command = "smoke test"
	cfg.Logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	st := res.Stats
	if st.Creates == 0 || st.Updates == 0 || st.Deletes == 0 || st.EventCreates == 0 || st.Lists == 0 || st.WatchEvents == 0 {
		t.Errorf("the load did not do everything: %+v", st)
	}
	if len(res.Samples) < 3 {
		t.Errorf("%d samples, want at least 3", len(res.Samples))
	}
	for _, x := range res.Samples {
		if x.Err != "" || x.RSS == 0 || x.Goroutines == 0 || x.FDs == 0 || x.DB == 0 {
			t.Errorf("sample at %s is incomplete: %+v", x.At, x)
		}
	}
	md, err := os.ReadFile(res.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "PASSED") || !strings.Contains(string(md), "kinelite check") {
		t.Errorf("results.md:\n%s", md)
	}
	if _, err := os.Stat(res.CSV); err != nil {
		t.Error(err)
	}
}

// TestTrends checks the trend test on made-up samples.
func TestTrends(t *testing.T) {
	mk := func(n int, f func(i int) Sample) []Sample {
		var out []Sample
		for i := 0; i < n; i++ {
			x := f(i)
			x.At = time.Duration(i+1) * 10 * time.Second
			out = append(out, x)
		}
		return out
	}
	flat := mk(30, func(i int) Sample {
		return Sample{RSS: 100 << 20, Goroutines: 200 + int64(i%3), FDs: 40, DB: 50 << 20, WAL: int64(i%4) << 20, LagP99: 5, WriteP99: 10 + float64(i%5)}
	})
	for _, tr := range trends(flat, 30*time.Second) {
		if tr.Up {
			t.Errorf("flat samples: %s trends up (%v -> %v)", tr.Metric, tr.Second, tr.Last)
		}
	}
	leak := mk(30, func(i int) Sample {
		return Sample{RSS: int64(100+5*i) << 20, Goroutines: 200 + 5*int64(i), FDs: 40 + int64(i)}
	})
	up := map[string]bool{}
	for _, tr := range trends(leak, 30*time.Second) {
		up[tr.Metric] = tr.Up
	}
	if !up["RSS"] || !up["goroutines"] || !up["open files"] || up["database size"] {
		t.Errorf("leaking samples: verdicts %v", up)
	}
	if got := trends(flat[:10], 30*time.Second); got != nil {
		t.Errorf("7 samples after warm-up made a verdict: %v", got)
	}
}
