package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// EnvVar names the environment variable that arms a point.
const EnvVar = "KINELITE_FAILPOINT"

// Points lists the points placed in the product, for tests and for
// documentation; Hit accepts any name.
var Points = []string{
	"commit-before-commit", // backend: a group commit's rows are inserted, the transaction not yet committed
	"commit-after-commit",  // backend: a group commit is durable, not yet published to the index and watches
	"compact-step",         // backend: a compaction step has deleted its rows, its progress not yet recorded
	"lease-revoke",         // backend: a revoke (expiry or request) has staged its deletes, not yet committed
	"index-rebuild",        // backend: start-up, once per row the index rebuild scans
	"sqlite-checkpoint",    // backend/sqlite: a passive WAL checkpoint starts
	"sqlite-restart-log",   // backend/sqlite: a RESTART checkpoint (the WAL starts over) starts
}

// point is the armed point; nil when none is.
var point *armed

type armed struct {
	name  string
	count int64
	delay time.Duration
	hits  atomic.Int64
}

func init() {
	p, err := parse(os.Getenv(EnvVar))
	if err != nil {
		// A test asked for a kill it will not get: say so loudly.
		fmt.Fprintf(os.Stderr, "%s: %v\n", EnvVar, err)
		os.Exit(2)
	}
	point = p
}

// parse reads a KINELITE_FAILPOINT value; "" arms nothing (nil).
func parse(s string) (*armed, error) {
	if s == "" {
		return nil, nil
	}
	p := &armed{count: 1}
	rest := s
	if name, d, ok := strings.Cut(rest, "+"); ok {
		delay, err := time.ParseDuration(d)
		if err != nil || delay < 0 {
			return nil, fmt.Errorf("%q: bad delay %q", s, d)
		}
		rest, p.delay = name, delay
	}
	if name, c, ok := strings.Cut(rest, ":"); ok {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: bad count %q", s, c)
		}
		rest, p.count = name, n
	}
	if rest == "" {
		return nil, fmt.Errorf("%q: no point named", s)
	}
	p.name = rest
	return p, nil
}

// Hit kills the process with SIGKILL if KINELITE_FAILPOINT arms this point
// and this is the hit it names; otherwise it returns at once.
func Hit(name string) {
	if point == nil {
		return
	}
	point.hit(name)
}

func (p *armed) hit(name string) {
	if name != p.name || p.hits.Add(1) != p.count {
		return
	}
	if p.delay > 0 {
		time.AfterFunc(p.delay, func() { kill(name, p.count) })
		return
	}
	kill(name, p.count)
}

func kill(name string, count int64) {
	fmt.Fprintf(os.Stderr, "failpoint %s hit %d: SIGKILL\n", name, count)
	self, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = self.Kill() // SIGKILL on unix
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "failpoint %s: kill: %v\n", name, err)
		os.Exit(137)
	}
	// The signal is on its way; nothing after the point may run.
	select {}
}
