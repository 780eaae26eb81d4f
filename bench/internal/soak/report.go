package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// write saves samples.csv and results.md in OutDir.
func (s *soak) write(res *Result) error {
	var csv strings.Builder
	csv.WriteString("seconds,rss_bytes,goroutines,open_files,db_bytes,wal_bytes,watch_lag_p99_ms,write_p99_ms,writes,revision,error\n")
	for _, x := range res.Samples {
		fmt.Fprintf(&csv, "%d,%d,%d,%d,%d,%d,%.2f,%.2f,%d,%d,%q\n", int64(x.At/time.Second), x.RSS, x.Goroutines, x.FDs,
			x.DB, x.WAL, x.LagP99, x.WriteP99, x.Writes, x.Revision, x.Err)
	}
	res.CSV = filepath.Join(s.cfg.OutDir, "samples.csv")
	if err := os.WriteFile(res.CSV, []byte(csv.String()), 0o644); err != nil {
		return err
	}

	c, st := s.cfg, res.Stats
	var md strings.Builder
	verdict := "**PASSED**"
	if !res.Passed() {
		verdict = fmt.Sprintf("**FAILED** (%d failures)", st.FailureCount)
	}
	fmt.Fprintf(&md, "# kinelite soak: %s\n\n", verdict)
	fmt.Fprintf(&md, "`%s`, %s, on %s.\n\n", c.Command, time.Now().UTC().Format(time.RFC3339), machine())
	fmt.Fprintf(&md, "Load for %s: %d writes/s paced over %d writers (creates, updates with conflicts, deletes, leased events with a %d s TTL), "+
		"a target of %d live keys, values of about %d bytes, a paginated list (limit 500) every %s, the apiserver's compaction every %s; "+
		"%d prefix watches plus one complete watch on %d streams, RequestWatchProgress every %s, each watch resumed from its last revision about every %s. "+
		"kinelite with its defaults (SQLite, fsync per commit). Warm-up: %s.\n\n",
		c.Duration, c.WritesPerSec, c.Writers, c.LeaseTTL, c.Keys, c.ValueBytes, c.ListEvery, c.CompactEvery,
		c.Watches, c.Streams, c.ProgressEvery, c.RewatchEvery, c.warmup())
	if len(res.Samples) > 0 {
		first, last := res.Samples[0], res.Samples[len(res.Samples)-1]
		md.WriteString("| | first sample | last sample |\n| --- | --- | --- |\n")
		row := func(name string, f func(Sample) string) {
			fmt.Fprintf(&md, "| %s | %s | %s |\n", name, f(first), f(last))
		}
		row("time", func(x Sample) string { return x.At.String() })
		row("RSS", func(x Sample) string { return fmt.Sprintf("%.1f MiB", mib(x.RSS)) })
		row("goroutines", func(x Sample) string { return fmt.Sprint(x.Goroutines) })
		row("open files", func(x Sample) string { return fmt.Sprint(x.FDs) })
		row("database", func(x Sample) string { return fmt.Sprintf("%.1f MiB", mib(x.DB)) })
		row("WAL", func(x Sample) string { return fmt.Sprintf("%.1f MiB", mib(x.WAL)) })
		row("watch lag p99", func(x Sample) string { return fmt.Sprintf("%.1f ms", x.LagP99) })
		row("write p99", func(x Sample) string { return fmt.Sprintf("%.1f ms", x.WriteP99) })
		row("revision", func(x Sample) string { return fmt.Sprint(x.Revision) })
		md.WriteString("\n")
	}
	if len(res.Trends) == 0 {
		fmt.Fprintf(&md, "Trend test: not run (fewer than %d samples after the warm-up).\n\n", minTrendSamples)
	} else {
		md.WriteString("Trend test (median of the last third of the samples after warm-up against the second third):\n\n")
		md.WriteString("| metric | second third | last third | tolerance | verdict |\n| --- | --- | --- | --- | --- |\n")
		for _, t := range res.Trends {
			v := "flat"
			if t.Up {
				v = "**UP**"
			}
			fmt.Fprintf(&md, "| %s | %s | %s | %s | %s |\n", t.Metric, t.format(t.Second), t.format(t.Last), t.tolerance(), v)
		}
		md.WriteString("\n")
	}
	fmt.Fprintf(&md, "Totals: %d writes (%d creates, %d updates, %d deletes, %d leased events; %d conflicts), %d paced writes dropped behind busy writers, "+
		"%d lists in %d pages, %d compactions (compact revision %d), %d leases, %d events expired, %d revisions, %d live keys at the end; "+
		"%d watches received %d events and %d progress notifications, and were resumed %d times.\n\n",
		st.Writes, st.Creates, st.Updates, st.Deletes, st.EventCreates, st.Conflicts, st.Behind,
		st.Lists, st.ListPages, st.Compactions, st.CompactRevision, st.Leases, st.ExpiredEvents, st.Revisions, st.LiveKeys,
		st.Watches, st.WatchEvents, st.ProgressNotifies, st.Rewatches)
	if st.Check != "" {
		fmt.Fprintf(&md, "`kinelite check` after a clean stop: %s\n\n", st.Check)
	}
	if len(res.Failures) > 0 {
		md.WriteString("Failures:\n\n")
		for _, f := range res.Failures {
			fmt.Fprintf(&md, "- %s\n", f)
		}
		md.WriteString("\n")
	}
	md.WriteString("Every sample is in `samples.csv`; the server's log in `kinelite.log`.\n")
	res.Markdown = filepath.Join(s.cfg.OutDir, "results.md")
	return os.WriteFile(res.Markdown, []byte(md.String()), 0o644)
}

// machine describes the host in a few words.
func machine() string {
	cpus := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := strings.Count(string(b), "\nprocessor") + 1
		model := ""
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		cpus = fmt.Sprintf("%d × %s", n, model)
	}
	return "Linux, " + cpus
}
