package report

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryGB string `json:"memory"`
	Kernel   string `json:"kernel"`
	Disk     string `json:"disk"`
	// Fsync is the measured latency of a 4 KiB write plus fdatasync in the
	// work directory, p50 and p99.
	Fsync     string            `json:"fsync"`
	Go        string            `json:"go"`
	Kinelite  string            `json:"kinelite"`
	Modules   map[string]string `json:"modules"`
	LoadGen   string            `json:"load_generator"`
	Cgo       bool              `json:"cgo"`
	Hostname  string            `json:"hostname,omitempty"`
	LoadAvg   string            `json:"load_average_at_start"`
	Timestamp time.Time         `json:"timestamp"`
}

// Describe gathers the machine description. workDir is where the servers'
// data lives; loadGen describes the load generator's settings.
func Describe(workDir, loadGen string) Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		Go:        runtime.Version(),
		LoadGen:   loadGen,
		Modules:   map[string]string{},
		Timestamp: time.Now().UTC(),
	}
	m.CPU = cpuModel()
	m.MemoryGB = memTotal()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	m.Disk = disk(workDir)
	m.Fsync = fsyncProbe(workDir)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/client/v3", "github.com/k3s-io/kine",
				"modernc.org/sqlite", "github.com/mattn/go-sqlite3", "google.golang.org/grpc", "go.etcd.io/bbolt":
				m.Modules[d.Path] = d.Version
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" {
				m.Cgo = s.Value == "1"
			}
		}
	}
	m.Kinelite = kineliteRevision()
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(rest), &kb)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "unknown"
}

// disk describes the file system that holds dir: device, type, and whether
// the kernel thinks the device rotates.
func disk(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	best, desc := "", "unknown"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		mnt := f[4]
		if !strings.HasPrefix(abs, mnt) || len(mnt) < len(best) {
			continue
		}
		i := slices.Index(f, "-")
		if i < 0 || i+2 >= len(f) {
			continue
		}
		best = mnt
		fstype, dev := f[i+1], f[i+2]
		desc = fmt.Sprintf("%s (%s) mounted on %s", dev, fstype, mnt)
		base := filepath.Base(dev)
		for _, cand := range []string{base, strings.TrimRight(base, "0123456789")} {
			if r, err := os.ReadFile("/sys/block/" + cand + "/queue/rotational"); err == nil {
				kind := "SSD/virtual (non-rotational)"
				if strings.TrimSpace(string(r)) == "1" {
					kind = "rotational"
				}
				desc += ", " + kind
				break
			}
		}
	}
	return desc
}

// fsyncProbe measures 4 KiB write + fdatasync latency in dir.
func fsyncProbe(dir string) string {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "unknown"
	}
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return "unknown"
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var d []time.Duration
	for i := range 200 {
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return "unknown"
		}
		if err := fdatasync(f); err != nil {
			return "unknown"
		}
		d = append(d, time.Since(t))
	}
	slices.Sort(d)
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms (4 KiB write + fdatasync, 200 samples)",
		float64(d[len(d)/2])/1e6, float64(d[len(d)*99/100])/1e6)
}

// kineliteRevision is the git revision of the kinelite checkout the bench
// runs in, with "+dirty" when the product (everything outside bench/ and test/) has
// uncommitted changes.
func kineliteRevision() string {
	root := repoRoot()
	if root == "" {
		return "unknown"
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench", ":!test").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "+dirty"
	}
	return rev
}

// repoRoot walks up from the working directory to the directory holding
// .git; "" when there is none.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
