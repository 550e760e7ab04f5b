package worker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func rec(p int32, off int64) *kgo.Record {
	return &kgo.Record{Partition: p, Offset: off, LeaderEpoch: 1}
}

// TestTrackerOutOfOrder: the mark moves only over a contiguous run of
// finished tasks, and skips offsets that were never delivered (aborted
// transactions, control records).
func TestTrackerOutOfOrder(t *testing.T) {
	tr := newTracker()
	tr.assign([]int32{0})
	var es []*entry
	for _, off := range []int64{10, 11, 14, 15} { // 12-13: a transaction marker and an aborted record
		e := tr.add(rec(0, off))
		if !tr.start(e) {
			t.Fatalf("start %d refused", off)
		}
		es = append(es, e)
	}
	if _, moved := tr.finish(es[1]); moved {
		t.Fatalf("mark moved past unfinished offset 10")
	}
	if _, moved := tr.finish(es[3]); moved {
		t.Fatalf("mark moved past unfinished offset 10")
	}
	mark, moved := tr.finish(es[0])
	if !moved || mark.Offset != 12 || mark.Epoch != 1 {
		t.Fatalf("mark %+v moved=%v; want 12 (after 10 and 11)", mark, moved)
	}
	mark, moved = tr.finish(es[2])
	if !moved || mark.Offset != 16 {
		t.Fatalf("mark %+v moved=%v; want 16", mark, moved)
	}
	for _, e := range es {
		tr.release(e)
	}
	if n := tr.runningTotal(); n != 0 {
		t.Fatalf("running %d after release of all", n)
	}
}

// TestTrackerRevoke: a revoked partition's waiting tasks never start, and
// revoke waits for its running ones up to the timeout.
func TestTrackerRevoke(t *testing.T) {
	tr := newTracker()
	tr.assign([]int32{0, 1})
	running := tr.add(rec(0, 0))
	waiting := tr.add(rec(0, 1))
	other := tr.add(rec(1, 0))
	tr.start(running)
	tr.start(other)

	go func() {
		time.Sleep(50 * time.Millisecond)
		tr.finish(running)
		tr.release(running)
	}()
	start := time.Now()
	if left := tr.revoke([]int32{0}, 5*time.Second); left != 0 {
		t.Fatalf("revoke left %d running", left)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("revoke returned after %v without waiting for the running task", d)
	}
	if tr.start(waiting) {
		t.Fatalf("a task of a revoked partition started")
	}
	if tr.add(rec(0, 2)) != nil {
		t.Fatalf("a record of a revoked partition was tracked")
	}

	// Partition 1's task never finishes: revoke gives up at the timeout.
	start = time.Now()
	if left := tr.revoke([]int32{1}, 30*time.Millisecond); left != 1 {
		t.Fatalf("revoke left %d running, want 1", left)
	}
	if d := time.Since(start); d < 25*time.Millisecond || d > 2*time.Second {
		t.Fatalf("revoke with a stuck task took %v", d)
	}

	// Reassigned, the partition starts afresh.
	tr.assign([]int32{0})
	e := tr.add(rec(0, 1))
	if e == nil || !tr.start(e) {
		t.Fatalf("reassigned partition not tracked")
	}
	if mark, moved := tr.finish(e); !moved || mark.Offset != 2 {
		t.Fatalf("mark %+v after reassignment, want 2", mark)
	}
}
