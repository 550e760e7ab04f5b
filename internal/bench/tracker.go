package bench

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/stepwise-run/stepwise/worker"
)

// tracker follows every request a run starts: when it started, the spans
// its worker handlers ran, and when its completion arrived.
//
// Invariant: a request is in mu.live from start until its completion (or
// the end of the run); samples holds one entry per completed measured
// request, in completion order.
type tracker struct {
	epoch time.Time
	mu    struct {
		sync.Mutex
		live    map[string]*reqTrace
		samples []sample
		failed  int
		hist    histogram // end-to-end latency of measured requests, for progress
	}
	done chan struct{} // a wake-up after a completion, when non-nil; never blocks completed
}

type reqTrace struct {
	start    time.Time
	measured bool
	spans    []interval
}

// sample is one completed request.
type sample struct {
	at       time.Time     // completion seen
	latency  time.Duration // end to end
	overhead time.Duration // per step: end to end minus worker busy time, divided by steps
	steps    int           // handler runs seen
	busy     time.Duration
}

// signalBuffer is the capacity of a run's tracker.done. The send is dropped
// when it is full, so any capacity is correct; tests make it small.
var signalBuffer = 1 << 16

func newTracker() *tracker {
	t := &tracker{epoch: time.Now()}
	t.mu.live = map[string]*reqTrace{}
	return t
}

// started records a request about to be produced; start is its scheduled
// time (open loop) or now (closed loop).
func (t *tracker) started(id string, start time.Time, measured bool) {
	t.mu.Lock()
	t.mu.live[id] = &reqTrace{start: start, measured: measured}
	t.mu.Unlock()
}

// wrap returns h timed: each run's span is added to its request.
func (t *tracker) wrap(h worker.Handler) worker.Handler {
	return func(ctx context.Context, task *worker.Task) (json.RawMessage, error) {
		from := time.Since(t.epoch)
		out, err := h(ctx, task)
		to := time.Since(t.epoch)
		t.mu.Lock()
		if r := t.mu.live[task.Request]; r != nil {
			r.spans = append(r.spans, interval{int64(from), int64(to)})
		}
		t.mu.Unlock()
		return out, err
	}
}

// completed records the completion of id seen at at; ok is false for a
// request that did not succeed. Unknown ids (duplicates) are ignored.
func (t *tracker) completed(id string, at time.Time, ok bool) {
	t.mu.Lock()
	r := t.mu.live[id]
	if r == nil {
		t.mu.Unlock()
		return
	}
	delete(t.mu.live, id)
	if r.measured {
		if !ok {
			t.mu.failed++
		}
		lat := at.Sub(r.start)
		busy := busyTime(r.spans)
		s := sample{at: at, latency: lat, steps: len(r.spans), busy: busy}
		if s.steps > 0 {
			s.overhead = (lat - busy) / time.Duration(s.steps)
		}
		t.mu.samples = append(t.mu.samples, s)
		t.mu.hist.add(lat)
	}
	t.mu.Unlock()
	if t.done != nil {
		select { // a wake-up, not a count: the closed loop counts t.mu.live
		case t.done <- struct{}{}:
		default: // full: a wake-up is already pending, and the open loop drains none
		}
	}
}

// inFlight returns the requests started and not completed.
func (t *tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mu.live)
}

// histogram counts durations in buckets growing by 2% from 10 µs, enough to
// print a running median every second without sorting every sample.
type histogram struct {
	counts []int
	n      int
}

const (
	histBase   = 10 * time.Microsecond
	histGrowth = 1.02
)

func (h *histogram) add(d time.Duration) {
	i := 0
	if d > histBase {
		i = int(math.Log(float64(d)/float64(histBase))/math.Log(histGrowth)) + 1
	}
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]int, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
}

// quantile returns the upper bound of the bucket holding the q-th quantile
// (0 < q <= 1): within 2% above the exact value.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := int(math.Ceil(q * float64(h.n)))
	seen := 0
	for i, c := range h.counts {
		if seen += c; seen >= max(want, 1) {
			return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
		}
	}
	return 0
}
