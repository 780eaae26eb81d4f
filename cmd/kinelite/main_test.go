package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	_ "modernc.org/sqlite"

	"github.com/kinelite/kinelite"
)

func noEnv(string) string { return "" }

func TestFlagsDefaultsAreSafe(t *testing.T) {
	o, err := parseFlags(nil, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.ListenAddress != "127.0.0.1:2379" || o.metricsAddress != "127.0.0.1:8080" ||
		o.cfg.Endpoint != "sqlite://./db/state.db" || o.cfg.CompactInterval != 0 || o.cfg.NoFsync {
		t.Fatalf("defaults: %+v metrics %q", o.cfg, o.metricsAddress)
	}
}

func TestKineFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{"KINE_ENDPOINT": "sqlite:///from/env.db", "KINE_COMPACT_INTERVAL": "5m"}
	o, err := parseFlags([]string{
		"--listen-address", "unix:///run/kine.sock",
		"--compact-interval", "1m", // the command line beats the environment
		"--watch-progress-notify-interval", "2s",
		"--emulated-etcd-version", "3.5.13",
		"--compact-timeout", "5s", // kine's, accepted
		"--poll-batch-size", "500",
	}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Endpoint != "sqlite:///from/env.db" || o.cfg.CompactInterval != time.Minute ||
		o.cfg.ListenAddress != "unix:///run/kine.sock" || o.cfg.WatchProgressNotifyInterval != 2*time.Second ||
		o.cfg.EmulatedETCDVersion != "3.5.13" {
		t.Fatalf("parsed: %+v", o.cfg)
	}
}

func TestBadInputStopsStartupWithOneLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, 2, "no-such-flag"},
		{"bad duration", []string{"--compact-interval", "soon"}, 2, "compact-interval"},
		{"stray argument", []string{"serve"}, 2, "unexpected argument"},
		{"bad log format", []string{"--log-format", "xml"}, 2, "log-format"},
		{"unknown DSN parameter", []string{"--endpoint", "sqlite://" + dir + "/x.db?colour=blue", "--metrics-bind-address", "0"}, 1,
			`unknown DSN parameter "colour"`},
		{"unsupported scheme", []string{"--endpoint", "mysql://u:p@tcp(h)/db", "--metrics-bind-address", "0"}, 1,
			`unsupported datastore scheme "mysql"`},
		{"not a database", []string{"--endpoint", "sqlite://" + writeFile(t, dir, "junk.db", "this is not sqlite"),
			"--metrics-bind-address", "0"}, 1, "junk.db"},
		{"bad listen address", []string{"--endpoint", "sqlite://" + dir + "/ok.db", "--listen-address", "ftp://x",
			"--metrics-bind-address", "0"}, 1, "unsupported scheme"},
		{"TLS key without certificate", []string{"--endpoint", "sqlite://" + dir + "/ok2.db", "--server-key-file", "k.pem",
			"--metrics-bind-address", "0"}, 1, "certificate and a key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errb.String())
			}
			last := lastLine(errb.String())
			if !strings.Contains(last, c.want) {
				t.Fatalf("last line %q does not name the problem (%q)", last, c.want)
			}
		})
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	var out, errb bytes.Buffer
	run(context.Background(), []string{"--endpoint", "postgres://admin:s3cret-pw@127.0.0.1:1/db", "--metrics-bind-address", "0"}, &out, &errb)
	if strings.Contains(errb.String()+out.String(), "s3cret-pw") {
		t.Fatalf("the DSN's password reached the output: %q", errb.String())
	}
}

func TestServesUntilCanceled(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--endpoint", "sqlite://" + filepath.Join(t.TempDir(), "s.db"),
			"--listen-address", addr, "--metrics-bind-address", "0"}, &bytes.Buffer{}, &errb)
	}()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	if _, err := c.Put(pctx, "k", "v"); err != nil {
		t.Fatalf("put to the running binary: %v (stderr %s)", err, errb.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after a graceful stop; stderr %s", code, errb.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(out.String(), "kinelite ") {
		t.Fatalf("--version: exit %d, %q", code, out.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestCheckCommand(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "c.db")
	srv, err := kinelite.Open(context.Background(), kinelite.Config{Endpoint: dsn, ListenAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 5 {
		if _, err := c.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if code := run(ctx, []string{"check", "--endpoint", dsn}, &out, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(out.String(), "ok: 6 rows") {
		t.Fatalf("check of a sound database: exit %d, %q", code, out.String())
	}
	// Lose a row in the middle of k's history.
	db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM kine WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out.Reset()
	code := run(ctx, []string{"check", "-v", "--endpoint", dsn}, &out, &bytes.Buffer{})
	if code != 1 || !strings.Contains(out.String(), "problem: row 5") || !strings.Contains(lastLine(out.String()), "FAILED: 1 problems") {
		t.Fatalf("check of a broken database: exit %d, %q", code, out.String())
	}
	if code := run(ctx, []string{"check", "--endpoint", "sqlite:///no/such/file.db"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 1 {
		t.Fatalf("check of a missing database: exit %d", code)
	}
}
