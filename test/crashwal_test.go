package test

// Kills while SQLite moves its write-ahead log: the WAL grows past the
// length at which kinelite starts it over (64 MiB) under writers of large
// values, and the process is killed when the RESTART checkpoint starts, then
// a few milliseconds into a passive checkpoint of a long WAL. The values are
// large, so this test keeps its own database and its own, simpler checks:
// each key holds the last acknowledged write to it or the one in flight at
// the kill, intact.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var flagCrashWAL = flag.Bool("crash.wal", true, "run TestCrashWAL (writes about 150 MiB)")

const (
	walWriters   = 4
	walKeys      = 4 // per writer
	walValueSize = 256 << 10
	walTarget    = 70 << 20 // past 16384 pages of 4 KiB
)

// walValue is the value of write seq to key: a header naming both, then
// filler that depends on seq.
func walValue(key string, seq int) []byte {
	head := fmt.Sprintf("%s/%d/", key, seq)
	return append([]byte(head), bytes.Repeat([]byte{byte('a' + seq%26)}, walValueSize-len(head))...)
}

func TestCrashWAL(t *testing.T) {
	if !*flagCrashWAL || testing.Short() {
		t.Skip("-crash.wal=false or -short")
	}
	seed := testSeed(t)
	r := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	bin := buildKinelite(t)
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "state.db"), filepath.Join(dir, "kinelite.log")
	var mu sync.Mutex
	attempted, acked := map[string]int{}, map[string]int{}

	for i, spec := range []string{
		"sqlite-restart-log:1",
		// A checkpoint copies what waits once 1 MiB does, at most every
		// 50 ms: fast writers pass walTarget after 20 or so.
		fmt.Sprintf("sqlite-checkpoint:%d+%dus", 2+r.Intn(10), r.Intn(20000)),
	} {
		cycle := i + 1
		proc := startProcessEnv(t, bin, db, logPath, []string{"KINELITE_FAILPOINT=" + spec})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < walWriters; w++ {
			cli := dial(t, proc.endpoint)
			defer cli.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 1; ctx.Err() == nil; seq++ {
					key := fmt.Sprintf("blob/%d/%d", w, seq%walKeys)
					mu.Lock()
					seq = max(seq, attempted[key]+1)
					attempted[key] = seq
					mu.Unlock()
					if _, err := cli.Put(ctx, key, string(walValue(key, seq))); err != nil {
						return // the kill, or the end of the writing
					}
					mu.Lock()
					acked[key] = seq
					mu.Unlock()
				}
			}()
		}
		// Write until the WAL is past the restart length (the restart
		// comes once a checkpoint has copied all of it, which needs a
		// pause in the writes), or until the armed checkpoint kills.
		deadline := time.Now().Add(opTimeout)
		var walSize int64
	write:
		for time.Now().Before(deadline) {
			select {
			case <-proc.exited:
				break write
			case <-time.After(20 * time.Millisecond):
			}
			if fi, err := os.Stat(db + "-wal"); err == nil {
				walSize = fi.Size()
				if walSize > walTarget {
					break
				}
			}
		}
		cancel()
		wg.Wait()
		select {
		case <-proc.exited:
		case <-time.After(opTimeout):
			t.Fatalf("cycle %d: %s not reached with a WAL of %d MiB", cycle, spec, walSize>>20)
		}
		name, _, _ := strings.Cut(spec, ":")
		if !strings.Contains(proc.logTail(), "failpoint "+name+" hit") {
			t.Fatalf("cycle %d: kinelite exited (%v) without reaching %s:\n%s", cycle, proc.cmd.ProcessState, spec, proc.logTail())
		}
		fi, _ := os.Stat(db + "-wal")
		t.Logf("cycle %d: killed at %s; WAL %d MiB at the kill", cycle, spec, fi.Size()>>20)
		m := &matrix{t: t, bin: bin, db: db}
		m.check(fmt.Sprintf("cycle %d", cycle))

		proc = startProcess(t, bin, db, logPath)
		cli := dial(t, proc.endpoint)
		resp, err := cli.Get(context.Background(), "blob/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]byte{}
		for _, kv := range resp.Kvs {
			got[string(kv.Key)] = kv.Value
		}
		mu.Lock()
		for key, want := range attempted {
			v, ok := got[key]
			if !ok {
				if acked[key] > 0 {
					t.Errorf("cycle %d: %s is missing; write %d was acknowledged", cycle, key, acked[key])
				}
				continue
			}
			head, _, _ := strings.Cut(strings.TrimPrefix(string(v[:min(len(v), 64)]), key+"/"), "/")
			seq, err := strconv.Atoi(head)
			if err != nil || !bytes.Equal(v, walValue(key, seq)) {
				t.Errorf("cycle %d: %s holds a damaged value (%d bytes, %q...)", cycle, key, len(v), v[:min(len(v), 40)])
				continue
			}
			if seq < acked[key] || seq > want {
				t.Errorf("cycle %d: %s holds write %d; acknowledged %d, last sent %d", cycle, key, seq, acked[key], want)
			}
		}
		mu.Unlock()
		cli.Close()
		proc.kill()
	}
}
