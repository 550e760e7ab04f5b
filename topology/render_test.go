package topology

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden drawings in testdata")

// TestDrawingsGolden compares the drawings of the examples with the files
// in testdata/golden; run with -update after a deliberate change and review
// the diff.
func TestDrawingsGolden(t *testing.T) {
	for _, example := range []string{"word-counts", "vhosts", "mpath", "nested"} {
		set := loadTestdata(t, example+".yaml")
		w := set.Workflows[set.Order[0]]
		for _, format := range []struct {
			ext   string
			write func(*bytes.Buffer) error
		}{
			{"dot", func(b *bytes.Buffer) error { return WriteDot(b, w) }},
			{"mmd", func(b *bytes.Buffer) error { return WriteMermaid(b, w) }},
		} {
			var got bytes.Buffer
			if err := format.write(&got); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", example+"."+format.ext)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDrawingsGolden -update)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from the drawing:\n%s", path, got.String())
			}
		}
	}
}

// TestDrawingShape checks the drawing's structure independently of the
// golden files: one node per step, fan-out and join per fan-out step, one
// edge per dependency and per terminal step, clusters nested like tasks.
func TestDrawingShape(t *testing.T) {
	set := loadTestdata(t, "nested.yaml")
	d := newDrawing([]*Workflow{set.Lookup("idp")})
	// top: 3 queue steps + documents fan-out (2 nodes) + start/end;
	// document: 2 queue steps + pages fan-out (2 nodes); page: 2 steps.
	count := 0
	var walk func(c *cluster, depth int) int
	walk = func(c *cluster, depth int) int {
		count += len(c.nodes)
		deepest := depth
		for _, s := range c.subs {
			deepest = max(deepest, walk(s, depth+1))
		}
		return deepest
	}
	if depth := walk(d.root, 0); depth != 2 {
		t.Errorf("clusters nest %d deep, want 2 (documents > pages)", depth)
	}
	if count != 5+2+4+2 {
		t.Errorf("%d nodes, want 13", count)
	}
	// Dependencies (top 4, document 4, page 2) plus terminal edges (1 per graph).
	if len(d.edges) != 10+3 {
		t.Errorf("%d edges, want 13", len(d.edges))
	}

	var dot bytes.Buffer
	if err := WriteDot(&dot, set.Workflows["idp"], loadTestdata(t, "mpath.yaml").Lookup("example")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`digraph "stepwise" {`, `label="idp";`, `label="example";`, `label="documents (task document)";`} {
		if !strings.Contains(dot.String(), want) {
			t.Errorf("two-workflow drawing lacks %s:\n%s", want, dot.String())
		}
	}
}
