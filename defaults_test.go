package kinelite_test

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite"
)

// TestZeroConfig opens a server from the zero Config: 127.0.0.1:2379 over
// ./db/state.db, the documented defaults.
func TestZeroConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	srv, err := kinelite.Open(context.Background(), kinelite.Config{})
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Skip("127.0.0.1:2379 is taken on this machine; the zero Config needs it")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	if ep := srv.Endpoints(); len(ep) != 1 || ep[0] != "http://127.0.0.1:2379" {
		t.Fatalf("endpoints %v", ep)
	}
	if srv.ClientTLSConfig() != nil {
		t.Fatal("a plain-text server returned a TLS config")
	}
	c := newClient(t, srv.Endpoints())
	defer c.Close()
	must[*clientv3.PutResponse](t)(c.Put(ctxT(t), "k", "v"))
	if _, err := os.Stat("db/state.db"); err != nil {
		t.Fatalf("the default database is not at ./db/state.db: %v", err)
	}
	// Loopback only by default.
	host, _, _ := net.SplitHostPort(srv.Endpoints()[0][len("http://"):])
	if !net.ParseIP(host).IsLoopback() {
		t.Fatalf("default listener on %s", host)
	}
}
