//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// tally follows the completions topic read_committed from the start and
// counts completions per request id: the exactly-once check of every test.
type tally struct {
	e *env

	mu struct {
		sync.Mutex
		count  map[string]int
		first  map[string]schemas.Completion
		part   map[string]int32       // partition of the first completion
		seen   map[int32][]completion // per partition, in arrival order
		notify chan struct{}          // closed and replaced on every completion
	}
}

// completion is one completion record as the tally saw it.
type completion struct {
	id       string
	produced time.Time // the record's timestamp: when the processor produced it
	arrived  time.Time // when the tally read it
}

func (e *env) tally() *tally {
	e.t.Helper()
	tl := &tally{e: e}
	tl.mu.count = map[string]int{}
	tl.mu.first = map[string]schemas.Completion{}
	tl.mu.part = map[string]int32{}
	tl.mu.seen = map[int32][]completion{}
	tl.mu.notify = make(chan struct{})
	cl := e.Client(append(metadataOpts(),
		kgo.ConsumeTopics(e.Prefix.Completions()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var c schemas.Completion
				if err := json.Unmarshal(r.Value, &c); err != nil || c.Request == "" {
					e.t.Errorf("completion %s at %s[%d]@%d is not a completion: %v", r.Value, r.Topic, r.Partition, r.Offset, err)
					return
				}
				tl.mu.Lock()
				tl.mu.count[c.Request]++
				if tl.mu.count[c.Request] == 1 {
					tl.mu.first[c.Request] = c
					tl.mu.part[c.Request] = r.Partition
				}
				tl.mu.seen[r.Partition] = append(tl.mu.seen[r.Partition], completion{c.Request, r.Timestamp, now})
				close(tl.mu.notify)
				tl.mu.notify = make(chan struct{})
				tl.mu.Unlock()
			})
		}
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	return tl
}

// completed returns the number of distinct requests completed so far.
func (tl *tally) completed() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.mu.count)
}

// wait waits until every id completed at least once, or timeout passes.
// It reports whether all did.
func (tl *tally) wait(ids []string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		tl.mu.Lock()
		missing := 0
		for _, id := range ids {
			if tl.mu.count[id] == 0 {
				missing++
			}
		}
		notify := tl.mu.notify
		tl.mu.Unlock()
		if missing == 0 {
			return true
		}
		select {
		case <-notify:
		case <-deadline:
			return false
		case <-tl.e.ctx.Done():
			return false
		}
	}
}

// counts is what a test prints and checks.
type counts struct {
	Submitted, Completed, Duplicates, Missing, Failed int
}

func (c counts) String() string {
	return fmt.Sprintf("submitted %d, completed %d, duplicates %d, missing %d, not succeeded %d",
		c.Submitted, c.Completed, c.Duplicates, c.Missing, c.Failed)
}

// check waits up to timeout for every id, then lingers a moment so that a
// late second completion is caught too, logs the counts and fails the test
// unless every id completed exactly once with status succeeded.
func (tl *tally) check(t *testing.T, label string, ids []string, timeout time.Duration) counts {
	t.Helper()
	tl.wait(ids, timeout)
	time.Sleep(2 * time.Second) // a duplicate written late must not slip past
	tl.mu.Lock()
	defer tl.mu.Unlock()
	c := counts{Submitted: len(ids)}
	var missing, dups, failed []string
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
		switch n := tl.mu.count[id]; {
		case n == 0:
			c.Missing++
			missing = append(missing, id)
			continue
		case n > 1:
			c.Duplicates += n - 1
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
		c.Completed++
		if st := tl.mu.first[id].Status; st != schemas.Succeeded {
			c.Failed++
			failed = append(failed, fmt.Sprintf("%s: %s %+v", id, st, tl.mu.first[id].Error))
		}
	}
	for id := range tl.mu.count {
		if !want[id] {
			t.Errorf("%s: completion of a request never submitted: %s", label, id)
		}
	}
	fmt.Printf("%s: %s\n", label, c)
	t.Logf("%s: %s", label, c)
	if c.Missing > 0 {
		t.Errorf("%s: %d requests never completed, e.g. %v", label, c.Missing, missing[:min(5, len(missing))])
	}
	if c.Duplicates > 0 {
		t.Errorf("%s: %d duplicate completions, e.g. %v", label, c.Duplicates, dups[:min(5, len(dups))])
	}
	if c.Failed > 0 {
		t.Errorf("%s: %d requests did not succeed, e.g. %v", label, c.Failed, failed[:min(5, len(failed))])
	}
	return c
}

// firstAfter returns when the first completion produced after at arrived on
// partition p, or the zero time when none has. The record timestamp is the
// producer's clock, so a completion a dead replica committed just before a
// kill, read just after it, does not count as taken over.
func (tl *tally) firstAfter(p int32, at time.Time) time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, c := range tl.mu.seen[p] {
		if c.produced.After(at) {
			return c.arrived
		}
	}
	return time.Time{}
}

// partitionOf returns the partition the first completion of id was on.
func (tl *tally) partitionOf(id string) (int32, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	p, ok := tl.mu.part[id]
	return p, ok
}

// output returns the first completion of id.
func (tl *tally) output(id string) (schemas.Completion, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	c, ok := tl.mu.first[id]
	return c, ok
}

// takeover waits until every partition in parts saw a completion produced
// after killed, up to limit, and returns the longest wait. It fails the test
// when a partition saw none by then.
func (tl *tally) takeover(t *testing.T, label string, parts []int32, killed time.Time, limit time.Duration) time.Duration {
	t.Helper()
	deadline := killed.Add(limit + 5*time.Second) // wait past the limit to report by how much it was missed
	var worst time.Duration
	for _, p := range slices.Sorted(slices.Values(parts)) {
		for {
			if at := tl.firstAfter(p, killed); !at.IsZero() {
				worst = max(worst, at.Sub(killed))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no completion on partition %d within %s of the kill", label, p, limit+5*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fmt.Printf("%s: takeover of partitions %v in %s\n", label, parts, worst.Round(time.Millisecond))
	t.Logf("%s: takeover of partitions %v in %s", label, parts, worst.Round(time.Millisecond))
	if worst > limit {
		t.Errorf("%s: takeover took %s, above the %s limit", label, worst.Round(time.Millisecond), limit)
	}
	return worst
}

// load produces starts of workflow for ids at about rate per second, keyed
// by id and partitioned by the key hash as clients do. It records each
// start's partition (the request's home partition).
type load struct {
	mu   sync.Mutex
	home map[string]int32
	done chan struct{}
	err  error
}

// submit starts producing in the background; wait for it with (*load).wait.
// Each request's input is {"id": <its id>}.
func (e *env) submit(workflow string, ids []string, rate int) *load {
	e.t.Helper()
	return e.submitWith(workflow, ids, rate, func(id string) any { return map[string]any{"id": id} })
}

// submitWith is submit with the input of each request given by input.
func (e *env) submitWith(workflow string, ids []string, rate int, input func(id string) any) *load {
	e.t.Helper()
	cl := e.Client(append(metadataOpts(), kgo.ProducerLinger(5*time.Millisecond))...)
	l := &load{home: map[string]int32{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		const tick = 20 * time.Millisecond
		per := max(1, rate*int(tick)/int(time.Second))
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		var wg sync.WaitGroup
		var errOnce sync.Once
		for i := 0; i < len(ids); i += per {
			for _, id := range ids[i:min(i+per, len(ids))] {
				v, _ := json.Marshal(map[string]any{"type": "start", "workflow": workflow, "id": id, "input": input(id)})
				wg.Add(1)
				cl.Produce(e.ctx, &kgo.Record{Topic: e.Prefix.Requests(), Key: []byte(id), Value: v}, func(r *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						errOnce.Do(func() { l.err = fmt.Errorf("produce start %s: %w", r.Key, err) })
						return
					}
					l.mu.Lock()
					l.home[string(r.Key)] = r.Partition
					l.mu.Unlock()
				})
			}
			select {
			case <-ticker.C:
			case <-e.ctx.Done():
			}
		}
		wg.Wait()
	}()
	return l
}

// wait waits until every start is acknowledged and fails the test if one
// was not.
func (l *load) wait(t *testing.T) {
	t.Helper()
	<-l.done
	if l.err != nil {
		t.Fatal(l.err)
	}
}

// homeOf returns the partition the start of id went to.
func (l *load) homeOf(id string) int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.home[id]
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}
