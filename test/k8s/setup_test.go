package k8s

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.uber.org/zap"

	"k8s.io/apimachinery/pkg/api/apitesting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	etcdfeature "k8s.io/apiserver/pkg/storage/feature"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/utils/clock"

	"github.com/kinelite/kinelite"
	"github.com/kinelite/kinelite/backend/postgres/pgtest"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	utilruntime.Must(example.AddToScheme(scheme))
	utilruntime.Must(examplev1.AddToScheme(scheme))
}

// storedPrefix is what the default transformer puts before every stored
// value, as in the upstream tests.
const storedPrefix = "test!"

// maxLimit is the etcd3 store's largest page size (unexported upstream).
const maxLimit = 10000

// opTimeout bounds a single start or stop; a call that takes this long is
// hung. It is not a performance assertion.
const opTimeout = time.Minute

func newPod() runtime.Object     { return &example.Pod{} }
func newPodList() runtime.Object { return &example.PodList{} }

// startKinelite opens a fresh in-process kinelite on a temporary SQLite file
// (or, with $KINELITE_TEST_BACKEND=postgres, on a new database of the
// PostgreSQL server package pgtest names) and returns a kubernetes client
// for it, wrapped in the suite's recorders the way the apiserver's
// testserver.RunEtcd wraps its client. Both close when the test ends.
// progressInterval, when not zero, is the server's progress-notify interval.
func startKinelite(t testing.TB, progressInterval time.Duration) *kubernetes.Client {
	t.Helper()
	endpoint := "sqlite://" + filepath.Join(t.TempDir(), "state.db")
	if os.Getenv("KINELITE_TEST_BACKEND") == "postgres" {
		endpoint = pgtest.NewDatabase(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	srv, err := kinelite.Open(ctx, kinelite.Config{
		Endpoint:                    endpoint,
		ListenAddress:               "127.0.0.1:0",
		NoFsync:                     true, // durability is not this suite's subject
		WatchProgressNotifyInterval: progressInterval,
	})
	if err != nil {
		t.Fatalf("kinelite.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("kinelite Close: %v", err)
		}
	})
	cli, err := kubernetes.New(clientv3.Config{
		Endpoints:   srv.Endpoints(),
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client for kinelite: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	rec := storagetesting.NewKubernetesRecorder(cli.Kubernetes)
	cli.KV = storagetesting.NewKVRecorder(cli.KV, rec)
	cli.Kubernetes = rec
	return cli
}

// swappableTransformer is the one value.Transformer the store and its
// watcher share; tests replace the transformer inside it, which is what the
// upstream tests do by writing the store's unexported fields.
type swappableTransformer struct {
	mu    sync.RWMutex
	inner value.Transformer
}

func (s *swappableTransformer) get() value.Transformer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.inner
}

// swap installs next and returns the transformer it replaced.
func (s *swappableTransformer) swap(next value.Transformer) value.Transformer {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.inner
	s.inner = next
	return prev
}

func (s *swappableTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	return s.get().TransformFromStorage(ctx, data, dataCtx)
}

func (s *swappableTransformer) TransformToStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, error) {
	return s.get().TransformToStorage(ctx, data, dataCtx)
}

// setup describes one etcd3 store; the with* options change it.
type setup struct {
	progressInterval time.Duration
	codec            runtime.Codec
	transformer      value.Transformer
	prefix           string
	resourcePrefix   string
	leases           etcd3.LeaseManagerConfig
}

type option func(*setup)

func withProgressInterval(d time.Duration) option  { return func(s *setup) { s.progressInterval = d } }
func withCodec(c runtime.Codec) option             { return func(s *setup) { s.codec = c } }
func withTransformer(tr value.Transformer) option  { return func(s *setup) { s.transformer = tr } }
func withPrefix(p string) option                   { return func(s *setup) { s.prefix = p } }
func withLeases(l etcd3.LeaseManagerConfig) option { return func(s *setup) { s.leases = l } }

// env is one test's kinelite, client and etcd3 store.
type env struct {
	ctx    context.Context
	client *kubernetes.Client
	store  storage.Interface
	// compactRevision is the store's CompactRevision (an exported method
	// of the unexported type etcd3.New returns).
	compactRevision func() int64
	// enableSizeEstimation is the store's EnableResourceSizeEstimation.
	enableSizeEstimation func(storage.KeysFunc) error
	transformer          *swappableTransformer
	// prefixTransformer is the default transformer, whose reads the call
	// validations count; nil when a test gave its own.
	prefixTransformer *storagetesting.PrefixTransformer
	codec             runtime.Codec
	// keyPrefix is where the store keeps its objects.
	keyPrefix string
}

// newEnv starts a kinelite and builds an etcd3 store over it the way the
// apiserver's store_test.go testSetup does: no compaction loop, the test
// codec, prefix "" and resource prefix "/pods/", the "test!" prefix
// transformer, leases reused for 1 s.
func newEnv(t *testing.T, options ...option) *env {
	t.Helper()
	pt := storagetesting.NewPrefixTransformer([]byte(storedPrefix), false)
	leases := etcd3.NewDefaultLeaseManagerConfig()
	leases.ReuseDurationSeconds = 1 // the suite's TTL cases wait at most 30 s
	s := setup{
		codec:          apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion),
		transformer:    pt,
		prefix:         "",
		resourcePrefix: "/pods/",
		leases:         leases,
	}
	for _, o := range options {
		o(&s)
	}
	if s.transformer != value.Transformer(pt) {
		pt = nil
	}
	cli := startKinelite(t, s.progressInterval)
	compactor := etcd3.NewCompactor(cli.Client, 0, clock.RealClock{}, nil)
	t.Cleanup(compactor.Stop)
	tr := &swappableTransformer{inner: s.transformer}
	versioner := storage.APIObjectVersioner{}
	st, err := etcd3.New(cli, compactor, s.codec, newPod, newPodList, s.prefix, s.resourcePrefix,
		schema.GroupResource{Resource: "pods"}, tr, s.leases, etcd3.NewDefaultDecoder(s.codec, versioner), versioner)
	if err != nil {
		t.Fatalf("etcd3.New: %v", err)
	}
	t.Cleanup(st.Close)
	return &env{
		ctx:                  context.Background(),
		client:               cli,
		store:                st,
		compactRevision:      st.CompactRevision,
		enableSizeEstimation: st.EnableResourceSizeEstimation,
		transformer:          tr,
		prefixTransformer:    pt,
		codec:                s.codec,
		keyPrefix:            path.Join("/", s.prefix, s.resourcePrefix) + "/",
	}
}

func (e *env) kvRecorder() *storagetesting.KVRecorder {
	return e.client.KV.(*storagetesting.KVRecorder)
}

func (e *env) kubernetesRecorder() *storagetesting.KubernetesRecorder {
	return e.client.Kubernetes.(*storagetesting.KubernetesRecorder)
}

// prefixTransformerStore makes env's store a
// storagetesting.InterfaceWithPrefixTransformer: UpdatePrefixTransformer
// hands the modifier a copy of the default prefix transformer.
func (e *env) prefixTransformerStore() storagetesting.InterfaceWithPrefixTransformer {
	return &prefixTransformerStore{Interface: e.store, env: e}
}

type prefixTransformerStore struct {
	storage.Interface
	env *env
}

func (p *prefixTransformerStore) UpdatePrefixTransformer(modify storagetesting.PrefixTransformerModifier) func() {
	orig, ok := p.env.transformer.get().(*storagetesting.PrefixTransformer)
	if !ok {
		panic("UpdatePrefixTransformer needs the default prefix transformer")
	}
	cp := *orig
	prev := p.env.transformer.swap(modify(&cp))
	return func() { p.env.transformer.swap(prev) }
}

// transformerOverrideStore makes store (env's store, or a wrapper of it) a
// storagetesting.InterfaceWithTransformerOverride.
func (e *env) transformerOverrideStore(store storage.Interface) storagetesting.InterfaceWithTransformerOverride {
	return &transformerOverrideStore{Interface: store, env: e}
}

type transformerOverrideStore struct {
	storage.Interface
	env *env
}

func (o *transformerOverrideStore) UpdateTransformer(modify storagetesting.TransformerModifier) func() {
	cur := o.env.transformer.get()
	prev := o.env.transformer.swap(modify(cur))
	return func() { o.env.transformer.swap(prev) }
}

// corruptObjectErr is the error the etcd3 store reports for an object its
// transformer cannot read: the upstream tests build the unexported value by
// hand, here the exported wrapper makes it.
func corruptObjectErr() error {
	_, _, err := etcd3.WithCorruptObjErrorHandlingTransformer(failingTransformer{}).
		TransformFromStorage(context.Background(), nil, nil)
	return err
}

type failingTransformer struct{}

func (failingTransformer) TransformFromStorage(context.Context, []byte, value.Context) ([]byte, bool, error) {
	return nil, false, errors.New("bits flipped")
}

func (failingTransformer) TransformToStorage(context.Context, []byte, value.Context) ([]byte, error) {
	return nil, errors.New("bits flipped")
}

// increaseRV writes a key outside the store's prefix with a plain Put and
// returns the new revision.
func increaseRV(cli *kubernetes.Client) storagetesting.IncreaseRVFunc {
	return func(ctx context.Context, t *testing.T) int64 {
		resp, err := cli.KV.Put(ctx, "increaseRV", "ok")
		if err != nil {
			t.Fatalf("Put increaseRV: %v", err)
		}
		return resp.Header.Revision
	}
}

// compaction compacts the server to a resource version the way the
// apiserver's compactor does (the compact_rev_key CAS, then Compact), and,
// when ListFromCacheSnapshot makes the store watch that key, waits until
// observed reports it.
func compaction(cli *kubernetes.Client, observed func() int64) storagetesting.Compaction {
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		t.Helper()
		rv64, err := storage.APIObjectVersioner{}.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		rv := int64(rv64)
		// The CAS on the key's version fails when another compaction
		// moved it; retry from the version it reports.
		var version int64
		for attempt := 0; ; attempt++ {
			got, _, compacted, err := etcd3.Compact(ctx, cli.Client, version, rv)
			if err != nil {
				t.Fatalf("compact to %d: %v", rv, err)
			}
			if got == version+1 && compacted == rv {
				break
			}
			if attempt == 10 {
				t.Fatalf("compact to %d: compact_rev_key CAS keeps failing (version %d)", rv, got)
			}
			version = got
		}
		if !utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
			return
		}
		for observed() != rv {
			select {
			case <-ctx.Done():
				t.Fatalf("compaction to %d not observed: %v", rv, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// keysOf lists the keys of the store's objects, for
// EnableResourceSizeEstimation (the store's own lister is unexported).
func (e *env) keysOf(ctx context.Context) ([]string, error) {
	resp, err := e.client.KV.Get(ctx, e.keyPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}

// resetFeatureSupportChecker gives the test a fresh process-wide feature
// support checker (RangeStream found unsupported stays so for 10 min).
func resetFeatureSupportChecker(t *testing.T) {
	t.Helper()
	orig := etcdfeature.DefaultFeatureSupportChecker
	etcdfeature.DefaultFeatureSupportChecker = etcdfeature.NewDefaultFeatureSupportChecker()
	t.Cleanup(func() { etcdfeature.DefaultFeatureSupportChecker = orig })
}
