package kinelite_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
	"github.com/kinelite/kinelite/internal/syncbuf"
	"github.com/kinelite/kinelite/server"
)

// Secrets planted in DSNs; none may reach a log line or an error.
var dsnSecrets = []string{"S3cretUserPW", "S3cretQueryPW", "S3cretSSLPW"}

func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range dsnSecrets {
		if strings.Contains(text, s) {
			t.Errorf("%s holds the secret %q:\n%s", what, s, text)
		}
	}
}

// TestDSNSecretsNeverLogged opens kinelite with DSNs carrying a password in
// their user information and in query parameters (password, sslpassword),
// capturing every log line at debug level: neither a failing open nor a
// succeeding one (PostgreSQL, when the test has one) writes a secret to a log
// line or an error.
func TestDSNSecretsNeverLogged(t *testing.T) {
	dir := t.TempDir()
	failing := []string{
		// Nothing listens on port 1: the connection fails.
		"postgres://admin:S3cretUserPW@127.0.0.1:1/kine?sslmode=disable&connect_timeout=2&password=S3cretQueryPW&sslpassword=S3cretSSLPW",
		"postgresql://admin:S3cretUserPW@127.0.0.1:1/kine?connect_timeout=2",
		// Malformed: a '/' in the password makes the rest unparseable.
		"postgres://admin:S3cretUserPW/x@127.0.0.1:1/kine",
		"postgres://admin:S3cretUserPW@127.0.0.1:1/a/b?password=S3cretQueryPW",
		"sqlite://" + filepath.Join(dir, "x.db") + "?_auth_pass=S3cretQueryPW",
		"mysql://admin:S3cretUserPW@tcp(127.0.0.1:1)/kine?password=S3cretQueryPW",
	}
	for i, dsn := range failing {
		t.Run(fmt.Sprint("failing", i), func(t *testing.T) {
			var logs syncbuf.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv, err := kinelite.Open(ctx, kinelite.Config{Endpoint: dsn, ListenAddress: "127.0.0.1:0",
				Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err == nil {
				srv.Close(context.Background())
				t.Fatalf("opened %q", dsn)
			}
			assertNoSecret(t, "the error", err.Error())
			assertNoSecret(t, "the log", logs.String())
		})
	}

	t.Run("succeeding", func(t *testing.T) {
		u, err := url.Parse(pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		// The test server trusts its clients; the planted passwords are
		// sent and ignored.
		if _, has := u.User.Password(); !has {
			u.User = url.UserPassword(u.User.Username(), "S3cretUserPW")
		}
		q := u.Query()
		q.Set("password", "S3cretQueryPW")
		q.Set("sslpassword", "S3cretSSLPW")
		u.RawQuery = q.Encode()
		var logs syncbuf.Buffer
		srv, err := kinelite.Open(context.Background(), kinelite.Config{Endpoint: u.String(), ListenAddress: "127.0.0.1:0",
			Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			assertNoSecret(t, "the error", err.Error())
			t.Fatalf("open PostgreSQL: %v", err)
		}
		c := newClient(t, srv.Endpoints())
		if _, err := c.Put(ctxT(t), "k", "v"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := srv.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "kinelite serving") {
			t.Fatalf("no start-up log line captured: %s", logs.String())
		}
		assertNoSecret(t, "the log", logs.String())
	})
}

// TestRequestSizeLimits checks etcd's request limits end to end with
// client/v3: a write just under max-request-bytes (1.5 MiB) is accepted, one
// over it is refused with etcd's "request is too large", one over the gRPC
// message limit (max-request-bytes + 512 KiB, as etcd sets it) with
// ResourceExhausted; 128 ops in a transaction are accepted, 129 refused;
// responses may exceed the request limit; nothing refused changes the store.
func TestRequestSizeLimits(t *testing.T) {
	ts := startServer(t)
	ctx := ctxT(t)
	c := ts.client

	near := strings.Repeat("v", server.DefaultMaxRequestBytes-1024)
	if _, err := c.Put(ctx, "near1", near); err != nil {
		t.Fatalf("a put just under the limit: %v", err)
	}
	if _, err := c.Put(ctx, "near2", near); err != nil {
		t.Fatalf("a put just under the limit: %v", err)
	}
	// A response above the request limit is fine (etcd sends up to 2 GiB).
	g, err := c.Get(ctx, "near", clientv3.WithPrefix())
	if err != nil || len(g.Kvs) != 2 {
		t.Fatalf("a 3 MiB range: %v", err)
	}
	rev := g.Header.Revision

	_, err = c.Put(ctx, "over", strings.Repeat("v", server.DefaultMaxRequestBytes+1))
	if !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("a put over max-request-bytes: %v, want %v", err, rpctypes.ErrRequestTooLarge)
	}
	_, err = c.Txn(ctx).Then(clientv3.OpPut("a", strings.Repeat("v", 800<<10)), clientv3.OpPut("b", strings.Repeat("v", 800<<10))).Commit()
	if !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("a txn over max-request-bytes: %v", err)
	}
	// client/v3 sends at most 2 MiB unless told otherwise; this one sends
	// more, for the server to refuse.
	big, err := clientv3.New(clientv3.Config{Endpoints: ts.srv.Endpoints(), DialTimeout: 5 * time.Second,
		MaxCallSendMsgSize: 8 << 20, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	_, err = big.Put(ctx, "way-over", strings.Repeat("v", server.DefaultMaxRequestBytes+600*1024))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "received message larger than max") {
		t.Fatalf("a put over the gRPC message limit: %v, want the server's ResourceExhausted", err)
	}
	if _, err := big.Get(ctx, "near1", clientv3.WithCountOnly()); err != nil {
		t.Fatalf("the connection after a refused message: %v", err)
	}

	ops := func(n int) []clientv3.Op {
		out := make([]clientv3.Op, n)
		for i := range out {
			out[i] = clientv3.OpGet(fmt.Sprint("k", i))
		}
		return out
	}
	if _, err := c.Txn(ctx).Then(ops(server.DefaultMaxTxnOps)...).Commit(); err != nil {
		t.Fatalf("a txn of %d ops: %v", server.DefaultMaxTxnOps, err)
	}
	if _, err := c.Txn(ctx).Then(ops(server.DefaultMaxTxnOps + 1)...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("a txn of %d ops: %v", server.DefaultMaxTxnOps+1, err)
	}
	if now := ts.srv.Revision(); now != rev {
		t.Fatalf("refused requests moved the revision from %d to %d", rev, now)
	}
	// A server still answers after a refused oversized message.
	if _, err := c.Get(ctx, "near1", clientv3.WithCountOnly()); err != nil {
		t.Fatal(err)
	}
}

// TestRequestLimitsConfigurable lowers both limits.
func TestRequestLimitsConfigurable(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) { c.MaxRequestBytes = 4096; c.MaxTxnOps = 3 })
	ctx := ctxT(t)
	if _, err := ts.client.Put(ctx, "k", strings.Repeat("v", 4000)); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Put(ctx, "k", strings.Repeat("v", 4097)); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("over a 4 KiB limit: %v", err)
	}
	// The gRPC limit follows: max-request-bytes + 512 KiB.
	if _, err := ts.client.Put(ctx, "k", strings.Repeat("v", 4096+513*1024)); status.Code(err) != codes.ResourceExhausted ||
		!strings.Contains(err.Error(), "received message larger than max") {
		t.Fatalf("over the gRPC limit: %v", err)
	}
	three := []clientv3.Op{clientv3.OpGet("a"), clientv3.OpGet("b"), clientv3.OpGet("c")}
	if _, err := ts.client.Txn(ctx).Then(three...).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Txn(ctx).Then(append(three, clientv3.OpGet("d"))...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("4 ops over a limit of 3: %v", err)
	}
}

// streamCtx returns a context whose watches client/v3 puts on a gRPC stream
// of their own (it groups watches by their outgoing metadata).
func streamCtx(ctx context.Context, i int) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "stream", fmt.Sprint(i))
}

// watchCreated starts a watch and waits for its created response, or for
// the response that refuses it.
func watchCreated(t *testing.T, c *clientv3.Client, ctx context.Context, key string) (clientv3.WatchChan, clientv3.WatchResponse) {
	t.Helper()
	wc := c.Watch(ctx, key, clientv3.WithCreatedNotify())
	select {
	case resp := <-wc:
		return wc, resp
	case <-time.After(20 * time.Second):
		t.Fatalf("no answer to the watch on %q", key)
		return nil, clientv3.WatchResponse{}
	}
}

// TestWatchesPerConnectionBounded: a connection holds at most
// MaxWatchesPerConnection watches over all its streams; the next create is
// refused with a reason client/v3 returns as the watch's error, another
// connection is not affected, and a cancel frees a place.
func TestWatchesPerConnectionBounded(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) { c.MaxWatchesPerConnection = 3 })
	c := ts.client
	base := ctxT(t)

	// Two watches on one stream, one on another: three on the connection.
	first, cancelFirst := context.WithCancel(streamCtx(base, 1))
	defer cancelFirst()
	for _, k := range []string{"a", "b"} {
		if _, resp := watchCreated(t, c, first, k); !resp.Created || resp.Err() != nil {
			t.Fatalf("watch %q: %+v %v", k, resp, resp.Err())
		}
	}
	second, cancelSecond := context.WithCancel(streamCtx(base, 2))
	defer cancelSecond()
	if _, resp := watchCreated(t, c, second, "c"); !resp.Created || resp.Err() != nil {
		t.Fatalf("watch c: %+v %v", resp, resp.Err())
	}

	// The fourth is refused, on a third stream too.
	third, cancelThird := context.WithCancel(streamCtx(base, 3))
	defer cancelThird()
	_, resp := watchCreated(t, c, third, "d")
	if !resp.Canceled || resp.Err() == nil || !strings.Contains(resp.Err().Error(), "too many watches on one connection (limit 3)") {
		t.Fatalf("the fourth watch of the connection: %+v, err %v", resp, resp.Err())
	}

	// Another connection has a budget of its own.
	other := newClient(t, ts.srv.Endpoints())
	defer other.Close()
	if _, resp := watchCreated(t, other, base, "e"); !resp.Created || resp.Err() != nil {
		t.Fatalf("a watch on another connection: %+v %v", resp, resp.Err())
	}

	// Ending the second stream frees its place on the connection.
	cancelSecond()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithCancel(streamCtx(base, 4))
		_, resp := watchCreated(t, c, ctx, "f")
		if resp.Created && resp.Err() == nil {
			cancel()
			break
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("no place freed after a stream ended: %v", resp.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchesPerStreamWithCallersGRPCServer: with an embedder's gRPC server
// (no per-connection tagging) the same bound applies to each watch stream.
func TestWatchesPerStreamWithCallersGRPCServer(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) {
		c.GRPCServer = grpc.NewServer()
		c.MaxWatchesPerConnection = 2
	})
	c := ts.client
	base := ctxT(t)
	for i := range 2 { // two streams, two watches each
		ctx := streamCtx(base, i)
		for _, k := range []string{"a", "b"} {
			if _, resp := watchCreated(t, c, ctx, k); !resp.Created || resp.Err() != nil {
				t.Fatalf("stream %d, watch %q: %v", i, k, resp.Err())
			}
		}
		_, resp := watchCreated(t, c, ctx, "c")
		if resp.Err() == nil || !strings.Contains(resp.Err().Error(), "too many watches on one stream (limit 2)") {
			t.Fatalf("stream %d, third watch: %+v %v", i, resp, resp.Err())
		}
	}
}

// TestConcurrentStreamsPerConnectionBounded: with MaxConcurrentStreams 3, a
// connection holding three watch streams gets no fourth stream until one
// ends (gRPC makes the call wait, as HTTP/2 prescribes); other connections
// are not affected.
func TestConcurrentStreamsPerConnectionBounded(t *testing.T) {
	ts := startServer(t, func(c *kinelite.Config) { c.MaxConcurrentStreams = 3 })
	c := ts.client
	base := ctxT(t)
	cancels := make([]context.CancelFunc, 3)
	for i := range cancels {
		ctx, cancel := context.WithCancel(streamCtx(base, i))
		cancels[i] = cancel
		defer cancel()
		if _, resp := watchCreated(t, c, ctx, "k"); !resp.Created {
			t.Fatalf("watch stream %d: %v", i, resp.Err())
		}
	}
	// A fourth stream on the connection waits: the call cannot start.
	ctx, cancel := context.WithTimeout(base, 500*time.Millisecond)
	_, err := c.Get(ctx, "k")
	cancel()
	if status.Code(err) != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fourth concurrent stream: %v, want it to wait", err)
	}
	// Another connection is served.
	other := newClient(t, ts.srv.Endpoints())
	defer other.Close()
	if _, err := other.Get(base, "k"); err != nil {
		t.Fatalf("another connection: %v", err)
	}
	// Ending one stream lets the call through.
	cancels[0]()
	if _, err := c.Get(base, "k"); err != nil {
		t.Fatalf("after a stream ended: %v", err)
	}
}

// TestConnectionLimitDefaults documents the defaults.
func TestConnectionLimitDefaults(t *testing.T) {
	if server.DefaultMaxConcurrentStreams != 1000 || server.DefaultMaxWatchesPerConnection != 10_000 ||
		server.DefaultMaxRequestBytes != 1<<20+1<<19 || server.DefaultMaxTxnOps != 128 {
		t.Fatal("the documented defaults changed; update README and kinelite.Config")
	}
}
