package backend

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// kine keeps two rows of its own in the table, and kinelite keeps them the
// same way so that a database moves between the two:
//
//   - compact_rev_key: a row whose prev_revision column holds the compact
//     revision. It is not a key clients see.
//   - compact_rev_key_apiserver: the row that holds the client key
//     compact_rev_key (the apiserver's compaction marker, see
//     APISERVER.md §4), with its value stored as "<version>|<value>".
//
// The client key compact_rev_key is therefore stored under another name, and
// the client key compact_rev_key_apiserver cannot be written (ErrReservedKey).
const (
	kineCompactRowName = "compact_rev_key"
	compactKey         = "compact_rev_key"
	compactKeyRowName  = "compact_rev_key_apiserver"
	gapRowNamePrefix   = "gap-"
)

// MaxRowID is the largest row id kinelite serves. Revisions are int64 and
// each write takes the next one; a table whose ids start above MaxRowID
// (kine never writes one) is refused at start-up instead of letting
// revisions wrap around, and MaxRowID leaves more revisions than any store
// will ever write.
const MaxRowID = 1 << 62

// ReservedKey is the one client key kinelite refuses to write: kine's
// stored name for the client key "compact_rev_key".
const ReservedKey = compactKeyRowName

// storedName returns the name under which a client key is stored.
func storedName(key string) string {
	if key == compactKey {
		return compactKeyRowName
	}
	return key
}

// rowKind classifies a row of kine's table.
type rowKind int

const (
	rowKey      rowKind = iota // an ordinary client key
	rowInternal                // kine's compact_rev_key row
	rowGap                     // kine's gap filler: no event, no key
)

// clientKey returns the client key a row stores, and what kind of row it is.
func clientKey(r Row) (string, rowKind) {
	switch {
	case r.Name == kineCompactRowName:
		return "", rowInternal
	case r.Name == compactKeyRowName:
		return compactKey, rowKey
	case r.Deleted && r.PrevRevision == 0 && strings.HasPrefix(r.Name, gapRowNamePrefix):
		// kine's gap rows: "gap-<id>", deleted, with no previous row. A real
		// tombstone always names the row it deletes.
		return "", rowGap
	}
	return r.Name, rowKey
}

// storedValue returns the bytes stored for a client value: the value itself,
// or, for compact_rev_key, kine's "<version>|<value>" encoding.
func storedValue(key string, version int64, value []byte) []byte {
	if key != compactKey {
		return value
	}
	return fmt.Appendf(nil, "%d|%s", version, value)
}

// clientValue undoes storedValue.
func clientValue(key string, stored []byte) []byte {
	if key != compactKey {
		return stored
	}
	_, v := decodeCompactValue(stored)
	return v
}

// decodeCompactValue splits kine's "<version>|<value>". Releases of kine
// before 1.34-era support stored only the version; their value reads as "0".
func decodeCompactValue(stored []byte) (version int64, value []byte) {
	if ver, val, ok := bytes.Cut(stored, []byte("|")); ok {
		version, _ = strconv.ParseInt(string(ver), 10, 64)
		return version, val
	}
	version, _ = strconv.ParseInt(string(stored), 10, 64)
	return version, []byte("0")
}
