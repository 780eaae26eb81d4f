package server

import (
	"context"
	"log/slog"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/kinelite/kinelite/backend"
)

// Defaults for Config.
const (
	// DefaultMaxRequestBytes is etcd's --max-request-bytes.
	DefaultMaxRequestBytes = 1<<20 + 1<<19
	// DefaultMaxTxnOps is etcd's --max-txn-ops.
	DefaultMaxTxnOps = 128
	// DefaultVersion is the etcd version Status reports: one that makes a
	// kube-apiserver use RequestWatchProgress (≥ 3.5.13).
	DefaultVersion = "3.6.11"
)

// Store is what the services need from the storage engine. backend.Store
// implements it.
type Store interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	RangeStream(ctx context.Context, r *pb.RangeRequest, chunkBytes int, send func(*pb.RangeResponse) error) error
	Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	CurrentRevision() int64

	LeaseGrant(ctx context.Context, id, ttl int64) (backend.LeaseRow, error)
	LeaseRevoke(ctx context.Context, id int64) (int64, error)
	LeaseRenew(ctx context.Context, id int64) (int64, error)
	LeaseTimeToLive(ctx context.Context, id int64, withKeys bool) (backend.LeaseStatus, error)
	Leases(ctx context.Context) []int64

	Size(ctx context.Context) (backend.Size, error)
	Defragment(ctx context.Context) error
}

// Compactor moves the compact revision (and, with physical, waits for the
// rows behind it to be deleted). compact.Compactor implements it.
type Compactor interface {
	Compact(ctx context.Context, rev int64, physical bool) error
}

// Watcher serves one watch stream. watchhub.Hub implements it.
type Watcher interface {
	Serve(ctx context.Context, reqs <-chan *pb.WatchRequest, send func(*pb.WatchResponse) error) error
}

// Member describes this server to Cluster.MemberList and response headers.
type Member struct {
	ClusterID uint64
	ID        uint64
	Name      string
	// ClientURLs returns the URLs clients reach this server at; it is
	// called on each MemberList, since listeners may be bound late.
	ClientURLs func() []string
}

// Config is what the services are built from.
type Config struct {
	Store     Store
	Compactor Compactor
	Watcher   Watcher
	Member    Member

	// Version is the etcd version Status reports. Default DefaultVersion.
	Version string
	// MaxRequestBytes bounds a request's size. Default
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxTxnOps bounds the compares and the ops of each branch of a Txn.
	// Default DefaultMaxTxnOps.
	MaxTxnOps int
	// Logger receives the services' logs. Nil means no logging.
	Logger *slog.Logger
}

// Server implements etcd's KV, Watch, Lease, Cluster, Maintenance and Auth
// services over a Store.
type Server struct {
	cfg      Config
	log      *slog.Logger
	shutdown context.Context

	pb.UnimplementedKVServer
	pb.UnimplementedWatchServer
	pb.UnimplementedLeaseServer
	pb.UnimplementedClusterServer
	pb.UnimplementedMaintenanceServer
	pb.UnimplementedAuthServer
}

// New returns the services. When shutdown is done, every watch and
// keep-alive stream ends with Unavailable, so that clients reconnect
// elsewhere or later.
func New(cfg Config, shutdown context.Context) *Server {
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Member.Name == "" {
		cfg.Member.Name = "kinelite"
	}
	return &Server{cfg: cfg, log: cfg.Logger, shutdown: shutdown}
}

// Register adds the services to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterKVServer(g, s)
	pb.RegisterWatchServer(g, s)
	pb.RegisterLeaseServer(g, s)
	pb.RegisterClusterServer(g, s)
	pb.RegisterMaintenanceServer(g, s)
	pb.RegisterAuthServer(g, s)
}

// fill completes a response header with the member fields; a zero revision
// becomes the current one.
func (s *Server) fill(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId = s.cfg.Member.ClusterID
	h.MemberId = s.cfg.Member.ID
	h.RaftTerm = raftTerm
	if h.Revision == 0 {
		h.Revision = s.cfg.Store.CurrentRevision()
	}
	return h
}

// raftTerm is the term reported in headers: a single member never changes
// term.
const raftTerm = 1
