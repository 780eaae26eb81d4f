package workload

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The two-process workloads run on servers of which several processes can
// serve one datastore (kinelite and kine on PostgreSQL): Env.Clients are
// connections to one process and Env.Peer to the other.

// TwoProcessWrites is Create then Update with the clients split evenly over
// two server processes on one datastore: the apiserver-shaped write load of
// two API servers in front of one database.
type TwoProcessWrites struct {
	Create Create
	Update Update
}

func (w TwoProcessWrites) Name() string { return "write-2proc" }

func (w TwoProcessWrites) Describe() string {
	return fmt.Sprintf("two server processes on one database, the clients split evenly over them: "+
		"%d clients create new keys for %s, then %d clients update %d shared keys for %s (the create and "+
		"update workloads; server CPU and RSS are the sums over both processes)",
		w.Create.Clients, w.Create.Duration, w.Update.Clients, w.Update.Keys, w.Update.Duration)
}

// interleave returns a's and b's connections alternately, so that workers,
// which pick connection worker%len, split evenly over the two.
func interleave(a, b []*clientv3.Client) []*clientv3.Client {
	var out []*clientv3.Client
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

func (w TwoProcessWrites) Run(ctx context.Context, env *Env) (Result, error) {
	if len(env.Peer) == 0 {
		return nil, errorf(w.Name(), "needs a second server process")
	}
	both := *env
	both.Clients = interleave(env.Clients, env.Peer)
	both.Begin, both.End = func() {}, func() {}
	env.Begin()
	cr, err := w.Create.Run(ctx, &both)
	if err != nil {
		env.End()
		return nil, errorf(w.Name(), "%w", err)
	}
	ur, err := w.Update.Run(ctx, &both)
	env.End()
	if err != nil {
		return nil, errorf(w.Name(), "%w", err)
	}
	var r Result
	for _, m := range cr {
		m.Name = "create " + m.Name
		r = append(r, m)
	}
	for _, m := range ur {
		m.Name = "update " + m.Name
		r = append(r, m)
	}
	return r, nil
}

// CrossWatchName names the cross-process watch workload.
const CrossWatchName = "watch-cross"

// CrossWatch is WatchLatency across processes: the watches are on one
// server process and the writes go through another on the same datastore,
// so every event crosses from one process to the other through the
// database.
type CrossWatch struct {
	WatchLatency
}

func (w CrossWatch) Name() string { return CrossWatchName }

func (w CrossWatch) Describe() string {
	return fmt.Sprintf("two server processes on one database: %d watchers (one gRPC stream each, prev_kv) "+
		"on process B, %g creates/s for %s through process A; delivery from the write's scheduled send, "+
		"and from its acknowledgement by A", w.Watchers, w.Rate, w.Duration)
}

func (w CrossWatch) Run(ctx context.Context, env *Env) (Result, error) {
	if len(env.Peer) == 0 {
		return nil, errors.New(CrossWatchName + ": needs a second server process")
	}
	w.cross = true
	return w.WatchLatency.Run(ctx, env)
}
