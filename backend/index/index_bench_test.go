package index_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/kinelite/kinelite/backend/index"
)

// benchSizes are the index sizes, in keys, of the benchmarks.
var benchSizes = []int{100_000, 1_000_000}

// benchIndex is an index of n keys ("/registry/pods/ns-NNN/pod-NNNNNNN"),
// one revision each, plus a history of 4 more revisions on every tenth key,
// as a store sees between compactions. rev is the newest revision.
type benchIndex struct {
	x    *index.Index
	keys []string
	rev  int64
}

var (
	benchIndexesMu sync.Mutex
	benchIndexes   = map[int]*benchIndex{}
)

func benchKey(i int) string { return fmt.Sprintf("/registry/pods/ns-%03d/pod-%07d", i%1000, i) }

// getBenchIndex builds (once per size) the index the read benchmarks share.
func getBenchIndex(b *testing.B, n int) *benchIndex {
	b.Helper()
	benchIndexesMu.Lock()
	defer benchIndexesMu.Unlock()
	if bi, ok := benchIndexes[n]; ok {
		return bi
	}
	bi := &benchIndex{x: index.New(), keys: make([]string, n)}
	for i := range n {
		bi.keys[i] = benchKey(i)
		bi.rev++
		bi.x.Append(bi.keys[i], index.Revision{Mod: bi.rev, Create: bi.rev, Version: 1})
	}
	for v := int64(2); v <= 5; v++ {
		for i := 0; i < n; i += 10 {
			last, _ := bi.x.Last(bi.keys[i])
			bi.rev++
			bi.x.Append(bi.keys[i], index.Revision{Mod: bi.rev, Create: last.Create, Version: v})
		}
	}
	benchIndexes[n] = bi
	return bi
}

// BenchmarkIndexGet looks up random keys at the newest revision.
func BenchmarkIndexGet(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			bi := getBenchIndex(b, n)
			r := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, ok := bi.x.Get(bi.keys[r.IntN(n)], bi.rev); !ok {
					b.Fatal("missing key")
				}
			}
		})
	}
}

// BenchmarkIndexGetOld looks up random keys with history at an older
// revision (a paged list's later pages read at the first page's revision).
func BenchmarkIndexGetOld(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			bi := getBenchIndex(b, n)
			r := rand.New(rand.NewPCG(1, 2))
			at := int64(n) + int64(n/10)*2 // inside the history
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, ok := bi.x.Get(bi.keys[r.IntN(n/10)*10], at); !ok {
					b.Fatal("missing key")
				}
			}
		})
	}
}

// BenchmarkIndexRange reads a page of 500 keys from a random start, as each
// page of a paged list does.
func BenchmarkIndexRange(b *testing.B) {
	const limit = 500
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("keys=%d/limit=%d", n, limit), func(b *testing.B) {
			bi := getBenchIndex(b, n)
			r := rand.New(rand.NewPCG(1, 2))
			seen := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				got := 0
				bi.x.Range(bi.keys[r.IntN(n)], "", bi.rev, func(string, index.Revision) bool {
					got++
					return got < limit
				})
				seen += got
			}
			b.ReportMetric(float64(seen)/float64(b.N), "keys/op")
		})
	}
}

// BenchmarkIndexCount counts, as count_only does, the live keys of one
// namespace (/registry/pods/ns-042/, a thousandth of the keys) and of the
// whole index.
func BenchmarkIndexCount(b *testing.B) {
	for _, n := range benchSizes {
		bi := getBenchIndex(b, n)
		for _, tc := range []struct {
			name       string
			start, end string
		}{
			{"prefix", "/registry/pods/ns-042/", "/registry/pods/ns-0420"},
			{"all", "/registry/", "/registry0"},
		} {
			b.Run(fmt.Sprintf("keys=%d/%s", n, tc.name), func(b *testing.B) {
				counted := 0
				b.ReportAllocs()
				for range b.N {
					counted += bi.x.Count(tc.start, tc.end, bi.rev)
				}
				b.ReportMetric(float64(counted)/float64(b.N), "keys/op")
			})
		}
	}
}

// BenchmarkIndexAppend appends revisions to an index of n keys: updates of
// existing keys (the common write) and creates of new ones.
func BenchmarkIndexAppend(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("keys=%d/update", n), func(b *testing.B) {
			// A private index: appends change it.
			x := index.New()
			keys := make([]string, n)
			for i := range n {
				keys[i] = benchKey(i)
				x.Append(keys[i], index.Revision{Mod: int64(i + 1), Create: int64(i + 1), Version: 1})
			}
			rev := int64(n)
			r := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				rev++
				x.Append(keys[r.IntN(n)], index.Revision{Mod: rev, Create: 1, Version: 2})
			}
		})
		b.Run(fmt.Sprintf("keys=%d/create", n), func(b *testing.B) {
			x := index.New()
			for i := range n {
				x.Append(benchKey(i), index.Revision{Mod: int64(i + 1), Create: int64(i + 1), Version: 1})
			}
			rev := int64(n)
			newKeys := make([]string, b.N)
			for i := range newKeys {
				newKeys[i] = fmt.Sprintf("/registry/configmaps/ns-%03d/cm-%09d", i%1000, i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				rev++
				x.Append(newKeys[i], index.Revision{Mod: rev, Create: rev, Version: 1})
			}
		})
	}
}

// BenchmarkIndexBuild rebuilds an index of 20,000 keys with 5 revisions each
// (a start-up scan of 100,000 rows) and reports the heap the built index
// holds per row (retained-B/row), as well as the build's own allocations.
func BenchmarkIndexBuild(b *testing.B) {
	const keys, revs = 20_000, 5
	names := make([]string, keys)
	for i := range names {
		names[i] = benchKey(i)
	}
	var retained float64
	b.ReportAllocs()
	for range b.N {
		before := heapInUse()
		build := index.NewBuilder()
		rev := int64(0)
		for v := int64(1); v <= revs; v++ {
			for i := range keys {
				rev++
				build.Append(names[i], index.Revision{Mod: rev, Create: int64(i + 1), Version: v})
			}
		}
		x := build.Build()
		retained = float64(heapInUse()-before) / (keys * revs)
		runtime.KeepAlive(x)
	}
	b.ReportMetric(retained, "retained-B/row")
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
