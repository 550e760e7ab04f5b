package topology

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadTestdata(t *testing.T, name string) *Set {
	t.Helper()
	set, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	if err := set.Validate(); err != nil {
		t.Fatalf("compiled set breaks invariants: %v", err)
	}
	return set
}

func names(steps []*Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

// stepWant is the compiled shape of one step that the example tests check.
type stepWant struct {
	name       string
	depends    []string
	successors []string
	queue      string
	task       string
}

func assertGraph(t *testing.T, where string, g *Graph, want []stepWant, terminal []string) {
	t.Helper()
	if len(g.Steps) != len(want) {
		t.Fatalf("%s: %d steps %v, want %d", where, len(g.Steps), names(g.Steps), len(want))
	}
	for i, w := range want {
		st := g.Steps[i]
		if st.Name != w.name {
			t.Errorf("%s: step %d is %q, want %q", where, i, st.Name, w.name)
		}
		if g.ByName[w.name] != st {
			t.Errorf("%s: ByName[%q] is not step %d", where, w.name, i)
		}
		if !slices.Equal(st.Depends, w.depends) {
			t.Errorf("%s: %s.Depends = %v, want %v", where, w.name, st.Depends, w.depends)
		}
		if got := names(st.Successors); !slices.Equal(got, w.successors) && len(got)+len(w.successors) > 0 {
			t.Errorf("%s: %s.Successors = %v, want %v", where, w.name, got, w.successors)
		}
		if st.Queue != w.queue {
			t.Errorf("%s: %s.Queue = %q, want %q", where, w.name, st.Queue, w.queue)
		}
		gotTask := ""
		if st.Task != nil {
			gotTask = st.Task.Name
		}
		if gotTask != w.task {
			t.Errorf("%s: %s.Task = %q, want %q", where, w.name, gotTask, w.task)
		}
	}
	if got := names(g.Terminal); !slices.Equal(got, terminal) {
		t.Errorf("%s: Terminal = %v, want %v", where, got, terminal)
	}
}

func TestExampleWordCounts(t *testing.T) {
	set := loadTestdata(t, "word-counts.yaml")
	if !slices.Equal(set.Order, []string{"book-word-counts"}) {
		t.Fatalf("Order = %v", set.Order)
	}
	w := set.Lookup("book-word-counts")
	if w.Namespace != "" || w.File != filepath.Join("testdata", "word-counts.yaml") {
		t.Errorf("Namespace %q, File %q", w.Namespace, w.File)
	}
	assertGraph(t, "top", w.Graph, []stepWant{
		{name: "book-split", depends: []string{Start}, successors: []string{"section-counts"}, queue: "book-split"},
		{name: "section-counts", depends: []string{"book-split"}, successors: []string{"sum-splits"}, task: "word-counts"},
		{name: "sum-splits", depends: []string{"section-counts"}, queue: "sum-splits"},
		{name: "store-title", depends: []string{Start}, queue: "store-title"},
	}, []string{"sum-splits", "store-title"})

	task := w.Tasks["word-counts"]
	if task != w.Graph.ByName["section-counts"].Task {
		t.Error("the fan-out step does not point at the workflow's task")
	}
	if task.ItemListKey != "sections" || task.ItemKey != "section" {
		t.Errorf("ItemListKey %q ItemKey %q", task.ItemListKey, task.ItemKey)
	}
	assertGraph(t, "task", task.Graph, []stepWant{
		{name: "segment-word-counts", depends: []string{Start}, queue: "segment-word-counts"},
	}, []string{"segment-word-counts"})

	for _, st := range []*Step{w.Graph.ByName["book-split"], task.Graph.Steps[0]} {
		if st.Retry != DefaultRetry || st.Timeout != 0 {
			t.Errorf("%s: Retry %+v Timeout %v, want DefaultRetry and none", st.Name, st.Retry, st.Timeout)
		}
	}
	wantQueues := []string{"book-split", "segment-word-counts", "store-title", "sum-splits"}
	if got := set.Queues(); !slices.Equal(got, wantQueues) {
		t.Errorf("Queues = %v, want %v", got, wantQueues)
	}
	if got := w.UnusedTasks(); len(got) != 0 {
		t.Errorf("UnusedTasks = %v", got)
	}
}

func TestExampleQueueAliasAndVhost(t *testing.T) {
	set := loadTestdata(t, "vhosts.yaml")
	if !slices.Equal(set.Order, []string{"domain/example-1"}) {
		t.Fatalf("Order = %v, want the vhost-qualified name only", set.Order)
	}
	if set.Lookup("example-1") != nil {
		t.Error("a workflow listed under vhosts is also reachable without its namespace")
	}
	w := set.Lookup("domain/example-1")
	if w.Name != "domain/example-1" || w.Namespace != "domain" {
		t.Errorf("Name %q Namespace %q", w.Name, w.Namespace)
	}
	assertGraph(t, "top", w.Graph, []stepWant{
		{name: "s1", depends: []string{Start}, successors: []string{"s2", "s3"}, queue: "domain.qalias"},
		{name: "s2", depends: []string{"s1"}, successors: []string{"s4"}, task: "sub2"},
		{name: "s3", depends: []string{"s1"}, successors: []string{"s4"}, queue: "domain.s3"},
		{name: "s4", depends: []string{"s2", "s3"}, queue: "domain.s4"},
	}, []string{"s4"})
	task := w.Tasks["sub2"]
	if task.ItemListKey != "subid_list" || task.ItemKey != "subid_list" {
		t.Errorf("ItemListKey %q ItemKey %q", task.ItemListKey, task.ItemKey)
	}
	assertGraph(t, "sub2", task.Graph, []stepWant{
		{name: "s2s1", depends: []string{Start}, queue: "domain.s2s1"},
	}, []string{"s2s1"})

	var topics []string
	for _, ts := range set.Topics(DefaultPrefix) {
		topics = append(topics, ts.Name)
	}
	for _, want := range []string{"stepwise.tasks.domain.qalias", "stepwise.tasks.domain.s2s1"} {
		if !slices.Contains(topics, want) {
			t.Errorf("topic plan %v lacks %s", topics, want)
		}
	}
	if q := DefaultPrefix.QueueOf("stepwise.tasks.domain.qalias"); q != "domain.qalias" {
		t.Errorf("QueueOf = %q", q)
	}
}

func TestExampleSharedTask(t *testing.T) {
	set := loadTestdata(t, "mpath.yaml")
	w := set.Lookup("example")
	assertGraph(t, "top", w.Graph, []stepWant{
		{name: "s1", depends: []string{Start}, task: "task1"},
		{name: "s2", depends: []string{Start}, successors: []string{"s3"}, task: "task2"},
		{name: "s3", depends: []string{"s2"}, task: "task1"},
	}, []string{"s1", "s3"})
	g := w.Graph
	if g.ByName["s1"].Task != g.ByName["s3"].Task {
		t.Error("steps using the same task do not share its *Task")
	}
	if g.ByName["s1"].Task == g.ByName["s2"].Task {
		t.Error("different tasks share a *Task")
	}
	for _, name := range []string{"task1", "task2"} {
		assertGraph(t, name, w.Tasks[name].Graph, []stepWant{
			{name: "s1", depends: []string{Start}, queue: "s1"},
		}, []string{"s1"})
	}
	if got := set.Queues(); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("Queues = %v", got)
	}
}

func TestExampleNestedFanOut(t *testing.T) {
	set := loadTestdata(t, "nested.yaml")
	w := set.Lookup("idp")
	// assemble is declared before the step it depends on.
	assertGraph(t, "top", w.Graph, []stepWant{
		{name: "assemble", depends: []string{"documents"}, successors: []string{"notify"}, queue: "assemble"},
		{name: "split", depends: []string{Start}, successors: []string{"documents"}, queue: "split"},
		{name: "documents", depends: []string{"split"}, successors: []string{"assemble"}, task: "document"},
		{name: "notify", depends: []string{"assemble"}, queue: "notify"},
	}, []string{"notify"})
	doc := w.Tasks["document"]
	assertGraph(t, "document", doc.Graph, []stepWant{
		{name: "pages", depends: []string{Start}, successors: []string{"classify", "extract"}, task: "page"},
		{name: "classify", depends: []string{"pages"}, successors: []string{"extract"}, queue: "classify"},
		{name: "extract", depends: []string{"classify", "pages"}, queue: "extract-fields"},
	}, []string{"extract"})
	page := w.Tasks["page"]
	if doc.Graph.ByName["pages"].Task != page || page.ItemKey != "page" || doc.ItemKey != "document" {
		t.Errorf("nested task not resolved: %+v", doc.Graph.ByName["pages"].Task)
	}
	assertGraph(t, "page", page.Graph, []stepWant{
		{name: "ocr", depends: []string{Start}, successors: []string{"layout"}, queue: "ocr"},
		{name: "layout", depends: []string{"ocr"}, queue: "layout"},
	}, []string{"layout"})

	// defaults: {retry: {maxAttempts: 5, initial: 500ms}, timeout: 1m}
	defaults := RetryPolicy{MaxAttempts: 5, Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2}
	tests := []struct {
		step    *Step
		retry   RetryPolicy
		timeout time.Duration
	}{
		{w.Graph.ByName["assemble"], defaults, time.Minute},
		{w.Graph.ByName["split"], defaults, 5 * time.Minute},
		{w.Graph.ByName["notify"], RetryPolicy{MaxAttempts: 10, Initial: 500 * time.Millisecond, Max: time.Minute, Multiplier: 3}, time.Minute},
		{doc.Graph.ByName["classify"], defaults, time.Minute},
		{page.Graph.ByName["ocr"], RetryPolicy{MaxAttempts: 2, Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2}, 30 * time.Second},
		{page.Graph.ByName["layout"], defaults, time.Minute},
	}
	for _, tt := range tests {
		if tt.step.Retry != tt.retry || tt.step.Timeout != tt.timeout {
			t.Errorf("%s: Retry %+v Timeout %v, want %+v %v", tt.step.Name, tt.step.Retry, tt.step.Timeout, tt.retry, tt.timeout)
		}
	}
	if fan := w.Graph.ByName["documents"]; fan.Retry != (RetryPolicy{}) || fan.Timeout != 0 {
		t.Errorf("fan-out step got a retry policy or timeout: %+v %v", fan.Retry, fan.Timeout)
	}
}

func TestSeveralVhosts(t *testing.T) {
	set, err := Parse("v.yaml", []byte(`
workflows:
  - name: w
    vhosts: [/a, /, /b]
    steps:
      - name: fan
        task: t
    tasks:
      - name: t
        itemListKey: items
        steps:
          - name: work
            queue: q
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.Order, []string{"a/w", "w", "b/w"}) {
		t.Fatalf("Order = %v", set.Order)
	}
	want := map[string]string{"a/w": "a.q", "w": "q", "b/w": "b.q"}
	for name, queue := range want {
		w := set.Lookup(name)
		if got := w.Tasks["t"].Graph.Steps[0].Queue; got != queue {
			t.Errorf("%s: queue %q, want %q", name, got, queue)
		}
	}
	if set.Lookup("a/w").Tasks["t"] == set.Lookup("b/w").Tasks["t"] {
		t.Error("namespaces share a *Task although their queues differ")
	}
	if got := set.Queues(); !slices.Equal(got, []string{"a.q", "b.q", "q"}) {
		t.Errorf("Queues = %v", got)
	}
}

func TestLoadMergesFiles(t *testing.T) {
	set, err := Load(filepath.Join("testdata", "word-counts.yaml"), filepath.Join("testdata", "mpath.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.Order, []string{"book-word-counts", "example"}) {
		t.Errorf("Order = %v", set.Order)
	}
	if set.Lookup("example").File != filepath.Join("testdata", "mpath.yaml") {
		t.Errorf("File = %q", set.Lookup("example").File)
	}
}

func TestLoadDuplicateAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	writeFile(t, a, "workflows:\n  - name: w\n    steps: [{name: s}]\n")
	writeFile(t, b, "workflows:\n  - name: other\n    steps: [{name: s}]\n  - name: w\n    steps: [{name: s}]\n")
	_, err := Load(a, b)
	var ve ValidationErrors
	if !errors.As(err, &ve) || len(ve) != 1 {
		t.Fatalf("err = %v, want one ValidationErrors entry", err)
	}
	e := ve[0]
	if e.File != b || e.Line != 4 || e.Column != 11 || e.Path != "workflows[1].name" {
		t.Errorf("got %s", e)
	}
	if want := `duplicate workflow "w" (first defined at ` + a + `:2:11)`; e.Msg != want {
		t.Errorf("Msg = %q, want %q", e.Msg, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("errors.Is(err, ErrInvalid) is false")
	}

	// The same file twice is a duplicate too.
	if _, err := Load(a, a); err == nil {
		t.Error("loading one file twice succeeded")
	}
}

func TestLoadUnreadable(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, want a not-exist error that is not ErrInvalid", err)
	}
	if _, err := Load(); err == nil {
		t.Error("Load() with no files succeeded")
	}
}

func TestUnusedTasks(t *testing.T) {
	set, err := Parse("u.yaml", []byte(`
workflows:
  - name: w
    steps:
      - name: a
        task: used
    tasks:
      - {name: used, itemListKey: xs, steps: [{name: s, task: nested}]}
      - {name: nested, itemListKey: ys, steps: [{name: s}]}
      - {name: zz, itemListKey: xs, steps: [{name: s}]}
      - {name: idle, itemListKey: xs, steps: [{name: s}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Lookup("w").UnusedTasks(); !slices.Equal(got, []string{"idle", "zz"}) {
		t.Errorf("UnusedTasks = %v", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deepSharedTasks returns a workflow whose tasks each run the next task
// from two steps: 2^depth paths through depth tasks.
func deepSharedTasks(depth int) string {
	var b strings.Builder
	b.WriteString("workflows:\n  - name: w\n    steps: [{name: s, task: t0}]\n    tasks:\n")
	for i := range depth - 1 {
		fmt.Fprintf(&b, "      - {name: t%d, itemListKey: xs, steps: [{name: a, task: t%d}, {name: b, task: t%d}]}\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "      - {name: t%d, itemListKey: xs, steps: [{name: leaf}]}\n", depth-1)
	return b.String()
}

// Tasks shared along many paths must be handled once each, not once per
// path: 2^40 paths would never finish.
func TestSharedNestedTasksStayLinear(t *testing.T) {
	set, err := Parse("deep.yaml", []byte(deepSharedTasks(40)))
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := set.Queues(); !slices.Equal(got, []string{"leaf"}) {
		t.Errorf("Queues = %v", got)
	}
	if got := set.Lookup("w").UnusedTasks(); len(got) != 0 {
		t.Errorf("UnusedTasks = %v", got)
	}
	if err := WriteDot(io.Discard, set.Lookup("w")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("WriteDot = %v, want ErrTooLarge", err)
	}
}
