package servers

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// childArg is the hidden first argument that makes the binary a server.
const childArg = "serve"

// readyPrefix starts the line a child prints on stdout once it serves.
const readyPrefix = "BENCH-READY "

// ready is what a child reports once it serves.
type ready struct {
	Endpoint string `json:"endpoint"`
	// Pprof is the address of the child's /debug/pprof, when asked for.
	Pprof string `json:"pprof,omitempty"`
}

// MaybeServe turns this process into a server when its arguments are
// "serve KIND ...", and then never returns. Call it first thing in main (and
// in TestMain of packages that start servers).
func MaybeServe() {
	if len(os.Args) < 3 || os.Args[1] != childArg {
		return
	}
	os.Exit(serveMain(os.Args[2], os.Args[3:]))
}

func serveMain(kindName string, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var o serveOptions
	var pprofOn bool
	fs.StringVar(&o.DataDir, "data-dir", "", "data directory")
	fs.StringVar(&o.DSN, "dsn", "", "datastore address, when the datastore is not the data directory")
	fs.BoolVar(&pprofOn, "pprof", false, "serve /debug/pprof on a loopback port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	kind, err := Lookup(kindName)
	if err != nil || o.DataDir == "" {
		fmt.Fprintln(os.Stderr, "bench serve:", err, "(-data-dir is required)")
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	endpoint, stop, err := kind.serve(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench serve %s: %v\n", kindName, err)
		return 1
	}
	r := ready{Endpoint: endpoint}
	if pprofOn {
		addr, err := servePprof()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench serve: pprof:", err)
		}
		r.Pprof = addr
	}
	b, _ := json.Marshal(r)
	fmt.Fprintf(os.Stdout, "%s%s\n", readyPrefix, b)

	<-ctx.Done()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer stopCancel()
	if err := stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "bench serve %s: stop: %v\n", kindName, err)
		return 1
	}
	return 0
}

func servePprof() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() { _ = http.Serve(l, mux) }()
	return l.Addr().String(), nil
}
