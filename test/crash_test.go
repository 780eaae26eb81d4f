package test

// The crash test: the real cmd/kinelite binary on a SQLite file, several
// concurrent writers, SIGKILL while their writes are in flight, a restart
// on the same file, and a check that what was acknowledged is all there and
// nothing is half-applied. Durability is the binary's default (fsync on
// every commit).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

var (
	flagCrashCycles  = flag.Int("crash.cycles", 4, "kill -9 and restart cycles in the crash test")
	flagCrashWriters = flag.Int("crash.writers", 4, "concurrent writers in the crash test")
)

// buildKinelite builds cmd/kinelite from the main module into a temporary
// directory and returns the binary's path.
func buildKinelite(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kinelite")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/kinelite")
	cmd.Dir = filepath.Dir(wd) // the main module, test/'s parent
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kinelite: %v\n%s", err, out)
	}
	return bin
}

// process is one run of the kinelite binary.
type process struct {
	t        *testing.T
	cmd      *exec.Cmd
	exited   chan struct{}
	endpoint string
	logPath  string
}

// startProcess starts the binary on db (see dbEndpoint), with its output
// appended to logPath, and waits until it answers a read.
func startProcess(t *testing.T, bin, db, logPath string) *process {
	t.Helper()
	return startProcessEnv(t, bin, db, logPath, nil)
}

// startProcessEnv is startProcess with more environment variables.
func startProcessEnv(t *testing.T, bin, db, logPath string, env []string) *process {
	t.Helper()
	// The port is found by binding and releasing it, so another process
	// may take it first: then the binary exits at once, and we try again.
	for attempt := 1; ; attempt++ {
		p, err := tryStartProcess(t, bin, db, logPath, env)
		if err == nil {
			return p
		}
		if attempt == 3 || !strings.Contains(p.logTail(), "address already in use") {
			t.Fatalf("%v\n%s", err, p.logTail())
		}
	}
}

func tryStartProcess(t *testing.T, bin, db, logPath string, env []string) (*process, error) {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "---- start on %s\n", addr)
	// Small compaction steps, so that a kill often lands in the middle
	// of a compaction.
	cmd := exec.Command(bin, "--endpoint", dbEndpoint(db), "--listen-address", addr, "--metrics-bind-address", "0",
		"--compact-batch-size", "8")
	cmd.Stdout, cmd.Stderr = logf, logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start kinelite: %v", err)
	}
	p := &process{t: t, cmd: cmd, exited: make(chan struct{}), endpoint: addr, logPath: logPath}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(p.kill)

	cli := dial(t, addr)
	defer cli.Close()
	deadline := time.Now().Add(opTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "probe")
		cancel()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			return p, fmt.Errorf("kinelite exited during start-up (%v)", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			return p, fmt.Errorf("kinelite does not answer after %v: %v", opTimeout, err)
		}
	}
}

// dbEndpoint is the --endpoint for db: a DSN as it is (PostgreSQL), else
// the path of a SQLite file.
func dbEndpoint(db string) string {
	if strings.Contains(db, "://") {
		return db
	}
	return "sqlite://" + db
}

// kill sends SIGKILL and reaps the process.
func (p *process) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.t.Errorf("kill kinelite: %v", err)
	}
	<-p.exited
}

func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// dial returns a client the caller closes.
func dial(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: opTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// ---- what the writers did ----

// A crash attempt is one request a writer sent: its writes in op order.
// Values are unique, so an event names the attempt it came from.
type crashAttempt struct {
	kind   string // put, delete, group, cas, transfer
	keys   []string
	values []string // "" for a delete
	// Set once answered. A write is acknowledged when its request
	// returned without error; one that failed or was cut off by the kill
	// may or may not have been applied.
	acked   bool
	wrote   bool  // acknowledged and it wrote (compare held, key existed)
	rev     int64 // header revision of the answer
	deleted int64 // keys a delete removed
}

type crashLog struct {
	mu       sync.Mutex
	attempts []*crashAttempt
	byValue  map[string]*crashAttempt
	acked    atomic.Int64
	ackc     chan struct{} // signalled (non-blocking) after every answer
}

func (l *crashLog) add(a *crashAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, a)
	for _, v := range a.values {
		if v != "" {
			l.byValue[v] = a
		}
	}
}

func (l *crashLog) answer(a *crashAttempt, rev int64, wrote bool, deleted int64) {
	l.mu.Lock()
	a.acked, a.rev, a.wrote, a.deleted = true, rev, wrote, deleted
	l.mu.Unlock()
	l.acked.Add(1)
	select {
	case l.ackc <- struct{}{}:
	default:
	}
}

const (
	crashSharedKeys = 12
	crashAccounts   = 4
	crashBalance    = 100
)

func sharedKey(i int) string  { return fmt.Sprintf("k/%02d", i) }
func accountKey(i int) string { return fmt.Sprintf("bank/%d", i) }

// balance reads the amount from an account value "AMOUNT@ID".
func balance(v []byte) (int, error) {
	s, _, _ := strings.Cut(string(v), "@")
	return strconv.Atoi(s)
}

// crashWriter writes until ctx ends; it returns after its first error.
type crashWriter struct {
	t      *testing.T
	id     int
	r      *rand.Rand
	cli    *clientv3.Client
	log    *crashLog
	killed *atomic.Bool
	// exited, when set, is closed when the server process exits: a
	// writer's error then is the process's death (a failpoint).
	exited <-chan struct{}
	// stop, when closed, ends the writer after its current request, which
	// it lets finish.
	stop <-chan struct{}
	seq  int
}

func (w *crashWriter) value() string {
	w.seq++
	return fmt.Sprintf("w%d-%d", w.id, w.seq)
}

func (w *crashWriter) run(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case <-w.stop:
			return
		default:
		}
		if err := w.step(ctx); err != nil {
			if !w.killed.Load() && !w.awaitExit() {
				w.t.Errorf("writer %d: %v before any kill", w.id, err)
			}
			return
		}
	}
}

// awaitExit reports whether the server process exits soon (it was
// killed, and the writer saw that first).
func (w *crashWriter) awaitExit() bool {
	if w.exited == nil {
		return false
	}
	select {
	case <-w.exited:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

func (w *crashWriter) step(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	switch n := w.r.Intn(100); {
	case n < 45:
		a := &crashAttempt{kind: "put", keys: []string{sharedKey(w.r.Intn(crashSharedKeys))}, values: []string{w.value()}}
		w.log.add(a)
		resp, err := w.cli.Put(ctx, a.keys[0], a.values[0])
		if err != nil {
			return err
		}
		w.log.answer(a, resp.Header.Revision, true, 0)
	case n < 55:
		a := &crashAttempt{kind: "delete", keys: []string{sharedKey(w.r.Intn(crashSharedKeys))}, values: []string{""}}
		w.log.add(a)
		resp, err := w.cli.Delete(ctx, a.keys[0])
		if err != nil {
			return err
		}
		w.log.answer(a, resp.Header.Revision, resp.Deleted > 0, resp.Deleted)
	case n < 70:
		// Three new keys in one transaction: all or none.
		a := &crashAttempt{kind: "group"}
		var ops []clientv3.Op
		for i := 0; i < 3; i++ {
			v := w.value()
			a.keys = append(a.keys, fmt.Sprintf("g/%s/%d", v, i))
			a.values = append(a.values, v+fmt.Sprint("/", i))
			ops = append(ops, clientv3.OpPut(a.keys[i], a.values[i]))
		}
		w.log.add(a)
		resp, err := w.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return err
		}
		w.log.answer(a, resp.Header.Revision, true, 0)
	case n < 85:
		// Compare-and-swap on a shared key.
		key := sharedKey(w.r.Intn(crashSharedKeys))
		get, err := w.cli.Get(ctx, key)
		if err != nil {
			return err
		}
		mod := int64(0)
		if len(get.Kvs) == 1 {
			mod = get.Kvs[0].ModRevision
		}
		a := &crashAttempt{kind: "cas", keys: []string{key}, values: []string{w.value()}}
		w.log.add(a)
		resp, err := w.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
			Then(clientv3.OpPut(key, a.values[0])).Commit()
		if err != nil {
			return err
		}
		w.log.answer(a, resp.Header.Revision, resp.Succeeded, 0)
	default:
		// Move an amount between two accounts if neither changed since
		// they were read: the total never changes.
		get, err := w.cli.Get(ctx, "bank/", clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if len(get.Kvs) != crashAccounts {
			return fmt.Errorf("read %d accounts, want %d", len(get.Kvs), crashAccounts)
		}
		i, j := w.r.Intn(crashAccounts), w.r.Intn(crashAccounts-1)
		if j >= i {
			j++
		}
		from, to := get.Kvs[i], get.Kvs[j]
		fb, err1 := balance(from.Value)
		tb, err2 := balance(to.Value)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		amount := w.r.Intn(10)
		a := &crashAttempt{kind: "transfer", keys: []string{string(from.Key), string(to.Key)},
			values: []string{fmt.Sprintf("%d@%s", fb-amount, w.value()), fmt.Sprintf("%d@%s", tb+amount, w.value())}}
		w.log.add(a)
		resp, err := w.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(a.keys[0]), "=", from.ModRevision),
			clientv3.Compare(clientv3.ModRevision(a.keys[1]), "=", to.ModRevision),
		).Then(clientv3.OpPut(a.keys[0], a.values[0]), clientv3.OpPut(a.keys[1], a.values[1])).Commit()
		if err != nil {
			return err
		}
		w.log.answer(a, resp.Header.Revision, resp.Succeeded, 0)
	}
	return nil
}

// ---- the test ----

func TestCrash(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d: rerun with -diff.seed=%d (or KINELITE_TEST_SEED=%d)", seed, seed, seed)
	r := rand.New(rand.NewSource(seed))
	bin := buildKinelite(t)
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "state.db"), filepath.Join(dir, "kinelite.log")
	log := &crashLog{byValue: map[string]*crashAttempt{}, ackc: make(chan struct{}, 1)}
	c := &crashCheck{t: t, log: log}

	proc := startProcess(t, bin, db, logPath)
	{
		cli := dial(t, proc.endpoint)
		var ops []clientv3.Op
		a := &crashAttempt{kind: "accounts"}
		for i := 0; i < crashAccounts; i++ {
			a.keys = append(a.keys, accountKey(i))
			a.values = append(a.values, fmt.Sprintf("%d@init", crashBalance))
			ops = append(ops, clientv3.OpPut(a.keys[i], a.values[i]))
		}
		log.add(a)
		resp, err := cli.Txn(context.Background()).Then(ops...).Commit()
		cli.Close()
		if err != nil {
			t.Fatalf("create accounts: %v", err)
		}
		log.answer(a, resp.Header.Revision, true, 0)
	}

	for cycle := 1; cycle <= *flagCrashCycles; cycle++ {
		cli := dial(t, proc.endpoint)
		c.grantLease(cli, cycle)
		// Every other cycle compacts first, to a revision the last
		// verification saw; the compaction's steps then run alongside
		// the writers, and the kill may cut them short.
		if cycle%2 == 0 && c.verified > c.compacted+1 {
			c.compact(cli, c.compacted+1+r.Int63n(c.verified-c.compacted))
		}
		live := c.startLive(cli)

		// Run the writers until a random number of writes has been
		// acknowledged (some cycles kill before any), then kill the
		// process with their requests in flight.
		var killed atomic.Bool
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		writersDone := make(chan struct{})
		var clients []*clientv3.Client
		for i := 0; i < *flagCrashWriters; i++ {
			wcli := dial(t, proc.endpoint)
			clients = append(clients, wcli)
			w := &crashWriter{t: t, id: cycle*100 + i, r: rand.New(rand.NewSource(r.Int63())), cli: wcli, log: log, killed: &killed}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(ctx)
			}()
		}
		go func() {
			wg.Wait()
			close(writersDone)
		}()
		target := log.acked.Load() + int64(r.Intn(250))
	wait:
		for log.acked.Load() < target {
			select {
			case <-log.ackc:
			case <-writersDone: // they all failed
				break wait
			}
		}
		killed.Store(true)
		proc.kill()
		cancel()
		wg.Wait()
		live.stop()
		for _, wc := range clients {
			wc.Close()
		}
		cli.Close()
		if t.Failed() {
			t.Fatalf("cycle %d: writers failed\n%s", cycle, proc.logTail())
		}

		// The database the kill left behind is sound before anything
		// opens it again.
		if out, err := exec.Command(bin, "check", "-v", "--endpoint", "sqlite://"+db).CombinedOutput(); err != nil {
			t.Fatalf("cycle %d: kinelite check after the kill: %v\n%s", cycle, err, out)
		}

		proc = startProcess(t, bin, db, logPath)
		cli = dial(t, proc.endpoint)
		c.verify(cli, fmt.Sprintf("after kill %d", cycle))
		c.checkLive(live, fmt.Sprintf("after kill %d", cycle))
		cli.Close()
		if t.Failed() {
			t.Fatalf("stopping after cycle %d; kinelite's log:\n%s", cycle, proc.logTail())
		}
	}
	t.Logf("%d cycles, %d requests sent, %d acknowledged, %d revisions, compacted at %d, %d events seen live",
		*flagCrashCycles, len(log.attempts), log.acked.Load(), len(c.history)+1, c.compacted, c.liveEvents)
}

// crashCheck verifies the store after each restart against what the
// writers did and against what the previous verification saw.
type crashCheck struct {
	t       *testing.T
	log     *crashLog
	history []*clientv3.Event // every event from revision 2 on, as last seen
	leases  []crashLease
	// verified is the current revision the last verification saw;
	// compacted the compact revision of the last acknowledged Compact.
	verified, compacted int64
	liveEvents          int // events the live watches delivered, all checked
	// pendingCompact is a Compact the kill cut short, which may or may
	// not have taken; 0 when none.
	pendingCompact int64
}

// compact compacts at rev (at or below what the last verification saw,
// so that history holds every event below it).
func (c *crashCheck) compact(cli *clientv3.Client, rev int64) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := cli.Compact(ctx, rev); err != nil {
		c.t.Fatalf("compact at %d: %v", rev, err)
	}
	c.compacted = rev
}

// liveWatch is a watch that runs alongside the writers until the kill.
type liveWatch struct {
	rec   *watchRec
	start int64
}

func (c *crashCheck) startLive(cli *clientv3.Client) *liveWatch {
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := cli.Get(ctx, "probe")
	if err != nil {
		cancel()
		c.t.Fatalf("read the revision: %v", err)
	}
	l := &liveWatch{start: resp.Header.Revision + 1,
		rec: &watchRec{name: "live", cli: cli, ctx: ctx, cancel: cancel, changec: make(chan struct{}, 1)}}
	go l.rec.run(cli.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(l.start), clientv3.WithPrevKV()))
	return l
}

func (l *liveWatch) stop() {
	l.rec.cancel()
	l.rec.await(func() bool { return l.rec.closed }, nil)
}

// checkLive checks what a watch delivered before the kill: the events of
// consecutive revisions from its start, each exactly as the history after
// the restart has it (an event is only sent once it is durable), and no
// progress notification beyond them.
func (c *crashCheck) checkLive(l *liveWatch, when string) {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	next := l.start
	for _, r := range l.rec.resps {
		if r.Canceled {
			// The kill ends the stream; the client may report that.
			continue
		}
		for _, ev := range r.Events {
			rev := ev.Kv.ModRevision
			if rev != next {
				c.t.Errorf("%s: the live watch got revision %d after %d", when, rev, next-1)
				return
			}
			next++
			c.liveEvents++
			i := int(rev - 2)
			if i >= len(c.history) || !sameEvent(ev, c.history[i]) {
				var was *clientv3.Event
				if i < len(c.history) {
					was = c.history[i]
				}
				c.t.Errorf("%s: the live watch saw %v at revision %d before the kill; after the restart it is %v", when, ev, rev, was)
				return
			}
		}
	}
	if l.rec.progress > int64(len(c.history)+1) {
		c.t.Errorf("%s: the live watch had progress at revision %d before the kill; the store has only %d", when, l.rec.progress, len(c.history)+1)
	}
}

type crashLease struct {
	id  clientv3.LeaseID
	key string
}

// grantLease grants a lease and attaches a key to it; after every restart
// the lease must still exist with its key (README: leases survive a
// restart with their full TTL).
func (c *crashCheck) grantLease(cli *clientv3.Client, cycle int) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	l, err := cli.Grant(ctx, 3600)
	if err != nil {
		c.t.Fatalf("grant: %v", err)
	}
	key := fmt.Sprintf("lease/%d", cycle)
	a := &crashAttempt{kind: "put", keys: []string{key}, values: []string{fmt.Sprint("leased-", cycle)}}
	c.log.add(a)
	resp, err := cli.Put(ctx, key, a.values[0], clientv3.WithLease(l.ID))
	if err != nil {
		c.t.Fatalf("leased put: %v", err)
	}
	c.log.answer(a, resp.Header.Revision, true, 0)
	c.leases = append(c.leases, crashLease{id: l.ID, key: key})
}

func (c *crashCheck) verify(cli *clientv3.Client, when string) {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	state, err := cli.Get(ctx, "", clientv3.WithFromKey())
	if err != nil {
		t.Fatalf("%s: read everything: %v", when, err)
	}
	cur := state.Header.Revision

	// The acknowledged revisions are all at or below the current one.
	c.log.mu.Lock()
	attempts := slices.Clone(c.log.attempts)
	c.log.mu.Unlock()
	for _, a := range attempts {
		if a.acked && a.rev > cur {
			t.Errorf("%s: %s of %v was acknowledged at revision %d, but the store is at %d", when, a.kind, a.keys, a.rev, cur)
		}
	}

	// Replay from revision 1, or after a compaction from the revision
	// after the compact one (the events below it are all in c.history,
	// see compact); the compact revision survived the kill.
	from := int64(1)
	if c.compacted > 0 {
		from = c.compacted + 1
		if _, err := cli.Get(ctx, "a", clientv3.WithRev(c.compacted-1)); c.compacted > 1 && !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("%s: a read below the compact revision %d answers %v, want %v", when, c.compacted, err, rpctypes.ErrCompacted)
		}
	}
	history := append(slices.Clone(c.history[:max(0, from-2)]), c.replay(cli, from, cur, when)...)

	// What an earlier restart showed is still there: history only grows.
	if len(history) < len(c.history) {
		t.Errorf("%s: the history shrank from %d to %d events", when, len(c.history), len(history))
	}
	for i := 0; i < min(len(history), len(c.history)); i++ {
		if !sameEvent(history[i], c.history[i]) {
			t.Errorf("%s: event %d changed since the last restart:\n  was %v\n  now %v", when, i, c.history[i], history[i])
			break
		}
	}
	c.history = history
	c.verified = cur

	// One event per revision, 2..cur, and each key's versions chain up.
	kvs := map[string]*mvccpb.KeyValue{}
	for i, ev := range history {
		kv := ev.Kv
		if want := int64(i + 2); kv.ModRevision != want {
			t.Fatalf("%s: event %d is at revision %d, want %d (one event per revision, no gaps)", when, i, kv.ModRevision, want)
		}
		key := string(kv.Key)
		prev := kvs[key]
		if !proto.Equal(ev.PrevKv, prev) {
			t.Errorf("%s: revision %d: prev_kv %v, but the key's previous version is %v", when, kv.ModRevision, ev.PrevKv, prev)
		}
		switch ev.Type {
		case clientv3.EventTypePut:
			switch {
			case prev == nil && (kv.Version != 1 || kv.CreateRevision != kv.ModRevision):
				t.Errorf("%s: revision %d creates %q with version %d, create revision %d", when, kv.ModRevision, key, kv.Version, kv.CreateRevision)
			case prev != nil && (kv.Version != prev.Version+1 || kv.CreateRevision != prev.CreateRevision):
				t.Errorf("%s: revision %d updates %q to version %d, create revision %d; previous %v", when, kv.ModRevision, key, kv.Version, kv.CreateRevision, prev)
			}
			kvs[key] = kv
		case clientv3.EventTypeDelete:
			if prev == nil {
				t.Errorf("%s: revision %d deletes %q, which does not exist", when, kv.ModRevision, key)
			}
			delete(kvs, key)
		}
	}

	// The history leads to the state a read shows.
	if len(state.Kvs) != len(kvs) {
		read := map[string]bool{}
		for _, kv := range state.Kvs {
			read[string(kv.Key)] = true
		}
		for key, kv := range kvs {
			if !read[key] {
				t.Errorf("%s: a read at %d misses %v, which the history has", when, cur, kv)
			}
		}
		t.Errorf("%s: a read shows %d keys, the history %d", when, len(state.Kvs), len(kvs))
	}
	for _, kv := range state.Kvs {
		if want := kvs[string(kv.Key)]; !proto.Equal(kv, want) {
			t.Errorf("%s: read %v, the history says %v", when, kv, want)
		}
	}

	// Every event comes from a request a writer sent, every request's
	// writes are applied all together or not at all, at consecutive
	// revisions in op order, and an acknowledged one is applied exactly
	// at the revisions its answer gave.
	applied := map[*crashAttempt][]*clientv3.Event{}
	for _, ev := range history {
		if ev.Type == clientv3.EventTypeDelete {
			continue
		}
		a := c.log.byValue[string(ev.Kv.Value)]
		if a == nil {
			t.Errorf("%s: revision %d put %q=%q, which no writer sent", when, ev.Kv.ModRevision, ev.Kv.Key, ev.Kv.Value)
			continue
		}
		applied[a] = append(applied[a], ev)
	}
	deletesAt := map[int64]*clientv3.Event{}
	for _, ev := range history {
		if ev.Type == clientv3.EventTypeDelete {
			deletesAt[ev.Kv.ModRevision] = ev
		}
	}
	for _, a := range attempts {
		if a.kind == "delete" {
			if a.acked && a.deleted > 0 {
				ev := deletesAt[a.rev]
				if ev == nil || string(ev.Kv.Key) != a.keys[0] {
					t.Errorf("%s: the acknowledged delete of %q at revision %d is not in the history (%v)", when, a.keys[0], a.rev, ev)
				}
			}
			continue
		}
		evs := applied[a]
		switch {
		case len(evs) == 0:
			if a.acked && a.wrote {
				t.Errorf("%s: acknowledged %s of %v at revision %d is lost", when, a.kind, a.keys, a.rev)
			}
			continue
		case len(evs) != len(a.keys):
			t.Errorf("%s: %s of %v is half-applied: %d of %d writes, %v", when, a.kind, a.keys, len(evs), len(a.keys), evs)
			continue
		case a.acked && !a.wrote:
			t.Errorf("%s: %s of %v answered that it wrote nothing, but it is in the history: %v", when, a.kind, a.keys, evs)
			continue
		}
		for i, ev := range evs {
			if string(ev.Kv.Key) != a.keys[i] || string(ev.Kv.Value) != a.values[i] {
				t.Errorf("%s: %s write %d is %q=%q, want %q=%q", when, a.kind, i, ev.Kv.Key, ev.Kv.Value, a.keys[i], a.values[i])
			}
			if i > 0 && ev.Kv.ModRevision != evs[i-1].Kv.ModRevision+1 {
				t.Errorf("%s: %s of %v applied at revisions %d and %d, not one after the other", when, a.kind, a.keys, evs[i-1].Kv.ModRevision, ev.Kv.ModRevision)
			}
		}
		// One revision per key written (README): the answer's header is
		// the last one.
		if last := evs[len(evs)-1].Kv.ModRevision; a.acked && last != a.rev {
			t.Errorf("%s: %s of %v was acknowledged at revision %d, but applied at %d", when, a.kind, a.keys, a.rev, last)
		}
	}

	// The accounts still add up.
	total := 0
	for i := 0; i < crashAccounts; i++ {
		kv := kvs[accountKey(i)]
		if kv == nil {
			t.Fatalf("%s: account %d is missing", when, i)
		}
		b, err := balance(kv.Value)
		if err != nil {
			t.Fatalf("%s: account %d: %v", when, i, err)
		}
		total += b
	}
	if total != crashAccounts*crashBalance {
		t.Errorf("%s: the accounts add up to %d, want %d", when, total, crashAccounts*crashBalance)
	}

	// Leases granted before a kill are still there, with their keys.
	for _, l := range c.leases {
		ttl, err := cli.TimeToLive(ctx, l.id, clientv3.WithAttachedKeys())
		if err != nil {
			t.Errorf("%s: TimeToLive(%x): %v", when, l.id, err)
			continue
		}
		var keys []string
		for _, k := range ttl.Keys {
			keys = append(keys, string(k))
		}
		if ttl.TTL <= 0 || !slices.Equal(keys, []string{l.key}) {
			t.Errorf("%s: lease %x: TTL %d, keys %q; want it alive with key %q", when, l.id, ttl.TTL, keys, l.key)
		}
	}

	// Reads at older revisions (not compacted) show what the history
	// says.
	for _, rev := range []int64{c.compacted, 2, cur / 2, cur - 1} {
		if rev < 2 || rev < c.compacted {
			continue
		}
		resp, err := cli.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(rev))
		if err != nil {
			t.Errorf("%s: read at %d (compacted at %d, the store at %d): %v", when, rev, c.compacted, cur, err)
			continue
		}
		want := stateAt(history, rev)
		if len(resp.Kvs) != len(want) {
			t.Errorf("%s: a read at %d shows %d keys, the history %d", when, rev, len(resp.Kvs), len(want))
			continue
		}
		for _, kv := range resp.Kvs {
			if !proto.Equal(kv, want[string(kv.Key)]) {
				t.Errorf("%s: read at %d shows %v, the history %v", when, rev, kv, want[string(kv.Key)])
			}
		}
	}
}

// replay watches everything from revision from with prev_kv until the
// watch has delivered revision cur (an event or a progress notification at
// it).
func (c *crashCheck) replay(cli *clientv3.Client, from, cur int64, when string) []*clientv3.Event {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &watchRec{name: "kinelite", cli: cli, ctx: ctx, cancel: cancel, changec: make(chan struct{}, 1)}
	go w.run(cli.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(from), clientv3.WithPrevKV()))
	ok := w.await(func() bool {
		if w.closed || w.progress >= cur {
			return true
		}
		n := len(w.resps)
		if n == 0 {
			return false
		}
		last := w.resps[n-1]
		if last.Canceled {
			return true
		}
		return len(last.Events) > 0 && last.Events[len(last.Events)-1].Kv.ModRevision >= cur
	}, func() { cli.RequestProgress(ctx) })
	if !ok {
		c.t.Fatalf("%s: the watch from revision %d did not reach revision %d", when, from, cur)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var evs []*clientv3.Event
	for _, r := range w.resps {
		if r.Canceled {
			c.t.Fatalf("%s: the watch from revision %d was cancelled: %v", when, from, r.Err())
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

func sameEvent(a, b *clientv3.Event) bool {
	return a.Type == b.Type && proto.Equal(a.Kv, b.Kv) && proto.Equal(a.PrevKv, b.PrevKv)
}

// stateAt replays history up to rev.
func stateAt(history []*clientv3.Event, rev int64) map[string]*mvccpb.KeyValue {
	kvs := map[string]*mvccpb.KeyValue{}
	for _, ev := range history {
		if ev.Kv.ModRevision > rev {
			break
		}
		if ev.Type == clientv3.EventTypePut {
			kvs[string(ev.Kv.Key)] = ev.Kv
		} else {
			delete(kvs, string(ev.Kv.Key))
		}
	}
	return kvs
}
