package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/kinelite/kinelite/watchhub"
)

// Defaults for the per-connection limits (see kinelite.Config).
const (
	// DefaultMaxConcurrentStreams bounds the gRPC streams — calls in
	// flight, watch and keep-alive streams — of one client connection.
	// etcd leaves it unbounded (math.MaxUint32). 1000 is above what a
	// kube-apiserver's connection carries (its in-flight limits default to
	// 400 reads and 200 writes over all its connections, plus a few watch
	// streams), and bounds what one connection can hold.
	DefaultMaxConcurrentStreams = 1000
	// DefaultMaxWatchesPerConnection bounds the watches of one client
	// connection, over all its watch streams.
	DefaultMaxWatchesPerConnection = watchhub.DefaultMaxWatches
)

// ConnectionLimits returns the gRPC server options that bound each client
// connection: at most maxStreams concurrent streams (a client beyond it
// waits for one to end, as HTTP/2 prescribes) and at most maxWatches watches
// over all the connection's watch streams (a create beyond it is refused
// with a reason, which client/v3 reports as the watch's error).
func ConnectionLimits(maxStreams uint32, maxWatches int) []grpc.ServerOption {
	if maxStreams == 0 {
		maxStreams = DefaultMaxConcurrentStreams
	}
	if maxWatches <= 0 {
		maxWatches = DefaultMaxWatchesPerConnection
	}
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.StatsHandler(connBudgets{maxWatches: maxWatches}),
	}
}

// connBudgets gives each connection its watch budget: the context of every
// stream of a connection derives from the one TagConn returns.
type connBudgets struct{ maxWatches int }

func (c connBudgets) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return watchhub.WithBudget(ctx, watchhub.NewBudget(c.maxWatches))
}

func (connBudgets) HandleConn(context.Context, stats.ConnStats) {}

func (connBudgets) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (connBudgets) HandleRPC(context.Context, stats.RPCStats) {}
