package servers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which is
// 100 on every Linux architecture Go supports.
const userHZ = 100

// StartOptions tune Start.
type StartOptions struct {
	// DataDir is the server's data directory; it is created if missing.
	DataDir string
	// LogPath receives the child's standard error (appended).
	LogPath string
	// Pprof makes the child serve /debug/pprof on a loopback port.
	Pprof bool
	// ReadyTimeout bounds the wait for the child to serve. Default 2 min.
	ReadyTimeout time.Duration
	// MaxRSS, when positive, is the resident set size (bytes) above which
	// the child is killed, so that a runaway server cannot take the machine
	// down. Killed then reports why.
	MaxRSS int64
}

// Proc is a server running in a child process.
type Proc struct {
	Kind     *Kind
	DataDir  string
	Endpoint string
	// PprofAddr is the child's pprof address, when StartOptions.Pprof.
	PprofAddr string
	// Ready is the time from starting the process to its READY line.
	Ready time.Duration

	cmd      *exec.Cmd
	logPath  string
	exitedc  chan struct{}
	mu       sync.Mutex // guards exitErr, killed and peakAnon
	exitErr  error
	killed   string
	peakAnon int64
}

// Start runs kind in a new process (this binary, re-executed) and returns
// once it serves.
func Start(ctx context.Context, kind *Kind, o StartOptions) (*Proc, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	dsn, err := kind.Store.DSN(kind.Name, o.DataDir)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{childArg, kind.Name, "-data-dir", o.DataDir}
	if dsn != "" {
		args = append(args, "-dsn", dsn)
	}
	if o.Pprof {
		args = append(args, "-pprof")
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	// The child dies with us, whatever happens to us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var logf *os.File
	if o.LogPath != "" {
		logf, err = os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(logf, "==== %s %s: %s\n", time.Now().Format(time.RFC3339), kind.Name, strings.Join(args, " "))
		cmd.Stderr = logf
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if logf != nil {
		logf.Close() // the child holds its own descriptor
	}
	p := &Proc{Kind: kind, DataDir: o.DataDir, cmd: cmd, logPath: o.LogPath, exitedc: make(chan struct{})}

	readyc := make(chan ready, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, readyPrefix); ok {
				var r ready
				if json.Unmarshal([]byte(rest), &r) == nil {
					readyc <- r
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.exitedc)
	}()

	go p.watchRSS(o.MaxRSS)
	select {
	case r := <-readyc:
		p.Ready = time.Since(began)
		p.Endpoint, p.PprofAddr = r.Endpoint, r.Pprof
		return p, nil
	case <-p.exitedc:
		return nil, fmt.Errorf("%s exited before serving (%v): %s", kind.Name, p.ExitErr(), p.LogTail(2000))
	case <-time.After(o.ReadyTimeout):
		p.Kill()
		return nil, fmt.Errorf("%s not serving after %s: %s", kind.Name, o.ReadyTimeout, p.LogTail(2000))
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// watchRSS samples the child's memory every 100 ms: it keeps the peak of
// its anonymous resident memory (RssAnon: what the process itself holds, as
// opposed to file pages it maps, which the kernel can drop) and, when limit
// is positive, kills the child once its resident set passes limit.
func (p *Proc) watchRSS(limit int64) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.exitedc:
			return
		case <-t.C:
		}
		if anon, err := statusField(p.Pid(), "RssAnon:"); err == nil {
			p.mu.Lock()
			p.peakAnon = max(p.peakAnon, anon)
			p.mu.Unlock()
		}
		if limit <= 0 {
			continue
		}
		rss, err := p.RSS()
		if err != nil || rss <= limit {
			continue
		}
		p.mu.Lock()
		p.killed = fmt.Sprintf("killed by the harness: resident set %d MiB above the limit of %d MiB",
			rss>>20, limit>>20)
		p.mu.Unlock()
		_ = p.cmd.Process.Kill()
		return
	}
}

// PeakAnonRSS returns the peak anonymous resident memory (RssAnon) sampled
// every 100 ms since the start or the last ResetPeakRSS, in bytes.
func (p *Proc) PeakAnonRSS() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if anon, err := statusField(p.Pid(), "RssAnon:"); err == nil {
		p.peakAnon = max(p.peakAnon, anon)
	}
	return p.peakAnon
}

// Killed returns why the harness killed the child, or "".
func (p *Proc) Killed() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// Pid returns the child's process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the child has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exitedc }

// ExitErr returns how the child exited (nil for status 0, or while it runs).
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Alive reports whether the child is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.exitedc:
		return false
	default:
		return true
	}
}

// CPUSeconds returns the user plus system CPU time the child has used.
func (p *Proc) CPUSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("servers: unexpected /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// Fields after the name start at field 3 (state): utime is field 14,
	// stime field 15.
	if len(f) < 13 {
		return 0, errors.New("servers: short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / userHZ, nil
}

// PeakRSS returns the child's peak resident set size (VmHWM), in bytes.
func (p *Proc) PeakRSS() (int64, error) {
	return statusField(p.Pid(), "VmHWM:")
}

// RSS returns the child's current resident set size (VmRSS), in bytes.
func (p *Proc) RSS() (int64, error) {
	return statusField(p.Pid(), "VmRSS:")
}

func statusField(pid int, name string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("servers: no %s in /proc/%d/status", name, pid)
}

// ResetPeakRSS resets the child's VmHWM to its current RSS, and the sampled
// anonymous peak to the current RssAnon, so that PeakRSS and PeakAnonRSS
// then report the peaks of what follows.
func (p *Proc) ResetPeakRSS() error {
	anon, _ := statusField(p.Pid(), "RssAnon:")
	p.mu.Lock()
	p.peakAnon = anon
	p.mu.Unlock()
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.Pid()), []byte("5"), 0)
}

// Profile collects a CPU profile of the child for d into path. The child must
// have been started with StartOptions.Pprof.
func (p *Proc) Profile(ctx context.Context, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	return p.fetchPprof(ctx, fmt.Sprintf("profile?seconds=%d", secs), path)
}

// HeapProfile saves the child's heap profile into path.
func (p *Proc) HeapProfile(ctx context.Context, path string) error {
	return p.fetchPprof(ctx, "heap", path)
}

func (p *Proc) fetchPprof(ctx context.Context, what, path string) error {
	if p.PprofAddr == "" {
		return errors.New("servers: profiling not enabled")
	}
	url := fmt.Sprintf("http://%s/debug/pprof/%s", p.PprofAddr, what)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("servers: pprof %s: %s", what, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Stop asks the child to stop (SIGTERM) and waits up to timeout, then kills
// it. It returns an error when the child did not exit cleanly.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Alive() {
		if err := p.ExitErr(); err != nil {
			return fmt.Errorf("%s had exited: %w", p.Kind.Name, err)
		}
		return fmt.Errorf("%s had exited", p.Kind.Name)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exitedc:
		if err := p.ExitErr(); err != nil {
			return fmt.Errorf("%s: unclean stop: %w", p.Kind.Name, err)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s: did not stop within %s; killed", p.Kind.Name, timeout)
	}
}

// Kill kills the child and waits for it.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exitedc
}

// LogTail returns the last n bytes of the child's log.
func (p *Proc) LogTail(n int64) string {
	if p.logPath == "" {
		return "(no log)"
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
