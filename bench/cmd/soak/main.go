// Command soak runs kinelite under a steady apiserver-shaped load for a
// duration and fails (exit status 1) if its memory, goroutines, open files,
// database or WAL size, watch lag or write p99 trend upward after the
// warm-up, or if any watch misses an event or gets one out of order. See
// internal/soak for the load, the checks and the trend test.
//
//	go run ./cmd/soak                  # 10 minutes
//	go run ./cmd/soak -duration 1h
//
// It writes results/soak-<UTC time>/ (results.md, samples.csv, the server's
// log). The server runs in its own process: this binary re-executed with
// the hidden arguments "serve kinelite".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kinelite/kinelite/bench/internal/servers"
	"github.com/kinelite/kinelite/bench/internal/soak"
)

func main() {
	servers.MaybeServe()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	cfg := soak.Default()
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the load runs")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "samples before this are left out of the trend test (default: a fifth of -duration, at least two -compact-every)")
	fs.DurationVar(&cfg.SampleEvery, "sample-every", cfg.SampleEvery, "sampling period")
	fs.DurationVar(&cfg.CompactEvery, "compact-every", cfg.CompactEvery, "the apiserver's compaction period")
	fs.DurationVar(&cfg.ListEvery, "list-every", cfg.ListEvery, "one paginated list per period")
	fs.DurationVar(&cfg.ProgressEvery, "progress-every", cfg.ProgressEvery, "RequestWatchProgress on every watch stream per period")
	fs.DurationVar(&cfg.RewatchEvery, "rewatch-every", cfg.RewatchEvery, "mean life of a watch before it is resumed from its last revision (0: never)")
	fs.DurationVar(&cfg.LeaseEvery, "lease-every", cfg.LeaseEvery, "a new lease for events per period")
	fs.Int64Var(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "events' lease TTL, seconds")
	fs.IntVar(&cfg.WritesPerSec, "rate", cfg.WritesPerSec, "writes per second")
	fs.IntVar(&cfg.Writers, "writers", cfg.Writers, "concurrent writers")
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "target number of live keys (events not counted)")
	fs.IntVar(&cfg.ValueBytes, "value-bytes", cfg.ValueBytes, "mean value size")
	fs.IntVar(&cfg.Watches, "watches", cfg.Watches, "prefix watches, besides the complete one")
	fs.IntVar(&cfg.Streams, "streams", cfg.Streams, "gRPC watch streams the prefix watches share")
	fs.IntVar(&cfg.Namespaces, "namespaces", cfg.Namespaces, "namespaces per resource")
	results := fs.String("results", "results", "directory for results/soak-<time>/")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "where the server's data directory goes (default: the system's temporary directory)")
	quiet := fs.Bool("q", false, "do not print every sample")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "soak: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg.Command = "go run ./cmd/soak"
	if len(args) > 0 {
		cfg.Command += " " + strings.Join(args, " ")
	}
	cfg.OutDir = filepath.Join(*results, "soak-"+time.Now().UTC().Format("2006-01-02T15-04-05Z"))
	if !*quiet {
		cfg.Logf = func(format string, a ...any) {
			fmt.Printf(time.Now().Format("15:04:05 ")+format+"\n", a...)
		}
	}
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	fmt.Printf("results: %s\n", res.Markdown)
	if !res.Passed() {
		fmt.Fprintf(os.Stderr, "soak: FAILED:\n  %s\n", strings.Join(res.Failures, "\n  "))
		return 1
	}
	fmt.Println("soak: passed")
	return 0
}
