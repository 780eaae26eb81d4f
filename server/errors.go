package server

import (
	"context"
	"errors"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kinelite/kinelite/backend"
)

// errReservedKey refuses writes to kine's stored name for compact_rev_key.
var errReservedKey = status.Error(codes.InvalidArgument,
	"etcdserver: key is reserved: "+backend.ReservedKey+" holds the client key compact_rev_key (kine compatibility)")

// toGRPC turns a backend error into etcd's gRPC error, so that clients map it
// back (client/v3 matches on the message) exactly as they do with etcd. This
// is the only place domain errors become status codes.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, backend.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, backend.ErrFutureRev):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, backend.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, backend.ErrLeaseExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, backend.ErrLeaseTTLTooLarge):
		return rpctypes.ErrGRPCLeaseTTLTooLarge
	case errors.Is(err, backend.ErrKeyNotFound):
		return rpctypes.ErrGRPCKeyNotFound
	case errors.Is(err, backend.ErrReservedKey):
		return errReservedKey
	case errors.Is(err, backend.ErrKeyUnsupported):
		return status.Error(codes.InvalidArgument, "etcdserver: "+strings.TrimPrefix(err.Error(), "backend: "))
	case errors.Is(err, backend.ErrStopped):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, backend.ErrUnavailable):
		return status.Error(codes.Unavailable, "etcdserver: "+err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, "etcdserver: "+err.Error())
}
