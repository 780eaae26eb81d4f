package test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/kinelite/kinelite"
)

// pair sends every operation to an embedded etcd (the reference) and to
// kinelite through client/v3 and compares the answers.
//
// # Revisions
//
// Both stores start at revision 1. etcd gives every write request (a Put, a
// DeleteRange, a Txn, a lease revoke) one revision; kinelite gives it one
// revision per key it writes, in op order (README "Compatibility": kine's
// table holds one row per revision). The pair keeps the correspondence in
// kEnd: kEnd[r] is kinelite's revision once etcd is at revision r, and it
// checks on every answer that kinelite moved by exactly the number of keys
// etcd wrote. Answers are compared in etcd's revisions: a kinelite revision
// k becomes the etcd revision of the write it belongs to. Requests that name
// a revision are translated the other way: a read at etcd revision r reads
// kinelite at kEnd[r] (the write complete), a lower bound (a watch start, a
// "mod_revision < r" compare, a min_mod_revision filter) becomes the first
// kinelite revision of write r. An equality on a revision is exact only
// when write r took a single kinelite revision, so request builders ask
// single(r) before they use one. When every write touches at most one key
// the translation is the identity, and the pair checks exactly that.
type pair struct {
	t    testing.TB // where failures go (a subtest's, in pair.known)
	root testing.TB // the test that owns the servers and watches
	ctx  context.Context
	e, k *clientv3.Client
	ks   *kineliteServer

	kEnd []int64

	// leaseToEtcd maps kinelite's lease IDs to etcd's for leases granted
	// with ID 0 (each server picks its own); leases granted with an explicit
	// ID have the same ID on both and are not in the map.
	leaseToEtcd map[int64]int64
	leaseToKine map[int64]int64

	watches []*watchPair
	nwatch  int
}

// newPair starts both servers; options configure kinelite.
func newPair(t testing.TB, options ...func(*kinelite.Config)) *pair {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &pair{
		t:           t,
		root:        t,
		ctx:         ctx,
		e:           startEtcd(t),
		ks:          startKinelite(t, options...),
		kEnd:        []int64{0, 1},
		leaseToEtcd: map[int64]int64{},
		leaseToKine: map[int64]int64{},
	}
	p.k = p.ks.cli
	// A fresh store is at revision 1 on both.
	for _, s := range p.sides() {
		resp, err := s.cli.Get(p.opCtx(), "probe")
		if err != nil {
			t.Fatalf("%s: first read: %v", s.name, err)
		}
		if resp.Header.Revision != 1 {
			t.Fatalf("%s: a fresh store is at revision %d, want 1", s.name, resp.Header.Revision)
		}
	}
	return p
}

func (p *pair) opCtx() context.Context {
	// The timeout is a hang guard; the contexts are released with the pair.
	ctx, cancel := context.WithTimeout(p.ctx, opTimeout)
	p.t.Cleanup(cancel)
	return ctx
}

// restartKinelite restarts kinelite on its file, after comparing and
// dropping every watch (their streams end with the server), and checks
// that the revision survived.
func (p *pair) restartKinelite(desc string) {
	p.t.Helper()
	p.trace(desc)
	p.checkWatches(desc + " (before the restart)")
	for len(p.watches) > 0 {
		p.forget(p.watches[0])
	}
	p.ks.restart()
	p.k = p.ks.cli
	p.resync(desc, 0)
}

var flagTrace = flag.Bool("diff.trace", false, "log every differential operation as it is sent")

// trace logs an operation with -diff.trace, with etcd's revision before it.
func (p *pair) trace(desc string) {
	if *flagTrace {
		p.t.Logf("[rev %d] %s", p.last(), desc)
	}
}

// ---- revision translation ----

// last is etcd's current revision.
func (p *pair) last() int64 { return int64(len(p.kEnd) - 1) }

// kRev is the kinelite revision at which the state etcd has at revision r
// is visible. Revisions beyond the current one keep their distance to it.
func (p *pair) kRev(r int64) int64 {
	switch last := p.last(); {
	case r <= 0:
		return r
	case r <= last:
		return p.kEnd[r]
	default:
		return p.kEnd[last] + r - last
	}
}

// kFirst is the first kinelite revision of the write etcd made at r.
func (p *pair) kFirst(r int64) int64 {
	switch last := p.last(); {
	case r <= 0:
		return r
	case r <= last:
		return p.kEnd[r-1] + 1
	default:
		return p.kEnd[last] + r - last
	}
}

// eRev is the etcd revision of the write kinelite revision k belongs to.
func (p *pair) eRev(k int64) int64 {
	last := p.last()
	switch {
	case k <= 0:
		return k
	case k > p.kEnd[last]:
		return last + k - p.kEnd[last]
	}
	return int64(sort.Search(len(p.kEnd), func(i int) bool { return p.kEnd[i] >= k }))
}

// single reports whether etcd's write at r took one kinelite revision, so
// that an equality on r means the same on both.
func (p *pair) single(r int64) bool {
	return r >= 1 && r <= p.last() && p.kEnd[r]-p.kEnd[r-1] == 1
}

// advance records the revisions both servers report after an operation in
// which etcd wrote writes keys, and fails the test when kinelite did not
// move by exactly that many revisions.
func (p *pair) advance(desc string, eRev, kRev, writes int64) {
	p.t.Helper()
	last := p.last()
	switch eRev {
	case last:
		if kRev != p.kEnd[last] {
			p.t.Fatalf("%s: etcd stayed at revision %d and kinelite should be at %d, but kinelite is at %d",
				desc, last, p.kEnd[last], kRev)
		}
	case last + 1:
		if want := p.kEnd[last] + writes; kRev != want || writes < 1 {
			p.t.Fatalf("%s: etcd wrote %d key(s) at revision %d; kinelite should have moved from %d to %d, but is at %d",
				desc, writes, eRev, p.kEnd[last], want, kRev)
		}
		p.kEnd = append(p.kEnd, kRev)
	default:
		p.t.Fatalf("%s: etcd moved from revision %d to %d in one operation", desc, last, eRev)
	}
}

// resync reads both current revisions and records them, for writes the
// servers make on their own (lease expiry).
func (p *pair) resync(desc string, writes int64) {
	p.t.Helper()
	er, err := p.e.Get(p.opCtx(), "probe")
	if err != nil {
		p.t.Fatalf("%s: etcd: %v", desc, err)
	}
	kr, err := p.k.Get(p.opCtx(), "probe")
	if err != nil {
		p.t.Fatalf("%s: kinelite: %v", desc, err)
	}
	p.advance(desc, er.Header.Revision, kr.Header.Revision, writes)
}

// ---- the two sides as request builders see them ----

// side is one server as a request builder sees it: revisions and lease IDs
// are given in etcd's terms and translated for kinelite.
type side struct {
	name string
	cli  *clientv3.Client
	// rev translates a revision at which to read (or an upper bound),
	// first a lower bound (see pair).
	rev, first func(int64) int64
	// lease translates an etcd lease ID.
	lease func(int64) clientv3.LeaseID
}

func (p *pair) etcdSide() side {
	id := func(r int64) int64 { return r }
	return side{name: "etcd", cli: p.e, rev: id, first: id,
		lease: func(l int64) clientv3.LeaseID { return clientv3.LeaseID(l) }}
}

func (p *pair) kineSide() side {
	return side{name: "kinelite", cli: p.k, rev: p.kRev, first: p.kFirst,
		lease: func(l int64) clientv3.LeaseID {
			if k, ok := p.leaseToKine[l]; ok {
				return clientv3.LeaseID(k)
			}
			return clientv3.LeaseID(l)
		}}
}

func (p *pair) sides() [2]side { return [2]side{p.etcdSide(), p.kineSide()} }

// ---- normalisation ----

// norm rewrites an answer into etcd's terms: the member identity in headers
// is dropped (the two are different clusters), revisions and lease IDs are
// translated.
type norm struct {
	rev   func(int64) int64
	lease func(int64) int64
}

func (p *pair) norms() (e, k norm) {
	id := func(x int64) int64 { return x }
	return norm{rev: id, lease: id}, norm{rev: p.eRev, lease: func(l int64) int64 {
		if e, ok := p.leaseToEtcd[l]; ok {
			return e
		}
		return l
	}}
}

// msg returns a normalised copy of m.
func (n norm) msg(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	m = proto.Clone(m)
	switch r := m.(type) {
	case *pb.RangeResponse:
		n.rangeResp(r)
	case *pb.PutResponse:
		n.header(r.Header)
		n.kv(r.PrevKv)
	case *pb.DeleteRangeResponse:
		n.header(r.Header)
		for _, kv := range r.PrevKvs {
			n.kv(kv)
		}
	case *pb.TxnResponse:
		n.txn(r)
	case *pb.CompactionResponse:
		n.header(r.Header)
	case *pb.LeaseGrantResponse:
		n.header(r.Header)
		r.ID = n.lease(r.ID)
	case *pb.LeaseRevokeResponse:
		n.header(r.Header)
	case *pb.WatchResponse:
		n.header(r.Header)
		r.CompactRevision = n.rev(r.CompactRevision)
		for _, ev := range r.Events {
			n.kv(ev.Kv)
			n.kv(ev.PrevKv)
		}
	default:
		panic(fmt.Sprintf("norm: unexpected %T", m))
	}
	return m
}

func (n norm) header(h *pb.ResponseHeader) {
	if h == nil {
		return
	}
	h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	h.Revision = n.rev(h.Revision)
}

func (n norm) kv(kv *mvccpb.KeyValue) {
	if kv == nil {
		return
	}
	kv.CreateRevision = n.rev(kv.CreateRevision)
	kv.ModRevision = n.rev(kv.ModRevision)
	kv.Lease = n.lease(kv.Lease)
}

func (n norm) rangeResp(r *pb.RangeResponse) {
	n.header(r.Header)
	for _, kv := range r.Kvs {
		n.kv(kv)
	}
}

func (n norm) txn(r *pb.TxnResponse) {
	n.header(r.Header)
	for _, op := range r.Responses {
		switch x := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			n.rangeResp(x.ResponseRange)
		case *pb.ResponseOp_ResponsePut:
			n.header(x.ResponsePut.Header)
			n.kv(x.ResponsePut.PrevKv)
		case *pb.ResponseOp_ResponseDeleteRange:
			n.header(x.ResponseDeleteRange.Header)
			for _, kv := range x.ResponseDeleteRange.PrevKvs {
				n.kv(kv)
			}
		case *pb.ResponseOp_ResponseTxn:
			n.txn(x.ResponseTxn)
		}
	}
}

// ---- comparing ----

func show(m proto.Message) string {
	if m == nil {
		return "<nil>"
	}
	s := prototext.MarshalOptions{}.Format(m)
	if s == "" {
		return "{}"
	}
	return s
}

// errString is what a client can tell about an error: its gRPC code and
// message (client/v3 maps errors back to rpctypes by message).
func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return fmt.Sprintf("%v: %s", ee.Code(), ee.Error())
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%v: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// sameErr reports (and records as a failure) whether the two errors differ.
func (p *pair) sameErr(desc string, eerr, kerr error) bool {
	p.t.Helper()
	if es, ks := errString(eerr), errString(kerr); es != ks {
		p.t.Errorf("%s: errors differ\n  etcd:     %s\n  kinelite: %s", desc, es, ks)
		return false
	}
	return true
}

// same compares two normalised answers.
func (p *pair) same(desc string, e, k proto.Message) bool {
	p.t.Helper()
	if !proto.Equal(e, k) {
		p.t.Errorf("%s: answers differ\n  etcd:     %s\n  kinelite: %s", desc, show(e), show(k))
		return false
	}
	return true
}

// ---- KV ----

// do runs the op that build makes for each side and compares the answers.
// It returns etcd's answer.
func (p *pair) do(desc string, build func(s side) clientv3.Op) (clientv3.OpResponse, error) {
	p.t.Helper()
	p.trace(desc)
	es, ks := p.sides()[0], p.sides()[1]
	er, eerr := p.e.Do(p.opCtx(), build(es))
	kr, kerr := p.k.Do(p.opCtx(), build(ks))
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		p.checkUnchanged(desc)
		return er, eerr
	}
	em, km := opMsg(er), opMsg(kr)
	p.advance(desc, headerOf(em).GetRevision(), headerOf(km).GetRevision(), writesOf(em))
	en, kn := p.norms()
	p.same(desc, en.msg(em), kn.msg(km))
	return er, nil
}

// stream runs the same range as a RangeStream (client/v3's GetStream) on
// both and compares the merged answers. How a server cuts the answer into
// chunks is its own choice (etcd sizes them against its request limit);
// the merged result, with the last chunk's header, more and count, is
// what a client sees.
func (p *pair) stream(desc string, build func(s side) (string, []clientv3.OpOption)) {
	p.t.Helper()
	p.trace(desc)
	get := func(s side) (proto.Message, error) {
		key, opts := build(s)
		ch, err := s.cli.GetStream(p.opCtx(), key, opts...)
		if err != nil {
			return nil, err
		}
		resp, err := clientv3.GetStreamToGetResponse(ch)
		if err != nil {
			return nil, err
		}
		return (*pb.RangeResponse)(resp), nil
	}
	em, eerr := get(p.etcdSide())
	km, kerr := get(p.kineSide())
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		return
	}
	p.advance(desc, headerOf(em).GetRevision(), headerOf(km).GetRevision(), 0)
	en, kn := p.norms()
	p.same(desc, en.msg(em), kn.msg(km))
}

// raw sends a request client/v3 will not build (an invalid enum, an empty
// op) through the generated gRPC client on each connection and compares.
func (p *pair) raw(desc string, call func(ctx context.Context, kv pb.KVClient, s side) (proto.Message, error)) {
	p.t.Helper()
	p.trace(desc)
	es, ks := p.sides()[0], p.sides()[1]
	em, eerr := call(p.opCtx(), pb.NewKVClient(p.e.ActiveConnection()), es)
	km, kerr := call(p.opCtx(), pb.NewKVClient(p.k.ActiveConnection()), ks)
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		p.checkUnchanged(desc)
		return
	}
	p.advance(desc, headerOf(em).GetRevision(), headerOf(km).GetRevision(), writesOf(em))
	en, kn := p.norms()
	p.same(desc, en.msg(em), kn.msg(km))
}

// checkUnchanged checks that a failed request wrote nothing on either side.
func (p *pair) checkUnchanged(desc string) {
	p.t.Helper()
	p.resync(desc+" (after the error)", 0)
}

func opMsg(r clientv3.OpResponse) proto.Message {
	switch {
	case r.Get() != nil:
		return (*pb.RangeResponse)(r.Get())
	case r.Put() != nil:
		return (*pb.PutResponse)(r.Put())
	case r.Del() != nil:
		return (*pb.DeleteRangeResponse)(r.Del())
	case r.Txn() != nil:
		return (*pb.TxnResponse)(r.Txn())
	}
	return nil
}

func headerOf(m proto.Message) *pb.ResponseHeader {
	if h, ok := m.(interface{ GetHeader() *pb.ResponseHeader }); ok {
		return h.GetHeader()
	}
	return nil
}

// writesOf counts the keys an answer says were written.
func writesOf(m proto.Message) int64 {
	switch r := m.(type) {
	case *pb.PutResponse:
		return 1
	case *pb.DeleteRangeResponse:
		return r.Deleted
	case *pb.TxnResponse:
		return opWrites(r.Responses)
	}
	return 0
}

func opWrites(ops []*pb.ResponseOp) (n int64) {
	for _, op := range ops {
		switch x := op.Response.(type) {
		case *pb.ResponseOp_ResponsePut:
			n++
		case *pb.ResponseOp_ResponseDeleteRange:
			n += x.ResponseDeleteRange.Deleted
		case *pb.ResponseOp_ResponseTxn:
			n += opWrites(x.ResponseTxn.Responses)
		}
	}
	return n
}

// compact compacts both at etcd revision r (kinelite at kRev(r)). Callers
// use a revision whose write took one kinelite revision, so that "reads at
// the compact revision work, reads below fail" means the same on both.
func (p *pair) compact(desc string, r int64, physical bool) {
	p.t.Helper()
	p.trace(desc)
	// A watch still catching up when its start is compacted is cancelled,
	// one already synced is not: that depends on timing, so let every watch
	// catch up first.
	p.syncWatches(desc + " (before compacting)")
	var opts []clientv3.CompactOption
	if physical {
		opts = append(opts, clientv3.WithCompactPhysical())
	}
	er, eerr := p.e.Compact(p.opCtx(), r, opts...)
	kr, kerr := p.k.Compact(p.opCtx(), p.kRev(r), opts...)
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		p.checkUnchanged(desc)
		return
	}
	em, km := (*pb.CompactionResponse)(er), (*pb.CompactionResponse)(kr)
	p.advance(desc, em.Header.Revision, km.Header.Revision, 0)
	en, kn := p.norms()
	p.same(desc, en.msg(em), kn.msg(km))
}

// ---- leases ----

// grant grants a lease with the given ID (0: each server picks one, and
// the pair remembers how they correspond) and returns etcd's ID.
func (p *pair) grant(desc string, id, ttl int64) (int64, error) {
	p.t.Helper()
	p.trace(desc)
	req := &pb.LeaseGrantRequest{ID: id, TTL: ttl}
	er, eerr := pb.NewLeaseClient(p.e.ActiveConnection()).LeaseGrant(p.opCtx(), req)
	kr, kerr := pb.NewLeaseClient(p.k.ActiveConnection()).LeaseGrant(p.opCtx(), req)
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		p.checkUnchanged(desc)
		return 0, eerr
	}
	if id == 0 {
		if kr.ID == 0 {
			p.t.Errorf("%s: kinelite granted lease ID 0", desc)
		}
		p.leaseToEtcd[kr.ID] = er.ID
		p.leaseToKine[er.ID] = kr.ID
	}
	p.advance(desc, er.Header.Revision, kr.Header.Revision, 0)
	en, kn := p.norms()
	p.same(desc, en.msg(er), kn.msg(kr))
	return er.ID, nil
}

// revoke revokes a lease (etcd ID) on both; writes is the number of keys
// attached to it, each deleted.
func (p *pair) revoke(desc string, id int64) {
	p.t.Helper()
	p.trace(desc)
	writes := int64(0)
	if ttl, err := p.e.TimeToLive(p.opCtx(), clientv3.LeaseID(id), clientv3.WithAttachedKeys()); err == nil && ttl.TTL > 0 {
		writes = int64(len(ttl.Keys))
	}
	ks := p.kineSide()
	er, eerr := p.e.Revoke(p.opCtx(), clientv3.LeaseID(id))
	kr, kerr := p.k.Revoke(p.opCtx(), ks.lease(id))
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		p.checkUnchanged(desc)
		return
	}
	em, km := (*pb.LeaseRevokeResponse)(er), (*pb.LeaseRevokeResponse)(kr)
	p.advance(desc, em.Header.Revision, km.Header.Revision, writes)
	en, kn := p.norms()
	p.same(desc, en.msg(em), kn.msg(km))
}

// timeToLive compares TimeToLive. The remaining TTL runs with the clock, so
// it is only checked to lie in (0, granted TTL] (or be -1 for an unknown
// lease) on each side; the granted TTL and the keys are compared exactly.
func (p *pair) timeToLive(desc string, id int64, keys bool) {
	p.t.Helper()
	p.trace(desc)
	var opts []clientv3.LeaseOption
	if keys {
		opts = append(opts, clientv3.WithAttachedKeys())
	}
	ks := p.kineSide()
	er, eerr := p.e.TimeToLive(p.opCtx(), clientv3.LeaseID(id), opts...)
	kr, kerr := p.k.TimeToLive(p.opCtx(), ks.lease(id), opts...)
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		return
	}
	type view struct {
		Rev, ID, GrantedTTL int64
		Live                bool
		Keys                []string
	}
	_, kn := p.norms()
	mk := func(name string, r *clientv3.LeaseTimeToLiveResponse, rev func(int64) int64, lease func(int64) int64) view {
		v := view{Rev: rev(r.ResponseHeader.Revision), ID: lease(int64(r.ID)), GrantedTTL: r.GrantedTTL, Live: r.TTL != -1}
		if r.TTL != -1 && (r.TTL <= 0 || r.TTL > r.GrantedTTL) {
			p.t.Errorf("%s: %s says TTL %d of granted %d", desc, name, r.TTL, r.GrantedTTL)
		}
		for _, k := range r.Keys {
			v.Keys = append(v.Keys, string(k))
		}
		// etcd lists a lease's keys in no particular order.
		slices.Sort(v.Keys)
		return v
	}
	ev := mk("etcd", er, func(r int64) int64 { return r }, func(l int64) int64 { return l })
	kv := mk("kinelite", kr, kn.rev, kn.lease)
	if fmt.Sprint(ev) != fmt.Sprint(kv) {
		p.t.Errorf("%s: answers differ\n  etcd:     %+v\n  kinelite: %+v", desc, ev, kv)
	}
}

// leases compares the lists of leases (as sets: neither server promises an
// order), restricted to the leases in only when it is not nil: leases
// granted with a short TTL may expire on one side first.
func (p *pair) leases(desc string, only map[int64]bool) {
	p.t.Helper()
	p.trace(desc)
	er, eerr := p.e.Leases(p.opCtx())
	kr, kerr := p.k.Leases(p.opCtx())
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		return
	}
	_, kn := p.norms()
	ids := func(ls []clientv3.LeaseStatus, lease func(int64) int64) []int64 {
		var out []int64
		for _, l := range ls {
			id := lease(int64(l.ID))
			if only == nil || only[id] {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	e, k := ids(er.Leases, func(l int64) int64 { return l }), ids(kr.Leases, kn.lease)
	if !slices.Equal(e, k) {
		p.t.Errorf("%s: leases differ\n  etcd:     %v\n  kinelite: %v", desc, e, k)
	}
	if er.ResponseHeader.Revision != kn.rev(kr.ResponseHeader.Revision) {
		p.t.Errorf("%s: header revision: etcd %d, kinelite %d (as etcd's %d)", desc, er.ResponseHeader.Revision, kr.ResponseHeader.Revision, kn.rev(kr.ResponseHeader.Revision))
	}
}

// keepAliveOnce compares one keep-alive: the ID and the TTL it renews to.
func (p *pair) keepAliveOnce(desc string, id int64) {
	p.t.Helper()
	p.trace(desc)
	ks := p.kineSide()
	er, eerr := p.e.KeepAliveOnce(p.opCtx(), clientv3.LeaseID(id))
	kr, kerr := p.k.KeepAliveOnce(p.opCtx(), ks.lease(id))
	if !p.sameErr(desc, eerr, kerr) || eerr != nil {
		return
	}
	_, kn := p.norms()
	if e, k := fmt.Sprint(int64(er.ID), er.TTL), fmt.Sprint(kn.lease(int64(kr.ID)), kr.TTL); e != k {
		p.t.Errorf("%s: answers differ (id ttl)\n  etcd:     %s\n  kinelite: %s", desc, e, k)
	}
}

// ---- watches ----

// watchRec records what one watch channel delivers.
type watchRec struct {
	name   string
	cli    *clientv3.Client
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	resps      []clientv3.WatchResponse // everything but progress notifications
	progress   int64                    // highest progress notification revision
	progresses []int64                  // every progress notification's revision
	closed     bool
	changec    chan struct{} // signalled (non-blocking) after every change
}

func (w *watchRec) run(ch clientv3.WatchChan) {
	for resp := range ch {
		w.mu.Lock()
		if resp.IsProgressNotify() {
			w.progress = max(w.progress, resp.Header.GetRevision())
			w.progresses = append(w.progresses, resp.Header.GetRevision())
		} else {
			w.resps = append(w.resps, resp)
		}
		w.mu.Unlock()
		w.signal()
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.signal()
}

func (w *watchRec) signal() {
	select {
	case w.changec <- struct{}{}:
	default:
	}
}

// await waits until cond holds, calling poke (if not nil) every so often
// while it waits. It reports false if the watch hangs for opTimeout.
func (w *watchRec) await(cond func() bool, poke func()) bool {
	deadline := time.NewTimer(opTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return true
		}
		if poke != nil {
			poke()
		}
		// etcd drops a progress request while a watcher on the stream is
		// still catching up, so a request is repeated until answered.
		retry := time.NewTimer(200 * time.Millisecond)
		select {
		case <-w.changec:
		case <-retry.C:
		case <-deadline.C:
			retry.Stop()
			return false
		}
		retry.Stop()
	}
}

// watchPair is one watch opened on both servers.
type watchPair struct {
	desc string
	e, k *watchRec
	// start is the etcd revision of the first event the watch can see.
	start int64
}

// watch opens a watch on both sides with the key and options build gives
// (WithCreatedNotify is added), waits until both are created and compares
// the created responses. Each watch gets a gRPC stream of its own, so that
// progress requests concern it alone.
func (p *pair) watch(desc string, build func(s side) (string, []clientv3.OpOption)) *watchPair {
	p.t.Helper()
	p.nwatch++
	return p.watchOn(desc, fmt.Sprint(p.nwatch), build)
}

// watchOn opens a watch as watch does, on the gRPC stream named stream
// (client/v3 shares a stream among watches whose contexts carry the same
// metadata).
func (p *pair) watchOn(desc, stream string, build func(s side) (string, []clientv3.OpOption)) *watchPair {
	p.t.Helper()
	p.trace(desc)
	key, opts := build(p.etcdSide())
	wp := &watchPair{desc: desc, start: clientv3.OpWatch(key, opts...).Rev()}
	if wp.start <= 0 {
		wp.start = p.last() + 1
	}
	for i, s := range p.sides() {
		ctx, cancel := context.WithCancel(p.ctx)
		ctx = metadata.AppendToOutgoingContext(ctx, "kinelite-test-watch", stream)
		w := &watchRec{name: s.name, cli: s.cli, ctx: ctx, cancel: cancel, changec: make(chan struct{}, 1)}
		p.root.Cleanup(cancel)
		key, opts := build(s)
		go w.run(s.cli.Watch(ctx, key, append(opts, clientv3.WithCreatedNotify())...))
		if i == 0 {
			wp.e = w
		} else {
			wp.k = w
		}
	}
	for _, w := range []*watchRec{wp.e, wp.k} {
		if !w.await(func() bool { return len(w.resps) > 0 || w.closed }, nil) {
			p.t.Fatalf("%s: %s: no created response", desc, w.name)
		}
	}
	en, kn := p.norms()
	ec, kc := wp.e.created(), wp.k.created()
	p.same(desc+" created", en.msg(ec), kn.msg(kc))
	p.watches = append(p.watches, wp)
	return wp
}

// forget drops a watch from the ones checkWatches compares, and stops it.
func (p *pair) forget(wp *watchPair) {
	p.watches = slices.DeleteFunc(p.watches, func(w *watchPair) bool { return w == wp })
	wp.e.cancel()
	wp.k.cancel()
}

// created returns the first response as a message (or an empty one if the
// channel closed first).
func (w *watchRec) created() *pb.WatchResponse {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.resps) == 0 {
		return &pb.WatchResponse{}
	}
	r := w.resps[0]
	return &pb.WatchResponse{Header: r.Header, Created: r.Created, Canceled: r.Canceled,
		CompactRevision: r.CompactRevision, CancelReason: r.CancelReason}
}

// history flattens everything after the created response into one
// message: the events in order and how the watch ended. How events are
// batched into responses is not compared: catch-up batching is the
// server's choice, and kinelite's one revision per key puts a multi-key
// write's events into separate revisions.
func (w *watchRec) history() (*pb.WatchResponse, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := &pb.WatchResponse{}
	errs := ""
	for i, r := range w.resps {
		if i == 0 && r.Created {
			continue
		}
		out.Events = append(out.Events, r.Events...)
		if r.Canceled || r.CompactRevision != 0 {
			out.Canceled = r.Canceled
			out.CompactRevision = r.CompactRevision
			errs = errString(r.Err())
		}
	}
	return out, errs
}

// sync waits until the watch has delivered everything up to the current
// revision on both sides (a progress notification at or past it), or has
// ended.
func (p *pair) syncWatch(desc string, wp *watchPair) {
	p.t.Helper()
	if wp.start > p.last() {
		// etcd sends no progress to a watch that has not reached its
		// start revision (and there is nothing it could have missed).
		return
	}
	target := map[*watchRec]int64{wp.e: p.last(), wp.k: p.kRev(p.last())}
	for _, w := range []*watchRec{wp.e, wp.k} {
		ok := w.await(func() bool {
			if w.closed || w.progress >= target[w] {
				return true
			}
			n := len(w.resps)
			return n > 0 && (w.resps[n-1].Canceled || w.resps[n-1].CompactRevision != 0)
		}, func() {
			if err := w.cli.RequestProgress(w.ctx); err != nil && w.ctx.Err() == nil {
				p.t.Logf("%s: %s: RequestProgress: %v", desc, w.name, err)
			}
		})
		if !ok {
			h, _ := w.history()
			p.t.Fatalf("%s: watch %s on %s did not catch up to revision %d (progress at %d); has %s",
				desc, wp.desc, w.name, target[w], w.progress, show(h))
		}
		w.mu.Lock()
		progress := w.progress
		w.mu.Unlock()
		if progress > target[w] {
			p.t.Errorf("%s: watch %s on %s: progress notification at revision %d, ahead of the store at %d",
				desc, wp.desc, w.name, progress, target[w])
		}
	}
}

// syncWatches brings every watch up to the current revision.
func (p *pair) syncWatches(desc string) {
	p.t.Helper()
	for _, wp := range p.watches {
		p.syncWatch(desc, wp)
	}
}

// checkWatches syncs every watch and compares what each delivered.
func (p *pair) checkWatches(desc string) {
	p.t.Helper()
	p.syncWatches(desc)
	for _, wp := range p.watches {
		p.compareWatch(desc, wp)
	}
}

func (p *pair) compareWatch(desc string, wp *watchPair) {
	p.t.Helper()
	en, kn := p.norms()
	eh, eerr := wp.e.history()
	kh, kerr := wp.k.history()
	if eerr != kerr {
		p.t.Errorf("%s: watch %s ended differently\n  etcd:     %s\n  kinelite: %s", desc, wp.desc, eerr, kerr)
	}
	p.same(desc+": watch "+wp.desc, en.msg(eh), kn.msg(kh))
}

// ---- descriptions ----

func describe(name string, args ...any) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		if s, ok := a.(string); ok {
			fmt.Fprintf(&b, "%q", s)
		} else {
			fmt.Fprint(&b, a)
		}
	}
	b.WriteByte(')')
	return b.String()
}
