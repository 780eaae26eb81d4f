package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/etcd3"
	etcdfeature "k8s.io/apiserver/pkg/storage/feature"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/tools/cache"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"k8s.io/utils/clock"
)

// The same suite through the watch cache, wired as k8s.io/apiserver's
// pkg/storage/cacher/cacher_test.go wires it: an etcd3 store under the
// "/registry" prefix with the protobuf codec and the identity transformer,
// a Cacher over it, and the CacheDelegator that routes each call to the
// cache or to the store. This is where the cache serves consistent lists,
// asking kinelite for progress notifications (RequestWatchProgress) until
// it has caught up with the current revision.

// protoCodec encodes example/v1 objects as protobuf, as the apiserver
// stores built-in types.
var protoCodec = func() runtime.Codec {
	pb := protobuf.NewSerializer(scheme, scheme)
	return codecs.CodecForVersions(pb, pb, schema.GroupVersions{examplev1.SchemeGroupVersion}, nil)
}()

// podAttrs gives the labels and the selectable fields of a pod.
func podAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pod, ok := obj.(*example.Pod)
	if !ok {
		return nil, nil, fmt.Errorf("%T is not a pod", obj)
	}
	return labels.Set(pod.Labels), fields.Set{
		"metadata.name":      pod.Name,
		"metadata.namespace": pod.Namespace,
		"spec.nodeName":      pod.Spec.NodeName,
		"spec.restartPolicy": string(pod.Spec.RestartPolicy),
		"status.phase":       string(pod.Status.Phase),
	}, nil
}

// cacheSetup describes one cache; the cacheWith* options change it.
type cacheSetup struct {
	storeOptions []option
	clusterScope bool
	indexed      bool
}

type cacheOption func(*cacheSetup)

// cacheWithStore passes options to the store under the cache.
func cacheWithStore(o ...option) cacheOption {
	return func(c *cacheSetup) { c.storeOptions = append(c.storeOptions, o...) }
}

// cacheClusterScoped keys objects by name only.
func cacheClusterScoped(c *cacheSetup) { c.clusterScope = true }

// cacheIndexed indexes the cache by spec.nodeName and namespace, as the
// apiserver indexes pods.
func cacheIndexed(c *cacheSetup) { c.indexed = true }

// cacheEnv is one test's kinelite, etcd3 store, cache and delegator.
type cacheEnv struct {
	*env
	cacher    *cacher.Cacher
	delegator *cacher.CacheDelegator
}

// newCacheEnv starts a kinelite, builds the store and a cache over it, and
// waits until the cache is ready.
func newCacheEnv(t *testing.T, options ...cacheOption) *cacheEnv {
	t.Helper()
	const resourcePrefix = "/pods/"
	var cs cacheSetup
	for _, o := range options {
		o(&cs)
	}
	storeOptions := append([]option{
		withPrefix("/registry"),
		withCodec(protoCodec),
		withTransformer(identity.NewEncryptCheckTransformer()),
		withLeases(etcd3.NewDefaultLeaseManagerConfig()),
	}, cs.storeOptions...)
	e := newEnv(t, storeOptions...)

	// One failed list first, so the cache's relist path runs too (the
	// watch-list client never lists, so then there is nothing to fail).
	listErrors := 1
	if clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient) {
		listErrors = 0
	}
	failingFirst := &storagetesting.StorageInjectingListErrors{Interface: e.store, Errors: listErrors}

	keyFunc := func(obj runtime.Object) (string, error) { return storage.NamespaceKeyFunc(resourcePrefix, obj) }
	if cs.clusterScope {
		keyFunc = func(obj runtime.Object) (string, error) { return storage.NoNamespaceKeyFunc(resourcePrefix, obj) }
	}
	var indexerFuncs storage.IndexerFuncs
	indexers := cache.Indexers{}
	if cs.indexed {
		nodeName := func(obj runtime.Object) string {
			if pod, ok := obj.(*example.Pod); ok {
				return pod.Spec.NodeName
			}
			return ""
		}
		indexerFuncs = storage.IndexerFuncs{"spec.nodeName": nodeName}
		indexers["f:spec.nodeName"] = func(obj any) ([]string, error) {
			return []string{obj.(*example.Pod).Spec.NodeName}, nil
		}
		indexers["f:metadata.namespace"] = func(obj any) ([]string, error) {
			return []string{obj.(*example.Pod).Namespace}, nil
		}
	}
	c, err := cacher.NewCacherFromConfig(cacher.Config{
		Storage:             failingFirst,
		Versioner:           storage.APIObjectVersioner{},
		GroupResource:       schema.GroupResource{Resource: "pods"},
		EventsHistoryWindow: cacher.DefaultEventFreshDuration,
		ResourcePrefix:      resourcePrefix,
		KeyFunc:             keyFunc,
		GetAttrsFunc:        podAttrs,
		IndexerFuncs:        indexerFuncs,
		Indexers:            &indexers,
		NewFunc:             newPod,
		NewListFunc:         newPodList,
		Codec:               e.codec,
		Clock:               clock.RealClock{},
	})
	if err != nil {
		t.Fatalf("NewCacherFromConfig: %v", err)
	}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(e.ctx, wait.ForeverTestTimeout)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		return failingFirst.ErrorsConsumed()
	}); err != nil {
		t.Fatalf("the cache never listed: %v", err)
	}
	// Until it is ready the cache answers 429; the suite expects answers.
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("cache not ready: %v", err)
	}
	d := cacher.NewCacheDelegator(c, failingFirst)
	t.Cleanup(d.Stop)
	return &cacheEnv{env: e, cacher: c, delegator: d}
}

// waitForProgressSupport waits until the process-wide feature checker has
// seen, from kinelite's Status version, that watch progress requests are
// supported: only then does the cache serve consistent lists.
func waitForProgressSupport(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait.ForeverTestTimeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
		return etcdfeature.DefaultFeatureSupportChecker.Supports(storage.RequestWatchProgress), nil
	})
	if err != nil {
		t.Fatalf("RequestWatchProgress never reported as supported: %v", err)
	}
}

// cacheCompaction compacts kinelite, waits until the store sees the new
// compact revision, then until the cache's own compactor (which polls the
// store every 15 s) has applied it. Upstream calls that compactor directly.
func (ce *cacheEnv) cacheCompaction() storagetesting.Compaction {
	compact := compaction(ce.client, ce.compactRevision)
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		t.Helper()
		compact(ctx, t, resourceVersion)
		if !utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
			return
		}
		rv, err := storage.APIObjectVersioner{}.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, wait.ForeverTestTimeout)
		defer cancel()
		if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
			return ce.delegator.CompactRevision() == int64(rv), nil
		}); err != nil {
			t.Fatalf("the cache never applied compaction to %d: %v", rv, err)
		}
	}
}

// syncedCreates makes Create return only once the cache serves the created
// object, as upstream's createWrapper does for the watch-semantics groups.
type syncedCreates struct {
	*cacher.CacheDelegator
}

func (s syncedCreates) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	if err := s.CacheDelegator.Create(ctx, key, obj, out, ttl); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, wait.ForeverTestTimeout, true, func(ctx context.Context) (bool, error) {
		cur := newPod()
		err := s.CacheDelegator.Get(ctx, key, storage.GetOptions{ResourceVersion: "0"}, cur)
		if storage.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return apiequality.Semantic.DeepEqual(cur, out), nil
	})
}

func TestCacher(t *testing.T) {
	plain := []struct {
		name    string
		options []cacheOption
		run     func(context.Context, *testing.T, *cacheEnv)
	}{
		{"Create", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			// The cache passes writes to the store; nothing to check after.
			storagetesting.RunTestCreate(ctx, t, ce.delegator, func(context.Context, *testing.T, string) {})
		}},
		{"CreateWithTTL", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestCreateWithTTL(ctx, t, ce.delegator)
		}},
		{"CreateWithKeyExist", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestCreateWithKeyExist(ctx, t, ce.delegator)
		}},
		{"Get", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) { storagetesting.RunTestGet(ctx, t, ce.delegator) }},
		{"UnconditionalDelete", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestUnconditionalDelete(ctx, t, ce.delegator)
		}},
		{"ConditionalDelete", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestConditionalDelete(ctx, t, ce.delegator)
		}},
		{"DeleteWithSuggestion", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestDeleteWithSuggestion(ctx, t, ce.delegator)
		}},
		{"DeleteWithSuggestionAndConflict", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestDeleteWithSuggestionAndConflict(ctx, t, ce.delegator)
		}},
		{"DeleteWithSuggestionOfDeletedObject", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestDeleteWithSuggestionOfDeletedObject(ctx, t, ce.delegator)
		}},
		{"ValidateDeletionWithSuggestion", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestValidateDeletionWithSuggestion(ctx, t, ce.delegator)
		}},
		{"ValidateDeletionWithOnlySuggestionValid", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestValidateDeletionWithOnlySuggestionValid(ctx, t, ce.delegator)
		}},
		{"DeleteWithConflict", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestDeleteWithConflict(ctx, t, ce.delegator)
		}},
		{"PreconditionalDeleteWithSuggestion", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestPreconditionalDeleteWithSuggestion(ctx, t, ce.delegator)
		}},
		{"PreconditionalDeleteWithSuggestionPass", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass(ctx, t, ce.delegator)
		}},
		{"ListPaging", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestListPaging(ctx, t, ce.delegator)
		}},
		{"GetListRecursivePrefix", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestGetListRecursivePrefix(ctx, t, ce.delegator)
		}},
		// The cache hands paged lists to the store: no calls to count.
		{"ListContinuation", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestListContinuation(ctx, t, ce.delegator, func(*testing.T, uint64, uint64) {})
		}},
		{"ListPaginationRareObject", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestListPaginationRareObject(ctx, t, ce.delegator, func(*testing.T, uint64, uint64) {})
		}},
		{"ListContinuationWithFilter", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestListContinuationWithFilter(ctx, t, ce.delegator, func(*testing.T, uint64, uint64) {})
		}},
		{"NamespaceScopedList", []cacheOption{cacheIndexed}, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestNamespaceScopedList(ctx, t, ce.delegator)
		}},
		{"GuaranteedUpdateWithTTL", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestGuaranteedUpdateWithTTL(ctx, t, ce.delegator)
		}},
		{"GuaranteedUpdateWithConflict", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestGuaranteedUpdateWithConflict(ctx, t, ce.delegator)
		}},
		{"GuaranteedUpdateWithSuggestionAndConflict", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict(ctx, t, ce.delegator)
		}},
		{"KeySchema", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestKeySchema(ctx, t, ce.delegator)
		}},
		// Watches.
		{"Watch", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestWatch(ctx, t, ce.delegator)
		}},
		{"DeleteTriggerWatch", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestDeleteTriggerWatch(ctx, t, ce.delegator)
		}},
		{"WatchFromNonZero", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestWatchFromNonZero(ctx, t, ce.delegator)
		}},
		{"DelayedWatchDelivery", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestDelayedWatchDelivery(ctx, t, ce.delegator)
		}},
		{"WatcherTimeout", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestWatcherTimeout(ctx, t, ce.delegator)
		}},
		{"WatchDeleteEventObjectHaveLatestRV", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV(ctx, t, ce.delegator)
		}},
		{"WatchInitializationSignal", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestWatchInitializationSignal(ctx, t, ce.delegator)
		}},
		{"ClusterScopedWatch", []cacheOption{cacheClusterScoped, cacheIndexed}, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestClusterScopedWatch(ctx, t, ce.delegator)
		}},
		{"NamespaceScopedWatch", []cacheOption{cacheIndexed}, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestNamespaceScopedWatch(ctx, t, ce.delegator)
		}},
		{"WatchDispatchBookmarkEvents", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestWatchDispatchBookmarkEvents(ctx, t, ce.delegator, true)
		}},
		{"WatchBookmarksWithCorrectResourceVersion", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunTestOptionalWatchBookmarksWithCorrectResourceVersion(ctx, t, ce.delegator)
		}},
		{"SendInitialEventsBackwardCompatibility", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunSendInitialEventsBackwardCompatibility(ctx, t, ce.delegator)
		}},
		{"WatchSemantics", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunWatchSemantics(ctx, t, syncedCreates{ce.delegator})
		}},
		{"WatchSemanticInitialEventsExtended", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunWatchSemanticInitialEventsExtended(ctx, t, syncedCreates{ce.delegator})
		}},
		{"WatchListMatchSingle", nil, func(ctx context.Context, t *testing.T, ce *cacheEnv) {
			storagetesting.RunWatchListMatchSingle(ctx, t, syncedCreates{ce.delegator})
		}},
	}
	// One after the other, as upstream runs them: several set feature gates
	// inside, and some have parallel cases of their own that must not wait
	// for a free slot while a 2 s lease runs out (RunTestGet).
	for _, g := range plain {
		t.Run(g.name, func(t *testing.T) {
			ce := newCacheEnv(t, g.options...)
			g.run(ce.ctx, t, ce)
		})
	}

	// Consistent lists from the cache, with and without its snapshots.
	for _, snapshots := range []bool{true, false} {
		t.Run(fmt.Sprintf("ListFromCacheSnapshot=%v", snapshots), func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ListFromCacheSnapshot, snapshots)
			t.Run("List", func(t *testing.T) {
				t.Parallel()
				ce := newCacheEnv(t)
				storagetesting.RunTestList(ce.ctx, t, ce.delegator, ce.cacheCompaction(), true, ce.kubernetesRecorder())
			})
			t.Run("ConsistentList", func(t *testing.T) {
				t.Parallel()
				ce := newCacheEnv(t)
				waitForProgressSupport(t)
				storagetesting.RunTestConsistentList(ce.ctx, t, ce.delegator, increaseRV(ce.client), true, true, snapshots)
			})
			t.Run("GetListNonRecursive", func(t *testing.T) {
				t.Parallel()
				ce := newCacheEnv(t)
				storagetesting.RunTestGetListNonRecursive(ce.ctx, t, increaseRV(ce.client), ce.delegator)
			})
			if snapshots {
				t.Run("CompactRevision", func(t *testing.T) {
					t.Parallel()
					ce := newCacheEnv(t)
					storagetesting.RunTestCompactRevision(ce.ctx, t, ce.delegator, increaseRV(ce.client), ce.cacheCompaction())
				})
				t.Run("MarkConsistent", func(t *testing.T) {
					t.Parallel()
					testMarkConsistent(t, newCacheEnv(t))
				})
			}
		})
	}

	for _, sizeBased := range []bool{true, false} {
		t.Run(fmt.Sprintf("Stats/SizeBasedListCostEstimate=%v", sizeBased), func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.SizeBasedListCostEstimate, sizeBased)
			ce := newCacheEnv(t)
			storagetesting.RunTestStats(ce.ctx, t, ce.delegator, protoCodec, identity.NewEncryptCheckTransformer(), sizeBased)
		})
	}

	// Objects the transformer or the codec cannot read.
	t.Run("UnsafeDeletion", func(t *testing.T) {
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.AllowUnsafeMalformedObjectDeletion, true)
		t.Run("DeleteWithConflictAndMissingExpectedTransformOrDecodeError", func(t *testing.T) {
			tr := &switchableTransformer{Transformer: identity.NewEncryptCheckTransformer()}
			ce := newCacheEnv(t, cacheWithStore(withTransformer(value.Transformer(tr))))
			storagetesting.RunTestDeleteWithConflictAndMissingExpectedTransformOrDecodeError(ce.ctx, t, ce.delegator, tr.setFailing)
		})
		t.Run("DeleteWithConflictAndExpectedTransformError", func(t *testing.T) {
			tr := &switchableTransformer{Transformer: identity.NewEncryptCheckTransformer()}
			ce := newCacheEnv(t, cacheWithStore(withTransformer(tr)))
			storagetesting.RunTestDeleteExpectedTransformOrDecodeError(ce.ctx, t, ce.delegator, tr.setFailing)
		})
		t.Run("DeleteWithConflictAndExpectedDecodeError", func(t *testing.T) {
			// The watcher panics on decode errors in tests unless told not to.
			etcd3.TestOnlySetFatalOnDecodeError(t, false)
			codec := newSwitchableCodec()
			ce := newCacheEnv(t, cacheWithStore(withCodec(codec)))
			storagetesting.RunTestDeleteExpectedTransformOrDecodeError(ce.ctx, t, ce.delegator, codec.setFailing)
		})
		t.Run("DeleteWithSuggestionAndMissingExpectedTransformOrDecodeError", func(t *testing.T) {
			ce := newCacheEnv(t)
			storagetesting.RunTestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeError(ce.ctx, t, ce.delegator)
		})
	})
}

// testMarkConsistent checks that a consistent cache serves exact-revision
// lists from its snapshots and an inconsistent one sends them to kinelite,
// as upstream's TestMarkConsistent does.
func testMarkConsistent(t *testing.T, ce *cacheEnv) {
	ctx := ce.ctx
	create := func() string {
		pod := &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: rand.String(10)}}
		out := &example.Pod{}
		if err := ce.delegator.Create(ctx, "/pods/default/"+pod.Name, pod, out, 0); err != nil {
			t.Fatal(err)
		}
		return out.ResourceVersion
	}
	storeLists := func(rv string) int {
		t.Helper()
		tag := rand.String(10)
		listCtx := context.WithValue(ctx, storagetesting.RecorderContextKey, tag)
		opts := storage.ListOptions{
			Predicate:            storage.Everything,
			ResourceVersion:      rv,
			ResourceVersionMatch: metav1.ResourceVersionMatchExact,
			Recursive:            true,
		}
		if err := ce.delegator.GetList(listCtx, "/pods/", opts, &example.PodList{}); err != nil {
			t.Fatalf("GetList at %s: %v", rv, err)
		}
		return len(ce.kubernetesRecorder().ListRequestForKey(tag))
	}

	first := create()
	if n := storeLists(first); n != 0 {
		t.Errorf("consistent cache: %d lists reached kinelite, want 0", n)
	}
	ce.cacher.MarkConsistent(false)
	if n := storeLists(first); n != 1 {
		t.Errorf("inconsistent cache: %d lists reached kinelite, want 1", n)
	}
	if n := storeLists(create()); n != 1 {
		t.Errorf("inconsistent cache, new object: %d lists reached kinelite, want 1", n)
	}
	ce.cacher.MarkConsistent(true)
	if n := storeLists(create()); n != 0 {
		t.Errorf("consistent again: %d lists reached kinelite, want 0", n)
	}
}
