package report

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinelite/kinelite/bench/internal/workload"
)

func rec(round int, server string, throughput, p99 float64) Record {
	return Record{Round: round, Workload: "create", Server: server, Metrics: workload.Result{
		{Name: "throughput", Unit: "ops/s", Better: workload.Higher, Value: throughput},
		{Name: "p99", Unit: "ms", Better: workload.Lower, Value: p99},
		{Name: "errors", Unit: "count", Better: workload.Lower, HideIfZero: true},
	}}
}

func testRun() *Run {
	r := &Run{
		Rounds:    3,
		Servers:   []ServerInfo{{Name: "etcd"}, {Name: "kine"}, {Name: "kinelite"}},
		Workloads: []WorkloadInfo{{Name: "create"}},
	}
	for round := 1; round <= 3; round++ {
		r.Records = append(r.Records,
			rec(round, "etcd", 1000*float64(round), 10),
			rec(round, "kine", 100, 100),
			rec(round, "kinelite", 3000, math.NaN()))
	}
	r.Records[5].Metrics = nil
	r.Records[5].Error = "boom"
	return r
}

func TestRowsAndRatios(t *testing.T) {
	rows := testRun().Rows()
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2 (the all-zero counter hidden)", len(rows))
	}
	thr := rows[0]
	if thr.Median["etcd"] != 2000 || thr.Median["kinelite"] != 3000 || thr.N["kinelite"] != 2 {
		t.Errorf("medians %v, n %v", thr.Median, thr.N)
	}
	if q := thr.Ratio("etcd"); q != 1.5 {
		t.Errorf("ratio %v, want 1.5", q)
	}
	if a := rows[1].Advantage("kine"); !math.IsNaN(a) {
		t.Errorf("advantage with no kinelite p99: %v, want NaN", a)
	}
}

func TestOutputs(t *testing.T) {
	r := testRun()
	md := r.Markdown("chart.svg")
	for _, want := range []string{"| create | throughput (ops/s) ↑ | 2000 | 100 | 3000 (2/3) | **1.50×** | **30.00×** |",
		"creates ≥ 1.0× etcd", "round 2, create on kinelite: boom"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if svg := r.SVG(); !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "</svg>") {
		t.Errorf("bad svg")
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	var back Run
	b, _ := json.Marshal(r)
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if v := back.Records[2].Metrics[1].Value; !math.IsNaN(v) {
		t.Errorf("NaN came back as %v", v)
	}
}

func TestSharedSubject(t *testing.T) {
	r := &Run{
		Rounds:    1,
		Subject:   "kinelite-pg",
		Servers:   []ServerInfo{{Name: "kinelite-pg"}, {Name: "kine-pg"}, {Name: "etcd"}},
		Workloads: []WorkloadInfo{{Name: "create"}, {Name: workload.CrossWatchName}},
	}
	r.Records = append(r.Records, rec(1, "kinelite-pg", 3000, 10), rec(1, "kine-pg", 500, 100), rec(1, "etcd", 1000, 10))
	for _, s := range []struct {
		server string
		p99    float64
	}{{"kinelite-pg", 20}, {"kine-pg", 1500}} {
		r.Records = append(r.Records, Record{Round: 1, Workload: workload.CrossWatchName, Server: s.server,
			Metrics: workload.Result{{Name: "delivery p99", Unit: "ms", Better: workload.Lower, Value: s.p99}}})
	}
	rows := r.Rows()
	if q := rows[0].Ratio("kine-pg"); q != 6 {
		t.Errorf("create throughput kinelite-pg/kine-pg = %v, want 6", q)
	}
	md := r.Markdown("")
	for _, want := range []string{"| kinelite-pg/kine-pg | kinelite-pg/etcd |", "**6.00×**", "✅ every workload ≥ 3× kine-pg",
		"✅ cross-process watch delivery p99 < 50 ms"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
