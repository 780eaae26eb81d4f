package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	_ pb.MaintenanceServer = (*Server)(nil)
	_ pb.ClusterServer     = (*Server)(nil)
	_ pb.AuthServer        = (*Server)(nil)
)

func unsupported(what, why string) error {
	return status.Error(codes.Unimplemented, "kinelite: "+what+" is not supported: "+why)
}

// Status reports the emulated etcd version (kube-apiserver turns on
// RequestWatchProgress from it) and the database's size.
func (s *Server) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	size, err := s.cfg.Store.Size(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	h := s.fill(nil)
	return &pb.StatusResponse{
		Header:           h,
		Version:          s.cfg.Version,
		DbSize:           size.Total,
		DbSizeInUse:      size.InUse,
		Leader:           s.cfg.Member.ID,
		RaftIndex:        uint64(h.Revision),
		RaftTerm:         raftTerm,
		RaftAppliedIndex: uint64(h.Revision),
	}, nil
}

// Defragment gives the database's free space back to the file system.
func (s *Server) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.cfg.Store.Defragment(ctx); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.DefragmentResponse{Header: s.fill(nil)}, nil
}

// Alarm reports no alarm: kinelite raises none (SQL databases report full
// disks as write errors). Activating or deactivating one changes nothing.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return &pb.AlarmResponse{Header: s.fill(nil), Alarms: []*pb.AlarmMember{}}, nil
}

func (s *Server) Hash(context.Context, *pb.HashRequest) (*pb.HashResponse, error) {
	return nil, unsupported("Hash", "there is no bbolt database to hash")
}

func (s *Server) HashKV(context.Context, *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	return nil, unsupported("HashKV", "there is one member, no replicas to compare")
}

func (s *Server) Snapshot(*pb.SnapshotRequest, pb.Maintenance_SnapshotServer) error {
	return unsupported("Snapshot", "back up the SQL database instead (etcd snapshots are bbolt files)")
}

func (s *Server) MoveLeader(context.Context, *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return nil, unsupported("MoveLeader", "there is one member")
}

func (s *Server) Downgrade(context.Context, *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, unsupported("Downgrade", "the etcd version is emulated")
}

// MemberList returns this server, the only member.
func (s *Server) MemberList(ctx context.Context, _ *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	m := &pb.Member{ID: s.cfg.Member.ID, Name: s.cfg.Member.Name}
	if s.cfg.Member.ClientURLs != nil {
		m.ClientURLs = s.cfg.Member.ClientURLs()
		m.PeerURLs = m.ClientURLs
	}
	return &pb.MemberListResponse{Header: s.fill(nil), Members: []*pb.Member{m}}, nil
}

func (s *Server) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, unsupported("MemberAdd", "kinelite is a single member; run several against PostgreSQL instead")
}

func (s *Server) MemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, unsupported("MemberRemove", "kinelite is a single member")
}

func (s *Server) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, unsupported("MemberUpdate", "kinelite is a single member")
}

func (s *Server) MemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, unsupported("MemberPromote", "kinelite is a single member")
}

// AuthStatus reports authentication as disabled: kinelite authenticates
// clients by TLS certificate, not etcd users.
func (s *Server) AuthStatus(context.Context, *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return &pb.AuthStatusResponse{Header: s.fill(nil), Enabled: false}, nil
}

// Authenticate fails as etcd's does when authentication is disabled.
func (s *Server) Authenticate(context.Context, *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return nil, rpctypes.ErrGRPCAuthNotEnabled
}
