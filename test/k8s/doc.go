// Package k8s runs Kubernetes' own storage conformance suite,
// k8s.io/apiserver/pkg/storage/testing, against kinelite.
//
// Every test starts a fresh in-process kinelite on a temporary SQLite file,
// connects a go.etcd.io/etcd/client/v3/kubernetes client to it (wrapped in the
// suite's request recorders), builds the apiserver's etcd3 store over that
// client with etcd3.New, and calls the suite's RunTest* functions the way
// k8s.io/apiserver's own pkg/storage/etcd3/store_test.go and watcher_test.go
// do, with the EtcdRangeStream feature gate both on and off. cacher_test.go
// does the same through the watch cache (cacher.NewCacherFromConfig), as
// pkg/storage/cacher/cacher_test.go does, which is where consistent lists
// served through RequestWatchProgress are tested. The few upstream cases that
// cannot run outside the apiserver's own packages are listed, with the
// reason, in notrunnable_test.go; suite_test.go fails if a Run* function of
// the suite is neither called nor listed there.
//
// Run it alone with
//
//	cd test && go test -count=1 ./k8s/
//
// With KINELITE_TEST_BACKEND=postgres each test gets a new database on the
// PostgreSQL server $KINELITE_TEST_POSTGRES names instead (see package
// pgtest); `make test` runs the suite both ways.
//
// # Moving the k8s.io/apiserver pin
//
// The suite is pinned in ../go.mod to k8s.io/apiserver v0.37.2, the newest
// v0.37.x the Go module proxy served when it was written. To move it:
//
//	cd test
//	go list -m -versions k8s.io/apiserver      # pick the version
//	go get k8s.io/apiserver@vX.Y.Z
//	go mod tidy -e
//	go test -count=1 ./k8s/
//
// (-e because plain tidy also resolves the tests of dependencies, and one
// of modernc.org/sqlite's needs a github.com/google/pprof version the proxy
// no longer serves; nothing this module builds imports it.)
//
// Then compare the new version's pkg/storage/etcd3/store_test.go,
// watcher_test.go and pkg/storage/cacher/cacher_test.go with the wiring here:
// new RunTest* groups, changed signatures, feature gates that the upstream
// tests toggle. TestEverySuiteFunctionIsWired names any Run* function of
// the suite that this package neither calls nor lists as not runnable.
// k8s.io/apiserver also pins go.etcd.io/etcd; if `go get` moves the etcd
// modules, check that the rest of the test module (which embeds etcd as a
// differential peer) still builds and passes.
package k8s
