package worker

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tracker follows the tasks of one queue's assigned partitions from poll to
// acknowledged result, and says how far each partition may be committed.
//
// Invariant: for every tracked partition, the mark (the offset to commit)
// is one past a task whose result was acknowledged, and every task of that
// partition polled before it is finished too. Tasks finish out of order;
// the mark only moves over a contiguous run of finished tasks, so a commit
// never passes a task that is still running or waiting to run.
//
// A partition is tracked from its assignment to its revocation. A task
// polled before a revocation may finish after it; it then updates a
// partition object no longer in the map, which nobody reads.
type tracker struct {
	mu    sync.Mutex
	freed *sync.Cond // broadcast whenever a partition's running count drops
	parts map[int32]*partition
}

type partition struct {
	pending []*entry // polled, not yet passed by the mark; in offset order
	running int      // tasks whose handler started and has not finished
	closed  bool     // revoked or lost: start no more of its tasks
}

// entry is one polled task.
type entry struct {
	part   *partition
	offset int64
	epoch  int32
	done   bool
}

func newTracker() *tracker {
	t := &tracker{parts: map[int32]*partition{}}
	t.freed = sync.NewCond(&t.mu)
	return t
}

// assign starts tracking partitions, afresh: a partition that comes back
// starts from its committed offset again.
func (t *tracker) assign(ps []int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range ps {
		if old := t.parts[p]; old != nil {
			old.closed = true
		}
		t.parts[p] = &partition{}
	}
}

// add records a polled task, in poll order. It returns nil when the
// partition is not tracked (not assigned any more): the task is someone
// else's now and must not run here.
func (t *tracker) add(rec *kgo.Record) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[rec.Partition]
	if p == nil || p.closed {
		return nil
	}
	e := &entry{part: p, offset: rec.Offset, epoch: rec.LeaderEpoch}
	p.pending = append(p.pending, e)
	return e
}

// start reports whether the task may run: false once its partition was
// revoked. A true start must be followed by exactly one finish and then one
// release.
func (t *tracker) start(e *entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.part.closed {
		return false
	}
	e.part.running++
	return true
}

// finish records that a started task's result was acknowledged (or that it
// had none to give): the task may be committed. It returns the partition's
// new mark when the mark moved. The caller hands the mark to the consumer
// before release, so a revocation waiting on the task commits it.
func (t *tracker) finish(e *entry) (mark kgo.EpochOffset, moved bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := e.part
	e.done = true
	for len(p.pending) > 0 && p.pending[0].done {
		head := p.pending[0]
		p.pending[0] = nil
		p.pending = p.pending[1:]
		mark = kgo.EpochOffset{Epoch: head.epoch, Offset: head.offset + 1}
		moved = true
	}
	return mark, moved
}

// release ends a started task, finished or not.
func (t *tracker) release(e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.part.running--
	t.freed.Broadcast()
}

// revoke stops tracking partitions: none of their waiting tasks will start,
// and it waits up to timeout for their running tasks to finish, so their
// marks can be committed before the partitions change hands.
func (t *tracker) revoke(ps []int32, timeout time.Duration) (stillRunning int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []*partition
	for _, n := range ps {
		if p := t.parts[n]; p != nil {
			p.closed = true
			gone = append(gone, p)
			delete(t.parts, n)
		}
	}
	running := func() int {
		n := 0
		for _, p := range gone {
			n += p.running
		}
		return n
	}
	if timeout > 0 && running() > 0 {
		// sync.Cond has no timed wait: a timer wakes the waiter at the end.
		expired := false
		timer := time.AfterFunc(timeout, func() {
			t.mu.Lock()
			expired = true
			t.mu.Unlock()
			t.freed.Broadcast()
		})
		defer timer.Stop()
		for running() > 0 && !expired {
			t.freed.Wait()
		}
	}
	return running()
}

// runningTotal returns the number of started, unfinished tasks of all tracked
// partitions.
func (t *tracker) runningTotal() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.parts {
		n += p.running
	}
	return n
}
