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
	servers := []string{"kinelite"}
	if s := os.Getenv("BENCH_SMOKE_SERVERS"); s != "" {
		servers = strings.Split(s, ",")
	}
	smoke(t, servers)
}

// TestSmokePostgres runs every workload, the two-process ones included, at a
// tiny size against kinelite and kine on PostgreSQL, on the server named by
// $KINELITE_TEST_POSTGRES.
func TestSmokePostgres(t *testing.T) {
	if os.Getenv(servers.EnvPostgres) == "" {
		if os.Getenv("KINELITE_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatalf("PostgreSQL is required but $%s is empty", servers.EnvPostgres)
		}
		t.Skipf("SKIPPING the PostgreSQL smoke test (kinelite-pg, kine-pg): no PostgreSQL; set $%s "+
			"(e.g. postgres://postgres@127.0.0.1:5432/) to run it", servers.EnvPostgres)
	}
	smoke(t, []string{"kinelite-pg", "kine-pg"})
}

func smoke(t *testing.T, names []string) {
	cfg := Tiny()
	cfg.Servers = names
	cfg.WorkDir = t.TempDir()
	cfg.OutDir = t.TempDir()
	cfg.ResultsMD = ""
	cfg.Command = "smoke test"
	cfg.Logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run, out, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range run.Failures() {
		t.Errorf("round %d, %s on %s: %s", f.Round, f.Workload, f.Server, f.Error)
	}
	jobs, err := cfg.jobs()
	if err != nil {
		t.Fatal(err)
	}
	var wantRows []string
	for _, server := range cfg.Servers {
		kind, err := servers.Lookup(server)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			w := j.name()
			if sj, ok := j.(selectiveJob); ok {
				if ok, _ := sj.appliesTo(kind); !ok {
					continue
				}
			}
			wantRows = append(wantRows, w)
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
	for _, w := range wantRows {
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

func TestSplitResults(t *testing.T) {
	for _, c := range []struct{ in, main, pg string }{
		{"# r\n\ntable\n", "# r\n\ntable\n", ""},
		{"# r\n\ntable\n\n## PostgreSQL\n\npg\n", "# r\n\ntable\n\n", "## PostgreSQL\n\npg\n"},
		{"## PostgreSQL\n\npg\n", "", "## PostgreSQL\n\npg\n"},
	} {
		m, p := splitResults(c.in)
		if m != c.main || p != c.pg {
			t.Errorf("splitResults(%q) = %q, %q; want %q, %q", c.in, m, p, c.main, c.pg)
		}
	}
}
