package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// walSyncer makes commits durable apart from the transaction. The writer
// runs with synchronous=NORMAL, so a commit writes its frames to the WAL
// without syncing it; the store then calls sync once for every group of
// commits, while the next group is written. Together that is what
// synchronous=FULL does in WAL mode (a sync of the WAL after each commit),
// with the sync taken off the writer's connection.
type walSyncer struct {
	path string // the database's WAL file

	mu        sync.Mutex
	dirSynced bool
}

// sync syncs the WAL file through a descriptor of its own: fsync flushes
// the file whichever descriptor wrote it. The file is opened for each sync
// (a cost far below the sync's), so a WAL that SQLite deleted and created
// again is never missed. The first sync also syncs the directory, as
// SQLite does after creating a WAL, so the file's entry is durable.
func (w *walSyncer) sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sqlite: sync: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", w.path, err)
	}
	if !w.dirSynced {
		if err := syncDir(filepath.Dir(w.path)); err != nil {
			return err
		}
		w.dirSynced = true
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", dir, err)
	}
	return nil
}
