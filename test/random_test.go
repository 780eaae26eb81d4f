package test

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinelite/kinelite"
)

var (
	flagSeed = flag.Int64("diff.seed", 0, "seed of the first random differential sequence (0: from $KINELITE_TEST_SEED, else from the clock)")
	flagSeqs = flag.Int("diff.seqs", 2, "random differential sequences per mode")
	flagOps  = flag.Int("diff.ops", 400, "operations per random differential sequence")
)

// testSeed is the seed the random tests use, logged so a failure can be
// rerun with -diff.seed (or KINELITE_TEST_SEED).
func testSeed(t *testing.T) int64 {
	seed := *flagSeed
	if seed == 0 {
		if env := os.Getenv("KINELITE_TEST_SEED"); env != "" {
			s, err := strconv.ParseInt(env, 10, 64)
			if err != nil {
				t.Fatalf("KINELITE_TEST_SEED=%q: %v", env, err)
			}
			seed = s
		}
	}
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	return seed
}

// TestRandom runs seeded random operation sequences on etcd and kinelite and
// compares every answer and, at checkpoints and at the end, every watch's
// events. The sequence with seed s is subtest MODE/seed=s; rerun it alone
// with -run 'TestRandom/MODE/seed=s$' -diff.seed=s -diff.seqs=1.
//
// Mode "single" writes at most one key per request, so the two servers'
// revisions must be identical. Mode "multi" adds transactions, range
// deletes and lease revokes that write several keys, which take one
// kinelite revision per key (README "Compatibility"); pair translates
// revisions, and the generator leaves out what that translation cannot
// make exact (see gen). Mode "multi-small-ring" runs kinelite with a tiny
// in-memory watch history, so watches catch up from the database.
func TestRandom(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d: rerun with -diff.seed=%d (or KINELITE_TEST_SEED=%d)", seed, seed, seed)
	modes := []struct {
		name  string
		multi bool
		opts  []func(*kinelite.Config)
	}{
		{"single", false, nil},
		{"multi", true, nil},
		// Watches from older revisions catch up from the database.
		{"multi-small-ring", true, []func(*kinelite.Config){smallWatchRing}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			for i := 0; i < *flagSeqs; i++ {
				s := seed + int64(i)
				t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
					runRandom(t, s, m.multi, *flagOps, m.opts...)
				})
			}
		})
	}
}

func runRandom(t *testing.T, seed int64, multi bool, ops int, options ...func(*kinelite.Config)) {
	p := newPair(t, options...)
	g := &gen{r: rand.New(rand.NewSource(seed)), p: p, multi: multi, nextLease: 100}
	for i := 0; i < ops; i++ {
		g.step(fmt.Sprintf("op %d", i))
		if t.Failed() {
			// Later answers would only repeat the first difference.
			t.Fatalf("stopping at op %d of the sequence with seed %d", i, seed)
		}
		if i%100 == 99 {
			p.checkWatches(fmt.Sprintf("checkpoint after op %d", i))
		}
	}
	// Every watch may have started up to one revision ahead; a last write
	// lets each of them reach its start before the final comparison.
	p.do("final write", opPut("zz-final", "done"))
	p.checkWatches("end")
}

// gen generates random requests over a small keyspace (at most 12 keys,
// so that etcd's sort, an insertion sort at that size, keeps ties in key
// order as kinelite does).
type gen struct {
	r     *rand.Rand
	p     *pair
	multi bool

	leases    []int64 // every lease ID granted, revoked ones included
	nextLease int64
	compacted int64 // etcd's compact revision
	nwatches  int

	inTxn bool // generating the ops of a transaction
}

// genKeys holds compact_rev_key, which kinelite stores under another name
// with its version in the value (kine's layout), so that every kind of
// request meets it.
var genKeys = []string{"a", "b", "c", "compact_rev_key", "d/1", "d/2", "d/3", "e", "f", "g", "h"}

func (g *gen) key() string { return genKeys[g.r.Intn(len(genKeys))] }

func (g *gen) val() string {
	if g.r.Intn(10) == 0 {
		return ""
	}
	return fmt.Sprint("v", g.r.Intn(6))
}

func (g *gen) chance(percent int) bool { return g.r.Intn(100) < percent }

// rev picks a revision for a read: mostly readable ones, sometimes one
// below the compact revision or in the future.
func (g *gen) rev() int64 {
	last := g.p.last()
	lo := max(g.compacted, 1)
	switch n := g.r.Intn(20); {
	case n == 0:
		return last + 1 + int64(g.r.Intn(3))
	case n == 1 && g.compacted > 1:
		return 1 + g.r.Int63n(g.compacted-1)
	default:
		return lo + g.r.Int63n(last-lo+1)
	}
}

// rangeOpts picks the shape of a range: a key, a prefix, an interval,
// from a key onwards, or everything. It returns the key, its options and
// whether the range may hold more than one key.
func (g *gen) rangeOpts() (string, []clientv3.OpOption, bool) {
	switch g.r.Intn(6) {
	case 0, 1:
		return g.key(), nil, false
	case 2:
		if g.chance(50) {
			return "d/", []clientv3.OpOption{clientv3.WithPrefix()}, true
		}
		return g.key()[:1], []clientv3.OpOption{clientv3.WithPrefix()}, true
	case 3:
		a, b := g.key(), g.key()
		if a > b && g.chance(80) {
			a, b = b, a
		}
		return a, []clientv3.OpOption{clientv3.WithRange(b)}, true
	case 4:
		return g.key(), []clientv3.OpOption{clientv3.WithFromKey()}, true
	default:
		return "", []clientv3.OpOption{clientv3.WithFromKey()}, true
	}
}

func (g *gen) step(name string) {
	switch n := g.r.Intn(100); {
	case n < 25:
		g.put(name)
	case n < 50:
		g.get(name)
	case n < 58:
		g.del(name)
	case n < 80:
		g.txn(name)
	case n < 92:
		g.lease(name)
	case n < 94:
		g.compact(name)
	case n < 99:
		g.watch(name)
	default:
		// kinelite rebuilds its index from the table: nothing a client
		// sees may change.
		g.p.restartKinelite(name + ": restart kinelite")
		g.nwatches = 0
	}
}

// putOp builds a put for side s; it also returns a description.
func (g *gen) putOp() (func(s side) clientv3.Op, string) {
	key, val := g.key(), g.val()
	var opts []func(s side) clientv3.OpOption
	desc := describe("put", key, val)
	if g.chance(50) {
		opts = append(opts, func(side) clientv3.OpOption { return clientv3.WithPrevKV() })
		desc += " prev_kv"
	}
	if len(g.leases) > 0 && g.chance(25) {
		id := g.leases[g.r.Intn(len(g.leases))]
		opts = append(opts, func(s side) clientv3.OpOption { return clientv3.WithLease(s.lease(id)) })
		desc += fmt.Sprintf(" lease=%d", id)
	}
	if g.chance(8) {
		if g.chance(80) {
			val = ""
		}
		opts = append(opts, func(side) clientv3.OpOption { return clientv3.WithIgnoreValue() })
		desc += " ignore_value"
	}
	if g.chance(8) {
		opts = append(opts, func(side) clientv3.OpOption { return clientv3.WithIgnoreLease() })
		desc += " ignore_lease"
	}
	return func(s side) clientv3.Op {
		var o []clientv3.OpOption
		for _, f := range opts {
			o = append(o, f(s))
		}
		return clientv3.OpPut(key, val, o...)
	}, desc
}

func (g *gen) put(name string) {
	op, desc := g.putOp()
	g.p.do(name+": "+desc, op)
}

// getOp builds a range with random options.
func (g *gen) getOp() (func(s side) clientv3.Op, string) {
	key, opts, desc, _ := g.getOpts()
	return func(s side) clientv3.Op { return clientv3.OpGet(key, opts(s)...) }, desc
}

// getOpts picks a range and its options for side s; plain reports that it
// neither sorts nor filters (what RangeStream serves).
func (g *gen) getOpts() (key string, build func(s side) []clientv3.OpOption, desc string, plain bool) {
	var base []clientv3.OpOption
	key, base, _ = g.rangeOpts()
	desc = describe("get", key)
	if len(base) > 0 {
		desc = fmt.Sprintf("get(%q, %s)", key, shapeName(base))
	}
	var opts []func(s side) clientv3.OpOption
	add := func(d string, f func(s side) clientv3.OpOption) {
		desc += " " + d
		opts = append(opts, f)
	}
	if g.chance(40) {
		n := int64(1 + g.r.Intn(4))
		add(fmt.Sprint("limit=", n), func(side) clientv3.OpOption { return clientv3.WithLimit(n) })
	}
	if g.chance(30) {
		r := g.rev()
		add(fmt.Sprint("rev=", r), func(s side) clientv3.OpOption { return clientv3.WithRev(s.rev(r)) })
	}
	if g.chance(10) {
		add("count_only", func(side) clientv3.OpOption { return clientv3.WithCountOnly() })
	}
	keysOnly := g.chance(15)
	if keysOnly {
		add("keys_only", func(side) clientv3.OpOption { return clientv3.WithKeysOnly() })
	}
	if g.chance(10) {
		add("serializable", func(side) clientv3.OpOption { return clientv3.WithSerializable() })
	}
	if g.chance(30) {
		targets := []clientv3.SortTarget{clientv3.SortByKey, clientv3.SortByVersion, clientv3.SortByValue,
			clientv3.SortByCreateRevision, clientv3.SortByModRevision}
		if g.multi {
			// Keys written by one multi-key request share a revision on
			// etcd and not on kinelite (README), so sorting by mod or
			// create revision would order their ties differently.
			targets = targets[:3]
		}
		target := targets[g.r.Intn(len(targets))]
		order := clientv3.SortOrder(g.r.Intn(3))
		add(fmt.Sprintf("sort=%v/%v", target, order), func(side) clientv3.OpOption { return clientv3.WithSort(target, order) })
	}
	if g.chance(15) {
		filters := []struct {
			name  string
			lower bool
			f     func(int64) clientv3.OpOption
		}{
			{"min_mod", true, clientv3.WithMinModRev},
			{"max_mod", false, clientv3.WithMaxModRev},
			{"min_create", true, clientv3.WithMinCreateRev},
			{"max_create", false, clientv3.WithMaxCreateRev},
		}
		for _, f := range filters {
			if !g.chance(50) {
				continue
			}
			r := g.r.Int63n(g.p.last() + 2)
			add(fmt.Sprint(f.name, "=", r), func(s side) clientv3.OpOption {
				if f.lower {
					return f.f(s.first(r))
				}
				return f.f(s.rev(r))
			})
		}
	}
	build = func(s side) []clientv3.OpOption {
		o := append([]clientv3.OpOption{}, base...)
		for _, f := range opts {
			o = append(o, f(s))
		}
		return o
	}
	return key, build, desc, !strings.Contains(desc, "sort=") && !strings.Contains(desc, "_mod") && !strings.Contains(desc, "_create")
}

func shapeName(opts []clientv3.OpOption) string {
	op := clientv3.OpGet("k", opts...)
	switch {
	case op.IsOptsWithPrefix():
		return "prefix"
	case op.IsOptsWithFromKey():
		return "from-key"
	default:
		return fmt.Sprintf("range-end=%q", op.RangeBytes())
	}
}

func (g *gen) get(name string) {
	key, opts, desc, plain := g.getOpts()
	if plain && g.chance(20) {
		g.p.stream(name+": stream "+desc, func(s side) (string, []clientv3.OpOption) { return key, opts(s) })
		return
	}
	g.p.do(name+": "+desc, func(s side) clientv3.Op { return clientv3.OpGet(key, opts(s)...) })
}

// delOp builds a delete; single keeps it to at most one key.
func (g *gen) delOp(single bool) (func(s side) clientv3.Op, string) {
	key, opts, many := g.rangeOpts()
	// No delete from a key onwards inside a transaction. etcd checks the
	// ops of a transaction against each other taking range_end "\x00"
	// literally (an empty interval), so a put of a key after such a delete
	// passes; with ignore_value that put then panics etcd 3.7.3
	// (etcdserver/txn/put.go), and without it the key is written twice in
	// one transaction, where a second write's prev_kv differs by nature:
	// etcd reads the previous version at the revision before the whole
	// transaction, kinelite (one revision per write, README) at the write
	// before. kinelite checks as etcd does, so this is left out of the
	// comparison.
	fromKey := len(opts) > 0 && clientv3.OpGet(key, opts...).IsOptsWithFromKey()
	if many && single || fromKey && g.inTxn {
		key, opts = g.key(), nil
	}
	desc := describe("delete", key)
	if len(opts) > 0 {
		desc = fmt.Sprintf("delete(%q, %s)", key, shapeName(opts))
	}
	if g.chance(50) {
		opts = append(opts, clientv3.WithPrevKV())
		desc += " prev_kv"
	}
	return opDel(key, opts...), desc
}

func (g *gen) del(name string) {
	op, desc := g.delOp(!g.multi)
	g.p.do(name+": "+desc, op)
}

// cmp builds a compare for side s.
func (g *gen) cmp() (func(s side) clientv3.Cmp, string) {
	key := g.key()
	var ranged func(clientv3.Cmp) clientv3.Cmp
	rdesc := ""
	if g.chance(20) {
		switch g.r.Intn(3) {
		case 0:
			p := key[:1]
			key, rdesc = p, " prefix"
			ranged = func(c clientv3.Cmp) clientv3.Cmp { return c.WithPrefix() }
		case 1:
			end := g.key()
			rdesc = fmt.Sprintf(" range-end=%q", end)
			ranged = func(c clientv3.Cmp) clientv3.Cmp { return c.WithRange(end) }
		default:
			rdesc = " from-key"
			ranged = func(c clientv3.Cmp) clientv3.Cmp { return c.WithRange("\x00") }
		}
	}
	ops := []string{"=", "!=", "<", ">"}
	op := ops[g.r.Intn(len(ops))]
	var build func(s side) clientv3.Cmp
	var desc string
	switch g.r.Intn(5) {
	case 0, 1: // MOD or CREATE
		mod := g.r.Intn(2) == 0
		target, f := "create", clientv3.CreateRevision
		if mod {
			target, f = "mod", clientv3.ModRevision
		}
		r := g.cmpRev(key, mod)
		// An equality is exact only on a write that took one kinelite
		// revision (see pair); make it an inequality otherwise.
		if (op == "=" || op == "!=") && r != 0 && !g.p.single(r) && r <= g.p.last() {
			op = "<"
		}
		desc = fmt.Sprintf("%s(%q)%s %s %d", target, key, rdesc, op, r)
		build = func(s side) clientv3.Cmp {
			v := s.rev(r)
			if op == "<" {
				v = s.first(r)
			}
			return clientv3.Compare(f(key), op, v)
		}
	case 2:
		v := int64(g.r.Intn(4))
		desc = fmt.Sprintf("version(%q)%s %s %d", key, rdesc, op, v)
		build = func(side) clientv3.Cmp { return clientv3.Compare(clientv3.Version(key), op, v) }
	case 3:
		v := g.val()
		desc = fmt.Sprintf("value(%q)%s %s %q", key, rdesc, op, v)
		build = func(side) clientv3.Cmp { return clientv3.Compare(clientv3.Value(key), op, v) }
	default:
		// Leases here are granted with explicit IDs, the same on both.
		v := int64(0)
		if len(g.leases) > 0 && g.chance(60) {
			v = g.leases[g.r.Intn(len(g.leases))]
		}
		desc = fmt.Sprintf("lease(%q)%s %s %d", key, rdesc, op, v)
		build = func(side) clientv3.Cmp { return clientv3.Compare(clientv3.LeaseValue(key), op, v) }
	}
	return func(s side) clientv3.Cmp {
		c := build(s)
		if ranged != nil {
			c = ranged(c)
		}
		return c
	}, desc
}

// cmpRev picks a revision to compare a key's mod or create revision with:
// often the key's own, so that equalities hold now and then.
func (g *gen) cmpRev(key string, mod bool) int64 {
	switch g.r.Intn(5) {
	case 0:
		return 0
	case 1, 2:
		resp, err := g.p.e.Get(g.p.opCtx(), key)
		if err == nil && len(resp.Kvs) == 1 {
			if mod {
				return resp.Kvs[0].ModRevision
			}
			return resp.Kvs[0].CreateRevision
		}
		return 0
	default:
		return 1 + g.r.Int63n(g.p.last()+1)
	}
}

// txnOps builds a branch of up to three ops; writes is how many write ops
// the whole transaction may still hold (-1: no bound).
func (g *gen) txnOps(depth int, writes *int) ([]func(s side) clientv3.Op, []string) {
	var ops []func(s side) clientv3.Op
	var descs []string
	nested := false
	for n := g.r.Intn(4); n > 0; n-- {
		var op func(s side) clientv3.Op
		var d string
		canWrite := *writes != 0
		switch k := g.r.Intn(10); {
		case k < 3 || !canWrite && k < 8:
			op, d = g.getOp()
		case k < 6 && canWrite:
			op, d = g.putOp()
			*writes--
		case k < 8 && canWrite:
			op, d = g.delOp(!g.multi)
			*writes--
		case depth < 2 && !nested:
			// One nested transaction per branch: etcd checks a nested
			// txn's puts only against deletes before it, so with two
			// siblings one key can be put, then deleted, in one
			// transaction (see delOp for why that is left out).
			nested = true
			op, d = g.txnOp(depth+1, writes)
		default:
			continue
		}
		ops, descs = append(ops, op), append(descs, d)
	}
	return ops, descs
}

func (g *gen) txnOp(depth int, writes *int) (func(s side) clientv3.Op, string) {
	var cmps []func(s side) clientv3.Cmp
	var cdescs []string
	for n := g.r.Intn(4); n > 0; n-- {
		c, d := g.cmp()
		cmps, cdescs = append(cmps, c), append(cdescs, d)
	}
	then, tdescs := g.txnOps(depth, writes)
	els, edescs := g.txnOps(depth, writes)
	desc := fmt.Sprintf("txn(if %v then %v else %v)", cdescs, tdescs, edescs)
	return func(s side) clientv3.Op {
		var c []clientv3.Cmp
		for _, f := range cmps {
			c = append(c, f(s))
		}
		build := func(fs []func(s side) clientv3.Op) []clientv3.Op {
			var out []clientv3.Op
			for _, f := range fs {
				out = append(out, f(s))
			}
			return out
		}
		return clientv3.OpTxn(c, build(then), build(els))
	}, desc
}

func (g *gen) txn(name string) {
	// In single mode a transaction holds one write op at most (in either
	// branch), of one key.
	writes := 1
	if g.multi {
		writes = -1
	}
	g.inTxn = true
	op, desc := g.txnOp(0, &writes)
	g.inTxn = false
	g.p.do(name+": "+desc, op)
}

func (g *gen) lease(name string) {
	p := g.p
	pick := func() int64 {
		if len(g.leases) == 0 || g.chance(5) {
			return 99 // never granted
		}
		return g.leases[g.r.Intn(len(g.leases))]
	}
	switch g.r.Intn(6) {
	case 0, 1:
		id := g.nextLease
		if len(g.leases) > 0 && g.chance(10) {
			id = g.leases[g.r.Intn(len(g.leases))] // in use, or revoked
		}
		// Long TTLs: no lease may expire during a sequence, since expiry
		// happens at a different moment on each server.
		ttl := int64(3600 + g.r.Intn(3600))
		if _, err := p.grant(name+": "+describe("grant", id, ttl), id, ttl); err == nil {
			g.leases = append(g.leases, id)
			g.nextLease++
		}
	case 2:
		id := pick()
		if !g.multi {
			// A revoke deletes every key attached: keep to one key here.
			if ttl, err := p.e.TimeToLive(p.opCtx(), clientv3.LeaseID(id), clientv3.WithAttachedKeys()); err == nil && len(ttl.Keys) > 1 {
				return
			}
		}
		p.revoke(name+": "+describe("revoke", id), id)
	case 3:
		id := pick()
		p.timeToLive(name+": "+describe("timeToLive", id), id, g.chance(70))
	case 4:
		p.leases(name+": leases", nil)
	default:
		id := pick()
		p.keepAliveOnce(name+": "+describe("keepAliveOnce", id), id)
	}
}

func (g *gen) compact(name string) {
	p := g.p
	last := p.last()
	var r int64
	switch n := g.r.Intn(10); {
	case n == 0:
		r = last + 1 + int64(g.r.Intn(2)) // future
	case n == 1:
		r = g.compacted // at or below the compact revision
	default:
		// Only where etcd's write took one kinelite revision: the
		// compact revision must mean the same state on both (see pair).
		var candidates []int64
		for c := g.compacted + 1; c <= last; c++ {
			if p.single(c) {
				candidates = append(candidates, c)
			}
		}
		if len(candidates) == 0 {
			return
		}
		r = candidates[g.r.Intn(len(candidates))]
	}
	physical := g.chance(30)
	p.compact(name+": "+describe("compact", r, physical), r, physical)
	if r > g.compacted && r <= last && !g.p.t.Failed() {
		g.compacted = r
	}
}

func (g *gen) watch(name string) {
	if g.nwatches >= 8 {
		return
	}
	g.nwatches++
	key, base, _ := g.rangeOpts()
	desc := describe("watch", key)
	if len(base) > 0 {
		desc = fmt.Sprintf("watch(%q, %s)", key, shapeName(base))
	}
	var start int64
	if !g.chance(20) {
		// From somewhere recent, sometimes below the compact revision
		// (cancelled with compact_revision), sometimes just ahead.
		lo := max(g.compacted-1, 1)
		start = lo + g.r.Int63n(g.p.last()+2-lo)
	}
	prevKV := g.chance(50)
	opts := []clientv3.OpOption{}
	desc += fmt.Sprint(" start=", start)
	if prevKV {
		opts = append(opts, clientv3.WithPrevKV())
		desc += " prev_kv"
	}
	if g.chance(10) {
		opts = append(opts, clientv3.WithFilterPut())
		desc += " no-put"
	}
	if g.chance(10) {
		opts = append(opts, clientv3.WithFilterDelete())
		desc += " no-delete"
	}
	g.p.watch(name+": "+desc, func(s side) (string, []clientv3.OpOption) {
		o := append(append(append([]clientv3.OpOption{}, base...), opts...), clientv3.WithRev(s.first(start)))
		return key, o
	})
}
