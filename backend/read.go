package backend

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/kinelite/kinelite/backend/index"
	"google.golang.org/protobuf/proto"
)

// view reads the store as of one revision. rev is the newest revision the
// view sees and the header revision of its responses. A view inside the
// committer also sees the batch's staged rows (pending, by ID).
type view struct {
	s       *Store
	rev     int64
	pending map[int64][]byte
	// published: rev is one the store has published, so what the index
	// holds at rev is final and page counts may be remembered (a
	// committer's view may yet be rolled back).
	published bool
}

func (s *Store) readView() *view { return &view{s: s, rev: s.rev.Load(), published: true} }

// keyRange turns a request's key and range_end into the index's terms:
// [start, end) with end "" meaning no upper bound, or a single key.
func keyRange(key, rangeEnd []byte) (start, end string, single bool) {
	switch {
	case len(rangeEnd) == 0:
		return string(key), "", true
	case len(rangeEnd) == 1 && rangeEnd[0] == 0:
		return string(key), "", false
	default:
		return string(key), string(rangeEnd), false
	}
}

// item is one key resolved by the index, and its stored value once
// fillValues has read it.
type item struct {
	key string
	rev index.Revision
	val []byte
}

// resolve returns the keys in a range that are live at rev, up to limit of
// them (0: all), and how many there are in all when withTotal is set (else
// the count stops at limit+1).
func (v *view) resolve(start, end string, single bool, rev int64, limit int64, withTotal bool) ([]item, int64) {
	if single {
		r, ok := v.s.index.Get(start, rev)
		if !ok {
			return nil, 0
		}
		return []item{{key: start, rev: r}}, 1
	}
	// The page before this one may have left the count of the rest of the
	// range; then the walk stops after limit keys.
	var known int64 = -1
	if withTotal && limit > 0 && v.published {
		if n, ok := v.s.pages.take(start, end, rev); ok {
			known, withTotal = n, false
		}
	}
	var items []item
	var total int64
	if limit > 0 {
		items = make([]item, 0, min(limit, 1024))
	}
	v.s.index.Range(start, end, rev, func(key string, r index.Revision) bool {
		total++
		if limit <= 0 || int64(len(items)) < limit {
			items = append(items, item{key: key, rev: r})
		} else if !withTotal {
			return false
		}
		return true
	})
	if known >= 0 {
		// The walk saw every key (then total must be known) or stopped
		// at the one past limit (then known is at least total).
		seenAll := total == int64(len(items))
		if (seenAll && total != known) || total > known {
			return v.resolve(start, end, false, rev, limit, true) // a stale hint: count afresh
		}
		total = known
	}
	return items, total
}

// rememberPageCount leaves the count of the rest of a range for the page
// after this one, which starts right after the page's last key: the page
// returned, in key order, every key live at rev from its start through its
// last key, so the rest holds total minus those.
func (v *view) rememberPageCount(items []item, end string, rev, total int64) {
	if !v.published || len(items) == 0 {
		return
	}
	next := items[len(items)-1].key + "\x00"
	if end != "" && next >= end {
		return
	}
	v.s.pages.put(next, end, rev, total-int64(len(items)))
}

// checkRevision resolves a request's revision against the view: 0 or less
// means the view's own revision.
func (v *view) checkRevision(rev int64) (int64, error) {
	switch {
	case rev > v.rev:
		return 0, ErrFutureRev
	case rev <= 0:
		rev = v.rev
	}
	if rev < v.s.compactRev.Load() {
		return 0, ErrCompacted
	}
	return rev, nil
}

// fillValues sets the stored value of every item, from the batch's staged
// rows, the watch hub's ring or the database. A row that is missing fails
// the read: ErrCompacted when compaction removed it after the revision check,
// an error otherwise.
func (v *view) fillValues(ctx context.Context, rev int64, items []item) error {
	var missing []int // indexes into items
	for i := range items {
		id := items[i].rev.Mod
		val, ok := v.pending[id]
		if !ok {
			val, ok = v.s.recentValue(id)
		}
		if ok {
			items[i].val = val
		} else {
			missing = append(missing, i)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		it := &items[missing[0]]
		val, ok, err := v.s.driver.Value(ctx, it.rev.Mod)
		if err != nil {
			return unavailable(err)
		}
		if !ok {
			return v.missingRow(rev, it.rev.Mod)
		}
		it.val = val
		return nil
	}
	ids := make([]int64, len(missing))
	for j, i := range missing {
		ids[j] = items[i].rev.Mod
	}
	got, err := v.s.driver.Values(ctx, ids)
	if err != nil {
		return unavailable(err)
	}
	for _, i := range missing {
		val, ok := got[items[i].rev.Mod]
		if !ok {
			return v.missingRow(rev, items[i].rev.Mod)
		}
		items[i].val = val
	}
	return nil
}

// missingRow is the error of a read at rev that found row id gone.
func (v *view) missingRow(rev, id int64) error {
	if rev < v.s.compactRev.Load() {
		return ErrCompacted
	}
	return unavailable(fmt.Errorf("row %d is missing from the table", id))
}

// value returns the client value of key at revision r.
func (v *view) value(ctx context.Context, key string, r index.Revision) ([]byte, error) {
	it := []item{{key: key, rev: r}}
	if err := v.fillValues(ctx, r.Mod, it); err != nil {
		return nil, err
	}
	return clientValue(key, it[0].val), nil
}

// isDefaultOrder reports whether a range is sorted the way the index
// returns keys.
func isDefaultOrder(r *pb.RangeRequest) bool {
	return r.SortOrder == pb.RangeRequest_NONE ||
		(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

// rangeKVs answers a Range request as etcd does: count is the number of keys
// in the range at the read revision whatever the limit (when withTotal; a
// RangeStream chunk does not need it), more tells whether limit cut the
// result, and the header revision is the view's, not the read revision.
func (v *view) rangeKVs(ctx context.Context, r *pb.RangeRequest, withTotal bool) (*pb.RangeResponse, error) {
	rev, err := v.checkRevision(r.Revision)
	if err != nil {
		return nil, err
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: v.rev}}
	start, end, single := keyRange(r.Key, r.RangeEnd)
	if !single && end != "" && start >= end {
		return resp, nil
	}
	if r.CountOnly {
		if single {
			_, resp.Count = v.resolve(start, end, true, rev, 0, true)
		} else {
			resp.Count = int64(v.s.index.Count(start, end, rev))
		}
		return resp, nil
	}

	// Like etcd: fetch limit+1 to learn "more", unless sorting or filtering
	// needs every key first.
	limit := r.Limit
	if !isDefaultOrder(r) || hasRevisionFilters(r) {
		limit = 0
	}
	if limit > 0 && limit < math.MaxInt64 {
		limit++
	}
	items, total := v.resolve(start, end, single, rev, limit, withTotal)
	items = filterItems(items, r)

	// A target other than KEY with no order sorts ascending (etcd); the
	// limit above was decided on the order as requested, as etcd does.
	sortByValue := r.SortTarget == pb.RangeRequest_VALUE
	if sortByValue {
		if err := v.fillValues(ctx, rev, items); err != nil {
			return nil, err
		}
	}
	sortItems(items, r)
	if r.Limit > 0 && int64(len(items)) > r.Limit {
		items = items[:r.Limit]
		resp.More = true
		if withTotal && !single && isDefaultOrder(r) && !hasRevisionFilters(r) {
			v.rememberPageCount(items, end, rev, total)
		}
	}
	resp.Count = total
	if !withTotal && !resp.More {
		resp.Count = int64(len(items))
	}

	keysOnly := r.KeysOnly
	if !keysOnly && !sortByValue && len(items) > 0 {
		if err := v.fillValues(ctx, rev, items); err != nil {
			return nil, err
		}
	}
	// etcd answers keys_only from its index, whose entries carry no lease,
	// unless it sorted by value.
	resp.Kvs = newKVs(items, !keysOnly, keysOnly && !sortByValue)
	return resp, nil
}

// newKVs returns the key-values of items, with their client values when
// withValues, with no lease when noLease. A page of a list holds hundreds
// of them: the messages share one allocation and their keys another.
func newKVs(items []item, withValues, noLease bool) []*mvccpb.KeyValue {
	if len(items) == 0 {
		return []*mvccpb.KeyValue{}
	}
	n := 0
	for _, it := range items {
		n += len(it.key)
	}
	keys := make([]byte, 0, n)
	kvs := make([]mvccpb.KeyValue, len(items))
	out := make([]*mvccpb.KeyValue, len(items))
	for i, it := range items {
		at := len(keys)
		keys = append(keys, it.key...)
		kv := &kvs[i]
		kv.Key = keys[at:len(keys):len(keys)] // full: an append copies
		kv.CreateRevision, kv.ModRevision, kv.Version = it.rev.Create, it.rev.Mod, it.rev.Version
		if !noLease {
			kv.Lease = it.rev.Lease
		}
		if withValues {
			kv.Value = clientValue(it.key, it.val)
		}
		out[i] = kv
	}
	return out
}

// filterItems applies the min/max mod and create revision filters.
func filterItems(items []item, r *pb.RangeRequest) []item {
	if !hasRevisionFilters(r) {
		return items
	}
	return slices.DeleteFunc(items, func(it item) bool {
		return (r.MaxModRevision != 0 && it.rev.Mod > r.MaxModRevision) ||
			(r.MinModRevision != 0 && it.rev.Mod < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && it.rev.Create > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && it.rev.Create < r.MinCreateRevision)
	})
}

// sortItems orders items as the request asks. A target other than KEY with
// no order means ascending, as in etcd. Ties keep key order.
func sortItems(items []item, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if order == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND) {
		return
	}
	var cmp func(a, b item) int
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		cmp = func(a, b item) int { return compareStrings(a.key, b.key) }
	case pb.RangeRequest_VERSION:
		cmp = func(a, b item) int { return compareInts(a.rev.Version, b.rev.Version) }
	case pb.RangeRequest_CREATE:
		cmp = func(a, b item) int { return compareInts(a.rev.Create, b.rev.Create) }
	case pb.RangeRequest_MOD:
		cmp = func(a, b item) int { return compareInts(a.rev.Mod, b.rev.Mod) }
	case pb.RangeRequest_VALUE:
		cmp = func(a, b item) int {
			return bytes.Compare(clientValue(a.key, a.val), clientValue(b.key, b.val))
		}
	default:
		return
	}
	if order == pb.RangeRequest_DESCEND {
		asc := cmp
		cmp = func(a, b item) int { return asc(b, a) }
	}
	slices.SortStableFunc(items, cmp)
}

func compareInts(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Range answers a Range request at the latest revision or an older one.
func (s *Store) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := s.linearize(ctx, r.Serializable); err != nil {
		return nil, err
	}
	return s.readView().rangeKVs(ctx, r, true)
}

// linearize makes a read that is not serializable see every write any
// process acknowledged before it began: on a shared database it first
// catches up with the database's head. On a database of its own, this
// process's revision is the head.
func (s *Store) linearize(ctx context.Context, serializable bool) error {
	if s.shared == nil || serializable {
		return nil
	}
	return s.syncHead(ctx)
}

// RangeStream answers a Range request in chunks, as etcd 3.7's RangeStream
// does: the revision is pinned at the start, the first chunk holds 10 keys
// and later chunks double or halve their key count to land near chunkBytes,
// only the last chunk carries the header, more and count. send is called
// once per chunk.
func (s *Store) RangeStream(ctx context.Context, r *pb.RangeRequest, chunkBytes int,
	send func(*pb.RangeResponse) error) error {
	if err := s.linearize(ctx, r.Serializable); err != nil {
		return err
	}
	v := s.readView()
	if r.CountOnly {
		resp, err := v.rangeKVs(ctx, r, true)
		if err != nil {
			return err
		}
		return send(&pb.RangeResponse{Header: resp.Header, Count: resp.Count})
	}
	// The loop moves Key, Limit and Revision; the caller's request stays.
	req := &pb.RangeRequest{Key: r.Key, RangeEnd: r.RangeEnd, Revision: r.Revision, KeysOnly: r.KeysOnly}
	totalLimit := r.Limit
	if totalLimit <= 0 {
		totalLimit = math.MaxInt64
	}
	req.Limit = min(int64(10), totalLimit)
	if req.Revision <= 0 {
		req.Revision = v.rev
	}
	var sent int64
	for {
		resp, err := v.rangeKVs(ctx, req, false)
		if err != nil {
			return err
		}
		sent += int64(len(resp.Kvs))
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		last := !resp.More || sent == totalLimit
		if last {
			out.Header = &pb.ResponseHeader{Revision: v.rev}
			out.More = resp.More
			out.Count = sent
			if resp.More {
				next := append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
				rest, err := v.rangeKVs(ctx, &pb.RangeRequest{Key: next, RangeEnd: req.RangeEnd,
					Revision: req.Revision, CountOnly: true}, true)
				if err != nil {
					return err
				}
				out.Count += rest.Count
			}
		}
		if err := send(out); err != nil {
			return err
		}
		if last {
			return nil
		}
		req.Key = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		size := proto.Size(resp)
		switch {
		case size < chunkBytes/2:
			req.Limit *= 2
		case size > chunkBytes*2:
			req.Limit /= 2
		}
		req.Limit = max(min(req.Limit, totalLimit-sent), 1)
	}
}
