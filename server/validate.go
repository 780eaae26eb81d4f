package server

import (
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The checks etcd's v3rpc layer makes before a request reaches the store,
// with etcd's errors. A request that fails them changes nothing.

func (s *Server) checkSize(m proto.Message) error {
	if proto.Size(m) > s.cfg.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkRangeStream(r *pb.RangeRequest) error {
	if err := checkRange(r); err != nil {
		return err
	}
	if !(r.SortOrder == pb.RangeRequest_NONE ||
		(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)) {
		return status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Error(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDelete(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// checkTxn bounds a transaction's size (maxOps compares, and ops per branch,
// with nested transactions sharing what their parent leaves) and checks every
// op in it.
func checkTxn(r *pb.TxnRequest, maxOps int) error {
	n := max(len(r.Compare), len(r.Success), len(r.Failure))
	if n > maxOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, maxOps-n); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkOp(op *pb.RequestOp, maxOps int) error {
	switch t := op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		if t.RequestRange != nil {
			return checkRange(t.RequestRange)
		}
	case *pb.RequestOp_RequestPut:
		if t.RequestPut != nil {
			return checkPut(t.RequestPut)
		}
	case *pb.RequestOp_RequestDeleteRange:
		if t.RequestDeleteRange != nil {
			return checkDelete(t.RequestDeleteRange)
		}
	case *pb.RequestOp_RequestTxn:
		if t.RequestTxn != nil {
			return checkTxn(t.RequestTxn, maxOps)
		}
	}
	// An empty op: etcd answers with this error.
	return rpctypes.ErrGRPCKeyNotFound
}

// interval is a deleted key or key range, compared bytewise as etcd's
// interval tree compares it (a range_end of "\x00" is taken literally).
type interval struct {
	start, end string
	point      bool
}

func (iv interval) contains(key string) bool {
	if iv.point {
		return key == iv.start
	}
	return key >= iv.start && key < iv.end
}

func containsAny(ivs []interval, key string) bool {
	for _, iv := range ivs {
		if iv.contains(key) {
			return true
		}
	}
	return false
}

// checkOverlaps refuses, as etcd does, a transaction that writes one key
// twice on a path: two puts of a key, or a put of a key a delete covers.
// The two branches of a nested transaction may put the same key, since only
// one runs. It returns the keys put and the ranges deleted, for the parent.
func checkOverlaps(ops []*pb.RequestOp) (map[string]struct{}, []interval, error) {
	var dels []interval
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			if len(d.RangeEnd) == 0 {
				dels = append(dels, interval{start: string(d.Key), point: true})
			} else {
				dels = append(dels, interval{start: string(d.Key), end: string(d.RangeEnd)})
			}
		}
	}
	puts := make(map[string]struct{})
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkOverlaps(t.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkOverlaps(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if _, dup := puts[k]; dup || containsAny(dels, k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, dup := puts[k]; dup {
				if _, sameTxn := putsThen[k]; !sameTxn {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if containsAny(dels, k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, dup := puts[k]; dup || containsAny(dels, k) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
