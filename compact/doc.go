// Package compact owns compaction after the compact revision has moved: the
// background deletion of the rows it made obsolete, and the optional
// retention schedule for users without a kube-apiserver.
//
// # Model
//
// Compact(rev) records the new compact revision durably through the store
// and returns at once, as etcd does; reads and watches below it fail from
// then on. The Compactor then deletes the obsolete rows in steps: each step
// covers a window of BatchRevisions revisions after the recorded progress,
// runs as a commit of its own in the store's queue (so a write never waits behind
// more than one step), and records its progress in the same transaction, so a
// crash resumes where it stopped. Compact with physical set waits until the
// steps reach the revision.
//
// The steps, the log restarts and reclaims, and the passive checkpoints run
// one at a time through a pacer, each followed by a rest in which only
// writes run (Config.DutyCycle; by default as long as the op itself), so
// that compaction takes a bounded share of the writer, the CPUs and the
// disk's syncs, at the price of finishing later.
package compact
