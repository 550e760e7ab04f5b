package processors

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
)

// Two rebalances with no transaction of a replica between them: franz-go's
// GroupTransactSession calls the revoke callback only for the first
// revoke after a transaction ended (it returns early while the previous
// one is unacknowledged), so the second never reached the processor and
// it kept a partition the group had given another replica, timers and
// all. p1 takes the starts alone, then goes idle (the steps' timers are not
// due yet) while p2 and p3 join one after the other; when the timers fall
// due, only the partitions' owners may fire them. Before the fix p1 kept
// the partition that went to p3 and failed its requests a second time.
func TestRevokeBetweenTransactionsDropsPartition(t *testing.T) {
	e := newEnv(t, `
workflows:
  - name: stuck
    steps:
      - name: a
        timeout: 15s
        retry: {maxAttempts: 1}
`, 3)
	comps := e.watchCompletions()
	r1 := e.startProcessor("p1")
	waitPartitions(t, 3, r1)
	reqs := ids("drift", 30)
	e.start("stuck", reqs...) // no worker: every step times out
	deadline := time.Now().Add(10 * time.Second)
	for r1.p.Stats().Events < uint64(len(reqs)) || r1.p.Stats().Committed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("p1 took %d of %d starts", r1.p.Stats().Events, len(reqs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	committed := r1.p.Stats().Committed
	r2 := e.startProcessor("p2")
	waitSpread(t, 3, r1, r2)
	r3 := e.startProcessor("p3")
	for len(r3.p.Stats().Partitions) == 0 {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("p3 got no partition")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := r1.p.Stats().Committed; c != committed {
		t.Fatalf("p1 committed %d transactions during the rebalances: the test needs none", c-committed)
	}
	comps.wait(t, reqs, 40*time.Second)
	time.Sleep(3 * time.Second) // room for a second firing
	comps.exactlyOnce(t, reqs, schemas.Failed)
	waitPartitions(t, 3, r1, r2, r3)
	if d := r1.p.Stats().Disowned; d == 0 {
		t.Fatal("p1 counted no partition held without its revoke")
	}
}

// owns, the check before an event or timer runs, sets aside a partition
// of the owned set that the group client does not hold in the owned set's
// generation, and keeps one it does.
func TestOwnsSetsAsideOutsideAssignment(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	p, err := New(Config{Conn: e.conn, Set: e.set, ReplicaID: "p1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cl := e.client() // no group: its generation is -1
	p.mu.gen = -1
	p.mu.assignment[0] = true
	p.mu.parts[0], p.mu.parts[1] = newPartition(0), newPartition(1)
	if !p.owns(cl, 0) {
		t.Fatal("partition 0, assigned in the client's generation, is not owned")
	}
	if p.owns(cl, 1) {
		t.Fatal("partition 1, outside the assignment, is owned")
	}
	p.mu.gen = 4 // the client's generation moved on since the assignment
	if p.owns(cl, 0) {
		t.Fatal("partition 0 of an older generation is owned")
	}
	st := p.Stats()
	if len(st.Partitions) != 0 || st.Disowned != 2 {
		t.Fatalf("owned %v, disowned %d; want none owned, 2 disowned", st.Partitions, st.Disowned)
	}
	// Parked as revoked at the end of its generation: 1 at -1, then 0 at
	// 4, which discards 1 (no generation after 4 may take back -1's).
	if len(p.mu.parked) != 1 || p.mu.parked[0] == nil || p.mu.parkedGen != 4 {
		t.Fatalf("parked %v at generation %d; want partition 0 at 4", slices.Sorted(maps.Keys(p.mu.parked)), p.mu.parkedGen)
	}
}
