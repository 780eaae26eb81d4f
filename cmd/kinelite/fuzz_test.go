package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// FuzzParseFlags feeds parseFlags arbitrary command lines (arguments
// separated by NUL) and KINE_* environments (NAME=VALUE lines): it never
// panics, refuses with one line, and what it accepts is a usable
// configuration whose log format is known.
func FuzzParseFlags(f *testing.F) {
	f.Add("--endpoint\x00sqlite://x.db\x00--listen-address\x00unix:///tmp/s", "KINE_COMPACT_INTERVAL=5m")
	f.Add("--compact-interval\x00soon", "")
	f.Add("serve", "KINE_ENDPOINT=postgres://u:hunter22@h/db")
	f.Add("--log-format=xml", "")
	f.Add("-debug\x00--metrics-bind-address=0\x00--metrics-enable-profiling", "KINE_LOG_FORMAT=json\nKINE_DEBUG=maybe")
	f.Add("--watch-progress-notify-interval\x00-1s", "KINE_COMPACT_BATCH_SIZE=-5\nKINE_SKIP_VERIFY=true")
	f.Add("--", "KINE_VERSION=1")
	f.Add("-h", "")
	f.Fuzz(func(t *testing.T, argv, environ string) {
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\x00")
		}
		env := map[string]string{}
		for _, line := range strings.Split(environ, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				env[k] = v
			}
		}
		var stderr bytes.Buffer
		o, err := parseFlags(args, func(k string) string { return env[k] }, &stderr)
		if err != nil {
			if err == flag.ErrHelp {
				return
			}
			if msg := err.Error(); strings.Contains(msg, "\n") {
				t.Fatalf("a multi-line error: %q", msg)
			}
			return
		}
		if o.logFormat != "plain" && o.logFormat != "json" {
			t.Fatalf("accepted log format %q", o.logFormat)
		}
		if o.cfg.Endpoint == "" && env["KINE_ENDPOINT"] == "" && !strings.Contains(argv, "endpoint") {
			t.Fatalf("no endpoint from %q", argv)
		}
	})
}

// TestFlagErrorsStayOneLine is the regression test of what FuzzParseFlags
// found: a flag name holding a newline made a two-line error.
func TestFlagErrorsStayOneLine(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"--bogus\nINFO forged log line"}, &out, &errb)
	last := lastLine(errb.String())
	if code != 2 || !strings.HasPrefix(last, "kinelite: ") || !strings.Contains(last, `bogus\nINFO forged`) {
		t.Fatalf("exit %d, last line %q", code, last)
	}
}
