package server

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kinelite/kinelite/backend"
)

var _ pb.LeaseServer = (*Server)(nil)

func (s *Server) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	l, err := s.cfg.Store.LeaseGrant(ctx, r.ID, r.TTL)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseGrantResponse{Header: s.fill(nil), ID: l.ID, TTL: l.TTL}, nil
}

func (s *Server) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	rev, err := s.cfg.Store.LeaseRevoke(ctx, r.ID)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseRevokeResponse{Header: s.fill(&pb.ResponseHeader{Revision: rev})}, nil
}

// LeaseTimeToLive answers TTL -1 for an unknown lease, as etcd does.
func (s *Server) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	st, err := s.cfg.Store.LeaseTimeToLive(ctx, r.ID, r.Keys)
	if errors.Is(err, backend.ErrLeaseNotFound) {
		return &pb.LeaseTimeToLiveResponse{Header: s.fill(nil), ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: s.fill(nil), ID: st.ID, TTL: st.TTL, GrantedTTL: st.GrantedTTL}
	for _, k := range st.Keys {
		resp.Keys = append(resp.Keys, []byte(k))
	}
	return resp, nil
}

func (s *Server) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp := &pb.LeaseLeasesResponse{Header: s.fill(nil), Leases: []*pb.LeaseStatus{}}
	for _, id := range s.cfg.Store.Leases(ctx) {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
	}
	return resp, nil
}

// LeaseKeepAlive renews leases as the client asks; an unknown or expired
// lease is answered with TTL 0, as etcd does.
func (s *Server) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				errc <- nil
				return
			}
			if err != nil {
				errc <- err
				return
			}
			resp := &pb.LeaseKeepAliveResponse{Header: s.fill(nil), ID: req.ID}
			ttl, err := s.cfg.Store.LeaseRenew(stream.Context(), req.ID)
			switch {
			case errors.Is(err, backend.ErrLeaseNotFound):
				ttl = 0
			case err != nil:
				errc <- toGRPC(err)
				return
			}
			resp.TTL = ttl
			if err := stream.Send(resp); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-stream.Context().Done():
		return stream.Context().Err()
	case <-s.shutdown.Done():
		return rpctypes.ErrGRPCStopped
	}
}
