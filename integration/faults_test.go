//go:build integration

package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// takeoverLimit is the longest a dead processor's partitions may go
// without a completion. The figure it must cover, with the defaults that
// `stepwise run` and the deployment files use (classic group protocol,
// session 6 s, heartbeat 1 s, transaction timeout 5 s; broker transaction
// cleanup every 1 s):
//
//   - the coordinator expires the dead member 6 s after its last
//     heartbeat, at most 6 s after the kill;
//   - its open transaction began before the kill, so the broker aborts it
//     at most 5 s + 1 s after the kill: hidden behind the session;
//   - the survivor hears of the rebalance on its next heartbeat (≤ 1 s),
//     rejoins, restores the partitions (state partitions of a few thousand
//     records: well under a second) and commits its first batch.
//
// About 8 s in all; 10 s leaves 2 s for a loaded 2-core machine. A replica
// restarted under its old id fences the dead transaction at once, so it is
// bounded by the session alone.
const takeoverLimit = 10 * time.Second

// TestKillProcessor kills processor processes with SIGKILL, three times,
// while 5,000 requests flow and another replica runs: every request
// completes exactly once, and each kill's partitions complete requests
// again within takeoverLimit. The first kill leaves the survivor alone
// (takeover waits for the session and the dead transaction's timeout); the
// other two restart the killed replica at once under its old id, as a pod
// restart does (its new producer fences the dead one's transaction).
func TestKillProcessor(t *testing.T) {
	e := newEnv(t)
	const partitions = 6
	s := e.newStack(chainYAML, partitions)
	tl := e.tally()
	s.echoWorker("w1", 0, "--concurrency", "32")
	procs := map[string]*proc{"p1": s.processor("p1"), "p2": s.processor("p2")}
	s.waitOwned(partitions, "p1", "p2")

	reqs := ids("kill", 5000)
	started := time.Now()
	ld := e.submit("chain", reqs, 125) // about 40 s of load

	kill := func(n int, victim string, restartAtOnce bool) {
		t.Helper()
		owned := s.waitOwned(partitions, "p1", "p2")[victim]
		before := tl.completed()
		killed := procs[victim].kill()
		fmt.Printf("kill %d: SIGKILL %s (partitions %v) at +%s, %d requests completed\n",
			n, victim, owned, killed.Sub(started).Round(time.Millisecond), before)
		if restartAtOnce {
			procs[victim] = s.processor(victim)
		}
		tl.takeover(t, fmt.Sprintf("kill %d (%s, restarted at once: %v)", n, victim, restartAtOnce), owned, killed, takeoverLimit)
		if !restartAtOnce {
			procs[victim] = s.processor(victim)
		}
	}
	time.Sleep(8 * time.Second)
	kill(1, "p1", false)
	time.Sleep(3 * time.Second)
	kill(2, "p2", true)
	time.Sleep(3 * time.Second)
	kill(3, "p1", true)

	ld.wait(t)
	tl.check(t, "kill processors", reqs, 60*time.Second)
	for id, p := range procs {
		if !p.running() {
			t.Errorf("processor %s exited: %v", id, p.err)
		}
	}
}

// TestKillWorkers kills worker processes with SIGKILL while they hold tasks
// (each task takes 30 ms, 8 at a time per queue): the unanswered tasks are
// delivered again once the group moves their partitions, and every request
// completes exactly once.
func TestKillWorkers(t *testing.T) {
	e := newEnv(t)
	const partitions = 4
	s := e.newStack(chainYAML, partitions)
	tl := e.tally()
	s.processor("p1")
	workers := []*proc{s.echoWorker("w1", 30*time.Millisecond), s.echoWorker("w2", 30*time.Millisecond)}
	s.waitOwned(partitions, "p1")

	reqs := ids("wkill", 2000)
	ld := e.submit("chain", reqs, 100)
	// Kills 7 s apart: the group needs the 6 s session to expire a killed
	// member before its partitions move, so closer kills would only stack.
	for i := range 3 {
		time.Sleep(7 * time.Second)
		victim := i % len(workers)
		before := tl.completed()
		workers[victim].kill()
		fmt.Printf("worker kill %d: SIGKILL %s, %d requests completed\n", i+1, workers[victim].name, before)
		workers[victim] = s.echoWorker(fmt.Sprintf("w%d-%d", victim+1, i+2), 30*time.Millisecond)
	}
	ld.wait(t)
	tl.check(t, "kill workers", reqs, 60*time.Second)
}

// TestRebalanceUnderLoad adds a second replica while requests flow, then
// removes it gracefully (SIGTERM), then adds a third and removes the first:
// every rebalance moves partitions with their state; no request is
// stranded and none completes twice.
func TestRebalanceUnderLoad(t *testing.T) {
	e := newEnv(t)
	const partitions = 6
	s := e.newStack(chainYAML, partitions)
	tl := e.tally()
	s.echoWorker("w1", 0, "--concurrency", "32")
	p1 := s.processor("p1")
	s.waitOwned(partitions, "p1")

	reqs := ids("rebal", 3000)
	ld := e.submit("chain", reqs, 120)
	step := func(what string, replicas ...string) {
		t.Helper()
		at := time.Now()
		owned := s.waitOwned(partitions, replicas...)
		fmt.Printf("rebalance: %s; settled in %s: %v, %d requests completed\n", what, time.Since(at).Round(time.Millisecond), owned, tl.completed())
	}
	time.Sleep(3 * time.Second)
	p2 := s.processor("p2")
	step("p2 added", "p1", "p2")
	time.Sleep(3 * time.Second)
	p2.stop()
	step("p2 removed", "p1")
	time.Sleep(3 * time.Second)
	s.processor("p3")
	step("p3 added", "p1", "p3")
	time.Sleep(3 * time.Second)
	p1.stop()
	step("p1 removed", "p3")
	ld.wait(t)
	tl.check(t, "rebalance", reqs, 60*time.Second)
	for _, p := range []*proc{p1, p2} {
		if p.err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want a clean exit", p.name, p.err)
		}
	}
}

// TestAddPartitions raises the partition count of requests, results, state
// and completions from 3 to 6 while requests are in flight (slow workers
// keep hundreds of them waiting), then starts more requests. In-flight
// requests complete on their home partitions; new requests hash over six
// partitions and complete on the new ones too.
//
// The processors and workers are restarted after the change (workers
// first), as docs/operations.md says to: their clients learn the new count
// only at a metadata refresh, every 5 minutes by default.
func TestAddPartitions(t *testing.T) {
	e := newEnv(t)
	s := e.newStack(chainYAML, 3)
	tl := e.tally()
	s.echoWorker("w1", 50*time.Millisecond, "--concurrency", "4")
	s.processor("p1")
	s.processor("p2")
	s.waitOwned(3, "p1", "p2")

	before := ids("before", 600)
	ldBefore := e.submit("chain", before, 300)
	ldBefore.wait(t)
	inFlight := len(before) - tl.completed()
	s.addPartitions(6)
	fmt.Printf("add partitions: 3 -> 6 with %d of %d requests in flight\n", inFlight, len(before))
	if inFlight < 100 {
		t.Errorf("only %d requests were in flight when partitions were added; the test proves little", inFlight)
	}

	// Nothing is restarted: the processors pick the new partitions up at
	// their next metadata refresh (10 s) and the workers learn of new reply
	// partitions when a task names one.
	owned := s.waitOwned(6, "p1", "p2")
	fmt.Printf("add partitions: processors own %v\n", owned)

	after := ids("after", 600)
	ldAfter := e.submit("chain", after, 300)
	ldAfter.wait(t)
	tl.check(t, "add partitions", append(slices.Clone(before), after...), 60*time.Second)

	moved := 0
	for _, id := range before {
		if p, ok := tl.partitionOf(id); ok && p != ldBefore.homeOf(id) {
			moved++
		}
	}
	if moved > 0 {
		t.Errorf("%d in-flight requests completed away from their home partition", moved)
	}
	perPartition := map[int32]int{}
	for _, id := range after {
		p, ok := tl.partitionOf(id)
		if ok && p != ldAfter.homeOf(id) {
			t.Errorf("%s started on partition %d, completed on %d", id, ldAfter.homeOf(id), p)
		}
		perPartition[p]++
	}
	fmt.Printf("add partitions: completions of the new requests per partition %v\n", perPartition)
	for p := int32(3); p < 6; p++ {
		if perPartition[p] == 0 {
			t.Errorf("no new request completed on new partition %d (per partition: %v)", p, perPartition)
		}
	}
}
