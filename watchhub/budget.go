package watchhub

import (
	"context"
	"fmt"
	"sync/atomic"
)

// DefaultMaxWatches bounds the watches open at once on one budget: one
// client connection when the server tags connections with a Budget, else
// one stream. A kube-apiserver with its watch cache holds one watch per
// resource type; 10,000 leaves room for clients without a cache while
// keeping the per-revision fan-out work of a connection bounded.
const DefaultMaxWatches = 10_000

// A Budget bounds the watches that several streams hold together: the
// server gives one to each client connection (WithBudget), so that a client
// cannot escape the bound by opening more streams. It is safe for concurrent
// use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit watches (DefaultMaxWatches when limit
// is not positive).
func NewBudget(limit int) *Budget {
	if limit <= 0 {
		limit = DefaultMaxWatches
	}
	return &Budget{limit: int64(limit)}
}

// Limit returns the number of watches the budget allows.
func (b *Budget) Limit() int { return int(b.limit) }

// InUse returns the number of watches holding the budget.
func (b *Budget) InUse() int { return int(b.used.Load()) }

func (b *Budget) acquire() bool {
	if b.used.Add(1) > b.limit {
		b.used.Add(-1)
		return false
	}
	return true
}

func (b *Budget) release(n int) {
	if n > 0 {
		b.used.Add(-int64(n))
	}
}

type budgetKey struct{}

// WithBudget returns a context whose watch streams (Serve) take their
// watches from b.
func WithBudget(ctx context.Context, b *Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// BudgetFrom returns the budget WithBudget put in ctx, or nil.
func BudgetFrom(ctx context.Context) *Budget {
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}

// reasonTooManyWatches is the cancel reason of a create refused for want of
// budget; client/v3 reports it as the watch channel's error.
func reasonTooManyWatches(limit int, perConnection bool) string {
	scope := "stream"
	if perConnection {
		scope = "connection"
	}
	return fmt.Sprintf("etcdserver: too many watches on one %s (limit %d): cancel some or use another connection",
		scope, limit)
}
