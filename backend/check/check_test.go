package check_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kinelite/kinelite/backend"
	"github.com/kinelite/kinelite/backend/check"
)

// rows is a fake database: its State and rows.
type rows struct {
	state backend.State
	rows  []backend.Row
}

func (r rows) State(context.Context) (backend.State, error) { return r.state, nil }

func (r rows) Scan(_ context.Context, after int64, fn func(backend.Row) error) error {
	for _, row := range r.rows {
		if row.ID > after {
			if err := fn(row); err != nil {
				return err
			}
		}
	}
	return nil
}

func compactKey(id, rev int64) backend.Row {
	return backend.Row{ID: id, Name: "compact_rev_key", Created: true, PrevRevision: rev}
}
func create(id int64, name string) backend.Row {
	return backend.Row{ID: id, Name: name, Created: true}
}
func update(id int64, name string, prev int64) backend.Row {
	return backend.Row{ID: id, Name: name, PrevRevision: prev, CreateRevision: 2}
}
func del(id int64, name string, prev int64) backend.Row {
	return backend.Row{ID: id, Name: name, Deleted: true, PrevRevision: prev}
}

func TestInvariants(t *testing.T) {
	opened := backend.State{Opened: true}
	cases := []struct {
		name  string
		db    rows
		wants []string // substrings of the problems expected; none for a sound database
	}{
		{"sound", rows{opened, []backend.Row{compactKey(1, 0), create(2, "a"), update(3, "a", 2), del(4, "a", 3), create(5, "a")}}, nil},
		{"missing compact row", rows{opened, []backend.Row{create(2, "a")}}, []string{"compact_rev_key row is missing"}},
		{"duplicate compact row", rows{opened, []backend.Row{compactKey(1, 0), compactKey(2, 0)}}, []string{"exists 2 times"}},
		{"broken chain", rows{opened, []backend.Row{compactKey(1, 0), create(2, "a"), update(3, "a", 2), update(4, "a", 2)}},
			[]string{"names row 2 as previous, but the previous row is 3"}},
		{"update after tombstone", rows{opened, []backend.Row{compactKey(1, 0), create(2, "a"), del(3, "a", 2), update(4, "a", 3)}},
			[]string{"follows tombstone 3"}},
		{"create of a live key", rows{opened, []backend.Row{compactKey(1, 0), create(2, "a"), create(3, "a")}},
			[]string{"creates \"a\", which is live"}},
		{"row lost without compaction", rows{opened, []backend.Row{compactKey(1, 0), update(3, "a", 2)}},
			[]string{"missing though compaction only reached 0"}},
		{"compacted history is fine", rows{backend.State{Opened: true, CompactRevision: 4, CompactedThrough: 4},
			[]backend.Row{compactKey(1, 4), update(4, "a", 3), update(5, "a", 4)}}, nil},
		{"left behind by compaction", rows{backend.State{Opened: true, CompactRevision: 5, CompactedThrough: 5},
			[]backend.Row{compactKey(1, 5), create(2, "a"), update(3, "a", 2), create(4, "b"), del(5, "b", 4), update(6, "a", 3)}},
			[]string{"row 2 of \"a\" should have been removed", "row 4 of \"b\" should have been removed"}},
		{"revision below compact revision", rows{backend.State{Opened: true, CompactRevision: 9}, []backend.Row{compactKey(1, 9)}},
			[]string{"below the compact revision"}},
		{"missing lease", rows{opened, []backend.Row{compactKey(1, 0), {ID: 2, Name: "a", Created: true, Lease: 77}}},
			[]string{"names lease 77, which does not exist"}},
		{"id that is no revision", rows{opened, []backend.Row{create(0, "z"), compactKey(1, 0), create(2, "a")}},
			[]string{"row 0 of \"z\": an id outside 1..2^62"}},
		{"id too large to leave revisions", rows{opened, []backend.Row{compactKey(1, 0), create(2, "a"), create(1<<62+1, "z")}},
			[]string{"row 4611686018427387905 of \"z\": an id outside 1..2^62"}},
		{"compact revision too large", rows{backend.State{Opened: true, CompactRevision: 1<<62 + 1}, []backend.Row{compactKey(1, 1<<62+1)}},
			[]string{"compact revision 4611686018427387905 is outside", "below the compact revision"}},
		{"kine TTL lease before kinelite opened", rows{backend.State{}, []backend.Row{compactKey(1, 0), {ID: 2, Name: "a", Created: true, Lease: 60}}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := check.Run(context.Background(), c.db)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.wants) == 0 {
				if !rep.OK() {
					t.Fatalf("problems in a sound database: %v", rep.Problems)
				}
				return
			}
			if len(rep.Problems) != len(c.wants) {
				t.Fatalf("problems %q, want %d", rep.Problems, len(c.wants))
			}
			for i, w := range c.wants {
				if !strings.Contains(rep.Problems[i], w) {
					t.Fatalf("problem %q does not say %q", rep.Problems[i], w)
				}
			}
			if !strings.HasPrefix(rep.Summary(), "FAILED") {
				t.Fatalf("summary %q", rep.Summary())
			}
		})
	}
}
