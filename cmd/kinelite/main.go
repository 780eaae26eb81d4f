// Command kinelite serves the etcd v3 API over SQL. It accepts kine's flags
// (and their KINE_* environment variables) where they apply, so it drops into
// a deployment that runs kine today.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/internal/redact"
	"github.com/kinelite/kinelite/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line, parsed.
type options struct {
	cfg              kinelite.Config
	metricsAddress   string
	profiling        bool
	logFormat        string
	debug            bool
	showVersion      bool
	shutdownDeadline time.Duration
}

// parseFlags reads args (and KINE_* environment variables for flags not on
// the command line). getenv is os.Getenv outside tests.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("kinelite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.Endpoint, "endpoint", kinelite.DefaultEndpoint, "datastore DSN: sqlite://PATH (kine's SQLite parameters are accepted and ignored) or postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	fs.StringVar(&c.ListenAddress, "listen-address", kinelite.DefaultListenAddress, "address to serve etcd on: HOST:PORT, http(s)://HOST:PORT or unix://PATH")
	fs.StringVar(&c.ServerTLS.CertFile, "server-cert-file", "", "TLS certificate to serve with")
	fs.StringVar(&c.ServerTLS.KeyFile, "server-key-file", "", "TLS key to serve with")
	fs.StringVar(&c.ServerTLS.TrustedCAFile, "trusted-ca-file", "", "CA that client certificates must be signed by (requires client certificates)")
	fs.StringVar(&o.metricsAddress, "metrics-bind-address", "127.0.0.1:8080", "address for /metrics; 0 disables")
	fs.BoolVar(&o.profiling, "metrics-enable-profiling", false, "serve /debug/pprof on the metrics address")
	fs.StringVar(&c.EmulatedETCDVersion, "emulated-etcd-version", "3.6.11", "etcd version reported by Status")
	fs.DurationVar(&c.WatchProgressNotifyInterval, "watch-progress-notify-interval", kinelite.DefaultWatchProgressNotifyInterval, "interval of progress notifications to watches that ask for them")
	fs.DurationVar(&c.CompactInterval, "compact-interval", 0, "compact on this schedule (0: leave compaction to clients such as kube-apiserver)")
	fs.Int64Var(&c.CompactMinRetain, "compact-min-retain", 1000, "revisions scheduled compaction always keeps")
	fs.Int64Var(&c.CompactBatchSize, "compact-batch-size", 1000, "revisions one compaction step covers")
	fs.BoolVar(&c.NoFsync, "unsafe-no-fsync", false, "do not fsync commits: a power cut may lose acknowledged writes")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "largest write request accepted, in bytes (etcd's --max-request-bytes)")
	fs.IntVar(&c.MaxTxnOps, "max-txn-ops", server.DefaultMaxTxnOps, "most operations in one transaction (etcd's --max-txn-ops)")
	fs.Func("max-concurrent-streams", fmt.Sprintf("most concurrent gRPC streams of one client connection (default %d)", server.DefaultMaxConcurrentStreams),
		func(v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return errors.New("want a number from 1 to 4294967295")
			}
			c.MaxConcurrentStreams = uint32(n)
			return nil
		})
	fs.IntVar(&c.MaxWatchesPerConnection, "max-watches-per-connection", server.DefaultMaxWatchesPerConnection, "most watches open on one client connection")
	fs.StringVar(&o.logFormat, "log-format", "plain", "log format: plain or json")
	fs.BoolVar(&o.debug, "debug", false, "log at debug level")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.DurationVar(&o.shutdownDeadline, "shutdown-timeout", 10*time.Second, "how long a graceful stop may take")
	// kine flags that have no meaning here, accepted so that kine command
	// lines keep working.
	var ignoredDur time.Duration
	var ignoredInt int
	fs.DurationVar(&ignoredDur, "compact-timeout", 0, "accepted for kine compatibility; compaction steps are short")
	fs.IntVar(&ignoredInt, "compact-interval-jitter", 0, "accepted for kine compatibility")
	fs.IntVar(&ignoredInt, "poll-batch-size", 0, "accepted for kine compatibility")
	fs.DurationVar(&ignoredDur, "slow-sql-threshold", 0, "accepted for kine compatibility")
	fs.DurationVar(&ignoredDur, "slow-sql-warning-threshold", 0, "accepted for kine compatibility")
	fs.BoolVar(new(bool), "metrics-ignore-tls-config", false, "accepted for kine compatibility")
	fs.StringVar(&c.BackendTLS.CAFile, "ca-file", "", "CA that PostgreSQL's certificate must be signed by")
	fs.StringVar(&c.BackendTLS.CertFile, "cert-file", "", "client certificate for PostgreSQL")
	fs.StringVar(&c.BackendTLS.KeyFile, "key-file", "", "client key for PostgreSQL")
	fs.BoolVar(&c.BackendTLS.SkipVerify, "skip-verify", false, "do not verify PostgreSQL's certificate")
	fs.IntVar(&c.ConnectionPool.MaxOpen, "datastore-max-open-connections", 0, "PostgreSQL connections for reads, at most (0: unlimited)")
	fs.IntVar(&c.ConnectionPool.MaxIdle, "datastore-max-idle-connections", 0, "idle PostgreSQL connections kept (0: 20, as kine; negative: none)")
	fs.DurationVar(&c.ConnectionPool.MaxLifetime, "datastore-connection-max-lifetime", 0, "close PostgreSQL connections older than this (0: never)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag package quotes values but not flag names: keep the
		// error on one line whatever the command line holds.
		return nil, errors.New(oneLine(err.Error()))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "KINE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !set[f.Name] && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %w", v, env, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if o.logFormat != "plain" && o.logFormat != "json" {
		return nil, fmt.Errorf("invalid -log-format %q: use plain or json", o.logFormat)
	}
	return o, nil
}

// oneLine escapes the control characters of s (a newline among them), so
// that an error naming what a user typed stays one line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "check" {
		return runCheck(ctx, args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kinelite:", err)
		return 2
	}
	if o.showVersion {
		fmt.Fprintln(stdout, "kinelite", version)
		return 0
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if o.logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)
	o.cfg.Logger = log

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.cfg.MetricsRegisterer = reg

	srv, err := kinelite.Open(ctx, o.cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kinelite:", err)
		return 1
	}
	stopMetrics, _, err := serveMetrics(o.metricsAddress, o.profiling, reg, log)
	if err != nil {
		fmt.Fprintln(stderr, "kinelite:", err)
		_ = srv.Close(context.Background())
		return 1
	}
	<-ctx.Done()
	log.Info("stopping")
	closeCtx, cancel := context.WithTimeout(context.Background(), o.shutdownDeadline)
	defer cancel()
	stopMetrics(closeCtx)
	if err := srv.Close(closeCtx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// serveMetrics serves /metrics (and /debug/pprof when asked) on address, "0"
// or "" disabling it. It returns the function that stops it and the address
// it listens on. The default address is loopback; binding anything else is
// the operator's choice, and is logged as a warning since neither endpoint
// has authentication.
func serveMetrics(address string, profiling bool, reg *prometheus.Registry, log *slog.Logger) (func(context.Context), string, error) {
	if address == "" || address == "0" {
		return func(context.Context) {}, "", nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", redactedCmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	lis, err := net.Listen("tcp", address)
	if err != nil {
		return nil, "", fmt.Errorf("metrics: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	addr := lis.Addr().String()
	if tcp, ok := lis.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("metrics served beyond loopback, without authentication", "address", addr, "profiling", profiling)
	} else {
		log.Info("metrics serving", "address", addr, "profiling", profiling)
	}
	return func(ctx context.Context) { _ = hs.Shutdown(ctx) }, addr, nil
}

// redactedCmdline is pprof's /debug/pprof/cmdline without the secrets an
// --endpoint DSN may carry.
func redactedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	args := make([]string, len(os.Args))
	for i, a := range os.Args {
		args[i] = redact.DSN(a)
	}
	fmt.Fprint(w, strings.Join(args, "\x00"))
}

// runCheck is `kinelite check`: verify a database's invariants, print a
// one-line summary (every problem with -v), exit 0 when it is sound, 1 when
// not, 2 on bad usage.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kinelite check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", kinelite.DefaultEndpoint, "datastore DSN to check")
	verbose := fs.Bool("v", false, "list every problem and note")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kinelite check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	rep, err := kinelite.Check(ctx, *endpoint)
	if err != nil {
		fmt.Fprintln(stderr, "kinelite check:", err)
		return 1
	}
	if *verbose {
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "problem:", p)
		}
		for _, n := range rep.Notes {
			fmt.Fprintln(stdout, "note:", n)
		}
	}
	fmt.Fprintln(stdout, rep.Summary())
	if !rep.OK() {
		return 1
	}
	return 0
}
