package kinelite

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/compact"
	"github.com/kinelite/kinelite/server"
	"github.com/kinelite/kinelite/watchhub"
)

// Defaults for Config.
const (
	DefaultEndpoint      = "sqlite://" + "./db/state.db"
	DefaultListenAddress = "127.0.0.1:2379"
	// DefaultWatchProgressNotifyInterval is kine's default (etcd's is
	// 10 min); kube-apiserver's consistent reads wait on these.
	DefaultWatchProgressNotifyInterval = 5 * time.Second
)

// streamWorkers is how many goroutines serve gRPC calls and keep their grown
// stacks from one call to the next (see grpc.NumStreamWorkers): enough for
// the unary calls a busy server has in flight at once (the bench's 32
// writers). A call that finds no idle worker gets a goroutine of its own, as
// without workers. An idle worker holds only its stack.
const streamWorkers = 64

// Config describes a kinelite server. The zero value is valid: it serves on
// DefaultListenAddress over a SQLite file at ./db/state.db.
type Config struct {
	// Endpoint is the datastore DSN, in kine's forms: "sqlite://PATH"
	// (kine's SQLite parameters are accepted and ignored), a bare path, or
	// "postgres://USER:PASSWORD@HOST:PORT/DATABASE?PARAMS" (also
	// postgresql://; the database is created when missing, "kubernetes" when
	// the DSN names none). Several kinelite processes may serve one
	// PostgreSQL database. Default DefaultEndpoint.
	Endpoint string

	// BackendTLS secures the connection to PostgreSQL (kine's --ca-file,
	// --cert-file, --key-file and --skip-verify). When empty, the DSN's
	// sslmode and related parameters apply.
	BackendTLS BackendTLS

	// ConnectionPool bounds PostgreSQL connections (kine's
	// --datastore-max-open-connections, --datastore-max-idle-connections and
	// --datastore-connection-max-lifetime). Zero values: no bound on open
	// connections, 20 idle ones kept (kine's default; negative: none), no
	// maximum lifetime.
	ConnectionPool ConnectionPool

	// ListenAddress is where clients connect: "HOST:PORT", "http://HOST:PORT",
	// "https://HOST:PORT", or "unix://PATH" (the socket is created 0600).
	// Default DefaultListenAddress; port 0 picks a free port.
	ListenAddress string

	// ServerTLS, when CertFile and KeyFile are set, serves TLS; with
	// TrustedCAFile set as well, clients must present a certificate signed
	// by that CA.
	ServerTLS TLSFiles

	// EmulatedETCDVersion is the version Status reports. Default
	// server.DefaultVersion (≥ 3.5.13, so kube-apiserver uses
	// RequestWatchProgress).
	EmulatedETCDVersion string

	// WatchProgressNotifyInterval is the period of progress notifications
	// to watches that ask for them. Default
	// DefaultWatchProgressNotifyInterval.
	WatchProgressNotifyInterval time.Duration

	// WatchRingEvents and WatchRingBytes bound the in-memory watch history
	// (defaults in package watchhub).
	WatchRingEvents int
	WatchRingBytes  int64

	// CompactInterval turns on retention for users without an apiserver:
	// every interval, compact to the revision current one interval before,
	// keeping at least CompactMinRetain revisions. 0 (default) leaves
	// compaction to clients, as etcd and kine do.
	CompactInterval  time.Duration
	CompactMinRetain int64
	// CompactBatchSize is how many revisions one compaction step covers.
	CompactBatchSize int64

	// NoFsync skips the fsync of each commit: faster, and a power cut may
	// lose the last acknowledged writes (a process crash loses none).
	NoFsync bool

	// MaxRequestBytes and MaxTxnOps are etcd's request limits (defaults in
	// package server).
	MaxRequestBytes int
	MaxTxnOps       int

	// MaxConcurrentStreams bounds the gRPC streams (calls in flight, watch
	// and keep-alive streams) of one client connection; a client beyond it
	// waits for one of its streams to end, as HTTP/2 prescribes. Default
	// server.DefaultMaxConcurrentStreams (1000; etcd's is unbounded).
	MaxConcurrentStreams uint32

	// MaxWatchesPerConnection bounds the watches of one client connection,
	// over all its watch streams; a create beyond it is refused with the
	// reason "etcdserver: too many watches on one connection (limit N)...",
	// which client/v3 returns as the watch's error. With a caller's
	// GRPCServer the bound applies per watch stream instead. Default
	// server.DefaultMaxWatchesPerConnection (10,000).
	MaxWatchesPerConnection int

	// Logger receives kinelite's logs. Nil: no logging.
	Logger *slog.Logger

	// MetricsRegisterer, when set, receives kinelite's metrics.
	MetricsRegisterer prometheus.Registerer

	// GRPCServer, when set, is the gRPC server kinelite registers its
	// services on and serves on its listener, for embedders that bring their
	// own interceptors; its options (keep-alive enforcement, message sizes,
	// credentials) are then the embedder's, and ServerTLS must be empty.
	// Close stops it.
	GRPCServer *grpc.Server

	// readOnly opens the datastore for inspection only (Check).
	readOnly bool
}

// BackendTLS names the PEM files for the connection to PostgreSQL.
type BackendTLS struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	SkipVerify bool
}

func (b BackendTLS) enabled() bool {
	return b.CAFile != "" || b.CertFile != "" || b.KeyFile != "" || b.SkipVerify
}

// ConnectionPool bounds the connections to PostgreSQL.
type ConnectionPool struct {
	MaxOpen     int
	MaxIdle     int
	MaxLifetime time.Duration
}

// TLSFiles names PEM files.
type TLSFiles struct {
	CertFile      string
	KeyFile       string
	TrustedCAFile string
}

func (f TLSFiles) enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

func (c *Config) setDefaults() {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.ListenAddress == "" {
		c.ListenAddress = DefaultListenAddress
	}
	if c.EmulatedETCDVersion == "" {
		c.EmulatedETCDVersion = server.DefaultVersion
	}
	if c.WatchProgressNotifyInterval <= 0 {
		c.WatchProgressNotifyInterval = DefaultWatchProgressNotifyInterval
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = server.DefaultMaxRequestBytes
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = server.DefaultMaxTxnOps
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = server.DefaultMaxConcurrentStreams
	}
	if c.MaxWatchesPerConnection <= 0 {
		c.MaxWatchesPerConnection = server.DefaultMaxWatchesPerConnection
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.ServerTLS.enabled() && (c.ServerTLS.CertFile == "" || c.ServerTLS.KeyFile == "") {
		return errors.New("kinelite: server TLS needs both a certificate and a key file")
	}
	if c.ServerTLS.TrustedCAFile != "" && !c.ServerTLS.enabled() {
		return errors.New("kinelite: a trusted CA file needs a server certificate and key")
	}
	if c.CompactInterval < 0 || c.CompactMinRetain < 0 || c.CompactBatchSize < 0 {
		return errors.New("kinelite: compaction settings must not be negative")
	}
	if c.GRPCServer != nil && c.ServerTLS.enabled() {
		return errors.New("kinelite: with a caller's gRPC server, TLS is configured on that server")
	}
	if c.WatchProgressNotifyInterval < 100*time.Millisecond {
		return errors.New("kinelite: the watch progress notify interval must be at least 100ms")
	}
	return nil
}

// Server is a running kinelite: the datastore, the etcd services and their
// listener.
type Server struct {
	cfg       Config
	log       *slog.Logger
	driver    backend.Driver
	store     *backend.Store
	hub       *watchhub.Hub
	compactor *compact.Compactor
	grpc      *grpc.Server
	listener  net.Listener
	endpoint  string
	clientTLS *tls.Config

	shutdown   context.CancelFunc
	serveErr   chan error
	closeOnce  sync.Once
	closeErr   error
	unregister func()
}

// Open opens the datastore (rebuilding the in-memory index), binds the
// listener and starts serving. Close stops everything it started.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	ok := false
	defer func() {
		if !ok {
			s.teardown(context.Background())
		}
	}()

	driver, err := openDriver(cfg)
	if err != nil {
		return nil, err
	}
	s.driver = driver
	s.store = backend.New(driver, backend.Config{Logger: cfg.Logger.With("component", "backend")})
	s.hub = watchhub.New(s.store, watchhub.Config{
		RingEvents:             cfg.WatchRingEvents,
		RingBytes:              cfg.WatchRingBytes,
		ProgressNotifyInterval: cfg.WatchProgressNotifyInterval,
		MaxRequestBytes:        cfg.MaxRequestBytes,
		MaxWatchesPerStream:    cfg.MaxWatchesPerConnection,
		Logger:                 cfg.Logger.With("component", "watchhub"),
	})
	s.store.SetEventSink(s.hub)
	if err := s.store.Start(ctx); err != nil {
		return nil, err
	}
	s.hub.Start()
	s.compactor = compact.New(s.store, compact.Config{
		BatchRevisions: cfg.CompactBatchSize,
		Interval:       cfg.CompactInterval,
		MinRetain:      cfg.CompactMinRetain,
		Logger:         cfg.Logger.With("component", "compact"),
	})
	s.compactor.Start()
	if cfg.MetricsRegisterer != nil {
		if err := s.registerMetrics(cfg.MetricsRegisterer); err != nil {
			return nil, err
		}
	}

	lis, endpoint, err := listen(cfg.ListenAddress, cfg.ServerTLS.enabled())
	if err != nil {
		return nil, err
	}
	s.listener, s.endpoint = lis, endpoint
	serverTLS, clientTLS, err := loadTLS(cfg.ServerTLS)
	if err != nil {
		return nil, err
	}
	s.clientTLS = clientTLS

	shutdownCtx, shutdown := context.WithCancel(context.Background())
	s.shutdown = shutdown
	opts := []grpc.ServerOption{
		// etcd's keep-alive policy: kube-apiserver pings every 30 s.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes + 512*1024),
		grpc.MaxSendMsgSize(math.MaxInt32),
		// Handlers run on long-lived workers rather than a new goroutine
		// per call: a new goroutine grows its stack through gRPC's and the
		// store's call depth on every request (runtime.newstack and
		// copystack took 6–8% of the server's CPU under write load).
		// Calls beyond the idle workers still get a goroutine of their own.
		grpc.NumStreamWorkers(streamWorkers),
	}
	opts = append(opts, server.ConnectionLimits(cfg.MaxConcurrentStreams, cfg.MaxWatchesPerConnection)...)
	if serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	s.grpc = cfg.GRPCServer
	if s.grpc == nil {
		s.grpc = grpc.NewServer(opts...)
	}
	id := memberID(cfg.Endpoint)
	server.New(server.Config{
		Store:     s.store,
		Compactor: s.compactor,
		Watcher:   s.hub,
		Member: server.Member{ClusterID: id ^ 0x6b696e656c697465, ID: id, Name: "kinelite",
			ClientURLs: func() []string { return []string{s.endpoint} }},
		Version:         cfg.EmulatedETCDVersion,
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxTxnOps:       cfg.MaxTxnOps,
		Logger:          cfg.Logger.With("component", "server"),
	}, shutdownCtx).Register(s.grpc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, hs)

	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.grpc.Serve(lis) }()
	s.log.Info("kinelite serving", "endpoint", endpoint, "datastore", redactDSN(cfg.Endpoint),
		"revision", s.store.CurrentRevision(), "tls", serverTLS != nil)
	ok = true
	return s, nil
}

// memberID derives a stable member ID from the datastore, so that it does
// not change across restarts.
func memberID(endpoint string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("kinelite\x00" + endpoint))
	return h.Sum64() | 1
}

// Endpoints returns the URLs clients connect to: "http://127.0.0.1:PORT"
// (https with TLS) or "unix://PATH" (unixs with TLS).
func (s *Server) Endpoints() []string { return []string{s.endpoint} }

// ClientTLSConfig returns a TLS configuration for clients of this server, or
// nil when it serves plain text. It trusts the trusted CA (when set) and
// presents the server's own certificate, which is what kine's embedders do;
// the certificate must then allow client authentication.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.Clone()
}

// Revision returns the store's current revision.
func (s *Server) Revision() int64 { return s.store.CurrentRevision() }

// Close stops serving: open watch and keep-alive streams end with
// Unavailable, in-flight requests finish (until ctx ends), then the store and
// the database close. It is safe to call more than once.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.teardown(ctx) })
	return s.closeErr
}

func (s *Server) teardown(ctx context.Context) error {
	var errs []error
	if s.shutdown != nil {
		s.shutdown()
	}
	if s.grpc != nil {
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.grpc.Stop()
			<-stopped
		}
		if err := <-s.serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errs = append(errs, err)
		}
	} else if s.listener != nil {
		s.listener.Close()
	}
	if s.compactor != nil {
		s.compactor.Close()
	}
	if s.store != nil {
		if err := s.store.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.hub != nil {
		s.hub.Close()
	}
	if s.unregister != nil {
		s.unregister()
	}
	if s.driver != nil {
		if err := s.driver.Close(); err != nil {
			errs = append(errs, fmt.Errorf("kinelite: close database: %w", err))
		}
	}
	return errors.Join(errs...)
}
