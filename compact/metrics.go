package compact

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	steps          prometheus.Histogram
	rowsDeleted    prometheus.Counter
	checkpoints    prometheus.Counter
	logRestarts    prometheus.Counter
	pagesReclaimed prometheus.Counter
	dbSize         prometheus.Collector
	walSize        prometheus.Collector
}

func newMetrics(store Store) *metrics {
	size := func(pick func(total, wal int64) int64) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := store.Size(ctx)
			if err != nil {
				return -1
			}
			return float64(pick(s.Total, s.WAL))
		}
	}
	return &metrics{
		steps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kinelite_compaction_step_duration_seconds", Help: "Duration of one compaction step (one window of revisions).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		rowsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_compaction_rows_deleted_total", Help: "Rows deleted by compaction."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_wal_checkpoints_total", Help: "Passive WAL checkpoints run."}),
		logRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_wal_restarts_total", Help: "Times the WAL was started over after a complete checkpoint."}),
		pagesReclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_pages_reclaimed_total", Help: "Free database pages given back to the file system."}),
		dbSize: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kinelite_database_size_bytes", Help: "Size of the database file (-1 when it cannot be read)."},
			size(func(total, _ int64) int64 { return total })),
		walSize: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kinelite_wal_size_bytes", Help: "Size of the write-ahead log file (-1 when it cannot be read)."},
			size(func(_, wal int64) int64 { return wal })),
	}
}

// Collectors returns the compactor's metrics, for the caller to register.
func (c *Compactor) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.steps, m.rowsDeleted, m.checkpoints, m.logRestarts, m.pagesReclaimed, m.dbSize, m.walSize}
}
