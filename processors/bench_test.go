package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	sdk "github.com/stepwise-run/stepwise/worker"
)

// benchStack is a processor and a Go SDK echo worker on an in-process
// broker: the stack `stepwise dev` runs, measured without the CLI.
func benchStack(b *testing.B, parts int32, tweak ...func(*Config)) (*env, *completions, *replica) {
	e := newEnv(b, threeSteps, parts)
	comps := e.watchCompletions()
	w, err := sdk.New(sdk.WithBrokers(e.conn.Brokers...), sdk.WithPrefix(e.conn.Prefix), sdk.WithLogger(testLogger(b)), sdk.WithKafkaOpts(kgo.FetchMaxWait(10*time.Millisecond), kgo.ProducerLinger(0)))
	if err != nil {
		b.Fatal(err)
	}
	echo := func(_ context.Context, t *sdk.Task) (json.RawMessage, error) { return t.Input, nil }
	for _, q := range e.set.Queues() {
		w.Handle(q, echo, sdk.Concurrency(64))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait() })
	r := e.startProcessor("bench", tweak...)
	// Warm up: the group joins and every partition is restored.
	warm := ids("warm", 20)
	e.start("chain", warm...)
	comps.wait(b, warm, 30*time.Second)
	return e, comps, r
}

// BenchmarkLinear3Sequential: one 3-step echo request at a time, start to
// completion. Run with -benchtime=500x for the figure in the docs.
func BenchmarkLinear3Sequential(b *testing.B) {
	e, comps, _ := benchStack(b, 4)
	cl := e.client(kgo.ProducerLinger(0))
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("seq-%06d", i)
		v, _ := json.Marshal(map[string]any{"type": "start", "workflow": "chain", "id": id, "input": map[string]any{"id": id}})
		t0 := time.Now()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: e.conn.Prefix.Requests(), Key: []byte(id), Value: v}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		comps.wait(b, []string{id}, 30*time.Second)
		comps.mu.Lock()
		lat = append(lat, comps.at[id].Sub(t0))
		comps.mu.Unlock()
	}
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

// BenchmarkLinear3Concurrent: b.N requests started at once (closed loop of
// one burst). Run with -benchtime=5000x.
func BenchmarkLinear3Concurrent(b *testing.B) {
	e, comps, _ := benchStack(b, 4)
	reqs := ids("burst", b.N)
	b.ResetTimer()
	t0 := time.Now()
	e.start("chain", reqs...)
	comps.wait(b, reqs, 5*time.Minute)
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
	b.ReportMetric(float64(3*b.N)/elapsed.Seconds(), "steps/s")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkCommitSplit: requests 3-step echo requests with 64 in flight
// and reports what one commit of the loop costs, phase by phase
// (commitsplit.go), as mean milliseconds per commit. Run with
// -benchtime=3000x.
func BenchmarkCommitSplit(b *testing.B) {
	e, comps, r := benchStack(b, 4, func(c *Config) { c.measureCommits = true })
	p := r.p
	reqs := ids("split", b.N)
	b.ResetTimer()
	for i := 0; i < len(reqs); i += 64 {
		batch := reqs[i:min(i+64, len(reqs))]
		e.start("chain", batch...)
		comps.wait(b, batch, time.Minute)
	}
	b.StopTimer()
	for k, v := range p.split.split() {
		b.ReportMetric(v, k+"-ms/commit")
	}
}
