package index

import (
	"sort"
	"sync"

	"github.com/google/btree"
)

// Revision is the metadata of one row of a key's history.
type Revision struct {
	// Mod is the revision of the row (its id in kine's table).
	Mod int64
	// Create is the revision that created the key's current generation;
	// 0 for a tombstone.
	Create int64
	// Version counts the writes since the key was created (1 for the
	// create); 0 marks a tombstone.
	Version int64
	// Lease is the lease the key is attached to, or 0.
	Lease int64
}

// Tombstone reports whether r records a delete.
func (r Revision) Tombstone() bool { return r.Version == 0 }

// history is one key and its revisions, oldest first.
type history struct {
	key  string
	revs []Revision
}

// at returns the newest entry with Mod <= rev.
func (h *history) at(rev int64) (Revision, bool) {
	n := len(h.revs)
	if n == 0 {
		return Revision{}, false
	}
	if last := h.revs[n-1]; last.Mod <= rev {
		return last, true
	}
	i := sort.Search(n, func(i int) bool { return h.revs[i].Mod > rev })
	if i == 0 {
		return Revision{}, false
	}
	return h.revs[i-1], true
}

// live returns the entry visible at rev when the key exists at rev.
func (h *history) live(rev int64) (Revision, bool) {
	r, ok := h.at(rev)
	if !ok || r.Tombstone() {
		return Revision{}, false
	}
	return r, true
}

func lessHistory(a, b *history) bool { return a.key < b.key }

// Index is the in-memory key index. The zero value is not usable; call New.
type Index struct {
	mu      sync.RWMutex // guards tree, entries and every history in it
	tree    *btree.BTreeG[*history]
	entries int
}

// New returns an empty index.
func New() *Index {
	return &Index{tree: btree.NewG(32, lessHistory)}
}

func (x *Index) find(key string) (*history, bool) {
	return x.tree.Get(&history{key: key})
}

// Get returns the revision of key visible at rev, and false when the key
// does not exist at rev (never written, deleted, or only written above rev).
func (x *Index) Get(key string, rev int64) (Revision, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.find(key)
	if !ok {
		return Revision{}, false
	}
	return h.live(rev)
}

// Last returns the newest entry of key, tombstone or not, whatever its
// revision.
func (x *Index) Last(key string) (Revision, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.find(key)
	if !ok || len(h.revs) == 0 {
		return Revision{}, false
	}
	return h.revs[len(h.revs)-1], true
}

// Exact returns the entry of key written at mod, if the index holds it.
func (x *Index) Exact(key string, mod int64) (Revision, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.find(key)
	if !ok {
		return Revision{}, false
	}
	i := sort.Search(len(h.revs), func(i int) bool { return h.revs[i].Mod >= mod })
	if i < len(h.revs) && h.revs[i].Mod == mod {
		return h.revs[i], true
	}
	return Revision{}, false
}

// Oldest returns the oldest entry the index holds for key.
func (x *Index) Oldest(key string) (Revision, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.find(key)
	if !ok || len(h.revs) == 0 {
		return Revision{}, false
	}
	return h.revs[0], true
}

// Revisions returns a copy of every entry the index holds for key, oldest
// first.
func (x *Index) Revisions(key string) []Revision {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.find(key)
	if !ok {
		return nil
	}
	return append([]Revision(nil), h.revs...)
}

// Range calls fn, in ascending key order, for every key in [start, end) that
// is live at rev, until fn returns false. An empty end means no upper bound.
// fn runs under the index's shared lock: it must not block or call back into
// the index.
func (x *Index) Range(start, end string, rev int64, fn func(key string, r Revision) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	visit := func(h *history) bool {
		r, ok := h.live(rev)
		if !ok {
			return true
		}
		return fn(h.key, r)
	}
	if end == "" {
		x.tree.AscendGreaterOrEqual(&history{key: start}, visit)
		return
	}
	if start >= end {
		return
	}
	x.tree.AscendRange(&history{key: start}, &history{key: end}, visit)
}

// Count returns how many keys in [start, end) are live at rev. An empty end
// means no upper bound.
func (x *Index) Count(start, end string, rev int64) int {
	n := 0
	x.Range(start, end, rev, func(string, Revision) bool { n++; return true })
	return n
}

// Append adds r as the newest entry of key. r.Mod must be greater than every
// revision the key already has.
func (x *Index) Append(key string, r Revision) {
	x.mu.Lock()
	defer x.mu.Unlock()
	h, ok := x.find(key)
	if !ok {
		h = &history{key: key}
		x.tree.ReplaceOrInsert(h)
	}
	if n := len(h.revs); n > 0 && h.revs[n-1].Mod >= r.Mod {
		panic("index: append out of revision order")
	}
	h.revs = append(h.revs, r)
	x.entries++
}

// Truncate removes the entries of key above rev, and the key itself when no
// entry is left. The committer uses it to undo a transaction whose commit
// failed.
func (x *Index) Truncate(key string, rev int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	h, ok := x.find(key)
	if !ok {
		return
	}
	i := sort.Search(len(h.revs), func(i int) bool { return h.revs[i].Mod > rev })
	x.entries -= len(h.revs) - i
	h.revs = h.revs[:i]
	if len(h.revs) == 0 {
		x.tree.Delete(h)
	}
}

// Remove deletes the entry of key written at mod, and the key itself when no
// entry is left. It reports whether the entry existed. Compaction calls it for
// every row it deletes from the table, so the index mirrors the table.
func (x *Index) Remove(key string, mod int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	h, ok := x.find(key)
	if !ok {
		return false
	}
	i := sort.Search(len(h.revs), func(i int) bool { return h.revs[i].Mod >= mod })
	if i == len(h.revs) || h.revs[i].Mod != mod {
		return false
	}
	if i == 0 {
		// Compaction removes from the front; re-slicing would pin the
		// removed entries' backing array, so copy when it is worth it.
		h.revs = h.revs[1:]
		if cap(h.revs) > 2*len(h.revs)+8 {
			h.revs = append([]Revision(nil), h.revs...)
		}
	} else {
		h.revs = append(h.revs[:i], h.revs[i+1:]...)
	}
	x.entries--
	if len(h.revs) == 0 {
		x.tree.Delete(h)
	}
	return true
}

// Stats reports how many keys (live or not) and how many revisions the index
// holds.
func (x *Index) Stats() (keys, revisions int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.tree.Len(), x.entries
}

// Builder assembles an index from rows read in revision order, faster than
// Append: it keeps histories in a map and builds the ordered tree once. It
// is not safe for concurrent use.
type Builder struct {
	histories map[string]*history
	entries   int
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder { return &Builder{histories: make(map[string]*history)} }

// Last returns the newest entry appended for key so far.
func (b *Builder) Last(key string) (Revision, bool) {
	h, ok := b.histories[key]
	if !ok || len(h.revs) == 0 {
		return Revision{}, false
	}
	return h.revs[len(h.revs)-1], true
}

// Append adds r as the newest entry of key; r.Mod must grow per key.
func (b *Builder) Append(key string, r Revision) {
	h, ok := b.histories[key]
	if !ok {
		h = &history{key: key}
		b.histories[key] = h
	}
	if n := len(h.revs); n > 0 && h.revs[n-1].Mod >= r.Mod {
		panic("index: append out of revision order")
	}
	h.revs = append(h.revs, r)
	b.entries++
}

// Build returns the index. The builder must not be used afterwards.
//
// Each key's revisions move to a slice of exactly their length: appends
// during the scan double the capacity, which leaves a key of 5 revisions
// holding room for 8 (60% more than it needs, on every key of a large
// table, for as long as the key lives).
func (b *Builder) Build() *Index {
	all := make([]*history, 0, len(b.histories))
	for _, h := range b.histories {
		if cap(h.revs) > len(h.revs) {
			h.revs = append(make([]Revision, 0, len(h.revs)), h.revs...)
		}
		all = append(all, h)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key < all[j].key })
	x := New()
	for _, h := range all {
		x.tree.ReplaceOrInsert(h)
	}
	x.entries = b.entries
	b.histories = nil
	return x
}

// Compact drops what compaction through rev deletes from the table: every
// entry superseded by a later entry at or below rev, and tombstones below
// rev. It returns how many entries it dropped. A process whose database
// another process compacted uses it; the compacting process removes the rows
// it deleted one by one (Remove).
func (x *Index) Compact(rev int64) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	dropped := 0
	var empty []*history
	x.tree.Ascend(func(h *history) bool {
		// i: the newest entry at or below rev; everything before it goes.
		i := sort.Search(len(h.revs), func(i int) bool { return h.revs[i].Mod > rev }) - 1
		if i < 0 {
			return true
		}
		if h.revs[i].Tombstone() && h.revs[i].Mod < rev {
			i++
		}
		if i > 0 {
			dropped += i
			h.revs = append([]Revision(nil), h.revs[i:]...)
			if len(h.revs) == 0 {
				empty = append(empty, h)
			}
		}
		return true
	})
	for _, h := range empty {
		x.tree.Delete(h)
	}
	x.entries -= dropped
	return dropped
}
