package watchhub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	streams       prometheus.Gauge
	watches       prometheus.Gauge
	ringEvents    prometheus.Gauge
	ringBytes     prometheus.Gauge
	lag           prometheus.Histogram
	catchUps      prometheus.Counter
	catchUpEvents prometheus.Counter
	cancels       *prometheus.CounterVec
	progress      *prometheus.CounterVec
	eventsSent    prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kinelite_watch_streams", Help: "Open gRPC watch streams."}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kinelite_watches", Help: "Active watches over all streams."}),
		ringEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kinelite_watch_ring_events", Help: "Events held in the in-memory watch history."}),
		ringBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kinelite_watch_ring_bytes", Help: "Approximate bytes held in the in-memory watch history."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kinelite_watch_lag_revisions",
			Help:    "Revisions a watch was behind the newest revision when its stream delivered to it.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		catchUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_watch_catchup_reads_total", Help: "Database reads made to serve watches behind the in-memory history."}),
		catchUpEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_watch_catchup_events_total", Help: "Events read from the database for watch catch-up."}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kinelite_watch_cancels_total", Help: "Watches ended, by reason."}, []string{"reason"}),
		progress: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kinelite_watch_progress_notifications_total", Help: "Progress notifications sent, by kind (periodic, requested)."}, []string{"kind"}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kinelite_watch_events_sent_total", Help: "Events sent to watchers."}),
	}
}

// Collectors returns the hub's metrics, for the caller to register.
func (h *Hub) Collectors() []prometheus.Collector {
	m := h.metrics
	return []prometheus.Collector{m.streams, m.watches, m.ringEvents, m.ringBytes, m.lag, m.catchUps,
		m.catchUpEvents, m.cancels, m.progress, m.eventsSent}
}
