package k8s

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/api/apitesting"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
)

// The store groups, wired as k8s.io/apiserver's pkg/storage/etcd3/store_test.go
// wires them, each on a fresh kinelite.

// storedObjectValid checks what the store wrote under a key: the transformer's
// prefix, then an object with no resource version and no self link.
func storedObjectValid(e *env) storagetesting.KeyValidation {
	return func(ctx context.Context, t *testing.T, key string) {
		resp, err := e.client.KV.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get %q: %v", key, err)
		}
		if len(resp.Kvs) == 0 {
			t.Fatalf("no value stored under %q", key)
		}
		raw := resp.Kvs[0].Value
		if len(raw) < len(storedPrefix) || string(raw[:len(storedPrefix)]) != storedPrefix {
			t.Fatalf("value under %q lacks the transformer prefix: %q", key, raw)
		}
		obj, err := runtime.Decode(e.codec, raw[len(storedPrefix):])
		if err != nil {
			t.Fatalf("decode value under %q: %v", key, err)
		}
		pod := obj.(*example.Pod)
		if pod.ResourceVersion != "" {
			t.Errorf("stored object has resource version %q", pod.ResourceVersion)
		}
		if pod.SelfLink != "" {
			t.Errorf("stored object has self link %q", pod.SelfLink)
		}
	}
}

// callsValid checks how many objects a paged list transformed and how many
// Range (or RangeStream) calls it made: the store doubles its page size
// after short pages, up to maxLimit.
func callsValid(e *env) storagetesting.CallsValidation {
	return func(t *testing.T, pageSize, estimatedProcessedObjects uint64) {
		if reads := e.prefixTransformer.GetReadsAndReset(); reads != estimatedProcessedObjects {
			t.Errorf("transformed %d objects, want %d", reads, estimatedProcessedObjects)
		}
		want := uint64(1)
		if pageSize != 0 {
			limit := pageSize
			for seen := uint64(1); seen < estimatedProcessedObjects; want++ {
				limit = min(limit*2, maxLimit)
				seen += limit
			}
		}
		rec := e.kvRecorder()
		if got := rec.GetReadsAndReset() + rec.GetStreamReadsAndReset(); got != want {
			t.Fatalf("made %d range calls, want %d", got, want)
		}
	}
}

// failingTransformer and failingCodec fail reads while their flag is set.
type switchableTransformer struct {
	value.Transformer
	fail atomic.Bool
}

func (s *switchableTransformer) setFailing(f bool) { s.fail.Store(f) }

func (s *switchableTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	if s.fail.Load() {
		return nil, false, fmt.Errorf("transformer failing on purpose")
	}
	return s.Transformer.TransformFromStorage(ctx, data, dataCtx)
}

type switchableCodec struct {
	runtime.Codec
	fail atomic.Bool
}

func (s *switchableCodec) setFailing(f bool) { s.fail.Store(f) }

func (s *switchableCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if s.fail.Load() {
		return nil, nil, fmt.Errorf("codec failing on purpose")
	}
	return s.Codec.Decode(data, defaults, into)
}

func newSwitchableCodec() *switchableCodec {
	return &switchableCodec{Codec: apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion)}
}

func TestStore(t *testing.T) {
	// Groups that take only the store.
	storeOnly := []struct {
		name string
		run  func(context.Context, *testing.T, storage.Interface)
	}{
		{"CreateWithTTL", storagetesting.RunTestCreateWithTTL},
		{"CreateWithKeyExist", storagetesting.RunTestCreateWithKeyExist},
		{"Get", storagetesting.RunTestGet},
		{"UnconditionalDelete", storagetesting.RunTestUnconditionalDelete},
		{"ConditionalDelete", storagetesting.RunTestConditionalDelete},
		{"DeleteWithSuggestion", storagetesting.RunTestDeleteWithSuggestion},
		{"DeleteWithSuggestionAndConflict", storagetesting.RunTestDeleteWithSuggestionAndConflict},
		{"DeleteWithSuggestionOfDeletedObject", storagetesting.RunTestDeleteWithSuggestionOfDeletedObject},
		{"ValidateDeletionWithSuggestion", storagetesting.RunTestValidateDeletionWithSuggestion},
		{"ValidateDeletionWithOnlySuggestionValid", storagetesting.RunTestValidateDeletionWithOnlySuggestionValid},
		{"DeleteWithConflict", storagetesting.RunTestDeleteWithConflict},
		{"PreconditionalDeleteWithSuggestion", storagetesting.RunTestPreconditionalDeleteWithSuggestion},
		{"PreconditionalDeleteWithSuggestionPass", storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass},
		{"ListPaging", storagetesting.RunTestListPaging},
		{"GetListRecursivePrefix", storagetesting.RunTestGetListRecursivePrefix},
		{"KeySchema", storagetesting.RunTestKeySchema},
		{"GuaranteedUpdateWithTTL", storagetesting.RunTestGuaranteedUpdateWithTTL},
		{"GuaranteedUpdateWithConflict", storagetesting.RunTestGuaranteedUpdateWithConflict},
		{"GuaranteedUpdateWithSuggestionAndConflict", storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict},
		{"NamespaceScopedList", storagetesting.RunTestNamespaceScopedList},
	}
	for _, g := range storeOnly {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t)
			g.run(e.ctx, t, e.store)
		})
	}

	// Groups that take more of the environment.
	plain := []struct {
		name string
		run  func(context.Context, *testing.T, *env)
	}{
		{"Create", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestCreate(ctx, t, e.store, storedObjectValid(e))
		}},
		{"GetListNonRecursive", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestGetListNonRecursive(ctx, t, increaseRV(e.client), e.store)
		}},
		{"GuaranteedUpdate", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestGuaranteedUpdate(ctx, t, e.prefixTransformerStore(), storedObjectValid(e))
		}},
		{"GuaranteedUpdateChecksStoredData", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestGuaranteedUpdateChecksStoredData(ctx, t, e.prefixTransformerStore())
		}},
		{"TransformationFailure", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestTransformationFailure(ctx, t, e.prefixTransformerStore())
		}},
		{"ListContinuation", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestListContinuation(ctx, t, e.store, callsValid(e))
		}},
		{"ListContinuationWithFilter", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestListContinuationWithFilter(ctx, t, e.store, callsValid(e))
		}},
		{"ListInconsistentContinuation", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestListInconsistentContinuation(ctx, t, e.store, compaction(e.client, e.compactRevision))
		}},
		{"ListResourceVersionMatch", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestListResourceVersionMatch(ctx, t, e.prefixTransformerStore())
		}},
	}
	for _, g := range plain {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t)
			g.run(e.ctx, t, e)
		})
	}

	t.Run("ListPaginationRareObject", func(t *testing.T) {
		// With ListFromCacheSnapshot the store also reads the compact key,
		// which the call count would include (as upstream, turn it off).
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ListFromCacheSnapshot, false)
		e := newEnv(t)
		storagetesting.RunTestListPaginationRareObject(e.ctx, t, e.store, callsValid(e))
	})
	t.Run("CompactRevision", func(t *testing.T) {
		// The store learns of compactions through its compact-key watch,
		// which ListFromCacheSnapshot turns on.
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ListFromCacheSnapshot, true)
		e := newEnv(t)
		storagetesting.RunTestCompactRevision(e.ctx, t, e.store, increaseRV(e.client), compaction(e.client, e.compactRevision))
	})
	for _, sizeBased := range []bool{true, false} {
		t.Run(fmt.Sprintf("Stats/SizeBasedListCostEstimate=%v", sizeBased), func(t *testing.T) {
			e := newEnv(t)
			if sizeBased {
				if err := e.enableSizeEstimation(e.keysOf); err != nil {
					t.Fatal(err)
				}
			}
			storagetesting.RunTestStats(e.ctx, t, e.store, e.codec, e.transformer, sizeBased)
		})
	}

	// Lists, with RangeStream off and on.
	for _, rangeStream := range []bool{false, true} {
		t.Run(fmt.Sprintf("RangeStream=%v", rangeStream), func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.EtcdRangeStream, rangeStream)
			t.Run("List", func(t *testing.T) {
				resetFeatureSupportChecker(t)
				e := newEnv(t)
				storagetesting.RunTestList(e.ctx, t, e.store, compaction(e.client, e.compactRevision), false, e.kubernetesRecorder())
				streams := e.kvRecorder().GetStreamReadsAndReset()
				if rangeStream && streams == 0 {
					t.Error("no list was served by RangeStream")
				}
				if !rangeStream && streams != 0 {
					t.Errorf("%d RangeStream calls with the gate off", streams)
				}
			})
			t.Run("ConsistentList", func(t *testing.T) {
				resetFeatureSupportChecker(t)
				e := newEnv(t)
				storagetesting.RunTestConsistentList(e.ctx, t, e.store, increaseRV(e.client), false, true, false)
			})
		})
	}

	// Reading objects the transformer or the codec cannot read.
	t.Run("UnsafeDeletion", func(t *testing.T) {
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.AllowUnsafeMalformedObjectDeletion, true)
		t.Run("DeleteWithConflictAndMissingExpectedTransformOrDecodeError", func(t *testing.T) {
			codec := newSwitchableCodec()
			e := newEnv(t, withCodec(codec))
			storagetesting.RunTestDeleteWithConflictAndMissingExpectedTransformOrDecodeError(e.ctx, t, e.store, codec.setFailing)
		})
		t.Run("DeleteWithConflictAndExpectedTransformError", func(t *testing.T) {
			tr := &switchableTransformer{Transformer: storagetesting.NewPrefixTransformer([]byte(storedPrefix), false)}
			e := newEnv(t, withTransformer(tr))
			storagetesting.RunTestDeleteExpectedTransformOrDecodeError(e.ctx, t, e.store, tr.setFailing)
		})
		t.Run("DeleteWithConflictAndExpectedDecodeError", func(t *testing.T) {
			codec := newSwitchableCodec()
			e := newEnv(t, withCodec(codec))
			storagetesting.RunTestDeleteExpectedTransformOrDecodeError(e.ctx, t, e.store, codec.setFailing)
		})
		t.Run("DeleteWithSuggestionAndMissingExpectedTransformOrDecodeFailure", func(t *testing.T) {
			e := newEnv(t)
			storagetesting.RunTestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeError(e.ctx, t, e.store)
		})
		t.Run("GetListWithErrorAggregation", func(t *testing.T) {
			e := newEnv(t)
			deleter := etcd3.NewStoreWithUnsafeCorruptObjectDeletion(e.store, schema.GroupResource{Resource: "pods"})
			storagetesting.RunTestGetListWithErrorAggregation(e.ctx, t, e.transformerOverrideStore(deleter), corruptObjectErr())
		})
	})
	t.Run("GetListWithoutErrorAggregation", func(t *testing.T) {
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.AllowUnsafeMalformedObjectDeletion, false)
		e := newEnv(t)
		storagetesting.RunTestGetListWithoutErrorAggregation(e.ctx, t, e.transformerOverrideStore(e.store), corruptObjectErr())
	})
}
