package test

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/kinelite/kinelite"
)

// opTimeout bounds every single call to a server. It is not a performance
// assertion: a call that takes this long is hung, and the test says so
// instead of running into go test's global timeout.
const opTimeout = 60 * time.Second

// kineliteServer is an in-process kinelite on a SQLite file, with a
// client; it can be restarted on the same file.
type kineliteServer struct {
	t   testing.TB
	cfg kinelite.Config
	srv *kinelite.Server
	cli *clientv3.Client
}

// startKinelite opens an in-process kinelite on a fresh SQLite file, with a
// client for it. Both are closed when the test ends. Options, if given,
// change the configuration first.
func startKinelite(t testing.TB, options ...func(*kinelite.Config)) *kineliteServer {
	t.Helper()
	ks := &kineliteServer{t: t, cfg: kinelite.Config{
		Endpoint:      "sqlite://" + filepath.Join(t.TempDir(), "state.db"),
		ListenAddress: "127.0.0.1:0",
		// Durability is the crash test's subject; here it only costs time.
		NoFsync: true,
	}}
	for _, o := range options {
		o(&ks.cfg)
	}
	ks.open()
	t.Cleanup(ks.close)
	return ks
}

func (ks *kineliteServer) open() {
	ks.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	srv, err := kinelite.Open(ctx, ks.cfg)
	if err != nil {
		ks.t.Fatalf("kinelite.Open: %v", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: opTimeout, Logger: zap.NewNop()})
	if err != nil {
		srv.Close(ctx)
		ks.t.Fatalf("client for kinelite: %v", err)
	}
	ks.srv, ks.cli = srv, cli
}

func (ks *kineliteServer) close() {
	if ks.cli != nil {
		ks.cli.Close()
		ks.cli = nil
	}
	if ks.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := ks.srv.Close(ctx); err != nil {
			ks.t.Errorf("kinelite Close: %v", err)
		}
		ks.srv = nil
	}
}

// restart closes kinelite and opens it again on the same file (on a new
// port, with a new client): the index is rebuilt from the table.
func (ks *kineliteServer) restart() {
	ks.t.Helper()
	ks.close()
	ks.open()
}

// smallWatchRing keeps kinelite's in-memory watch history to a few events,
// so that watches from older revisions catch up from the database.
func smallWatchRing(c *kinelite.Config) { c.WatchRingEvents = 4 }

// startEtcd runs an embedded etcd in a temporary directory on free loopback
// ports and returns a client for it.
func startEtcd(t testing.TB) *clientv3.Client {
	t.Helper()
	var lastErr error
	// The free ports are found by binding and releasing them, so another
	// process may take one in between; try a few times.
	for attempt := 0; attempt < 3; attempt++ {
		e, err := tryStartEtcd(t)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(e.Close)
		return newClient(t, []string{e.Clients[0].Addr().String()})
	}
	t.Fatalf("start etcd: %v", lastErr)
	return nil
}

func tryStartEtcd(t testing.TB) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "differential"
	cfg.Dir = t.TempDir()
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(opTimeout):
		e.Close()
		return nil, context.DeadlineExceeded
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func newClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: opTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
