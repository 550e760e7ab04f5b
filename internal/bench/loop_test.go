package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/internal/devbroker"
)

// Both loops run past the capacity of the completion signal buffer: the
// open loop, which never waits for a completion, must not stall the
// completions reader once the buffer is full (it did, at 65,537
// completions with the default buffer), and the closed loop must keep its
// bound in flight however many signals the buffer holds.
func TestLoopsPastTheSignalBuffer(t *testing.T) {
	defer func(n int) { signalBuffer = n }(signalBuffer)
	signalBuffer = 4
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithCleanerBackoff(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := newRunner(Config{Conn: b.Conn("loops."), Partitions: 2, Duration: 1500 * time.Millisecond, Drain: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	sc, err := ScenarioByName("linear3", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, load := range []Load{{Rate: 100}, {Concurrency: 16}} {
		run, err := r.runOne(ctx, sc, SystemRelay, 1, load)
		if err != nil {
			t.Fatalf("%s: %v", load, err)
		}
		if run.Started <= 4*signalBuffer || run.Completed != run.Started || run.Unfinished != 0 {
			t.Errorf("%s: started %d, completed %d, unfinished %d (signal buffer %d)", load, run.Started, run.Completed, run.Unfinished, signalBuffer)
		}
	}
}

// The warm-up keeps no more requests in flight than the closed loop would.
func TestWarmBound(t *testing.T) {
	for _, c := range []struct {
		cfg      Config
		scenario string
		load     Load
		warm     int
		want     int
	}{
		{Config{}, "fanout10k", Load{Rate: 1}, 12, 2},
		{Config{}, "fanout10k", Load{Concurrency: 3}, 12, 3},
		{Config{Concurrency: 5}, "fanout10k", Load{Rate: 1}, 12, 5},
		{Config{}, "linear3", Load{Concurrency: 256}, 12, 12},
		{Config{}, "unknown", Load{Rate: 1}, 12, 12},
	} {
		if got := warmBound(c.cfg, c.scenario, c.load, c.warm); got != c.want {
			t.Errorf("warmBound(%+v, %s, %+v, %d) = %d, want %d", c.cfg, c.scenario, c.load, c.warm, got, c.want)
		}
	}
}
