package processors

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stepwise-run/stepwise/schemas"
)

// Two replicas share the partitions; every request completes exactly once.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t, threeSteps, 6)
	comps := e.watchCompletions()
	e.startWorker(echo)
	r1 := e.startProcessor("p1")
	r2 := e.startProcessor("p2")
	waitSpread(t, 6, r1, r2) // not waitPartitions: p1 alone holds all 6 until p2 joins
	reqs := ids("two", 1000)
	e.start("chain", reqs...)
	comps.wait(t, reqs, 25*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	s1, s2 := r1.p.Stats(), r2.p.Stats()
	t.Logf("p1 %+v", s1)
	t.Logf("p2 %+v", s2)
	if s1.Events == 0 || s2.Events == 0 {
		t.Fatalf("one replica did nothing: p1 %d events, p2 %d events", s1.Events, s2.Events)
	}
}

// waitPartitions waits until the replicas own n partitions between them,
// each exactly once.
func waitPartitions(t *testing.T, n int, rs ...*replica) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var all []int32
		for _, r := range rs {
			all = append(all, r.p.Stats().Partitions...)
		}
		slices.Sort(all)
		if len(all) == n && len(slices.Compact(all)) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not settled: %v", all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSpread waits until the replicas own n partitions between them, each
// exactly once, and every replica owns one at least.
func waitSpread(t *testing.T, n int, rs ...*replica) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var all []int32
		idle := false
		for _, r := range rs {
			ps := r.p.Stats().Partitions
			idle = idle || len(ps) == 0
			all = append(all, ps...)
		}
		slices.Sort(all)
		if !idle && len(all) == n && len(slices.Compact(all)) == n {
			return
		}
		if time.Now().After(deadline) {
			for _, r := range rs {
				t.Logf("%s owns %v", r.p.cfg.ReplicaID, r.p.Stats().Partitions)
			}
			t.Fatalf("partitions not spread over the %d replicas: %v", len(rs), all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A replica dies abruptly (no commit, no abort, no leaving the group) while
// 1,000 requests are in flight; a new replica takes over its partitions.
// Every request completes exactly once. The takeover time is logged: it is
// bounded by the session timeout plus the transaction timeout.
func TestProcessorCrash(t *testing.T) {
	e := newEnv(t, threeSteps, 6)
	comps := e.watchCompletions()
	e.startWorker(echo)
	r1 := e.startProcessor("p1")
	r2 := e.startProcessor("p2")
	waitSpread(t, 6, r1, r2) // not waitPartitions: p1 alone holds all 6 until p2 joins

	reqs := ids("crash", 1000)
	go e.start("chain", reqs[:500]...)
	comps.waitCount(t, 50, 20*time.Second)
	owned := r1.p.Stats().Partitions
	killed := time.Now()
	r1.kill()
	e.start("chain", reqs[500:]...)
	e.startProcessor("p3")

	comps.wait(t, reqs, 25*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	first := comps.firstAfter(killed)
	var worst time.Duration
	for _, p := range owned {
		if first[p].IsZero() {
			t.Fatalf("no completion on partition %d after the crash", p)
		}
		worst = max(worst, first[p].Sub(killed))
	}
	t.Logf("takeover: partitions %v of the dead replica completed again after at most %s", owned, worst.Round(time.Millisecond))
	if worst > DefaultSessionTimeout+DefaultTxnTimeout+5*time.Second {
		t.Errorf("takeover took %s", worst)
	}
}

// A replica restarted under the same id fences its previous incarnation at
// once; nothing is lost or doubled.
func TestProcessorRestartSameID(t *testing.T) {
	e := newEnv(t, threeSteps, 4)
	comps := e.watchCompletions()
	e.startWorker(echo)
	r1 := e.startProcessor("p1")
	reqs := ids("restart", 600)
	go e.start("chain", reqs...)
	comps.waitCount(t, 50, 20*time.Second)
	killed := time.Now()
	r1.kill()
	e.startProcessor("p1")
	comps.wait(t, reqs, 25*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	var worst time.Duration
	for _, at := range comps.firstAfter(killed) {
		worst = max(worst, at.Sub(killed))
	}
	t.Logf("restart under the same id: completions resumed after at most %s", worst.Round(time.Millisecond))
}

// A worker dies holding a task it never answered; the task is delivered
// again to another worker and the request completes.
func TestWorkerCrash(t *testing.T) {
	e := newEnv(t, threeSteps, 4)
	comps := e.watchCompletions()
	// Whichever worker gets the first b task crashes on it.
	var crashed atomic.Bool
	crashOnce := func(tk task) ([]*kgo.Record, bool) {
		if tk.step == "b" && crashed.CompareAndSwap(false, true) {
			return nil, true
		}
		return echo(tk)
	}
	w1 := e.startWorker(crashOnce)
	w2 := e.startWorker(crashOnce)
	e.startProcessor("p1")
	reqs := ids("wcrash", 40)
	e.start("chain", reqs...)
	comps.wait(t, reqs, 25*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	if !crashed.Load() {
		t.Fatal("the crashing worker never saw a b task")
	}
	// The unanswered task came again, as the same attempt.
	total := map[string]int{}
	for _, w := range []*worker{w1, w2} {
		for k, n := range w.deliveries() {
			total[k] += n
		}
	}
	redelivered := 0
	for k, n := range total {
		if n > 1 {
			redelivered++
		}
		if !strings.HasSuffix(k, " 1") {
			t.Errorf("task %s: a second attempt was dispatched", k)
		}
	}
	if redelivered == 0 {
		t.Error("no task was delivered twice")
	}
}

// Workers send every result twice, and a stale copy of an earlier result
// later: no step runs twice, no request completes twice.
func TestDuplicateResults(t *testing.T) {
	e := newEnv(t, threeSteps, 4)
	comps := e.watchCompletions()
	var earlier atomic.Pointer[kgo.Record]
	w := e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		r := okResult(tk, nil)
		out := []*kgo.Record{r, okResult(tk, nil)}
		if old := earlier.Swap(okResult(tk, nil)); old != nil && old.Partition == r.Partition {
			out = append(out, old)
		}
		return out, false
	})
	e.startProcessor("p1")
	reqs := ids("dup", 200)
	e.start("chain", reqs...)
	comps.wait(t, reqs, 25*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	d := w.deliveries()
	if len(d) != 3*len(reqs) {
		t.Errorf("%d distinct tasks, want %d", len(d), 3*len(reqs))
	}
	for k, n := range d {
		if n != 1 {
			t.Errorf("task %s dispatched %d times", k, n)
		}
	}
}

// A step whose worker never answers times out and is retried after its
// backoff: timers fire inside the transactional loop.
func TestTimeoutAndRetry(t *testing.T) {
	e := newEnv(t, `
workflows:
  - name: slow
    steps:
      - name: a
      - name: b
        depends: [a]
        timeout: 300ms
        retry: {maxAttempts: 3, initial: 100ms}
`, 2)
	comps := e.watchCompletions()
	w := e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		if tk.step == "b" && tk.attempt == 1 {
			return nil, false // lost: never answered
		}
		return echo(tk)
	})
	e.startProcessor("p1")
	reqs := ids("slow", 20)
	e.start("slow", reqs...)
	comps.wait(t, reqs, 20*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	for _, id := range reqs {
		c, _ := comps.get(id)
		if !strings.Contains(string(c.Output), `"b":2`) {
			t.Errorf("%s: output %s, want b answered at attempt 2", id, c.Output)
		}
		if d := w.deliveries()[fmt.Sprintf("%s b 2", id)]; d != 1 {
			t.Errorf("%s: attempt 2 of b dispatched %d times", id, d)
		}
	}
}

// Malformed records fail the request or the step with a clear error; they
// never stall a partition.
func TestMalformedRecords(t *testing.T) {
	e := newEnv(t, threeSteps, 1)
	comps := e.watchCompletions()
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		if tk.step == "a" && tk.request == "bad-output" && tk.attempt == 1 {
			r := okResult(tk, nil)
			r.Value = []byte("not json")
			return []*kgo.Record{r}, false
		}
		return echo(tk)
	})
	r := e.startProcessor("p1")
	e.produceRaw("not-an-object", []byte(`{"type":"start","workflow":"chain","id":"not-an-object","input":[1,2]}`))
	e.produceRaw("garbage", []byte(`{{{`))
	e.produceRaw("", []byte(`nothing to answer`))
	e.produceRaw("unknown-wf", []byte(`{"type":"start","workflow":"nope","id":"unknown-wf","input":{}}`))
	e.start("chain", "bad-output", "fine")
	all := []string{"not-an-object", "garbage", "unknown-wf", "bad-output", "fine"}
	comps.wait(t, all, 20*time.Second)
	for id, want := range map[string]schemas.CompletionStatus{
		"not-an-object": schemas.Failed, "garbage": schemas.Failed, "unknown-wf": schemas.Failed,
		"bad-output": schemas.Succeeded, "fine": schemas.Succeeded,
	} {
		c, n := comps.get(id)
		if n != 1 || c.Status != want {
			t.Errorf("%s: %d completions, status %s, want %s (%+v)", id, n, c.Status, want, c.Error)
		}
	}
	if st := r.p.Stats(); st.Drops[ReasonNoID] != 1 {
		t.Errorf("records naming no request = %d, want 1 (drops %v)", st.Drops[ReasonNoID], st.Drops)
	}
}

// A replica the group has dropped, but that has not heard of it yet, must
// not fire the timers of partitions its successor took over: a transaction
// of fired timers consumed nothing, so only the offsets the processor
// commits in it for the timers' partitions fence it under the old
// generation. Without them the step timed out, and the request failed,
// twice.
func TestDroppedReplicaFiresNoTimer(t *testing.T) {
	e := newEnv(t, `
workflows:
  - name: stuck
    steps:
      - name: a
        timeout: 12s
        retry: {maxAttempts: 1}
`, 2)
	comps := e.watchCompletions()
	r1 := e.startProcessor("p1")
	waitPartitions(t, 2, r1)
	reqs := ids("stuck", 10)
	e.start("stuck", reqs...) // no worker: every step times out
	deadline := time.Now().Add(10 * time.Second)
	for r1.p.Stats().Events < uint64(len(reqs)) {
		if time.Now().After(deadline) {
			t.Fatalf("p1 took %d of %d starts", r1.p.Stats().Events, len(reqs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// From now on p1's heartbeats are answered "fine" without reaching
	// the group: the group drops p1 at its session timeout, and p1 does
	// not learn of it. (Holding them instead would not do: the broker
	// answers a connection's requests in order, so p1's transactions
	// would wait too.) The first heartbeat after this is p1's, the only
	// member.
	var p1Member string
	e.cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		if p1Member == "" {
			p1Member = hb.MemberID
		}
		if hb.MemberID != p1Member {
			return nil, nil, false
		}
		return hb.ResponseKind(), nil, true
	})
	r2 := e.startProcessor("p2")
	waitPartitions(t, 2, r2)
	comps.wait(t, reqs, 30*time.Second)
	time.Sleep(3 * time.Second) // room for p1's timers to fire as well
	comps.exactlyOnce(t, reqs, schemas.Failed)
}
