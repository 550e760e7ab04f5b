package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	// 1..100 ms: the p-th percentile by nearest rank is p ms.
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, p := range []float64{1, 50, 90, 99, 100} {
		if got, want := Percentile(d, p), time.Duration(p)*time.Millisecond; got != want {
			t.Errorf("Percentile(1..100ms, %v) = %v, want %v", p, got, want)
		}
	}
	// Few samples: p99 of three is the largest, p50 the middle one.
	three := []time.Duration{1, 2, 3}
	if got := Percentile(three, 99); got != 3 {
		t.Errorf("p99 of 3 samples = %v, want 3", got)
	}
	if got := Percentile(three, 50); got != 2 {
		t.Errorf("p50 of 3 samples = %v, want 2", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestSummarizeSortsAndConverts(t *testing.T) {
	d := []time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	l := Summarize(d)
	if l.P50 != 2 || l.P90 != 4 || l.P99 != 4 || l.Max != 4 || l.Mean != 2.5 || l.N != 4 {
		t.Errorf("Summarize = %+v, want p50 2, p90 4, p99 4, max 4, mean 2.5, n 4", l)
	}
	if !slices.IsSorted(d) {
		t.Errorf("samples not sorted in place: %v", d)
	}
	if z := Summarize(nil); z != (Latency{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", z)
	}
}

func TestBusyTimeCountsOverlapOnce(t *testing.T) {
	cases := []struct {
		name  string
		spans []interval
		want  time.Duration
	}{
		{"none", nil, 0},
		{"sequential", []interval{{0, 10}, {20, 25}, {30, 31}}, 16},
		{"parallel fan-out", []interval{{0, 10}, {2, 8}, {5, 12}, {11, 15}}, 15},
		{"unsorted with gap", []interval{{50, 60}, {0, 10}, {5, 20}}, 30},
		{"touching", []interval{{0, 10}, {10, 20}}, 20},
	}
	for _, c := range cases {
		if got := busyTime(c.spans); got != c.want {
			t.Errorf("%s: busyTime = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestHistogramQuantileWithinBucket(t *testing.T) {
	var h histogram
	r := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 10_000 {
		d := time.Duration(r.ExpFloat64() * float64(5*time.Millisecond))
		h.add(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		exact := Percentile(all, q*100)
		got := h.quantile(q)
		// The bucket's upper bound: at or above the exact value, by at
		// most one growth step (and the first bucket's 10 µs floor).
		if got < exact || float64(got) > float64(max(exact, histBase))*histGrowth*1.0001 {
			t.Errorf("quantile(%v) = %v, exact %v", q, got, exact)
		}
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram: want 0")
	}
}

func TestTrackerOverheadPerStep(t *testing.T) {
	tr := newTracker()
	start := tr.epoch
	tr.started("r", start, true)
	tr.started("warm", start, false)
	tr.mu.live["r"].spans = []interval{
		{int64(1 * time.Millisecond), int64(2 * time.Millisecond)},
		{int64(4 * time.Millisecond), int64(6 * time.Millisecond)},
		{int64(7 * time.Millisecond), int64(8 * time.Millisecond)},
	}
	tr.completed("r", start.Add(10*time.Millisecond), true)
	tr.completed("r", start.Add(20*time.Millisecond), true) // duplicate: ignored
	tr.completed("warm", start.Add(5*time.Millisecond), false)
	if len(tr.mu.samples) != 1 {
		t.Fatalf("samples = %d, want 1 (warm-up and duplicates are not measured)", len(tr.mu.samples))
	}
	s := tr.mu.samples[0]
	// 10 ms end to end, 4 ms in handlers, 3 steps: 2 ms per step.
	if s.latency != 10*time.Millisecond || s.busy != 4*time.Millisecond || s.steps != 3 || s.overhead != 2*time.Millisecond {
		t.Errorf("sample = %+v, want 10ms latency, 4ms busy, 3 steps, 2ms overhead", s)
	}
	if tr.mu.failed != 0 || tr.inFlight() != 0 {
		t.Errorf("failed %d, in flight %d: want 0, 0", tr.mu.failed, tr.inFlight())
	}
}
