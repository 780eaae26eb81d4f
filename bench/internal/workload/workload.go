// Package workload holds the apiserver-shaped workloads the harness runs
// against each server, one server process at a time.
//
// A workload gets an Env (connections to one server, value size, a meter for
// the server's CPU and memory) and returns named metrics. It prepares its own
// data (preload), then brackets the part it measures with Env.Begin and
// Env.End so that the server's CPU seconds and peak RSS cover that part only.
package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Better says which direction of a metric is an improvement.
type Better int

// Directions of improvement.
const (
	None Better = iota
	Higher
	Lower
)

// Metric is one number a workload reports.
type Metric struct {
	Name   string
	Unit   string
	Better Better
	Value  float64
	// HideIfZero drops the metric from tables when every server reported
	// zero (error and miss counters).
	HideIfZero bool
}

type metricJSON struct {
	Name       string   `json:"name"`
	Unit       string   `json:"unit"`
	Better     Better   `json:"better"`
	Value      *float64 `json:"value"` // null for NaN: not measured
	HideIfZero bool     `json:"hide_if_zero,omitempty"`
}

// MarshalJSON writes NaN (not measured) as null.
func (m Metric) MarshalJSON() ([]byte, error) {
	j := metricJSON{Name: m.Name, Unit: m.Unit, Better: m.Better, HideIfZero: m.HideIfZero}
	if !math.IsNaN(m.Value) && !math.IsInf(m.Value, 0) {
		v := m.Value
		j.Value = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null as NaN.
func (m *Metric) UnmarshalJSON(b []byte) error {
	var j metricJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Metric{Name: j.Name, Unit: j.Unit, Better: j.Better, HideIfZero: j.HideIfZero, Value: math.NaN()}
	if j.Value != nil {
		m.Value = *j.Value
	}
	return nil
}

// Result is what one run of a workload measured, in display order.
type Result []Metric

func (r *Result) add(name, unit string, better Better, v float64) {
	*r = append(*r, Metric{Name: name, Unit: unit, Better: better, Value: v})
}

func (r *Result) count(name string, v float64) {
	*r = append(*r, Metric{Name: name, Unit: "count", Better: Lower, Value: v, HideIfZero: true})
}

// Env is one server, as a workload sees it.
type Env struct {
	// Server names the server kind ("kinelite", "etcd", "kine").
	Server string
	// MultiOpTxn is true when the server accepts Txns of several Puts;
	// preloading then writes in batches.
	MultiOpTxn bool
	// Clients are connections to the server; workers spread over them.
	Clients []*clientv3.Client
	// Peer, for the two-process workloads only, are connections to a second
	// process of the same server serving the same datastore.
	Peer []*clientv3.Client
	// ValueSize is the size of written values, in bytes.
	ValueSize int
	// Begin and End bracket the measured part of a workload.
	Begin func()
	End   func()
	// DBSize returns the bytes the server's datastore occupies on disk.
	DBSize func() (int64, error)
	// Logf reports progress.
	Logf func(format string, args ...any)
}

func (e *Env) client(i int) *clientv3.Client { return e.Clients[i%len(e.Clients)] }

// Workload is one scenario.
type Workload interface {
	// Name is short and stable: it names table rows and files.
	Name() string
	// Describe says what the workload does, with its sizes.
	Describe() string
	// Run preloads, measures and returns the metrics.
	Run(ctx context.Context, env *Env) (Result, error)
}

// value returns a value of n bytes; the content varies with seed so that
// nothing compresses it away.
func value(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 0x6b696e656c697465))
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return b
}

// prefixEnd is clientv3.GetPrefixRangeEnd as a string.
func prefixEnd(prefix string) string { return clientv3.GetPrefixRangeEnd(prefix) }

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func errorf(name string, format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{name}, args...)...)
}
