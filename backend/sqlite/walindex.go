package sqlite

import (
	"encoding/binary"
	"os"
)

// walIndexState reads, from the WAL-index (the -shm file every connection
// to a WAL database maps), how many frames the log holds and how many of
// them a checkpoint has copied into the database file, without taking any
// lock or running a checkpoint. The layout is SQLite's WAL-index format
// (https://www.sqlite.org/walformat.html), which every SQLite version since
// 3.7.0 shares, as processes of different versions may share one database:
// two copies of a 48-byte header holding mxFrame at offset 16, then the
// checkpoint information holding nBackfill at offset 96, in native byte
// order. ok is false when the file cannot be read, has another version, or
// was caught mid-update (its two header copies differ); the caller then
// runs the checkpoint to learn the state.
func walIndexState(shmPath string) (frames, copied int64, ok bool) {
	f, err := os.Open(shmPath)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var b [walIndexStateBytes]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return 0, 0, false
	}
	le := binary.NativeEndian
	if le.Uint32(b[0:]) != walIndexVersion || le.Uint32(b[48:]) != walIndexVersion || b[12] == 0 {
		return 0, 0, false
	}
	// The header's two copies match once the writer has finished
	// updating it (it writes the second copy, then the first).
	if string(b[0:48]) != string(b[48:96]) {
		return 0, 0, false
	}
	mx, backfill := le.Uint32(b[16:]), le.Uint32(b[96:])
	if backfill > mx {
		return 0, 0, false
	}
	return int64(mx), int64(backfill), true
}

const (
	walIndexVersion    = 3007000 // iVersion of the WAL-index header
	walIndexStateBytes = 100     // both header copies and nBackfill
)
