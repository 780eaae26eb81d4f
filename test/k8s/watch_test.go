package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/features"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
)

// The watch groups, wired as k8s.io/apiserver's pkg/storage/etcd3/watcher_test.go
// wires them, each on a fresh kinelite.

func TestWatch(t *testing.T) {
	plain := []struct {
		name string
		run  func(context.Context, *testing.T, *env)
	}{
		{"Watch", func(ctx context.Context, t *testing.T, e *env) { storagetesting.RunTestWatch(ctx, t, e.store) }},
		{"ClusterScopedWatch", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestClusterScopedWatch(ctx, t, e.store)
		}},
		{"NamespaceScopedWatch", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestNamespaceScopedWatch(ctx, t, e.store)
		}},
		{"DeleteTriggerWatch", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestDeleteTriggerWatch(ctx, t, e.store)
		}},
		{"WatchFromZero", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchFromZero(ctx, t, e.store, compaction(e.client, e.compactRevision))
		}},
		{"WatchFromNonZero", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchFromNonZero(ctx, t, e.store)
		}},
		{"DelayedWatchDelivery", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestDelayedWatchDelivery(ctx, t, e.store)
		}},
		{"WatchError", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchError(ctx, t, e.prefixTransformerStore())
		}},
		{"WatchContextCancel", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchContextCancel(ctx, t, e.store)
		}},
		{"WatcherTimeout", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatcherTimeout(ctx, t, e.store)
		}},
		{"WatchDeleteEventObjectHaveLatestRV", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV(ctx, t, e.store)
		}},
		{"WatchInitializationSignal", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchInitializationSignal(ctx, t, e.store)
		}},
		{"SendInitialEventsBackwardCompatibility", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunSendInitialEventsBackwardCompatibility(ctx, t, e.store)
		}},
		{"WatchErrorEventIsBlockingFurtherEvent", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunWatchErrorIsBlockingFurtherEvents(ctx, t, e.prefixTransformerStore())
		}},
	}
	for _, g := range plain {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t)
			g.run(e.ctx, t, e)
		})
	}

	// Upstream runs these on an etcd with a 1 s progress-notify interval.
	t.Run("ProgressNotify", func(t *testing.T) {
		e := newEnv(t, withProgressInterval(time.Second))
		storagetesting.RunOptionalTestProgressNotify(e.ctx, t, e.store, increaseRV(e.client))
	})
	t.Run("WatchDispatchBookmarkEvents", func(t *testing.T) {
		e := newEnv(t, withProgressInterval(time.Second))
		storagetesting.RunTestWatchDispatchBookmarkEvents(e.ctx, t, e.store, false)
	})

	t.Run("WatchWithUnsafeDelete", func(t *testing.T) {
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.AllowUnsafeMalformedObjectDeletion, true)
		e := newEnv(t)
		storagetesting.RunTestWatchWithUnsafeDelete(e.ctx, t, e.transformerOverrideStore(e.store), corruptObjectErr())
	})

	// Watches that start with a list, with RangeStream off and on.
	for _, rangeStream := range []bool{false, true} {
		t.Run(fmt.Sprintf("RangeStream=%v", rangeStream), func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.EtcdRangeStream, rangeStream)
			t.Run("WatchSemantics", func(t *testing.T) {
				e := newEnv(t)
				storagetesting.RunWatchSemantics(e.ctx, t, e.store)
			})
			t.Run("WatchSemanticsWithConcurrentDecode", func(t *testing.T) {
				featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ConcurrentWatchObjectDecode, true)
				e := newEnv(t)
				storagetesting.RunWatchSemantics(e.ctx, t, e.store)
			})
			t.Run("WatchSemanticInitialEventsExtended", func(t *testing.T) {
				e := newEnv(t)
				storagetesting.RunWatchSemanticInitialEventsExtended(e.ctx, t, e.store)
			})
			t.Run("WatchListMatchSingle", func(t *testing.T) {
				e := newEnv(t)
				storagetesting.RunWatchListMatchSingle(e.ctx, t, e.store)
			})
		})
	}
}
