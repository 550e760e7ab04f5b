package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/schemas/schematest"
)

// TestSmokeKfake drives linear3 through both systems on an embedded broker
// (a few hundred requests in each loop), then the scaling and restore
// paths at a small size, in this process.
func TestSmokeKfake(t *testing.T) {
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithCleanerBackoff(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	cfg := Config{
		Conn: b.Conn("smoke."), Partitions: 2, Duration: 1500 * time.Millisecond, Concurrency: 16,
		Drain: 30 * time.Second, Progress: &progress,
	}
	rep, err := Execute(ctx, cfg, Plan{Scenarios: []string{"linear3"}, Load: LoadAuto, Replicas: []int{2}, Restore: 300, Embedded: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != 1 {
		t.Fatalf("%d scenarios", len(rep.Scenarios))
	}
	s := rep.Scenarios[0]
	for _, p := range []*Pair{s.Closed, s.Open} {
		if p == nil || p.Stepwise == nil || p.Relay == nil {
			t.Fatalf("missing run: %+v", p)
		}
		for _, r := range []*Run{p.Stepwise, p.Relay} {
			if r.Completed < 20 || r.Unfinished != 0 || r.Failed != 0 {
				t.Errorf("%s %s: completed %d, unfinished %d, failed %d", r.System, p.Load, r.Completed, r.Unfinished, r.Failed)
			}
			if r.StepsPerReq != 3 {
				t.Errorf("%s %s: %v steps per request, want 3 handler runs", r.System, p.Load, r.StepsPerReq)
			}
			if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
				t.Errorf("%s %s: latency %+v", r.System, p.Load, r.Latency)
			}
			if !r.CPUShared || r.CPUSeconds <= 0 {
				t.Errorf("%s %s: in-process CPU %v s, shared %v", r.System, p.Load, r.CPUSeconds, r.CPUShared)
			}
		}
	}
	if s.Open.Stepwise.Rate <= 0 || s.Open.Stepwise.Rate != s.Closed.Stepwise.RequestsPerS/2 {
		t.Errorf("open loop at %v req/s, want half of %v", s.Open.Stepwise.Rate, s.Closed.Stepwise.RequestsPerS)
	}
	if s.ThroughputRatio <= 0 || s.RelayStepsPerS <= 0 {
		t.Errorf("ratio %v, relay %v steps/s", s.ThroughputRatio, s.RelayStepsPerS)
	}
	if st := s.Closed.Stepwise.State; st == nil || st.Requests < s.Closed.Stepwise.Completed || st.LivePerRequest <= 0 {
		t.Errorf("state figures %+v for %d requests", st, s.Closed.Stepwise.Completed)
	}
	if !strings.Contains(progress.String(), "linear3 stepwise") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
	sc := rep.Scaling
	if sc == nil || len(sc.Points) != 1 || sc.Points[0].Replicas != 2 || sc.Points[0].StepsPerS <= 0 {
		t.Fatalf("scaling %+v", sc)
	}
	if r := sc.Restore; r == nil || r.RestoredRecords < 300 || r.RestoreS <= 0 || r.TakeoverS < r.RestoreS || r.StateBytes <= 0 {
		t.Errorf("restore %+v", r)
	}
	files, err := WritePlots(rep, t.TempDir())
	if err != nil || len(files) != 2 {
		t.Fatalf("plots %v: %v", files, err)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() < 1000 || filepath.Ext(f) != ".png" {
			t.Errorf("plot %s: %v", f, err)
		}
	}
}

// The starts the driver writes are what start.schema.json describes, for
// every scenario's inputs.
func TestStartsFollowTheSchema(t *testing.T) {
	for _, name := range ScenarioNames {
		sc, err := ScenarioByName(name, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			schematest.Valid(t, "start.schema.json", startValue(sc.Workflow, name+"-"+strconv.Itoa(i), sc.Input(i)))
		}
	}
}
