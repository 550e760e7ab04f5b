package bench

import (
	"testing"
	"time"
)

// TestSummarizeSamples: throughput counts the requests completed within
// the window only, latencies and steps per request every completed one.
func TestSummarizeSamples(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	samples := []sample{
		{at: t0.Add(1 * time.Second), latency: 10 * time.Millisecond, overhead: 2 * time.Millisecond, steps: 3},
		{at: t0.Add(2 * time.Second), latency: 20 * time.Millisecond, overhead: 4 * time.Millisecond, steps: 3},
		{at: t0.Add(5 * time.Second), latency: 90 * time.Millisecond, overhead: 6 * time.Millisecond, steps: 6}, // in the drain
	}
	var run Run
	summarizeSamples(&run, samples, t0, 4*time.Second)
	if run.Completed != 3 || run.WindowS != 4 {
		t.Fatalf("completed %d in a window of %vs", run.Completed, run.WindowS)
	}
	if run.RequestsPerS != 0.5 || run.StepsPerS != 1.5 {
		t.Errorf("throughput %v requests/s, %v steps/s; want 0.5 and 1.5 (the two within the window)", run.RequestsPerS, run.StepsPerS)
	}
	if run.StepsPerReq != 4 {
		t.Errorf("steps per request %v, want 4", run.StepsPerReq)
	}
	if len(run.latencies) != 3 {
		t.Errorf("%d latencies kept, want every completed request's", len(run.latencies))
	}
	var empty Run
	summarizeSamples(&empty, nil, t0, time.Second)
	if empty.Completed != 0 || empty.StepsPerReq != 0 || empty.RequestsPerS != 0 {
		t.Errorf("no samples: %+v", empty)
	}
}
