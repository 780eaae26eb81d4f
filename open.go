package kinelite

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/check"
	"github.com/kinelite/kinelite/backend/postgres"
	"github.com/kinelite/kinelite/backend/sqlite"
	"github.com/kinelite/kinelite/internal/redact"
)

// Check verifies the invariants of the database a DSN names (see package
// backend/check), reading it without writing; a running kinelite may keep
// serving meanwhile.
func Check(ctx context.Context, endpoint string) (*check.Report, error) {
	cfg := Config{Endpoint: endpoint, readOnly: true}
	cfg.setDefaults()
	d, err := openDriver(cfg)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return check.Run(ctx, d)
}

// openDriver opens the datastore a DSN names.
func openDriver(cfg Config) (backend.Driver, error) {
	scheme, _, hasScheme := strings.Cut(cfg.Endpoint, "://")
	if !hasScheme {
		scheme = "sqlite"
	}
	switch scheme {
	case "sqlite":
		dsn := cfg.Endpoint
		if !hasScheme {
			dsn = "sqlite://" + dsn
		}
		sc, ignored, err := sqlite.ParseDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("kinelite: endpoint: %w", err)
		}
		if len(ignored) > 0 {
			cfg.Logger.Info("ignoring kine's SQLite DSN parameters; kinelite sets its own pragmas", "parameters", ignored)
		}
		sc.NoFsync = cfg.NoFsync
		sc.ReadOnly = cfg.readOnly
		return sqlite.Open(sc)
	case "postgres", "postgresql":
		pc, err := postgres.ParseDSN(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("kinelite: endpoint: %w", err)
		}
		if cfg.BackendTLS.enabled() {
			if pc.TLS, err = backendTLSConfig(cfg.BackendTLS); err != nil {
				return nil, err
			}
		}
		pc.MaxOpenConns = cfg.ConnectionPool.MaxOpen
		pc.MaxIdleConns = cfg.ConnectionPool.MaxIdle
		pc.ConnMaxLifetime = cfg.ConnectionPool.MaxLifetime
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return postgres.Open(ctx, pc)
	default:
		return nil, fmt.Errorf("kinelite: endpoint: unsupported datastore scheme %q (use sqlite://PATH or postgres://...)", scheme)
	}
}

// backendTLSConfig builds the TLS configuration for PostgreSQL from files.
func backendTLSConfig(b BackendTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: b.SkipVerify} //nolint:gosec // asked for
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kinelite: backend TLS CA: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kinelite: backend TLS CA %s: no certificate found", b.CAFile)
		}
	}
	if b.CertFile != "" || b.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kinelite: backend TLS certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// redactDSN hides a DSN's secrets (password, secret parameters), for logs.
func redactDSN(dsn string) string { return redact.DSN(dsn) }

// listen binds the listen address and returns the endpoint URL clients
// should use.
func listen(address string, secure bool) (net.Listener, string, error) {
	scheme, rest, hasScheme := strings.Cut(address, "://")
	if !hasScheme {
		scheme, rest = "http", address
	}
	switch scheme {
	case "unix", "unixs":
		if rest == "" {
			return nil, "", errors.New("kinelite: listen address: unix socket path is empty")
		}
		if err := os.Remove(rest); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("kinelite: remove stale socket: %w", err)
		}
		lis, err := net.Listen("unix", rest)
		if err != nil {
			return nil, "", fmt.Errorf("kinelite: listen: %w", err)
		}
		if err := os.Chmod(rest, 0o600); err != nil {
			lis.Close()
			return nil, "", fmt.Errorf("kinelite: restrict socket: %w", err)
		}
		if secure {
			return lis, "unixs://" + rest, nil
		}
		return lis, "unix://" + rest, nil
	case "http", "https", "tcp":
		lis, err := net.Listen("tcp", rest)
		if err != nil {
			return nil, "", fmt.Errorf("kinelite: listen: %w", err)
		}
		addr := lis.Addr().(*net.TCPAddr)
		host := addr.IP.String()
		if addr.IP.IsUnspecified() {
			host = "127.0.0.1"
		}
		out := "http"
		if secure {
			out = "https"
		}
		return lis, out + "://" + net.JoinHostPort(host, fmt.Sprint(addr.Port)), nil
	default:
		return nil, "", fmt.Errorf("kinelite: listen address %q: unsupported scheme %q", address, scheme)
	}
}

// loadTLS builds the server's TLS configuration and the matching client
// configuration; both nil when TLS is off.
func loadTLS(files TLSFiles) (serverTLS, clientTLS *tls.Config, err error) {
	if !files.enabled() {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("kinelite: server certificate: %w", err)
	}
	serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	clientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if files.TrustedCAFile != "" {
		pem, err := os.ReadFile(files.TrustedCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("kinelite: trusted CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("kinelite: trusted CA %s: no certificate found", files.TrustedCAFile)
		}
		serverTLS.ClientCAs = pool
		serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
		clientTLS.RootCAs = pool
	}
	return serverTLS, clientTLS, nil
}

// registerMetrics registers every component's collectors; Close unregisters
// them, so that a registry can outlive the server.
func (s *Server) registerMetrics(reg prometheus.Registerer) error {
	var done []prometheus.Collector
	collectors := append(s.store.Collectors(), s.hub.Collectors()...)
	for _, c := range append(collectors, s.compactor.Collectors()...) {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return fmt.Errorf("kinelite: register metrics: %w", err)
		}
		done = append(done, c)
	}
	s.unregister = func() {
		for _, d := range done {
			reg.Unregister(d)
		}
	}
	return nil
}
