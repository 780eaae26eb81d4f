package test

// The crash matrix: the real cmd/kinelite binary killed with SIGKILL at
// named points of its code (internal/failpoint, armed through
// KINELITE_FAILPOINT) and at random moments, one kill per cycle on the same
// database, each time under concurrent writers and watches. After each kill
// the database passes `kinelite check` before anything opens it, and after
// the restart every acknowledged write is there, nothing is half-applied (a
// multi-key txn, a lease expiry's deletes), what the watches saw before the
// kill is still the history, and each watch resumed from the last revision
// it saw gets every later event.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var flagMatrixRounds = flag.Int("crash.matrix.rounds", 1,
	"rounds of the crash matrix; each kills once at every point of matrixPoints")

// matrixPoints is one round of the matrix, in order: the failpoints (see
// internal/failpoint) and "random", a SIGKILL from the test after a random
// number of acknowledged writes. index-rebuild kills the restart that
// follows a random kill, in the middle of its index rebuild.
var matrixPoints = []string{
	"commit-before-commit",
	"random",
	"commit-after-commit",
	"compact-step",
	"random",
	"lease-revoke",
	"sqlite-checkpoint",
	"index-rebuild",
}

// A matrix is one run of the crash matrix.
type matrix struct {
	t                *testing.T
	r                *rand.Rand
	bin, db, logPath string
	log              *crashLog
	c                *crashCheck
	proc             *process
	peer             *process // the second process of a "+peer" cycle, while it runs
	points           []string // one round
	leases           []expLease
	// Per point: kills at that point (the process died there), and
	// failpoints that were armed but not reached (the test then killed).
	kills, missed map[string]int
}

// expLease is a short lease with keys, left to expire.
type expLease struct {
	id    clientv3.LeaseID
	keys  []string
	acked bool // its keys' put was acknowledged
}

func TestCrashMatrix(t *testing.T) {
	runMatrix(t, filepath.Join(t.TempDir(), "state.db"), matrixPoints)
}

// runMatrix runs the crash matrix on db (see dbEndpoint), points being
// one round.
func runMatrix(t *testing.T, db string, points []string) {
	seed := testSeed(t)
	t.Logf("seed %d: rerun with -diff.seed=%d (or KINELITE_TEST_SEED=%d)", seed, seed, seed)
	dir := t.TempDir()
	m := &matrix{t: t, r: rand.New(rand.NewSource(seed)), bin: buildKinelite(t),
		db: db, logPath: filepath.Join(dir, "kinelite.log"), points: points,
		log:   &crashLog{byValue: map[string]*crashAttempt{}, ackc: make(chan struct{}, 1)},
		kills: map[string]int{}, missed: map[string]int{}}
	m.c = &crashCheck{t: t, log: m.log}
	defer func() {
		if t.Failed() && m.proc != nil {
			t.Logf("kinelite's log (tail):\n%s", m.proc.logTail())
		}
		if t.Failed() && m.peer != nil {
			t.Logf("the other process's log (tail):\n%s", m.peer.logTail())
		}

	}()

	m.proc = startProcess(t, m.bin, m.db, m.logPath)
	m.createAccounts()
	cycle := 0
	for round := 0; round < *flagMatrixRounds; round++ {
		for _, point := range m.points {
			cycle++
			m.runCycle(cycle, point)
			if t.Failed() {
				t.Fatalf("stopping after cycle %d (%s)", cycle, point)
			}
		}
	}
	m.awaitExpiries()

	total, reached := 0, []string{}
	for _, p := range slices.Sorted(maps.Keys(m.kills)) {
		total += m.kills[p]
		reached = append(reached, fmt.Sprintf("%s %d", p, m.kills[p]))
	}
	t.Logf("%d kills survived, %d cycles: %s; failpoints armed but not reached (killed by the test instead): %v",
		total, cycle, strings.Join(reached, ", "), m.missed)
	t.Logf("%d requests sent, %d acknowledged, %d revisions, compacted at %d, %d watch events checked",
		len(m.log.attempts), m.log.acked.Load(), len(m.c.history)+1, m.c.compacted, m.c.liveEvents)
	for _, p := range m.points {
		if m.kills[p] == 0 {
			t.Errorf("no kill at %s", p)
		}
	}
}

func (m *matrix) createAccounts() {
	cli := dial(m.t, m.proc.endpoint)
	defer cli.Close()
	var ops []clientv3.Op
	a := &crashAttempt{kind: "accounts"}
	for i := 0; i < crashAccounts; i++ {
		a.keys = append(a.keys, accountKey(i))
		a.values = append(a.values, fmt.Sprintf("%d@init", crashBalance))
		ops = append(ops, clientv3.OpPut(a.keys[i], a.values[i]))
	}
	m.log.add(a)
	resp, err := cli.Txn(context.Background()).Then(ops...).Commit()
	if err != nil {
		m.t.Fatalf("create accounts: %v", err)
	}
	m.log.answer(a, resp.Header.Revision, true, 0)
}

// spec arms point for this cycle; "" for a random kill.
func (m *matrix) spec(point string) string {
	switch point {
	case "commit-before-commit", "commit-after-commit":
		return fmt.Sprintf("%s:%d", point, 20+m.r.Intn(300))
	case "compact-step":
		return fmt.Sprintf("%s:%d", point, 1+m.r.Intn(4))
	case "lease-revoke":
		return fmt.Sprintf("%s:%d", point, 1+m.r.Intn(3))
	case "sqlite-checkpoint":
		// A checkpoint runs once 256 pages wait (looked at every 50 ms);
		// the kill comes up to 1.5 ms into one, while it copies the WAL.
		return fmt.Sprintf("%s:%d+%dus", point, 1+m.r.Intn(20), m.r.Intn(1500))
	}
	return ""
}

// runCycle runs the writers and watches until a kill at point, then checks
// and restarts.
//
// A point with the suffix "+peer" (PostgreSQL) also runs a second process
// on the database, with writers of its own, which must keep serving through
// the kill: its writers get no error, and go on until 30 more writes are
// acknowledged; then the store is verified through it before it stops.
func (m *matrix) runCycle(cycle int, name string) {
	t := m.t
	point, withPeer := strings.CutSuffix(name, "+peer")
	spec := m.spec(point)
	if point == "index-rebuild" {
		spec = "" // the kill is the restart's; this cycle's is random
	}
	var died bool // the armed process died during its start-up, at the point
	if spec != "" {
		// Restart the verified process with the point armed.
		m.stop()
		m.proc, died = m.startArmed(spec)
	}
	t.Logf("cycle %d: %s %s", cycle, name, spec)

	var killed atomic.Bool
	var peer *process
	peerStop, peerDone := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*clientv3.Client
	var watches []*resumeWatch
	if !died {
		cli := dial(t, m.proc.endpoint)
		clients = append(clients, cli)
		m.c.grantLease(cli, cycle)
		if point == "lease-revoke" || (point == "random" && m.r.Intn(2) == 0) {
			m.grantExpiring(cli, cycle, 3)
		}
		if point == "random" && m.r.Intn(2) == 0 && m.c.verified > m.c.compacted+1 {
			m.c.compact(cli, m.c.compacted+1+m.r.Int63n(m.c.verified-m.c.compacted))
		}
		watches = m.startWatches(cli)
		writersDone := make(chan struct{})
		var wwg sync.WaitGroup
		for i := 0; i < *flagCrashWriters; i++ {
			wcli := dial(t, m.proc.endpoint)
			clients = append(clients, wcli)
			w := &crashWriter{t: t, id: cycle*100 + i, r: rand.New(rand.NewSource(m.r.Int63())), cli: wcli,
				log: m.log, killed: &killed, exited: m.proc.exited}
			wwg.Add(1)
			go func() {
				defer wwg.Done()
				w.run(ctx)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wwg.Wait()
			close(writersDone)
		}()
		if withPeer {
			peer = startProcess(t, m.bin, m.db, m.logPath+".peer")
			m.peer = peer
			var pwg sync.WaitGroup
			for i := 0; i < max(*flagCrashWriters/2, 1); i++ {
				pcli := dial(t, peer.endpoint)
				clients = append(clients, pcli)
				// Never killed, no exited channel: any error fails. They
				// stop by peerStop, not by ctx, so that no request of
				// theirs is left in flight: it could still commit after
				// the verification.
				w := &crashWriter{t: t, id: cycle*100 + 50 + i, r: rand.New(rand.NewSource(m.r.Int63())), cli: pcli,
					log: m.log, killed: new(atomic.Bool), stop: peerStop}
				pwg.Add(1)
				go func() {
					defer pwg.Done()
					w.run(context.Background())
				}()
			}
			go func() {
				pwg.Wait()
				close(peerDone)
			}()
		}
		if point == "compact-step" {
			// Compact with the writers running: its steps interleave
			// with their commits until the armed step kills.
			m.awaitAcks(20, writersDone)
			m.compactUncertain(cli, m.c.verified)
		}
		if spec == "" {
			m.awaitAcks(int64(m.r.Intn(250)), writersDone)
			killed.Store(true)
			m.proc.kill()
		} else {
			select {
			case <-m.proc.exited:
			case <-time.After(opTimeout):
				t.Logf("cycle %d: %s not reached in %v; killing", cycle, spec, opTimeout)
				killed.Store(true)
				m.proc.kill()
			}
		}
		if peer != nil {
			m.awaitPeerAcks(30, peerDone)
			close(peerStop)
			<-peerDone
		}
		cancel()
		wg.Wait()
		for _, w := range watches {
			w.stop()
		}
	}
	cancel()
	for _, c := range clients {
		c.Close()
	}
	if t.Failed() {
		return
	}
	m.countKill(name, spec, killed.Load())
	if peer != nil {
		pcli := dial(t, peer.endpoint)
		m.resolveCompaction(pcli)
		m.c.verify(pcli, fmt.Sprintf("cycle %d: through the other process, after the kill", cycle))
		pcli.Close()
		m.stopProcess(peer)
		m.peer = nil
		if t.Failed() {
			return
		}
	}

	rows := m.check(fmt.Sprintf("cycle %d: after the kill", cycle))
	if point == "index-rebuild" || (point == "random" && m.r.Intn(2) == 0) {
		m.killRebuild(rows)
		m.check(fmt.Sprintf("cycle %d: after the kill in the index rebuild", cycle))
	}

	m.proc = startProcess(t, m.bin, m.db, m.logPath)
	cli := dial(t, m.proc.endpoint)
	defer cli.Close()
	when := fmt.Sprintf("after kill %d (%s)", cycle, name)
	m.resolveCompaction(cli)
	m.c.verify(cli, when)
	// Leases reloaded at the restart may expire meanwhile: the events
	// after the verified revision, up to the marker, are read again.
	mark := m.putMarker(cli, cycle)
	after := m.c.replay(cli, m.c.verified+1, mark.Kv.ModRevision, when)
	if n := len(after); n == 0 || !sameEvent(after[n-1], mark) {
		t.Fatalf("%s: the events after the verified revision %d do not end with the marker %v: %v", when, m.c.verified, mark.Kv, after)
	}
	for _, ev := range after[:len(after)-1] {
		if ev.Type != clientv3.EventTypeDelete || !strings.HasPrefix(string(ev.Kv.Key), "exp/") {
			t.Errorf("%s: after the verification, before the marker, only expiries may happen; got %v", when, ev)
		}
	}
	for _, w := range watches {
		m.checkWatch(cli, w, when, after)
	}
	m.checkExpiring(when)
}

// countKill records how the cycle's process died.
func (m *matrix) countKill(point, spec string, killedByTest bool) {
	if spec == "" {
		m.kills[point]++ // random, or the random half of index-rebuild
		if point == "index-rebuild" {
			m.kills["random"]++
			m.kills[point]--
		}
		return
	}
	if killedByTest {
		m.missed[point]++
		m.kills["random"]++
		return
	}
	name, _, _ := strings.Cut(spec, ":")
	m.expectFailpointExit(m.proc, name)
	m.kills[point]++
}

// expectFailpointExit checks that p died of SIGKILL at the named failpoint.
func (m *matrix) expectFailpointExit(p *process, name string) {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		m.t.Errorf("kinelite exited with %v, want SIGKILL at failpoint %s", p.cmd.ProcessState, name)
	}
	if !strings.Contains(p.logTail(), "failpoint "+name+" hit") {
		m.t.Errorf("kinelite's log does not show failpoint %s", name)
	}
}

// awaitPeerAcks waits until n more writes are acknowledged, all by the
// peer's writers (the other process is dead).
func (m *matrix) awaitPeerAcks(n int64, peerDone <-chan struct{}) {
	target := m.log.acked.Load() + n
	timeout := time.After(opTimeout)
	for m.log.acked.Load() < target {
		select {
		case <-m.log.ackc:
		case <-peerDone:
			m.t.Errorf("the other process's writers stopped after the kill")
			return
		case <-timeout:
			m.t.Errorf("the other process acknowledged no more writes in %v after the kill", opTimeout)
			return
		}
	}
}

// stop stops the running process gracefully.
func (m *matrix) stop() { m.stopProcess(m.proc) }

func (m *matrix) stopProcess(p *process) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		m.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(opTimeout):
		m.t.Fatalf("kinelite did not stop on SIGTERM in %v", opTimeout)
	}
	if !p.cmd.ProcessState.Success() {
		m.t.Fatalf("kinelite stopped with %v\n%s", p.cmd.ProcessState, p.logTail())
	}
}

// startArmed starts the binary with spec armed. It reports died when the
// process reached the point during its start-up (a resumed compaction's
// step, say): a kill like any other.
func (m *matrix) startArmed(spec string) (*process, bool) {
	env := []string{"KINELITE_FAILPOINT=" + spec}
	for attempt := 1; ; attempt++ {
		p, err := tryStartProcess(m.t, m.bin, m.db, m.logPath, env)
		if err == nil {
			return p, false
		}
		select {
		case <-p.exited:
			if strings.Contains(p.logTail(), "failpoint ") {
				return p, true
			}
		default:
		}
		if attempt == 3 || !strings.Contains(p.logTail(), "address already in use") {
			m.t.Fatalf("%v\n%s", err, p.logTail())
		}
	}
}

var checkRows = regexp.MustCompile(`(\d+) rows`)

// check runs `kinelite check` on the database and returns its row count.
func (m *matrix) check(when string) int {
	out, err := exec.Command(m.bin, "check", "-v", "--endpoint", dbEndpoint(m.db)).CombinedOutput()
	if err != nil {
		m.t.Fatalf("%s: kinelite check: %v\n%s", when, err, out)
	}
	sub := checkRows.FindSubmatch(out)
	if sub == nil {
		m.t.Fatalf("%s: kinelite check says %q", when, out)
	}
	n, _ := strconv.Atoi(string(sub[1]))
	return n
}

// killRebuild starts the binary armed to die at a random row of its index
// rebuild, and checks that it did.
func (m *matrix) killRebuild(rows int) {
	spec := fmt.Sprintf("index-rebuild:%d", 1+m.r.Intn(max(rows, 1)))
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- start with KINELITE_FAILPOINT=%s\n", spec)
	cmd := exec.Command(m.bin, "--endpoint", dbEndpoint(m.db), "--listen-address", "127.0.0.1:0", "--metrics-bind-address", "0")
	cmd.Env = append(os.Environ(), "KINELITE_FAILPOINT="+spec)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(opTimeout):
		cmd.Process.Kill()
		<-done
		m.t.Fatalf("kinelite with %s still runs after %v", spec, opTimeout)
	}
	p := &process{t: m.t, cmd: cmd, logPath: m.logPath}
	m.t.Logf("  restart killed by %s", spec)
	m.expectFailpointExit(p, "index-rebuild")
	m.kills["index-rebuild"]++
}

// awaitAcks waits until n more writes are acknowledged, or the writers
// are all gone.
func (m *matrix) awaitAcks(n int64, writersDone <-chan struct{}) {
	target := m.log.acked.Load() + n
	for m.log.acked.Load() < target {
		select {
		case <-m.log.ackc:
		case <-writersDone:
			return
		case <-m.proc.exited:
			return
		}
	}
}

// compactUncertain compacts at rev, which the process's death may cut
// short: then whether it took is found out after the restart.
func (m *matrix) compactUncertain(cli *clientv3.Client, rev int64) {
	if rev <= m.c.compacted+1 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := cli.Compact(ctx, rev); err != nil {
		m.c.pendingCompact = rev
		return
	}
	m.c.compacted = rev
}

// resolveCompaction finds out whether a Compact cut short by the kill
// took: a read just below its revision then fails as compacted.
func (m *matrix) resolveCompaction(cli *clientv3.Client) {
	rev := m.c.pendingCompact
	if rev == 0 {
		return
	}
	m.c.pendingCompact = 0
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := cli.Get(ctx, "a", clientv3.WithRev(rev-1))
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		m.c.compacted = rev
	case err != nil:
		m.t.Fatalf("read at %d: %v", rev-1, err)
	}
}

// grantExpiring grants n leases of the minimum TTL, each with three keys
// written in one txn, and leaves them to expire.
func (m *matrix) grantExpiring(cli *clientv3.Client, cycle, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for i := 0; i < n; i++ {
		l, err := cli.Grant(ctx, 2)
		if err != nil {
			m.t.Fatalf("grant: %v", err)
		}
		el := expLease{id: l.ID}
		a := &crashAttempt{kind: "leased"}
		var ops []clientv3.Op
		for j := 0; j < 3; j++ {
			key := fmt.Sprintf("exp/%d/%d/%d", cycle, i, j)
			el.keys = append(el.keys, key)
			a.keys = append(a.keys, key)
			a.values = append(a.values, fmt.Sprintf("exp-%d-%d-%d", cycle, i, j))
			ops = append(ops, clientv3.OpPut(key, a.values[j], clientv3.WithLease(l.ID)))
		}
		m.log.add(a)
		resp, err := cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			m.t.Fatalf("leased put: %v", err)
		}
		m.log.answer(a, resp.Header.Revision, true, 0)
		el.acked = true
		m.leases = append(m.leases, el)
	}
}

// checkExpiring checks that each short lease's keys were deleted all at
// once, at consecutive revisions (one revoke), or not at all.
func (m *matrix) checkExpiring(when string) {
	deleted := map[string]int64{}
	for _, ev := range m.c.history {
		if ev.Type == clientv3.EventTypeDelete && strings.HasPrefix(string(ev.Kv.Key), "exp/") {
			deleted[string(ev.Kv.Key)] = ev.Kv.ModRevision
		}
	}
	for _, l := range m.leases {
		var revs []int64
		for _, k := range l.keys {
			if rev, ok := deleted[k]; ok {
				revs = append(revs, rev)
			}
		}
		slices.Sort(revs)
		switch {
		case len(revs) == 0:
		case len(revs) != len(l.keys):
			m.t.Errorf("%s: lease %x's expiry is half-applied: %d of its %d keys deleted, at %v", when, l.id, len(revs), len(l.keys), revs)
		case revs[len(revs)-1]-revs[0] != int64(len(revs)-1):
			m.t.Errorf("%s: lease %x's keys were deleted at %v, not in one revoke", when, l.id, revs)
		}
	}
}

// awaitExpiries waits until every short lease has expired with its keys.
func (m *matrix) awaitExpiries() {
	cli := dial(m.t, m.proc.endpoint)
	defer cli.Close()
	deadline := time.Now().Add(opTimeout)
	for _, l := range m.leases {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			resp, err := cli.Get(ctx, l.keys[0], clientv3.WithPrefix(), clientv3.WithCountOnly())
			ttl, terr := cli.TimeToLive(ctx, l.id)
			cancel()
			if err := errors.Join(err, terr); err != nil {
				m.t.Fatalf("lease %x: %v", l.id, err)
			}
			// etcd answers TTL -1 for a lease that does not exist.
			if resp.Count == 0 && ttl.TTL == -1 {
				break
			}
			if time.Now().After(deadline) {
				m.t.Fatalf("lease %x (TTL 2 s) still has %d keys or exists (TTL %d) after %v", l.id, resp.Count, ttl.TTL, opTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	m.c.verify(cli, "after the short leases expired")
	m.checkExpiring("after the short leases expired")
}

// ---- watches that resume ----

// resumeWatch watches a prefix from the revision after the last
// verification until the kill, asking for progress all along.
type resumeWatch struct {
	prefix string
	start  int64
	rec    *watchRec
	wg     sync.WaitGroup
}

var resumePrefixes = []string{"", "k/", "exp/"}

func (m *matrix) startWatches(cli *clientv3.Client) []*resumeWatch {
	var out []*resumeWatch
	for _, prefix := range resumePrefixes {
		ctx, cancel := context.WithCancel(context.Background())
		w := &resumeWatch{prefix: prefix, start: m.c.verified + 1,
			rec: &watchRec{name: "watch " + prefix, cli: cli, ctx: ctx, cancel: cancel, changec: make(chan struct{}, 1)}}
		go w.rec.run(cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(w.start), clientv3.WithPrevKV()))
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				cli.RequestProgress(ctx)
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		out = append(out, w)
	}
	return out
}

func (w *resumeWatch) stop() {
	w.rec.cancel()
	w.rec.await(func() bool { return w.rec.closed }, nil)
	w.wg.Wait()
}

// events returns the events of a watch, without cancellations.
func (w *watchRec) eventsLocked() []*clientv3.Event {
	var evs []*clientv3.Event
	for _, r := range w.resps {
		if !r.Canceled {
			evs = append(evs, r.Events...)
		}
	}
	return evs
}

// historyUnder is the part of the history under prefix in [from, to].
func (c *crashCheck) historyUnder(prefix string, from, to int64) []*clientv3.Event {
	var out []*clientv3.Event
	for _, ev := range c.history {
		if rev := ev.Kv.ModRevision; rev >= from && rev <= to && strings.HasPrefix(string(ev.Kv.Key), prefix) {
			out = append(out, ev)
		}
	}
	return out
}

func compareEvents(got, want []*clientv3.Event) string {
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("missing %v (and %d more)", want[i].Kv, len(want)-i-1)
		case i >= len(want):
			return fmt.Sprintf("extra %v", got[i].Kv)
		case !sameEvent(got[i], want[i]):
			return fmt.Sprintf("event %d is %v, want %v", i, got[i], want[i])
		}
	}
	return ""
}

// putMarker writes one key after the verification, so that every resumed
// watch has a revision to reach: a watch from a revision after the newest
// gets no progress notification, in etcd as in kinelite.
func (m *matrix) putMarker(cli *clientv3.Client, cycle int) *clientv3.Event {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	a := &crashAttempt{kind: "put", keys: []string{fmt.Sprintf("mark/%d", cycle)}, values: []string{fmt.Sprintf("mark-%d", cycle)}}
	m.log.add(a)
	resp, err := cli.Put(ctx, a.keys[0], a.values[0])
	if err != nil {
		m.t.Fatalf("put %s: %v", a.keys[0], err)
	}
	m.log.answer(a, resp.Header.Revision, true, 0)
	return &clientv3.Event{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte(a.keys[0]), Value: []byte(a.values[0]),
		CreateRevision: resp.Header.Revision, ModRevision: resp.Header.Revision, Version: 1}}
}

// checkWatch checks what w saw before the kill against the history, then
// resumes it from the last revision it saw (its last event or progress
// notification) and checks that it gets every later event, up to and
// including after: the events since the verification, which end with a
// marker written after the restart.
func (m *matrix) checkWatch(cli *clientv3.Client, w *resumeWatch, when string, after []*clientv3.Event) {
	c := m.c
	cur := c.verified
	w.rec.mu.Lock()
	seenEvs := w.rec.eventsLocked()
	seen := max(w.rec.progress, w.start-1)
	w.rec.mu.Unlock()
	if n := len(seenEvs); n > 0 {
		seen = max(seen, seenEvs[n-1].Kv.ModRevision)
	}
	if seen > cur {
		m.t.Errorf("%s: watch %q saw revision %d before the kill; the store has %d", when, w.prefix, seen, cur)
		return
	}
	if d := compareEvents(seenEvs, c.historyUnder(w.prefix, w.start, seen)); d != "" {
		m.t.Errorf("%s: watch %q before the kill (from %d to %d): %s", when, w.prefix, w.start, seen, d)
		return
	}
	c.liveEvents += len(seenEvs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &watchRec{name: "resumed " + w.prefix, cli: cli, ctx: ctx, cancel: cancel, changec: make(chan struct{}, 1)}
	go rec.run(cli.Watch(ctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(seen+1), clientv3.WithPrevKV()))
	markRev := after[len(after)-1].Kv.ModRevision
	if !rec.await(func() bool {
		evs := rec.eventsLocked()
		return rec.closed || rec.progress >= markRev || len(evs) > 0 && evs[len(evs)-1].Kv.ModRevision >= markRev
	}, func() { cli.RequestProgress(ctx) }) {
		m.t.Errorf("%s: watch %q resumed from %d never reached %d", when, w.prefix, seen+1, markRev)
		return
	}
	rec.mu.Lock()
	// Leases may expire after the marker too.
	got := slices.DeleteFunc(rec.eventsLocked(), func(ev *clientv3.Event) bool { return ev.Kv.ModRevision > markRev })
	canceled := len(rec.resps) > 0 && rec.resps[len(rec.resps)-1].Canceled
	rec.mu.Unlock()
	if canceled {
		m.t.Errorf("%s: watch %q resumed from %d was cancelled", when, w.prefix, seen+1)
		return
	}
	want := c.historyUnder(w.prefix, seen+1, cur)
	for _, ev := range after {
		if strings.HasPrefix(string(ev.Kv.Key), w.prefix) {
			want = append(want, ev)
		}
	}
	if d := compareEvents(got, want); d != "" {
		m.t.Errorf("%s: watch %q resumed from %d: %s", when, w.prefix, seen+1, d)
	}
	c.liveEvents += len(got)
}
