package servers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// etcdQuotaBytes raises etcd's backend quota from its 2 GiB default so that
// the start-up database (a million 1 KiB rows) fits with room to spare. It
// changes no durability or performance setting.
const etcdQuotaBytes = 8 << 30

func init() {
	register(&Kind{
		Name: "etcd",
		Durability: "embedded etcd (go.etcd.io/etcd/server/v3/embed) with its defaults: " +
			"fsync of the WAL on every raft commit, bbolt committed every 100 ms or 10,000 writes " +
			"(quota raised to 8 GiB, nothing else changed)",
		MultiOpTxn:     true,
		RevisionPerTxn: true,
		Store:          dirStore{name: "bbolt + WAL"},
		serve:          serveEtcd,
	})
}

// etcdPorts are the ports a data directory's member was created with. etcd
// records its peer URL in the data directory, so a restart (the start-up
// workload runs on a copy of a data directory) reuses them.
type etcdPorts struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func etcdPortsFor(dataDir string) (etcdPorts, error) {
	path := filepath.Join(dataDir, "bench-ports.json")
	var p etcdPorts
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &p); err != nil {
			return p, fmt.Errorf("etcd: %s: %w", path, err)
		}
		// The client port need not be the same; pick a fresh one in case the
		// old one is taken.
		c, err := freePort()
		if err != nil {
			return p, err
		}
		p.Client = c
		return p, nil
	}
	var err error
	if p.Client, err = freePort(); err != nil {
		return p, err
	}
	if p.Peer, err = freePort(); err != nil {
		return p, err
	}
	b, _ := json.Marshal(p)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return p, err
	}
	return p, os.WriteFile(path, b, 0o600)
}

func serveEtcd(ctx context.Context, o serveOptions) (string, func(context.Context) error, error) {
	ports, err := etcdPortsFor(o.DataDir)
	if err != nil {
		return "", nil, err
	}
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports.Client)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports.Peer)}
	cfg := embed.NewConfig()
	cfg.Name = "bench"
	cfg.Dir = filepath.Join(o.DataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	cfg.QuotaBackendBytes = etcdQuotaBytes
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return "", nil, fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return "", nil, ctx.Err()
	case <-time.After(10 * time.Minute):
		e.Close()
		return "", nil, errors.New("etcd: not ready after 10 minutes")
	}
	stop := func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { e.Close(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("etcd: stop: %w", ctx.Err())
		}
	}
	return client.String(), stop, nil
}
