// Package report turns the records of a benchmark run into its outputs: a
// JSON file of every measurement, a Markdown table of medians over rounds
// with kinelite's ratios to the other servers, the targets of the bench
// issue, the machine description, and an SVG chart.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/kinelite/kinelite/bench/internal/workload"
)

// Subject is the server the ratios are about, unless a Run names another
// (Run.Subject: "kinelite-pg" in a PostgreSQL run).
const Subject = "kinelite"

// Run is everything one benchmark run produced.
type Run struct {
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Rounds   int       `json:"rounds"`
	// Subject is the server the ratios are about; empty means Subject.
	Subject   string         `json:"subject,omitempty"`
	Machine   Machine        `json:"machine"`
	Servers   []ServerInfo   `json:"servers"`
	Workloads []WorkloadInfo `json:"workloads"`
	Records   []Record       `json:"records"`
	// Notes are remarks of the harness about the run (failures, warnings).
	Notes []string `json:"notes,omitempty"`
}

// ServerInfo describes one server under test.
type ServerInfo struct {
	Name       string `json:"name"`
	Datastore  string `json:"datastore"`
	Durability string `json:"durability"`
}

// WorkloadInfo describes one workload.
type WorkloadInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Record is one workload run against one server in one round.
type Record struct {
	Round    int             `json:"round"`
	Workload string          `json:"workload"`
	Server   string          `json:"server"`
	Seconds  float64         `json:"seconds"`
	Metrics  workload.Result `json:"metrics,omitempty"`
	Error    string          `json:"error,omitempty"`
	Warning  string          `json:"warning,omitempty"`
}

// WriteJSON writes r to path.
func (r *Run) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads a run written by WriteJSON.
func ReadJSON(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Row is one metric of one workload: its median per server.
type Row struct {
	Workload string
	Metric   workload.Metric // Value unused
	// Median maps server → median over the rounds that measured it.
	Median map[string]float64
	// N maps server → how many rounds measured it.
	N map[string]int
	// Subject is the server the ratios are about; empty means Subject.
	Subject string
}

// subject returns the server the ratios are about.
func (r *Run) subject() string {
	if r.Subject != "" {
		return r.Subject
	}
	return Subject
}

func (r Row) subject() string {
	if r.Subject != "" {
		return r.Subject
	}
	return Subject
}

// Ratio returns the subject's median over other's, NaN when either is
// missing.
func (r Row) Ratio(other string) float64 {
	a, ok1 := r.Median[r.subject()]
	b, ok2 := r.Median[other]
	if !ok1 || !ok2 || b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// Advantage returns how many times better the subject is than other on this
// metric (>1: the subject is better), NaN when unknown.
func (r Row) Advantage(other string) float64 {
	q := r.Ratio(other)
	switch r.Metric.Better {
	case workload.Higher:
		return q
	case workload.Lower:
		if q == 0 {
			return math.Inf(1)
		}
		return 1 / q
	}
	return math.NaN()
}

// Rows returns the medians of every metric, in workload order then in the
// order the workload reported its metrics.
func (r *Run) Rows() []Row {
	var rows []Row
	for _, w := range r.Workloads {
		var names []string
		defs := map[string]workload.Metric{}
		vals := map[string]map[string][]float64{} // metric → server → values
		for _, rec := range r.Records {
			if rec.Workload != w.Name || rec.Error != "" {
				continue
			}
			for _, m := range rec.Metrics {
				if _, ok := defs[m.Name]; !ok {
					defs[m.Name] = m
					names = append(names, m.Name)
					vals[m.Name] = map[string][]float64{}
				}
				vals[m.Name][rec.Server] = append(vals[m.Name][rec.Server], m.Value)
			}
		}
		for _, name := range names {
			row := Row{Workload: w.Name, Metric: defs[name], Median: map[string]float64{}, N: map[string]int{},
				Subject: r.subject()}
			allZero := true
			for server, vs := range vals[name] {
				row.Median[server] = median(vs)
				row.N[server] = len(vs)
				for _, v := range vs {
					if v != 0 {
						allZero = false
					}
				}
			}
			if row.Metric.HideIfZero && allZero {
				continue
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// median of the non-NaN values; NaN when there are none.
func median(vs []float64) float64 {
	var s []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Failures lists the records that failed.
func (r *Run) Failures() []Record {
	var out []Record
	for _, rec := range r.Records {
		if rec.Error != "" {
			out = append(out, rec)
		}
	}
	return out
}

// serverNames returns the servers in display order: the others first, the
// subject last.
func (r *Run) serverNames() []string {
	var names []string
	for _, s := range r.Servers {
		if s.Name != r.subject() {
			names = append(names, s.Name)
		}
	}
	for _, s := range r.Servers {
		if s.Name == r.subject() {
			names = append(names, s.Name)
		}
	}
	return names
}

// others returns the servers the subject is compared with, when the subject
// ran.
func (r *Run) others() []string {
	has := false
	var out []string
	for _, s := range r.Servers {
		if s.Name == r.subject() {
			has = true
		} else {
			out = append(out, s.Name)
		}
	}
	if !has {
		return nil
	}
	return out
}
