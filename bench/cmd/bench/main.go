// Command bench runs kinelite, etcd and kine side by side on
// apiserver-shaped load and writes a table of medians, a chart and the
// machine description to results/<time>/ (and RESULTS.md).
//
//	go run ./cmd/bench                      # the full run: 3 rounds, every workload, every server
//	go run ./cmd/bench -rounds 1 -workloads create,get -servers kinelite,etcd
//
// Each server runs in its own process: this binary re-executed with the
// hidden arguments "serve KIND".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kinelite/kinelite/bench/internal/harness"
	"github.com/kinelite/kinelite/bench/internal/servers"
)

func main() {
	servers.MaybeServe()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

// commandLine is the command that reproduces this run, quoted for a shell.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./cmd/bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func run(ctx context.Context, args []string) int {
	cfg := harness.Default()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	render := fs.String("render", "", "only rewrite the results.md, chart.svg (and -results-md) of the run whose results.json this names")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *render != "" {
		out, err := harness.Render(cfg, *render)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Printf("results: %s\n", out.Markdown)
		return 0
	}
	cfg.Command = commandLine(args)
	run, out, err := harness.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("results: %s\n", out.Markdown)
	if f := run.Failures(); len(f) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d workload runs failed; see %s\n", len(f), out.Markdown)
		return 1
	}
	return 0
}
