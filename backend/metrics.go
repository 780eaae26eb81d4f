package backend

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	commits        *prometheus.CounterVec
	commitDuration prometheus.Histogram
	commitOps      prometheus.Histogram
	commitPhases   *prometheus.HistogramVec
	commitPhase    [numPhases]prometheus.Observer
	syncDuration   prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kinelite_commits_total", Help: "Group commits, by result."}, []string{"result"}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kinelite_commit_duration_seconds",
			Help:    "Time from the start of one group commit until it is durable and published (or refused).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		commitOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kinelite_commit_requests", Help: "Requests applied per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		commitPhases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kinelite_commit_phase_seconds",
			Help: "Time one group commit spent in each phase: queue (its oldest request waiting for the committer), " +
				"lock, head, catch_up, apply, prev_values, insert, commit, sync (until durable, behind the groups before it), publish.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"phase"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kinelite_commit_sync_duration_seconds",
			Help:    "Time of one sync of committed groups to disk, where commits are synced apart from the transaction (SQLite).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	for p := range numPhases {
		m.commitPhase[p] = m.commitPhases.WithLabelValues(p.String())
	}
	return m
}

// Collectors returns the store's metrics, for the caller to register.
func (s *Store) Collectors() []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		s.metrics.commits, s.metrics.commitDuration, s.metrics.commitOps, s.metrics.commitPhases, s.metrics.syncDuration,
		gauge("kinelite_revision", "The current revision.", func() float64 { return float64(s.CurrentRevision()) }),
		gauge("kinelite_compact_revision", "The compact revision: reads below it fail.",
			func() float64 { return float64(s.CompactRevision()) }),
		gauge("kinelite_compacted_through_revision", "The revision up to which obsolete rows are deleted.",
			func() float64 { return float64(s.CompactedThrough()) }),
		gauge("kinelite_compaction_lag_revisions", "Revisions between the current and the compact revision.",
			func() float64 { return float64(s.CurrentRevision() - s.CompactRevision()) }),
		gauge("kinelite_compaction_pending_revisions", "Revisions between the compact revision and the deletion progress.",
			func() float64 { return float64(s.CompactRevision() - s.CompactedThrough()) }),
		gauge("kinelite_index_keys", "Keys in the in-memory index (live or with history).",
			func() float64 { k, _ := s.index.Stats(); return float64(k) }),
		gauge("kinelite_index_revisions", "Revisions in the in-memory index.",
			func() float64 { _, r := s.index.Stats(); return float64(r) }),
		gauge("kinelite_commit_queue_length", "Requests waiting for the committer.",
			func() float64 { return float64(s.QueueLength()) }),
		gauge("kinelite_leases", "Leases granted and not revoked.",
			func() float64 { return float64(len(s.lessor.list())) }),
	}
}
