package soak

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sample is one sampling period's figures.
type Sample struct {
	At         time.Duration // since the load began
	RSS        int64         // bytes, VmRSS
	Goroutines int64
	FDs        int64   // open file descriptors
	DB, WAL    int64   // file sizes, bytes
	LagP99     float64 // ms: the period's p99 watch lag
	WriteP99   float64 // ms: the period's p99 write latency
	Writes     int64   // writes answered in the period
	Revision   int64   // newest revision the complete watch has
	Err        string  // what could not be sampled
}

type sampler struct {
	s       *soak
	ws      *watchSet
	l       *load
	samples []Sample
	writes  int64
}

func newSampler(s *soak, ws *watchSet, l *load) *sampler { return &sampler{s: s, ws: ws, l: l} }

func (sm *sampler) sample(ctx context.Context, at time.Duration) {
	sm.ws.check()
	p := sm.s.proc
	x := Sample{At: at.Round(time.Second)}
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	var err error
	x.RSS, err = p.RSS()
	note(err)
	x.Goroutines, err = goroutines(ctx, p.PprofAddr)
	note(err)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid()))
	note(err)
	x.FDs = int64(len(fds))
	x.DB, err = fileSize(sm.s.dbPath)
	note(err)
	x.WAL, err = fileSize(sm.s.dbPath + "-wal")
	note(err)
	x.LagP99 = p99(sm.ws.lag.drain())
	x.WriteP99 = p99(sm.l.lat.drain())
	w := sm.l.writes.Load()
	x.Writes, sm.writes = w-sm.writes, w
	sm.ws.refMu.Lock()
	x.Revision = sm.ws.refLastLocked()
	sm.ws.refMu.Unlock()
	x.Err = strings.Join(errs, "; ")
	sm.samples = append(sm.samples, x)
	sm.s.cfg.Logf("%6s  rss %4d MiB  goroutines %4d  fds %3d  db %5.1f MiB  wal %5.1f MiB  lag p99 %6.1f ms  write p99 %6.1f ms  %5d writes  rev %d %s",
		x.At, x.RSS>>20, x.Goroutines, x.FDs, mib(x.DB), mib(x.WAL), x.LagP99, x.WriteP99, x.Writes, x.Revision, x.Err)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// goroutines reads the count from the first line of the server's goroutine
// profile: "goroutine profile: total N".
func goroutines(ctx context.Context, pprofAddr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts %q", line)
	}
	return strconv.ParseInt(rest, 10, 64)
}

// p99 of values, NaN when there are none.
func p99(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	return v[max(0, int(math.Ceil(0.99*float64(len(v))))-1)]
}

func median(v []float64) float64 {
	v = slices.DeleteFunc(slices.Clone(v), math.IsNaN)
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// A metric the trend test watches, and how much it may grow.
type metric struct {
	name string
	unit string // "MiB", "ms" or ""
	get  func(Sample) float64
	rel  float64 // relative tolerance
	abs  float64 // absolute tolerance, in the metric's unit
}

// Tolerances: how much the median of the last third may exceed that of
// the second third. Memory and files get little room; latencies, on a
// shared machine, more; the WAL grows and is started over by design.
var metrics = []metric{
	{name: "RSS", unit: "MiB", get: func(x Sample) float64 { return mib(x.RSS) }, rel: 0.10, abs: 16},
	{name: "goroutines", get: func(x Sample) float64 { return float64(x.Goroutines) }, rel: 0.05, abs: 10},
	{name: "open files", get: func(x Sample) float64 { return float64(x.FDs) }, abs: 5},
	{name: "database size", unit: "MiB", get: func(x Sample) float64 { return mib(x.DB) }, rel: 0.10, abs: 8},
	{name: "WAL size", unit: "MiB", get: func(x Sample) float64 { return mib(x.WAL) }, rel: 0.25, abs: 16},
	{name: "watch lag p99", unit: "ms", get: func(x Sample) float64 { return x.LagP99 }, rel: 0.50, abs: 20},
	{name: "write p99", unit: "ms", get: func(x Sample) float64 { return x.WriteP99 }, rel: 0.50, abs: 20},
}

// Trend is one metric's verdict.
type Trend struct {
	Metric       string
	Unit         string
	Second, Last float64 // medians of the second and last thirds
	Rel, Abs     float64
	Up           bool
}

func (t Trend) format(v float64) string {
	switch t.Unit {
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func (t Trend) tolerance() string {
	if t.Rel == 0 {
		return "+" + t.format(t.Abs)
	}
	return fmt.Sprintf("+%.0f%% +%s", 100*t.Rel, t.format(t.Abs))
}

// minTrendSamples is the fewest samples after warm-up that make a verdict.
const minTrendSamples = 9

// trends runs the trend test on the samples taken after warmup; nil when
// there are too few.
func trends(samples []Sample, warmup time.Duration) []Trend {
	var after []Sample
	for _, x := range samples {
		if x.At > warmup {
			after = append(after, x)
		}
	}
	if len(after) < minTrendSamples {
		return nil
	}
	third := len(after) / 3
	second, last := after[third:2*third], after[len(after)-third:]
	var out []Trend
	for _, m := range metrics {
		var a, b []float64
		for _, x := range second {
			a = append(a, m.get(x))
		}
		for _, x := range last {
			b = append(b, m.get(x))
		}
		t := Trend{Metric: m.name, Unit: m.unit, Second: median(a), Last: median(b), Rel: m.rel, Abs: m.abs}
		t.Up = t.Last > t.Second*(1+m.rel)+m.abs
		out = append(out, t)
	}
	return out
}

// Stats are the run's totals.
type Stats struct {
	Writes, Creates, Updates, Deletes, EventCreates, Conflicts int64
	Behind                                                     int64 // paced writes dropped: the writers were all busy
	Lists, ListPages, Compactions, Leases                      int64
	LiveKeys                                                   int
	Revisions, CompactRevision, ExpiredEvents                  int64
	Watches                                                    int
	WatchEvents, ProgressNotifies, Rewatches                   int64
	FailureCount                                               int
	Check                                                      string // kinelite check's summary at the end
}
