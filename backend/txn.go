package backend

import (
	"bytes"
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Txn applies a transaction as etcd does: the compares of the whole chosen
// path (nested transactions included) are evaluated first, then every op of
// that path is checked, and only then are the ops executed, in order, each
// seeing the writes of the ops before it. A transaction with no write on
// either branch is answered at the current revision without the committer.
//
// kinelite stores one row per revision, so each write of a transaction takes
// its own revision; the header revision is the last of them.
func (s *Store) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if isReadOnly(r) {
		if err := s.linearize(ctx, false); err != nil {
			return nil, err
		}
		return s.readView().txn(ctx, r, nil)
	}
	o := &txnOp{req: r, call: newCall()}
	if err := s.do(ctx, o, &o.call); err != nil {
		return nil, err
	}
	return o.resp, o.err
}

// Put applies a Put as a one-op transaction.
func (s *Store) Put(ctx context.Context, p *pb.PutRequest) (*pb.PutResponse, error) {
	resp, err := s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: p}}}})
	if err != nil {
		return nil, err
	}
	return resp.Responses[0].GetResponsePut(), nil
}

// DeleteRange applies a DeleteRange as a one-op transaction. Each deleted key
// takes its own revision; the header revision is the last.
func (s *Store) DeleteRange(ctx context.Context, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp, err := s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}}})
	if err != nil {
		return nil, err
	}
	return resp.Responses[0].GetResponseDeleteRange(), nil
}

// isReadOnly reports whether neither branch of r writes (nested
// transactions count as writes, as in etcd).
func isReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

type txnOp struct {
	call
	req  *pb.TxnRequest
	resp *pb.TxnResponse
	err  error
}

func (o *txnOp) apply(ctx context.Context, b *batch) error {
	resp, err := b.view().txn(ctx, o.req, b)
	if f, ok := errors.AsType[execError](err); ok {
		return f.err
	}
	o.resp, o.err = resp, err
	return nil
}

func (o *txnOp) done(err error) { o.call.done(err) }

// execError is a failure after a transaction's checks passed, when some of
// its writes may be staged already: it fails the whole batch.
type execError struct{ err error }

func (e execError) Error() string {
	return "backend: transaction failed after its checks: " + e.err.Error()
}
func (e execError) Unwrap() error { return e.err }

// txn evaluates r against v. b is the batch that stages writes; nil for a
// read-only transaction.
func (v *view) txn(ctx context.Context, r *pb.TxnRequest, b *batch) (*pb.TxnResponse, error) {
	path, err := v.txnPath(ctx, r)
	if err != nil {
		return nil, err
	}
	if _, err := v.checkTxn(r, path, b); err != nil {
		return nil, err
	}
	resp, _, err := v.execTxn(ctx, r, path, b)
	if err != nil {
		if b != nil {
			return nil, execError{err}
		}
		return nil, err
	}
	resp.Header.Revision = v.rev
	if b != nil {
		resp.Header.Revision = b.rev
	}
	return resp, nil
}

// txnPath evaluates the compares of r and of the nested transactions on the
// branch taken, depth first: path[0] is r's outcome, then each nested
// transaction's path in op order.
func (v *view) txnPath(ctx context.Context, r *pb.TxnRequest) ([]bool, error) {
	ok, err := v.compares(ctx, r.Compare)
	if err != nil {
		return nil, err
	}
	path := []bool{ok}
	for _, op := range branch(r, ok) {
		if t := op.GetRequestTxn(); t != nil {
			sub, err := v.txnPath(ctx, t)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func branch(r *pb.TxnRequest, succeeded bool) []*pb.RequestOp {
	if succeeded {
		return r.Success
	}
	return r.Failure
}

// compares reports whether every compare holds. A compare with a range_end
// holds when it holds for every key in the range; a key that does not exist
// compares as zero, except that a VALUE compare on it always fails.
func (v *view) compares(ctx context.Context, cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		start, end, single := keyRange(c.Key, c.RangeEnd)
		items, _ := v.resolve(start, end, single, v.rev, 0, false)
		if len(items) == 0 {
			if c.Target == pb.Compare_VALUE || !compareKV(c, &mvccpb.KeyValue{}) {
				return false, nil
			}
			continue
		}
		if c.Target == pb.Compare_VALUE {
			if err := v.fillValues(ctx, v.rev, items); err != nil {
				return false, err
			}
		}
		for _, it := range items {
			kv := newKV(it.key, it.rev, nil)
			if c.Target == pb.Compare_VALUE {
				kv.Value = clientValue(it.key, it.val)
			}
			if !compareKV(c, kv) {
				return false, nil
			}
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = compareInts(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = compareInts(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = compareInts(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = compareInts(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// checkTxn refuses, before anything is written, a transaction whose chosen
// path would fail: a Range at a future or compacted revision, a Put naming a
// missing lease, reserved key, or (with ignore_value or ignore_lease) a
// missing key. It returns how many path entries r used.
func (v *view) checkTxn(r *pb.TxnRequest, path []bool, b *batch) (int, error) {
	used := 1
	for _, op := range branch(r, path[0]) {
		switch t := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if _, err := v.checkRevision(t.RequestRange.Revision); err != nil {
				return 0, err
			}
		case *pb.RequestOp_RequestPut:
			p := t.RequestPut
			if string(p.Key) == ReservedKey {
				return 0, ErrReservedKey
			}
			if err := v.s.checkKey(string(p.Key)); err != nil {
				return 0, err
			}
			if p.Lease != 0 {
				if b == nil {
					return 0, ErrLeaseNotFound
				}
				known, err := b.leaseKnown(context.Background(), p.Lease)
				if err != nil {
					return 0, unavailable(err)
				}
				if !known {
					return 0, ErrLeaseNotFound
				}
			}
			if p.IgnoreValue || p.IgnoreLease {
				if _, ok := v.s.index.Get(string(p.Key), v.rev); !ok {
					return 0, ErrKeyNotFound
				}
			}
		case *pb.RequestOp_RequestTxn:
			n, err := v.checkTxn(t.RequestTxn, path[used:], b)
			if err != nil {
				return 0, err
			}
			used += n
		}
	}
	return used, nil
}

// execTxn runs the ops of the chosen path. It returns the response and how
// many path entries r used.
func (v *view) execTxn(ctx context.Context, r *pb.TxnRequest, path []bool, b *batch) (*pb.TxnResponse, int, error) {
	ops := branch(r, path[0])
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: path[0], Responses: make([]*pb.ResponseOp, len(ops))}
	used := 1
	for i, op := range ops {
		var out pb.ResponseOp
		switch t := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rv := v
			if b != nil {
				rv = b.view() // sees this transaction's earlier writes
			}
			rr, err := rv.rangeKVs(ctx, t.RequestRange, true)
			if err != nil {
				return nil, 0, err
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case *pb.RequestOp_RequestPut:
			pr, err := b.execPut(ctx, t.RequestPut)
			if err != nil {
				return nil, 0, err
			}
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
		case *pb.RequestOp_RequestDeleteRange:
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: b.execDelete(t.RequestDeleteRange)}
		case *pb.RequestOp_RequestTxn:
			tr, n, err := v.execTxn(ctx, t.RequestTxn, path[used:], b)
			if err != nil {
				return nil, 0, err
			}
			used += n
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}
		}
		resp.Responses[i] = &out
	}
	return resp, used, nil
}

func (b *batch) execPut(ctx context.Context, p *pb.PutRequest) (*pb.PutResponse, error) {
	key := string(p.Key)
	value, lease := p.Value, p.Lease
	if p.IgnoreValue || p.IgnoreLease {
		cur, ok := b.s.index.Get(key, b.rev)
		if !ok {
			return nil, ErrKeyNotFound
		}
		if p.IgnoreValue {
			v, err := b.view().value(ctx, key, cur)
			if err != nil {
				return nil, err
			}
			value = v
		}
		if p.IgnoreLease {
			lease = cur.Lease
		}
	}
	rev, prev := b.put(key, value, lease)
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: rev}}
	if p.PrevKv {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (b *batch) execDelete(d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	start, end, single := keyRange(d.Key, d.RangeEnd)
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	if single || end == "" || start < end {
		items, _ := b.view().resolve(start, end, single, b.rev, 0, false)
		for _, it := range items {
			_, prev := b.del(it.key, it.rev)
			if d.PrevKv {
				resp.PrevKvs = append(resp.PrevKvs, prev)
			}
		}
		resp.Deleted = int64(len(items))
	}
	resp.Header.Revision = b.rev
	return resp
}
