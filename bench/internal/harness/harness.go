package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kinelite/kinelite/bench/internal/report"
	"github.com/kinelite/kinelite/bench/internal/servers"
	"github.com/kinelite/kinelite/bench/internal/workload"
)

// harness is one run in progress.
type harness struct {
	cfg    Config
	kinds  []*servers.Kind
	jobs   []job
	outDir string
	began  time.Time
	logMu  sync.Mutex
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if h.cfg.Logf != nil {
		h.cfg.Logf("%s", msg)
		return
	}
	fmt.Fprintf(os.Stderr, "[%7s] %s\n", time.Since(h.began).Round(time.Second), msg)
}

func (h *harness) maxRSS() int64 { return h.cfg.MaxServerRSSMiB << 20 }

func (h *harness) logPath(server string) string {
	return filepath.Join(h.outDir, "logs", server+".log")
}

// Outputs are the files a run wrote.
type Outputs struct {
	Dir      string
	JSON     string
	Markdown string
	Chart    string
}

// Run runs the benchmark and writes its results. It returns the run even
// when ctx ends early (the results then cover what finished).
func Run(ctx context.Context, cfg Config) (*report.Run, Outputs, error) {
	if err := cfg.finish(); err != nil {
		return nil, Outputs{}, err
	}
	h := &harness{cfg: cfg, began: time.Now()}
	if cfg.Postgres != "" {
		servers.SetPostgres(cfg.Postgres)
	}
	for _, name := range cfg.Servers {
		k, err := servers.Lookup(name)
		if err != nil {
			return nil, Outputs{}, err
		}
		h.kinds = append(h.kinds, k)
	}
	if len(h.kinds) == 0 {
		return nil, Outputs{}, fmt.Errorf("harness: no server selected")
	}
	jobs, err := cfg.jobs()
	if err != nil {
		return nil, Outputs{}, err
	}
	h.jobs = jobs
	stamp := h.began.UTC().Format("2006-01-02T15-04-05Z")
	h.outDir = filepath.Join(cfg.OutDir, stamp)
	for _, d := range []string{h.outDir, filepath.Join(h.outDir, "logs"), cfg.WorkDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, Outputs{}, err
		}
	}
	if cfg.Profile {
		if err := os.MkdirAll(filepath.Join(h.outDir, "profiles"), 0o755); err != nil {
			return nil, Outputs{}, err
		}
	}

	run := &report.Run{
		Subject: subject(cfg.Servers),
		Command: cfg.Command,
		Started: h.began.UTC(),
		Rounds:  cfg.Rounds,
		Machine: report.Describe(cfg.WorkDir, fmt.Sprintf("one process (client/v3), %d connections per server, "+
			"%d-byte values; servers run one at a time, each in its own process on loopback", cfg.Conns, cfg.ValueSize)),
	}
	for _, k := range h.kinds {
		run.Servers = append(run.Servers, report.ServerInfo{Name: k.Name, Datastore: k.Store.Name(), Durability: k.Durability})
	}
	for _, j := range jobs {
		run.Workloads = append(run.Workloads, report.WorkloadInfo{Name: j.name(), Description: j.describe()})
	}
	h.logf("results go to %s; servers: %s; workloads: %d; rounds: %d", h.outDir, strings.Join(cfg.Servers, ","),
		len(jobs), cfg.Rounds)

	prepared := map[string]bool{}
	for _, j := range jobs {
		if err := j.prepare(ctx, h); err != nil {
			h.logf("%s: prepare failed: %v", j.name(), err)
			run.Notes = append(run.Notes, fmt.Sprintf("%s could not be prepared: %v", j.name(), err))
			continue
		}
		prepared[j.name()] = true
	}

rounds:
	for round := 1; round <= cfg.Rounds; round++ {
		for _, j := range jobs {
			for i := range h.kinds {
				// Rotate the order each round so that drift in the machine
				// falls on every server alike.
				kind := h.kinds[(i+round-1)%len(h.kinds)]
				if ctx.Err() != nil {
					run.Notes = append(run.Notes, "interrupted: the run stopped before its end")
					break rounds
				}
				if sj, ok := j.(selectiveJob); ok {
					if ok, why := sj.appliesTo(kind); !ok {
						if round == 1 {
							h.logf("%s on %s: %s", j.name(), kind.Name, why)
						}
						continue
					}
				}
				rec := report.Record{Round: round, Workload: j.name(), Server: kind.Name}
				if !prepared[j.name()] {
					rec.Error = "not prepared"
					run.Records = append(run.Records, rec)
					continue
				}
				h.logf("round %d/%d: %s on %s", round, cfg.Rounds, j.name(), kind.Name)
				t := time.Now()
				res, warn, err := j.run(ctx, h, kind, round)
				rec.Seconds = time.Since(t).Seconds()
				rec.Metrics, rec.Warning = res, warn
				if err != nil {
					rec.Error = err.Error()
					h.logf("  FAILED: %v", err)
				} else {
					h.logf("  %s", summary(res))
				}
				if warn != "" {
					h.logf("  warning: %s", warn)
				}
				run.Records = append(run.Records, rec)
			}
		}
	}
	for _, j := range jobs {
		j.finish(h)
	}
	run.Finished = time.Now().UTC()
	out, err := h.write(run)
	return run, out, err
}

// subject picks the server the ratios are about: kinelite when it runs,
// else the first kinelite variant (kinelite-pg).
func subject(names []string) string {
	for _, n := range names {
		if n == report.Subject {
			return ""
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, report.Subject) {
			return n
		}
	}
	return ""
}

// Render rewrites a finished run's results.md and chart.svg, and the
// results Markdown file when cfg.ResultsMD is set, from its results.json
// (after a change to the report).
func Render(cfg Config, resultsJSON string) (Outputs, error) {
	run, err := report.ReadJSON(resultsJSON)
	if err != nil {
		return Outputs{}, err
	}
	h := &harness{cfg: cfg, outDir: filepath.Dir(resultsJSON)}
	return h.write(run)
}

func summary(res workload.Result) string {
	var parts []string
	for _, m := range res {
		parts = append(parts, fmt.Sprintf("%s=%.4g%s", m.Name, m.Value, unitSuffix(m.Unit)))
	}
	return strings.Join(parts, " ")
}

func unitSuffix(u string) string {
	if u == "count" || u == "ratio" {
		return ""
	}
	return u
}

// write writes results.json, results.md and chart.svg into the run's
// directory and, when configured, the results Markdown file.
func (h *harness) write(run *report.Run) (Outputs, error) {
	out := Outputs{
		Dir:      h.outDir,
		JSON:     filepath.Join(h.outDir, "results.json"),
		Markdown: filepath.Join(h.outDir, "results.md"),
		Chart:    filepath.Join(h.outDir, "chart.svg"),
	}
	if err := run.WriteJSON(out.JSON); err != nil {
		return out, err
	}
	if err := os.WriteFile(out.Chart, []byte(run.SVG()), 0o644); err != nil {
		return out, err
	}
	md := "# kinelite benchmark run\n\nCommand (in `bench/`):\n\n    " + run.Command + "\n\n" + run.Markdown("chart.svg")
	if err := os.WriteFile(out.Markdown, []byte(md), 0o644); err != nil {
		return out, err
	}
	if h.cfg.ResultsMD != "" {
		rel, err := filepath.Rel(filepath.Dir(h.cfg.ResultsMD), out.Chart)
		if err != nil {
			rel = out.Chart
		}
		dirRel, _ := filepath.Rel(filepath.Dir(h.cfg.ResultsMD), out.Dir)
		raw := "[" + filepath.ToSlash(dirRel) + "/results.json](" + filepath.ToSlash(dirRel) + "/results.json)"
		old, _ := os.ReadFile(h.cfg.ResultsMD)
		main, pg := splitResults(string(old))
		if run.Subject == "" {
			main = "# kinelite benchmark results\n\n" +
				"The latest full run of the side-by-side benchmark (kinelite against etcd and kine). " +
				"Every change that claims a speed-up refreshes this file; raw numbers of every round are in " +
				raw + ".\n\n" +
				"Produced by (in `bench/`):\n\n    " + run.Command + "\n\n" + run.Markdown(filepath.ToSlash(rel))
		} else {
			pg = pgHeading + "\n\n" +
				"The latest run on PostgreSQL: " + run.Subject + " against kine on the same PostgreSQL server and etcd, " +
				"including the two-process workloads (write-2proc, watch-cross), which run only on the servers " +
				"whose processes can share one database. Raw numbers of every round are in " + raw + ".\n\n" +
				"Produced by (in `bench/`):\n\n    " + run.Command + "\n\n" + run.Markdown(filepath.ToSlash(rel))
		}
		md := strings.TrimRight(main, "\n") + "\n"
		if pg != "" {
			md += "\n" + strings.TrimRight(pg, "\n") + "\n"
		}
		if err := os.WriteFile(h.cfg.ResultsMD, []byte(md), 0o644); err != nil {
			return out, err
		}
	}
	return out, nil
}

// pgHeading starts the PostgreSQL section of the results file, which a run
// on SQLite keeps and a run on PostgreSQL rewrites.
const pgHeading = "## PostgreSQL"

// splitResults splits a results file into its main part and its PostgreSQL
// section (from pgHeading to the end).
func splitResults(s string) (main, pg string) {
	if strings.HasPrefix(s, pgHeading+"\n") {
		return "", s
	}
	if i := strings.Index(s, "\n"+pgHeading+"\n"); i >= 0 {
		return s[:i+1], s[i+1:]
	}
	return s, ""
}
