package failpoint

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in    string
		name  string
		count int64
		delay time.Duration
		bad   bool
	}{
		{in: "commit-before-commit", name: "commit-before-commit", count: 1},
		{in: "compact-step:3", name: "compact-step", count: 3},
		{in: "sqlite-checkpoint:2+1ms", name: "sqlite-checkpoint", count: 2, delay: time.Millisecond},
		{in: "x+250us", name: "x", count: 1, delay: 250 * time.Microsecond},
		{in: ":3", bad: true},
		{in: "x:0", bad: true},
		{in: "x:y", bad: true},
		{in: "x+soon", bad: true},
		{in: "x+-1s", bad: true},
	} {
		p, err := parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parse(%q) = %+v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil || p.name != tc.name || p.count != tc.count || p.delay != tc.delay {
			t.Errorf("parse(%q) = %+v, %v; want %s:%d+%v", tc.in, p, err, tc.name, tc.count, tc.delay)
		}
	}
	if p, err := parse(""); p != nil || err != nil {
		t.Errorf(`parse("") = %v, %v; want nothing armed`, p, err)
	}
}

// TestKill runs this test binary as a child with a point armed: it must die
// of SIGKILL at the third hit, not before.
func TestKill(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		for i := 1; i <= 5; i++ {
			os.Stdout.WriteString("hit " + string(rune('0'+i)) + "\n")
			Hit("other")
			Hit("here")
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"=here:3")
	out, err := cmd.CombinedOutput()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want death by SIGKILL\n%s", err, out)
	}
	if s := string(out); !strings.Contains(s, "hit 3\n") || strings.Contains(s, "hit 4") ||
		!strings.Contains(s, "failpoint here hit 3: SIGKILL") {
		t.Errorf("child output:\n%s\nwant a kill at the third hit", s)
	}
}

func BenchmarkHitUnarmed(b *testing.B) {
	for b.Loop() {
		Hit("commit-before-commit")
	}
}
