package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// An event's code: the group of its key (resource × namespace, or the
// compaction key), with delBit set for a delete.
const (
	compactGroup uint16 = 0x7ffe
	unknownGroup uint16 = 0x7fff // a revision the complete watch never got
	delBit       uint16 = 0x8000
)

// code returns the code of an event on key.
func (ws *watchSet) code(key string, deleted bool) uint16 {
	g := unknownGroup
	if key == compactKey {
		g = compactGroup
	} else if rest, ok := strings.CutPrefix(key, "/registry/"); ok {
		res, rest, _ := strings.Cut(rest, "/")
		ns, _, _ := strings.Cut(rest, "/")
		for i, r := range resources {
			if r != res {
				continue
			}
			if n, err := strconv.Atoi(strings.TrimPrefix(ns, "ns-")); err == nil && n >= 0 && n < ws.namespaces {
				g = uint16(i*ws.namespaces + n)
			}
		}
	}
	if deleted {
		g |= delBit
	}
	return g
}

func (ws *watchSet) describe(code uint16) string {
	verb := "put"
	if code&delBit != 0 {
		verb = "delete"
	}
	switch g := code &^ delBit; g {
	case compactGroup:
		return verb + " " + compactKey
	case unknownGroup:
		return "nothing"
	default:
		return fmt.Sprintf("%s /registry/%s/ns-%02d/...", verb, resources[int(g)/ws.namespaces], int(g)%ws.namespaces)
	}
}

// watchSet is the complete watch, the prefix watches, and the reference
// history the complete watch builds.
type watchSet struct {
	s          *soak
	start      int64 // the first revision every watch asks for
	namespaces int
	finishing  atomic.Bool

	refMu      sync.Mutex
	ref        []uint16 // ref[i] is the code of revision start+i
	acks       []ackRec // acknowledged writes not yet found in ref
	compactRev int64

	complete *watcher
	watchers []*watcher
	lag      window
	wg       sync.WaitGroup
}

type ackRec struct {
	rev  int64
	code uint16
	key  string
}

func newWatchSet(s *soak, start int64) *watchSet {
	ws := &watchSet{s: s, start: start, namespaces: s.cfg.Namespaces}
	s.ws = ws
	ws.complete = &watcher{set: ws, id: 0, res: -1, ns: -1, stream: -1, cli: s.clis[0], prevKV: true}
	for i := 1; i <= s.cfg.Watches; i++ {
		w := &watcher{set: ws, id: i, stream: i % s.cfg.Streams, prevKV: i%3 == 0}
		w.cli = s.clis[w.stream%len(s.clis)]
		// A fifth watch a whole resource, the rest one namespace of one.
		if i%5 == 0 {
			w.res, w.ns = (i/5)%len(resources), -1
			w.prefix = "/registry/" + resources[w.res] + "/"
		} else {
			g := i % (len(resources) * ws.namespaces)
			w.res, w.ns = g/ws.namespaces, g%ws.namespaces
			w.prefix = fmt.Sprintf("/registry/%s/ns-%02d/", resources[w.res], w.ns)
		}
		ws.watchers = append(ws.watchers, w)
	}
	for _, w := range append(ws.watchers, ws.complete) {
		w.checked = start - 1
	}
	return ws
}

func (ws *watchSet) all() []*watcher { return append([]*watcher{ws.complete}, ws.watchers...) }

func (ws *watchSet) startAll(ctx context.Context) {
	for _, w := range ws.all() {
		ws.wg.Add(1)
		go w.run(ctx)
	}
	ws.wg.Add(1)
	go ws.progressLoop(ctx)
}

func (ws *watchSet) wait() { ws.wg.Wait() }

// streamCtx puts a watch on its gRPC stream: client/v3 shares one stream
// among the watches whose contexts carry the same metadata.
func (ws *watchSet) streamCtx(ctx context.Context, stream int) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "soak-stream", strconv.Itoa(stream))
}

// progressLoop sends RequestWatchProgress on every stream each
// ProgressEvery, as kube-apiserver's watch cache does.
func (ws *watchSet) progressLoop(ctx context.Context) {
	defer ws.wg.Done()
	t := time.NewTicker(ws.s.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ws.requestProgress(ctx)
	}
}

func (ws *watchSet) requestProgress(ctx context.Context) {
	for stream := -1; stream < ws.s.cfg.Streams; stream++ {
		cli := ws.complete.cli
		if stream >= 0 {
			cli = ws.s.clis[stream%len(ws.s.clis)]
		}
		rctx, cancel := context.WithTimeout(ws.streamCtx(ctx, stream), 5*time.Second)
		_ = cli.RequestProgress(rctx) // a stream being re-opened drops it; the next one counts
		cancel()
	}
}

// acked records an acknowledged write, to be found in the reference history.
func (ws *watchSet) acked(rev int64, key string, deleted bool) {
	ws.refMu.Lock()
	ws.acks = append(ws.acks, ackRec{rev: rev, code: ws.code(key, deleted), key: key})
	ws.refMu.Unlock()
}

func (ws *watchSet) compacted(rev int64) {
	ws.refMu.Lock()
	ws.compactRev = max(ws.compactRev, rev)
	ws.refMu.Unlock()
}

// refLast is the newest revision of the reference history.
func (ws *watchSet) refLastLocked() int64 { return ws.start + int64(len(ws.ref)) - 1 }

// watcher is one watch, resumed from where it was each time it is
// cancelled on purpose.
type watcher struct {
	set     *watchSet
	id      int
	prefix  string // "" with res -1: everything
	res, ns int    // its filter; -1 for any
	stream  int
	cli     *clientv3.Client
	prevKV  bool

	mu         sync.Mutex
	last       int64 // newest event revision received
	progress   int64 // newest progress notification revision
	checked    int64 // received events up to here are checked
	pending    []evRec
	cancelling bool
	dead       bool // cancelled by the server; not resumed
	events     int64
	progresses int64
	restarts   int64
}

type evRec struct {
	rev  int64
	code uint16
}

func (w *watcher) name() string {
	if w.res < 0 {
		return "the complete watch"
	}
	return fmt.Sprintf("watch %d on %s", w.id, w.prefix)
}

func (w *watcher) matches(code uint16) bool {
	if w.res < 0 {
		return true
	}
	g := code &^ delBit
	if g == compactGroup || g == unknownGroup {
		return false
	}
	return int(g)/w.set.namespaces == w.res && (w.ns < 0 || int(g)%w.set.namespaces == w.ns)
}

// seen is the revision up to which the watch has received everything.
func (w *watcher) seenLocked() int64 { return max(w.last, w.progress) }

func (w *watcher) life() time.Duration {
	mean := w.set.s.cfg.RewatchEvery
	if w.res < 0 || mean <= 0 {
		return 1 << 62 // the complete watch is never resumed
	}
	return mean/2 + rand.N(mean)
}

func (w *watcher) run(ctx context.Context) {
	defer w.set.wg.Done()
	for ctx.Err() == nil {
		w.mu.Lock()
		from := w.seenLocked() + 1
		if from <= 1 {
			from = w.set.start
		}
		w.cancelling = false
		w.mu.Unlock()
		wctx, cancel := context.WithCancel(w.set.streamCtx(ctx, w.stream))
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(from)}
		if w.prevKV {
			opts = append(opts, clientv3.WithPrevKV())
		}
		ch := w.cli.Watch(wctx, w.prefix, opts...)
		life := time.NewTimer(w.life())
		open := true
		for open {
			select {
			case resp, ok := <-ch:
				if !ok {
					open = false
					break
				}
				w.handle(resp)
			case <-life.C:
				if w.set.finishing.Load() {
					continue
				}
				// client-go's watch timeout: cancel, and resume from the
				// last revision seen.
				w.mu.Lock()
				w.cancelling = true
				w.restarts++
				w.mu.Unlock()
				cancel()
			}
		}
		life.Stop()
		cancel()
		w.mu.Lock()
		dead := w.dead
		w.mu.Unlock()
		if dead {
			return
		}
		if ctx.Err() == nil && !w.cancellingNow() {
			w.set.s.fail("%s: the watch channel closed unasked", w.name())
			return
		}
	}
}

func (w *watcher) cancellingNow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cancelling
}

func (w *watcher) handle(resp clientv3.WatchResponse) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if resp.Canceled || resp.Err() != nil {
		if !w.cancelling && w.set.s.proc.Alive() && !w.set.finishing.Load() {
			w.dead = true
			w.set.s.fail("%s cancelled by the server after revision %d: %v (compact revision %d)",
				w.name(), w.seenLocked(), resp.Err(), resp.CompactRevision)
		}
		return
	}
	if resp.IsProgressNotify() {
		w.progress = max(w.progress, resp.Header.Revision)
		w.progresses++
		return
	}
	for _, ev := range resp.Events {
		rev := ev.Kv.ModRevision
		code := w.set.code(string(ev.Kv.Key), ev.Type == clientv3.EventTypeDelete)
		switch {
		case rev <= w.last:
			w.set.s.fail("%s: event at revision %d after one at %d", w.name(), rev, w.last)
			continue
		case rev <= w.progress:
			w.set.s.fail("%s: event at revision %d after a progress notification at %d", w.name(), rev, w.progress)
			continue
		case !w.matches(code):
			w.set.s.fail("%s: event %q (%s) at revision %d is not under its prefix", w.name(), ev.Kv.Key, w.set.describe(code), rev)
			continue
		}
		if w.res < 0 {
			w.set.extend(rev, code)
		}
		w.last = rev
		w.events++
		w.pending = append(w.pending, evRec{rev: rev, code: code})
		if ev.Type == clientv3.EventTypePut {
			if at, ok := sentAt(ev.Kv.Value); ok {
				w.set.lag.add(float64(now.Sub(at)) / float64(time.Millisecond))
			}
		}
	}
}

// extend appends a revision the complete watch received to the reference
// history; revisions must come one after the other.
func (ws *watchSet) extend(rev int64, code uint16) {
	ws.refMu.Lock()
	defer ws.refMu.Unlock()
	next := ws.refLastLocked() + 1
	if rev != next {
		ws.s.fail("the complete watch got revision %d after %d: revisions %d..%d are missing", rev, next-1, next, rev-1)
		for ; next < rev; next++ {
			ws.ref = append(ws.ref, unknownGroup)
		}
	}
	ws.ref = append(ws.ref, code)
}

// check compares every watch, up to the revision it has seen, with the
// reference history, and finds every acknowledged write in it.
func (ws *watchSet) check() {
	ws.refMu.Lock()
	defer ws.refMu.Unlock()
	last := ws.refLastLocked()
	kept := ws.acks[:0]
	for _, a := range ws.acks {
		switch {
		case a.rev > last:
			kept = append(kept, a)
		case a.rev < ws.start || ws.ref[a.rev-ws.start] != a.code:
			got := "nothing"
			if a.rev >= ws.start {
				got = ws.describe(ws.ref[a.rev-ws.start])
			}
			ws.s.fail("the write acknowledged at revision %d (%s %s) is not what the complete watch has there: %s",
				a.rev, ws.describe(a.code), a.key, got)
		}
	}
	ws.acks = kept
	for _, w := range ws.watchers {
		ws.checkWatch(w, last)
	}
}

func (ws *watchSet) checkWatch(w *watcher, refLast int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	bound := min(w.seenLocked(), refLast)
	if bound <= w.checked {
		return
	}
	n := 0
	for n < len(w.pending) && w.pending[n].rev <= bound {
		n++
	}
	got := w.pending[:n]
	i := 0
	for rev := w.checked + 1; rev <= bound; rev++ {
		want := ws.ref[rev-ws.start]
		if !w.matches(want) {
			continue
		}
		if i < len(got) && got[i].rev == rev {
			if got[i].code != want {
				ws.s.fail("%s got %s at revision %d; the complete watch has %s", w.name(), ws.describe(got[i].code), rev, ws.describe(want))
			}
			i++
			continue
		}
		ws.s.fail("%s missed revision %d (%s): it has seen up to %d", w.name(), rev, ws.describe(want), w.seenLocked())
		break
	}
	if i < len(got) && !w.dead {
		ws.s.fail("%s got revision %d, which the complete watch does not have under its prefix", w.name(), got[i].rev)
	}
	w.pending = append(w.pending[:0], w.pending[n:]...)
	w.checked = bound
}

// finish waits until every watch has seen the last revision, then checks
// them all one last time.
func (ws *watchSet) finish(ctx context.Context) {
	ws.finishing.Store(true)
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := ws.s.clis[0].Get(rctx, "soak-end")
	cancel()
	if err != nil {
		ws.s.fail("read the last revision: %v", err)
		return
	}
	final := resp.Header.Revision
	deadline := time.Now().Add(time.Minute)
	for {
		behind := ""
		for _, w := range ws.all() {
			w.mu.Lock()
			if !w.dead && w.seenLocked() < final {
				behind = fmt.Sprintf("%s has seen up to %d", w.name(), w.seenLocked())
			}
			w.mu.Unlock()
		}
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			ws.s.fail("a minute after the load stopped at revision %d, %s", final, behind)
			break
		}
		ws.requestProgress(ctx)
		time.Sleep(200 * time.Millisecond)
	}
	ws.check()
}

func (ws *watchSet) summarize(st *Stats) {
	for _, w := range ws.all() {
		w.mu.Lock()
		st.WatchEvents += w.events
		st.ProgressNotifies += w.progresses
		st.Rewatches += w.restarts
		w.mu.Unlock()
	}
	ws.refMu.Lock()
	st.Revisions = int64(len(ws.ref))
	for _, c := range ws.ref {
		if c&delBit != 0 && int(c&^delBit)/ws.namespaces == eventsResource && c&^delBit < compactGroup {
			st.ExpiredEvents++
		}
	}
	st.CompactRevision = ws.compactRev
	ws.refMu.Unlock()
	st.Watches = len(ws.watchers) + 1
}
