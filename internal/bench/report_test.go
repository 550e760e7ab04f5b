package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// report builds a report of linear3 and fanout figures as given.
func report(embedded bool, swSteps, relaySteps, overP50, overP99 float64) *Report {
	closed := newPair(Load{Concurrency: 8},
		&Run{System: SystemStepwise, StepsPerS: swSteps, RequestsPerS: swSteps / 3, PeakRSS: 50 << 20, Latency: Latency{P50: 4, P99: 8}},
		&Run{System: SystemRelay, StepsPerS: relaySteps, RequestsPerS: relaySteps / 3, Latency: Latency{P50: 2, P99: 2}})
	open := newPair(Load{Rate: 100},
		&Run{System: SystemStepwise, StepsPerS: 300, Overhead: Latency{P50: overP50, P99: overP99}, Latency: Latency{P50: 6, P99: 12}},
		&Run{System: SystemRelay, StepsPerS: 300, Latency: Latency{P50: 3, P99: 4}})
	l3 := &ScenarioReport{Scenario: "linear3", Closed: closed, Open: open}
	l3.fill()
	return &Report{Embedded: embedded, Scenarios: []*ScenarioReport{l3}}
}

func TestPairRatios(t *testing.T) {
	rep := report(true, 30_000, 50_000, 1, 5)
	s := rep.Scenarios[0]
	if s.ThroughputRatio != 0.6 || s.StepsPerS != 30_000 || s.RelayStepsPerS != 50_000 {
		t.Errorf("headline throughput: ratio %v, %v vs %v steps/s", s.ThroughputRatio, s.StepsPerS, s.RelayStepsPerS)
	}
	// Latency comes from the open loop: 6/3 and 12/4.
	if s.LatencyRatio != (Quantiles{2, 3}) || s.Latency.P50 != 6 || s.Overhead.P50 != 1 {
		t.Errorf("headline latency: ratio %+v, p50 %v, overhead %v", s.LatencyRatio, s.Latency.P50, s.Overhead.P50)
	}
	if s.PeakRSS != 50<<20 {
		t.Errorf("peak RSS %d", s.PeakRSS)
	}
	if p := newPair(Load{Rate: 1}, &Run{StepsPerS: 5}, nil); p.ThroughputRatio != 0 {
		t.Errorf("ratio without a relay run = %v, want 0", p.ThroughputRatio)
	}
}

func TestTargetsEmbeddedAndReal(t *testing.T) {
	byName := func(ts []Target) map[string]Target {
		m := map[string]Target{}
		for _, x := range ts {
			m[x.Name] = x
		}
		return m
	}
	// 30k steps/s at 0.6 of the relay: the ratio passes on the embedded
	// broker, the 50k floor does not; on a real broker both pass.
	emb := byName(Targets(report(true, 30_000, 50_000, 1.5, 12)))
	if !emb["linear3 max throughput vs relay"].Met || emb["linear3 max throughput"].Met {
		t.Errorf("embedded throughput targets: %+v", emb)
	}
	if !emb["linear3 overhead per step p50 at 50% load"].Met || emb["linear3 overhead per step p99 at 50% load"].Met {
		t.Errorf("embedded overhead targets (1.5 / 12 ms against 2 / 10): %+v", emb)
	}
	real := byName(Targets(report(false, 30_000, 50_000, 1.5, 12)))
	if !real["linear3 max throughput"].Met || !real["linear3 overhead per step p99 at 50% load"].Met {
		t.Errorf("real-broker targets (20k floor, 20 ms p99): %+v", real)
	}
	if r := real["restore of 100,000 in-flight requests"]; !r.Missing || r.Met {
		t.Errorf("restore not run: want missing, got %+v", r)
	}
	if f := real["fanout100 throughput"]; !f.Missing {
		t.Errorf("fanout100 not run: want missing, got %+v", f)
	}
}

func TestMarkdownAndJSON(t *testing.T) {
	rep := report(true, 30_000, 50_000, 1, 5)
	rep.Scaling = &Scaling{Scenario: "linear3", Points: []ReplicaPoint{{Replicas: 2, StepsPerS: 40_000, RelayStepsPerS: 50_000, Ratio: 0.8}},
		Restore: &Restore{InFlight: 100_000, RestoreS: 2.5, TakeoverS: 3, RestoredRecords: 100_000}}
	rep.Targets = Targets(rep)
	var md bytes.Buffer
	WriteMarkdown(&md, rep)
	for _, want := range []string{"| linear3 | closed loop, 8 in flight | stepwise | 10000 | 30000 | 0.60 |", "| 2 | 40000 |", "restored 100000 records in 2.50 s", "| restore of 100,000 in-flight requests | <= 10 s |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Scenarios []map[string]json.RawMessage `json:"scenarios"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"steps_per_s", "relay_steps_per_s", "throughput_ratio", "latency_ms", "overhead_per_step_ms", "peak_rss_bytes"} {
		if _, ok := back.Scenarios[0][k]; !ok {
			t.Errorf("JSON scenario lacks %q", k)
		}
	}
	var lat map[string]float64
	_ = json.Unmarshal(back.Scenarios[0]["latency_ms"], &lat)
	if lat["p50"] != 6 || lat["p99"] != 12 {
		t.Errorf("latency_ms = %v", lat)
	}
}

func TestStateAccount(t *testing.T) {
	a := newStateAccount()
	a.add("r1", make([]byte, 100))
	a.add("r1/items[0]", make([]byte, 30))
	a.add("r1/items[1]", make([]byte, 30))
	a.add("r1", make([]byte, 120)) // live: 120 + 60 = 180, the peak
	a.add("r1/items[0]", nil)      // tombstone
	a.add("r1/items[1]", nil)
	a.add("r2", make([]byte, 50))
	f := a.figures()
	if f.Records != 7 || f.Requests != 2 || f.LargestRecord != 120 || f.MaxLivePerRequest != 180 || f.LivePerRequest != (180+50)/2.0 {
		t.Errorf("figures = %+v", f)
	}
	wantBytes := int64(2+100) + 2*(11+30) + (2 + 120) + 2*11 + (2 + 50)
	if f.Bytes != wantBytes {
		t.Errorf("bytes %d, want %d", f.Bytes, wantBytes)
	}
}

func TestParseStatusKB(t *testing.T) {
	st := "Name:\tstepwise\nVmHWM:\t  123456 kB\nVmRSS:\t   1024 kB\n"
	if got := parseStatusKB(st, "VmHWM:"); got != 123456*1024 {
		t.Errorf("VmHWM = %d", got)
	}
	if got := parseStatusKB(st, "VmSwap:"); got != 0 {
		t.Errorf("absent key = %d", got)
	}
}

func TestRestoredLine(t *testing.T) {
	line := `time=2026-11-25T10:00:00.000Z level=INFO msg="partitions restored" replica=bench-fresh partitions="[0 1 2 3 4 5]" generation=1 records=100000 duration=2.345s`
	m := restoredLine.FindStringSubmatch(line)
	if m == nil || m[1] != "100000" || m[2] != "2.345s" {
		t.Errorf("restore line not parsed: %q", m)
	}
}
