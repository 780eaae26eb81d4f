// Package watchhub serves etcd watches from one ordered stream of committed
// events.
//
// # Model
//
// The committer publishes each group commit's events, in revision order, to
// the Hub (Publish). The hub keeps the most recent ones in a ring bounded in
// event count and in bytes. It pushes nothing to anyone: publishing only
// wakes the streams that wait.
//
// Each gRPC watch stream is served by one goroutine (Serve) that owns the
// stream's watches. Every watch has a cursor, the next revision it needs. On
// each wake the goroutine handles the client's requests, then brings every
// watch up to the newest revision: from the ring when its cursor is inside
// it, from the database in bounded pages (History) when it is older, and then
// from the ring again, with no gap and no duplicate because the cursor is a
// revision. A slow client blocks only its own goroutine in Send; its watches
// fall behind the ring and continue from the database. Memory per stream is
// bounded by one response per watch.
//
// # Progress notifications
//
// Because the same goroutine sends events and progress notifications, a
// notification for revision R goes out only after every event up to R has
// been sent to the watches it covers, by construction. A progress request
// (RequestWatchProgress) is answered with one response whose watch ID is -1
// once every watch of the stream has caught up (etcd 3.5.13+); watches
// created with progress_notify get a notification every
// ProgressNotifyInterval when nothing else was sent to them in that interval.
// Neither is sent for a watch whose start revision is still in the future.
//
// # Compaction and slow clients
//
// A watch that needs revisions below the compact revision, whether it asked
// for them at creation or fell that far behind, is canceled with
// compact_revision set, as etcd does; the client sees ErrCompacted. That is
// the only way the hub ends a watch on its own: slow clients are never
// dropped, they cost database reads instead (counted in
// kinelite_watch_catchup_reads_total).
//
// # Header revisions
//
// A response's header revision is the newest revision the hub had published
// when the response was built: at least the revision of its last event, as
// in etcd's catch-up responses. A compaction cancel carries revision 0, as in
// etcd 3.7.
package watchhub
