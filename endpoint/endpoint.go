// Package endpoint is kine's embedding API on top of kinelite: an embedder
// that calls kine's endpoint.Listen today (k3s, vCluster style) switches by
// changing the import path. Fields that have no meaning for kinelite are
// accepted and ignored, and say so.
package endpoint

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/kinelite/kinelite"
)

// KineSocket is kine's default listener.
const KineSocket = "unix://kine.sock"

// TLSConfig names PEM files, as kine's tls.Config does.
type TLSConfig struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	SkipVerify bool
}

// ConnectionPoolConfig is kine's database pool settings (used by the
// PostgreSQL backend; SQLite manages its own connections).
type ConnectionPoolConfig struct {
	MaxIdle     int
	MaxOpen     int
	MaxLifetime time.Duration
	MaxIdleTime time.Duration
}

// Config mirrors kine's endpoint.Config.
type Config struct {
	// GRPCServer, when set, is the server kinelite registers on and serves;
	// its options (keep-alive, message sizes) are then the caller's.
	GRPCServer *grpc.Server
	// WaitGroup, when set, is held until the server has stopped after ctx
	// ends.
	WaitGroup *sync.WaitGroup
	// Listener is where clients connect; empty means KineSocket.
	Listener string
	// Endpoint is the datastore DSN; empty means kinelite's default SQLite
	// file.
	Endpoint             string
	ConnectionPoolConfig ConnectionPoolConfig
	ServerTLSConfig      TLSConfig
	BackendTLSConfig     TLSConfig
	MetricsRegisterer    prometheus.Registerer
	// NotifyInterval is the watch progress-notify interval.
	NotifyInterval      time.Duration
	EmulatedETCDVersion string
	CompactInterval     time.Duration
	// CompactIntervalJitter and CompactTimeout are accepted and ignored.
	CompactIntervalJitter int
	CompactTimeout        time.Duration
	CompactMinRetain      int64
	CompactBatchSize      int64
	// PollBatchSize and LogFormat are accepted and ignored: kinelite does
	// not poll, and logs through the caller's slog default.
	PollBatchSize int64
	LogFormat     string
}

// ETCDConfig is what a client needs to reach the server.
type ETCDConfig struct {
	Endpoints []string
	TLSConfig TLSConfig
	// LeaderElect tells the embedder whether several servers may share the
	// datastore (and so need leader election): false for SQLite.
	LeaderElect bool
}

// Listen starts kinelite as kine's Listen starts kine, and stops it when ctx
// ends.
func Listen(ctx context.Context, config Config) (ETCDConfig, error) {
	if config.BackendTLSConfig != (TLSConfig{}) && !isPostgres(config.Endpoint) {
		return ETCDConfig{}, errors.New("endpoint: backend TLS settings apply to PostgreSQL only")
	}
	listen := config.Listener
	if listen == "" {
		listen = KineSocket
	}
	srv, err := kinelite.Open(ctx, kinelite.Config{
		Endpoint:      config.Endpoint,
		ListenAddress: listen,
		ServerTLS: kinelite.TLSFiles{
			CertFile:      config.ServerTLSConfig.CertFile,
			KeyFile:       config.ServerTLSConfig.KeyFile,
			TrustedCAFile: config.ServerTLSConfig.CAFile,
		},
		EmulatedETCDVersion:         config.EmulatedETCDVersion,
		WatchProgressNotifyInterval: config.NotifyInterval,
		CompactInterval:             config.CompactInterval,
		CompactMinRetain:            config.CompactMinRetain,
		CompactBatchSize:            config.CompactBatchSize,
		MetricsRegisterer:           config.MetricsRegisterer,
		GRPCServer:                  config.GRPCServer,
	})
	if err != nil {
		return ETCDConfig{}, err
	}
	if config.WaitGroup != nil {
		config.WaitGroup.Add(1)
	}
	go func() {
		<-ctx.Done()
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(closeCtx)
		if config.WaitGroup != nil {
			config.WaitGroup.Done()
		}
	}()
	out := ETCDConfig{Endpoints: srv.Endpoints(), LeaderElect: isPostgres(config.Endpoint)}
	if config.ServerTLSConfig.CertFile != "" {
		out.TLSConfig = TLSConfig{
			CAFile:   config.ServerTLSConfig.CAFile,
			CertFile: config.ServerTLSConfig.CertFile,
			KeyFile:  config.ServerTLSConfig.KeyFile,
		}
	}
	return out, nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
