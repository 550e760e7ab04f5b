package processors

import (
	"container/heap"
	"time"

	"github.com/stepwise-run/stepwise/processors/machine"
)

// timerKey identifies a timer: setting a timer with the key of an existing
// one moves it, clearing removes it whatever its due time.
type timerKey struct {
	request string
	step    string
	attempt int
	kind    machine.TimerKind
}

func keyOf(t machine.Timer) timerKey {
	return timerKey{request: t.Request, step: t.Step, attempt: t.Attempt, kind: t.Kind}
}

// timerIndex is the in-memory due-time index of one partition's timers: a
// min-heap by due time with removal by key. It is rebuilt from the state
// records on restore (machine.TimersOf) and changed only when a
// transaction commits.
type timerIndex struct {
	heap  timerHeap
	byKey map[timerKey]*timerItem
}

type timerItem struct {
	t     machine.Timer
	index int
}

func newTimerIndex() *timerIndex { return &timerIndex{byKey: map[timerKey]*timerItem{}} }

func (ti *timerIndex) len() int { return len(ti.heap) }

func (ti *timerIndex) set(t machine.Timer) {
	k := keyOf(t)
	if it, ok := ti.byKey[k]; ok {
		it.t = t
		heap.Fix(&ti.heap, it.index)
		return
	}
	it := &timerItem{t: t}
	ti.byKey[k] = it
	heap.Push(&ti.heap, it)
}

func (ti *timerIndex) clear(t machine.Timer) {
	k := keyOf(t)
	if it, ok := ti.byKey[k]; ok {
		heap.Remove(&ti.heap, it.index)
		delete(ti.byKey, k)
	}
}

// fired removes t if it is still due at the time it fired at; a timer moved
// since (set again with a later time) stays.
func (ti *timerIndex) fired(t machine.Timer) {
	if it, ok := ti.byKey[keyOf(t)]; ok && !it.t.At.After(t.At) {
		ti.clear(t)
	}
}

// next returns the earliest due time.
func (ti *timerIndex) next() (time.Time, bool) {
	if len(ti.heap) == 0 {
		return time.Time{}, false
	}
	return ti.heap[0].t.At, true
}

// due returns up to limit timers due at now, earliest first, without
// removing them: they leave the index only when the transaction that
// handled them commits.
func (ti *timerIndex) due(now time.Time, limit int) []machine.Timer {
	var out []machine.Timer
	var popped []*timerItem
	for len(ti.heap) > 0 && len(out) < limit && !ti.heap[0].t.At.After(now) {
		it := heap.Pop(&ti.heap).(*timerItem)
		popped = append(popped, it)
		out = append(out, it.t)
	}
	for _, it := range popped {
		heap.Push(&ti.heap, it)
	}
	return out
}

type timerHeap []*timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].t.At.Equal(h[j].t.At) {
		return h[i].t.At.Before(h[j].t.At)
	}
	// Equal times: a fixed order keeps batches deterministic.
	a, b := keyOf(h[i].t), keyOf(h[j].t)
	if a.request != b.request {
		return a.request < b.request
	}
	if a.step != b.step {
		return a.step < b.step
	}
	if a.attempt != b.attempt {
		return a.attempt < b.attempt
	}
	return a.kind < b.kind
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	it := x.(*timerItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
