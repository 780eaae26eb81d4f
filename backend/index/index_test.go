package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func put(mod, create, version int64) Revision {
	return Revision{Mod: mod, Create: create, Version: version}
}
func tomb(mod int64) Revision { return Revision{Mod: mod} }

func TestGetAtRevisions(t *testing.T) {
	x := New()
	x.Append("a", put(2, 2, 1))
	x.Append("a", put(4, 2, 2))
	x.Append("a", tomb(6))
	x.Append("a", put(8, 8, 1))

	cases := []struct {
		name string
		rev  int64
		want int64 // mod revision, 0 for absent
	}{
		{"before create", 1, 0},
		{"at create", 2, 2},
		{"between writes", 3, 2},
		{"at update", 4, 4},
		{"before delete", 5, 4},
		{"at tombstone", 6, 0},
		{"after tombstone", 7, 0},
		{"recreated", 8, 8},
		{"far future", 100, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := x.Get("a", c.rev)
			if c.want == 0 {
				if ok {
					t.Fatalf("Get(a, %d) = %+v, want absent", c.rev, r)
				}
				return
			}
			if !ok || r.Mod != c.want {
				t.Fatalf("Get(a, %d) = %+v, %v; want mod %d", c.rev, r, ok, c.want)
			}
		})
	}
	if r, ok := x.Last("a"); !ok || r.Mod != 8 {
		t.Fatalf("Last = %+v, %v", r, ok)
	}
	if _, ok := x.Get("missing", 100); ok {
		t.Fatal("a missing key is found")
	}
}

func TestRangeAndCountSkipInvisible(t *testing.T) {
	x := New()
	x.Append("a", put(2, 2, 1))
	x.Append("b", put(3, 3, 1))
	x.Append("b", tomb(5))
	x.Append("c", put(4, 4, 1))
	x.Append("d", put(9, 9, 1)) // staged above what readers see

	collect := func(start, end string, rev int64) []string {
		var keys []string
		x.Range(start, end, rev, func(k string, _ Revision) bool { keys = append(keys, k); return true })
		return keys
	}
	if got := collect("", "", 8); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("all keys at 8 = %v", got)
	}
	if got := collect("", "", 4); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("all keys at 4 = %v", got)
	}
	if got := collect("b", "d", 9); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("[b,d) at 9 = %v", got)
	}
	if got := collect("c", "", 9); !slices.Equal(got, []string{"c", "d"}) {
		t.Fatalf("[c,∞) at 9 = %v", got)
	}
	if got := collect("d", "a", 9); len(got) != 0 {
		t.Fatalf("inverted range = %v", got)
	}
	if n := x.Count("", "", 4); n != 3 {
		t.Fatalf("Count at 4 = %d", n)
	}
	var first []string
	x.Range("", "", 9, func(k string, _ Revision) bool { first = append(first, k); return len(first) < 2 })
	if !slices.Equal(first, []string{"a", "c"}) {
		t.Fatalf("early stop visited %v", first)
	}
}

func TestTruncateUndoesStagedEntries(t *testing.T) {
	x := New()
	x.Append("a", put(2, 2, 1))
	x.Append("a", put(3, 2, 2))
	x.Append("b", put(4, 4, 1))
	x.Truncate("a", 2)
	x.Truncate("b", 2)
	if r, ok := x.Last("a"); !ok || r.Mod != 2 {
		t.Fatalf("a after truncate = %+v, %v", r, ok)
	}
	if _, ok := x.Last("b"); ok {
		t.Fatal("b survives a truncate below its only entry")
	}
	if keys, revs := x.Stats(); keys != 1 || revs != 1 {
		t.Fatalf("Stats = %d keys, %d revisions; want 1, 1", keys, revs)
	}
}

func TestRemoveMirrorsCompaction(t *testing.T) {
	x := New()
	x.Append("a", put(2, 2, 1))
	x.Append("a", put(3, 2, 2))
	x.Append("a", put(4, 2, 3))
	if !x.Remove("a", 2) || !x.Remove("a", 3) {
		t.Fatal("Remove of existing entries failed")
	}
	if x.Remove("a", 3) {
		t.Fatal("Remove of a removed entry succeeded")
	}
	if _, ok := x.Get("a", 3); ok {
		t.Fatal("a read below the oldest remaining entry finds a value")
	}
	if r, ok := x.Oldest("a"); !ok || r.Mod != 4 || r.Version != 3 {
		t.Fatalf("Oldest = %+v, %v", r, ok)
	}
	if !x.Remove("a", 4) {
		t.Fatal("Remove of the last entry failed")
	}
	if keys, revs := x.Stats(); keys != 0 || revs != 0 {
		t.Fatalf("Stats after removing everything = %d, %d", keys, revs)
	}
}

func TestAppendOutOfOrderPanics(t *testing.T) {
	x := New()
	x.Append("a", put(5, 5, 1))
	defer func() {
		if recover() == nil {
			t.Fatal("appending an older revision did not panic")
		}
	}()
	x.Append("a", put(4, 4, 1))
}

// TestAgainstModel compares random histories with a plain map model.
func TestAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := New()
	type state struct {
		live bool
		mod  int64
	}
	history := map[int64]map[string]state{} // revision → key → state after it
	cur := map[string]state{}
	keys := []string{"a", "ab", "b", "ba", "c", "d\x00", "z"}
	for rev := int64(2); rev < 400; rev++ {
		k := keys[rng.IntN(len(keys))]
		last, ok := x.Last(k)
		if ok && !last.Tombstone() && rng.IntN(3) == 0 {
			x.Append(k, tomb(rev))
			cur[k] = state{}
		} else {
			v := int64(1)
			c := rev
			if ok && !last.Tombstone() {
				v, c = last.Version+1, last.Create
			}
			x.Append(k, put(rev, c, v))
			cur[k] = state{live: true, mod: rev}
		}
		snap := map[string]state{}
		for kk, s := range cur {
			snap[kk] = s
		}
		history[rev] = snap
	}
	for rev, snap := range history {
		for _, k := range keys {
			r, ok := x.Get(k, rev)
			want := snap[k]
			if ok != want.live || (ok && r.Mod != want.mod) {
				t.Fatalf("Get(%q, %d) = %+v, %v; model says %+v", k, rev, r, ok, want)
			}
		}
		n := 0
		for _, s := range snap {
			if s.live {
				n++
			}
		}
		if got := x.Count("", "", rev); got != n {
			t.Fatalf("Count at %d = %d, model %d", rev, got, n)
		}
	}
}

func TestManyKeysOrdered(t *testing.T) {
	x := New()
	for i := range 1000 {
		x.Append(fmt.Sprintf("k%04d", 999-i), put(int64(i+2), int64(i+2), 1))
	}
	prev := ""
	x.Range("", "", 2000, func(k string, _ Revision) bool {
		if k <= prev {
			t.Fatalf("keys out of order: %q after %q", k, prev)
		}
		prev = k
		return true
	})
}

func TestBuilderMatchesAppend(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, b := New(), NewBuilder()
	for rev := int64(2); rev < 2000; rev++ {
		k := fmt.Sprint("k", rng.IntN(50))
		r := put(rev, rev, 1)
		if rng.IntN(4) == 0 {
			r = tomb(rev)
		}
		x.Append(k, r)
		b.Append(k, r)
		if got, _ := b.Last(k); got != r {
			t.Fatalf("builder Last(%s) = %+v", k, got)
		}
	}
	y := b.Build()
	xk, xr := x.Stats()
	yk, yr := y.Stats()
	if xk != yk || xr != yr {
		t.Fatalf("stats: appended %d/%d, built %d/%d", xk, xr, yk, yr)
	}
	for rev := int64(2); rev < 2000; rev += 37 {
		var a, c []string
		x.Range("", "", rev, func(k string, r Revision) bool { a = append(a, fmt.Sprint(k, r)); return true })
		y.Range("", "", rev, func(k string, r Revision) bool { c = append(c, fmt.Sprint(k, r)); return true })
		if !slices.Equal(a, c) {
			t.Fatalf("at %d the built index differs", rev)
		}
	}
}

// TestCompactDropsWhatCompactionDeletes: Compact(rev) keeps, per key, the
// newest entry at or below rev and everything after it, drops a tombstone
// below rev (one at rev stays), and forgets keys left with nothing.
func TestCompactDropsWhatCompactionDeletes(t *testing.T) {
	x := New()
	x.Append("a", Revision{Mod: 1, Create: 1, Version: 1})
	x.Append("a", Revision{Mod: 3, Create: 1, Version: 2})
	x.Append("a", Revision{Mod: 7, Create: 1, Version: 3})
	x.Append("b", Revision{Mod: 2, Create: 2, Version: 1})
	x.Append("b", Revision{Mod: 4}) // tombstone below rev
	x.Append("c", Revision{Mod: 5, Create: 5, Version: 1})
	x.Append("c", Revision{Mod: 6}) // tombstone at rev
	x.Append("d", Revision{Mod: 8, Create: 8, Version: 1})

	if dropped := x.Compact(6); dropped != 4 {
		t.Fatalf("Compact(6) dropped %d entries, want 4 (a@1, b@2, b@4, c@5)", dropped)
	}
	want := map[string][]int64{"a": {3, 7}, "c": {6}, "d": {8}}
	for key, mods := range want {
		var got []int64
		for _, r := range x.Revisions(key) {
			got = append(got, r.Mod)
		}
		if fmt.Sprint(got) != fmt.Sprint(mods) {
			t.Errorf("%s: revisions %v, want %v", key, got, mods)
		}
	}
	if revs := x.Revisions("b"); len(revs) != 0 {
		t.Errorf("b, deleted below the compact revision, still has %v", revs)
	}
	if keys, revs := x.Stats(); keys != 3 || revs != 4 {
		t.Errorf("Stats = %d keys, %d revisions; want 3, 4", keys, revs)
	}
}
