package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

var _ pb.KVServer = (*Server)(nil)

// Range reads at the latest or an older revision. serializable is accepted
// and changes nothing: a single member's reads are always linearizable.
func (s *Server) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	resp, err := s.cfg.Store.Range(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.fill(resp.Header)
	return resp, nil
}

// RangeStream is etcd 3.7's chunked Range (used by kube-apiserver 1.37 for
// lists): chunks carry only key-values, the last one also the header, more
// and count.
func (s *Server) RangeStream(r *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	if err := checkRangeStream(r); err != nil {
		return err
	}
	err := s.cfg.Store.RangeStream(stream.Context(), r, s.cfg.MaxRequestBytes, func(resp *pb.RangeResponse) error {
		if resp.Header != nil {
			s.fill(resp.Header)
		}
		return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
	})
	return toGRPC(err)
}

func (s *Server) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.checkSize(r); err != nil {
		return nil, err
	}
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := s.cfg.Store.Put(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.fill(resp.Header)
	return resp, nil
}

func (s *Server) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := s.checkSize(r); err != nil {
		return nil, err
	}
	if err := checkDelete(r); err != nil {
		return nil, err
	}
	resp, err := s.cfg.Store.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.fill(resp.Header)
	return resp, nil
}

func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := s.checkSize(r); err != nil {
		return nil, err
	}
	if err := checkTxn(r, s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	if _, _, err := checkOverlaps(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkOverlaps(r.Failure); err != nil {
		return nil, err
	}
	resp, err := s.cfg.Store.Txn(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.fill(resp.Header)
	return resp, nil
}

// Compact moves the compact revision before it returns; the rows behind it
// are deleted in the background unless physical asks to wait for that.
func (s *Server) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if err := s.cfg.Compactor.Compact(ctx, r.Revision, r.Physical); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.CompactionResponse{Header: s.fill(nil)}, nil
}
