package definitions_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/internal/kfaketest"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
)

func parse(t *testing.T, src string) *topology.Set {
	t.Helper()
	set, err := topology.Parse("wf.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const v1 = `workflows:
  - name: wf   # the first version
    steps:
      - name: a
      - {name: b, depends: [a]}
`

// v1Edited differs from v1 in comments, layout and key order only.
const v1Edited = `# edited
workflows:
  - steps:
      - name: a
      - depends: [a]
        name: b
    name: wf
`

const v2 = `workflows:
  - name: wf
    steps:
      - name: a
      - {name: c, depends: [a]}
`

// broker starts a kfake cluster with the topics of the default prefix and
// returns its connection options.
func broker(t *testing.T) ([]kgo.Opt, context.Context) {
	t.Helper()
	c := kfaketest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if err := topics.Ensure(ctx, kfaketest.Admin(t, c), parse(t, v1).Topics(topology.DefaultPrefix), 3, 1); err != nil {
		t.Fatal(err)
	}
	return []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, ctx
}

const prefix = topology.DefaultPrefix

func TestPublishVersionsNoOpsAndDeletes(t *testing.T) {
	opts, ctx := broker(t)
	publish := func(set *topology.Set, deletes ...string) definitions.Outcome {
		t.Helper()
		out, err := definitions.Publish(ctx, opts, prefix, set, deletes, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 {
			t.Fatalf("outcomes = %+v, want one", out)
		}
		return out[0]
	}
	empty := &topology.Set{Workflows: map[string]*topology.Workflow{}}

	if o := publish(parse(t, v1)); o.Version != 1 || o.Unchanged {
		t.Fatalf("first apply: %+v, want version 1", o)
	}
	if o := publish(parse(t, v1)); o.Version != 1 || !o.Unchanged {
		t.Fatalf("same content again: %+v, want unchanged version 1", o)
	}
	if o := publish(parse(t, v1Edited)); o.Version != 1 || !o.Unchanged {
		t.Fatalf("comments and key order changed: %+v, want unchanged version 1", o)
	}
	if o := publish(parse(t, v2)); o.Version != 2 || o.Unchanged {
		t.Fatalf("new content: %+v, want version 2", o)
	}
	if o := publish(empty, "wf"); o.Version != 3 || !o.Deleted {
		t.Fatalf("delete: %+v, want deletion as version 3", o)
	}
	if _, err := definitions.Publish(ctx, opts, prefix, empty, []string{"wf"}, time.Now()); !errors.Is(err, definitions.ErrNotApplied) {
		t.Fatalf("deleting a deleted workflow: err = %v", err)
	}
	if o := publish(parse(t, v1)); o.Version != 4 {
		t.Fatalf("apply after delete: %+v, want version 4", o)
	}

	cat := definitions.NewCatalog()
	if err := definitions.ReadAll(ctx, opts, prefix, cat, nil); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, e := range cat.Versions("wf") {
		steps := ""
		if e.Compiled != nil {
			for _, s := range e.Compiled.Graph.Steps {
				steps += s.Name
			}
		}
		got = append(got, fmt.Sprintf("%d:%s:%v", e.Version, steps, e.Deleted))
	}
	if want := "1:ab:false 2:ac:false 3::true 4:ab:false"; strings.Join(got, " ") != want {
		t.Fatalf("versions read back: %v, want %s", got, want)
	}
	if _, v, err := cat.Resolve("wf", 0); err != nil || v != 4 {
		t.Fatalf("newest = %d, %v; want 4", v, err)
	}
	if _, _, err := cat.Resolve("wf", 3); !errors.Is(err, definitions.ErrUnknownVersion) {
		t.Fatalf("the deletion's version resolved: %v", err)
	}
	if d := definitions.Diff("1", cat.Versions("wf")[0].Source, "2", cat.Versions("wf")[1].Source); !strings.Contains(d, "\n-          name: b\n+          name: c\n") {
		t.Fatalf("diff of 1 and 2:\n%s", d)
	}
}

// TestConcurrentPublishersNeverShareAVersion runs publishers of different
// content at once: the shared transactional id serialises them, so every
// version number is written once.
func TestConcurrentPublishersNeverShareAVersion(t *testing.T) {
	opts, ctx := broker(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := strings.Replace(v1, "name: a\n", fmt.Sprintf("name: a%d\n", i), 1)
			src = strings.Replace(src, "depends: [a]", fmt.Sprintf("depends: [a%d]", i), 1)
			_, errs[i] = definitions.Publish(ctx, opts, prefix, parse(t, src), nil, time.Now())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publisher %d: %v", i, err)
		}
	}
	cat := definitions.NewCatalog()
	f, err := definitions.NewFollower(opts, prefix, cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	vs := cat.Versions("wf")
	hashes := map[string]bool{}
	for i, e := range vs {
		if e.Version != i+1 {
			t.Fatalf("versions %v: want 1..%d without gaps", vs, n)
		}
		hashes[e.Hash] = true
	}
	if len(vs) != n || len(hashes) != n {
		t.Fatalf("%d versions with %d distinct contents, want %d of each", len(vs), len(hashes), n)
	}
	t.Logf("%d concurrent publishers wrote versions 1..%d", n, len(vs))
}

func TestFollowerSeesAppliesLive(t *testing.T) {
	opts, ctx := broker(t)
	cat := definitions.NewCatalog()
	f, err := definitions.NewFollower(opts, prefix, cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(fctx) }()
	defer func() { cancel(); <-done }()
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.Resolve("wf", 0); !errors.Is(err, definitions.ErrUnknownWorkflow) {
		t.Fatalf("empty topic: %v", err)
	}
	for i, src := range []string{v1, v2} {
		if _, err := definitions.Publish(ctx, opts, prefix, parse(t, src), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, v, err := cat.Resolve("wf", 0); err != nil || v != i+1 {
			t.Fatalf("after apply %d: version %d, %v", i+1, v, err)
		}
	}
}
