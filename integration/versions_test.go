//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// deployV1 is version 1 of the workflow the versions test changes under
// load; deployV2 replaces b and c with x and y. extraQueues only makes the
// topic plan (and the echo worker) cover x and y from the start.
const (
	deployV1 = `workflows:
  - name: deploy
    steps:
      - name: a
      - name: b
        depends: [a]
      - name: c
        depends: [b]
  - name: extra-queues
    steps:
      - name: x
      - name: y
`
	deployV2 = `workflows:
  - name: deploy
    steps:
      - name: a
      - name: x
        depends: [a]
      - name: y
        depends: [x]
`
)

// followDelay is how long the test gives the processors to read a version
// just applied: they follow the definitions topic with fetches of at most
// 100 ms, so this is many times what it takes.
const followDelay = 3 * time.Second

// TestApplyUnderLoad applies version 2 of a workflow while 1,000 requests
// of version 1 are in flight, then deletes it while requests of version 2
// are in flight. Every request must complete once, succeed, and have run
// the steps of the version it started under, whatever was applied since.
func TestApplyUnderLoad(t *testing.T) {
	e := newEnvWithin(t, brokers(), 4*time.Minute)
	const partitions = 6
	s := e.newStack(deployV1, partitions)
	tl := e.tally()
	// 16 tasks at a time of 100 ms: slow enough that most version-1
	// requests are still running when version 2 is applied, on any machine.
	s.echoWorker("w1", 100*time.Millisecond, "--concurrency", "16")
	s.processor("p1")
	s.processor("p2")
	s.waitOwned(partitions, "p1", "p2")

	started := e.dispatchedOf("a") // every request of both versions starts with a
	v1 := ids("v1", 1000)
	ld := e.submit("deploy", v1, 500)
	ld.wait(t)
	started.wait(t, v1)
	inFlight := len(v1) - tl.completed()
	out := s.apply("-f", s.writeFile("deploy-v2.yaml", deployV2))
	fmt.Printf("apply v2 with %d of %d version-1 requests in flight: %s", inFlight, len(v1), out)
	if !strings.Contains(out, "deploy: applied as version 2") {
		t.Fatalf("apply of version 2 printed %q", out)
	}
	if inFlight < len(v1)/2 {
		t.Fatalf("only %d of %d requests were in flight when version 2 was applied: the test did not test anything", inFlight, len(v1))
	}
	if out := s.apply("-f", s.writeFile("deploy-v2-again.yaml", deployV2)); !strings.Contains(out, "deploy: unchanged, version 2") {
		t.Errorf("applying version 2 again printed %q, want unchanged", out)
	}
	time.Sleep(followDelay)

	v2 := ids("v2", 300)
	ld = e.submit("deploy", v2, 300)
	ld.wait(t)
	started.wait(t, v2)
	inFlight2 := len(v2) - countDone(tl, v2)
	out = s.apply("--delete", "deploy")
	fmt.Printf("delete with %d of %d version-2 requests in flight: %s", inFlight2, len(v2), out)
	if !strings.Contains(out, "deploy: deleted (version 3)") {
		t.Fatalf("delete printed %q", out)
	}
	if inFlight2 == 0 {
		t.Fatalf("no version-2 request was in flight at the delete")
	}

	tl.check(t, "versions (1,000 on version 1, 300 on version 2)", append(slices.Clone(v1), v2...), 120*time.Second)
	wrong := 0
	for _, group := range []struct {
		ids     []string
		version int
		steps   []string
		never   []string
	}{{v1, 1, []string{"a", "b", "c"}, []string{"x", "y"}}, {v2, 2, []string{"a", "x", "y"}, []string{"b", "c"}}} {
		for _, id := range group.ids {
			c, ok := tl.output(id)
			if !ok {
				continue // reported by check
			}
			var o map[string]json.RawMessage
			_ = json.Unmarshal(c.Output, &o)
			bad := c.Version != group.version
			for _, st := range group.steps {
				bad = bad || o[st] == nil
			}
			for _, st := range group.never {
				bad = bad || o[st] != nil
			}
			if bad {
				wrong++
				if wrong <= 5 {
					t.Errorf("%s: completion on version %d with output %s; want version %d, steps %v and none of %v", id, c.Version, c.Output, group.version, group.steps, group.never)
				}
			}
		}
	}
	fmt.Printf("versions: %d requests of version 1 and %d of version 2 completed; %d ran on the wrong version\n", len(v1), len(v2), wrong)

	time.Sleep(followDelay)
	late := ids("late", 1)
	e.submit("deploy", late, 10).wait(t)
	if !tl.wait(late, 60*time.Second) {
		t.Fatalf("a start after the delete was never answered")
	}
	c, _ := tl.output(late[0])
	fmt.Printf("start after delete: %s, %+v\n", c.Status, c.Error)
	if c.Status != "failed" || c.Error == nil || !strings.Contains(c.Error.Message, "deleted") {
		t.Errorf("start after delete completed %s %+v, want failed saying the workflow was deleted", c.Status, c.Error)
	}
}

// dispatched follows one task topic and remembers the request ids it saw.
type dispatched struct {
	mu   sync.Mutex
	seen map[string]bool
}

// dispatchedOf follows tasks.<queue> read_committed from its start.
func (e *env) dispatchedOf(queue string) *dispatched {
	e.t.Helper()
	d := &dispatched{seen: map[string]bool{}}
	cl := e.Client(kgo.ConsumeTopics(e.Prefix.Tasks(queue)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				d.mu.Lock()
				d.seen[string(r.Key)] = true
				d.mu.Unlock()
			})
		}
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	return d
}

// wait waits until a task of every id was dispatched: the processors have
// started them all.
func (d *dispatched) wait(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		d.mu.Lock()
		missing := 0
		for _, id := range ids {
			if !d.seen[id] {
				missing++
			}
		}
		d.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests never started", missing, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countDone returns how many of ids have completed.
func countDone(tl *tally, ids []string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, id := range ids {
		if tl.mu.count[id] > 0 {
			n++
		}
	}
	return n
}

// writeFile writes a definition file into the test's directory.
func (s *stack) writeFile(name, content string) string {
	s.e.t.Helper()
	file := filepath.Join(filepath.Dir(s.files[0]), name)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		s.e.t.Fatal(err)
	}
	return file
}

// apply runs `stepwise apply` with args and returns its output.
func (s *stack) apply(args ...string) string {
	s.e.t.Helper()
	cmd := exec.CommandContext(s.e.ctx, s.stepwise, append(append([]string{"apply"}, args...), s.conn...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.e.t.Fatalf("stepwise apply %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
