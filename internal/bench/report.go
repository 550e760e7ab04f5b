package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Report is everything one `stepwise bench` measured.
type Report struct {
	Started   time.Time         `json:"started"`
	Command   string            `json:"command"`
	Broker    string            `json:"broker"` // "embedded (kfake)" or the brokers' addresses
	Embedded  bool              `json:"embedded"`
	Machine   Machine           `json:"machine"`
	Settings  map[string]string `json:"settings"`
	Scenarios []*ScenarioReport `json:"scenarios"`
	Scaling   *Scaling          `json:"scaling,omitempty"`
	// Observability: linear3 with metrics and tracing on and off.
	Observability *Observability `json:"observability,omitempty"`
	Targets       []Target       `json:"targets"`
	Errors        []string       `json:"errors,omitempty"`
}

// Machine describes where the figures come from.
type Machine struct {
	Cores      int     `json:"cores"`
	MemoryB    int64   `json:"memory_bytes"`
	CPU        string  `json:"cpu"`
	GoVersion  string  `json:"go"`
	LoadBefore float64 `json:"load_avg_1m_before"` // what else was running
	LoadAfter  float64 `json:"load_avg_1m_after"`
}

// ScenarioReport pairs the runs of one scenario. The flat fields are the
// headline figures the issue asks for: throughput from the closed loop,
// latency and overhead from the open loop at half the maximum (falling
// back to whichever loop ran).
type ScenarioReport struct {
	Scenario        string  `json:"scenario"`
	StepsPerRequest int     `json:"steps_per_request"`
	RecordsPerReq   int     `json:"records_per_request"` // request, tasks, results, completion
	StepsPerS       float64 `json:"steps_per_s"`
	RequestsPerS    float64 `json:"requests_per_s"`
	RelayStepsPerS  float64 `json:"relay_steps_per_s"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	Latency         Latency `json:"latency_ms"`
	RelayLatency    Latency `json:"relay_latency_ms"`
	// LatencyRatio is Stepwise / relay end-to-end latency at p50 and p99.
	LatencyRatio Quantiles `json:"latency_ratio"`
	Overhead     Latency   `json:"overhead_per_step_ms"`
	PeakRSS      int64     `json:"peak_rss_bytes"` // largest processor replica over the scenario's runs
	// StateBytesPerInFlight is the state one in-flight request holds at
	// its widest (StateFigures.LivePerRequest).
	StateBytesPerInFlight float64 `json:"state_bytes_per_in_flight_request"`
	MaxRecordBytes        int     `json:"max_record_bytes"`

	Closed *Pair `json:"closed_loop,omitempty"`
	Open   *Pair `json:"open_loop,omitempty"`
}

// Quantiles are a pair of ratios.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Pair is Stepwise and the relay under the same load, one after the other
// in the same run.
type Pair struct {
	Load            string    `json:"load"`
	Stepwise        *Run      `json:"stepwise"`
	Relay           *Run      `json:"relay"`
	ThroughputRatio float64   `json:"throughput_ratio"`
	LatencyRatio    Quantiles `json:"latency_ratio"`
}

func newPair(load Load, sw, relay *Run) *Pair {
	p := &Pair{Load: load.String(), Stepwise: sw, Relay: relay}
	if sw != nil && relay != nil {
		p.ThroughputRatio = ratio(sw.StepsPerS, relay.StepsPerS)
		p.LatencyRatio = Quantiles{ratio(sw.Latency.P50, relay.Latency.P50), ratio(sw.Latency.P99, relay.Latency.P99)}
	}
	return p
}

// fill sets the headline fields from the pairs.
func (s *ScenarioReport) fill() {
	thr, lat := s.Closed, s.Open
	if thr == nil {
		thr = s.Open
	}
	if lat == nil {
		lat = s.Closed
	}
	if thr != nil && thr.Stepwise != nil {
		s.StepsPerS, s.RequestsPerS = thr.Stepwise.StepsPerS, thr.Stepwise.RequestsPerS
		if thr.Relay != nil {
			s.RelayStepsPerS = thr.Relay.StepsPerS
		}
		s.ThroughputRatio = thr.ThroughputRatio
	}
	if lat != nil && lat.Stepwise != nil {
		s.Latency, s.Overhead = lat.Stepwise.Latency, lat.Stepwise.Overhead
		if lat.Relay != nil {
			s.RelayLatency = lat.Relay.Latency
		}
		s.LatencyRatio = lat.LatencyRatio
	}
	for _, p := range []*Pair{s.Closed, s.Open} {
		if p == nil {
			continue
		}
		for _, r := range []*Run{p.Stepwise, p.Relay} {
			if r != nil {
				s.MaxRecordBytes = max(s.MaxRecordBytes, r.MaxRecordBytes)
			}
		}
		if r := p.Stepwise; r != nil {
			s.PeakRSS = max(s.PeakRSS, r.PeakRSS)
			if r.State != nil {
				s.StateBytesPerInFlight = max(s.StateBytesPerInFlight, r.State.LivePerRequest)
			}
		}
	}
}

// Scaling holds the replica and restore figures.
type Scaling struct {
	Scenario string         `json:"scenario"`
	Points   []ReplicaPoint `json:"replicas"`
	Restore  *Restore       `json:"restore,omitempty"`
}

// ReplicaPoint is the closed-loop throughput with Replicas processors.
type ReplicaPoint struct {
	Replicas       int     `json:"replicas"`
	StepsPerS      float64 `json:"steps_per_s"`
	RequestsPerS   float64 `json:"requests_per_s"`
	RelayStepsPerS float64 `json:"relay_steps_per_s"` // the relay run with the same points
	Ratio          float64 `json:"throughput_ratio"`
	CPUCores       float64 `json:"cpu_cores"`
	PeakRSS        int64   `json:"peak_rss_bytes"`
}

// Restore is the takeover of a partition set holding InFlight requests.
type Restore struct {
	InFlight int `json:"in_flight"`
	// LoadS is how long the processors took to accept InFlight starts.
	LoadS float64 `json:"load_s"`
	// RSSAtInFlight is the resident memory of the replica holding them
	// all; PeakRSS its highest.
	RSSAtInFlight int64 `json:"rss_at_in_flight_bytes"`
	PeakRSS       int64 `json:"peak_rss_bytes"`
	// RestoreS is the time the fresh replica spent restoring (its own
	// measurement); TakeoverS the time from its start until the restore
	// ended, joining the group included.
	RestoreS        float64 `json:"restore_s"`
	TakeoverS       float64 `json:"takeover_s"`
	RestoredRecords uint64  `json:"restored_records"`
	RestoredRSS     int64   `json:"restored_rss_bytes"` // the fresh replica after its restore
	StateBytes      float64 `json:"state_bytes_per_in_flight_request"`
	Shared          bool    `json:"memory_shared,omitempty"` // in-process: memory figures are the whole process's
}

// Target is one target of the issue and where it stands.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
	// Missing is set when the run did not measure it.
	Missing bool `json:"missing,omitempty"`
}

// Targets returns where each target of the benchmark issue stands in rep.
// The embedded broker's bounds are stricter than a real broker's.
func Targets(rep *Report) []Target {
	minRatio, minSteps, maxP50, maxP99 := 0.5, 20_000.0, 3.0, 20.0
	if rep.Embedded {
		minRatio, minSteps, maxP50, maxP99 = 0.6, 50_000, 2, 10
	}
	find := func(name string) *ScenarioReport {
		for _, s := range rep.Scenarios {
			if s.Scenario == name {
				return s
			}
		}
		return nil
	}
	var out []Target
	add := func(name, want string, ok bool, got string, measured bool) {
		if !measured {
			out = append(out, Target{Name: name, Want: want, Got: "not measured", Missing: true})
			return
		}
		out = append(out, Target{Name: name, Want: want, Got: got, Met: ok})
	}
	l3 := find("linear3")
	hasMax := l3 != nil && l3.Closed != nil && l3.Closed.Stepwise != nil && l3.Closed.Relay != nil
	add("linear3 max throughput vs relay", fmt.Sprintf(">= %.2f x relay", minRatio),
		hasMax && l3.Closed.ThroughputRatio >= minRatio, func() string {
			if !hasMax {
				return ""
			}
			return fmt.Sprintf("%.2f x (%.0f vs %.0f steps/s)", l3.Closed.ThroughputRatio, l3.Closed.Stepwise.StepsPerS, l3.Closed.Relay.StepsPerS)
		}(), hasMax)
	add("linear3 max throughput", fmt.Sprintf(">= %.0f steps/s", minSteps),
		hasMax && l3.Closed.Stepwise.StepsPerS >= minSteps, func() string {
			if !hasMax {
				return ""
			}
			return fmt.Sprintf("%.0f steps/s", l3.Closed.Stepwise.StepsPerS)
		}(), hasMax)
	hasHalf := l3 != nil && l3.Open != nil && l3.Open.Stepwise != nil
	var o Latency
	if hasHalf {
		o = l3.Open.Stepwise.Overhead
	}
	load := ""
	if hasHalf {
		load = " at " + l3.Open.Load
	}
	add("linear3 overhead per step p50 at 50% load", fmt.Sprintf("<= %.0f ms", maxP50), hasHalf && o.P50 <= maxP50,
		fmt.Sprintf("%.2f ms%s", o.P50, load), hasHalf)
	add("linear3 overhead per step p99 at 50% load", fmt.Sprintf("<= %.0f ms", maxP99), hasHalf && o.P99 <= maxP99,
		fmt.Sprintf("%.2f ms%s", o.P99, load), hasHalf)
	f10k := find("fanout10k")
	if f10k != nil {
		completed := true
		for _, p := range []*Pair{f10k.Closed, f10k.Open} {
			if p != nil && p.Stepwise != nil && (p.Stepwise.Unfinished > 0 || p.Stepwise.Failed > 0 || p.Stepwise.Completed == 0) {
				completed = false
			}
		}
		add("fanout10k completes", "every request succeeds", completed, fmt.Sprintf("%v", completed), true)
		add("fanout10k largest record", "<= 1 MiB", f10k.MaxRecordBytes <= 1<<20, fmt.Sprintf("%d bytes", f10k.MaxRecordBytes), true)
		add("fanout10k processor memory", "< 200 MiB", f10k.PeakRSS < 200<<20, fmt.Sprintf("%.1f MiB peak RSS", mib(f10k.PeakRSS)), f10k.PeakRSS > 0)
	} else {
		add("fanout10k completes", "every request succeeds", false, "", false)
	}
	f100 := find("fanout100")
	add("fanout100 throughput", ">= 300 requests/s", f100 != nil && f100.RequestsPerS >= 300, func() string {
		if f100 == nil {
			return ""
		}
		return fmt.Sprintf("%.0f requests/s", f100.RequestsPerS)
	}(), f100 != nil)
	rs := rep.Scaling != nil && rep.Scaling.Restore != nil
	add("restore of 100,000 in-flight requests", "<= 10 s", rs && rep.Scaling.Restore.RestoreS <= 10, func() string {
		if !rs {
			return ""
		}
		r := rep.Scaling.Restore
		return fmt.Sprintf("%.2f s restore, %.2f s takeover (%d in flight, %d records)", r.RestoreS, r.TakeoverS, r.InFlight, r.RestoredRecords)
	}(), rs)
	return out
}

// rate formats requests/s with a decimal below 10, where the wide
// fan-outs complete a few per second.
func rate(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// DescribeMachine returns this machine's figures.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryB = parseStatusKB(string(b), "MemTotal:")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return m
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscanf(string(b), "%f", &l)
	return l
}

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteMarkdown writes the summary of rep.
func WriteMarkdown(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "## Stepwise benchmark, %s\n\n", rep.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- Broker: %s\n", rep.Broker)
	fmt.Fprintf(w, "- Machine: %d cores (%s), %.1f GiB memory, %s; 1-minute load average %.2f before, %.2f after\n",
		m.Cores, m.CPU, float64(m.MemoryB)/(1<<30), m.GoVersion, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "- Command: `%s`\n\n", rep.Command)

	if len(rep.Scenarios) > 0 {
		writeScenarios(w, rep)
	}
	if o := rep.Observability; o != nil && len(o.Points) > 0 {
		fmt.Fprintf(w, "### Metrics and tracing (%s, closed loop, one processor)\n\n", o.Scenario)
		fmt.Fprintln(w, "| variant | steps/s | req/s | change | latency p50 / p99 (ms) | CPU (cores) | RSS (MiB) | OTLP exports |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, p := range o.Points {
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %+.1f %% | %.1f / %.1f | %.2f | %.0f | %d |\n", p.Variant, p.StepsPerS, p.RequestsPerS, p.Change,
				p.Latency.P50, p.Latency.P99, p.CPUCores, mib(p.PeakRSS), p.Exports)
		}
		fmt.Fprintln(w)
	}
	if sc := rep.Scaling; sc != nil {
		if len(sc.Points) > 0 {
			fmt.Fprintf(w, "### Scaling (%s, closed loop)\n\n", sc.Scenario)
			fmt.Fprintln(w, "| replicas | steps/s | req/s | relay steps/s | ratio | CPU (cores) | largest replica RSS (MiB) |")
			fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
			for _, p := range sc.Points {
				fmt.Fprintf(w, "| %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.0f |\n", p.Replicas, p.StepsPerS, p.RequestsPerS, p.RelayStepsPerS, p.Ratio, p.CPUCores, mib(p.PeakRSS))
			}
			fmt.Fprintln(w)
		}
		if r := sc.Restore; r != nil {
			shared := ""
			if r.Shared {
				shared = " (whole bench process: in-process mode)"
			}
			fmt.Fprintf(w, "### Restore and memory at %d in-flight requests\n\n", r.InFlight)
			fmt.Fprintf(w, "- Load: %d starts accepted in %.1f s\n", r.InFlight, r.LoadS)
			fmt.Fprintf(w, "- Replica holding them: %.0f MiB resident, %.0f MiB peak%s\n", mib(r.RSSAtInFlight), mib(r.PeakRSS), shared)
			fmt.Fprintf(w, "- State: %.0f bytes per in-flight request\n", r.StateBytes)
			fmt.Fprintf(w, "- Fresh replica: restored %d records in %.2f s; %.2f s from its start to the end of the restore; %.0f MiB resident after\n\n",
				r.RestoredRecords, r.RestoreS, r.TakeoverS, mib(r.RestoredRSS))
		}
	}
	fmt.Fprintln(w, "### Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | wanted | measured | met |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, t := range rep.Targets {
		met := "no"
		switch {
		case t.Missing:
			met = "not measured"
		case t.Met:
			met = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, met)
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(w, "\n### Errors")
		fmt.Fprintln(w)
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

// writeScenarios writes the side-by-side tables of the scenarios.
func writeScenarios(w io.Writer, rep *Report) {
	fmt.Fprintln(w, "### Stepwise against the relay, side by side")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | load | system | req/s | steps/s | ratio | latency p50 / p90 / p99 / max (ms) | overhead/step p50 / p99 (ms) | CPU (cores) | peak RSS (MiB) |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---|---|---:|---:|")
	for _, s := range rep.Scenarios {
		for _, p := range []*Pair{s.Closed, s.Open} {
			if p == nil {
				continue
			}
			for _, r := range []*Run{p.Stepwise, p.Relay} {
				if r == nil {
					continue
				}
				rat := ""
				if r == p.Stepwise && p.Relay != nil {
					rat = fmt.Sprintf("%.2f", p.ThroughputRatio)
				}
				cpu := fmt.Sprintf("%.2f", r.CPUCores)
				if r.CPUShared {
					cpu += "*"
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s | %s | %.2f / %.2f | %s | %.0f |\n",
					s.Scenario, p.Load, r.System, rate(r.RequestsPerS), r.StepsPerS, rat,
					fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max),
					r.Overhead.P50, r.Overhead.P99, cpu, mib(r.PeakRSS))
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios are Stepwise / relay on steps/s of the same load in the same run. Peak RSS is from the end of the warm-up (two requests per partition at once) to the end of the drain; report.json keeps the warm-up's as warmup_peak_rss_bytes. "+
		"Overhead per step is end-to-end latency minus the time a worker handler of the request was running, divided by the steps. "+
		"CPU and RSS are the processor replicas' (summed CPU, largest RSS) or the relay's; * marks figures of the whole bench process (in-process mode).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | steps/request | Kafka records/request (both) | latency ratio p50 / p99 | state bytes per in-flight request | state bytes written per request | largest record (bytes) |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|")
	for _, s := range rep.Scenarios {
		written := 0.0
		for _, p := range []*Pair{s.Closed, s.Open} {
			if p != nil && p.Stepwise != nil && p.Stepwise.State != nil {
				written = max(written, p.Stepwise.State.BytesPerRequest)
			}
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.2f / %.2f | %.0f | %.0f | %d |\n", s.Scenario, s.StepsPerRequest, s.RecordsPerReq,
			s.LatencyRatio.P50, s.LatencyRatio.P99, s.StateBytesPerInFlight, written, s.MaxRecordBytes)
	}
	fmt.Fprintln(w)
}
