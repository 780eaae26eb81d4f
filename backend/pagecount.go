package backend

import "sync"

// pageCounts remembers, for the last few paged ranges, how many keys remain
// after the page just served, so that the next page's count need not walk
// the rest of the range again.
//
// A paged list (kube-apiserver's, with limit and every page after the first
// at the first page's revision) asks each page for the count of the whole
// rest of the range. Counting walks the index from the page's start to the
// range's end, so a list of n keys in pages of p walked about n²/2p keys:
// for 20,000 keys in pages of 500, 400,000 index steps where the pages
// themselves take 20,000. A page that stopped at its limit, after key last,
// returned every key live at rev in [start, last], so the count of
// [last+"\x00", end) at rev is its count minus the keys it returned. That is
// exact, not an estimate: the index's keys live at a revision the store has
// published never change (writes add newer revisions; compaction keeps what
// every revision at or above the compact revision sees, and a read below it
// fails before counting).
//
// It holds pageCountSlots entries, each two keys and two numbers; a hint
// that is not used again is overwritten by later lists.
type pageCounts struct {
	mu    sync.Mutex
	slots [pageCountSlots]pageCount
	next  int // slot the next new hint overwrites
}

const pageCountSlots = 16

type pageCount struct {
	start, end string // the next page's range
	rev        int64  // revision the count is at; 0: empty slot
	count      int64  // live keys in [start, end) at rev
}

// take returns the count remembered for [start, end) at rev and forgets
// it: the page that uses it leaves a hint of its own for the page after it.
func (c *pageCounts) take(start, end string, rev int64) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		s := &c.slots[i]
		if s.rev == rev && s.start == start && s.end == end {
			n := s.count
			*s = pageCount{}
			return n, true
		}
	}
	return 0, false
}

// put remembers that [start, end) holds count live keys at rev.
func (c *pageCounts) put(start, end string, rev, count int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	slot := -1
	for i := range c.slots {
		if c.slots[i].rev == 0 {
			slot = i
			break
		}
	}
	if slot < 0 {
		slot = c.next
		c.next = (c.next + 1) % pageCountSlots
	}
	c.slots[slot] = pageCount{start: start, end: end, rev: rev, count: count}
}
