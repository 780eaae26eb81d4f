package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/kinelite/kinelite/bench/internal/workload"
)

// Markdown renders the run: table of medians with ratios, targets, machine,
// servers, workloads and failures. chart, when not empty, is the chart's
// path relative to where the Markdown will live.
func (r *Run) Markdown(chart string) string {
	var b strings.Builder
	servers := r.serverNames()
	others := r.others()
	fmt.Fprintf(&b, "Medians over %d rounds", r.Rounds)
	fmt.Fprintf(&b, " (run %s → %s UTC).\n", r.Started.UTC().Format("2006-01-02 15:04"), r.Finished.UTC().Format("15:04"))
	fmt.Fprintf(&b, "↑: higher is better, ↓: lower is better. A ratio is %[1]s's median divided by the other server's; "+
		"**bold** ratios are where %[1]s is better. A value with `(n/m)` was measured in only n of m rounds.\n\n", r.subject())
	if chart != "" {
		fmt.Fprintf(&b, "Chart: [%s](%s)\n\n", chart, chart)
	}

	b.WriteString("| workload | metric | ")
	for _, s := range servers {
		fmt.Fprintf(&b, "%s | ", s)
	}
	for _, o := range others {
		fmt.Fprintf(&b, "%s/%s | ", r.subject(), o)
	}
	trimLine(&b)
	b.WriteString("\n|---|---|")
	for range len(servers) + len(others) {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	prev := ""
	for _, row := range r.Rows() {
		wl := row.Workload
		if wl == prev {
			wl = ""
		}
		prev = row.Workload
		fmt.Fprintf(&b, "| %s | %s | ", wl, metricLabel(row.Metric))
		for _, s := range servers {
			v, ok := row.Median[s]
			cell := "—"
			if ok {
				cell = formatValue(v)
				if row.N[s] < r.Rounds {
					cell += fmt.Sprintf(" (%d/%d)", row.N[s], r.Rounds)
				}
			} else if r.failed(row.Workload, s) {
				cell = "failed"
			}
			b.WriteString(cell + " | ")
		}
		for _, o := range others {
			q := row.Ratio(o)
			cell := "—"
			if !math.IsNaN(q) && !math.IsInf(q, 0) {
				cell = fmt.Sprintf("%.2f×", q)
				if adv := row.Advantage(o); !math.IsNaN(adv) && adv > 1.0 {
					cell = "**" + cell + "**"
				}
			}
			b.WriteString(cell + " | ")
		}
		trimLine(&b)
		b.WriteString("\n")
	}

	if len(others) > 0 {
		b.WriteString("\n### Targets of the bench issue\n\n")
		for _, t := range r.Targets() {
			mark := "❌"
			if t.Met {
				mark = "✅"
			}
			if t.Unknown {
				mark = "—"
			}
			fmt.Fprintf(&b, "- %s %s: %s\n", mark, t.Name, t.Detail)
		}
	}

	if f := r.Failures(); len(f) > 0 {
		b.WriteString("\n### Failures\n\n")
		for _, rec := range f {
			fmt.Fprintf(&b, "- round %d, %s on %s: %s\n", rec.Round, rec.Workload, rec.Server, oneLine(rec.Error, 400))
		}
	}
	var warns []Record
	for _, rec := range r.Records {
		if rec.Warning != "" {
			warns = append(warns, rec)
		}
	}
	if len(warns) > 0 || len(r.Notes) > 0 {
		b.WriteString("\n### Warnings\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, rec := range warns {
			fmt.Fprintf(&b, "- round %d, %s on %s: %s\n", rec.Round, rec.Workload, rec.Server, oneLine(rec.Warning, 400))
		}
	}

	b.WriteString("\n### Machine\n\n")
	m := r.Machine
	fmt.Fprintf(&b, "- CPU: %s, %d cores (shared by the server and the load generator)\n", m.CPU, m.Cores)
	fmt.Fprintf(&b, "- memory: %s; kernel %s; load average at start %s\n", m.MemoryGB, m.Kernel, m.LoadAvg)
	fmt.Fprintf(&b, "- disk: %s; fsync: %s\n", m.Disk, m.Fsync)
	fmt.Fprintf(&b, "- Go: %s (cgo %v); kinelite: %s\n", m.Go, m.Cgo, m.Kinelite)
	var mods []string
	for k, v := range m.Modules {
		mods = append(mods, k+" "+v)
	}
	sort.Strings(mods)
	fmt.Fprintf(&b, "- modules: %s\n", strings.Join(mods, ", "))
	fmt.Fprintf(&b, "- load generator: %s\n", m.LoadGen)

	b.WriteString("\n### Servers and durability\n\n")
	for _, s := range r.Servers {
		fmt.Fprintf(&b, "- **%s** (%s): %s\n", s.Name, s.Datastore, s.Durability)
	}
	b.WriteString("\n### Workloads\n\n")
	for _, w := range r.Workloads {
		fmt.Fprintf(&b, "- **%s**: %s\n", w.Name, w.Description)
	}
	b.WriteString("\nEvery workload runs against a fresh server process with a fresh data directory (the start-up " +
		"workload: a fresh copy of a database the server wrote itself). \"server CPU\" is the server process's " +
		"user+system CPU time (from /proc/PID/stat) during the measured part, \"server peak RSS\" its VmHWM " +
		"during the measured part (reset through /proc/PID/clear_refs when it begins). VmHWM counts the pages of " +
		"files the server maps, which the kernel can drop: etcd maps its bbolt file, and kinelite's SQLite read " +
		"connections map the database (mmap_size), so on a large database most of their RSS is the file. " +
		"\"server peak anon RSS\" is the peak of RssAnon, the memory the process itself holds, sampled every 100 ms. " +
		"Latencies are measured by the load generator, from request to response. The load generator shares the " +
		"machine's cores with the server: where it receives many events (watch-1000: 50,000 events/s), its own " +
		"CPU bounds the delivery latencies as much as the server does.\n")
	return b.String()
}

// trimLine drops the trailing space of the line being written.
func trimLine(b *strings.Builder) {
	s := b.String()
	if strings.HasSuffix(s, " ") {
		t := strings.TrimRight(s, " ")
		b.Reset()
		b.WriteString(t)
	}
}

func (r *Run) failed(wl, server string) bool {
	for _, rec := range r.Records {
		if rec.Workload == wl && rec.Server == server && rec.Error != "" {
			return true
		}
	}
	return false
}

func metricLabel(m workload.Metric) string {
	arrow := ""
	switch m.Better {
	case workload.Higher:
		arrow = " ↑"
	case workload.Lower:
		arrow = " ↓"
	}
	return fmt.Sprintf("%s (%s)%s", m.Name, m.Unit, arrow)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
