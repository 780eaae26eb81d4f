package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// Backend behaviour that k8s.io/apiserver's pkg/storage/etcd3 tests check
// outside the RunTest* suite, written here against the exported API:
// TestLinearizedReadRevisionInvariant, TestGetListStreamMultiChunk,
// TestGetCurrentResourceVersion (store_test.go and linearized_read_test.go)
// and TestCompact, TestCompactConflict (compact_test.go).

// Reads, linearizable as they all are, must not move the revision a list
// reports.
func TestLinearizedReadsKeepRevision(t *testing.T) {
	e := newEnv(t)
	out := &example.Pod{}
	if err := e.store.Create(e.ctx, "/pods/ns/foo", &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: "ns"}}, out, 0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := e.client.KV.Get(e.ctx, "/pods/ns/foo"); err != nil {
			t.Fatal(err)
		}
	}
	list := &example.PodList{}
	if err := e.store.GetList(e.ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if list.ResourceVersion != out.ResourceVersion {
		t.Fatalf("list after reads reports revision %s, want the create's %s", list.ResourceVersion, out.ResourceVersion)
	}
}

// A list served by RangeStream over several of kinelite's chunks returns
// every object, at the revision asked for, in one piece.
func TestRangeStreamLists(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.EtcdRangeStream, true)
	resetFeatureSupportChecker(t)
	e := newEnv(t)
	const n = 250
	for i := range n {
		name := fmt.Sprintf("pod-%03d", i)
		if err := e.store.Create(e.ctx, "/pods/ns/"+name, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, &example.Pod{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	list := func(rv string, match metav1.ResourceVersionMatch) *example.PodList {
		t.Helper()
		out := &example.PodList{}
		opts := storage.ListOptions{ResourceVersion: rv, ResourceVersionMatch: match, Predicate: storage.Everything, Recursive: true}
		if err := e.store.GetList(e.ctx, "/pods/", opts, out); err != nil {
			t.Fatalf("GetList rv=%q match=%q: %v", rv, match, err)
		}
		if streams := e.kvRecorder().GetStreamReadsAndReset(); streams == 0 {
			t.Errorf("list rv=%q match=%q was not served by RangeStream", rv, match)
		}
		if out.Continue != "" || out.RemainingItemCount != nil {
			t.Errorf("streamed list was paged: continue %q, remaining %v", out.Continue, out.RemainingItemCount)
		}
		for i, p := range out.Items[:min(n, len(out.Items))] {
			if want := fmt.Sprintf("pod-%03d", i); p.Name != want {
				t.Fatalf("item %d is %s, want %s", i, p.Name, want)
			}
		}
		return out
	}
	first := list("", "")
	if len(first.Items) != n {
		t.Fatalf("consistent list: %d items, want %d", len(first.Items), n)
	}
	if err := e.store.Create(e.ctx, "/pods/ns/pod-999", &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-999", Namespace: "ns"}}, &example.Pod{}, 0); err != nil {
		t.Fatal(err)
	}
	exact := list(first.ResourceVersion, metav1.ResourceVersionMatchExact)
	if len(exact.Items) != n || exact.ResourceVersion != first.ResourceVersion {
		t.Errorf("exact list: %d items at %s, want %d at %s", len(exact.Items), exact.ResourceVersion, n, first.ResourceVersion)
	}
	if newer := list(first.ResourceVersion, ""); len(newer.Items) != n+1 {
		t.Errorf("not-older-than list: %d items, want %d", len(newer.Items), n+1)
	}
}

// GetCurrentResourceVersion is the server's revision, whatever key moved it.
func TestCurrentResourceVersion(t *testing.T) {
	e := newEnv(t)
	pod := &example.Pod{}
	if err := e.store.Create(e.ctx, "/pods/ns/foo", &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: "ns"}}, pod, 0); err != nil {
		t.Fatal(err)
	}
	podRV, err := storage.APIObjectVersioner{}.ParseResourceVersion(pod.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := e.store.GetCurrentResourceVersion(e.ctx); err != nil || cur != podRV {
		t.Fatalf("current resource version %d (%v), want the create's %d", cur, err, podRV)
	}
	// An unrelated write, to the key the apiserver's compactor uses.
	resp, err := e.client.KV.Put(e.ctx, "compact_rev_key", pod.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := e.store.GetCurrentResourceVersion(e.ctx); err != nil || cur != uint64(resp.Header.Revision) {
		t.Fatalf("current resource version %d (%v), want %d", cur, err, resp.Header.Revision)
	}
	again := &example.Pod{}
	if err := e.store.Get(e.ctx, "/pods/ns/foo", storage.GetOptions{}, again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != pod.ResourceVersion {
		t.Fatalf("pod's resource version moved from %s to %s", pod.ResourceVersion, again.ResourceVersion)
	}
}

// The apiserver's compactor, driven by a fake clock: each cycle compacts to
// the revision the previous cycle recorded.
func TestCompactor(t *testing.T) {
	cli := startKinelite(t, 0)
	ctx := context.Background()
	clk := testingclock.NewFakeClock(time.Now())
	c := etcd3.NewCompactor(cli.Client, time.Minute, clk, nil)
	t.Cleanup(c.Stop)

	// cycle lets the compactor's loop run once and waits until it is back
	// waiting on the clock.
	cycle := func() {
		t.Helper()
		waitForClockWaiter(t, clk)
		clk.Step(time.Minute)
		waitForClockWaiter(t, clk)
	}
	compacted := func(rev int64) bool {
		t.Helper()
		_, err := cli.Client.Get(ctx, "/somekey", clientv3.WithRev(rev))
		if err != nil && err != rpctypes.ErrCompacted {
			t.Fatalf("Get at %d: %v", rev, err)
		}
		return err == rpctypes.ErrCompacted
	}

	cycle() // records the revision before any write; compacts nothing
	if got := c.CompactRevision(); got != 0 {
		t.Errorf("after the first cycle CompactRevision is %d, want 0", got)
	}
	put1, err := cli.Client.Put(ctx, "/somekey", "data")
	if err != nil {
		t.Fatal(err)
	}
	cycle() // compacts to the revision recorded before the write
	if compacted(put1.Header.Revision) {
		t.Errorf("revision %d compacted too early", put1.Header.Revision)
	}
	if got, want := c.CompactRevision(), put1.Header.Revision-1; got != want {
		t.Errorf("after the second cycle CompactRevision is %d, want %d", got, want)
	}
	put2, err := cli.Client.Put(ctx, "/somekey", "data2")
	if err != nil {
		t.Fatal(err)
	}
	cycle() // compacts past the first write (its own compact-key write is next)
	if !compacted(put1.Header.Revision) || compacted(put2.Header.Revision) {
		t.Errorf("third cycle: revision %d compacted %v (want true), %d compacted %v (want false)",
			put1.Header.Revision, compacted(put1.Header.Revision), put2.Header.Revision, compacted(put2.Header.Revision))
	}
	if got, want := c.CompactRevision(), put1.Header.Revision+1; got != want {
		t.Errorf("after the third cycle CompactRevision is %d, want %d", got, want)
	}
	cycle()
	if !compacted(put2.Header.Revision) {
		t.Errorf("fourth cycle: revision %d not compacted", put2.Header.Revision)
	}
	if got, want := c.CompactRevision(), put2.Header.Revision+1; got != want {
		t.Errorf("after the fourth cycle CompactRevision is %d, want %d", got, want)
	}
}

func waitForClockWaiter(t *testing.T, clk *testingclock.FakeClock) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, wait.ForeverTestTimeout, true,
		func(context.Context) (bool, error) { return clk.HasWaiters(), nil })
	if err != nil {
		t.Fatal("the compactor never waited on the clock")
	}
}

// Compactors of several apiservers race on the compact key's version: the
// loser learns the winner's version and compact revision, and changes
// nothing.
func TestCompactConflict(t *testing.T) {
	cli := startKinelite(t, 0)
	ctx := context.Background()
	put, err := cli.Client.Put(ctx, "/somekey", "data")
	if err != nil {
		t.Fatal(err)
	}
	target := put.Header.Revision

	version, rev, compacted, err := etcd3.Compact(ctx, cli.Client, 0, target)
	if err != nil {
		t.Fatal(err)
	}
	if version != 1 || rev != target+1 || compacted != target {
		t.Fatalf("winner: version %d, revision %d, compacted %d; want 1, %d, %d", version, rev, compacted, target+1, target)
	}

	version2, rev2, compacted2, err := etcd3.Compact(ctx, cli.Client, 0, target+1)
	if err != nil {
		t.Fatal(err)
	}
	if version2 != version || rev2 != rev || compacted2 != target {
		t.Fatalf("loser: version %d, revision %d, compacted %d; want %d, %d, %d", version2, rev2, compacted2, version, rev, target)
	}

	version3, rev3, compacted3, err := etcd3.Compact(ctx, cli.Client, version, target+1)
	if err != nil {
		t.Fatal(err)
	}
	if version3 != version+1 || rev3 != rev+1 || compacted3 != target+1 {
		t.Fatalf("next: version %d, revision %d, compacted %d; want %d, %d, %d", version3, rev3, compacted3, version+1, rev+1, target+1)
	}
}

// Stats of a store under a prefix count only its own objects, however
// close other keys' names are.
func TestStatsUnderPrefix(t *testing.T) {
	for _, estimate := range []bool{false, true} {
		t.Run(fmt.Sprintf("Estimate=%v", estimate), func(t *testing.T) {
			e := newEnv(t, withPrefix("/registry"))
			if estimate {
				if err := e.enableSizeEstimation(e.keysOf); err != nil {
					t.Fatal(err)
				}
			}
			for key, val := range map[string]string{"key": "a", "/registry/key": "ab", "/registry/pods/key": "abc", "/registry/podskey": "abcd"} {
				if _, err := e.client.KV.Put(e.ctx, key, val); err != nil {
					t.Fatal(err)
				}
			}
			// The values do not decode: the list fails, and still records
			// the sizes it read.
			_ = e.store.GetList(e.ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, &example.PodList{})
			got, err := e.store.Stats(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := storage.Stats{ObjectCount: 1}
			if estimate {
				want.EstimatedAverageObjectSizeBytes = 3
			}
			if got != want {
				t.Fatalf("Stats = %+v, want %+v", got, want)
			}
		})
	}
}
