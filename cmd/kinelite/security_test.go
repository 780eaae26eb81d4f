package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinelite/kinelite/backend/postgres/pgtest"
	"github.com/kinelite/kinelite/internal/syncbuf"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestMetricsLoopbackAndProfilingOffByDefault: metrics bind loopback unless
// told otherwise, /debug/pprof is served only when asked, and a bind beyond
// loopback is logged as a warning.
func TestMetricsLoopbackAndProfilingOffByDefault(t *testing.T) {
	o, err := parseFlags(nil, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(o.metricsAddress)
	if err != nil || !net.ParseIP(host).IsLoopback() || o.profiling {
		t.Fatalf("default metrics address %q (profiling %v) is not loopback-only", o.metricsAddress, o.profiling)
	}
	reg := prometheus.NewRegistry()

	// The defaults' shape, on a free port.
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	stop, addr, err := serveMetrics(strings.Replace(o.metricsAddress, ":8080", ":0", 1), o.profiling, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := net.SplitHostPort(addr); !net.ParseIP(h).IsLoopback() {
		t.Fatalf("metrics bound %s", addr)
	}
	if code, _ := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if code, _ := httpGet(t, "http://"+addr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ without --metrics-enable-profiling: %d", code)
	}
	stop(context.Background())
	if strings.Contains(logs.String(), "WARN") {
		t.Fatalf("a loopback bind warned: %s", logs.String())
	}

	// Profiling when asked; its command line holds no DSN secret.
	os.Args = append(os.Args[:1:1], "--endpoint", "postgres://admin:S3cretUserPW@db/kine?password=S3cretQueryPW")
	stop, addr, err = serveMetrics("127.0.0.1:0", true, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := httpGet(t, "http://"+addr+"/debug/pprof/"); code != http.StatusOK {
		t.Fatalf("/debug/pprof/ with profiling: %d", code)
	}
	code, body := httpGet(t, "http://"+addr+"/debug/pprof/cmdline")
	if code != http.StatusOK || !strings.Contains(body, "--endpoint") || strings.Contains(body, "S3cret") {
		t.Fatalf("/debug/pprof/cmdline: %d %q", code, body)
	}
	stop(context.Background())

	// Beyond loopback only when asked, with a warning.
	stop, addr, err = serveMetrics("0.0.0.0:0", false, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	if !strings.Contains(logs.String(), "metrics served beyond loopback") {
		t.Fatalf("no warning for %s: %s", addr, logs.String())
	}
	if _, addr, err := serveMetrics("0", true, reg, log); addr != "" || err != nil {
		t.Fatalf("--metrics-bind-address 0 did not disable metrics: %q %v", addr, err)
	}
}

var startupSecrets = []string{"S3cretUserPW", "S3cretQueryPW", "S3cretSSLPW"}

// TestStartupLogsHoldNoDSNSecret runs the binary's start-up, at debug level
// in both log formats, with DSNs carrying secrets: a failing start-up (no
// PostgreSQL on port 1) and, when the test has PostgreSQL, a succeeding one
// that serves and stops. No secret reaches stdout or stderr.
func TestStartupLogsHoldNoDSNSecret(t *testing.T) {
	for _, format := range []string{"plain", "json"} {
		for _, dsn := range []string{
			"postgres://admin:S3cretUserPW@127.0.0.1:1/kine?connect_timeout=2&password=S3cretQueryPW&sslpassword=S3cretSSLPW",
			"postgres://admin:S3cretUserPW/x@127.0.0.1:1/kine",
			"sqlite://" + filepath.Join(t.TempDir(), "x.db") + "?_auth_pass=S3cretQueryPW",
		} {
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"--endpoint", dsn, "--debug", "--log-format", format,
				"--listen-address", "127.0.0.1:0", "--metrics-bind-address", "0"}, &out, &errb)
			if code == 0 {
				t.Fatalf("started with %q", dsn)
			}
			for _, s := range startupSecrets {
				if strings.Contains(out.String()+errb.String(), s) {
					t.Fatalf("start-up output for %q holds %q:\n%s", dsn, s, errb.String())
				}
			}
		}
	}

	t.Run("succeeding", func(t *testing.T) {
		u, err := url.Parse(pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, has := u.User.Password(); !has {
			u.User = url.UserPassword(u.User.Username(), "S3cretUserPW")
		}
		q := u.Query()
		q.Set("password", "S3cretQueryPW")
		q.Set("sslpassword", "S3cretSSLPW")
		u.RawQuery = q.Encode()
		var errb syncbuf.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"--endpoint", u.String(), "--debug", "--listen-address", "127.0.0.1:0",
				"--metrics-bind-address", "127.0.0.1:0"}, io.Discard, &errb)
		}()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(errb.String(), "metrics serving") {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("no start-up: %s", errb.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(errb.String(), "kinelite serving") {
			t.Fatalf("no serving line: %s", errb.String())
		}
		for _, s := range startupSecrets {
			if strings.Contains(errb.String(), s) {
				t.Fatalf("the log holds %q:\n%s", s, errb.String())
			}
		}
	})
}
