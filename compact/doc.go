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
package compact
