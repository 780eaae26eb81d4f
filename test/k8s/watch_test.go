package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
)

// The watch groups, wired as k8s.io/apiserver's pkg/storage/etcd3/watcher_test.go
// wires them, each on a fresh kinelite.

func TestWatch(t *testing.T) {
	// Groups that take only the store.
	storeOnly := []struct {
		name string
		run  func(context.Context, *testing.T, storage.Interface)
	}{
		{"Watch", storagetesting.RunTestWatch},
		{"ClusterScopedWatch", storagetesting.RunTestClusterScopedWatch},
		{"NamespaceScopedWatch", storagetesting.RunTestNamespaceScopedWatch},
		{"DeleteTriggerWatch", storagetesting.RunTestDeleteTriggerWatch},
		{"WatchFromNonZero", storagetesting.RunTestWatchFromNonZero},
		{"DelayedWatchDelivery", storagetesting.RunTestDelayedWatchDelivery},
		{"WatchContextCancel", storagetesting.RunTestWatchContextCancel},
		{"WatcherTimeout", storagetesting.RunTestWatcherTimeout},
		{"WatchDeleteEventObjectHaveLatestRV", storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV},
		{"WatchInitializationSignal", storagetesting.RunTestWatchInitializationSignal},
		{"SendInitialEventsBackwardCompatibility", storagetesting.RunSendInitialEventsBackwardCompatibility},
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
		{"WatchFromZero", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchFromZero(ctx, t, e.store, compaction(e.client, e.compactRevision))
		}},
		{"WatchError", func(ctx context.Context, t *testing.T, e *env) {
			storagetesting.RunTestWatchError(ctx, t, e.prefixTransformerStore())
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
