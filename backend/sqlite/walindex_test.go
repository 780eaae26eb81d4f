package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/sqlite"
)

// TestCheckpointWaitsForMinFrames checks that a checkpoint asked to copy
// at least minFrames pages copies nothing while fewer wait, and that the
// log state it then reads from the WAL-index is SQLite's own: the frames
// and copied frames a real checkpoint reports.
func TestCheckpointWaitsForMinFrames(t *testing.T) {
	ctx := context.Background()
	d, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := backend.New(d, backend.Config{})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	put := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := s.Put(ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "k%04d", i), Value: make([]byte, 512)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(50)

	waiting, err := d.Checkpoint(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if waiting.Checkpointed || waiting.Frames == 0 || waiting.Copied >= waiting.Frames {
		t.Fatalf("with far fewer frames waiting than asked for: %+v, want the state read, frames waiting and none copied", waiting)
	}
	again, err := d.Checkpoint(ctx, waiting.Frames-waiting.Copied+1)
	if err != nil {
		t.Fatal(err)
	}
	if again != waiting {
		t.Fatalf("one frame short of the threshold: %+v, want %+v (nothing copied)", again, waiting)
	}

	copied, err := d.Checkpoint(ctx, waiting.Frames-waiting.Copied)
	if err != nil {
		t.Fatal(err)
	}
	if !copied.Checkpointed || copied.Frames != waiting.Frames || copied.Copied != copied.Frames {
		t.Fatalf("at the threshold: %+v, want a checkpoint of all %d frames", copied, waiting.Frames)
	}
	read, err := d.Checkpoint(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if want := (backend.CheckpointResult{Frames: copied.Frames, Copied: copied.Copied}); read != want {
		t.Fatalf("state read after the checkpoint: %+v, want SQLite's %+v", read, want)
	}

	put(10)
	grown, err := d.Checkpoint(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if grown.Checkpointed || grown.Frames-grown.Copied == 0 {
		t.Fatalf("after more writes: %+v, want their frames waiting", grown)
	}
}
