// Package harness runs the benchmark: every selected workload against every
// selected server, one server process at a time, over several rounds in
// which the servers take turns in a rotating order, and writes the results.
package harness

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kinelite/kinelite/bench/internal/servers"
	"github.com/kinelite/kinelite/bench/internal/workload"
)

// Config is one benchmark run.
type Config struct {
	Servers   []string
	Workloads []string // empty: all
	Rounds    int
	// WorkDir holds the servers' data directories while they run.
	WorkDir string
	// OutDir is where the run's directory (named after its start time) is
	// created.
	OutDir string
	// ResultsMD, when set, is rewritten with the run's table.
	ResultsMD string
	// Command is the command line recorded with the results.
	Command string

	Conns     int
	ValueSize int
	// Timeout bounds one workload on one server.
	Timeout time.Duration
	// Profile collects a CPU profile of each server during each measured
	// part (its first ProfileSeconds) and a heap profile at its end, into
	// the run's profiles/ directory.
	Profile        bool
	ProfileSeconds int
	// KeepFailed keeps the data directory of a failed workload.
	KeepFailed bool
	// MaxServerRSSMiB is the resident set above which a server is killed
	// (its workload then fails), so that a runaway server cannot exhaust
	// the machine's memory.
	MaxServerRSSMiB int64
	// ReuseStartup reuses start-up template databases left in WorkDir by an
	// earlier run with the same sizes.
	ReuseStartup bool

	Create     workload.Create
	Update     workload.Update
	Get        workload.Get
	List       workload.List
	Watchers   []int
	Watch      workload.WatchLatency // Watchers is set per workload
	CatchUp    workload.CatchUp
	Progress   workload.Progress
	Compaction workload.Compaction
	Startup    Startup
	// CrossWatch sizes the cross-process watch workload (Duration and Drain
	// come from Watch).
	CrossWatch workload.CrossWatch
	// Postgres is the PostgreSQL server (a DSN without a database) on which
	// the -pg servers create their databases; empty: servers.PostgresServer.
	Postgres string

	// Logf reports progress; nil means standard error.
	Logf func(format string, args ...any)
}

// Startup sizes the start-up workload.
type Startup struct {
	Rows int
	Keys int
}

// Default returns the full-size defaults, sized for a 2-core machine.
func Default() Config {
	return Config{
		Servers:         []string{"etcd", "kine", "kinelite"},
		Rounds:          3,
		WorkDir:         filepath.Join(os.TempDir(), "kinelite-bench"),
		OutDir:          "results",
		ResultsMD:       "RESULTS.md",
		Conns:           4,
		ValueSize:       1024,
		Timeout:         20 * time.Minute,
		ProfileSeconds:  5,
		MaxServerRSSMiB: 6 << 10,
		Create:          workload.Create{Clients: 32, Duration: 10 * time.Second},
		Update:          workload.Update{Clients: 32, Keys: 200, Duration: 10 * time.Second},
		Get:             workload.Get{Clients: 32, Keys: 10_000, Duration: 10 * time.Second},
		List:            workload.List{Keys: 20_000, Limit: 500, Duration: 10 * time.Second, CountDuration: 5 * time.Second},
		Watchers:        []int{100, 1000},
		Watch:           workload.WatchLatency{Rate: 50, Duration: 10 * time.Second, Drain: 15 * time.Second},
		CatchUp:         workload.CatchUp{Watches: 2000, Revisions: 5000, Prefixes: 100, Timeout: 3 * time.Minute},
		Progress:        workload.Progress{Duration: 5 * time.Second, Rate: 50, Timeout: 5 * time.Second},
		Compaction:      workload.Compaction{Keys: 1000, Updates: 200, Rate: 100, Phase: 5 * time.Second},
		Startup:         Startup{Rows: 1_000_000, Keys: 200_000},
		CrossWatch:      workload.CrossWatch{WatchLatency: workload.WatchLatency{Watchers: 10, Rate: 50}},
	}
}

// Tiny returns sizes small enough for a smoke test: every workload runs,
// in seconds.
func Tiny() Config {
	c := Default()
	c.Servers = []string{"kinelite"}
	c.Rounds = 1
	c.Conns = 2
	c.Timeout = 2 * time.Minute
	d := 300 * time.Millisecond
	c.Create = workload.Create{Clients: 4, Duration: d}
	c.Update = workload.Update{Clients: 4, Keys: 5, Duration: d}
	c.Get = workload.Get{Clients: 4, Keys: 50, Duration: d}
	c.List = workload.List{Keys: 120, Limit: 50, Duration: d, CountDuration: d}
	c.Watchers = []int{3}
	c.Watch = workload.WatchLatency{Rate: 50, Duration: d, Drain: 5 * time.Second}
	c.CatchUp = workload.CatchUp{Watches: 6, Revisions: 60, Prefixes: 3, Timeout: 30 * time.Second}
	c.Progress = workload.Progress{Duration: d, Rate: 20, Timeout: 5 * time.Second}
	c.Compaction = workload.Compaction{Keys: 10, Updates: 5, Rate: 50, Phase: d}
	c.Startup = Startup{Rows: 200, Keys: 50}
	c.CrossWatch.Watchers = 2
	return c
}

// RegisterFlags binds c's fields to flags in fs; c's values are the
// defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(listFlag{&c.Servers}, "servers", "servers to run, comma-separated ("+strings.Join(servers.Names(), ", ")+")")
	fs.Var(listFlag{&c.Workloads}, "workloads", "workloads to run, comma-separated (default all: "+strings.Join(allWorkloadNames(c), ",")+")")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "rounds; each runs every workload on every server, servers in rotating order")
	fs.StringVar(&c.WorkDir, "work-dir", c.WorkDir, "directory for the servers' data")
	fs.StringVar(&c.OutDir, "out", c.OutDir, "directory in which the run's results directory is created")
	fs.StringVar(&c.ResultsMD, "results-md", c.ResultsMD, "Markdown file to rewrite with this run's table (empty: none)")
	fs.IntVar(&c.Conns, "conns", c.Conns, "client connections per server")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "bytes per value")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "time limit of one workload on one server")
	fs.BoolVar(&c.Profile, "profile", c.Profile, "collect a CPU profile of each server in each measured part, and a heap profile at its end")
	fs.IntVar(&c.ProfileSeconds, "profile-seconds", c.ProfileSeconds, "length of each CPU profile")
	fs.BoolVar(&c.KeepFailed, "keep-failed", c.KeepFailed, "keep the data directory of a failed workload")
	fs.Int64Var(&c.MaxServerRSSMiB, "max-server-rss-mib", c.MaxServerRSSMiB, "kill a server whose resident set exceeds this many MiB (0: no limit)")
	fs.StringVar(&c.Postgres, "postgres", c.Postgres, "PostgreSQL server (DSN without a database) for kinelite-pg and kine-pg (default $"+
		servers.EnvPostgres+", else "+servers.DefaultPostgres+")")
	fs.BoolVar(&c.ReuseStartup, "reuse-startup-db", c.ReuseStartup, "reuse start-up databases left in -work-dir by an earlier run")

	fs.IntVar(&c.Create.Clients, "clients", c.Create.Clients, "concurrent clients of create, update and get")
	fs.DurationVar(&c.Create.Duration, "duration", c.Create.Duration, "measured time of create, update and get")
	fs.IntVar(&c.Update.Keys, "update-keys", c.Update.Keys, "keys the update clients share")
	fs.IntVar(&c.Get.Keys, "get-keys", c.Get.Keys, "keys get reads from")
	fs.IntVar(&c.List.Keys, "list-keys", c.List.Keys, "keys listed")
	fs.IntVar(&c.List.Limit, "list-limit", c.List.Limit, "page size of list")
	fs.DurationVar(&c.List.Duration, "list-duration", c.List.Duration, "time spent listing")
	fs.DurationVar(&c.List.CountDuration, "count-duration", c.List.CountDuration, "time spent on count_only")
	fs.Var(intListFlag{&c.Watchers}, "watchers", "watcher counts of the watch latency workloads, comma-separated")
	fs.IntVar(&c.CrossWatch.Watchers, "cross-watchers", c.CrossWatch.Watchers, "watchers of the cross-process watch workload (watch-cross)")
	fs.Float64Var(&c.Watch.Rate, "watch-rate", c.Watch.Rate, "writes per second under the watchers")
	fs.DurationVar(&c.Watch.Duration, "watch-duration", c.Watch.Duration, "time of writes under the watchers")
	fs.IntVar(&c.CatchUp.Watches, "catchup-watches", c.CatchUp.Watches, "watches restarting from an old revision")
	fs.IntVar(&c.CatchUp.Revisions, "catchup-revisions", c.CatchUp.Revisions, "how many revisions back they restart")
	fs.IntVar(&c.CatchUp.Prefixes, "catchup-prefixes", c.CatchUp.Prefixes, "prefixes the catch-up writes and watches spread over")
	fs.DurationVar(&c.CatchUp.Timeout, "catchup-timeout", c.CatchUp.Timeout, "time limit of the catch-up")
	fs.DurationVar(&c.Progress.Duration, "progress-duration", c.Progress.Duration, "time of RequestWatchProgress round trips")
	fs.Float64Var(&c.Progress.Rate, "progress-rate", c.Progress.Rate, "writes per second under the progress requests")
	fs.IntVar(&c.Compaction.Keys, "compact-keys", c.Compaction.Keys, "keys of the compaction workload")
	fs.IntVar(&c.Compaction.Updates, "compact-updates", c.Compaction.Updates, "updates per key before the compaction")
	fs.Float64Var(&c.Compaction.Rate, "compact-rate", c.Compaction.Rate, "updates per second around the compaction")
	fs.DurationVar(&c.Compaction.Phase, "compact-phase", c.Compaction.Phase, "time of updates measured before and after the compaction")
	fs.IntVar(&c.Startup.Rows, "startup-rows", c.Startup.Rows, "rows of the start-up database")
	fs.IntVar(&c.Startup.Keys, "startup-keys", c.Startup.Keys, "keys of the start-up database (rows/keys writes each)")
}

// finish copies the shared settings into each workload.
func (c *Config) finish() error {
	c.Update.Clients, c.Update.Duration = c.Create.Clients, c.Create.Duration
	c.Get.Clients, c.Get.Duration = c.Create.Clients, c.Create.Duration
	c.CrossWatch.Rate, c.CrossWatch.Duration, c.CrossWatch.Drain = c.Watch.Rate, c.Watch.Duration, c.Watch.Drain
	if c.Rounds < 1 || c.Conns < 1 || c.ValueSize < 16 {
		return fmt.Errorf("harness: -rounds and -conns must be at least 1, -value-size at least 16")
	}
	if c.Startup.Keys <= 0 || c.Startup.Rows < c.Startup.Keys {
		return fmt.Errorf("harness: -startup-rows must be at least -startup-keys")
	}
	if c.CatchUp.Prefixes <= 0 || c.CatchUp.Revisions < c.CatchUp.Prefixes {
		return fmt.Errorf("harness: -catchup-revisions must be at least -catchup-prefixes")
	}
	return nil
}

type listFlag struct{ v *[]string }

func (f listFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strings.Join(*f.v, ",")
}

func (f listFlag) Set(s string) error {
	*f.v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" && p != "all" {
			*f.v = append(*f.v, p)
		}
	}
	return nil
}

type intListFlag struct{ v *[]int }

func (f intListFlag) String() string {
	if f.v == nil {
		return ""
	}
	var s []string
	for _, n := range *f.v {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

func (f intListFlag) Set(s string) error {
	*f.v = nil
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad count %q", p)
		}
		*f.v = append(*f.v, n)
	}
	return nil
}
