package server

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

var _ pb.WatchServer = (*Server)(nil)

// Watch runs one watch stream: a goroutine reads the client's requests and
// the Watcher does the rest on this one. When the server stops, the stream
// ends with Unavailable, which client/v3 answers by resuming every watch
// from its next revision.
func (s *Server) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stopped := context.AfterFunc(s.shutdown, cancel)
	defer stopped()

	reqs := make(chan *pb.WatchRequest, 16)
	recvErr := make(chan error, 1)
	go func() {
		defer close(reqs)
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return // half-closed: keep sending, as etcd does
			}
			if err != nil {
				recvErr <- err
				cancel()
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	err := s.cfg.Watcher.Serve(ctx, reqs, func(resp *pb.WatchResponse) error {
		s.fill(resp.Header)
		return stream.Send(resp)
	})
	if s.shutdown.Err() != nil {
		return rpctypes.ErrGRPCStopped
	}
	select {
	case rerr := <-recvErr:
		return rerr
	default:
	}
	if stream.Context().Err() != nil {
		return rpctypes.ErrGRPCWatchCanceled
	}
	return toGRPC(err)
}
